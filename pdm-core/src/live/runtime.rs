//! The owners: every machine's live state in exactly one task, fed after the durable write.
//!
//! ```text
//! engine writer ── commit ▶ fire acks ▶ Live::offer(batch) ──try_send──▶ owner k (by key hash)
//!                                                                          │ aligner ▶ model
//!                                                                          ▼
//!                                             prediction writer ◀── predictions (bounded)
//! ```
//!
//! - **Never in the way of ingestion.** [`Live::offer`] is called after the acks are fired and
//!   never waits: when an owner's queue is full the batch is skipped for detection (counted in
//!   [`LiveSnapshot::readings_skipped`](super::LiveSnapshot)) and the owner marks the machines
//!   of the skipped batch for a catch-up; the alarm stage, too, reads the skipped readings
//!   back before the machine's next batch. Detection never re-reads what was just written,
//!   except to catch up.
//! - **Catch-up** is one rule for a restart, a model swap and a skipped batch: the owner reads
//!   the machine's stored readings from a little before the last scored row (one read, at most
//!   [`LiveConfig::catch_up_s`] of row time), feeds them to a fresh aligner, warms the model on
//!   the rows scored before and scores the rows after. So a restart resumes within one window,
//!   and a swap loses no row. A machine's first model scores from the oldest reading the owner
//!   saw without a model (at most `catch_up_s` back): the rows that arrived between the
//!   activation and the owner learning of it are scored too.
//! - **Predictions** go to one writer task through a bounded queue (an owner waits when it is
//!   full, which only slows detection) and are stored in batches, idempotently.
//! - **Stale data**: a channel missing for longer than the model's `max_gap_ms` gives no score
//!   and a [`LiveEvent::Stale`]; the first row after it gives [`LiveEvent::Fresh`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::alarms::{AlarmStage, Alarms, StageInput};
use super::config::{key_hash, LiveConfig};
use super::metrics::{add, LiveMetrics, LiveSnapshot};
use super::model::{LiveModel, ModelFactory};
use super::registry::{self, ModelParameters, RegistryError};
use crate::align::{Aligned, Aligner};
use crate::bus::{Bus, PushKind};
use crate::ids::{MachineKey, SensorKey};
use crate::model::{Batch, MachineRangeQuery, Reading, Timestamp};
use crate::prediction::{Contribution, Prediction};
use crate::store::{JobQuery, JobStatus, ModelId, NewJob, Store, StoreError};

/// How often an owner looks up a machine's active model in the store, besides reloads (an
/// activation on another worker reaches it so).
const MODEL_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// How often an owner lets time pass for its alarms (on/off delays, stale data, escalation by
/// duration, shelf expiry) when no data comes.
const ALARM_TICK: Duration = Duration::from_secs(1);

/// The replay buffer and per-subscriber capacity of the bus a [`Live::start`] makes.
const BUS_REPLAY: usize = 10_000;
const BUS_CHANNEL: usize = 4_096;

/// What happens on the live path that others (the alarm engine, live push) react to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LiveEvent {
    /// Some channels of a machine have had no value for longer than the model's `max_gap_ms`
    /// since `ts`: its rows are not scored until they come back.
    Stale {
        /// The machine.
        machine: MachineKey,
        /// The first instant without a row.
        ts: Timestamp,
        /// The stale channels.
        channels: Vec<SensorKey>,
    },
    /// A machine's rows are scored again after a stale condition.
    Fresh {
        /// The machine.
        machine: MachineKey,
        /// The first row scored again.
        ts: Timestamp,
    },
    /// A machine's active model changed (or it got its first).
    ModelLoaded {
        /// The machine.
        machine: MachineKey,
        /// The model now scoring it.
        model: ModelId,
    },
}

/// Where a machine is on the live path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveState {
    /// No active model: nothing is scored (auto-training may be on its way).
    NoModel,
    /// The active model could not be loaded; see the log and the model's file.
    ModelError,
    /// The model's window is filling: the first score comes after its warm-up rows.
    Warming,
    /// Rows are scored.
    Scoring,
    /// Some channels are stale: rows are not scored.
    Stale,
}

/// A machine's live status, as its owner sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MachineStatus {
    /// The machine.
    pub machine: MachineKey,
    /// Where it is.
    pub state: LiveState,
    /// The model scoring it.
    pub model: Option<ModelId>,
    /// The stale channels, while stale.
    pub stale_channels: Vec<SensorKey>,
    /// The newest row scored.
    pub last_scored: Option<Timestamp>,
    /// Rows this owner scored for it since it started.
    pub rows_scored: u64,
    /// Readings of it that arrived late (at or before a finalized row) since the owner started.
    pub readings_late: u64,
}

enum Msg {
    /// Readings, and how many batches this owner had skipped when they were queued.
    Batch(Vec<Reading>, u64),
    /// The machine's active model may have changed: load it before the next batch.
    Reload(MachineKey),
    Status(MachineKey, oneshot::Sender<Option<MachineStatus>>),
    /// The machine was deleted: drop its state (a machine made again with the key starts
    /// afresh).
    Forget(MachineKey),
    /// The alarm rules, service state or an alarm of the machine (`None`: every machine)
    /// changed: reread them before the next input.
    AlarmsChanged(Option<MachineKey>),
    /// Processed after every batch queued before it (for tests and shutdown).
    Flush(oneshot::Sender<()>),
}

