//! The audit log: who changed what, from where, when, and with what outcome; every sign-in and
//! failed sign-in. Append-only: nothing but retention deletes an entry.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::model::Timestamp;

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Row id, increasing.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// Who: a user's email, `token:<name>`, `device:<machine>`, or the email tried at a sign-in.
    pub actor: String,
    /// The actor's role at the time, when known.
    pub role: Option<String>,
    /// What: `POST /work-orders/{id}` (the route), or `sign_in`, `sign_in_failed`.
    pub action: String,
    /// On what: the request's path (`work-orders/5`), when it names something.
    pub target: Option<String>,
    /// What changed: the names of the fields sent (never their values, which may be secrets).
    pub fields: Vec<String>,
    /// The client's address, when known.
    pub client_addr: Option<String>,
    /// The HTTP status answered (`2xx` success, else failure).
    pub status: u16,
}

/// An entry to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    /// When.
    pub at: Timestamp,
    /// Who.
    pub actor: String,
    /// Their role.
    pub role: Option<String>,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// The fields sent.
    pub fields: Vec<String>,
    /// From where.
    pub client_addr: Option<String>,
    /// The status answered.
    pub status: u16,
}

/// Which entries, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this target.
    pub target: Option<String>,
    /// `Some(true)`: only successes (2xx); `Some(false)`: only failures.
    pub success: Option<bool>,
    /// At or after.
    pub from: Option<Timestamp>,
    /// Before.
    pub to: Option<Timestamp>,
    /// Only ids below this (the last id of the previous page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Stores the audit log.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends an entry; its id.
    async fn record_audit(&self, e: &NewAuditEntry) -> StoreResult<i64>;
    /// Entries matching `q`, newest first.
    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
    /// Deletes the entries older than `before` (retention); how many.
    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64>;
}
