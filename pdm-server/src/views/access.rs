//! Views of people and credentials: never a password hash, never a token's hash; a token's
//! secret only in the answer that created it ([`NewTokenView`], [`SignInView`]).

use pdm_core::store::{ApiToken, Permission, Role, Session, TokenScope, User};
use serde::Serialize;
use utoipa::ToSchema;

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserView {
    /// Its id.
    pub id: i64,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// False once deactivated.
    pub active: bool,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
    /// Epoch ms of the last sign-in.
    pub last_sign_in: Option<i64>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self::from(&u)
    }
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.0,
            email: u.email.clone(),
            name: u.name.clone(),
            role: u.role.clone(),
            active: u.active,
            created_at: u.created_at.as_millis(),
            updated_at: u.updated_at.as_millis(),
            last_sign_in: u.last_sign_in.map(|t| t.as_millis()),
        }
    }
}

/// `GET /auth/me`: who is signed in and what they may do.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeView {
    /// The user; `None` for an API token.
    pub user: Option<UserView>,
    /// The session of the access token.
    pub session: Option<i64>,
    /// `token:<name>` for an API token.
    pub actor: String,
    /// The role.
    pub role: String,
    /// What the role grants.
    pub permissions: Vec<Permission>,
}

/// A role.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RoleView {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// What it grants.
    pub permissions: Vec<Permission>,
    /// Built in (not editable).
    pub builtin: bool,
}

impl From<Role> for RoleView {
    fn from(r: Role) -> Self {
        Self {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            builtin: r.builtin,
        }
    }
}

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SessionView {
    /// Its id.
    pub id: i64,
    /// Whose.
    pub user: i64,
    /// Epoch ms of the sign-in.
    pub created_at: i64,
    /// Epoch ms of the last refresh.
    pub last_used_at: i64,
    /// Epoch ms after which it cannot be refreshed.
    pub expires_at: i64,
    /// Epoch ms it was ended.
    pub revoked_at: Option<i64>,
    /// Why.
    pub revoked_reason: Option<String>,
    /// The client at sign-in.
    pub user_agent: Option<String>,
    /// The client's address at sign-in.
    pub client_addr: Option<String>,
    /// True for the session of the request's own access token.
    pub current: bool,
}

impl SessionView {
    /// The view of `s`; `current` when it is the caller's.
    pub fn new(s: Session, current: Option<pdm_core::store::SessionId>) -> Self {
        Self {
            current: current == Some(s.id),
            id: s.id.0,
            user: s.user.0,
            created_at: s.created_at.as_millis(),
            last_used_at: s.last_used_at.as_millis(),
            expires_at: s.expires_at.as_millis(),
            revoked_at: s.revoked_at.map(|t| t.as_millis()),
            revoked_reason: s.revoked_reason,
            user_agent: s.user_agent,
            client_addr: s.client_addr,
        }
    }
}

/// The answer of a sign-in or a refresh (the OAuth 2.0 token response's shape).
#[derive(Clone, PartialEq, Serialize, ToSchema)]
pub struct SignInView {
    /// The access token (a JWT).
    pub access_token: String,
    /// The refresh token: single use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: u64,
}

impl std::fmt::Debug for SignInView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInView")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An API or ingest token (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: i64,
    /// What it is for.
    pub name: String,
    /// `api` or `ingest`.
    pub kind: &'static str,
    /// An API token's role.
    pub role: Option<String>,
    /// An ingest token's machine.
    pub machine: Option<String>,
    /// The first characters, to recognise it.
    pub prefix: String,
    /// Who made it.
    pub created_by: Option<i64>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms it stops working.
    pub expires_at: Option<i64>,
    /// Epoch ms of its last use (to the minute).
    pub last_used_at: Option<i64>,
    /// Epoch ms it was revoked.
    pub revoked_at: Option<i64>,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        let (kind, role, machine) = match t.scope {
            TokenScope::Api { role } => ("api", Some(role), None),
            TokenScope::Ingest { machine } => ("ingest", None, Some(machine.to_string())),
        };
        Self {
            id: t.id.0,
            name: t.name,
            kind,
            role,
            machine,
            prefix: t.prefix,
            created_by: t.created_by.map(|u| u.0),
            created_at: t.created_at.as_millis(),
            expires_at: t.expires_at.map(|e| e.as_millis()),
            last_used_at: t.last_used_at.map(|e| e.as_millis()),
            revoked_at: t.revoked_at.map(|e| e.as_millis()),
        }
    }
}

/// A token just made: its view and, this once, its secret.
#[derive(Clone, PartialEq, Serialize, ToSchema)]
pub struct NewTokenView {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// The secret: shown now and never again.
    pub secret: String,
}

impl std::fmt::Debug for NewTokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTokenView")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// A push ticket (`POST /auth/ticket`): for `?ticket=` on `/events` or `/ws`, once, soon.
#[derive(Clone, PartialEq, Serialize, ToSchema)]
pub struct TicketView {
    /// The ticket (a short-lived JWT for the push endpoints only).
    pub ticket: String,
    /// Seconds it stays valid.
    pub expires_in: i64,
}

impl std::fmt::Debug for TicketView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketView")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// An answer that only says what happens next (`202 Accepted`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AcceptedView {
    /// What was done, or will be.
    pub status: &'static str,
}

/// How many sessions an admin ended.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EndedView {
    /// Sessions ended.
    pub ended: u64,
}
