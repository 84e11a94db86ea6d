//! People, roles and tokens, for admins: `/users` (create, list, read, update, deactivate,
//! their sessions), `/roles` (the built-in ones read-only, custom ones from the permission set)
//! and `/tokens` (API tokens with a role, ingest tokens of one machine; the secret is answered
//! once, on creation).
//!
//! Deactivating a user or changing their role takes effect at the user's next request (the
//! user is read on every request); deactivating also ends their sessions.

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use pdm_core::store::{
    ApiTokenId, NewApiToken, NewUser, Permission, Role, TokenScope, User, UserId, UserUpdate,
};
use pdm_core::{MachineKey, Timestamp};
use serde::Deserialize;

use crate::api::auth::{email, path_id};
use crate::auth::{password, secret, AuthState, Principal};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PageRule, PagedQuery};
use crate::openapi::params::Id;
use crate::openapi::{ErrorBody, PageParams};
use crate::state::AppState;
use crate::views::{EndedView, NewTokenView, RoleView, SessionView, TokenView, UserView};
use utoipa::ToSchema;

/// Paging of `GET /users`: `limit` 1 to 500, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct UsersPage;

impl PageRule for UsersPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 500;
    const CURSORS: bool = true;
}

/// Paging of `GET /tokens`: `limit` 1 to 500, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct TokensPage;

impl PageRule for TokensPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 500;
    const CURSORS: bool = true;
}

/// Longest display name or role description accepted.
const MAX_TEXT: usize = 200;
/// Longest token name accepted (the store's limit).
const MAX_TOKEN_NAME: usize = 100;

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_users,
    create_user,
    get_user,
    update_user,
    user_sessions,
    end_user_sessions,
    list_roles,
    get_role,
    put_role,
    delete_role,
    list_tokens,
    create_token,
    revoke_token
))]
pub struct Doc;

/// `{name}` of a role.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RoleName {
    /// The role's name: lowercase letters, digits, `-` and `_`.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    name: String,
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users).post(create_user))
        .route("/users/{id}", get(get_user).patch(update_user))
        .route("/users/{id}/sessions", get(user_sessions))
        .route("/users/{id}/sessions/revoke", post(end_user_sessions))
        .route("/roles", get(list_roles))
        .route(
            "/roles/{name}",
            get(get_role).put(put_role).delete(delete_role),
        )
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}", delete(revoke_token))
}

fn text(raw: &str, field: &str) -> ApiResult<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "{field}: 1 to {MAX_TEXT} characters, no control characters"
        )));
    }
    Ok(t.to_owned())
}

/// A role name: lowercase letters, digits, `-`, `_`; 1 to 64.
fn role_name(raw: &str, field: &str) -> ApiResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(ApiError::unprocessable(format!(
            "{field}: {raw:?} is not a role name (lowercase letters, digits, '-' and '_', 1 to 64)"
        )));
    }
    Ok(raw.to_owned())
}

