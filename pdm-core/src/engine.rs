//! The engine: runs sources into a telemetry store.
//!
//! ```text
//! sources ──send──▶ bounded queue ──▶ writer: gather ▶ store.write (one transaction) ▶ fire acks
//!                                                                              ▶ live path
//! ```
//!
//! A writer gathers queued batches into one store transaction of at most
//! [`EngineConfig::max_batch_readings`] readings, waiting at most [`EngineConfig::linger_ms`] for
//! more to arrive (group commit: under load, batches grow while the previous one commits; when
//! idle, a lone batch is written at once). Only after the commit does it fire the acks.
//! A failed write is retried with backoff; its acks are never fired before it succeeds.
//! Several writers can commit concurrently ([`EngineConfig::writers`], by default what the
//! store suggests); acknowledgements need no order, and writes are idempotent.
//!
//! With a live path ([`Engine::start_with_live`]), each committed batch is handed to
//! [`Live::offer`] after its acks fired; the live path never waits on ingestion's behalf.
//!
//! Shutdown stops the sources (they stop taking input), then drains the queue, writes what is
//! left, fires its acks and returns.
//!
//! Beside the writers, a housekeeping task prunes dead letters and (when asked) old readings
//! ([`Retention`], [`EngineConfig::retention`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;

use crate::catalog::Catalog;
use crate::config::{ConfigError, ConfigResult};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::model::Batch;
use crate::retention::Retention;
use crate::source::{
    Ack, BatchSink, Shutdown, ShutdownTrigger, Source, SourceBatch, SourceContext,
};
use crate::store::TelemetryStore;

/// Settings of the engine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Places in the queue between sources and the writer, counted in source batches.
    pub queue_capacity: usize,
    /// Most readings written in one transaction.
    pub max_batch_readings: usize,
    /// How long the writer waits for more batches before committing a partial one, in ms.
    /// `0` commits whatever is queued at once (group commit).
    pub linger_ms: u64,
    /// Longest pause between retries of a failed write, in ms.
    pub max_retry_delay_ms: u64,
    /// How long shutdown waits for sources and the last writes, in ms.
    pub shutdown_timeout_ms: u64,
    /// Writers committing batches concurrently; the store's
    /// [`write_concurrency`](TelemetryStore::write_concurrency) when absent.
    pub writers: Option<usize>,
    /// How long dead letters and readings are kept (`[engine.retention]` in the server's file).
    pub retention: Retention,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            max_batch_readings: 20_000,
            linger_ms: 0,
            max_retry_delay_ms: 5_000,
            shutdown_timeout_ms: 30_000,
            writers: None,
            retention: Retention::default(),
        }
    }
}

impl EngineConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> ConfigResult {
        let zero = [
            ("engine.queue_capacity", self.queue_capacity == 0),
            ("engine.max_batch_readings", self.max_batch_readings == 0),
            ("engine.max_retry_delay_ms", self.max_retry_delay_ms == 0),
        ];
        if let Some((setting, _)) = zero.into_iter().find(|(_, is_zero)| *is_zero) {
            return Err(ConfigError::new(setting, "must be at least 1 (got 0)"));
        }
        if let Some(n @ (0 | 65..)) = self.writers {
            return Err(ConfigError::new(
                "engine.writers",
                format!("must be between 1 and 64, or absent for the store's suggestion (got {n})"),
            ));
        }
        self.retention.check()
    }
}