struct Owner {
    tx: mpsc::Sender<Msg>,
    /// Batches skipped for this owner (queue full). A batch queued after a skip carries the
    /// new count, and the owner catches up the machines of the skipped batches before it.
    skipped: AtomicU64,
    /// The machines of skipped batches, with the skip count after their last skip: the owner
    /// catches a machine up at the first batch whose count has reached it (and only the
    /// machines that missed something, not all of them).
    missed: Arc<std::sync::Mutex<HashMap<MachineKey, u64>>>,
}

/// The live path of one worker: owners, the prediction writer, and the events they raise.
pub struct Live {
    owners: Vec<Owner>,
    alarms: Arc<Alarms>,
    config: LiveConfig,
    metrics: Arc<LiveMetrics>,
    events: broadcast::Sender<LiveEvent>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("owners", &self.owners.len())
            .field("shard", &self.config.shard)
            .finish()
    }
}

impl Live {
    /// Starts the owners and the prediction writer, with a bus and alarms of their own (see
    /// [`Live::bus`], [`Live::alarms`]). Must be called inside a Tokio runtime. `config` must
    /// have passed [`LiveConfig::check`].
    pub fn start(
        store: Arc<dyn Store>,
        factory: Arc<dyn ModelFactory>,
        config: LiveConfig,
    ) -> Arc<Live> {
        let bus = Bus::new(BUS_REPLAY, BUS_CHANNEL);
        let alarms = Alarms::new(store.clone(), bus, Arc::new(tokio::sync::Notify::new()));
        Self::start_with(store, factory, config, alarms)
    }

