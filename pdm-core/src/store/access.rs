//! People and their credentials (issue 11): users, roles and their permissions, sign-in
//! sessions (each a family of single-use refresh tokens), API and ingest tokens, password-reset
//! tokens and the record of failed sign-ins that throttling reads.
//!
//! The server owns the rules: how passwords are hashed, what tokens look like and how long they
//! live, how many failures throttle. This trait keeps what it decided, and never a secret: a
//! password is kept as its Argon2id hash (a PHC string), every token as the SHA-256 of its
//! random bytes ([`TokenHash`]), so a copy of the database signs nobody in.
//!
//! Rotation is one atomic step ([`AccessStore::rotate_refresh`]): the presented token is spent
//! and its successor stored in one transaction, and a token presented a second time (a stolen
//! copy, or the legitimate one after the thief used it) revokes its whole session, as RFC 9700
//! §4.14.2 asks.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::Timestamp;

/// What a request may do. Every route of the server declares the one it needs; a role is a set
/// of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum Permission {
    /// Read machines, sensors, readings, predictions and live status; subscribe to live push.
    #[serde(rename = "machines:read")]
    MachinesRead,
    /// Create, edit and delete machines and sensors.
    #[serde(rename = "machines:write")]
    MachinesWrite,
    /// Post readings over HTTP (devices hold only this, for their own machine).
    #[serde(rename = "telemetry:write")]
    TelemetryWrite,
    /// Read models and training jobs, download model files.
    #[serde(rename = "models:read")]
    ModelsRead,
    /// Train, import and activate models; cancel and retry jobs.
    #[serde(rename = "models:write")]
    ModelsWrite,
    /// Read alarms, their events, rules and performance.
    #[serde(rename = "alarms:read")]
    AlarmsRead,
    /// Acknowledge, shelve and unshelve alarms; put machines out of service and back.
    #[serde(rename = "alarms:act")]
    AlarmsAct,
    /// Create, edit and delete alarm rules.
    #[serde(rename = "alarm_rules:write")]
    AlarmRulesWrite,
    /// Read webhook endpoints (never their secrets unless also allowed to write) and deliveries.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Create, edit, delete, rotate, test and redeliver webhooks.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    /// Read operational state: metrics, dead letters.
    #[serde(rename = "ops:read")]
    OpsRead,
    /// Manage users, their sessions and roles.
    #[serde(rename = "users:manage")]
    UsersManage,
    /// Create and revoke API and ingest tokens.
    #[serde(rename = "tokens:manage")]
    TokensManage,
    /// Read work orders, their history and the code lists.
    #[serde(rename = "work_orders:read")]
    WorkOrdersRead,
    /// Create and change work orders (assign, progress, resolve with a label).
    #[serde(rename = "work_orders:write")]
    WorkOrdersWrite,
    /// Edit the code lists of findings (failure modes, causes, remedies).
    #[serde(rename = "work_order_codes:write")]
    WorkOrderCodesWrite,
    /// Read the audit log.
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Comment on work orders and alarms (and edit or delete one's own comments).
    #[serde(rename = "comments:write")]
    CommentsWrite,
    /// Edit or delete anyone's comments.
    #[serde(rename = "comments:moderate")]
    CommentsModerate,
    /// Attach files to work orders, alarms and one's own comments (and delete one's own).
    #[serde(rename = "attachments:write")]
    AttachmentsWrite,
    /// Delete anyone's attachments.
    #[serde(rename = "attachments:moderate")]
    AttachmentsModerate,
    /// Read and change the system settings.
    #[serde(rename = "settings:manage")]
    SettingsManage,
}

