//! The alarm stage of the live path: the policy ([`crate::alarm`]) applied to every machine's
//! predictions, readings and stale data, its decisions stored, published and handed to the
//! notifiers.
//!
//! ```text
//! owner ── predictions, readings, stale/fresh, ticks ──▶ monitors (one per machine and rule)
//!                                                          │ events
//!                                                          ▼
//!            AlarmStore::record_transition (alarm row + events + outbox, one transaction)
//!                                                          │
//!                          bus (SSE, WebSocket) ◀──────────┴──────▶ outbox waker (webhooks)
//! ```
//!
//! - **The store is the truth, the owner a cache.** Each machine's monitors live in the task
//!   that owns the machine; every transition is written with the version it was computed from.
//!   A person's command ([`Alarms::acknowledge`], ...) is applied to the stored state by
//!   whichever worker receives the request, then the owner is told to reload. If the owner
//!   writes first from an older state, the store refuses it (`Conflict`), and the owner reloads
//!   the alarm and applies its current condition again: nothing is lost or overwritten.
//! - **At most one open alarm per machine and rule** is the database's rule (a unique partial
//!   index); a second worker raising the same alarm gets `Conflict` and adopts the stored one.
//! - An alarm row is one episode, `raised` to `cleared`; events of a monitor with no episode
//!   open other than `raised` (putting a quiet machine out of service, say) change only the
//!   in-memory state: the machine's service state itself is kept in `machine_service`.
//! - A machine that sends nothing is stale for the `stale` rules: after
//!   [`SILENT_AFTER_MS`] without a reading, on the owner's clock (the freshest reading's time,
//!   running on with the wall clock: the wall clock when streaming live, the replay's time when
//!   history is replayed), the owner feeds a stale input itself (the aligner only notices gaps
//!   between rows).
//! - Condition windows (the last n verdicts, running delays) are kept in memory and in the
//!   state of open alarms; after a restart a machine without an open alarm starts its windows
//!   afresh.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::metrics::{add, LiveMetrics};
use super::runtime::Live;
use crate::alarm::{
    AlarmEvent, AlarmEventKind, Command, Input, Monitor, Rule, RuleKind, StateName, TransitionError,
};
use crate::bus::{Bus, PushKind};
use crate::ids::{MachineKey, SensorKey};
use crate::model::{Reading, Timestamp};
use crate::notify::AlarmNotification;
use crate::prediction::Prediction;
use crate::store::{
    AlarmId, AlarmQuery, AlarmTransition, ServiceNote, Store, StoreError, StoredAlarm,
};

/// A machine without a reading for this long is stale for its `stale` rules (counted from its
/// last reading), in milliseconds.
pub const SILENT_AFTER_MS: i64 = 30_000;

/// How often, in the stage's own time, time passes for the machines that send nothing (see
/// [`AlarmStage::observe`]): the owner's timer period.
const TICK_MS: i64 = 1_000;

/// The most steps time passes in after one batch (see [`AlarmStage::batch_done`]).
const MAX_TICK_STEPS: i64 = 64;

/// How often an owner rereads a machine's rules (besides [`Alarms::rules_changed`]), so that a
/// change made through another worker reaches it.
const RULES_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// Tries of a command against concurrent writers before giving up.
const COMMAND_TRIES: usize = 8;

/// The result of a person's command: the alarm after it and the events it caused.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmUpdate {
    /// The alarm as stored after the command.
    pub alarm: StoredAlarm,
    /// The events the command caused, in order.
    pub events: Vec<AlarmEvent>,
}

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AlarmCommandError {
    /// No such alarm or machine.
    #[error("{0} not found")]
    NotFound(String),
    /// The alarm's state does not allow the command (the server answers 409).
    #[error(transparent)]
    Refused(#[from] TransitionError),
    /// The command does not fit the current state of something else (409): a machine already
    /// out of service, a closed alarm, an alarm changed by others too often meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// A value of the command is not acceptable (422).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AlarmCommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => AlarmCommandError::NotFound(what),
            StoreError::Conflict(what) => AlarmCommandError::Conflict(what),
            StoreError::Invalid(what) => AlarmCommandError::Invalid(what),
            e => AlarmCommandError::Store(e),
        }
    }
}

/// The stored row of an open episode, as a monitor last wrote or read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    id: AlarmId,
    version: i64,
}

