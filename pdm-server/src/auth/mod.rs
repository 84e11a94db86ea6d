//! Authentication and authorization (issue 11).
//!
//! Every request to `/api/v1` goes through [`require`]: the route's declared [`Access`] is
//! looked up in [`policy`] by method and matched path (a route missing there answers 500 and
//! fails the policy test), the bearer credential is resolved to a [`Principal`], and the
//! principal's role must grant the route's permission: 401 without valid credentials (with a
//! reason code in `error.details.reason`), 403 when the role does not grant it.
//!
//! Credentials, all as `Authorization: Bearer ...`:
//!
//! - an access token ([`jwt`]): a user signed in with `POST /api/v1/auth/login`; the user and
//!   the session are read on every request, so deactivating a user, changing their role or
//!   ending the session takes effect at once, not when the token expires;
//! - an API token (`pdm_at_...`, [`secret`]): a script, with the token's role;
//! - an ingest token (`pdm_it_...`): a device, which may post readings of its own machine and
//!   nothing else.
//!
//! Roles are cached for [`ROLE_CACHE_TTL`] (an edit through this worker clears the cache at
//! once; other workers follow within the TTL).

pub mod client;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod policy;
pub mod secret;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pdm_core::store::{ApiTokenId, Permission, Role, SessionId, Store, TokenScope, User};
use pdm_core::{MachineKey, StoreError, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ErrorCode};
pub use policy::Access;

/// How long a role read from the store is trusted.
pub const ROLE_CACHE_TTL: Duration = Duration::from_secs(5);

/// `[auth]`: sign-in sessions and tokens. Its `Debug` hides the signing key and the admin's
/// password.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Seconds an access token lives (15 minutes).
    pub access_ttl_s: u64,
    /// Seconds a refresh token lives unused (each refresh issues one with a new lease).
    pub refresh_ttl_s: u64,
    /// Seconds a session lives at most, however often it is refreshed; then the user signs in
    /// again.
    pub session_max_s: u64,
    /// The `iss` of access tokens.
    pub issuer: String,
    /// The `aud` of access tokens.
    pub audience: String,
    /// The signing key (base64 of at least 32 bytes, `PDM_AUTH_SIGNING_KEY`): give every
    /// worker the same one. Absent: generated into `<data_dir>/auth-keys.json`.
    pub signing_key: Option<String>,
    /// Failed sign-ins an account may have in an hour before further attempts are refused
    /// (429) until the hour has passed.
    pub max_failures_per_account: u64,
    /// Failed sign-ins a client address may have in an hour.
    pub max_failures_per_address: u64,
    /// The reverse proxies in front of the server (addresses or CIDR ranges): behind one, the
    /// client's address is taken from `X-Forwarded-For` ([`client`]). Empty: the peer.
    pub trusted_proxies: Vec<String>,
    /// The first admin, from `PDM_ADMIN_EMAIL` and `PDM_ADMIN_PASSWORD` (never from the file):
    /// created at start when no user has that email.
    #[serde(skip)]
    pub admin: Option<AdminBootstrap>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("access_ttl_s", &self.access_ttl_s)
            .field("refresh_ttl_s", &self.refresh_ttl_s)
            .field("session_max_s", &self.session_max_s)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "signing_key",
                &self.signing_key.as_ref().map(|_| "<redacted>"),
            )
            .field("max_failures_per_account", &self.max_failures_per_account)
            .field("max_failures_per_address", &self.max_failures_per_address)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("admin", &self.admin)
            .finish()
    }
}

/// The admin created at start (`PDM_ADMIN_EMAIL`, `PDM_ADMIN_PASSWORD`).
#[derive(Clone)]
pub struct AdminBootstrap {
    /// The email.
    pub email: String,
    /// The password (checked against the policy at start).
    pub password: String,
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminBootstrap")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// Longest a refresh token may live unused: 90 days.
pub const MAX_REFRESH_TTL_S: u64 = 90 * 86_400;
/// Longest a session may live: a year.
pub const MAX_SESSION_S: u64 = 366 * 86_400;

/// `secs` seconds as milliseconds, for lifetimes checked against the limits above.
pub fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000)
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_s: 15 * 60,
            refresh_ttl_s: 7 * 24 * 3600,
            session_max_s: 30 * 24 * 3600,
            issuer: "pdm".into(),
            audience: "pdm-api".into(),
            signing_key: None,
            max_failures_per_account: 100,
            max_failures_per_address: 300,
            trusted_proxies: Vec::new(),
            admin: None,
        }
    }
}

