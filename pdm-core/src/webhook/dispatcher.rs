//! The dispatcher: fans the outbox out into deliveries, sends due deliveries concurrently, logs
//! every attempt and schedules the next.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::{
    alarm_event_type, alarm_payload, inc, message_id, parse_retry_after, rfc3339, signing, Clock,
    Envelope, RetrySchedule, SendError, WebhookMetrics, WebhookRequest, WebhookSender,
};
use crate::config::{ConfigError, ConfigResult};
use crate::model::Timestamp;
use crate::source::{Shutdown, ShutdownTrigger};
use crate::store::{
    AttemptRecord, CatalogStore, Delivery, DeliveryAttempt, EndpointChange, NewDelivery, NextStep,
    StoreError, StoreResult, Webhook, WebhookId,
};

/// How the dispatcher runs.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// When retries happen.
    pub schedule: RetrySchedule,
    /// Attempts in flight at most.
    pub concurrency: usize,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// How long a claim holds a delivery: longer than `timeout`, so a live worker never loses
    /// its claim, short enough that a crashed worker's claims come back soon.
    pub lease: Duration,
    /// How often it looks for work when nobody wakes it.
    pub poll: Duration,
    /// The longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// An endpoint whose attempts have failed for this long without a success is disabled.
    pub disable_after: Duration,
    /// Delivered and failed deliveries, and dispatched outbox rows, are deleted after this.
    pub retention: Duration,
    /// How often old rows are pruned.
    pub prune_every: Duration,
    /// A failing endpoint with deliveries waiting is probed this often (one delivery, its
    /// oldest waiting event, tried ahead of its schedule; a failed probe leaves the schedule as
    /// it was). When the probe succeeds the endpoint has recovered, and its waiting retries
    /// are due at once. Zero: no probes; recovery then waits for the schedule (5 s, 5 min, 30
    /// min, ...).
    pub probe_every: Duration,
    /// Probes stop when the endpoint has been failing this long; the schedule goes on.
    pub probe_for: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            concurrency: 32,
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            poll: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(24 * 3_600),
            disable_after: Duration::from_secs(5 * 86_400),
            retention: Duration::from_secs(30 * 86_400),
            prune_every: Duration::from_secs(3_600),
            probe_every: Duration::from_secs(15),
            probe_for: Duration::from_secs(3_600),
        }
    }
}