impl Permission {
    /// Every permission, in a fixed order.
    pub const ALL: [Permission; 22] = [
        Permission::MachinesRead,
        Permission::MachinesWrite,
        Permission::TelemetryWrite,
        Permission::ModelsRead,
        Permission::ModelsWrite,
        Permission::AlarmsRead,
        Permission::AlarmsAct,
        Permission::AlarmRulesWrite,
        Permission::WebhooksRead,
        Permission::WebhooksWrite,
        Permission::OpsRead,
        Permission::UsersManage,
        Permission::TokensManage,
        Permission::WorkOrdersRead,
        Permission::WorkOrdersWrite,
        Permission::WorkOrderCodesWrite,
        Permission::AuditRead,
        Permission::CommentsWrite,
        Permission::CommentsModerate,
        Permission::AttachmentsWrite,
        Permission::AttachmentsModerate,
        Permission::SettingsManage,
    ];

    /// Its name, as in JSON (`machines:read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::MachinesRead => "machines:read",
            Permission::MachinesWrite => "machines:write",
            Permission::TelemetryWrite => "telemetry:write",
            Permission::ModelsRead => "models:read",
            Permission::ModelsWrite => "models:write",
            Permission::AlarmsRead => "alarms:read",
            Permission::AlarmsAct => "alarms:act",
            Permission::AlarmRulesWrite => "alarm_rules:write",
            Permission::WebhooksRead => "webhooks:read",
            Permission::WebhooksWrite => "webhooks:write",
            Permission::OpsRead => "ops:read",
            Permission::UsersManage => "users:manage",
            Permission::TokensManage => "tokens:manage",
            Permission::WorkOrdersRead => "work_orders:read",
            Permission::WorkOrdersWrite => "work_orders:write",
            Permission::WorkOrderCodesWrite => "work_order_codes:write",
            Permission::AuditRead => "audit:read",
            Permission::CommentsWrite => "comments:write",
            Permission::CommentsModerate => "comments:moderate",
            Permission::AttachmentsWrite => "attachments:write",
            Permission::AttachmentsModerate => "attachments:moderate",
            Permission::SettingsManage => "settings:manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown permission '{s}' (one of {})", names.join(", "))
            })
    }
}

/// A role: a named set of permissions. The built-in ones ([`Role::builtin`]) are written by
/// [`AccessStore::sync_builtin_roles`] at every start and cannot be edited or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Its name: lowercase letters, digits, `-` and `_`, 1 to 64 characters.
    pub name: String,
    /// What it is for, in words.
    pub description: String,
    /// What it grants, sorted, without repeats.
    pub permissions: Vec<Permission>,
    /// True for admin, engineer and viewer.
    pub builtin: bool,
}

impl Role {
    /// The built-in roles: `admin` (everything), `engineer` (everything but people and tokens)
    /// and `viewer` (reads, without webhooks and operations).
    pub fn builtin() -> Vec<Role> {
        use Permission::*;
        let engineer = Permission::ALL
            .into_iter()
            .filter(|p| {
                !matches!(
                    p,
                    UsersManage
                        | TokensManage
                        | AuditRead
                        | CommentsModerate
                        | AttachmentsModerate
                        | SettingsManage
                )
            })
            .collect();
        vec![
            Role {
                name: "admin".into(),
                description: "Everything, people and tokens included".into(),
                permissions: Permission::ALL.to_vec(),
                builtin: true,
            },
            Role {
                name: "engineer".into(),
                description:
                    "Machines, models, alarms, rules, webhooks and work orders; not people or tokens"
                        .into(),
                permissions: engineer,
                builtin: true,
            },
            Role {
                name: "viewer".into(),
                description: "Reads machines, models, alarms and work orders".into(),
                permissions: vec![MachinesRead, ModelsRead, AlarmsRead, WorkOrdersRead],
                builtin: true,
            },
        ]
    }

    /// Whether the role grants `p`.
    pub fn grants(&self, p: Permission) -> bool {
        self.permissions.contains(&p)
    }
}

/// The id of a user, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The sign-in name, stored lowercased (unique without regard to case).
    pub email: String,
    /// The name shown to others.
    pub name: String,
    /// The role's name.
    pub role: String,
    /// False once deactivated: the user cannot sign in and every token of theirs stops working.
    pub active: bool,
    /// The Argon2id hash of the password, as a PHC string. Never leaves the server.
    pub password_hash: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
    /// The last successful sign-in.
    pub last_sign_in: Option<Timestamp>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("active", &self.active)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("last_sign_in", &self.last_sign_in)
            .finish()
    }
}

