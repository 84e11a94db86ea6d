//! Sign-in and oneself: `POST /auth/login`, `/auth/refresh` (rotation), `/auth/logout`,
//! `GET /auth/me`, one's sessions, changing one's password, and the password reset.
//!
//! A failed sign-in answers the same 401 `invalid_credentials` whether the email is unknown,
//! the password wrong or the user deactivated, after the same Argon2id work; failures are
//! counted per account and per client address, and past `auth.max_failures_per_account` (or
//! `..._per_address`) in an hour further attempts are answered 429 without checking the
//! password.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, Path, State};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use pdm_core::store::{NewSession, Rotation, SessionId, UserUpdate};
use pdm_core::{StoreError, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{password, secret, unauthorized, AuthState, Principal};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::JsonBody;
use crate::openapi::params::Id;
use crate::openapi::ErrorBody;
use crate::state::AppState;
use crate::views::{AcceptedView, MeView, SessionView, SignInView, TicketView, UserView};
use utoipa::ToSchema;

/// How long a password-reset token lives.
pub const RESET_TTL_MS: i64 = 30 * 60 * 1000;

/// The window failed sign-ins are counted in.
const FAILURE_WINDOW_MS: i64 = 3_600 * 1000;

/// Longest email accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    login,
    refresh,
    logout,
    me,
    my_sessions,
    end_my_session,
    change_password,
    ticket,
    request_reset,
    confirm_reset
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
        .route("/auth/sessions", get(my_sessions))
        .route("/auth/sessions/{id}", delete(end_my_session))
        .route("/auth/password", post(change_password))
        .route("/auth/ticket", post(ticket))
        .route("/auth/password-reset", post(request_reset))
        .route("/auth/password-reset/confirm", post(confirm_reset))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

/// An email as stored: trimmed, lowercased; 422 naming `field` when it cannot be one.
pub fn email(raw: &str, field: &str) -> ApiResult<String> {
    let e = raw.trim().to_lowercase();
    let at = e.find('@');
    if e.is_empty()
        || e.len() > MAX_EMAIL
        || at.is_none_or(|i| i == 0 || i == e.len() - 1)
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::unprocessable(format!(
            "{field}: not an email address (name@domain, at most {MAX_EMAIL} characters)"
        )));
    }
    Ok(e)
}

/// The client's address, when the server knows it (served with connect info): the peer, or
/// behind a trusted proxy the address it forwarded ([`crate::auth::client`]).
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr
where
    AuthState: axum::extract::FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_of(parts, &AuthState::from_ref(state))))
    }
}

/// The client's address of a request ([`ClientAddr`]'s rule).
pub fn client_of(parts: &axum::http::request::Parts, auth: &AuthState) -> Option<String> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())?;
    let forwarded = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let client = crate::auth::client::client_addr(peer, forwarded, &auth.trusted_proxies);
    Some(client.to_string())
}

/// 503: every verification turn is taken (a flood of sign-ins); retry.
fn busy() -> ApiError {
    ApiError::unavailable("too many sign-ins at once; retry in a moment")
        .with_details(json!({ "reason": "busy" }))
}

fn invalid_credentials() -> ApiError {
    unauthorized("invalid_credentials", "the email or the password is wrong")
}

fn throttled(retry_after_s: i64) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable,
        "too many failed sign-ins; try again later",
    )
    .with_details(json!({ "reason": "throttled", "retry_after_s": retry_after_s }))
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// Sign in with email and password.
///
/// Answers an access token (a JWT, for `Authorization: Bearer`) and a single-use refresh
/// token. An unknown email, a wrong password and a deactivated user get the same 401.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in", body = SignInView),
        (status = 401, description = "Wrong email or password (`invalid_credentials`)", body = ErrorBody)))]
async fn login(
    State(auth): State<AuthState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    // Every sign-in and failed sign-in is audited, under the email as given (cut to the longest
    // an email may be), alike for an unknown account.
    let typed: String = body
        .email
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_EMAIL)
        .collect();
    // Only what reads as an email: a password typed into the email field stays out.
    let actor = if email(&typed, "email").is_ok() {
        typed
    } else {
        "(not an email)".to_owned()
    };
    let result = sign_in(&auth, addr.clone(), &headers, body).await;
    let status = match &result {
        Ok(r) => r.status(),
        Err(e) => e.status(),
    };
    let action = if status.is_success() {
        "sign_in"
    } else {
        "sign_in_failed"
    };
    crate::audit::append(
        &*auth.store,
        pdm_core::store::NewAuditEntry {
            at: Timestamp::now(),
            actor,
            role: None,
            action: action.into(),
            target: None,
            fields: Vec::new(),
            client_addr: addr,
            status: status.as_u16(),
        },
    )
    .await;
    result
}

