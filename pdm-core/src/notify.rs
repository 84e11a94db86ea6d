//! The alerting seam: notifiers deliver alarm events; the alarm policy ([`crate::alarm`])
//! decides what they are.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::alarm::AlarmEvent;
use crate::ids::MachineKey;
use crate::store::BoxError;

/// An alarm event as delivered to notifiers: the event and the alarm it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmNotification {
    /// The alarm's id in the store.
    pub alarm_id: i64,
    /// The machine.
    pub machine: MachineKey,
    /// The rule that raised it.
    pub rule: String,
    /// What happened, when, by whom and why.
    #[serde(flatten)]
    pub event: AlarmEvent,
}

/// Delivers alarm events somewhere (webhook, live push, e-mail gateway...).
#[async_trait]
pub trait Notifier: Send + Sync + 'static {
    /// Name for logs.
    fn name(&self) -> &str;
    /// Delivers one event; an error is logged and counted, and may be retried by the caller.
    async fn notify(&self, event: &AlarmNotification) -> Result<(), BoxError>;
}