impl DispatcherConfig {
    /// Checks the settings, naming the first bad one (`webhooks.<name>`).
    pub fn check(&self) -> ConfigResult<()> {
        if self.concurrency == 0 {
            return Err(ConfigError::new(
                "webhooks.concurrency",
                "must be at least 1",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new(
                "webhooks.timeout_ms",
                "must be at least 1",
            ));
        }
        if self.lease <= self.timeout {
            return Err(ConfigError::new(
                "webhooks.lease",
                "must be longer than webhooks.timeout_ms",
            ));
        }
        Ok(())
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What a test send found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestSend {
    /// The delivery, after its one attempt.
    pub delivery: Delivery,
    /// The attempt.
    pub attempt: DeliveryAttempt,
}

/// What the dispatcher's tasks share.
struct Inner {
    store: Arc<dyn CatalogStore>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    config: DispatcherConfig,
    metrics: Arc<WebhookMetrics>,
    wake: Arc<Notify>,
}

/// The running dispatcher; cheap handles come from [`Dispatcher::waker`] and
/// [`Dispatcher::handle`].
pub struct Dispatcher {
    inner: Arc<Inner>,
    stop: ShutdownTrigger,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// A handle to a running dispatcher: wake it, send a test event, read its counters.
#[derive(Clone)]
pub struct DispatcherHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DispatcherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherHandle").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts the dispatcher on a tokio runtime.
    pub fn start(
        store: Arc<dyn CatalogStore>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Dispatcher {
        let inner = Arc::new(Inner {
            store,
            sender,
            clock,
            config,
            metrics: Arc::new(WebhookMetrics::default()),
            wake: Arc::new(Notify::new()),
        });
        let (stop, stopped) = ShutdownTrigger::new();
        let task = tokio::spawn(run(inner.clone(), stopped));
        Dispatcher { inner, stop, task }
    }

    /// Wakes the dispatcher: call it after storing an alarm transition, so its events go out
    /// now instead of at the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// A handle for the API (test sends, wake-ups after a redelivery).
    pub fn handle(&self) -> DispatcherHandle {
        DispatcherHandle {
            inner: self.inner.clone(),
        }
    }

    /// Its counters.
    pub fn metrics(&self) -> Arc<WebhookMetrics> {
        self.inner.metrics.clone()
    }

    /// Stops it. Attempts in flight are cut: their leases expire and they are retried, with
    /// the same `webhook-id`, by the next dispatcher.
    pub async fn shutdown(self) {
        self.stop.trigger();
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the webhook dispatcher task failed");
        }
    }
}

impl DispatcherHandle {
    /// Wakes the dispatcher.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// The dispatcher's wake-up handle, as [`Dispatcher::waker`].
    pub fn waker(&self) -> Arc<Notify> {
        self.inner.wake.clone()
    }

    /// The dispatcher's counters.
    pub fn metrics(&self) -> Arc<WebhookMetrics> {
        self.inner.metrics.clone()
    }

    /// Sends a `webhook.test` event to endpoint `id` now (enabled or not), once, and returns
    /// the delivery and its attempt. The endpoint's health is not changed by it.
    pub async fn send_test(&self, id: WebhookId) -> StoreResult<TestSend> {
        let inner = &self.inner;
        let webhook = inner.store.get_webhook(id).await?;
        let now = inner.clock.now();
        #[derive(serde::Serialize)]
        struct TestData<'a> {
            webhook_id: i64,
            message: &'a str,
        }
        let data = TestData {
            webhook_id: id.0,
            message: "a test event sent through the pdm API",
        };
        let payload = serde_json::to_string(&Envelope {
            event_type: "webhook.test",
            timestamp: rfc3339(now),
            data: &data,
        })
        .map_err(|e| StoreError::Invalid(format!("cannot encode the test event: {e}")))?;
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
        let message_id = format!(
            "msg_test_{}",
            nonce.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let new = NewDelivery {
            webhook: id,
            message_id,
            event_type: "webhook.test".into(),
            alarm_id: None,
            payload,
        };
        let delivery = inner
            .store
            .create_delivery(&new, now, now.add_millis(ms(inner.config.lease)))
            .await?;
        let delivery = attempt(inner, &webhook, &delivery, Mode::Test).await?;
        let attempt = inner
            .store
            .delivery_attempts(delivery.id)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("the test attempt was not logged".into()))?;
        Ok(TestSend { delivery, attempt })
    }
}

async fn run(inner: Arc<Inner>, mut stopped: Shutdown) {
    let slots = Arc::new(Semaphore::new(inner.config.concurrency));
    let mut in_flight = JoinSet::new();
    let mut last_prune: Option<Instant> = None;
    let mut probes = Probes::default();
    loop {
        while in_flight.try_join_next().is_some() {}
        if let Err(e) = fan_out(&inner).await {
            inc(&inner.metrics.store_errors);
            tracing::warn!(error = %e, "webhook fan-out failed; retrying");
        }
        if let Err(e) = dispatch(&inner, &slots, &mut in_flight).await {
            inc(&inner.metrics.store_errors);
            tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
        }
        if let Err(e) = probe(&inner, &slots, &mut in_flight, &mut probes).await {
            inc(&inner.metrics.store_errors);
            tracing::warn!(error = %e, "probing failing webhook endpoints failed; retrying");
        }
        if last_prune.is_none_or(|t| t.elapsed() >= inner.config.prune_every) {
            last_prune = Some(Instant::now());
            let before = inner.clock.now().add_millis(-ms(inner.config.retention));
            match inner.store.prune_webhooks(before).await {
                Ok(n) => super::dispatcher_add(&inner.metrics.pruned, n),
                Err(e) => {
                    inc(&inner.metrics.store_errors);
                    tracing::warn!(error = %e, "pruning webhook deliveries failed");
                }
            }
        }
        tokio::select! {
            _ = stopped.wait() => break,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(inner.config.poll) => {}
        }
    }
    in_flight.abort_all();
    while in_flight.join_next().await.is_some() {}
}

/// Turns every undispatched outbox row into deliveries, one per matching enabled endpoint.
async fn fan_out(inner: &Inner) -> StoreResult<()> {
    const PAGE: u32 = 100;
    loop {
        let rows = inner.store.pending_outbox(PAGE).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let hooks = inner.store.list_webhooks().await?;
        let now = inner.clock.now();
        for row in &rows {
            let ev = &row.event.event;
            let payload = alarm_payload(row)
                .map_err(|e| StoreError::Invalid(format!("cannot encode an alarm event: {e}")))?;
            let deliveries: Vec<NewDelivery> = hooks
                .iter()
                .filter(|h| h.enabled && h.filter.matches(&row.machine, ev.severity, ev.kind))
                .map(|h| NewDelivery {
                    webhook: h.id,
                    message_id: message_id(row.id),
                    event_type: alarm_event_type(row),
                    alarm_id: Some(row.event.alarm.0),
                    payload: payload.clone(),
                })
                .collect();
            match inner.store.fan_out(row.id, &deliveries, now).await {
                Ok(n) => super::dispatcher_add(&inner.metrics.deliveries_created, n),
                // Deleted meanwhile (its machine went): nothing to deliver.
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if rows.len() < PAGE as usize {
            return Ok(());
        }
    }
}

/// Claims as many due deliveries as there are free slots and starts an attempt for each.
async fn dispatch(
    inner: &Arc<Inner>,
    slots: &Arc<Semaphore>,
    in_flight: &mut JoinSet<()>,
) -> StoreResult<()> {
    let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
    if free == 0 {
        return Ok(());
    }
    let now = inner.clock.now();
    let claimed = inner
        .store
        .claim_due(now, now.add_millis(ms(inner.config.lease)), free)
        .await?;
    if claimed.is_empty() {
        return Ok(());
    }
    let hooks: HashMap<WebhookId, Webhook> = inner
        .store
        .list_webhooks()
        .await?
        .into_iter()
        .map(|h| (h.id, h))
        .collect();
    for delivery in claimed {
        let Some(webhook) = hooks.get(&delivery.webhook).cloned() else {
            continue; // deleted meanwhile, with its deliveries
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break; // the lease brings it back
        };
        spawn_attempt(inner, in_flight, permit, webhook, delivery, Mode::Scheduled);
    }
    Ok(())
}

/// Makes the attempt in a task of `in_flight`, holding `permit` until it is recorded.
fn spawn_attempt(
    inner: &Arc<Inner>,
    in_flight: &mut JoinSet<()>,
    permit: tokio::sync::OwnedSemaphorePermit,
    webhook: Webhook,
    delivery: Delivery,
    mode: Mode,
) {
    let inner = inner.clone();
    in_flight.spawn(async move {
        let _permit = permit;
        match attempt(&inner, &webhook, &delivery, mode).await {
            // The next event of the same alarm may be due now.
            Ok(_) => inner.wake.notify_one(),
            Err(e) => {
                inc(&inner.metrics.store_errors);
                tracing::warn!(delivery = delivery.id, ?mode, error = %e,
                    "recording a webhook attempt failed; the lease brings it back");
            }
        }
    });
}

/// When the last probes were made: per endpoint, and the last look for endpoints to probe.
#[derive(Default)]
struct Probes {
    last: HashMap<WebhookId, i64>,
    looked_at: Option<i64>,
}

/// Probes each failing endpoint that has waited `probe_every` since its streak began or its
/// last probe (and has failed for less than `probe_for`) with one delivery, if a slot is free.
/// Looks at most once a second.
async fn probe(
    inner: &Arc<Inner>,
    slots: &Arc<Semaphore>,
    in_flight: &mut JoinSet<()>,
    probes: &mut Probes,
) -> StoreResult<()> {
    let cfg = &inner.config;
    let every = ms(cfg.probe_every);
    let now = inner.clock.now();
    let t = now.as_millis();
    if every == 0 || probes.looked_at.is_some_and(|at| t - at < 1_000) {
        return Ok(());
    }
    probes.looked_at = Some(t);
    let failing: Vec<Webhook> = inner
        .store
        .list_webhooks()
        .await?
        .into_iter()
        .filter(|h| {
            h.enabled
                && h.failing_since
                    .is_some_and(|since| t - since.as_millis() < ms(cfg.probe_for))
        })
        .collect();
    probes
        .last
        .retain(|id, _| failing.iter().any(|h| h.id == *id));
    for webhook in failing {
        let since = webhook.failing_since.map_or(t, |s| s.as_millis());
        let last = probes.last.get(&webhook.id).copied().unwrap_or(since);
        if t - last < every {
            continue;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            break;
        };
        probes.last.insert(webhook.id, t);
        let lease = now.add_millis(ms(cfg.lease));
        let Some(delivery) = inner.store.claim_probe(webhook.id, now, lease).await? else {
            continue;
        };
        inc(&inner.metrics.probes);
        spawn_attempt(inner, in_flight, permit, webhook, delivery, Mode::Probe);
    }
    Ok(())
}

/// Why an attempt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// On the retry schedule.
    Scheduled,
    /// A test send: no retry, the endpoint unchanged.
    Test,
    /// A probe of a failing endpoint: a failure leaves the schedule as it was.
    Probe,
}

/// Makes one attempt of `delivery` to `webhook` and records it.
async fn attempt(
    inner: &Inner,
    webhook: &Webhook,
    delivery: &Delivery,
    mode: Mode,
) -> StoreResult<Delivery> {
    let cfg = &inner.config;
    let now = inner.clock.now();
    let started = Instant::now();
    let result = match signed_request(webhook, delivery, now, cfg.timeout) {
        Ok(request) => match tokio::time::timeout(cfg.timeout, inner.sender.send(&request)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(cfg.timeout)),
        },
        Err(e) => Err(e),
    };
    let duration_ms = ms(started.elapsed());
    let made = delivery.attempts.saturating_add(1);
    let (record, next, change) = match result {
        Ok(resp) if (200..300).contains(&resp.status) => (
            AttemptRecord {
                at: now,
                status_code: Some(resp.status),
                duration_ms,
                error: None,
            },
            NextStep::Delivered,
            if webhook.failing_since.is_some() {
                EndpointChange::Recovered
            } else {
                EndpointChange::Healthy
            },
        ),
        Ok(resp) => {
            let what = match resp.status {
                300..=399 => " (redirects are not followed)",
                410 => " (the endpoint is gone: disabled)",
                _ => "",
            };
            let excerpt: String = resp.body_excerpt.chars().take(200).collect();
            let error = if excerpt.trim().is_empty() {
                format!("HTTP {}{what}", resp.status)
            } else {
                format!("HTTP {}{what}: {}", resp.status, excerpt.trim())
            };
            let record = AttemptRecord {
                at: now,
                status_code: Some(resp.status),
                duration_ms,
                error: Some(error),
            };
            if resp.status == 410 {
                (
                    record,
                    NextStep::Failed,
                    EndpointChange::Disable("the endpoint answered 410 Gone".into()),
                )
            } else {
                let later = resp
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, now))
                    .map(|t| t.min(now.add_millis(ms(cfg.max_retry_after))));
                (
                    record,
                    next_after_failure(cfg, made, now, later),
                    failing(cfg, webhook, now),
                )
            }
        }
        Err(e) => (
            AttemptRecord {
                at: now,
                status_code: None,
                duration_ms,
                error: Some(e.to_string()),
            },
            next_after_failure(cfg, made, now, None),
            failing(cfg, webhook, now),
        ),
    };
    let (next, change) = match (mode, next) {
        (Mode::Test, NextStep::Delivered) => (NextStep::Delivered, EndpointChange::Unchanged),
        (Mode::Test, _) => (NextStep::Failed, EndpointChange::Unchanged),
        (Mode::Probe, NextStep::RetryAt(_) | NextStep::Failed)
            if !matches!(change, EndpointChange::Disable(_)) =>
        {
            (NextStep::Probed, change)
        }
        (_, next) => (next, change),
    };
    let m = &inner.metrics;
    match next {
        NextStep::Delivered => inc(&m.delivered),
        NextStep::Failed => {
            inc(&m.attempts_failed);
            inc(&m.deliveries_failed);
        }
        NextStep::RetryAt(_) | NextStep::Probed => inc(&m.attempts_failed),
    }
    if let EndpointChange::Disable(reason) = &change {
        inc(&m.endpoints_disabled);
        tracing::warn!(webhook = %webhook.id, reason, "webhook endpoint disabled");
    }
    inner
        .store
        .record_attempt(delivery.id, &record, next, &change)
        .await
}