    /// [`Live::start`] with the alarms (and through them the bus and the dispatcher's waker)
    /// the embedder made: readings and predictions are published on `alarms.bus()`.
    pub fn start_with(
        store: Arc<dyn Store>,
        factory: Arc<dyn ModelFactory>,
        config: LiveConfig,
        alarms: Arc<Alarms>,
    ) -> Arc<Live> {
        let metrics = Arc::new(LiveMetrics::default());
        let (events, _) = broadcast::channel(1024);
        let (pred_tx, pred_rx) = mpsc::channel(64);
        let mut tasks = vec![tokio::spawn(write_predictions(
            store.clone(),
            pred_rx,
            metrics.clone(),
            config.clone(),
        ))];
        let owners = (0..config.tasks.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
                let missed = Arc::new(std::sync::Mutex::new(HashMap::new()));
                let task = OwnerTask {
                    missed: missed.clone(),
                    store: store.clone(),
                    factory: factory.clone(),
                    config: config.clone(),
                    metrics: metrics.clone(),
                    events: events.clone(),
                    predictions: pred_tx.clone(),
                    skips_seen: 0,
                    machines: HashMap::new(),
                    pending: Vec::new(),
                    stage: AlarmStage::new(alarms.clone(), metrics.clone()),
                    stage_inputs: Vec::new(),
                    stage_missed: HashSet::new(),
                    stage_seen: HashMap::new(),
                    stage_read_to: HashMap::new(),
                    bus: alarms.bus().clone(),
                };
                tasks.push(tokio::spawn(task.run(rx)));
                Owner {
                    tx,
                    skipped: AtomicU64::new(0),
                    missed,
                }
            })
            .collect();
        let live = Arc::new(Live {
            owners,
            alarms: alarms.clone(),
            config,
            metrics: metrics.clone(),
            events,
            tasks: std::sync::Mutex::new(tasks),
        });
        alarms.attach(&live, metrics);
        live
    }

    /// The alarms: people's commands, and the writing of every transition.
    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.alarms
    }

    /// The bus readings, predictions and alarm events are published on.
    pub fn bus(&self) -> &Arc<Bus> {
        self.alarms.bus()
    }

    /// Tells the owner of `machine` (`None`: every owner) to reread its alarm rules, service
    /// state and alarms before the next input.
    pub async fn alarms_changed(&self, machine: Option<&MachineKey>) {
        match machine {
            Some(m) if self.config.shard.owns(m) => {
                let _ = self
                    .owner_of(m)
                    .tx
                    .send(Msg::AlarmsChanged(Some(m.clone())))
                    .await;
            }
            Some(_) => {}
            None => {
                for owner in &self.owners {
                    let _ = owner.tx.send(Msg::AlarmsChanged(None)).await;
                }
            }
        }
    }

    /// The settings.
    pub fn config(&self) -> &LiveConfig {
        &self.config
    }

    /// The counters.
    pub fn metrics(&self) -> LiveSnapshot {
        self.metrics.snapshot()
    }

    /// The shared counters, for exporters.
    pub fn metrics_handle(&self) -> Arc<LiveMetrics> {
        self.metrics.clone()
    }

    /// Events of the live path (stale data, model swaps); a slow receiver misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events.subscribe()
    }

    fn owner_of(&self, machine: &MachineKey) -> &Owner {
        // The owner within this worker: a different bit mix than the shard choice, so that the
        // machines of one shard still spread over all owners.
        let h = key_hash(machine.as_str()).rotate_right(17);
        &self.owners[(h % self.owners.len() as u64) as usize]
    }

    /// Hands a durably written batch to the owners of its machines (those of this worker's
    /// shard). Never waits: a full owner queue skips the batch for detection (counted), and
    /// the owner catches up from the store.
    pub fn offer(&self, batch: Batch) {
        if batch.readings.is_empty() {
            return;
        }
        let mut parts: Vec<Vec<Reading>> = (0..self.owners.len()).map(|_| Vec::new()).collect();
        let n = self.owners.len() as u64;
        for r in batch.readings {
            if !self.config.shard.owns(&r.machine) {
                continue;
            }
            let h = key_hash(r.machine.as_str()).rotate_right(17);
            parts[(h % n) as usize].push(r);
        }
        for (owner, part) in self.owners.iter().zip(parts) {
            if part.is_empty() {
                continue;
            }
            let len = part.len() as u64;
            add(&self.metrics.readings_in, len);
            let skips = owner.skipped.load(Ordering::Acquire);
            if let Err(e) = owner.tx.try_send(Msg::Batch(part, skips)) {
                if let mpsc::error::TrySendError::Full(Msg::Batch(part, _)) = e {
                    let count = owner.skipped.fetch_add(1, Ordering::AcqRel) + 1;
                    let mut missed = owner.missed.lock().unwrap_or_else(|e| e.into_inner());
                    for r in &part {
                        if missed.get(&r.machine) != Some(&count) {
                            missed.insert(r.machine.clone(), count);
                        }
                    }
                }
                add(&self.metrics.readings_skipped, len);
            }
        }
    }

    /// Tells the owner of `machine` that its active model may have changed; it loads the
    /// active model before the next batch, without losing a row.
    pub async fn reload(&self, machine: &MachineKey) {
        if self.config.shard.owns(machine) {
            let _ = self
                .owner_of(machine)
                .tx
                .send(Msg::Reload(machine.clone()))
                .await;
        }
    }

    /// Drops the live state of a deleted machine (its readings, models and predictions are
    /// gone with it); a machine registered again under the key starts afresh.
    pub async fn forget(&self, machine: &MachineKey) {
        if self.config.shard.owns(machine) {
            let _ = self
                .owner_of(machine)
                .tx
                .send(Msg::Forget(machine.clone()))
                .await;
        }
    }

    /// The live status of `machine`: `None` when this worker does not own it or has not seen
    /// it since it started.
    pub async fn status(&self, machine: &MachineKey) -> Option<MachineStatus> {
        if !self.config.shard.owns(machine) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.owner_of(machine)
            .tx
            .send(Msg::Status(machine.clone(), tx))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Waits until every batch offered before the call has been processed and its predictions
    /// handed to the writer, and the writer has stored them.
    pub async fn flush(&self) {
        for owner in &self.owners {
            let (tx, rx) = oneshot::channel();
            if owner.tx.send(Msg::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }

    /// Processes what is queued, writes the last predictions and stops the tasks.
    pub async fn shutdown(&self) {
        self.flush().await;
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }
}

/// A machine's model on the live path.
struct Active {
    id: ModelId,
    model: Box<dyn LiveModel>,
    aligner: Aligner,
    stale: Option<Vec<SensorKey>>,
    /// Rows at or before this were scored before (by this model or the one it replaced).
    warm_until: Option<Timestamp>,
    /// The end (exclusive) of the model's training range: a machine's first model scores the
    /// stored rows from there on (within `catch_up_s`), not only those that arrive after it.
    trained_to: Timestamp,
    warmed_rows: usize,
    warmup_rows: usize,
    errors_logged: bool,
}

#[derive(Default)]
struct MachineLive {
    active: Option<Active>,
    load_failed: bool,
    /// The active model must be (re)loaded before the next batch.
    reload: bool,
    /// The machine must catch up from the store before the next batch.
    catch_up: bool,
    last_scored: Option<Timestamp>,
    rows_scored: u64,
    readings_late: u64,
    /// The oldest reading seen while the machine had no model (since it was last loaded): a
    /// model activated later scores from there (catch-up), so the rows that arrived between
    /// its activation and the owner learning of it are not lost.
    unscored_from: Option<Timestamp>,
    /// When the active model was last looked up in the store.
    checked_at: Option<Instant>,
    /// Auto-training: the oldest stored reading, once looked up.
    oldest: Option<Option<Timestamp>>,
    auto_train_done: bool,
}

struct OwnerTask {
    store: Arc<dyn Store>,
    factory: Arc<dyn ModelFactory>,
    config: LiveConfig,
    metrics: Arc<LiveMetrics>,
    events: broadcast::Sender<LiveEvent>,
    predictions: mpsc::Sender<WriterMsg>,
    /// The owner's skip count as of the last batch it took.
    skips_seen: u64,
    /// Shared with [`Owner::missed`].
    missed: Arc<std::sync::Mutex<HashMap<MachineKey, u64>>>,
    machines: HashMap<MachineKey, MachineLive>,
    pending: Vec<Prediction>,
    stage: AlarmStage,
    /// What the last feed gave the alarm stage (predictions, stale and fresh data).
    stage_inputs: Vec<StageInput>,
    /// Machines whose readings were skipped (the queue was full): the alarm stage reads them
    /// from the store before the machine's next batch, or when the owner is idle, model or
    /// not, so a sensor limit sees every value.
    stage_missed: HashSet<MachineKey>,
    /// The newest reading the alarm stage has seen, per machine.
    stage_seen: HashMap<MachineKey, Timestamp>,
    /// Readings read back while idle, up to this time: the machine's next batch may hold
    /// some of them again (offered as they were read), which the stage must not see twice.
    stage_read_to: HashMap<MachineKey, Timestamp>,
    bus: Arc<Bus>,
}

impl OwnerTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(ALARM_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                msg = rx.recv() => msg,
                _ = tick.tick() => {
                    if rx.is_empty() {
                        self.stage_catch_up_idle().await;
                    }
                    self.stage.tick().await;
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            match msg {
                Msg::Batch(readings, skips) => {
                    if skips > self.skips_seen {
                        // Batches were skipped between the previous one and this one: the
                        // machines that missed readings read them from the store first.
                        self.skips_seen = skips;
                        let due: Vec<MachineKey> = {
                            let mut missed = self.missed.lock().unwrap_or_else(|e| e.into_inner());
                            let due: Vec<MachineKey> = missed
                                .iter()
                                .filter(|(_, &k)| k <= skips)
                                .map(|(m, _)| m.clone())
                                .collect();
                            for m in &due {
                                missed.remove(m);
                            }
                            due
                        };
                        for machine in due {
                            // A machine not seen yet catches up at its first batch anyway.
                            if let Some(m) = self.machines.get_mut(&machine) {
                                m.catch_up = true;
                            }
                            self.stage_missed.insert(machine);
                        }
                    }
                    self.batch(readings).await;
                }
                Msg::Reload(machine) => {
                    // Loaded now, so that the status shows the new model at once; the
                    // catch-up waits for the next batch (it reads up to that batch's start).
                    self.machines.entry(machine.clone()).or_default().catch_up = true;
                    self.load(&machine).await;
                }
                Msg::Status(machine, reply) => {
                    let _ = reply.send(self.status(&machine));
                }
                Msg::Forget(machine) => {
                    self.pending.retain(|p| p.machine != machine);
                    self.machines.remove(&machine);
                    self.stage_seen.remove(&machine);
                    self.stage_read_to.remove(&machine);
                    self.stage_missed.remove(&machine);
                    self.stage.forget(&machine);
                }
                Msg::AlarmsChanged(machine) => self.stage.mark_reload(machine.as_ref()),
                Msg::Flush(reply) => {
                    self.send_pending().await;
                    // The writer answers once everything sent before is stored.
                    let _ = self.predictions.send(WriterMsg::Flush(reply)).await;
                }
            }
        }
        self.send_pending().await;
    }

    fn status(&self, machine: &MachineKey) -> Option<MachineStatus> {
        let m = self.machines.get(machine)?;
        let state = match &m.active {
            None if m.load_failed => LiveState::ModelError,
            None => LiveState::NoModel,
            Some(a) if a.stale.is_some() => LiveState::Stale,
            Some(a) if m.last_scored.is_none() || a.warmed_rows < a.warmup_rows => {
                LiveState::Warming
            }
            Some(_) => LiveState::Scoring,
        };
        Some(MachineStatus {
            machine: machine.clone(),
            state,
            model: m.active.as_ref().map(|a| a.id),
            stale_channels: m
                .active
                .as_ref()
                .and_then(|a| a.stale.clone())
                .unwrap_or_default(),
            last_scored: m.last_scored,
            rows_scored: m.rows_scored,
            readings_late: m.readings_late,
        })
    }

    async fn batch(&mut self, readings: Vec<Reading>) {
        let mut by_machine: HashMap<MachineKey, Vec<Reading>> = HashMap::new();
        for r in readings {
            by_machine.entry(r.machine.clone()).or_default().push(r);
        }
        for (machine, readings) in by_machine {
            self.machine_batch(machine, readings).await;
        }
        self.stage.batch_done().await;
        // Handed over at every batch: the writer gathers them and lingers.
        self.send_pending().await;
    }

    async fn machine_batch(&mut self, machine: MachineKey, readings: Vec<Reading>) {
        let first_ts = readings.iter().map(|r| r.ts).min();
        let newest_ts = readings.iter().map(|r| r.ts).max();
        let Some((first_ts, newest_ts)) = first_ts.zip(newest_ts) else {
            return;
        };
        let known = self.machines.contains_key(&machine);
        let entry = self.machines.entry(machine.clone()).or_default();
        if !known {
            entry.reload = true;
            entry.catch_up = true;
        }
        // Another worker may have activated a model (its job runner trained it, or an API
        // request reached it): look at the active model now and then, not only on a reload.
        let now = Instant::now();
        if entry
            .checked_at
            .is_none_or(|at| now.duration_since(at) >= MODEL_CHECK_INTERVAL)
        {
            entry.checked_at = Some(now);
            match self.store.active_model(&machine).await {
                Ok(active) => {
                    let current = entry.active.as_ref().map(|a| a.id);
                    if active.map(|r| r.id) != current {
                        entry.reload = true;
                    }
                }
                Err(StoreError::NotFound(_)) => {
                    // Deleted meanwhile (its readings with it): nothing to score.
                    self.machines.remove(&machine);
                    return;
                }
                Err(e) => tracing::warn!(%machine, error = %e, "cannot check the active model"),
            }
        }
        if entry.reload {
            entry.reload = false;
            self.load(&machine).await;
        }
        self.publish_readings(&machine, &readings);
        let Some(m) = self.machines.get_mut(&machine) else {
            // Deleted meanwhile: its alarms went with it.
            return;
        };
        if m.active.is_none() {
            m.unscored_from = Some(m.unscored_from.map_or(first_ts, |t| t.min(first_ts)));
            self.maybe_auto_train(&machine, newest_ts).await;
        } else {
            if m.catch_up {
                m.catch_up = false;
                self.catch_up(&machine, first_ts).await;
            }
            self.feed(&machine, &readings, false);
        }
        let inputs = std::mem::take(&mut self.stage_inputs);
        for input in &inputs {
            if let StageInput::Prediction(p) = input {
                self.bus.publish(PushKind::Prediction, Some(&machine), p);
            }
        }
        // A machine never seen by this process has no history to replay: what the rules saw
        // before the start is unknown (see `stage_catch_up_idle`).
        if self.stage_missed.remove(&machine) && self.stage_seen.contains_key(&machine) {
            self.stage_catch_up(&machine, first_ts).await;
        }
        match self.stage_read_to.remove(&machine) {
            Some(read_to) if first_ts <= read_to => {
                let fresh: Vec<Reading> = readings
                    .iter()
                    .filter(|r| r.ts > read_to)
                    .cloned()
                    .collect();
                self.stage.observe(&machine, &fresh, inputs).await;
            }
            _ => self.stage.observe(&machine, &readings, inputs).await,
        }
        let seen = self.stage_seen.entry(machine).or_insert(newest_ts);
        *seen = (*seen).max(newest_ts);
    }

    /// While the owner has nothing queued, gives the alarm stage the readings of every
    /// machine whose batches were skipped, up to the newest stored: a machine whose last
    /// batches were skipped may send nothing more, and its alarms must still see them.
    async fn stage_catch_up_idle(&mut self) {
        let due: Vec<MachineKey> = {
            let mut missed = self.missed.lock().unwrap_or_else(|e| e.into_inner());
            missed.drain().map(|(m, _)| m).collect()
        };
        for machine in &due {
            // Its model catches up at its next batch, as after any skip.
            if let Some(m) = self.machines.get_mut(machine) {
                m.catch_up = true;
            }
            self.stage_missed.insert(machine.clone());
        }
        let machines: Vec<MachineKey> = self.stage_missed.drain().collect();
        for machine in machines {
            let read_to = if self.stage_seen.contains_key(&machine) {
                self.stage_catch_up(&machine, Timestamp::from_millis(i64::MAX / 4))
                    .await
            } else {
                // Never seen by this process (its batches since the start were all skipped):
                // what the rules saw before is unknown, so the history is not replayed (it
                // would raise its old alarms again); the newest value of each sensor is.
                self.stage_latest(&machine).await
            };
            if let Some(t) = read_to {
                self.stage_read_to.insert(machine.clone(), t);
                let seen = self.stage_seen.entry(machine).or_insert(t);
                *seen = (*seen).max(t);
            }
        }
    }

    /// Gives the alarm stage the newest stored value of each sensor of `machine`; returns the
    /// newest time.
    async fn stage_latest(&mut self, machine: &MachineKey) -> Option<Timestamp> {
        let latest = match self.store.latest(machine).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%machine, error = %e, "cannot read the latest readings for the alarms");
                return None;
            }
        };
        let readings: Vec<Reading> = latest
            .into_iter()
            .map(|l| Reading {
                machine: machine.clone(),
                sensor: l.sensor,
                ts: l.ts,
                value: l.value,
            })
            .collect();
        add(
            &self.metrics.alarm_readings_caught_up,
            readings.len() as u64,
        );
        let newest = readings.iter().map(|r| r.ts).max();
        self.stage.observe(machine, &readings, Vec::new()).await;
        newest
    }

    /// Gives the alarm stage the stored readings of `machine` after the newest it saw, before
    /// `before`, from at most `catch_up_s` before `before`. Returns the newest it gave.
    async fn stage_catch_up(
        &mut self,
        machine: &MachineKey,
        before: Timestamp,
    ) -> Option<Timestamp> {
        let seen = *self.stage_seen.get(machine)?;
        let span = (self.config.catch_up_s as i64).saturating_mul(1000);
        let mut cursor = seen
            .add_millis(1)
            .max(before.min(seen.add_millis(span)).add_millis(-span));
        let mut fed = 0u64;
        let mut newest = None;
        while cursor < before {
            let q = MachineRangeQuery {
                machine: machine.clone(),
                from: cursor,
                to: before,
                limit: 20_000,
            };
            let page = match self.store.machine_readings(&q).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%machine, error = %e, "cannot read skipped readings for the alarms; they go on from the new readings");
                    break;
                }
            };
            let Some(last) = page.last().map(|r| r.ts) else {
                break;
            };
            // A full page ends at `last`: the next one starts after the instants it holds
            // whole (a page of one instant only moves on past it).
            let full = page.len() == q.limit as usize;
            let keep: Vec<Reading> = if full && last > cursor {
                page.into_iter().filter(|r| r.ts < last).collect()
            } else {
                page
            };
            fed += keep.len() as u64;
            newest = keep.iter().map(|r| r.ts).max().max(newest);
            self.stage.observe(machine, &keep, Vec::new()).await;
            if !full {
                break;
            }
            cursor = if last > cursor {
                last
            } else {
                last.add_millis(1)
            };
        }
        add(&self.metrics.alarm_readings_caught_up, fed);
        newest
    }

    /// One `reading` event per machine and stored batch, for push clients.
    fn publish_readings(&self, machine: &MachineKey, readings: &[Reading]) {
        #[derive(serde::Serialize)]
        struct Point<'a> {
            sensor: &'a SensorKey,
            ts: Timestamp,
            value: f64,
        }
        #[derive(serde::Serialize)]
        struct Readings<'a> {
            machine: &'a MachineKey,
            readings: Vec<Point<'a>>,
        }
        let data = Readings {
            machine,
            readings: readings
                .iter()
                .map(|r| Point {
                    sensor: &r.sensor,
                    ts: r.ts,
                    value: r.value,
                })
                .collect(),
        };
        self.bus.publish(PushKind::Reading, Some(machine), &data);
    }

    /// Loads the machine's active model (keeping what was scored), or notes that it has none.
    async fn load(&mut self, machine: &MachineKey) {
        let loaded =
            registry::load_active(self.store.as_ref(), self.factory.as_ref(), machine).await;
        let m = self.machines.entry(machine.clone()).or_default();
        match loaded {
            Ok(Some((record, params, model))) => {
                if m.active.as_ref().map(|a| a.id) == Some(record.id) {
                    return;
                }
                let ModelParameters { align, .. } = params;
                match Aligner::new(align) {
                    Ok(aligner) => {
                        let warmup_rows = model.warmup_rows();
                        m.active = Some(Active {
                            id: record.id,
                            model,
                            aligner,
                            stale: None,
                            warm_until: None,
                            trained_to: record.trained_to,
                            warmed_rows: 0,
                            warmup_rows,
                            errors_logged: false,
                        });
                        m.load_failed = false;
                        m.catch_up = true;
                        add(&self.metrics.models_loaded, 1);
                        tracing::info!(%machine, model = %record.id, "live model loaded");
                        let _ = self.events.send(LiveEvent::ModelLoaded {
                            machine: machine.clone(),
                            model: record.id,
                        });
                    }
                    Err(e) => {
                        m.active = None;
                        m.load_failed = true;
                        add(&self.metrics.model_load_errors, 1);
                        tracing::error!(%machine, model = %record.id, error = %e, "the active model's alignment is invalid; the machine is not scored");
                    }
                }
            }
            Ok(None) => {
                m.active = None;
                m.load_failed = false;
            }
            Err(RegistryError::Store(StoreError::NotFound(_))) => {
                // The machine (or the model with it) was deleted.
                self.machines.remove(machine);
            }
            Err(e) => {
                // A working model stays in place; the load is tried again at the next check.
                m.load_failed = m.active.is_none();
                m.checked_at = None;
                add(&self.metrics.model_load_errors, 1);
                tracing::error!(%machine, error = %e, "cannot load the active model; tried again at the next readings");
            }
        }
    }

    /// Rebuilds the machine's window from the store: rows up to the last scored one warm the
    /// model, rows after it (stored but never scored) are scored now.
    async fn catch_up(&mut self, machine: &MachineKey, before: Timestamp) {
        add(&self.metrics.catch_ups, 1);
        let m = self.machines.get_mut(machine).expect("known machine");
        if m.last_scored.is_none() {
            match self.store.last_prediction(machine).await {
                Ok(last) => m.last_scored = last,
                Err(e) => tracing::warn!(%machine, error = %e, "cannot read the last prediction"),
            }
        }
        let Some(active) = m.active.as_mut() else {
            return;
        };
        let align = active.aligner.config().clone();
        let period = align.sample_period_ms as i64;
        let lookback = period
            .saturating_mul(active.warmup_rows as i64 + 2)
            .saturating_add(align.max_gap_ms as i64);
        let floor = before.add_millis(-(self.config.catch_up_s as i64).saturating_mul(1000));
        // Nothing scored yet: the rows stored after the model's training range (an
        // auto-trained model is activated while its machine's history is still arriving; its
        // first predictions may have been lost with the process) are scored now, at most
        // `catch_up_s` of them; the training rows before only warm it. A model whose training
        // range is not in the data (an import) scores from the oldest reading that arrived
        // without a model, or from `catch_up_s` back.
        let (from, warm_until) = match (m.last_scored, m.unscored_from.take()) {
            (Some(last), _) => (last.add_millis(-lookback).max(floor), Some(last)),
            (None, _) if active.trained_to < before => (
                active.trained_to.add_millis(-lookback).max(floor),
                Some(active.trained_to.add_millis(-1)),
            ),
            (None, Some(unscored)) => (unscored.add_millis(-lookback).max(floor), None),
            (None, None) => (floor, None),
        };
        active.aligner = Aligner::new(align).expect("checked when loaded");
        active.model.reset();
        active.warm_until = warm_until;
        active.warmed_rows = 0;
        active.stale = None;
        // One read in the common case; pages when a catch-up spans more.
        let mut cursor = from;
        let mut skip_at_cursor = 0usize;
        loop {
            let q = MachineRangeQuery {
                machine: machine.clone(),
                from: cursor,
                // Through `before`: a reading stored at that instant by an earlier batch (another
                // channel, another message) belongs to the rows too; the batch's own readings
                // fed again after are duplicates, which the aligner ignores.
                to: before.add_millis(1),
                limit: 20_000,
            };
            let page = match self.store.machine_readings(&q).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%machine, error = %e, "cannot read readings to catch up; scoring resumes from the new readings");
                    return;
                }
            };
            let full = page.len() == q.limit as usize;
            let last_ts = page.last().map(|r| r.ts);
            let fresh: Vec<Reading> = page.into_iter().skip(skip_at_cursor).collect();
            if fresh.is_empty() {
                // A page of one instant only, all of it taken: nothing further at that
                // instant can be read this way; the next instant's readings follow.
                if full && last_ts == Some(cursor) {
                    cursor = cursor.add_millis(1);
                    skip_at_cursor = 0;
                    continue;
                }
                break;
            }
            self.feed(machine, &fresh, true);
            match (full, last_ts) {
                (true, Some(ts)) => {
                    skip_at_cursor = if ts == cursor {
                        skip_at_cursor + fresh.len()
                    } else {
                        fresh.iter().rev().take_while(|r| r.ts == ts).count()
                    };
                    cursor = ts;
                }
                _ => break,
            }
        }
    }

    /// Feeds readings to the machine's aligner and model.
    fn feed(&mut self, machine: &MachineKey, readings: &[Reading], catching_up: bool) {
        let Some(m) = self.machines.get_mut(machine) else {
            return;
        };
        let Some(active) = m.active.as_mut() else {
            return;
        };
        let late_before = active.aligner.stats().late;
        let unscored_before = active.aligner.stats().unscored;
        let mut out = Vec::new();
        active.aligner.push_batch(readings, &mut out);
        let late = active.aligner.stats().late - late_before;
        if !catching_up {
            m.readings_late += late;
            add(&self.metrics.readings_late, late);
        }
        add(
            &self.metrics.rows_unscored,
            active.aligner.stats().unscored - unscored_before,
        );
        let channels = active.aligner.config().channels.clone();
        let started = Instant::now();
        let mut scored = 0u64;
        for item in out {
            match item {
                Aligned::Stale(s) => {
                    active.model.reset();
                    active.warmed_rows = 0;
                    // A catch-up goes over rows seen before: their conditions were reported.
                    let replay = catching_up && active.warm_until.is_some_and(|w| s.ts <= w);
                    if active.stale.as_ref() != Some(&s.channels) && !replay {
                        add(&self.metrics.stale_conditions, 1);
                        self.stage_inputs.push(StageInput::Stale {
                            ts: s.ts,
                            channels: s.channels.clone(),
                        });
                        let _ = self.events.send(LiveEvent::Stale {
                            machine: machine.clone(),
                            ts: s.ts,
                            channels: s.channels.clone(),
                        });
                    }
                    active.stale = Some(s.channels);
                }
                Aligned::Row(row) => {
                    let replay = catching_up && active.warm_until.is_some_and(|w| row.ts <= w);
                    if active.stale.take().is_some() && !replay {
                        self.stage_inputs.push(StageInput::Fresh { ts: row.ts });
                        let _ = self.events.send(LiveEvent::Fresh {
                            machine: machine.clone(),
                            ts: row.ts,
                        });
                    }
                    let ts = row.ts.as_millis();
                    if active.warm_until.is_some_and(|w| row.ts <= w) {
                        active.model.warm(ts, &row.values);
                        active.warmed_rows += 1;
                        add(&self.metrics.rows_warmed, 1);
                        continue;
                    }
                    match active.model.score(ts, &row.values) {
                        Ok(None) => active.warmed_rows += 1,
                        Ok(Some(s)) if !storable(&s) => {
                            add(&self.metrics.score_errors, 1);
                            if !active.errors_logged {
                                active.errors_logged = true;
                                tracing::warn!(%machine, model = %active.id, score = s.score, "the live model gave a score that is not a finite number (logged once per model)");
                            }
                        }
                        Ok(Some(s)) => {
                            scored += 1;
                            let anomalous = s.score > s.threshold;
                            if anomalous {
                                add(&self.metrics.rows_anomalous, 1);
                            }
                            m.last_scored = Some(row.ts);
                            m.rows_scored += 1;
                            let prediction = Prediction {
                                machine: machine.clone(),
                                ts: row.ts,
                                model: active.id,
                                score: s.score,
                                threshold: s.threshold,
                                anomalous,
                                contributions: s
                                    .contributions
                                    .iter()
                                    .filter_map(|&(c, share)| {
                                        channels.get(c).map(|sensor| Contribution {
                                            sensor: sensor.clone(),
                                            share,
                                        })
                                    })
                                    .take(crate::prediction::MAX_CONTRIBUTIONS)
                                    .collect(),
                                health: s.health,
                                rul_s: s.rul_s,
                            };
                            self.stage_inputs
                                .push(StageInput::Prediction(prediction.clone()));
                            self.pending.push(prediction);
                        }
                        Err(e) => {
                            add(&self.metrics.score_errors, 1);
                            if !active.errors_logged {
                                active.errors_logged = true;
                                tracing::warn!(%machine, model = %active.id, error = %e, "the live model cannot score a row (logged once per model)");
                            }
                        }
                    }
                }
            }
        }
        if scored > 0 {
            add(&self.metrics.rows_scored, scored);
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            add(&self.metrics.scoring_micros_total, micros);
        }
    }

    async fn send_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        // Waits when the writer is behind: this slows detection, never ingestion.
        let _ = self.predictions.send(WriterMsg::Predictions(batch)).await;
    }

    /// Queues a training job for a machine without a model once it has
    /// [`LiveConfig::auto_train_after_s`] of history.
    async fn maybe_auto_train(&mut self, machine: &MachineKey, newest: Timestamp) {
        if self.config.auto_train_after_s == 0 {
            return;
        }
        let m = self.machines.get_mut(machine).expect("known machine");
        if m.auto_train_done {
            return;
        }
        if m.oldest.is_none() {
            let q = MachineRangeQuery {
                machine: machine.clone(),
                from: Timestamp::from_millis(i64::MIN),
                to: Timestamp::from_millis(i64::MAX),
                limit: 1,
            };
            match self.store.machine_readings(&q).await {
                Ok(first) => m.oldest = Some(first.first().map(|r| r.ts)),
                Err(e) => {
                    tracing::warn!(%machine, error = %e, "cannot read the oldest reading for auto-training");
                    return;
                }
            }
        }
        let Some(Some(oldest)) = m.oldest else { return };
        let span = (self.config.auto_train_after_s as i64).saturating_mul(1000);
        let to = oldest.add_millis(span);
        if newest < to {
            return;
        }
        m.auto_train_done = true;
        let q = JobQuery {
            kind: Some(registry::TRAIN_JOB.to_owned()),
            machine: Some(machine.clone()),
            limit: 20,
            ..JobQuery::default()
        };
        match self.store.list_jobs(&q).await {
            Ok(jobs)
                if jobs.iter().any(|j| {
                    matches!(
                        j.status,
                        JobStatus::Queued | JobStatus::Running | JobStatus::Succeeded
                    )
                }) =>
            {
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%machine, error = %e, "cannot list jobs for auto-training");
                m.auto_train_done = false;
                return;
            }
        }
        let request = registry::TrainRequest {
            from: oldest,
            to,
            kind: None,
            params: None,
            activate: true,
            sample_period_ms: None,
            max_gap_ms: None,
            channels: None,
            requested_by: "auto-train".to_owned(),
        };
        let job = NewJob {
            kind: registry::TRAIN_JOB.to_owned(),
            machine: Some(machine.clone()),
            params: request.to_json(),
        };
        match self.store.create_job(&job).await {
            Ok(j) => {
                add(&self.metrics.auto_train_jobs, 1);
                tracing::info!(%machine, job = %j.id, "auto-training queued");
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(%machine, error = %e, "cannot queue auto-training");
                m.auto_train_done = false;
            }
        }
    }
}