/// A role that exists: 422 naming `field` otherwise.
async fn existing_role(auth: &AuthState, raw: &str, field: &str) -> ApiResult<String> {
    let name = role_name(raw, field)?;
    match auth.store.get_role(&name).await {
        Ok(_) => Ok(name),
        Err(pdm_core::StoreError::NotFound(_)) => Err(ApiError::unprocessable(format!(
            "{field}: no role named '{name}'"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Refuses (403) what would grant more than the caller holds: `users:manage` and
/// `tokens:manage` never lead further than the caller's own permissions (no one makes
/// themselves, another user, a role or a token more powerful than they are).
fn within_caller(p: &Principal, permissions: &[Permission], what: &str) -> ApiResult<()> {
    let beyond: Vec<String> = permissions
        .iter()
        .filter(|x| !p.may(**x))
        .map(|x| x.to_string())
        .collect();
    if beyond.is_empty() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{what} grants {} that your role '{}' does not",
        beyond.join(", "),
        p.role
    )))
}

/// [`within_caller`] for the role named `name`.
async fn role_within_caller(
    auth: &AuthState,
    p: &Principal,
    name: &str,
    what: &str,
) -> ApiResult<()> {
    let role = auth.role(name).await?;
    within_caller(p, &role.permissions, what)
}

/// Refuses (409) a change that would leave no active user able to manage users: deactivating
/// the last one, or giving them a role without `users:manage` (then only the CLI's
/// `users create` could recover).
async fn keeps_a_manager(auth: &AuthState, target: &User, update: &UserUpdate) -> ApiResult<()> {
    let grants = |role: &Role| role.permissions.contains(&Permission::UsersManage);
    if !target.active || !grants(&auth.role(&target.role).await?) {
        return Ok(()); // not a manager now: nothing is lost
    }
    let stays_active = update.active.unwrap_or(true);
    let stays_manager = match &update.role {
        Some(r) => grants(&auth.role(r).await?),
        None => true,
    };
    if stays_active && stays_manager {
        return Ok(());
    }
    let mut after = None;
    loop {
        let page = auth.store.list_users(after, 500).await?;
        for u in &page {
            if u.id != target.id && u.active && grants(&auth.role(&u.role).await?) {
                return Ok(());
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => after = Some(last.id),
            _ => break,
        }
    }
    Err(ApiError::conflict(format!(
        "user {} is the last active user who may manage users: make another one first",
        target.id
    )))
}

/// User `id`, when the caller may act on it: its role grants nothing the caller lacks (404 for
/// an unknown user, 403 otherwise).
async fn target_within_caller(auth: &AuthState, p: &Principal, id: UserId) -> ApiResult<User> {
    let target = auth.store.get_user(id).await?;
    let what = format!("the role '{}' of user {id}", target.role);
    role_within_caller(auth, p, &target.role, &what).await?;
    Ok(target)
}

fn new_password(raw: &str, field: &str) -> ApiResult<()> {
    password::check_policy(raw).map_err(|m| ApiError::unprocessable(format!("{field}: {m}")))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateUserBody {
    /// Sign-in name.
    #[schema(format = Email, max_length = 254, example = "ana@example.com")]
    email: String,
    /// Display name.
    #[schema(min_length = 1, max_length = 200, example = "Ana")]
    name: String,
    /// At least 12 characters.
    #[schema(min_length = 12, max_length = 256)]
    password: String,
    /// A role that exists.
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "viewer")]
    role: String,
}

/// Create a user.
#[utoipa::path(post, path = "/users", tag = "users", request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "A user has this email", body = ErrorBody)))]
async fn create_user(
    State(auth): State<AuthState>,
    p: Principal,
    JsonBody(body): JsonBody<CreateUserBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let email = email(&body.email, "email")?;
    let name = text(&body.name, "name")?;
    new_password(&body.password, "password")?;
    let role = existing_role(&auth, &body.role, "role").await?;
    role_within_caller(&auth, &p, &role, &format!("role '{role}'")).await?;
    let hash = password::hash(body.password).await;
    let user = auth
        .store
        .create_user(
            &NewUser {
                email,
                name,
                role,
                password_hash: hash,
            },
            Timestamp::now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// List users, by id.
#[utoipa::path(get, path = "/users", tag = "users", params(PageParams<UsersPage>),
    responses((status = 200, description = "Users by id", body = [UserView])))]
async fn list_users(
    State(auth): State<AuthState>,
    query: PagedQuery<NoParams, UsersPage>,
) -> ApiResult<Json<Vec<UserView>>> {
    let after = query.page.cursor_id()?.map(UserId);
    let users = auth.store.list_users(after, query.page.limit).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

fn user_id(raw: &str) -> ApiResult<UserId> {
    path_id(raw, "user").map(UserId)
}

/// Read a user.
#[utoipa::path(get, path = "/users/{id}", tag = "users", params(Id),
    responses((status = 200, description = "The user", body = UserView)))]
async fn get_user(
    State(auth): State<AuthState>,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(auth.store.get_user(user_id(&id)?).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    name: Option<String>,
    role: Option<String>,
    active: Option<bool>,
    password: Option<String>,
}

/// Update a user: name, role, active (false deactivates and ends their sessions), password.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", params(Id), request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The user as updated", body = UserView),
        (status = 409, description = "You cannot deactivate yourself, nor the last active user who may manage users", body = ErrorBody)))]
