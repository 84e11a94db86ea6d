//! Webhook endpoints, their deliveries and the log of every attempt (issue 10).
//!
//! The dispatcher ([`crate::webhook::Dispatcher`]) owns the rules (filters, retry schedule,
//! signing, disabling); this trait only keeps what it decided. A delivery is one event for one
//! endpoint: it is created when an outbox row is fanned out ([`WebhookStore::fan_out`], which
//! marks the row dispatched in the same transaction), carries a `webhook-id` fixed for its
//! whole life (every attempt, a retry after a crash, a manual redelivery), and is claimed under
//! a lease ([`WebhookStore::claim_due`]) so that a crashed worker's claims come back and two
//! workers never send the same attempt at once.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::alarm::{AlarmEventKind, Severity};
use crate::ids::MachineKey;
use crate::model::Timestamp;

/// The id of a webhook endpoint, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(pub i64);

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which alarm events an endpoint receives; an empty list lets everything through.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookFilter {
    /// Only events of these machines.
    pub machines: Vec<MachineKey>,
    /// Only events whose severity (after the event) is one of these.
    pub severities: Vec<Severity>,
    /// Only events of these kinds.
    pub event_kinds: Vec<AlarmEventKind>,
}

impl WebhookFilter {
    /// Whether an event of `machine`, `severity` and `kind` passes.
    pub fn matches(&self, machine: &MachineKey, severity: Severity, kind: AlarmEventKind) -> bool {
        (self.machines.is_empty() || self.machines.contains(machine))
            && (self.severities.is_empty() || self.severities.contains(&severity))
            && (self.event_kinds.is_empty() || self.event_kinds.contains(&kind))
    }
}

/// A webhook endpoint as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it is for, in words.
    pub description: Option<String>,
    /// The signing secret (`whsec_...`).
    pub secret: String,
    /// The secret before the last rotation, still signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    /// When the previous secret stops signing.
    pub previous_secret_expires_at: Option<Timestamp>,
    /// Which events it receives.
    pub filter: WebhookFilter,
    /// Whether deliveries are made (a disabled endpoint's pending deliveries wait).
    pub enabled: bool,
    /// Why the dispatcher disabled it (410 Gone, failing for days); `None` otherwise.
    pub disabled_reason: Option<String>,
    /// Since when its attempts have failed without a success in between.
    pub failing_since: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// Secrets never reach a log: `Debug` leaves them out.
impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("filter", &self.filter)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("failing_since", &self.failing_since)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// The secrets that sign a message sent at `now`: the current one, then the previous one
    /// while it has not expired.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(prev), Some(until)) = (&self.previous_secret, self.previous_secret_expires_at)
        {
            if now < until {
                secrets.push(prev.as_str());
            }
        }
        secrets
    }
}

/// An endpoint to create with [`WebhookStore::create_webhook`] (validated by the caller).
#[derive(Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// Where deliveries are POSTed.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// The signing secret.
    pub secret: String,
    /// Which events it receives.
    pub filter: WebhookFilter,
    /// Whether deliveries are made.
    pub enabled: bool,
}

impl fmt::Debug for NewWebhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewWebhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A change of an endpoint with [`WebhookStore::update_webhook`]; `None` keeps a field.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebhookUpdate {
    /// A new URL.
    pub url: Option<String>,
    /// A new description (`Some(None)` removes it).
    pub description: Option<Option<String>>,
    /// New filters.
    pub filter: Option<WebhookFilter>,
    /// Enables or disables it; enabling clears the disabled reason and the failing streak.
    pub enabled: Option<bool>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Awaiting an attempt (now or at `next_attempt_at`).
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed (or the endpoint answered 410 Gone).
    Failed,
}

impl DeliveryStatus {
    /// The stable name (API, storage).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// The status named `s`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery to create: by [`WebhookStore::fan_out`] or [`WebhookStore::create_delivery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The endpoint.
    pub webhook: WebhookId,
    /// The `webhook-id` header of every attempt.
    pub message_id: String,
    /// The event type (`alarm.raised`, `webhook.test`).
    pub event_type: String,
    /// The alarm the event belongs to (events of one alarm go to an endpoint in order).
    pub alarm_id: Option<i64>,
    /// The body, exactly as signed and sent.
    pub payload: String,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub webhook: WebhookId,
    /// The outbox row it came from (`None` for a test send).
    pub outbox_id: Option<i64>,
    /// The `webhook-id` header of every attempt.
    pub message_id: String,
    /// The event type.
    pub event_type: String,
    /// The alarm the event belongs to.
    pub alarm_id: Option<i64>,
    /// The body.
    pub payload: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries only).
    pub next_attempt_at: Option<Timestamp>,
    /// Until when a worker holds it (an expired lease lets another take it).
    pub claimed_until: Option<Timestamp>,
    /// The HTTP status of the last attempt, if one was answered.
    pub last_status: Option<u16>,
    /// The error of the last attempt, if it failed.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// One attempt of a delivery, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Its id.
    pub id: i64,
    /// The delivery.
    pub delivery: i64,
    /// When it started.
    pub at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Why it failed (`None` on success).
    pub error: Option<String>,
}

/// What an attempt found, to log with [`WebhookStore::record_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// When it started.
    pub at: Timestamp,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Why it failed (`None` on success).
    pub error: Option<String>,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered: done.
    Delivered,
    /// Failed: try again at this instant.
    RetryAt(Timestamp),
    /// Failed for good.
    Failed,
    /// A probe of a failing endpoint failed: the delivery keeps its place in the retry
    /// schedule (its attempt count and next attempt time are unchanged); the attempt is
    /// logged.
    Probed,
}