async fn sign_in(
    auth: &AuthState,
    addr: Option<String>,
    headers: &HeaderMap,
    body: LoginBody,
) -> Result<Response, ApiError> {
    let auth = auth.clone();
    let now = Timestamp::now();
    let account = format!("account:{}", body.email.trim().to_lowercase());
    let mut keys = vec![account.clone()];
    if let Some(a) = &addr {
        keys.push(format!("addr:{a}"));
    }
    if body.password.len() > password::MAX_LEN || body.email.len() > MAX_EMAIL {
        return Err(invalid_credentials());
    }
    let since = now.add_millis(-FAILURE_WINDOW_MS);
    let store = &auth.store;
    let policy = auth.settings.current();
    let limits = [
        policy.auth.max_failures_per_account,
        policy.auth.max_failures_per_address,
    ];
    for (key, limit) in keys.iter().zip(limits) {
        if store.sign_in_failures(key, since).await? >= limit {
            return Ok(throttled(FAILURE_WINDOW_MS / 1000));
        }
    }
    let user = store
        .user_by_email(&body.email.trim().to_lowercase())
        .await?;
    let checked = match &user {
        Some(u) => password::verify(u.password_hash.clone(), body.password)
            .await
            .map(|ok| ok && u.active),
        None => password::verify_unknown(body.password)
            .await
            .map(|()| false),
    };
    let Some(ok) = checked else {
        return Err(busy());
    };
    let Some(user) = user.filter(|_| ok) else {
        store.record_sign_in_failure(&keys, now).await?;
        tracing::info!(client = addr.as_deref().unwrap_or("-"), "failed sign-in");
        return Err(invalid_credentials());
    };
    store.touch_sign_in(user.id, now).await?;
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect());
    let (refresh, hash) = secret::generate(secret::Kind::Refresh);
    let expires_at = now.add_millis(crate::auth::secs_to_ms(
        auth.settings.current().auth.session_max_s,
    ));
    let session = store
        .create_session(&NewSession {
            user: user.id,
            refresh: hash,
            refresh_expires_at: now
                .add_millis(crate::auth::secs_to_ms(
                    auth.settings.current().auth.refresh_ttl_s,
                ))
                .min(expires_at),
            expires_at,
            at: now,
            user_agent,
            client_addr: addr,
        })
        .await?;
    tracing::info!(user = %user.id, session = %session.id, "signed in");
    Ok(Json(tokens(&auth, user.id, session.id, refresh, now)).into_response())
}

fn tokens(
    auth: &AuthState,
    user: pdm_core::store::UserId,
    session: SessionId,
    refresh: String,
    now: Timestamp,
) -> SignInView {
    let ttl = auth.settings.current().auth.access_ttl_s;
    SignInView {
        access_token: auth
            .keys
            .issue(user, session, now.as_millis().div_euclid(1000), ttl as i64),
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshBody {
    refresh_token: String,
}

/// Rotates: the refresh token presented is spent, a new pair answered. A spent one presented
/// again ends its session (someone else has it).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses(
        (status = 200, description = "A new pair; the token presented is spent", body = SignInView),
        (status = 401, description = "Unknown, spent, expired or revoked refresh token", body = ErrorBody)))]