async fn update_user(
    State(auth): State<AuthState>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateUserBody>,
) -> ApiResult<Json<UserView>> {
    let id = user_id(&id)?;
    let target = target_within_caller(&auth, &p, id).await?;
    if body.active == Some(false) && p.user().is_some_and(|(u, _)| u.id == id) {
        return Err(ApiError::conflict(
            "active: you cannot deactivate yourself (another admin can)",
        ));
    }
    let mut update = UserUpdate {
        active: body.active,
        ..UserUpdate::default()
    };
    if let Some(n) = &body.name {
        update.name = Some(text(n, "name")?);
    }
    if let Some(r) = &body.role {
        let role = existing_role(&auth, r, "role").await?;
        role_within_caller(&auth, &p, &role, &format!("role '{role}'")).await?;
        update.role = Some(role);
    }
    keeps_a_manager(&auth, &target, &update).await?;
    if let Some(pw) = body.password {
        new_password(&pw, "password")?;
        update.password_hash = Some(password::hash(pw).await);
    }
    let now = Timestamp::now();
    let user = auth.store.update_user(id, &update, now).await?;
    if body.active == Some(false) {
        auth.store
            .revoke_user_sessions(id, "user deactivated", now)
            .await?;
    } else if update.password_hash.is_some() {
        auth.store
            .revoke_user_sessions(id, "password set by an admin", now)
            .await?;
    }
    Ok(Json(user.into()))
}

/// A user's sessions.
#[utoipa::path(get, path = "/users/{id}/sessions", tag = "users", params(Id),
    responses((status = 200, description = "The user's sessions, ended ones too", body = [SessionView])))]
async fn user_sessions(
    State(auth): State<AuthState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let id = user_id(&id)?;
    auth.store.get_user(id).await?;
    let sessions = auth.store.list_sessions(id, true).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionView::new(s, None))
            .collect(),
    ))
}

/// Ends every session of a user (a lost laptop): 200 with how many. The sessions stay listed,
/// ended, so this is an action on them, not their deletion.
#[utoipa::path(post, path = "/users/{id}/sessions/revoke", tag = "users", params(Id),
    responses((status = 200, description = "How many sessions ended", body = EndedView)))]
async fn end_user_sessions(
    State(auth): State<AuthState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<Json<EndedView>> {
    let id = user_id(&id)?;
    target_within_caller(&auth, &p, id).await?;
    let n = auth
        .store
        .revoke_user_sessions(id, "ended by an admin", Timestamp::now())
        .await?;
    Ok(Json(EndedView { ended: n }))
}

/// List roles with their permissions.
#[utoipa::path(get, path = "/roles", tag = "users",
    responses((status = 200, description = "Every role", body = [RoleView])))]
async fn list_roles(State(auth): State<AuthState>) -> ApiResult<Json<Vec<RoleView>>> {
    let roles = auth.store.list_roles().await?;
    Ok(Json(roles.into_iter().map(RoleView::from).collect()))
}

/// Read a role.
#[utoipa::path(get, path = "/roles/{name}", tag = "users", params(RoleName),
    responses((status = 200, description = "The role", body = RoleView)))]
async fn get_role(
    State(auth): State<AuthState>,
    Path(name): Path<String>,
) -> ApiResult<Json<RoleView>> {
    let name = role_name(&name, "name")?;
    Ok(Json(auth.store.get_role(&name).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    description: String,
    permissions: Vec<String>,
}

/// Creates (201) or replaces (200) a custom role; 409 for a built-in one.
#[utoipa::path(put, path = "/roles/{name}", tag = "users", params(RoleName), request_body = RoleBody,
    responses(
        (status = 200, description = "Replaced", body = RoleView),
        (status = 201, description = "Created", body = RoleView),
        (status = 409, description = "A built-in role cannot be changed", body = ErrorBody)))]
async fn put_role(
    State(auth): State<AuthState>,
    p: Principal,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    let name = role_name(&name, "name")?;
    let description = text(&body.description, "description")?;
    let mut permissions = Vec::with_capacity(body.permissions.len());
    for (i, p) in body.permissions.iter().enumerate() {
        let p = Permission::from_str(p)
            .map_err(|m| ApiError::unprocessable(format!("permissions[{i}]: {m}")))?;
        if !permissions.contains(&p) {
            permissions.push(p);
        }
    }
    permissions.sort();
    within_caller(&p, &permissions, &format!("role '{name}'"))?;
    let role = Role {
        name,
        description,
        permissions,
        builtin: false,
    };
    let created = auth.store.put_role(&role).await?;
    auth.roles_changed();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(role.into())))
}