/// The next step after failed attempt number `made`: the schedule's delay, or the later
/// `Retry-After`; failed once the schedule is exhausted.
fn next_after_failure(
    cfg: &DispatcherConfig,
    made: u32,
    now: Timestamp,
    retry_after: Option<Timestamp>,
) -> NextStep {
    match cfg.schedule.delay_after(made) {
        None => NextStep::Failed,
        Some(d) => {
            let at = now.add_millis(ms(d));
            NextStep::RetryAt(retry_after.map_or(at, |r| r.max(at)))
        }
    }
}

/// A failure's effect on the endpoint: disabled once it has failed for `disable_after`.
fn failing(cfg: &DispatcherConfig, webhook: &Webhook, now: Timestamp) -> EndpointChange {
    match webhook.failing_since {
        Some(since) if now.as_millis() - since.as_millis() >= ms(cfg.disable_after) => {
            EndpointChange::Disable(format!(
                "every attempt failed since {} ({} days)",
                rfc3339(since),
                cfg.disable_after.as_secs() / 86_400
            ))
        }
        _ => EndpointChange::Failing,
    }
}

/// The signed POST of `delivery` at `now`.
fn signed_request(
    webhook: &Webhook,
    delivery: &Delivery,
    now: Timestamp,
    timeout: Duration,
) -> Result<WebhookRequest, SendError> {
    let timestamp = now.as_millis().div_euclid(1_000);
    let body = delivery.payload.as_bytes();
    let signature = signing::signature_header(
        &webhook.signing_secrets(now),
        &delivery.message_id,
        timestamp,
        body,
    )
    .map_err(|e| SendError::Refused(format!("the endpoint's secret is unusable: {e}")))?;
    Ok(WebhookRequest {
        url: webhook.url.clone(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), delivery.message_id.clone()),
            ("webhook-timestamp".into(), timestamp.to_string()),
            ("webhook-signature".into(), signature),
        ],
        body: body.to_vec(),
        timeout,
    })
}