async fn refresh(
    State(auth): State<AuthState>,
    JsonBody(body): JsonBody<RefreshBody>,
) -> ApiResult<Json<SignInView>> {
    let now = Timestamp::now();
    if secret::Kind::of(&body.refresh_token) != Some(secret::Kind::Refresh) {
        return Err(unauthorized(
            "refresh_malformed",
            "refresh_token: not a refresh token",
        ));
    }
    let presented = secret::hash(&body.refresh_token);
    let (next, next_hash) = secret::generate(secret::Kind::Refresh);
    let lease = now.add_millis(crate::auth::secs_to_ms(
        auth.settings.current().auth.refresh_ttl_s,
    ));
    match auth
        .store
        .rotate_refresh(&presented, &next_hash, lease, now)
        .await?
    {
        Rotation::Rotated { session, user } => {
            if !user.active {
                auth.store
                    .revoke_session(session.id, "user deactivated", now)
                    .await?;
                return Err(unauthorized("user_inactive", "the user is deactivated"));
            }
            Ok(Json(tokens(&auth, user.id, session.id, next, now)))
        }
        Rotation::Reused { session } => {
            tracing::warn!(session = %session.id, user = %session.user, "a spent refresh token was presented again: the session is revoked");
            Err(unauthorized(
                "refresh_reused",
                "this refresh token was used before: the session is ended; sign in again",
            ))
        }
        Rotation::Expired => Err(unauthorized(
            "refresh_expired",
            "the refresh token or its session has expired; sign in again",
        )),
        Rotation::Unknown => Err(unauthorized("refresh_unknown", "no such refresh token")),
    }
}

fn signed_user(p: &Principal) -> ApiResult<(&pdm_core::store::User, SessionId)> {
    p.user().ok_or_else(|| {
        ApiError::bad_request("this route is for a signed-in user, not for an API token")
    })
}

/// Ends the caller's session (its refresh tokens stop working; its access tokens too).
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out")))]
async fn logout(State(auth): State<AuthState>, p: Principal) -> ApiResult<StatusCode> {
    let (_, session) = signed_user(&p)?;
    auth.store
        .revoke_session(session, "logout", Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who is signed in, with their role and permissions.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = MeView)))]
async fn me(p: Principal) -> Json<MeView> {
    let (user, session) = match p.user() {
        Some((u, s)) => (Some(UserView::from(u)), Some(s.0)),
        None => (None, None),
    };
    Json(MeView {
        user,
        session,
        actor: p.actor_name(),
        role: p.role.clone(),
        permissions: p.permissions.clone(),
    })
}

/// The caller's sessions (a signed-in user only).
#[utoipa::path(get, path = "/auth/sessions", tag = "auth",
    responses((status = 200, description = "The caller's sessions, newest first", body = [SessionView])))]
async fn my_sessions(
    State(auth): State<AuthState>,
    p: Principal,
) -> ApiResult<Json<Vec<SessionView>>> {
    let (user, current) = signed_user(&p)?;
    let sessions = auth.store.list_sessions(user.id, false).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView::new(s, Some(current)))
            .collect(),
    ))
}

/// A path id: 400 naming it when it is not a number.
pub fn path_id(raw: &str, what: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("{what} id {raw:?} is not a number")))
}

/// End one of the caller's sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", params(Id),
    responses((status = 204, description = "Ended")))]
async fn end_my_session(
    State(auth): State<AuthState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let (user, _) = signed_user(&p)?;
    let id = SessionId(path_id(&id, "session")?);
    match auth.store.get_session(id).await {
        Ok(s) if s.user == user.id => {}
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!("session {id} not found")))
        }
        Err(e) => return Err(e.into()),
    }
    auth.store
        .revoke_session(id, "ended by the user", Timestamp::now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A push ticket for a signed-in user: `GET /events?ticket=...` or `/ws?ticket=...` within
/// [`crate::auth::TICKET_TTL_S`] seconds, for a browser, whose EventSource and WebSocket cannot
/// send an `Authorization` header.
#[utoipa::path(post, path = "/auth/ticket", tag = "auth",
    responses((status = 200, description = "A ticket", body = TicketView)))]