/// A running engine.
pub struct Engine {
    sink: BatchSink,
    catalog: Arc<Catalog>,
    sources_trigger: ShutdownTrigger,
    writer_trigger: ShutdownTrigger,
    writers: Vec<JoinHandle<()>>,
    /// The task pruning dead letters and readings, when a retention limit is set.
    janitor: Option<AbortOnDrop>,
    sources: Vec<(String, JoinHandle<()>)>,
    config: EngineConfig,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Engine {
    /// Starts the writers, with no live path. Must be called inside a Tokio runtime.
    pub fn start(
        store: Arc<dyn TelemetryStore>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        config: EngineConfig,
    ) -> Engine {
        Self::start_with_live(store, catalog, metrics, config, None)
    }

    /// Starts the writers; each committed batch is handed to `live` (after its acks fired),
    /// which scores it. Must be called inside a Tokio runtime.
    pub fn start_with_live(
        store: Arc<dyn TelemetryStore>,
        catalog: Arc<Catalog>,
        metrics: Arc<Metrics>,
        config: EngineConfig,
        live: Option<Arc<Live>>,
    ) -> Engine {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (sources_trigger, _) = ShutdownTrigger::new();
        let (writer_trigger, _) = ShutdownTrigger::new();
        let n = config
            .writers
            .unwrap_or_else(|| store.write_concurrency())
            .clamp(1, 64);
        let queue = Arc::new(Queue {
            handoff: std::sync::Mutex::new(Handoff::default()),
            rx: Mutex::new(rx),
            closing: AtomicBool::new(false),
        });
        let writers = (0..n)
            .map(|_| {
                let writer = Writer {
                    store: store.clone(),
                    metrics: metrics.clone(),
                    config: config.clone(),
                    live: live.clone(),
                };
                tokio::spawn(writer.run(queue.clone(), writer_trigger.subscribe()))
            })
            .collect();
        let janitor = (!config.retention.is_off()).then(|| {
            AbortOnDrop(Some(tokio::spawn(crate::retention::run(
                store.clone(),
                catalog.store().clone(),
                metrics.clone(),
                config.retention.clone(),
            ))))
        });
        Engine {
            sink: BatchSink::new(tx, metrics),
            catalog,
            sources_trigger,
            writer_trigger,
            writers,
            janitor,
            sources: Vec::new(),
            config,
        }
    }

    /// A handle to send batches in (for request handlers and embedding code).
    pub fn sink(&self) -> BatchSink {
        self.sink.clone()
    }

    /// The catalog readings are validated against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// A signal raised when the engine starts shutting down.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.sources_trigger.subscribe()
    }

    /// Runs a source on its own task until shutdown.
    pub fn add_source(&mut self, source: Box<dyn Source>) {
        let name = source.name().to_owned();
        let ctx = SourceContext {
            sink: self.sink.clone(),
            shutdown: self.sources_trigger.subscribe(),
            catalog: self.catalog.clone(),
        };
        let task_name = name.clone();
        let handle = tokio::spawn(async move {
            match source.run(ctx).await {
                Ok(()) => tracing::info!(source = %task_name, "source stopped"),
                Err(e) => tracing::error!(source = %task_name, error = %e, "source failed"),
            }
        });
        self.sources.push((name, handle));
    }

    /// Stops intake, writes and acknowledges everything queued, and returns.
    pub async fn shutdown(self) {
        if let Some(janitor) = self.janitor {
            // First, so that a pruning pass never competes with the writers draining the queue
            // (SQLite has one writer connection). Each chunk commits on its own: stopping between
            // or during chunks loses nothing.
            janitor.stop().await;
        }
        let timeout = Duration::from_millis(self.config.shutdown_timeout_ms);
        self.sources_trigger.trigger();
        for (name, handle) in self.sources {
            if tokio::time::timeout(timeout, handle).await.is_err() {
                tracing::warn!(source = %name, "source did not stop in time");
            }
        }
        self.writer_trigger.trigger();
        drop(self.sink);
        let writers = futures_join_all(self.writers);
        if tokio::time::timeout(timeout, writers).await.is_err() {
            tracing::warn!("writers did not finish in time; unwritten batches stay unacknowledged");
        }
    }
}

/// A task aborted when dropped: an engine dropped without [`Engine::shutdown`] leaves no
/// retention task running against the store.
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    /// Aborts the task and waits until it is gone.
    async fn stop(mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
            if let Err(e) = task.await {
                if e.is_panic() {
                    tracing::error!("the retention task panicked");
                }
            }
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}