impl AuthConfig {
    /// Refuses settings that cannot work, naming them.
    pub fn check(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::ConfigError;
        if self.access_ttl_s == 0 || self.access_ttl_s > 24 * 3600 {
            return Err(ConfigError::new(
                "auth.access_ttl_s",
                "must be between 1 and 86400 seconds",
            ));
        }
        if self.refresh_ttl_s < self.access_ttl_s || self.refresh_ttl_s > MAX_REFRESH_TTL_S {
            return Err(ConfigError::new(
                "auth.refresh_ttl_s",
                format!("must be at least auth.access_ttl_s and at most {MAX_REFRESH_TTL_S} seconds (90 days)"),
            ));
        }
        if self.session_max_s < self.refresh_ttl_s || self.session_max_s > MAX_SESSION_S {
            return Err(ConfigError::new(
                "auth.session_max_s",
                format!("must be at least auth.refresh_ttl_s and at most {MAX_SESSION_S} seconds (a year)"),
            ));
        }
        if let Some(a) = &self.admin {
            if !a.email.contains('@') {
                return Err(ConfigError::new("PDM_ADMIN_EMAIL", "not an email address"));
            }
            if let Err(m) = password::check_policy(&a.password) {
                return Err(ConfigError::new("PDM_ADMIN_PASSWORD", m));
            }
        }
        for (i, p) in self.trusted_proxies.iter().enumerate() {
            let setting = || format!("auth.trusted_proxies[{i}]");
            let range = client::Cidr::parse(p).map_err(|e| ConfigError::new(setting(), e))?;
            if range.prefix_len() == 0 {
                return Err(ConfigError::new(
                    setting(),
                    format!(
                        "{p:?} trusts every address: any client could then name its own \
                         address in X-Forwarded-For; list the proxies' addresses or ranges"
                    ),
                ));
            }
        }
        if self.max_failures_per_account == 0 || self.max_failures_per_address == 0 {
            return Err(ConfigError::new(
                "auth.max_failures_per_account",
                "the failure limits must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Actor {
    /// A person signed in.
    User {
        /// The user (with the hash: never answered, see the views).
        user: Box<User>,
        /// The session the access token belongs to.
        session: SessionId,
    },
    /// A script with an API token.
    Token {
        /// The token.
        id: ApiTokenId,
        /// Its name.
        name: String,
    },
    /// A device with an ingest token of its machine.
    Device {
        /// The token.
        id: ApiTokenId,
        /// The machine it may post for.
        machine: MachineKey,
    },
}

/// An authenticated caller and what it may do; handlers take it as an extractor.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who.
    pub actor: Actor,
    /// What it may do (a device's: only `telemetry:write`).
    pub permissions: Vec<Permission>,
    /// The role's name (`device` for ingest tokens).
    pub role: String,
}

impl Principal {
    /// The name that goes into alarm events and logs: the user's email, `token:<name>`, or
    /// `device:<machine>`.
    pub fn actor_name(&self) -> String {
        match &self.actor {
            Actor::User { user, .. } => user.email.clone(),
            Actor::Token { name, .. } => format!("token:{name}"),
            Actor::Device { machine, .. } => format!("device:{machine}"),
        }
    }

    /// Whether it may do `p`.
    pub fn may(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }

    /// The signed-in user, for routes about oneself.
    pub fn user(&self) -> Option<(&User, SessionId)> {
        match &self.actor {
            Actor::User { user, session } => Some((user, *session)),
            _ => None,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a route takes a principal but is not authenticated"))
    }
}

/// What authentication needs: the store, the keys, the settings, the role cache.
#[derive(Clone)]
pub struct AuthState {
    /// Users, sessions, tokens, roles.
    pub store: Arc<dyn Store>,
    /// The access-token keys.
    pub keys: Arc<jwt::KeyRing>,
    /// The settings.
    pub config: Arc<AuthConfig>,
    roles: Arc<RwLock<HashMap<String, (Role, Instant)>>>,
    /// Where reset tokens go: by mail when `[smtp]` is configured, otherwise to the log.
    pub mailer: Option<crate::mail::Mailer>,
    /// `config.trusted_proxies`, read.
    pub trusted_proxies: Arc<Vec<client::Cidr>>,
    /// The sign-in policy in force (`auth.*` system settings: lifetimes, failure limits).
    pub settings: crate::settings::SettingsHandle,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("kid", &self.keys.current_kid())
            .finish_non_exhaustive()
    }
}

/// The key ring of `config`: its configured key, or the key file under `data_dir`.
pub fn key_ring(
    config: &AuthConfig,
    data_dir: &std::path::Path,
) -> Result<jwt::KeyRing, keys::KeyError> {
    let keys = match &config.signing_key {
        Some(secret) => keys::configured(secret)?,
        None => keys::load_or_create(&keys::path(data_dir))?,
    };
    Ok(jwt::KeyRing::new(keys, &config.issuer, &config.audience))
}

/// Authentication for a starting server: its key ring, the built-in roles written, and the
/// first admin created from `config.auth.admin` when no user has that email.
pub async fn start(
    store: Arc<dyn Store>,
    config: &crate::config::ServerConfig,
) -> anyhow::Result<AuthState> {
    use anyhow::Context as _;
    let ring = key_ring(&config.auth, &config.data_dir)?;
    password::warm_up().await;
    store
        .sync_builtin_roles(&Role::builtin())
        .await
        .context("cannot write the built-in roles")?;
    if let Some(admin) = &config.auth.admin {
        let email = admin.email.trim().to_lowercase();
        if store.user_by_email(&email).await?.is_none() {
            let hash = password::hash(admin.password.clone()).await;
            let user = store
                .create_user(
                    &pdm_core::store::NewUser {
                        email: email.clone(),
                        name: "Administrator".into(),
                        role: "admin".into(),
                        password_hash: hash,
                    },
                    Timestamp::now(),
                )
                .await
                .context("cannot create the admin of PDM_ADMIN_EMAIL")?;
            tracing::info!(user = %user.id, email = %email, "admin created (PDM_ADMIN_EMAIL)");
        }
    } else if store.count_users().await? == 0 {
        tracing::warn!("no users yet: set PDM_ADMIN_EMAIL and PDM_ADMIN_PASSWORD, or run `pdm-server users create --role admin`, to be able to sign in");
    }
    let mailer = match &config.smtp {
        Some(smtp) => Some(crate::mail::Mailer::new(smtp)?),
        None => None,
    };
    Ok(AuthState::new(store, ring, config.auth.clone()).with_mailer(mailer))
}

/// How often [`prune`] runs, and how old what it deletes must be.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
/// Failed sign-ins, spent or expired reset tokens and the refresh tokens of ended sessions are
/// kept this long (failures count for an hour; the rest is kept a day for a look back).
pub const PRUNE_AFTER_MS: i64 = 24 * 3_600 * 1_000;

/// Deletes what sign-in no longer needs ([`AccessStore::prune_access`]) every
/// [`PRUNE_EVERY`], until `stop`. Sessions themselves are kept (the history of sign-ins).
///
/// [`AccessStore::prune_access`]: pdm_core::store::AccessStore::prune_access
pub async fn prune(store: Arc<dyn Store>, mut stop: pdm_core::Shutdown) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let before = Timestamp::now().add_millis(-PRUNE_AFTER_MS);
        match store.prune_access(before).await {
            Ok(n) if n > 0 => tracing::debug!(rows = n, "sign-in records pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune sign-in records"),
        }
    }
}

/// A 401 with its reason code.
pub fn unauthorized(reason: &str, message: &str) -> ApiError {
    ApiError::unauthorized(message.to_owned()).with_details(json!({ "reason": reason }))
}

impl AuthState {
    /// Authentication over `store` with `keys` and `config`.
    pub fn new(store: Arc<dyn Store>, keys: jwt::KeyRing, config: AuthConfig) -> Self {
        // Checked with the configuration; one that does not read is left out here.
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .filter_map(|p| client::Cidr::parse(p).ok())
            .collect();
        let settings = crate::settings::SettingsHandle::fixed(&crate::config::ServerConfig {
            auth: config.clone(),
            ..Default::default()
        });
        Self {
            settings,
            trusted_proxies: Arc::new(trusted_proxies),
            store,
            keys: Arc::new(keys),
            config: Arc::new(config),
            roles: Arc::default(),
            mailer: None,
        }
    }