async fn ticket(State(auth): State<AuthState>, p: Principal) -> ApiResult<Json<TicketView>> {
    let (user, session) = signed_user(&p)?;
    let now_s = Timestamp::now().as_millis().div_euclid(1000);
    let ticket = auth
        .keys
        .issue_ticket(user.id, session, now_s, crate::auth::TICKET_TTL_S);
    Ok(Json(TicketView {
        ticket,
        expires_in: crate::auth::TICKET_TTL_S,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ChangePasswordBody {
    current_password: String,
    new_password: String,
}

/// Changes one's password (the current one required); every other session of the user ends.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = ChangePasswordBody,
    responses(
        (status = 204, description = "Changed"),
        (status = 403, description = "The current password is wrong", body = ErrorBody)))]
async fn change_password(
    State(auth): State<AuthState>,
    p: Principal,
    JsonBody(body): JsonBody<ChangePasswordBody>,
) -> ApiResult<StatusCode> {
    let (user, current) = signed_user(&p)?;
    let right = body.current_password.len() <= password::MAX_LEN
        && password::verify(user.password_hash.clone(), body.current_password)
            .await
            .ok_or_else(busy)?;
    if !right {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            "current_password: wrong",
        ));
    }
    password::check_policy(&body.new_password)
        .map_err(|m| ApiError::unprocessable(format!("new_password: {m}")))?;
    let now = Timestamp::now();
    let hash = password::hash(body.new_password).await;
    auth.store
        .update_user(
            user.id,
            &UserUpdate {
                password_hash: Some(hash),
                ..UserUpdate::default()
            },
            now,
        )
        .await?;
    for s in auth.store.list_sessions(user.id, false).await? {
        if s.id != current {
            auth.store
                .revoke_session(s.id, "password changed", now)
                .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetRequestBody {
    email: String,
}

/// Starts a password reset: answers 202 the same whether the email is known or not. The token
/// goes to the user by mail when SMTP is configured; until then it is written to the server's
/// log (for the operator to pass on), the one secret that is, by design.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequestBody,
    responses((status = 202, description = "If the address is a user's, a token was sent", body = AcceptedView)))]
async fn request_reset(
    State(auth): State<AuthState>,
    JsonBody(body): JsonBody<ResetRequestBody>,
) -> ApiResult<(StatusCode, Json<AcceptedView>)> {
    let address = email(&body.email, "email")?;
    let now = Timestamp::now();
    if let Some(user) = auth.store.user_by_email(&address).await? {
        if user.active {
            let (token, hash) = secret::generate(secret::Kind::Reset);
            auth.store
                .create_reset_token(user.id, &hash, now.add_millis(RESET_TTL_MS), now)
                .await?;
            match &auth.mailer {
                Some(mailer) => send_reset(mailer.clone(), user, token),
                None => tracing::warn!(
                    user = %user.id,
                    reset_token = %token,
                    "password reset requested; no mail server is configured, so the token is logged: pass it to the user, who confirms with POST /api/v1/auth/password-reset/confirm within 30 minutes"
                ),
            }
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(AcceptedView {
            status: "if the address belongs to a user, a reset token was sent",
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResetConfirmBody {
    token: String,
    new_password: String,
}

/// Mails `token` to `user` in the background: the request is answered first, alike whether
/// the address is a user's or not; a failure is logged without the token.
fn send_reset(mailer: crate::mail::Mailer, user: pdm_core::store::User, token: String) {
    tokio::spawn(async move {
        let sent =
            match mailer.reset_message(&user.email, &user.name, &token, RESET_TTL_MS / 60_000) {
                Ok(message) => mailer.send(message).await,
                Err(e) => Err(e),
            };
        match sent {
            Ok(()) => tracing::info!(user = %user.id, "password reset token mailed"),
            Err(e) => tracing::warn!(
                user = %user.id,
                error = %e,
                "could not mail the password reset token; the user may ask again (check [smtp])"
            ),
        }
    });
}

/// Sets a new password with a reset token (single use); every session of the user ends.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirmBody,
    responses(
        (status = 204, description = "The password is set"),
        (status = 401, description = "Unknown, used or expired reset token", body = ErrorBody)))]
async fn confirm_reset(
    State(auth): State<AuthState>,
    JsonBody(body): JsonBody<ResetConfirmBody>,
) -> ApiResult<StatusCode> {
    password::check_policy(&body.new_password)
        .map_err(|m| ApiError::unprocessable(format!("new_password: {m}")))?;
    let now = Timestamp::now();
    let bad = || {
        unauthorized(
            "reset_invalid",
            "the reset token is unknown, used or expired",
        )
    };
    if secret::Kind::of(&body.token) != Some(secret::Kind::Reset) {
        return Err(bad());
    }
    let Some(user) = auth
        .store
        .consume_reset_token(&secret::hash(&body.token), now)
        .await?
    else {
        return Err(bad());
    };
    let hash = password::hash(body.new_password).await;
    auth.store
        .update_user(
            user,
            &UserUpdate {
                password_hash: Some(hash),
                ..UserUpdate::default()
            },
            now,
        )
        .await?;
    auth.store
        .revoke_user_sessions(user, "password reset", now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