/// Waits for every task, in order (each runs on its own regardless).
async fn futures_join_all(handles: Vec<JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// The queue the writers share. A writer holds the lock only while it gathers a batch, so one
/// writer gathers while others commit.
struct Queue {
    rx: Mutex<mpsc::Receiver<SourceBatch>>,
    /// Set once shutdown began: the queue refuses new batches and is being drained.
    closing: AtomicBool,
    /// Hands committed batches to the live path in the order they were gathered.
    handoff: std::sync::Mutex<Handoff>,
}

/// Writers commit concurrently, so batches commit in any order; the live path must see them in
/// the order they left the queue (the order they arrived), or a batch that commits before an
/// earlier one makes the earlier one's readings late: not scored, and a false stale condition.
/// Each gathered batch takes a sequence number (under the queue's lock); once committed (or
/// given up) it waits here until every batch before it has been handed over.
#[derive(Default)]
struct Handoff {
    /// The next sequence number to gather.
    gathered: u64,
    /// The next sequence number to hand to the live path.
    next: u64,
    /// Committed (`Some`) or failed (`None`) batches waiting for those before them.
    waiting: std::collections::BTreeMap<u64, Option<Batch>>,
}

struct Writer {
    store: Arc<dyn TelemetryStore>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
    live: Option<Arc<Live>>,
}

impl Writer {
    async fn run(self, queue: Arc<Queue>, mut stop: Shutdown) {
        let mut acks: Vec<Ack> = Vec::new();
        loop {
            let batch = {
                let mut rx = queue.rx.lock().await;
                let first = if queue.closing.load(Ordering::Acquire) {
                    rx.recv().await
                } else {
                    tokio::select! {
                        item = rx.recv() => item,
                        _ = stop.wait() => {
                            // Refuse new batches but keep those already queued.
                            rx.close();
                            queue.closing.store(true, Ordering::Release);
                            continue;
                        }
                    }
                };
                let Some(first) = first else { break };
                let mut batch = first.batch;
                acks.push(first.ack);
                self.gather(&mut rx, &mut batch, &mut acks).await;
                let mut handoff = queue.handoff.lock().unwrap_or_else(|e| e.into_inner());
                let seq = handoff.gathered;
                handoff.gathered += 1;
                (seq, batch)
            };
            let (seq, batch) = batch;
            let closing = queue.closing.load(Ordering::Acquire);
            if self.write(&batch, closing).await {
                for ack in acks.drain(..) {
                    ack.fire();
                }
                // After the acks, and without waiting: detection never holds back ingestion.
                self.hand_off(&queue, seq, Some(batch));
            } else {
                // Not stored: dropping the acks tells the sources not to acknowledge upstream.
                acks.clear();
                self.hand_off(&queue, seq, None);
            }
        }
        tracing::debug!("writer finished");
    }

    /// Offers batch `seq` (`None`: not stored) and every waiting batch after it to the live
    /// path, in gathering order. Never waits on the live path (`offer` does not block).
    fn hand_off(&self, queue: &Queue, seq: u64, batch: Option<Batch>) {
        let Some(live) = &self.live else { return };
        let mut handoff = queue.handoff.lock().unwrap_or_else(|e| e.into_inner());
        handoff.waiting.insert(seq, batch);
        loop {
            let next = handoff.next;
            let Some(ready) = handoff.waiting.remove(&next) else {
                break;
            };
            handoff.next += 1;
            if let Some(batch) = ready {
                live.offer(batch);
            }
        }
    }

    /// Adds queued batches to `batch` until the size limit or the linger time is reached.
    async fn gather(
        &self,
        rx: &mut mpsc::Receiver<SourceBatch>,
        batch: &mut Batch,
        acks: &mut Vec<Ack>,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.config.linger_ms);
        while batch.readings.len() < self.config.max_batch_readings {
            let next = match rx.try_recv() {
                Ok(item) => Some(item),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) if self.config.linger_ms == 0 => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .ok()
                        .flatten()
                }
            };
            let Some(mut item) = next else { break };
            batch.append(&mut item.batch);
            acks.push(item.ack);
        }
    }

    /// Writes with retries; true once committed.
    async fn write(&self, batch: &Batch, closing: bool) -> bool {
        let mut delay = Duration::from_millis(50);
        let max_delay = Duration::from_millis(self.config.max_retry_delay_ms);
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            match self.store.write(batch).await {
                Ok(outcome) => {
                    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    self.metrics
                        .written(outcome.inserted, outcome.duplicates, micros);
                    return true;
                }
                Err(e) => {
                    attempts += 1;
                    self.metrics.write_error();
                    let give_up = !e.is_transient() && attempts >= 3 || closing && attempts >= 5;
                    if give_up {
                        tracing::error!(
                            error = %e,
                            readings = batch.readings.len(),
                            attempts,
                            "store write failed; batch left unacknowledged"
                        );
                        return false;
                    }
                    tracing::warn!(error = %e, attempts, "store write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(max_delay);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_the_bad_setting() {
        assert_eq!(EngineConfig::default().check(), Ok(()));
        let cases = [
            (
                EngineConfig {
                    queue_capacity: 0,
                    ..EngineConfig::default()
                },
                "engine.queue_capacity",
            ),
            (
                EngineConfig {
                    max_batch_readings: 0,
                    ..EngineConfig::default()
                },
                "engine.max_batch_readings",
            ),
            (
                EngineConfig {
                    max_retry_delay_ms: 0,
                    ..EngineConfig::default()
                },
                "engine.max_retry_delay_ms",
            ),
            (
                EngineConfig {
                    writers: Some(65),
                    ..EngineConfig::default()
                },
                "engine.writers",
            ),
            (
                EngineConfig {
                    retention: Retention {
                        interval_s: 0,
                        ..Retention::default()
                    },
                    ..EngineConfig::default()
                },
                "engine.retention.interval_s",
            ),
        ];
        for (config, setting) in cases {
            let e = config.check().expect_err(setting);
            assert_eq!(e.setting, setting);
            assert!(e.to_string().starts_with(&format!("{setting}: ")), "{e}");
        }
    }
}