/// A user to create.
#[derive(Clone)]
pub struct NewUser {
    /// The sign-in name (stored lowercased).
    pub email: String,
    /// The name shown to others.
    pub name: String,
    /// An existing role's name.
    pub role: String,
    /// The password's Argon2id hash.
    pub password_hash: String,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UserUpdate {
    /// A new display name.
    pub name: Option<String>,
    /// A new role (an existing role's name).
    pub role: Option<String>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// A new password hash.
    pub password_hash: Option<String>,
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("active", &self.active)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The SHA-256 of a token's secret bytes, as 64 lowercase hex digits: what the store keeps
/// and looks tokens up by. Its `Debug` shows only a prefix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub String);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.0.chars().take(8).collect();
        write!(f, "TokenHash({head}…)")
    }
}

/// The id of a sign-in session (a family of refresh tokens), never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A sign-in session: what one sign-in started, carried on by each refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id (the `sid` of the access tokens issued in it).
    pub id: SessionId,
    /// Whose.
    pub user: UserId,
    /// When the sign-in happened.
    pub created_at: Timestamp,
    /// The last refresh (the sign-in until the first).
    pub last_used_at: Timestamp,
    /// After this, no refresh: the user signs in again (absolute lifetime).
    pub expires_at: Timestamp,
    /// When it was ended (logout, revocation, reuse of a spent token, a password reset).
    pub revoked_at: Option<Timestamp>,
    /// Why it was ended, in words.
    pub revoked_reason: Option<String>,
    /// The client's `User-Agent` at sign-in, cut to 200 characters.
    pub user_agent: Option<String>,
    /// The client's address at sign-in.
    pub client_addr: Option<String>,
}

/// A session to start, with its first refresh token.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Whose.
    pub user: UserId,
    /// The first refresh token's hash.
    pub refresh: TokenHash,
    /// When the refresh token stops working (sliding: each rotation sets the next one's).
    pub refresh_expires_at: Timestamp,
    /// The session's absolute end.
    pub expires_at: Timestamp,
    /// Now.
    pub at: Timestamp,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The client's address.
    pub client_addr: Option<String>,
}

/// What presenting a refresh token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live: it is spent, `next` stored in its place; the session and its user.
    Rotated {
        /// The session, its `last_used_at` now.
        session: Session,
        /// Its user (maybe deactivated: the server refuses then).
        user: User,
    },
    /// The token had been spent before: its session is revoked now (with every token in it).
    Reused {
        /// The session, revoked.
        session: Session,
    },
    /// The token is past its expiry, or its session ended; nothing changed.
    Expired,
    /// No such token.
    Unknown,
}

/// The id of an API or ingest token, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiTokenId(pub i64);

impl fmt::Display for ApiTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a long-lived token may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TokenScope {
    /// For scripts and integrations: what the role grants.
    Api {
        /// The role's name.
        role: String,
    },
    /// For a device: post readings of this machine, nothing else.
    Ingest {
        /// The machine.
        machine: MachineKey,
    },
}

/// An API or ingest token as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Its id.
    pub id: ApiTokenId,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scope: TokenScope,
    /// The first characters of the token, to recognise it in a list.
    pub prefix: String,
    /// Who made it.
    pub created_by: Option<UserId>,
    /// When.
    pub created_at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// Its last use (updated at most once a minute).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// What it is for (1 to 100 characters).
    pub name: String,
    /// What it may do; the role or machine must exist.
    pub scope: TokenScope,
    /// The secret's hash.
    pub hash: TokenHash,
    /// The first characters of the token.
    pub prefix: String,
    /// Who makes it.
    pub created_by: Option<UserId>,
    /// Now.
    pub at: Timestamp,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
}

