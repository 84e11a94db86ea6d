//! The alerting seam: notifiers deliver alarm events; the alarm policy decides what they are.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::ids::MachineKey;
use crate::model::Timestamp;
use crate::store::BoxError;

/// How bad an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// What happened to an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AlarmEventKind {
    /// A new alarm opened.
    Raised,
    /// An open alarm's severity rose.
    Escalated,
    /// Somebody acknowledged the alarm.
    Acknowledged,
    /// The condition ended and the alarm closed.
    Cleared,
}

/// A change of an alarm, as delivered to notifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// Alarm id.
    pub alarm_id: i64,
    /// What happened.
    pub kind: AlarmEventKind,
    /// The machine.
    pub machine: MachineKey,
    /// The rule that raised it.
    pub rule: String,
    /// Severity after the change.
    pub severity: Severity,
    /// When it happened.
    pub at: Timestamp,
    /// Human-readable summary.
    pub message: String,
}

/// Delivers alarm events somewhere (webhook, live push, e-mail gateway...).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Name for logs.
    fn name(&self) -> &str;
    /// Delivers one event; an error is logged and counted, and may be retried by the caller.
    async fn notify(&self, event: &AlarmEvent) -> Result<(), BoxError>;
}