    /// The same, with the sign-in policy read from `settings` at each use.
    pub fn with_settings(mut self, settings: crate::settings::SettingsHandle) -> Self {
        self.settings = settings;
        self
    }

    /// The same, sending reset tokens with `mailer`.
    pub fn with_mailer(mut self, mailer: Option<crate::mail::Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// The role `name`, from the cache when fresh.
    pub async fn role(&self, name: &str) -> Result<Role, ApiError> {
        if let Ok(cache) = self.roles.read() {
            if let Some((role, at)) = cache.get(name) {
                if at.elapsed() < ROLE_CACHE_TTL {
                    return Ok(role.clone());
                }
            }
        }
        let role = self.store.get_role(name).await?;
        if let Ok(mut cache) = self.roles.write() {
            cache.insert(name.to_owned(), (role.clone(), Instant::now()));
        }
        Ok(role)
    }

    /// Forgets the cached roles (after a role was edited or deleted).
    pub fn roles_changed(&self) {
        if let Ok(mut cache) = self.roles.write() {
            cache.clear();
        }
    }

    /// The principal of bearer credential `token` at `now`.
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Principal, ApiError> {
        match secret::Kind::of(token) {
            Some(secret::Kind::Api) | Some(secret::Kind::Ingest) => {
                self.long_lived(token, now).await
            }
            Some(secret::Kind::Refresh) | Some(secret::Kind::Reset) => Err(unauthorized(
                "token_kind",
                "this token cannot authenticate a request: send the access token",
            )),
            None => self.access(token, now).await,
        }
    }

    async fn access(&self, token: &str, now: Timestamp) -> Result<Principal, ApiError> {
        let claims = self
            .keys
            .verify(token, now.as_millis().div_euclid(1000))
            .map_err(|e| unauthorized(e.code(), &e.to_string()))?;
        self.signed_in(&claims, now).await
    }

    /// The principal of push ticket `ticket` (from `POST /auth/ticket`) at `now`.
    pub async fn authenticate_ticket(
        &self,
        ticket: &str,
        now: Timestamp,
    ) -> Result<Principal, ApiError> {
        let claims = self
            .keys
            .verify_ticket(ticket, now.as_millis().div_euclid(1000))
            .map_err(|e| unauthorized(e.code(), &format!("ticket: {e}")))?;
        self.signed_in(&claims, now).await
    }

    /// The signed-in user of valid `claims`, checked against the store now.
    async fn signed_in(&self, claims: &jwt::Claims, now: Timestamp) -> Result<Principal, ApiError> {
        let user_id = claims
            .user()
            .ok_or_else(|| unauthorized("token_claims", "bad subject"))?;
        let user = match self.store.get_user(user_id).await {
            Ok(u) => u,
            Err(StoreError::NotFound(_)) => {
                return Err(unauthorized(
                    "user_unknown",
                    "the token's user no longer exists",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if !user.active {
            return Err(unauthorized("user_inactive", "the user is deactivated"));
        }
        let session = match self.store.get_session(claims.session()).await {
            Ok(s) => s,
            Err(StoreError::NotFound(_)) => {
                return Err(unauthorized(
                    "session_ended",
                    "the session has ended; sign in again",
                ))
            }
            Err(e) => return Err(e.into()),
        };
        if session.user != user.id || session.revoked_at.is_some() || session.expires_at <= now {
            return Err(unauthorized(
                "session_ended",
                "the session has ended; sign in again",
            ));
        }
        let role = self.role(&user.role).await?;
        Ok(Principal {
            role: role.name.clone(),
            permissions: role.permissions,
            actor: Actor::User {
                user: Box::new(user),
                session: session.id,
            },
        })
    }

    async fn long_lived(&self, token: &str, now: Timestamp) -> Result<Principal, ApiError> {
        let hash = secret::hash(token);
        let Some(t) = self.store.api_token_by_hash(&hash).await? else {
            return Err(unauthorized("token_unknown", "no such token"));
        };
        if t.revoked_at.is_some() {
            return Err(unauthorized("token_revoked", "the token was revoked"));
        }
        if t.expires_at.is_some_and(|e| e <= now) {
            return Err(unauthorized("token_expired", "the token has expired"));
        }
        if let Some(owner) = t.created_by {
            // A token made by someone since deactivated stops with them.
            match self.store.get_user(owner).await {
                Ok(u) if u.active => {}
                Ok(_) | Err(StoreError::NotFound(_)) => {
                    return Err(unauthorized(
                        "token_owner_inactive",
                        "the user who made this token is deactivated",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        // The store records a use at most once a minute: only then is a write worth a task.
        if t.last_used_at
            .is_none_or(|last| now.as_millis() - last.as_millis() >= 60_000)
        {
            let (store, id) = (self.store.clone(), t.id);
            tokio::spawn(async move {
                if let Err(e) = store.touch_api_token(id, now).await {
                    tracing::debug!(token = %id, error = %e, "cannot record a token's use");
                }
            });
        }
        match t.scope {
            TokenScope::Api { role } => {
                let role = self.role(&role).await?;
                Ok(Principal {
                    role: role.name.clone(),
                    permissions: role.permissions,
                    actor: Actor::Token {
                        id: t.id,
                        name: t.name,
                    },
                })
            }
            TokenScope::Ingest { machine } => Ok(Principal {
                role: "device".into(),
                permissions: vec![Permission::TelemetryWrite],
                actor: Actor::Device { id: t.id, machine },
            }),
        }
    }
}

/// The bearer credential of a request, if it has one.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| unauthorized("credentials_malformed", "Authorization is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(unauthorized(
            "credentials_malformed",
            "Authorization must be `Bearer <token>`",
        )),
    }
}

/// The middleware on every API route: the route's declared access, then the credential.
pub async fn require(
    State(auth): State<AuthState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let Some(access) = policy::access(parts.method.as_str(), &path) else {
        let allowed = policy::methods(&path);
        if allowed.is_empty() {
            return Err(ApiError::internal(format!(
                "route {} {path} declares no permission",
                parts.method
            )));
        }
        // A method the route does not have (TRACE, OPTIONS, PUT on a list, ...).
        let mut resp = ApiError::of(
            ErrorCode::MethodNotAllowed,
            format!(
                "{} is not a method of {path}; use {}",
                parts.method,
                allowed.join(", ")
            ),
        )
        .into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&allowed.join(", ")) {
            resp.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        return Ok(resp);
    };
    if access == Access::Public {
        return Ok(next.run(Request::from_parts(parts, body)).await);
    }
    let principal = match bearer(&parts)? {
        Some(token) => auth.authenticate(token, Timestamp::now()).await?,
        None => match take_ticket(&mut parts, &path)? {
            // A browser's EventSource and WebSocket cannot send headers: the push routes take
            // a short-lived ticket in the query instead (never a long-lived token).
            Some(ticket) => auth.authenticate_ticket(&ticket, Timestamp::now()).await?,
            None => {
                return Err(unauthorized(
                    "credentials_missing",
                    "sign in: send `Authorization: Bearer <token>`",
                ))
            }
        },
    };
    if let Access::Need(p) = access {
        if !principal.may(p) {
            // A refusal for want of a permission is on record, reads included.
            crate::audit::append(
                &*auth.store,
                pdm_core::store::NewAuditEntry {
                    at: Timestamp::now(),
                    actor: principal.actor_name(),
                    role: Some(principal.role.clone()),
                    action: crate::audit::action(&parts.method, &path),
                    target: crate::audit::target(parts.uri.path()),
                    fields: Vec::new(),
                    client_addr: crate::api::auth::client_of(&parts, &auth),
                    status: 403,
                },
            )
            .await;
            return Err(ApiError::of(
                ErrorCode::Forbidden,
                format!("the role '{}' does not grant {p}", principal.role),
            ));
        }
    }
    if let Actor::Device { machine, .. } = &principal.actor {
        // A device's token is for its own machine's readings only.
        let params = RawPathParams::from_request_parts(&mut parts, &())
            .await
            .ok();
        let same = params
            .as_ref()
            .and_then(|ps| ps.iter().find(|(k, _)| *k == "machine"))
            .is_some_and(|(_, v)| v == machine.as_str());
        if !same {
            return Err(ApiError::forbidden(format!(
                "this ingest token posts readings of machine '{machine}' only"
            )));
        }
    }
    parts.extensions.insert(principal);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// Seconds a push ticket lives.
pub const TICKET_TTL_S: i64 = 30;

/// The `ticket` of a push route's query (`/events`, `/ws`), taken out of the URI so the route
/// sees only its own parameters; `None` elsewhere or without one.
fn take_ticket(parts: &mut Parts, path: &str) -> Result<Option<String>, ApiError> {
    let push = matches!(
        path.strip_prefix("/api/v1").unwrap_or(path),
        "/events" | "/ws"
    );
    let Some(query) = parts.uri.query().filter(|_| push) else {
        return Ok(None);
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|e| ApiError::bad_request(format!("the query cannot be read: {e}")))?;
    let (tickets, rest): (Vec<_>, Vec<_>) = pairs.into_iter().partition(|(k, _)| k == "ticket");
    let Some((_, ticket)) = tickets.into_iter().next() else {
        return Ok(None);
    };
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|e| ApiError::internal(format!("re-encoding a query: {e}")))?;
    let uri = if rest.is_empty() {
        parts.uri.path().to_owned()
    } else {
        format!("{}?{rest}", parts.uri.path())
    };
    parts.uri = uri
        .parse()
        .map_err(|e| ApiError::internal(format!("rebuilding a URI: {e}")))?;
    Ok(Some(ticket))
}

use axum::extract::FromRequestParts as _;