/// What becomes of the endpoint after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointChange {
    /// It answered 2xx: its failing streak ends.
    Healthy,
    /// It answered 2xx after a failing streak: the streak ends, and its pending deliveries
    /// waiting for a retry later than the attempt are due at once (at the attempt's time), so
    /// a receiver that comes back gets its backlog in seconds rather than at the schedule's
    /// next step (5 minutes, 30, ...). Deliveries last answered 429 keep their time: the
    /// endpoint asked for it.
    Recovered,
    /// It failed: its failing streak starts now unless it runs already.
    Failing,
    /// It is disabled, for this reason (410 Gone, failing for days).
    Disable(String),
    /// Nothing changes (a test send).
    Unchanged,
}

/// Which deliveries [`WebhookStore::list_deliveries`] returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only those of this endpoint.
    pub webhook: WebhookId,
    /// Only those in this status.
    pub status: Option<DeliveryStatus>,
    /// Only those with a smaller id (the next page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// Stores webhook endpoints, their deliveries and the attempt log.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new endpoint.
    async fn create_webhook(&self, w: &NewWebhook) -> StoreResult<Webhook>;

    /// The endpoint `id`; `NotFound` when unknown.
    async fn get_webhook(&self, id: WebhookId) -> StoreResult<Webhook>;

    /// Every endpoint, by id.
    async fn list_webhooks(&self) -> StoreResult<Vec<Webhook>>;

    /// A page of endpoints by id: at most `limit`, those after `after`.
    async fn webhooks_after(
        &self,
        after: Option<WebhookId>,
        limit: u32,
    ) -> StoreResult<Vec<Webhook>>;

    /// Changes the endpoint `id`; `NotFound` when unknown.
    async fn update_webhook(&self, id: WebhookId, u: &WebhookUpdate) -> StoreResult<Webhook>;

    /// Deletes the endpoint `id` with its deliveries and their attempts; false when unknown.
    async fn delete_webhook(&self, id: WebhookId) -> StoreResult<bool>;

    /// Makes `secret` the current secret of `id`; the current one becomes the previous one,
    /// signing until `previous_expires_at`. `NotFound` when unknown.
    async fn rotate_secret(
        &self,
        id: WebhookId,
        secret: &str,
        previous_expires_at: Timestamp,
    ) -> StoreResult<Webhook>;

    /// In one transaction: creates `deliveries` of the outbox row `outbox_id` (pending, due at
    /// `at`; one already there for the same endpoint and row is kept as it is) and marks the
    /// row dispatched at `at`. Returns how many deliveries were created; a row dispatched
    /// already creates none. `NotFound` for an unknown row.
    async fn fan_out(
        &self,
        outbox_id: i64,
        deliveries: &[NewDelivery],
        at: Timestamp,
    ) -> StoreResult<u64>;

    /// Creates a delivery outside the outbox (a test send), claimed by the caller until
    /// `claimed_until`. `NotFound` for an unknown endpoint.
    async fn create_delivery(
        &self,
        d: &NewDelivery,
        at: Timestamp,
        claimed_until: Timestamp,
    ) -> StoreResult<Delivery>;

    /// Claims at most `limit` pending deliveries due at `now` whose endpoint is enabled and
    /// that nobody holds (no lease, or an expired one), oldest due first, leasing them until
    /// `lease_until`. A delivery is not claimed while an earlier delivery of the same alarm to
    /// the same endpoint is pending. Concurrent claimers never get the same delivery.
    async fn claim_due(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;

    /// Claims the delivery to probe failing endpoint `webhook` with, leasing it until
    /// `lease_until`: its oldest pending delivery that is first of its alarm, not due yet (a
    /// due one is for [`claim_due`](Self::claim_due)), not held, and not last answered 429 (the
    /// endpoint asked for the wait). `None` when there is none.
    async fn claim_probe(
        &self,
        webhook: WebhookId,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> StoreResult<Option<Delivery>>;

    /// In one transaction: logs `attempt` of delivery `id`, moves the delivery on by `next`
    /// (and releases its lease), and changes its endpoint by `endpoint`. Returns the delivery
    /// as written; `Conflict` when it is no longer pending, `NotFound` when unknown.
    async fn record_attempt(
        &self,
        id: i64,
        attempt: &AttemptRecord,
        next: NextStep,
        endpoint: &EndpointChange,
    ) -> StoreResult<Delivery>;

    /// The delivery `id` of endpoint `webhook`; `NotFound` when either is unknown.
    async fn get_delivery(&self, webhook: WebhookId, id: i64) -> StoreResult<Delivery>;

    /// Deliveries matching `q`, newest first. `NotFound` when the endpoint is unknown.
    async fn list_deliveries(&self, q: &DeliveryQuery) -> StoreResult<Vec<Delivery>>;

    /// The attempts of delivery `id`, oldest first.
    async fn delivery_attempts(&self, id: i64) -> StoreResult<Vec<DeliveryAttempt>>;

    /// Makes the delivery `id` of `webhook` pending again, due at `at`, with its `webhook-id`
    /// unchanged. `NotFound` when unknown.
    async fn redeliver(&self, webhook: WebhookId, id: i64, at: Timestamp) -> StoreResult<Delivery>;

    /// Deletes delivered and failed deliveries created before `before` (with their attempts)
    /// and dispatched outbox rows dispatched before `before` that no pending delivery needs.
    /// Returns how many rows went.
    async fn prune_webhooks(&self, before: Timestamp) -> StoreResult<u64>;
}