enum WriterMsg {
    Predictions(Vec<Prediction>),
    /// Write what is gathered now, then answer.
    Flush(oneshot::Sender<()>),
}

/// Stores predictions in batches: gathers what the owners send, up to
/// [`LiveConfig::prediction_batch`], waiting at most [`LiveConfig::prediction_linger_ms`].
async fn write_predictions(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<WriterMsg>,
    metrics: Arc<LiveMetrics>,
    config: LiveConfig,
) {
    let linger = Duration::from_millis(config.prediction_linger_ms);
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::new();
        match first {
            WriterMsg::Predictions(p) => batch = p,
            WriterMsg::Flush(reply) => flushes.push(reply),
        }
        let deadline = tokio::time::Instant::now() + linger;
        while flushes.is_empty() && batch.len() < config.prediction_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(WriterMsg::Predictions(mut more))) => batch.append(&mut more),
                Ok(Some(WriterMsg::Flush(reply))) => flushes.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        write_with_retries(store.as_ref(), &batch, &metrics).await;
        for reply in flushes.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// Writes one batch of predictions, retrying a few times; counts what it could not store.
async fn write_with_retries(store: &dyn Store, batch: &[Prediction], metrics: &LiveMetrics) {
    if batch.is_empty() {
        return;
    }
    match write_transient_retries(store, batch, metrics).await {
        Ok(()) => {}
        Err(e) if e.is_transient() => {
            add(&metrics.predictions_dropped, batch.len() as u64);
            tracing::error!(error = %e, predictions = batch.len(), "the database stayed unavailable; predictions dropped");
        }
        Err(e) => {
            // One machine's predictions (a machine deleted meanwhile) must not cost the others
            // theirs: write machine by machine, and drop only what is refused.
            tracing::warn!(error = %e, "a batch of predictions was refused; writing it machine by machine");
            let mut machines: Vec<&MachineKey> = batch.iter().map(|p| &p.machine).collect();
            machines.sort();
            machines.dedup();
            for machine in machines {
                let part: Vec<Prediction> = batch
                    .iter()
                    .filter(|p| &p.machine == machine)
                    .cloned()
                    .collect();
                if let Err(e) = write_transient_retries(store, &part, metrics).await {
                    add(&metrics.predictions_dropped, part.len() as u64);
                    tracing::warn!(%machine, error = %e, predictions = part.len(), "predictions refused; dropped");
                }
            }
        }
    }
}

/// Writes predictions, retrying while the database is unavailable (for up to about a minute,
/// the owners waiting meanwhile: that slows detection, never ingestion).
async fn write_transient_retries(
    store: &dyn Store,
    batch: &[Prediction],
    metrics: &LiveMetrics,
) -> Result<(), StoreError> {
    let mut delay = Duration::from_millis(100);
    let mut waited = Duration::ZERO;
    loop {
        match store.write_predictions(batch).await {
            Ok(new) => {
                add(&metrics.predictions_written, new);
                add(
                    &metrics.predictions_duplicate,
                    batch.len() as u64 - new.min(batch.len() as u64),
                );
                return Ok(());
            }
            Err(e) => {
                add(&metrics.prediction_write_errors, 1);
                if !e.is_transient() || waited >= Duration::from_secs(60) {
                    return Err(e);
                }
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// True when every number of a score can be stored (the store refuses non-finite values).
fn storable(s: &super::model::LiveScore) -> bool {
    s.score.is_finite()
        && s.threshold.is_finite()
        && s.health.is_none_or(f64::is_finite)
        && s.rul_s.is_none_or(f64::is_finite)
        && s.contributions.iter().all(|(_, share)| share.is_finite())
}
