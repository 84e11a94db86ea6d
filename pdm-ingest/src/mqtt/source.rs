//! The MQTT source: subscribe, decode, store, and only then acknowledge.
//!
//! Three tasks share the work so the connection keeps being served while the store works:
//!
//! ```text
//! event loop ──Publish──▶ processor ──(batch, Ack)──▶ engine
//!     ▲                       │
//!     │                  (PUBACK info, Committed)
//!     │                       ▼
//!     └──── client.ack ◀── acker (waits for each commit, in arrival order)
//! ```
//!
//! A semaphore of `max_inflight` permits, taken when a message arrives and released when it is
//! acknowledged (or given up), bounds memory. Acknowledgements are tied to the connection the
//! message came on: after a reconnect the broker redelivers what was not acknowledged, and an
//! acknowledgement carried over to the new connection could name a packet id the broker has
//! since given to another message.

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use pdm_core::source::SourceError;
use pdm_core::{Ack, BatchSink, Committed, Origin, Shutdown, Source, SourceContext, Timestamp};
use rumqttc::{
    AsyncClient, ClientError, Event, EventLoop, Incoming, NetworkOptions, Outgoing, Publish, QoS,
    SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::SourceSettings;
use crate::{Intake, Prepared};

/// Where the source stands with its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MqttState {
    /// Not connected yet.
    Connecting,
    /// Connected; the subscription is not confirmed yet.
    Connected,
    /// Connected and subscribed: messages flow.
    Subscribed,
    /// The connection failed; reconnecting with backoff.
    Disconnected,
    /// The source has stopped.
    Stopped,
}

/// A view of a source's connection state, for health checks and tests.
#[derive(Debug, Clone)]
pub struct MqttStatus(watch::Receiver<MqttState>);

impl MqttStatus {
    /// The current state.
    pub fn state(&self) -> MqttState {
        *self.0.borrow()
    }

    /// Waits until the state is `wanted`; false if it was not reached within `timeout`.
    pub async fn wait_for(&mut self, wanted: MqttState, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.0.wait_for(|s| *s == wanted))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// The MQTT source, built by [`super::MqttSourceConfig::build`]; run it with
/// [`pdm_core::Engine::add_source`].
pub struct MqttSource {
    settings: SourceSettings,
    intake: Arc<Intake>,
    status: watch::Sender<MqttState>,
}

impl std::fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSource")
            .field("broker", &self.settings.broker)
            .field("subscription", &self.settings.subscription)
            .finish_non_exhaustive()
    }
}

impl MqttSource {
    pub(super) fn new(settings: SourceSettings, intake: Arc<Intake>) -> Self {
        let (status, _) = watch::channel(MqttState::Connecting);
        Self {
            settings,
            intake,
            status,
        }
    }

    /// A view of the connection state; take it before handing the source to the engine.
    pub fn status(&self) -> MqttStatus {
        MqttStatus(self.status.subscribe())
    }

    #[cfg(test)]
    pub(super) fn settings(&self) -> &SourceSettings {
        &self.settings
    }

    /// The topic filter subscribed to (with its `$share/<group>/` prefix when shared).
    pub fn subscription(&self) -> &str {
        &self.settings.subscription
    }
}

#[async_trait]
impl Source for MqttSource {
    fn name(&self) -> &str {
        "mqtt"
    }

    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<(), SourceError> {
        let status = self.status.clone();
        self.run_until_shutdown(ctx).await;
        status.send_replace(MqttState::Stopped);
        Ok(())
    }
}

/// A message taken from the broker, holding its place in the in-flight budget.
struct Work {
    publish: Publish,
    permit: OwnedSemaphorePermit,
    generation: u64,
}

/// A message handed to the engine, waiting for its commit before it is acknowledged.
struct Pending {
    /// What the acknowledgement needs (QoS and packet id; the payload is dropped by now).
    /// `None` for QoS 0 messages, which are not acknowledged.
    ack: Option<Publish>,
    /// `None` when there was nothing to store.
    committed: Option<Committed>,
    permit: OwnedSemaphorePermit,
    generation: u64,
    topic: String,
}

/// Connection generations: acknowledgements are sent only on the connection their message
/// arrived on. The lock makes "check the generation, queue the ack" atomic with respect to
/// "start a new generation, drop queued acks".
struct AckGate {
    generation: Mutex<u64>,
}