/// Delete a custom role.
#[utoipa::path(delete, path = "/roles/{name}", tag = "users", params(RoleName),
    responses(
        (status = 204, description = "Deleted"),
        (status = 409, description = "Built in, or still held by a user or token", body = ErrorBody)))]
async fn delete_role(
    State(auth): State<AuthState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let name = role_name(&name, "name")?;
    auth.store.delete_role(&name).await?;
    auth.roles_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// List API and ingest tokens.
#[utoipa::path(get, path = "/tokens", tag = "tokens", params(PageParams<TokensPage>),
    responses((status = 200, description = "A page of API and ingest tokens by id, revoked ones included (never a secret)", body = [TokenView])))]
async fn list_tokens(
    State(auth): State<AuthState>,
    query: PagedQuery<NoParams, TokensPage>,
) -> ApiResult<Json<Vec<TokenView>>> {
    let after = query.page.cursor_id()?.map(ApiTokenId);
    let tokens = auth.store.api_tokens_after(after, query.page.limit).await?;
    Ok(Json(tokens.into_iter().map(TokenView::from).collect()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    /// What it is for.
    #[schema(min_length = 1, max_length = 100, example = "scada bridge")]
    name: String,
    /// An API token's role (give this or `machine`).
    #[schema(pattern = "^[a-z0-9_-]{1,64}$", example = "viewer")]
    role: Option<String>,
    /// An ingest token's machine (give this or `role`).
    #[schema(value_type = Option<MachineKey>)]
    machine: Option<String>,
    /// Days until it stops working, 1 to 3650; never when left out.
    #[schema(minimum = 1, maximum = 3650)]
    expires_in_days: Option<u32>,
}

/// Creates an API token (`role`) or a device's ingest token (`machine`): 201 with the secret,
/// shown this once.
#[utoipa::path(post, path = "/tokens", tag = "tokens", request_body = TokenBody,
    responses((status = 201, description = "Created; the secret is shown this once", body = NewTokenView)))]
async fn create_token(
    State(auth): State<AuthState>,
    p: Principal,
    JsonBody(body): JsonBody<TokenBody>,
) -> ApiResult<(StatusCode, Json<NewTokenView>)> {
    let name = text(&body.name, "name")?;
    if name.chars().count() > MAX_TOKEN_NAME {
        return Err(ApiError::unprocessable(format!(
            "name: at most {MAX_TOKEN_NAME} characters"
        )));
    }
    let (scope, kind) = match (&body.role, &body.machine) {
        (Some(r), None) => {
            let role = existing_role(&auth, r, "role").await?;
            role_within_caller(&auth, &p, &role, &format!("role '{role}'")).await?;
            (TokenScope::Api { role }, secret::Kind::Api)
        }
        (None, Some(m)) => {
            let machine =
                MachineKey::new(m).map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?;
            (TokenScope::Ingest { machine }, secret::Kind::Ingest)
        }
        _ => return Err(ApiError::unprocessable(
            "role, machine: give exactly one (an API token has a role, an ingest token a machine)",
        )),
    };
    let now = Timestamp::now();
    let expires_at = match body.expires_in_days {
        Some(0) | Some(3651..) => {
            return Err(ApiError::unprocessable(
                "expires_in_days: 1 to 3650, or absent for a token that does not expire",
            ))
        }
        Some(d) => Some(now.add_millis(i64::from(d) * 86_400_000)),
        None => None,
    };
    let (token, hash) = secret::generate(kind);
    let created = auth
        .store
        .create_api_token(&NewApiToken {
            name,
            scope,
            hash,
            prefix: secret::display_prefix(&token),
            created_by: p.user().map(|(u, _)| u.id),
            at: now,
            expires_at,
        })
        .await
        .map_err(|e| match e {
            pdm_core::StoreError::NotFound(what) => {
                ApiError::unprocessable(format!("machine: {what} not found"))
            }
            other => other.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenView {
            token: created.into(),
            secret: token,
        }),
    ))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "tokens", params(Id),
    responses(
        (status = 204, description = "Revoked"),
        (status = 409, description = "Revoked already", body = ErrorBody)))]
async fn revoke_token(
    State(auth): State<AuthState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = ApiTokenId(path_id(&id, "token")?);
    if !auth.store.revoke_api_token(id, Timestamp::now()).await? {
        return Err(ApiError::conflict(format!("token {id} is revoked already")));
    }
    Ok(StatusCode::NO_CONTENT)
}
