//! The ingestion seam: sources push batches into the engine and learn when they are durable.
//!
//! A source (MQTT subscriber, HTTP handler, simulator, or an embedding application's own) hands
//! each batch to a [`BatchSink`] together with an [`Ack`]. The engine fires the acknowledgement
//! only after the batch is committed to the store; a source that acknowledges upstream (an MQTT
//! PUBACK) does so only then, so nothing acknowledged is ever lost. An ack that is dropped
//! unfired means the batch was not stored: the source must not acknowledge upstream.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::catalog::Catalog;
use crate::metrics::Metrics;
use crate::model::Batch;
use crate::store::BoxError;

/// Proof of durability travelling with a batch: fired by the engine after commit.
#[derive(Debug)]
pub struct Ack(Option<oneshot::Sender<()>>);

/// The receiving side of an [`Ack`]: resolves when the batch is durable.
#[derive(Debug)]
pub struct Committed(oneshot::Receiver<()>);

impl Ack {
    /// A new ack and the handle that learns of its firing.
    pub fn new() -> (Ack, Committed) {
        let (tx, rx) = oneshot::channel();
        (Ack(Some(tx)), Committed(rx))
    }

    /// An ack nobody waits for.
    pub fn none() -> Ack {
        Ack(None)
    }

    /// Fires the ack: the batch is durable.
    pub fn fire(mut self) {
        if let Some(tx) = self.0.take() {
            // The waiter may have given up (client disconnected); the data is stored regardless.
            let _ = tx.send(());
        }
    }
}

impl Committed {
    /// Waits until the batch is durable. `Err` when the engine stopped without storing it.
    pub async fn wait(self) -> Result<(), NotCommitted> {
        self.0.await.map_err(|_| NotCommitted)
    }
}

/// The engine stopped before the batch was stored; it was not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine stopped before the batch was stored")]
pub struct NotCommitted;

/// A batch on its way to the store, with its acknowledgement.
#[derive(Debug)]
pub struct SourceBatch {
    /// What to store.
    pub batch: Batch,
    /// Fired after the batch is durable.
    pub ack: Ack,
}

/// The engine is not accepting batches any more (shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the engine is shutting down and accepts no more data")]
pub struct EngineClosed;

/// Where sources send batches: a bounded queue into the engine.
///
/// [`BatchSink::send`] waits while the queue is full, so a fast producer is slowed to the pace
/// of the store (backpressure) and memory stays bounded.
#[derive(Debug, Clone)]
pub struct BatchSink {
    tx: mpsc::Sender<SourceBatch>,
    metrics: Arc<Metrics>,
}

impl BatchSink {
    pub(crate) fn new(tx: mpsc::Sender<SourceBatch>, metrics: Arc<Metrics>) -> Self {
        Self { tx, metrics }
    }

    /// Queues a batch; waits while the queue is full.
    pub async fn send(&self, batch: Batch, ack: Ack) -> Result<(), EngineClosed> {
        self.metrics.received(batch.readings.len());
        for d in &batch.dead_letters {
            self.metrics.dead_letter(d.kind);
        }
        self.tx
            .send(SourceBatch { batch, ack })
            .await
            .map_err(|_| EngineClosed)
    }

    /// Queues a batch and waits until it is durable.
    pub async fn send_and_wait(&self, batch: Batch) -> Result<(), NotCommitted> {
        let (ack, committed) = Ack::new();
        self.send(batch, ack).await.map_err(|_| NotCommitted)?;
        committed.wait().await
    }

    /// Free places in the queue.
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    /// Size of the queue.
    pub fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// The metrics this sink counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

/// Tells long-running tasks to stop taking new input.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Raises a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    /// A trigger and its first receiver.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Signals every receiver.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// True once shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is requested (immediately if it was).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: treat it as a shutdown.
        let _ = self.0.wait_for(|v| *v).await;
    }
}

/// What a source gets to run with.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// Where to send batches.
    pub sink: BatchSink,
    /// Signals the source to stop taking input; it returns after handing off what it has.
    pub shutdown: Shutdown,
    /// Machines and sensors, for validation.
    pub catalog: Arc<Catalog>,
}

/// Errors that end a source.
pub type SourceError = BoxError;

/// A long-running producer of readings.
#[async_trait]
pub trait Source: Send + 'static {
    /// Name for logs.
    fn name(&self) -> &str;

    /// Runs until shutdown is signalled (then returns `Ok`) or a fatal error.
    async fn run(self: Box<Self>, ctx: SourceContext) -> Result<(), SourceError>;
}