/// Users, roles, sessions and tokens. Emails are compared lowercased; every hash is looked up
/// exactly.
#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// Writes `roles` as the built-in roles (inserting or replacing each, `builtin` set), so a
    /// release that grants a role a new permission applies it at start. A custom role of the
    /// same name is overwritten; a role built in before but not in `roles` becomes a custom one
    /// (so that it can be edited, or deleted once unused). `Invalid` for a name breaking the
    /// rule of [`Role::name`].
    async fn sync_builtin_roles(&self, roles: &[Role]) -> StoreResult<()>;

    /// Every role, by name.
    async fn list_roles(&self) -> StoreResult<Vec<Role>>;

    /// The role `name`; `NotFound` when there is none.
    async fn get_role(&self, name: &str) -> StoreResult<Role>;

    /// Creates a custom role (`builtin` ignored, stored false), or replaces the custom role of
    /// that name; returns true when it was created. `Conflict` when `name` is built in,
    /// `Invalid` when it breaks the rule of [`Role::name`].
    async fn put_role(&self, role: &Role) -> StoreResult<bool>;

    /// Deletes the custom role `name`. `NotFound` when there is none, `Conflict` when it is built
    /// in or a user or an API token still has it.
    async fn delete_role(&self, name: &str) -> StoreResult<()>;

    /// Creates a user, active, at `at`. `Conflict` when the email is taken (in any case),
    /// `NotFound` when the role does not exist.
    async fn create_user(&self, user: &NewUser, at: Timestamp) -> StoreResult<User>;

    /// The user `id`; `NotFound` when there is none.
    async fn get_user(&self, id: UserId) -> StoreResult<User>;

    /// The user signing in as `email` (any case), if any.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;

    /// Users by id, after `after` (the cursor), at most `limit`.
    async fn list_users(&self, after: Option<UserId>, limit: u32) -> StoreResult<Vec<User>>;

    /// How many users there are (the first start creates the first admin when none).
    async fn count_users(&self) -> StoreResult<u64>;

    /// Applies `update` at `at`; returns the user after it. `NotFound` for an unknown user or
    /// role. Deactivating, changing the role or the password does not touch sessions: the server
    /// decides which to revoke ([`Self::revoke_user_sessions`]).
    async fn update_user(
        &self,
        id: UserId,
        update: &UserUpdate,
        at: Timestamp,
    ) -> StoreResult<User>;

    /// Records a successful sign-in at `at`.
    async fn touch_sign_in(&self, id: UserId, at: Timestamp) -> StoreResult<()>;

    /// Starts a session with its first refresh token. `NotFound` for an unknown user.
    async fn create_session(&self, s: &NewSession) -> StoreResult<Session>;

    /// The session `id`; `NotFound` when there is none.
    async fn get_session(&self, id: SessionId) -> StoreResult<Session>;

    /// The sessions of `user`, newest first, ended ones (revoked, or past `expires_at` by the
    /// store's clock) included when `include_ended`.
    async fn list_sessions(&self, user: UserId, include_ended: bool) -> StoreResult<Vec<Session>>;

    /// Presents refresh token `presented` at `at`, in one transaction: when it is live (unspent,
    /// unexpired, its session neither revoked nor past `expires_at`) it is spent, `next` is
    /// stored with expiry `next_expires_at` in the same session and the session's
    /// `last_used_at` set; when it was spent before, its session is revoked (reason "refresh
    /// token reused"). Two concurrent presentations of one live token rotate once: the other
    /// sees `Reused`.
    async fn rotate_refresh(
        &self,
        presented: &TokenHash,
        next: &TokenHash,
        next_expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<Rotation>;

    /// Ends session `id` at `at` with `reason`; false when it had ended already (revoked, or
    /// past `expires_at` at `at`). `NotFound` when there is none.
    async fn revoke_session(&self, id: SessionId, reason: &str, at: Timestamp)
        -> StoreResult<bool>;

    /// Ends every live session of `user` at `at`; returns how many.
    async fn revoke_user_sessions(
        &self,
        user: UserId,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64>;

    /// Stores a password-reset token for `user`, live until `expires_at`; earlier unspent tokens
    /// of the user stay live. `NotFound` for an unknown user.
    async fn create_reset_token(
        &self,
        user: UserId,
        hash: &TokenHash,
        expires_at: Timestamp,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Spends reset token `hash` at `at`: its user when it was live, `None` when unknown, spent
    /// or expired. Single use, also under concurrency.
    async fn consume_reset_token(
        &self,
        hash: &TokenHash,
        at: Timestamp,
    ) -> StoreResult<Option<UserId>>;

    /// Creates an API or ingest token. `NotFound` when its role, machine or `created_by` user
    /// does not exist, `Conflict` when the hash exists, `Invalid` when the name is not 1 to 100
    /// characters.
    async fn create_api_token(&self, t: &NewApiToken) -> StoreResult<ApiToken>;

    /// The token with secret hash `hash`, revoked and expired ones included (the caller
    /// judges), if any.
    async fn api_token_by_hash(&self, hash: &TokenHash) -> StoreResult<Option<ApiToken>>;

    /// Tokens by id: API tokens and every machine's ingest tokens (`machine` `None`), or the
    /// ingest tokens of one machine; revoked ones included. `NotFound` for an unknown machine.
    async fn list_api_tokens(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ApiToken>>;

    /// A page of every token by id (revoked ones included): at most `limit`, those after
    /// `after`.
    async fn api_tokens_after(
        &self,
        after: Option<ApiTokenId>,
        limit: u32,
    ) -> StoreResult<Vec<ApiToken>>;

    /// Records a use of token `id` at `at`, unless one within the last minute was recorded
    /// (`last_used_at` at or after `at` minus 60 s). An unknown token is no error: this runs
    /// on every request, after the token was found.
    async fn touch_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<()>;

    /// Revokes token `id` at `at`; false when it was revoked already. `NotFound` when unknown.
    async fn revoke_api_token(&self, id: ApiTokenId, at: Timestamp) -> StoreResult<bool>;

    /// Records a failed sign-in for each of `keys` (an account, a client address) at `at`.
    async fn record_sign_in_failure(&self, keys: &[String], at: Timestamp) -> StoreResult<()>;

    /// How many failed sign-ins `key` had at or after `since`.
    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> StoreResult<u64>;

    /// Deletes failures before `before`, reset tokens spent or expired before it, and the
    /// refresh tokens of sessions revoked or expired before it; returns the rows deleted.
    /// Sessions themselves are kept (the history of sign-ins), and so are the spent refresh
    /// tokens of live sessions (presenting one again must still revoke its session).
    async fn prune_access(&self, before: Timestamp) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_by_name() {
        for p in Permission::ALL {
            let json = serde_json::to_string(&p).expect("json");
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(p.as_str().parse::<Permission>(), Ok(p));
        }
        let err = "machines:delete".parse::<Permission>().unwrap_err();
        assert!(err.contains("machines:read"), "{err}");
    }

    #[test]
    fn builtin_roles_nest() {
        let roles = Role::builtin();
        let (admin, engineer, viewer) = (&roles[0], &roles[1], &roles[2]);
        assert!(Permission::ALL.iter().all(|p| admin.grants(*p)));
        assert!(viewer.permissions.iter().all(|p| engineer.grants(*p)));
        assert!(!engineer.grants(Permission::UsersManage));
        assert!(!viewer.grants(Permission::AlarmsAct));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let u = NewUser {
            email: "a@b.c".into(),
            name: "A".into(),
            role: "viewer".into(),
            password_hash: "$argon2id$v=19$secret".into(),
        };
        assert!(!format!("{u:?}").contains("secret"));
        let h = TokenHash("0123456789abcdef".repeat(4));
        assert_eq!(format!("{h:?}"), "TokenHash(01234567…)");
    }
}