/// How long an acknowledgement waits for room in the client's request queue before the
/// message is left for redelivery.
const ACK_QUEUE_PATIENCE: Duration = Duration::from_secs(5);

/// How long a stopping source waits for the broker to close the connection after DISCONNECT.
const DISCONNECT_PATIENCE: Duration = Duration::from_secs(3);

impl AckGate {
    fn lock(&self) -> MutexGuard<'_, u64> {
        // The guarded value is a plain counter: a panic elsewhere cannot leave it inconsistent.
        self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> u64 {
        *self.lock()
    }

    /// Starts a new generation and drops the connection; queued acknowledgements are
    /// discarded (the broker redelivers those messages).
    fn new_connection(&self, eventloop: &mut EventLoop) {
        let mut g = self.lock();
        *g += 1;
        eventloop.clean();
    }

    /// Queues the acknowledgement if its connection is still the current one.
    async fn ack(&self, client: &AsyncClient, publish: &Publish, generation: u64) -> bool {
        let give_up = Instant::now() + ACK_QUEUE_PATIENCE;
        loop {
            {
                let g = self.lock();
                if *g != generation {
                    return false;
                }
                match client.try_ack(publish) {
                    Ok(()) => return true,
                    Err(ClientError::TryRequest(_)) if Instant::now() < give_up => {}
                    Err(_) => return false,
                }
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// What woke the session's loop.
enum Step {
    Stop,
    Reconnect,
    Permit(Result<OwnedSemaphorePermit, tokio::sync::AcquireError>),
    Polled(Result<Event, rumqttc::ConnectionError>),
}

impl MqttSource {
    async fn run_until_shutdown(self, ctx: SourceContext) {
        let SourceContext { sink, shutdown, .. } = ctx;
        let s = &self.settings;
        let mut session = Session::start(s, &self.intake, &self.status, sink, shutdown);
        tracing::info!(broker = %s.broker, subscription = %s.subscription, "MQTT source starting");
        session.serve().await;
        session.finish().await;
        tracing::info!(broker = %s.broker, "MQTT source stopped");
    }
}

/// One run of the source: the connection, the processor and acker tasks, and the state of the
/// loop that serves the connection.
struct Session<'a> {
    s: &'a SourceSettings,
    status: &'a watch::Sender<MqttState>,
    sink: BatchSink,
    shutdown: Shutdown,
    client: AsyncClient,
    eventloop: EventLoop,
    gate: Arc<AckGate>,
    permits: Arc<Semaphore>,
    reconnect: Arc<Notify>,
    stored_any: Arc<AtomicBool>,
    work_tx: mpsc::Sender<Work>,
    processor: JoinHandle<()>,
    acker: JoinHandle<()>,
    backoff: Duration,
    failures: u32,
    /// Pause before a reconnection asked for redelivery: grows while nothing gets stored,
    /// so a store that keeps failing is not hammered with redeliveries.
    redelivery_pause: Duration,
    /// Messages received while every in-flight permit is taken, with the connection they
    /// came on. The loop must keep polling the event loop even then: rumqttc sends the
    /// queued PUBACKs (which free permits) only while it is polled, so waiting for a permit
    /// without polling would starve the acknowledgements and stall the session. The queue
    /// stays within the broker's own in-flight window (see docs/ingestion.md).
    overflow: VecDeque<(Publish, u64)>,
    overflow_warned: bool,
}

impl<'a> Session<'a> {
    /// Creates the client and spawns the processor and the acker; connecting happens when
    /// the event loop is first polled.
    fn start(
        s: &'a SourceSettings,
        intake: &Arc<Intake>,
        status: &'a watch::Sender<MqttState>,
        sink: BatchSink,
        shutdown: Shutdown,
    ) -> Self {
        let (client, mut eventloop) = AsyncClient::new(s.options.clone(), s.request_capacity);
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(s.connect_timeout_secs);
        eventloop.set_network_options(network);

        let gate = Arc::new(AckGate {
            generation: Mutex::new(0),
        });
        let permits = Arc::new(Semaphore::new(s.max_inflight));
        let reconnect = Arc::new(Notify::new());
        let stored_any = Arc::new(AtomicBool::new(false));
        let (work_tx, work_rx) = mpsc::channel::<Work>(s.max_inflight);
        let (ack_tx, ack_rx) = mpsc::channel::<Pending>(s.max_inflight);
        let processor = tokio::spawn(process(
            work_rx,
            ack_tx,
            intake.clone(),
            sink.clone(),
            shutdown.clone(),
            reconnect.clone(),
        ));
        let acker = tokio::spawn(acknowledge(
            ack_rx,
            client.clone(),
            gate.clone(),
            reconnect.clone(),
            stored_any.clone(),
        ));
        Self {
            s,
            status,
            sink,
            shutdown,
            client,
            eventloop,
            gate,
            permits,
            reconnect,
            stored_any,
            work_tx,
            processor,
            acker,
            backoff: s.backoff_min,
            failures: 0,
            redelivery_pause: s.backoff_min,
            overflow: VecDeque::new(),
            overflow_warned: false,
        }
    }

    /// Serves the connection until shutdown, or until the engine stops taking batches.
    async fn serve(&mut self) {
        loop {
            let step = tokio::select! {
                biased;
                _ = self.shutdown.wait() => Step::Stop,
                _ = self.reconnect.notified() => Step::Reconnect,
                permit = self.permits.clone().acquire_owned(), if !self.overflow.is_empty() => {
                    Step::Permit(permit)
                }
                polled = self.eventloop.poll() => Step::Polled(polled),
            };
            let flow = match step {
                Step::Stop => ControlFlow::Break(()),
                Step::Reconnect => self.reconnect_for_redelivery().await,
                Step::Polled(Err(e)) => self.connection_failed(e).await,
                Step::Polled(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                    self.connected(&ack);
                    ControlFlow::Continue(())
                }
                Step::Polled(Ok(Event::Incoming(Incoming::SubAck(ack)))) => {
                    self.subscribed(&ack);
                    ControlFlow::Continue(())
                }
                Step::Permit(Err(_)) => ControlFlow::Break(()),
                Step::Permit(Ok(permit)) => self.take_from_overflow(permit).await,
                Step::Polled(Ok(Event::Incoming(Incoming::Publish(publish)))) => {
                    self.received(publish).await
                }
                Step::Polled(Ok(_)) => ControlFlow::Continue(()),
            };
            if flow.is_break() {
                return;
            }
        }
    }

    /// Drops the connection so that the broker redelivers what was not stored, after a pause
    /// that grows while nothing gets stored.
    async fn reconnect_for_redelivery(&mut self) -> ControlFlow<()> {
        let s = self.s;
        if self.stored_any.swap(false, Ordering::Relaxed) {
            self.redelivery_pause = s.backoff_min;
        }
        tracing::warn!(
            broker = %s.broker,
            retry_in_ms = u64::try_from(self.redelivery_pause.as_millis()).unwrap_or(u64::MAX),
            "reconnecting so the broker redelivers messages that were not stored"
        );
        self.drop_connection();
        if sleep_or_shutdown(self.redelivery_pause, &mut self.shutdown).await {
            return ControlFlow::Break(());
        }
        self.redelivery_pause = (self.redelivery_pause * 2).min(s.backoff_max);
        ControlFlow::Continue(())
    }

    /// Waits with exponential backoff before the event loop connects again.
    async fn connection_failed(&mut self, e: rumqttc::ConnectionError) -> ControlFlow<()> {
        let s = self.s;
        self.drop_connection();
        self.failures = self.failures.saturating_add(1);
        tracing::warn!(
            broker = %s.broker,
            attempt = self.failures,
            retry_in_ms = u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX),
            error = %e,
            "MQTT connection failed"
        );
        if sleep_or_shutdown(self.backoff, &mut self.shutdown).await {
            return ControlFlow::Break(());
        }
        self.backoff = (self.backoff * 2).min(s.backoff_max);
        ControlFlow::Continue(())
    }

    /// Starts a new connection generation; the messages held in overflow are not
    /// acknowledged, so the broker redelivers them on the new connection.
    fn drop_connection(&mut self) {
        self.gate.new_connection(&mut self.eventloop);
        self.overflow.clear();
        self.status.send_replace(MqttState::Disconnected);
    }

    /// Resets the backoff and (re)subscribes.
    fn connected(&mut self, ack: &rumqttc::ConnAck) {
        let s = self.s;
        self.backoff = s.backoff_min;
        self.failures = 0;
        tracing::info!(
            broker = %s.broker,
            session_present = ack.session_present,
            "MQTT connected"
        );
        self.status.send_replace(MqttState::Connected);
        // Subscribing again on a resumed session is harmless and picks up a changed
        // topic filter.
        if let Err(e) = self.client.try_subscribe(&s.subscription, QoS::AtLeastOnce) {
            tracing::error!(error = %e, "cannot queue the MQTT subscription");
        }
    }

    fn subscribed(&mut self, ack: &rumqttc::SubAck) {
        let s = self.s;
        let refused = ack
            .return_codes
            .iter()
            .any(|c| matches!(c, SubscribeReasonCode::Failure));
        if refused {
            tracing::error!(
                subscription = %s.subscription,
                "the broker refused the subscription (check its access control)"
            );
        } else {
            tracing::info!(subscription = %s.subscription, "MQTT subscribed");
            self.status.send_replace(MqttState::Subscribed);
        }
    }

    /// A permit came free while messages waited: the oldest one goes to the processor.
    async fn take_from_overflow(&mut self, permit: OwnedSemaphorePermit) -> ControlFlow<()> {
        let Some((publish, generation)) = self.overflow.pop_front() else {
            return ControlFlow::Continue(());
        };
        self.hand_to_processor(Work {
            publish,
            permit,
            generation,
        })
        .await
    }

    /// Hands a message with its permit to the processor. The work channel holds as many items
    /// as there are permits, so it is never full for a holder of one; it is closed only when
    /// the processor stopped (the engine is closing), which breaks the loop.
    async fn hand_to_processor(&mut self, work: Work) -> ControlFlow<()> {
        if self.work_tx.send(work).await.is_err() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// A message arrived: to the processor when a permit is free and none waits before it,
    /// else into overflow.
    async fn received(&mut self, publish: Publish) -> ControlFlow<()> {
        let s = self.s;
        self.sink.metrics().message(Origin::Mqtt);
        let generation = self.gate.current();
        let permit = if self.overflow.is_empty() {
            self.permits.clone().try_acquire_owned().ok()
        } else {
            None
        };
        match permit {
            Some(permit) => {
                let work = Work {
                    publish,
                    permit,
                    generation,
                };
                if self.hand_to_processor(work).await.is_break() {
                    return ControlFlow::Break(());
                }
            }
            None => {
                self.overflow.push_back((publish, generation));
                if self.overflow.len() > s.max_inflight && !self.overflow_warned {
                    self.overflow_warned = true;
                    tracing::warn!(
                        held = self.overflow.len() + s.max_inflight,
                        max_inflight = s.max_inflight,
                        "the broker sends more unacknowledged messages than \
                         mqtt.max_inflight; set its in-flight limit (Mosquitto: \
                         max_inflight_messages) at or below it to bound memory"
                    );
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Shutdown: take no new messages, but keep serving the connection until the
    /// acknowledgements of those already taken are sent, within the timeout; then disconnect.
    async fn finish(self) {
        let Session {
            s,
            client,
            mut eventloop,
            work_tx,
            mut acker,
            processor,
            ..
        } = self;
        drop(work_tx);
        let deadline = Instant::now() + s.shutdown_timeout;
        let drained = loop {
            tokio::select! {
                biased;
                _ = &mut acker => break true,
                _ = tokio::time::sleep_until(deadline) => break false,
                polled = eventloop.poll() => if let Err(e) = polled {
                    tracing::warn!(
                        error = %e,
                        "MQTT connection lost during shutdown; unacknowledged messages will be \
                         redelivered"
                    );
                    break false;
                },
            }
        };
        if !drained {
            tracing::warn!("MQTT shutdown timed out; unacknowledged messages will be redelivered");
            acker.abort();
        }
        processor.abort();
        disconnect(&client, &mut eventloop).await;
    }
}

/// Sleeps, unless shutdown comes first (then true).
async fn sleep_or_shutdown(d: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        biased;
        _ = shutdown.wait() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Sends DISCONNECT after everything queued before it (the acknowledgements), then waits
/// (briefly) for the broker to close the connection.
///
/// The broker closes only after it has read the DISCONNECT, so once it has, it has also read
/// every acknowledgement sent before it. Dropping the socket as soon as DISCONNECT is written
/// is not enough: closing a socket with unread incoming bytes makes the kernel send a reset,
/// and a busy broker that has not yet read the acknowledgements then discards them and
/// redelivers those messages in the next session.
async fn disconnect(client: &AsyncClient, eventloop: &mut EventLoop) {
    if eventloop.network.is_none() || client.try_disconnect().is_err() {
        return;
    }
    let closed = tokio::time::timeout(DISCONNECT_PATIENCE, async {
        let mut sent = false;
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) => sent = true,
                Ok(_) => {}
                // After DISCONNECT the broker's close shows as an error of the next read.
                Err(_) => return sent,
            }
        }
    })
    .await;
    if !matches!(closed, Ok(true)) {
        tracing::debug!("the broker did not close the connection after DISCONNECT in time");
    }
}

/// Decodes each message and sends its batch to the engine, in arrival order.
async fn process(
    mut rx: mpsc::Receiver<Work>,
    acks: mpsc::Sender<Pending>,
    intake: Arc<Intake>,
    sink: BatchSink,
    shutdown: Shutdown,
    reconnect: Arc<Notify>,
) {
    while let Some(work) = rx.recv().await {
        if shutdown.is_triggered() {
            // Not taken: unacknowledged, so the broker delivers it again next session.
            continue;
        }
        let Work {
            publish,
            permit,
            generation,
        } = work;
        let Some(prepared) = prepare(&intake, &publish, &shutdown).await else {
            reconnect.notify_one();
            continue;
        };
        let ack = (publish.qos != QoS::AtMostOnce).then(|| ack_info(&publish));
        let topic = publish.topic;
        let committed = if prepared.batch.is_empty() {
            None
        } else {
            let (ack, committed) = Ack::new();
            if sink.send(prepared.batch, ack).await.is_err() {
                return;
            }
            Some(committed)
        };
        let pending = Pending {
            ack,
            committed,
            permit,
            generation,
            topic,
        };
        if acks.send(pending).await.is_err() {
            return;
        }
    }
}

/// The acknowledgement needs only the QoS and packet id; dropping the payload early keeps
/// memory to the messages not yet decoded.
fn ack_info(p: &Publish) -> Publish {
    let mut ack = Publish::new("", p.qos, Vec::new());
    ack.pkid = p.pkid;
    ack
}

/// Runs the intake, retrying while the catalog store fails transiently. `None` when the
/// message cannot be prepared now (it stays unacknowledged).
async fn prepare(intake: &Intake, publish: &Publish, shutdown: &Shutdown) -> Option<Prepared> {
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        let now = Timestamp::now();
        match intake
            .prepare_topic(Origin::Mqtt, &publish.topic, &publish.payload, now)
            .await
        {
            Ok(p) => return Some(p),
            Err(e) => {
                attempts += 1;
                if shutdown.is_triggered() || (!e.is_transient() && attempts >= 3) {
                    tracing::error!(
                        topic = %publish.topic,
                        error = %e,
                        attempts,
                        "cannot validate MQTT message; left unacknowledged for redelivery"
                    );
                    return None;
                }
                tracing::warn!(topic = %publish.topic, error = %e, attempts, "catalog store failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Acknowledges each message once its batch is durable, in arrival order.
async fn acknowledge(
    mut rx: mpsc::Receiver<Pending>,
    client: AsyncClient,
    gate: Arc<AckGate>,
    reconnect: Arc<Notify>,
    stored_any: Arc<AtomicBool>,
) {
    while let Some(p) = rx.recv().await {
        let stored = match p.committed {
            None => true,
            Some(c) => c.wait().await.is_ok(),
        };
        if !stored {
            tracing::warn!(
                topic = %p.topic,
                "batch was not stored; MQTT message left unacknowledged for redelivery"
            );
            // The broker redelivers only on a new connection.
            reconnect.notify_one();
            continue;
        }
        stored_any.store(true, Ordering::Relaxed);
        if let Some(ack) = &p.ack {
            if !gate.ack(&client, ack, p.generation).await {
                tracing::debug!(
                    topic = %p.topic,
                    "message came on an earlier connection; the broker redelivers it"
                );
            }
        }
        drop(p.permit);
    }
}
