//! Publishing telemetry at QoS 1, for the simulator CLI, tests and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, NetworkOptions, Outgoing, QoS,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::IngestError;

/// What the connection task reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    /// PUBACKs received.
    acked: u64,
    /// Messages that were in flight when a clean-session connection dropped: the broker and
    /// the client both forgot them.
    lost: u64,
    connected: bool,
    /// Connections made so far.
    connections: u64,
}

/// Publishes payloads at QoS 1 and tells when the broker has acknowledged them all.
///
/// ```no_run
/// # async fn demo() -> Result<(), pdm_ingest::IngestError> {
/// use std::time::Duration;
/// use pdm_ingest::mqtt::MqttPublisherConfig;
///
/// let publisher = MqttPublisherConfig::new("mqtt://127.0.0.1:1883").connect()?;
/// publisher
///     .publish("pdm/pump-1/telemetry", br#"{"ts":1767225600000,"values":{"temperature":61.5}}"#.to_vec())
///     .await?;
/// publisher.disconnect(Duration::from_secs(10)).await?; // after every PUBACK
/// # Ok(()) }
/// ```
pub struct MqttPublisher {
    client: AsyncClient,
    published: AtomicU64,
    progress: watch::Receiver<Progress>,
    task: JoinHandle<()>,
    broker: String,
}

impl std::fmt::Debug for MqttPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttPublisher")
            .field("broker", &self.broker)
            .field("published", &self.published())
            .field("acked", &self.acked())
            .finish()
    }
}

impl MqttPublisher {
    pub(super) fn start(
        options: MqttOptions,
        broker: String,
        max_inflight: usize,
        connect_timeout_secs: u64,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> Self {
        let (client, mut eventloop) = AsyncClient::new(options, max_inflight.max(16));
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(connect_timeout_secs);
        eventloop.set_network_options(network);
        let (tx, progress) = watch::channel(Progress::default());
        let in_flight = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(drive(
            eventloop,
            tx,
            broker.clone(),
            backoff_min,
            backoff_max,
            in_flight,
        ));
        Self {
            client,
            published: AtomicU64::new(0),
            progress,
            task,
            broker,
        }
    }

    /// Queues `payload` for `topic` at QoS 1; waits while the in-flight window is full.
    pub async fn publish(&self, topic: &str, payload: Vec<u8>) -> Result<(), IngestError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| IngestError::Mqtt(format!("cannot publish to {topic:?}: {e}")))?;
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Messages queued so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// PUBACKs received so far.
    pub fn acked(&self) -> u64 {
        self.progress.borrow().acked
    }

    /// Waits until the broker has accepted the connection.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), IngestError> {
        let mut rx = self.progress.clone();
        let outcome = tokio::time::timeout(timeout, rx.wait_for(|p| p.connected))
            .await
            .map(|r| r.map(|_| ()));
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(IngestError::Mqtt("the connection task stopped".into())),
            Err(_) => Err(IngestError::Timeout(format!(
                "no connection to {} within {timeout:?}",
                self.broker
            ))),
        }
    }

    /// Waits until every message published so far is acknowledged by the broker (PUBACK).
    /// Fails when some were lost to a dropped clean-session connection, or on timeout.
    pub async fn wait_acked(&self, timeout: Duration) -> Result<(), IngestError> {
        let target = self.published();
        let mut rx = self.progress.clone();
        let done = tokio::time::timeout(timeout, rx.wait_for(|p| p.acked + p.lost >= target))
            .await
            .map(|r| r.map(|_| ()));
        let p = *self.progress.borrow();
        match done {
            Ok(Ok(())) if p.lost == 0 => Ok(()),
            Ok(Ok(())) => Err(IngestError::Mqtt(format!(
                "{} of {target} messages were lost when the connection dropped (enable \
                 persistent_session to have them sent again)",
                p.lost
            ))),
            Ok(Err(_)) => Err(IngestError::Mqtt("the connection task stopped".into())),
            Err(_) => Err(IngestError::Timeout(format!(
                "{} of {target} messages still unacknowledged after {timeout:?}",
                target.saturating_sub(p.acked + p.lost)
            ))),
        }
    }

    /// Waits for every PUBACK (up to `timeout`), then disconnects cleanly.
    pub async fn disconnect(self, timeout: Duration) -> Result<(), IngestError> {
        let waited = self.wait_acked(timeout).await;
        if self.client.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        } else {
            self.task.abort();
        }
        waited
    }
}

async fn drive(
    mut eventloop: EventLoop,
    progress: watch::Sender<Progress>,
    broker: String,
    backoff_min: Duration,
    backoff_max: Duration,
    in_flight: Arc<AtomicU64>,
) {
    let mut backoff = backoff_min;
    let mut failures = 0u32;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                backoff = backoff_min;
                failures = 0;
                // With a resumed session the client sends what was in flight again (counted
                // anew as it goes out); without one, both sides forgot it and no PUBACK will
                // come.
                let unacked = in_flight.swap(0, Ordering::Relaxed);
                progress.send_modify(|p| {
                    if !ack.session_present && p.connections > 0 {
                        p.lost += unacked;
                    }
                    p.connected = true;
                    p.connections += 1;
                });
                tracing::debug!(%broker, "MQTT publisher connected");
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                in_flight.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Incoming::PubAck(_))) => {
                let _ = in_flight.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
                progress.send_modify(|p| p.acked += 1);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
            Ok(_) => {}
            Err(rumqttc::ConnectionError::RequestsDone) => break,
            Err(e) => {
                progress.send_modify(|p| p.connected = false);
                failures = failures.saturating_add(1);
                tracing::warn!(
                    %broker,
                    attempt = failures,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    error = %e,
                    "MQTT publisher connection failed"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(backoff_max);
            }
        }
    }
    progress.send_modify(|p| p.connected = false);
}