/// The alarm side of the live path, shared by the owners and the server's routes: people's
/// commands, and the writing, publishing and notifying of every transition.
pub struct Alarms {
    store: Arc<dyn Store>,
    bus: Arc<Bus>,
    outbox: Arc<Notify>,
    live: OnceLock<Weak<Live>>,
    metrics: OnceLock<Arc<LiveMetrics>>,
}

impl std::fmt::Debug for Alarms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alarms").finish_non_exhaustive()
    }
}

impl Alarms {
    /// Alarms over `store`, publishing stored events on `bus` and waking `outbox` (the
    /// notification dispatcher) after every stored transition.
    pub fn new(store: Arc<dyn Store>, bus: Arc<Bus>, outbox: Arc<Notify>) -> Arc<Alarms> {
        Arc::new(Alarms {
            store,
            bus,
            outbox,
            live: OnceLock::new(),
            metrics: OnceLock::new(),
        })
    }

    /// The bus the alarm events are published on.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }

    /// The handle notified after each stored transition (its outbox rows are waiting).
    pub fn outbox_waker(&self) -> Arc<Notify> {
        self.outbox.clone()
    }

    /// Called once by [`Live::start_with`]: commands then tell its owners to reload.
    pub(crate) fn attach(&self, live: &Arc<Live>, metrics: Arc<LiveMetrics>) {
        let _ = self.live.set(Arc::downgrade(live));
        let _ = self.metrics.set(metrics);
    }

    fn live(&self) -> Option<Arc<Live>> {
        self.live.get().and_then(Weak::upgrade)
    }

    fn count(&self, f: impl FnOnce(&LiveMetrics)) {
        if let Some(m) = self.metrics.get() {
            f(m);
        }
    }

