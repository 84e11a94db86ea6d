//! The storage seam: one trait per aggregate, one module per aggregate.
//!
//! - [`TelemetryStore`] ([`telemetry`]): readings, the hot path;
//! - [`MachineStore`] ([`machines`]), [`SensorStore`] ([`sensors`]), [`DeadLetterStore`]
//!   ([`dead_letters`]), [`ModelStore`] ([`models`]), [`JobStore`] ([`jobs`]),
//!   [`PredictionStore`] ([`predictions`]), [`AlarmStore`] ([`alarms`]), [`WebhookStore`]
//!   ([`webhooks`]), [`AccessStore`] ([`access`]: users, roles, sessions, tokens): relational
//!   state.
//!
//! [`CatalogStore`] bundles the relational aggregates and [`Store`] adds telemetry; both are
//! implemented for every type implementing their parts, so a backend implements only the
//! aggregate traits. A new aggregate (table) gets its own module and trait here, is added to
//! [`CatalogStore`]'s supertraits, and gets one implementation in `pdm-store` (written once for
//! both backends) checked by the conformance suite.
//!
//! Implementations live in `pdm-store` (SQLite, PostgreSQL). Every implementation must pass the
//! conformance suite there; the rules it checks are written on each method here.

pub mod access;
pub mod alarms;
pub mod attachments;
pub mod audit;
pub mod comments;
pub mod dead_letters;
pub mod jobs;
pub mod machines;
pub mod models;
pub mod overview;
pub mod predictions;
pub mod sensors;
pub mod settings;
pub mod telemetry;
pub mod webhooks;
pub mod workorders;

pub use access::{
    AccessStore, ApiToken, ApiTokenId, NewApiToken, NewSession, NewUser, Permission, Role,
    Rotation, Session, SessionId, TokenHash, TokenScope, User, UserId, UserUpdate,
};
pub use alarms::{
    AlarmEventRecord, AlarmId, AlarmQuery, AlarmRuleRecord, AlarmStore, AlarmTransition,
    NewAlarmRule, OutboxEntry, ServiceNote, StoredAlarm, StoredAlarmEvent,
};
pub use attachments::AttachmentStore;
pub use audit::{AuditEntry, AuditQuery, AuditStore, NewAuditEntry};
pub use comments::CommentStore;
pub use dead_letters::DeadLetterStore;
pub use jobs::{Job, JobId, JobOutcome, JobQuery, JobStatus, JobStore, NewJob};
pub use machines::MachineStore;
pub use models::{Activation, ModelId, ModelQuery, ModelRecord, ModelStatus, ModelStore, NewModel};
pub use overview::{LatestPrediction, OverviewCounts, OverviewStore};
pub use predictions::PredictionStore;
pub use sensors::SensorStore;
pub use settings::{SettingsStore, StoredSettings};
pub use telemetry::{TelemetryStore, WriteOutcome};
pub use webhooks::{
    AttemptRecord, Delivery, DeliveryAttempt, DeliveryQuery, DeliveryStatus, EndpointChange,
    NewDelivery, NewWebhook, NextStep, Webhook, WebhookFilter, WebhookId, WebhookStore,
    WebhookUpdate,
};
pub use workorders::{
    LabelCounts, LabelledAlarm, WorkOrderEvent, WorkOrderQuery, WorkOrderSort, WorkOrderStore,
};

/// A boxed error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing exists already, or is still referenced.
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// The thing changed since the caller read it (a stale version).
    #[error("{0}")]
    Stale(String),
    /// The database cannot be reached; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other failure of the backend.
    #[error("database error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// True when a retry may succeed (connection lost, pool exhausted, lock timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Stores machines, sensors, dead letters, models, jobs, predictions, alarms, webhooks and
/// access (users, roles, sessions, tokens): every relational aggregate.
/// Implemented for every type implementing its supertraits.
pub trait CatalogStore:
    MachineStore
    + SensorStore
    + DeadLetterStore
    + ModelStore
    + JobStore
    + PredictionStore
    + AlarmStore
    + WebhookStore
    + AccessStore
    + WorkOrderStore
    + AuditStore
    + CommentStore
    + AttachmentStore
    + SettingsStore
    + OverviewStore
{
}

impl<T> CatalogStore for T where
    T: MachineStore
        + SensorStore
        + DeadLetterStore
        + ModelStore
        + JobStore
        + PredictionStore
        + AlarmStore
        + WebhookStore
        + AccessStore
        + WorkOrderStore
        + AuditStore
        + CommentStore
        + AttachmentStore
        + SettingsStore
        + OverviewStore
{
}

/// A database holding both telemetry and catalog.
pub trait Store: TelemetryStore + CatalogStore {}

impl<T: TelemetryStore + CatalogStore> Store for T {}