    /// Stores the fleet-wide default rules ([`crate::alarm::default_rules`]) when there are
    /// no fleet-wide rules at all; returns how many it stored.
    pub async fn seed_defaults(&self) -> Result<usize, StoreError> {
        if !self.store.list_rules(None).await?.is_empty() {
            return Ok(0);
        }
        let rules = crate::alarm::default_rules();
        for rule in &rules {
            let definition = serde_json::to_string(rule).map_err(|e| {
                StoreError::Backend(format!("cannot serialize a default rule: {e}").into())
            })?;
            let record = crate::store::NewAlarmRule {
                machine: None,
                rule_id: rule.id.clone(),
                definition,
                enabled: true,
            };
            match self.store.put_rule(&record).await {
                // Another worker seeding at the same time.
                Ok(_) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(rules.len())
    }

    /// Acknowledges alarm `id` on behalf of `by`.
    pub async fn acknowledge(
        &self,
        id: AlarmId,
        by: &str,
        reason: Option<&str>,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        let mut update = self
            .command(id, Command::Acknowledge { by: by.to_owned() }, at)
            .await?;
        if let Some(reason) = reason.filter(|r| !r.is_empty()) {
            // The policy's reason for an acknowledgement is fixed; a person's note replaces it
            // in the answer only (the stored event says "acknowledged").
            for e in &mut update.events {
                if e.kind == AlarmEventKind::Acknowledged {
                    e.reason = reason.to_owned();
                }
            }
        }
        Ok(update)
    }

    /// Shelves alarm `id` until `until`.
    pub async fn shelve(
        &self,
        id: AlarmId,
        until: Timestamp,
        reason: &str,
        by: &str,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        let cmd = Command::Shelve {
            until,
            reason: reason.to_owned(),
            by: by.to_owned(),
        };
        self.command(id, cmd, at).await
    }

    /// Ends the shelf of alarm `id`.
    pub async fn unshelve(
        &self,
        id: AlarmId,
        by: &str,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        self.command(id, Command::Unshelve { by: by.to_owned() }, at)
            .await
    }

    /// Takes `machine` out of service: its open alarms go out of service, and its monitors
    /// stay suppressed (across restarts) until [`in_service`](Self::in_service).
    pub async fn out_of_service(
        &self,
        machine: &MachineKey,
        by: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<ServiceNote, AlarmCommandError> {
        if let Some(note) = self.store.out_of_service(Some(machine)).await?.pop() {
            return Err(AlarmCommandError::Conflict(format!(
                "machine '{machine}' is already out of service (since {} by {}: {})",
                note.since.to_rfc3339(),
                note.by,
                note.reason
            )));
        }
        let note = ServiceNote {
            machine: machine.clone(),
            since: at,
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        self.store.put_out_of_service(&note).await?;
        let cmd = Command::OutOfService {
            by: by.to_owned(),
            reason: reason.to_owned(),
        };
        for alarm in self.open_alarms(machine).await? {
            match self.command(alarm.id, cmd.clone(), at).await {
                Ok(_)
                | Err(AlarmCommandError::Refused(_))
                | Err(AlarmCommandError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.reload_machine(machine).await;
        Ok(note)
    }

    /// Puts `machine` back in service; returns the note it had. Its alarms are evaluated
    /// again on their conditions.
    pub async fn in_service(
        &self,
        machine: &MachineKey,
        by: &str,
        at: Timestamp,
    ) -> Result<ServiceNote, AlarmCommandError> {
        let Some(note) = self.store.clear_out_of_service(machine).await? else {
            return Err(AlarmCommandError::Conflict(format!(
                "machine '{machine}' is not out of service"
            )));
        };
        let cmd = Command::InService { by: by.to_owned() };
        for alarm in self.open_alarms(machine).await? {
            if alarm.state != StateName::OutOfService {
                continue;
            }
            match self.command(alarm.id, cmd.clone(), at).await {
                Ok(_)
                | Err(AlarmCommandError::Refused(_))
                | Err(AlarmCommandError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.reload_machine(machine).await;
        Ok(note)
    }

    /// Tells the owners that the rules of `machine` (`None`: the fleet defaults, so every
    /// machine) changed; they reread them before the next input.
    pub async fn rules_changed(&self, machine: Option<&MachineKey>) {
        if let Some(live) = self.live() {
            live.alarms_changed(machine).await;
        }
    }

    async fn reload_machine(&self, machine: &MachineKey) {
        if let Some(live) = self.live() {
            live.alarms_changed(Some(machine)).await;
        }
    }

    async fn open_alarms(&self, machine: &MachineKey) -> Result<Vec<StoredAlarm>, StoreError> {
        self.store
            .list_alarms(&AlarmQuery {
                machine: Some(machine.clone()),
                open: Some(true),
                limit: 10_000,
                ..AlarmQuery::default()
            })
            .await
    }

    /// Applies `cmd` to the stored state of alarm `id` and stores the result, retrying from
    /// the stored state when another writer was first.
    async fn command(
        &self,
        id: AlarmId,
        cmd: Command,
        at: Timestamp,
    ) -> Result<AlarmUpdate, AlarmCommandError> {
        for _ in 0..COMMAND_TRIES {
            let stored = self.store.get_alarm(id).await?;
            if stored.closed_at.is_some() {
                // A closed episode is normal: the policy refuses what a normal alarm refuses.
                let mut normal = Monitor::new(&placeholder_rule());
                normal.command(cmd.clone(), at)?;
                return Err(AlarmCommandError::Conflict(format!(
                    "alarm {id} is cleared (closed at {}): commands apply to open alarms",
                    stored
                        .closed_at
                        .unwrap_or(stored.last_event_at)
                        .to_rfc3339()
                )));
            }
            let mut monitor: Monitor = serde_json::from_str(&stored.state_json).map_err(|e| {
                AlarmCommandError::Store(StoreError::Backend(
                    format!("the stored state of alarm {id} cannot be read: {e}").into(),
                ))
            })?;
            let events = monitor.command(cmd.clone(), at)?;
            if events.is_empty() {
                return Ok(AlarmUpdate {
                    alarm: stored,
                    events,
                });
            }
            let mut row = Some(Row {
                id,
                version: stored.version,
            });
            match self
                .record(
                    &stored.machine,
                    &stored.rule_id,
                    &monitor,
                    &mut row,
                    &events,
                )
                .await
            {
                Ok(written) => {
                    if let Some(live) = self.live() {
                        live.alarms_changed(Some(&stored.machine)).await;
                    }
                    let alarm = match written.into_iter().find(|a| a.id == id) {
                        Some(a) => a,
                        None => self.store.get_alarm(id).await?,
                    };
                    return Ok(AlarmUpdate { alarm, events });
                }
                Err(StoreError::Conflict(_)) => {
                    self.count(|m| add(&m.alarm_conflicts, 1));
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AlarmCommandError::Conflict(format!(
            "alarm {id} kept changing while the command was applied; try again"
        )))
    }

    /// Stores `events` of `monitor` (machine and rule): split into episodes (a `cleared` ends
    /// one, a `raised` opens the next), each one transition; events outside an episode other
    /// than `raised` are not stored. Updates `row` to the open episode after them. Publishes
    /// the stored events and wakes the dispatcher. Returns the rows written.
    async fn record(
        &self,
        machine: &MachineKey,
        rule_id: &str,
        monitor: &Monitor,
        row: &mut Option<Row>,
        events: &[AlarmEvent],
    ) -> Result<Vec<StoredAlarm>, StoreError> {
        let state_json = serde_json::to_string(monitor)
            .map_err(|e| StoreError::Backend(format!("cannot serialize an alarm: {e}").into()))?;
        let mut written = Vec::new();
        let mut segment: Vec<AlarmEvent> = Vec::new();
        let mut open = row.is_some();
        let mut pending: Vec<(Vec<AlarmEvent>, bool)> = Vec::new();
        for e in events {
            if !open && e.kind != AlarmEventKind::Raised {
                continue;
            }
            open = true;
            segment.push(e.clone());
            if e.kind == AlarmEventKind::Cleared {
                pending.push((std::mem::take(&mut segment), true));
                open = false;
            }
        }
        if !segment.is_empty() {
            pending.push((segment, false));
        }
        for (events, closes) in pending {
            let last = events.last().cloned().expect("segments are not empty");
            let t = AlarmTransition {
                machine: machine.clone(),
                rule_id: rule_id.to_owned(),
                alarm: row.map(|r| r.id),
                expected_version: row.map_or(0, |r| r.version),
                state: if closes {
                    StateName::Normal
                } else {
                    monitor.alarm().state().name()
                },
                severity: if closes {
                    last.severity
                } else {
                    monitor.alarm().severity()
                },
                // The monitor after all the events: for an episode closed on the way, only its
                // columns matter (a closed row's state is never loaded again).
                state_json: state_json.clone(),
                events: events.clone(),
                closes,
            };
            let stored = self.store.record_transition(&t).await?;
            self.count(|m| {
                add(&m.alarm_transitions, 1);
                add(&m.alarm_events, events.len() as u64);
            });
            *row = (!closes).then_some(Row {
                id: stored.id,
                version: stored.version,
            });
            for event in events {
                let n = AlarmNotification {
                    alarm_id: stored.id.0,
                    machine: machine.clone(),
                    rule: rule_id.to_owned(),
                    event,
                };
                self.bus.publish(PushKind::Alarm, Some(machine), &n);
            }
            self.outbox.notify_one();
            written.push(stored);
        }
        Ok(written)
    }
}

/// A rule only used to judge a command on a closed (normal) alarm.
fn placeholder_rule() -> Rule {
    Rule {
        id: "closed".into(),
        kind: RuleKind::Stale { after_ms: 1 },
        severity: crate::alarm::Severity::Low,
        escalation: Vec::new(),
    }
}

/// What an owner feeds its machines' monitors.
#[derive(Debug, Clone)]
pub(crate) enum StageInput {
    Prediction(Prediction),
    Stale {
        ts: Timestamp,
        channels: Vec<SensorKey>,
    },
    Fresh {
        ts: Timestamp,
    },
}

/// One rule of one machine: its monitor and the stored row of its open episode.
struct Slot {
    rule: Rule,
    monitor: Monitor,
    row: Option<Row>,
}

#[derive(Default)]
struct MachineAlarms {
    slots: Vec<Slot>,
    loaded_at: Option<Instant>,
    reload: bool,
    out_of_service: bool,
    /// The newest reading's time, and the stage's clock ([`StageClock`]) when it arrived: the
    /// machine's clock runs from there (see [`MachineAlarms::now`]).
    last_reading: Option<(Timestamp, Timestamp)>,
    silent: bool,
    /// The sensors seen, sorted (a binary search per reading), for the stale input of a
    /// silent machine.
    sensors: Vec<SensorKey>,
}

impl MachineAlarms {
    /// The machine's time: its newest reading's time plus how far the stage's clock has run
    /// since it arrived. For a machine that streams live this is the wall clock; for one whose
    /// history is replayed (a backfill, the demo, the fleet evaluation) it is the replay's
    /// time, so delays and stale durations are not judged by a clock the data does not follow.
    fn now(&self, clock: &StageClock) -> Timestamp {
        self.now_at(clock.now())
    }

    /// [`Self::now`] when the stage's clock reads `at`.
    fn now_at(&self, at: Option<Timestamp>) -> Timestamp {
        match self.last_reading {
            Some((ts, arrived)) => ts.add_millis(since(at, arrived)),
            None => at.unwrap_or_else(Timestamp::now),
        }
    }
}

/// How far the stage's clock reading `at` is past `arrived`, in ms, at least 0.
fn since(at: Option<Timestamp>, arrived: Timestamp) -> i64 {
    at.map_or(0, |now| {
        now.as_millis().saturating_sub(arrived.as_millis()).max(0)
    })
}

/// The clock of one owner's alarm stage: the data time of the freshest reading it has seen,
/// running on with this process's clock between arrivals.
///
/// A machine's silence is measured on it: a machine is silent when this clock has run
/// [`SILENT_AFTER_MS`] since its last reading arrived. Streaming live, the clock is the wall
/// clock (the freshest reading is a moment old), so silence is wall time as before; replaying
/// history faster than real time, it is the replay's time, driven by the machines that do
/// send, so a machine that stops sending in a replayed week goes stale after 30 simulated
/// seconds, not after 30 seconds of wall time (which a week replayed in a minute never has).
/// Only differences of this clock are used, so a device whose clock is ahead moves it on but
/// does not make the others late (except once, at the jump: documented in `docs/alarms.md`).
#[derive(Debug, Default)]
struct StageClock {
    anchor: Option<(Timestamp, Instant)>,
}

impl StageClock {
    fn now(&self) -> Option<Timestamp> {
        self.anchor.map(|(ts, at)| {
            ts.add_millis(i64::try_from(at.elapsed().as_millis()).unwrap_or(i64::MAX))
        })
    }

    /// A reading of time `ts` arrived: the clock is at least there.
    fn observe(&mut self, ts: Timestamp) -> Timestamp {
        match self.now() {
            Some(now) if now >= ts => now,
            _ => {
                self.anchor = Some((ts, Instant::now()));
                ts
            }
        }
    }
}

/// The monitors of one owner's machines.
pub(crate) struct AlarmStage {
    alarms: Arc<Alarms>,
    store: Arc<dyn Store>,
    metrics: Arc<LiveMetrics>,
    machines: HashMap<MachineKey, MachineAlarms>,
    clock: StageClock,
    /// The stage's clock at the last [`AlarmStage::tick`].
    ticked: Option<Timestamp>,
    /// The stage's clock before the batch being observed (`None` between batches).
    batch_clock: Option<Option<Timestamp>>,
}

impl AlarmStage {
    pub(crate) fn new(alarms: Arc<Alarms>, metrics: Arc<LiveMetrics>) -> Self {
        Self {
            store: alarms.store.clone(),
            alarms,
            metrics,
            machines: HashMap::new(),
            clock: StageClock::default(),
            ticked: None,
            batch_clock: None,
        }
    }

    /// Rereads the rules and alarms of `machine` (`None`: every machine) before its next
    /// input.
    pub(crate) fn mark_reload(&mut self, machine: Option<&MachineKey>) {
        match machine {
            Some(m) => {
                if let Some(a) = self.machines.get_mut(m) {
                    a.reload = true;
                }
            }
            None => self.machines.values_mut().for_each(|a| a.reload = true),
        }
    }

    pub(crate) fn forget(&mut self, machine: &MachineKey) {
        self.machines.remove(machine);
    }

    /// Feeds the readings of a stored batch (sensor limits, silence) and what the model made
    /// of them.
    pub(crate) async fn observe(
        &mut self,
        machine: &MachineKey,
        readings: &[Reading],
        inputs: Vec<StageInput>,
    ) {
        self.ensure_loaded(machine).await;
        let Some(mut m) = self.machines.remove(machine) else {
            return;
        };
        let mut out: Vec<(usize, Vec<AlarmEvent>)> = Vec::new();
        if let Some(newest) = readings.iter().map(|r| r.ts).max() {
            if m.silent {
                m.silent = false;
                let fresh = Input::Fresh {
                    ts: readings.iter().map(|r| r.ts).min().unwrap_or(newest),
                };
                collect(&mut m, &fresh, &mut out, |k| {
                    matches!(k, RuleKind::Stale { .. })
                });
            }
            // A batch spans a stretch of time for every machine in it: the machine arrived at
            // its own newest reading or at the clock before the batch, whichever is later, not
            // at the clock after the other machines of the batch moved it (which depends on
            // the order the batch is observed in).
            let before = *self.batch_clock.get_or_insert(self.clock.now());
            let after = self.clock.observe(newest);
            let arrived = before.map_or(newest, |b| b.max(newest)).min(after);
            if m.last_reading.is_none_or(|(t, _)| newest >= t) {
                m.last_reading = Some((newest, arrived));
            }
            for r in readings {
                if let Err(at) = m.sensors.binary_search(&r.sensor) {
                    m.sensors.insert(at, r.sensor.clone());
                }
            }
            let has_limits = m.slots.iter().any(|s| {
                matches!(
                    s.rule.kind,
                    RuleKind::SensorLimit { .. } | RuleKind::Flatline { .. }
                )
            });
            if has_limits {
                let mut sorted: Vec<&Reading> = readings.iter().collect();
                sorted.sort_by_key(|r| r.ts);
                for r in sorted {
                    let input = Input::Reading {
                        sensor: &r.sensor,
                        ts: r.ts,
                        value: r.value,
                    };
                    collect(&mut m, &input, &mut out, |k| match k {
                        RuleKind::SensorLimit { sensor, .. } => *sensor == r.sensor,
                        RuleKind::Flatline { sensor, .. } => {
                            sensor.as_ref().is_none_or(|s| *s == r.sensor)
                        }
                        _ => false,
                    });
                }
            }
        }
        for input in &inputs {
            match input {
                StageInput::Prediction(p) => {
                    collect(&mut m, &Input::Prediction(p), &mut out, |k| {
                        matches!(
                            k,
                            RuleKind::Anomaly { .. }
                                | RuleKind::HealthBelow { .. }
                                | RuleKind::RulWithin { .. }
                        )
                    });
                }
                StageInput::Stale { ts, channels } => {
                    let input = Input::Stale { ts: *ts, channels };
                    collect(&mut m, &input, &mut out, |k| {
                        matches!(k, RuleKind::Stale { .. })
                    });
                }
                StageInput::Fresh { ts } => {
                    collect(&mut m, &Input::Fresh { ts: *ts }, &mut out, |k| {
                        matches!(k, RuleKind::Stale { .. })
                    });
                }
            }
        }
        // Time passes with the data too, not only with the owner's timer: delays and stale
        // durations run on the machine's own time as its rows arrive, however fast.
        let now = m.now(&self.clock);
        collect(&mut m, &Input::Tick(now), &mut out, |_| true);
        self.write(machine, &mut m, out).await;
        self.machines.insert(machine.clone(), m);
    }

    /// After every machine of a batch was observed: lets time pass for the machines that sent
    /// nothing, at least once a second of the stage's clock, so that a replay faster than real
    /// time judges their silence at the replay's pace. Not after each machine: a batch spans
    /// a stretch of time for every machine in it, and a machine not yet observed is not silent.
    ///
    /// A batch of replayed history may span minutes of the stage's clock: time passes through
    /// it in steps (one a second, or [`MAX_TICK_STEPS`] over the span when it is longer), so
    /// that a silent machine's stale alarm is raised near the instant its rule says, not at the
    /// end of the batch.
    pub(crate) async fn batch_done(&mut self) {
        self.batch_clock = None;
        let Some(now) = self.clock.now() else { return };
        let Some(last) = self.ticked else {
            self.tick().await;
            return;
        };
        let gap = now.as_millis().saturating_sub(last.as_millis());
        if gap < TICK_MS {
            return;
        }
        let step = TICK_MS.max((gap + MAX_TICK_STEPS - 1) / MAX_TICK_STEPS);
        let mut at = last.as_millis();
        while at + step < now.as_millis() {
            at += step;
            self.tick_at(Some(Timestamp::from_millis(at))).await;
        }
        self.tick().await;
    }

    /// Lets time pass for every machine, on its own clock ([`MachineAlarms::now`]): delays,
    /// stale durations, escalation by duration, shelf expiry, unlatching; and a machine from
    /// which nothing arrived for [`SILENT_AFTER_MS`] goes stale.
    pub(crate) async fn tick(&mut self) {
        self.tick_at(self.clock.now()).await;
    }

    /// [`Self::tick`] with the stage's clock at `at`.
    async fn tick_at(&mut self, at: Option<Timestamp>) {
        self.ticked = at;
        let keys: Vec<MachineKey> = self.machines.keys().cloned().collect();
        for machine in keys {
            if self.machines.get(&machine).is_some_and(|m| m.reload) {
                self.ensure_loaded(&machine).await;
            }
            let Some(mut m) = self.machines.remove(&machine) else {
                continue;
            };
            let mut out = Vec::new();
            let now = m.now_at(at);
            if let Some((last, arrived)) = m.last_reading {
                let silent_for = since(at, arrived);
                if !m.silent && silent_for >= SILENT_AFTER_MS {
                    m.silent = true;
                    let channels = m.sensors.clone();
                    let input = Input::Stale {
                        ts: last.add_millis(1),
                        channels: &channels,
                    };
                    collect(&mut m, &input, &mut out, |k| {
                        matches!(k, RuleKind::Stale { .. })
                    });
                }
            }
            collect(&mut m, &Input::Tick(now), &mut out, |_| true);
            self.write(&machine, &mut m, out).await;
            self.machines.insert(machine, m);
        }
    }

    /// Stores the events of each slot; a refused transition reloads the slot from the store
    /// and applies its current condition again.
    async fn write(
        &self,
        machine: &MachineKey,
        m: &mut MachineAlarms,
        out: Vec<(usize, Vec<AlarmEvent>)>,
    ) {
        // One write per slot with every event of this round, in order.
        let mut by_slot: Vec<(usize, Vec<AlarmEvent>)> = Vec::new();
        for (i, events) in out {
            match by_slot.iter_mut().find(|(j, _)| *j == i) {
                Some((_, all)) => all.extend(events),
                None => by_slot.push((i, events)),
            }
        }
        for (i, events) in by_slot {
            let slot = &mut m.slots[i];
            let mut events = events;
            for _ in 0..COMMAND_TRIES {
                let result = self
                    .alarms
                    .record(
                        machine,
                        &slot.rule.id,
                        &slot.monitor,
                        &mut slot.row,
                        &events,
                    )
                    .await;
                match result {
                    Ok(_) => break,
                    Err(e) => {
                        if matches!(e, StoreError::Conflict(_)) {
                            add(&self.metrics.alarm_conflicts, 1);
                        } else {
                            add(&self.metrics.alarm_write_errors, 1);
                            tracing::warn!(%machine, rule = %slot.rule.id, error = %e, "cannot store an alarm transition; the alarm is reloaded from the store");
                        }
                        // Adopt the stored alarm, keep the condition, and say it again.
                        if let Err(e) = reload_slot(self.store.as_ref(), machine, slot).await {
                            tracing::warn!(%machine, rule = %slot.rule.id, error = %e, "cannot reload an alarm");
                            break;
                        }
                        let at = events.last().map_or_else(Timestamp::now, |e| e.at);
                        let c = slot.monitor.condition().condition();
                        events = slot
                            .monitor
                            .command(Command::Condition(c), at)
                            .unwrap_or_default();
                        if events.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Loads the machine's rules and alarms when it is new, marked for reload, or its rules
    /// were last read [`RULES_CHECK_INTERVAL`] ago.
    async fn ensure_loaded(&mut self, machine: &MachineKey) {
        let m = self.machines.entry(machine.clone()).or_default();
        let due = m.reload
            || m.loaded_at
                .is_none_or(|at| at.elapsed() >= RULES_CHECK_INTERVAL);
        if !due {
            return;
        }
        let full = m.reload || m.loaded_at.is_none();
        m.reload = false;
        m.loaded_at = Some(Instant::now());
        let rules = match self.store.list_rules(Some(machine)).await {
            Ok(r) => r,
            Err(StoreError::NotFound(_)) => {
                self.machines.remove(machine);
                return;
            }
            Err(e) => {
                tracing::warn!(%machine, error = %e, "cannot read the alarm rules");
                return;
            }
        };
        // The effective rules: the machine's own, then the fleet defaults it does not
        // override (list_rules orders the machine's rule first), enabled ones only.
        let mut effective: Vec<Rule> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for r in rules {
            if seen.contains(&r.rule_id) {
                continue;
            }
            seen.push(r.rule_id.clone());
            if !r.enabled {
                continue;
            }
            match serde_json::from_str::<Rule>(&r.definition) {
                Ok(rule) if rule.check().is_ok() && rule.id == r.rule_id => effective.push(rule),
                Ok(_) | Err(_) => {
                    add(&self.metrics.alarm_rule_errors, 1);
                    tracing::warn!(%machine, rule = %r.rule_id, "a stored alarm rule is invalid; it is not evaluated");
                }
            }
        }
        let service = match self.store.out_of_service(Some(machine)).await {
            Ok(notes) => notes.into_iter().next(),
            Err(e) => {
                tracing::warn!(%machine, error = %e, "cannot read the machine's service state");
                None
            }
        };
        let Some(mut m) = self.machines.remove(machine) else {
            return;
        };
        let mut slots: Vec<Slot> = Vec::with_capacity(effective.len());
        let mut out = Vec::new();
        for rule in effective {
            let existing = m
                .slots
                .iter()
                .position(|s| s.rule.id == rule.id)
                .map(|i| m.slots.swap_remove(i));
            let mut slot = match existing {
                Some(mut s) => {
                    s.monitor.set_rule(&rule);
                    s.rule = rule;
                    s
                }
                None => Slot {
                    monitor: Monitor::new(&rule),
                    rule,
                    row: None,
                },
            };
            if full {
                if let Err(e) = reload_slot(self.store.as_ref(), machine, &mut slot).await {
                    tracing::warn!(%machine, rule = %slot.rule.id, error = %e, "cannot read the alarm's stored state");
                }
            }
            slots.push(slot);
        }
        // Rules gone (deleted or disabled): their condition ends, so an acknowledged alarm
        // clears and an unacknowledged one returns (to be acknowledged).
        for mut gone in std::mem::take(&mut m.slots) {
            if gone.row.is_none() {
                continue;
            }
            let at = m.now(&self.clock);
            let events = gone
                .monitor
                .command(Command::Condition(Default::default()), at)
                .unwrap_or_default();
            if !events.is_empty() {
                if let Err(e) = self
                    .alarms
                    .record(
                        machine,
                        &gone.rule.id,
                        &gone.monitor,
                        &mut gone.row,
                        &events,
                    )
                    .await
                {
                    tracing::warn!(%machine, rule = %gone.rule.id, error = %e, "cannot end the alarm of a removed rule");
                }
            }
        }
        m.slots = slots;
        m.out_of_service = service.is_some();
        let now = m.now(&self.clock);
        for (i, slot) in m.slots.iter_mut().enumerate() {
            let state = slot.monitor.alarm().state().name();
            let cmd = match (&service, state) {
                (Some(note), s) if s != StateName::OutOfService => Command::OutOfService {
                    by: note.by.clone(),
                    reason: note.reason.clone(),
                },
                (None, StateName::OutOfService) => Command::InService {
                    by: crate::alarm::SYSTEM.to_owned(),
                },
                _ => continue,
            };
            let at = service.as_ref().map_or(now, |n| n.since.max(now));
            if let Ok(events) = slot.monitor.command(cmd, at) {
                if !events.is_empty() {
                    out.push((i, events));
                }
            }
        }
        self.write(machine, &mut m, out).await;
        self.machines.insert(machine.clone(), m);
    }
}

/// Feeds `input` to the slots whose rule kind `wants` it; collects their events.
fn collect(
    m: &mut MachineAlarms,
    input: &Input<'_>,
    out: &mut Vec<(usize, Vec<AlarmEvent>)>,
    wants: impl Fn(&RuleKind) -> bool,
) {
    for (i, slot) in m.slots.iter_mut().enumerate() {
        if !wants(&slot.rule.kind) {
            continue;
        }
        let events = slot.monitor.observe(input);
        if !events.is_empty() {
            out.push((i, events));
        }
    }
}

/// Adopts the stored state of the slot's alarm: the open episode's alarm (keeping the slot's
/// condition), or a normal alarm when none is open.
async fn reload_slot(
    store: &dyn Store,
    machine: &MachineKey,
    slot: &mut Slot,
) -> Result<(), StoreError> {
    // The newest episode of the machine and rule: the open one when there is one (an episode
    // opens only once the one before it closed), else the last closed, whose end the next
    // episode may not precede.
    let newest = store
        .list_alarms(&AlarmQuery {
            machine: Some(machine.clone()),
            rule_id: Some(slot.rule.id.clone()),
            limit: 1,
            ..AlarmQuery::default()
        })
        .await?
        .into_iter()
        .next();
    match newest {
        Some(stored) if stored.closed_at.is_none() => {
            let monitor: Monitor = serde_json::from_str(&stored.state_json).map_err(|e| {
                StoreError::Backend(
                    format!(
                        "the stored state of alarm {} cannot be read: {e}",
                        stored.id
                    )
                    .into(),
                )
            })?;
            let mut alarm = monitor.alarm().clone();
            alarm.set_rule(&slot.rule);
            slot.monitor.replace_alarm(alarm);
            slot.row = Some(Row {
                id: stored.id,
                version: stored.version,
            });
        }
        closed => {
            let mut alarm = if slot.row.is_some() || slot.monitor.alarm().is_open() {
                crate::alarm::Alarm::new(&slot.rule)
            } else {
                slot.monitor.alarm().clone()
            };
            if let Some(closed) = closed {
                alarm.not_before(closed.closed_at.unwrap_or(closed.last_event_at));
                alarm.not_before(closed.last_event_at);
            }
            slot.monitor.replace_alarm(alarm);
            slot.row = None;
        }
    }
    Ok(())
}
