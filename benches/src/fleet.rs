//! The fleet scenario of issue 10 (`eval fleet`): a seeded week of simulated machines, some
//! with faults at known times, through the real engine, live path and alarm stage on an
//! in-process SQLite store, on a virtual clock; every fault judged against its failure point,
//! every other alarm counted as false.
//!
//! - **Virtual clock.** The simulator's samples carry simulated timestamps and are written as
//!   fast as the store takes them; the alarm stage runs on the data's time (its clock is the
//!   freshest reading's time, see `pdm_core::live::alarms`), so a week takes seconds.
//! - **Protocol.** The first [`TRAIN_DAYS`] day is healthy history: every machine's model is
//!   trained on it through the jobs table (the job runner, as the server does), then the
//!   `days` monitored days follow. Faults start only in the monitored days, spread over them.
//! - **Failure points** ([`failure_point`]) come from the physics of the fault and common
//!   practice, fixed before any result was seen; `docs/evaluation.md` ("Fleet scenario")
//!   gives the reasons.
//! - **Attribution.** The first alarm raised on a faulty machine from the fault's start to
//!   [`GRACE_MS`] after its end is the fault's alarm; every other alarm raised anywhere in the
//!   run (healthy machines, outside the windows, the training day included) is false.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use pdm_core::alarm::{default_rules, AlarmEventKind};
use pdm_core::live::{AlignDefaults, JobRunner, Live, LiveConfig, Registry, TrainRequest};
use pdm_core::store::{JobStatus, NewAlarmRule};
use pdm_core::{
    Ack, Batch, Catalog, Engine, EngineConfig, MachineKey, Metrics, Reading, Timestamp,
};
use pdm_detect::DetectFactory;
use pdm_ingest::sim::{
    bearing_vibration_factor, bearing_wear, register_machines, FaultConfig, FaultKind, MachineKind,
    SimConfig, Simulator, OVERHEAT_EXCESS_C,
};
use pdm_store::StoreOptions;
use serde_json::{json, Value};

/// The fewest machines a run takes (issue 10: at least 20).
pub const MIN_MACHINES: usize = 20;
/// Days of healthy history every model trains on before the monitored days: one full daily
/// load cycle (day shifts and the night shift).
pub const TRAIN_DAYS: u64 = 1;
/// The fewest monitored days: a bearing wear of [`WEAR_HOURS`] must fit after the first hour.
pub const MIN_DAYS: u64 = 3;
/// How long after a fault's end an alarm still belongs to it: three thermal time constants of
/// the slowest machine (the motor's 30 minutes, 95 % of the way back), rounded up to 2 hours.
pub const GRACE_MS: i64 = 2 * 3_600_000;
/// Faults of each kind in a run.
pub const FAULTS_PER_KIND: usize = 2;

/// Bearing wear runs for two days (then the bearing is replaced: the window ends).
pub const WEAR_HOURS: u64 = 48;
/// The vibration factor at which bearing wear is a failure (see [`failure_point`]).
pub const WEAR_FAILURE_FACTOR: f64 = 2.5;
/// The temperature excess at which overheating is a failure, in °C (see [`failure_point`]).
pub const OVERHEAT_FAILURE_C: f64 = 20.0;
/// One shift: the failure point of a spiking sensor (see [`failure_point`]).
pub const SHIFT_MS: i64 = 8 * 3_600_000;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The training parameters of the fleet's models: the pipeline with the dominant statistic
/// (T² or Q, whichever is further beyond its limit) and a margin of 2 over the largest
/// statistic of the training day. Chosen on seeds 1, 2 and 3 (with T², margin 3, 6 of 10
/// faults of seed 1 were alarmed in time; with dominant, margin 3, 29 of 30); the reported
/// seeds are others (`docs/evaluation.md`, "Fleet scenario").
pub fn fleet_model_params() -> Value {
    json!({"statistic": "dominant", "margin": 2.0})
}

/// Settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Machines, at least [`MIN_MACHINES`].
    pub machines: usize,
    /// Monitored days after the training day, at least [`MIN_DAYS`].
    pub days: u64,
    /// Seed of the simulator and of the fault schedule.
    pub seed: u64,
    /// Seconds between two samples of a machine (the models' row period).
    pub interval_s: u64,
    /// Parameters of the trained models (a JSON object), given to the live path as its
    /// `train_params`; [`fleet_model_params`] by default.
    pub model_params: Option<Value>,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            machines: 24,
            days: 7,
            seed: 42,
            interval_s: 10,
            model_params: Some(fleet_model_params()),
        }
    }
}

impl FleetConfig {
    /// Checks the settings, naming the bad one.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.machines < MIN_MACHINES {
            bail!(
                "--machines must be at least {MIN_MACHINES} (got {})",
                self.machines
            );
        }
        if self.machines < FaultKind::ALL.len() * FAULTS_PER_KIND + 1 {
            bail!("--machines must leave at least one machine healthy");
        }
        if !(MIN_DAYS..=366).contains(&self.days) {
            bail!(
                "--days must be between {MIN_DAYS} and 366 (got {})",
                self.days
            );
        }
        if !(1..=60).contains(&self.interval_s) {
            bail!(
                "--interval-s must be between 1 and 60 (got {})",
                self.interval_s
            );
        }
        if let Some(p) = &self.model_params {
            if !p.is_object() {
                bail!("--model-params must be a JSON object (got {p})");
            }
        }
        Ok(())
    }
}

/// One scheduled fault, with its failure point.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    /// The machine.
    pub machine: MachineKey,
    /// Its kind.
    pub machine_kind: MachineKind,
    /// The fault.
    pub kind: FaultKind,
    /// First instant of the fault.
    pub start: Timestamp,
    /// First instant after it.
    pub end: Timestamp,
    /// When the fault does harm (see [`failure_point`]).
    pub failure: Timestamp,
}

/// How long a fault of `kind` lasts in the schedule, in ms.
pub fn fault_duration_ms(kind: FaultKind) -> i64 {
    match kind {
        FaultKind::BearingWear => WEAR_HOURS as i64 * HOUR_MS,
        FaultKind::Overheating => 2 * HOUR_MS,
        FaultKind::StuckSensor => 6 * HOUR_MS,
        FaultKind::Spikes => 12 * HOUR_MS,
        FaultKind::Dropout => HOUR_MS,
    }
}

/// How long after its start a fault of `kind` on a machine of `machine` does harm, in ms:
///
/// - bearing wear: when vibration reaches [`WEAR_FAILURE_FACTOR`] (2.5) times its healthy
///   level. ISO 10816 / 20816 zone boundaries are 2.5 times apart (e.g. 1.8, 4.5, 11.2 mm/s):
///   a machine running in zone B, acceptable for long-term operation, is in zone D, "severe
///   enough to cause damage", at 2.5 times its level;
/// - overheating: when the temperature is [`OVERHEAT_FAILURE_C`] (20 °C) above normal. By the
///   10 °C rule (Montsinger, Arrhenius) insulation and grease life halve for every 10 °C: at
///   20 °C the machine ages four times as fast, past where motor and bearing temperature
///   protection is set above normal running. The simulated fault drives the temperature
///   [`OVERHEAT_EXCESS_C`] above normal through the machine's thermal lag (time constant τ),
///   so the excess reaches 20 °C at τ ln(30 / 10);
/// - stuck sensor (temperature): when an overheating that began as the value froze would
///   have reached its own failure point unseen, i.e. the overheating's time to failure on
///   that machine: the sensor's protection is gone;
/// - dropout: the same, for the machine's silence: nothing is watched, and the fastest harm
///   the simulator knows (an overheating) would be done by then;
/// - spikes: one shift ([`SHIFT_MS`], 8 hours). A spiking sensor does no harm to the machine;
///   it corrupts the data that decisions rest on, and the operational horizon for a
///   data-quality fault is the shift in which it appears (found on that shift's rounds and
///   handed over, not left to the next day).
pub fn failure_point(kind: FaultKind, machine: MachineKind) -> i64 {
    let overheat = || {
        let tau = machine.thermal_time_constant_s();
        let t = tau * (OVERHEAT_EXCESS_C / (OVERHEAT_EXCESS_C - OVERHEAT_FAILURE_C)).ln();
        (t * 1000.0).round() as i64
    };
    match kind {
        FaultKind::BearingWear => {
            // The wear curve is increasing: bisect for the progress at the failure factor.
            let (mut lo, mut hi) = (0.0f64, 1.0f64);
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if bearing_vibration_factor(bearing_wear(mid)) < WEAR_FAILURE_FACTOR {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (hi * fault_duration_ms(kind) as f64).round() as i64
        }
        FaultKind::Overheating | FaultKind::StuckSensor | FaultKind::Dropout => overheat(),
        FaultKind::Spikes => SHIFT_MS,
    }
}

/// SplitMix64: the schedule's own random stream (the simulator has its own).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The simulation of a run: the fleet, its faults on [`FAULTS_PER_KIND`] machines per kind
/// (chosen by the seed), starting at stratified times over the monitored days (every fault
/// inside them, with its grace, before the end); the other machines healthy.
pub fn scenario(config: &FleetConfig, start: Timestamp) -> (SimConfig, Vec<PlannedFault>) {
    let mut sim = SimConfig::fleet(config.machines, config.seed);
    sim.start = Some(start);
    sim.interval_ms = config.interval_s * 1000;
    sim.clamp_to_now = false;
    sim.register = false;
    sim.duration_secs = Some((TRAIN_DAYS + config.days) * 86_400);
    let mut rng = SplitMix(config.seed ^ 0x5eed_f1ee_7000_0010);
    // Which machines, in which order: a seeded shuffle.
    let mut order: Vec<usize> = (0..config.machines).collect();
    for i in (1..order.len()).rev() {
        let j = rng.below(i + 1);
        order.swap(i, j);
    }
    let mut kinds: Vec<FaultKind> = FaultKind::ALL
        .iter()
        .flat_map(|k| std::iter::repeat_n(*k, FAULTS_PER_KIND))
        .collect();
    for i in (1..kinds.len()).rev() {
        let j = rng.below(i + 1);
        kinds.swap(i, j);
    }
    let monitored_from = TRAIN_DAYS as i64 * DAY_MS + HOUR_MS;
    let end = (TRAIN_DAYS + config.days) as i64 * DAY_MS;
    let n = kinds.len();
    let mut planned = Vec::with_capacity(n);
    for (slot, kind) in kinds.into_iter().enumerate() {
        let index = order[slot];
        let duration = fault_duration_ms(kind);
        let latest = end - duration - GRACE_MS;
        // The slot'th of n strata of the span this fault can start in, jittered inside it.
        let span = (latest - monitored_from).max(0) as f64;
        let offset = monitored_from + (span * (slot as f64 + rng.unit()) / n as f64) as i64;
        // Whole seconds, so the simulator's start_after_secs is exact.
        let offset_s = (offset / 1000) as u64;
        let machine = &mut sim.machines[index];
        machine.fault = Some(FaultConfig::new(
            kind,
            offset_s,
            Some((duration / 1000) as u64),
        ));
        let fault_start = start.add_millis(offset_s as i64 * 1000);
        planned.push(PlannedFault {
            machine: machine.key.clone(),
            machine_kind: machine.kind,
            kind,
            start: fault_start,
            end: fault_start.add_millis(duration),
            failure: fault_start.add_millis(failure_point(kind, machine.kind)),
        });
    }
    planned.sort_by_key(|p| p.start);
    (sim, planned)
}

/// What became of one fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultOutcome {
    /// The fault.
    pub fault: PlannedFault,
    /// The first alarm raised for it: rule and time.
    pub first_alarm: Option<(String, Timestamp)>,
    /// What the model made of the fault window: rows scored, the share flagged anomalous, the
    /// highest score over its threshold, the lowest health (diagnostics, not judged).
    pub scored: Scored,
}

/// The predictions of a span, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Scored {
    /// Predictions in the span.
    pub rows: usize,
    /// The share of them flagged anomalous.
    pub anomalous: f64,
    /// The highest `score / threshold`.
    pub peak: f64,
    /// The lowest health index.
    pub min_health: Option<f64>,
    /// The first prediction flagged anomalous.
    pub first_anomalous: Option<Timestamp>,
}

impl FaultOutcome {
    /// Time from the fault's start to its first alarm, in seconds.
    pub fn delay_s(&self) -> Option<f64> {
        self.first_alarm
            .as_ref()
            .map(|(_, at)| (at.as_millis() - self.fault.start.as_millis()) as f64 / 1000.0)
    }

    /// Alarmed at or before its failure point.
    pub fn in_time(&self) -> bool {
        self.first_alarm
            .as_ref()
            .is_some_and(|(_, at)| *at <= self.fault.failure)
    }
}

/// An alarm that belongs to no fault.
#[derive(Debug, Clone, PartialEq)]
pub struct FalseAlarm {
    /// The machine.
    pub machine: MachineKey,
    /// The rule.
    pub rule: String,
    /// When it was raised.
    pub at: Timestamp,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct FleetReport {
    /// The settings.
    pub config: FleetConfig,
    /// The simulation's first instant.
    pub start: Timestamp,
    /// Every fault, in time order.
    pub faults: Vec<FaultOutcome>,
    /// Every false alarm.
    pub false_alarms: Vec<FalseAlarm>,
    /// Alarms annunciated in all (raised, or reactivated after returning).
    pub alarms_raised: usize,
    /// Readings stored, rows scored, readings the live path skipped (must be 0).
    pub readings: u64,
    /// Rows scored by the live models.
    pub rows_scored: u64,
    /// Readings the live path skipped (a full owner queue); 0 in a sound run.
    pub readings_skipped: u64,
    /// Wall time of the run, in seconds.
    pub wall_s: f64,
}

impl FleetReport {
    /// Monitored machine-weeks: machines times monitored days over 7.
    pub fn machine_weeks(&self) -> f64 {
        self.config.machines as f64 * self.config.days as f64 / 7.0
    }

    /// False alarms per monitored machine-week.
    pub fn false_per_machine_week(&self) -> f64 {
        self.false_alarms.len() as f64 / self.machine_weeks()
    }

    /// Faults alarmed at or before their failure point.
    pub fn in_time(&self) -> usize {
        self.faults.iter().filter(|f| f.in_time()).count()
    }

    /// The target of issue 10: every fault alarmed before its failure point, at most one
    /// false alarm per machine-week.
    pub fn meets_target(&self) -> bool {
        self.in_time() == self.faults.len() && self.false_per_machine_week() <= 1.0
    }

    fn hours(&self, t: Timestamp) -> f64 {
        (t.as_millis() - self.start.as_millis()) as f64 / HOUR_MS as f64
    }

    /// The report as a table (times in simulated hours from the start).
    pub fn table(&self) -> String {
        let mut out = format!(
            "fleet seed {}: {} machines, {} training day + {} monitored days at {} s per sample; \
             {:.1} s wall\n",
            self.config.seed,
            self.config.machines,
            TRAIN_DAYS,
            self.config.days,
            self.config.interval_s,
            self.wall_s
        );
        out.push_str(&format!(
            "  {:<14} {:<13} {:>8} {:>9} {:>9}  {:<16} {:>9}  {:<22} {}\n",
            "machine",
            "fault",
            "start h",
            "end h",
            "fail h",
            "first alarm",
            "delay",
            "in time",
            "model in the window"
        ));
        for f in &self.faults {
            let p = &f.fault;
            let (rule, at) = match &f.first_alarm {
                Some((r, at)) => (r.as_str(), format!("{:.2}", self.hours(*at))),
                None => ("-", "-".to_owned()),
            };
            let delay = f
                .delay_s()
                .map_or("-".to_owned(), |d| format!("{:.1} min", d / 60.0));
            let s = &f.scored;
            out.push_str(&format!(
                "  {:<14} {:<13} {:>8.2} {:>9.2} {:>9.2}  {:<16} {:>9}  {:<22} {:.0}% anomalous (first after {}), peak {:.1}x, health >= {}\n",
                p.machine.as_str(),
                p.kind.as_str(),
                self.hours(p.start),
                self.hours(p.end),
                self.hours(p.failure),
                rule,
                delay,
                format!("{} (at {at} h)", if f.in_time() { "yes" } else { "NO" }),
                100.0 * s.anomalous,
                s.first_anomalous.map_or("-".to_owned(), |t| format!(
                    "{:.1} min",
                    (t.as_millis() - p.start.as_millis()) as f64 / 60_000.0
                )),
                s.peak,
                s.min_health.map_or("-".to_owned(), |h| format!("{h:.2}")),
            ));
        }
        out.push_str(&format!(
            "  in time {}/{}; false alarms {} over {:.2} machine-weeks = {:.3} per machine-week; \
             {} alarms raised; {} readings, {} rows scored, {} skipped\n",
            self.in_time(),
            self.faults.len(),
            self.false_alarms.len(),
            self.machine_weeks(),
            self.false_per_machine_week(),
            self.alarms_raised,
            self.readings,
            self.rows_scored,
            self.readings_skipped
        ));
        for a in &self.false_alarms {
            out.push_str(&format!(
                "  false alarm: {} {} at {:.2} h\n",
                a.machine,
                a.rule,
                self.hours(a.at)
            ));
        }
        out
    }

    /// The report as JSON (times in epoch milliseconds and hours from the start).
    pub fn to_json(&self) -> Value {
        let faults: Vec<Value> = self
            .faults
            .iter()
            .map(|f| {
                let p = &f.fault;
                json!({
                    "machine": p.machine.as_str(),
                    "machine_kind": p.machine_kind.as_str(),
                    "kind": p.kind.as_str(),
                    "start_ms": p.start.as_millis(),
                    "end_ms": p.end.as_millis(),
                    "failure_ms": p.failure.as_millis(),
                    "start_h": self.hours(p.start),
                    "failure_h": self.hours(p.failure),
                    "first_alarm": f.first_alarm.as_ref().map(|(rule, at)| json!({
                        "rule": rule, "at_ms": at.as_millis(), "at_h": self.hours(*at),
                    })),
                    "delay_s": f.delay_s(),
                    "in_time": f.in_time(),
                    "scored": {
                        "rows": f.scored.rows,
                        "anomalous_share": f.scored.anomalous,
                        "peak_score_over_threshold": f.scored.peak,
                        "min_health": f.scored.min_health,
                        "first_anomalous_ms": f.scored.first_anomalous.map(|t| t.as_millis()),
                    },
                })
            })
            .collect();
        let false_alarms: Vec<Value> = self
            .false_alarms
            .iter()
            .map(|a| json!({"machine": a.machine.as_str(), "rule": a.rule, "at_ms": a.at.as_millis()}))
            .collect();
        json!({
            "seed": self.config.seed,
            "machines": self.config.machines,
            "train_days": TRAIN_DAYS,
            "days": self.config.days,
            "interval_s": self.config.interval_s,
            "model_params": self.config.model_params,
            "start_ms": self.start.as_millis(),
            "faults": faults,
            "in_time": self.in_time(),
            "false_alarms": false_alarms,
            "machine_weeks": self.machine_weeks(),
            "false_per_machine_week": self.false_per_machine_week(),
            "alarms_raised": self.alarms_raised,
            "meets_target": self.meets_target(),
            "readings": self.readings,
            "rows_scored": self.rows_scored,
            "readings_skipped": self.readings_skipped,
            "wall_s": self.wall_s,
        })
    }
}

/// Simulated ticks handed to the engine between two waits for the store and the live path:
/// the owners' queues (256 batches) never fill, so no batch is skipped for detection.
const TICKS_PER_FLUSH: usize = 64;

/// Runs the scenario: a fresh SQLite store in a temporary folder, the fleet defaults as the
/// alarm rules, the engine and the live path, a training job per machine after the training
/// day, then the monitored days; the alarms read back from the store and judged.
pub async fn run(config: &FleetConfig) -> anyhow::Result<FleetReport> {
    config.check()?;
    let wall = Instant::now();
    let dir = tempfile::tempdir().context("a temporary folder for the store")?;
    let url = format!("sqlite://{}", dir.path().join("fleet.db").display());
    let store = pdm_store::connect(&url, &StoreOptions::default())
        .await
        .context("open the SQLite store")?;
    // Midnight UTC, so the simulator's shifts fall on their hours; in the past, so nothing is
    // from the future.
    let now = Timestamp::now().as_millis();
    let start_ms = (now / DAY_MS - (TRAIN_DAYS + config.days) as i64 - 1) * DAY_MS;
    let start = Timestamp::from_millis(start_ms);
    let (sim_config, planned) = scenario(config, start);
    let mut sim = Simulator::new(&sim_config).context("simulator settings")?;

    let catalog = Arc::new(Catalog::load(store.clone(), false).await?);
    register_machines(&catalog, &sim).await?;
    for rule in default_rules() {
        store
            .put_rule(&NewAlarmRule {
                machine: None,
                rule_id: rule.id.clone(),
                definition: serde_json::to_string(&rule)?,
                enabled: true,
            })
            .await?;
    }
    let period_ms = config.interval_s * 1000;
    // A value is carried over three missed samples at most; past that the channel is stale.
    let max_gap_ms = 3 * period_ms;
    let live_config = LiveConfig {
        sample_period_ms: period_ms,
        max_gap_ms,
        seed_alarm_defaults: false,
        train_params: config.model_params.clone().unwrap_or_else(|| json!({})),
        ..LiveConfig::default()
    };
    live_config.check()?;
    let factory = Arc::new(DetectFactory);
    let live = Live::start(store.clone(), factory.clone(), live_config.clone());
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start_with_live(
        store.clone(),
        catalog.clone(),
        metrics.clone(),
        EngineConfig {
            // One writer: batches reach the live path in time order.
            writers: Some(1),
            ..EngineConfig::default()
        },
        Some(live.clone()),
    );
    let jobs = JobRunner::start(
        store.clone(),
        factory.clone(),
        Some(live.clone()),
        live.metrics_handle(),
        live_config.clone(),
    )
    .await?;
    let registry = Registry::new(
        store.clone(),
        factory,
        Some(live.clone()),
        AlignDefaults {
            sample_period_ms: period_ms,
            max_gap_ms,
        },
    );
    let sink = engine.sink();
    let train_end = start.add_millis(TRAIN_DAYS as i64 * DAY_MS);
    let mut sent: u64 = 0;
    let mut trained = false;
    let mut ticks = 0usize;
    let mut batch: Vec<Reading> = Vec::new();
    while let Some(tick) = sim.next_tick() {
        if !trained && tick.ts >= train_end {
            flush(&sink, &mut batch, &mut sent).await?;
            benches_wait(&metrics, &live, sent).await?;
            train(&registry, &jobs, store.as_ref(), &sim, start, train_end).await?;
            trained = true;
        }
        for s in tick.samples {
            for (sensor, value) in s.values {
                batch.push(Reading {
                    machine: s.machine.clone(),
                    sensor,
                    ts: s.ts,
                    value,
                });
            }
        }
        ticks += 1;
        if ticks % TICKS_PER_FLUSH == 0 {
            flush(&sink, &mut batch, &mut sent).await?;
            benches_wait(&metrics, &live, sent).await?;
        }
    }
    flush(&sink, &mut batch, &mut sent).await?;
    benches_wait(&metrics, &live, sent).await?;
    let live_metrics = live.metrics();
    jobs.shutdown().await;
    engine.shutdown().await;
    live.shutdown().await;

    // Every annunciation, from the store: an alarm raised, or a returned one (nobody
    // acknowledges in this run) active again, which the operator sees as a new alarm.
    let mut raised: BTreeMap<MachineKey, Vec<(Timestamp, String)>> = BTreeMap::new();
    let events = store
        .alarm_events_between(
            start,
            start.add_millis((TRAIN_DAYS + config.days + 1) as i64 * DAY_MS),
            &[AlarmEventKind::Raised, AlarmEventKind::Reactivated],
        )
        .await?;
    let alarms_raised = events.len();
    for e in events {
        raised
            .entry(e.machine)
            .or_default()
            .push((e.event.event.at, e.rule_id));
    }
    for v in raised.values_mut() {
        v.sort();
    }
    let mut faults = Vec::new();
    let mut false_alarms = Vec::new();
    for p in &planned {
        let first = raised.get(&p.machine).and_then(|v| {
            v.iter()
                .find(|(at, _)| *at >= p.start && *at < p.end.add_millis(GRACE_MS))
                .map(|(at, rule)| (rule.clone(), *at))
        });
        let predictions = store
            .predictions(&pdm_core::PredictionQuery {
                machine: p.machine.clone(),
                from: p.start,
                to: p.end,
                limit: u32::MAX,
            })
            .await?;
        let rows = predictions.len();
        let scored = Scored {
            rows,
            anomalous: predictions.iter().filter(|x| x.anomalous).count() as f64
                / rows.max(1) as f64,
            peak: predictions
                .iter()
                .filter(|x| x.threshold > 0.0)
                .map(|x| x.score / x.threshold)
                .fold(0.0, f64::max),
            min_health: predictions.iter().filter_map(|x| x.health).reduce(f64::min),
            first_anomalous: predictions.iter().find(|x| x.anomalous).map(|x| x.ts),
        };
        faults.push(FaultOutcome {
            fault: p.clone(),
            first_alarm: first,
            scored,
        });
    }
    for (machine, list) in &raised {
        for (at, rule) in list {
            let belongs = planned.iter().any(|p| {
                &p.machine == machine && *at >= p.start && *at < p.end.add_millis(GRACE_MS)
            });
            if !belongs {
                false_alarms.push(FalseAlarm {
                    machine: machine.clone(),
                    rule: rule.clone(),
                    at: *at,
                });
            }
        }
    }
    false_alarms.sort_by_key(|a| a.at);
    Ok(FleetReport {
        config: config.clone(),
        start,
        faults,
        false_alarms,
        alarms_raised,
        readings: metrics.snapshot().readings_stored,
        rows_scored: live_metrics.rows_scored,
        readings_skipped: live_metrics.readings_skipped,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}

async fn flush(
    sink: &pdm_core::BatchSink,
    batch: &mut Vec<Reading>,
    sent: &mut u64,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    *sent += batch.len() as u64;
    let readings = std::mem::take(batch);
    sink.send(
        Batch {
            readings,
            dead_letters: Vec::new(),
        },
        Ack::none(),
    )
    .await
    .context("the engine stopped")?;
    Ok(())
}

/// Waits until the engine stored `sent` readings and the live path processed them.
async fn benches_wait(metrics: &Metrics, live: &Live, sent: u64) -> anyhow::Result<()> {
    crate::wait_stored(metrics, sent, Duration::from_micros(200)).await?;
    live.flush().await;
    Ok(())
}

/// Queues a training of every machine on the training day (the job runner trains and
/// activates them) and waits for all of them.
async fn train(
    registry: &Registry,
    jobs: &JobRunner,
    store: &dyn pdm_core::Store,
    sim: &Simulator,
    from: Timestamp,
    to: Timestamp,
) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for (machine, _) in sim.machines() {
        let request = TrainRequest {
            from,
            to,
            kind: None,
            // Neither kind nor parameters: the live path's `train_params` apply, as they do
            // to the auto-training.
            params: None,
            activate: true,
            sample_period_ms: None,
            max_gap_ms: None,
            channels: None,
            requested_by: "eval-fleet".to_owned(),
        };
        let job = registry
            .request_training(&machine, &request)
            .await
            .with_context(|| format!("queue the training of {machine}"))?;
        ids.push((machine, job.id));
    }
    jobs.wake();
    let deadline = Instant::now() + Duration::from_secs(600);
    for (machine, id) in ids {
        loop {
            let job = store.get_job(id).await?;
            match job.status {
                JobStatus::Succeeded => break,
                JobStatus::Failed | JobStatus::Cancelled => bail!(
                    "the training of {machine} ended {:?}: {}",
                    job.status,
                    job.message.unwrap_or_default()
                ),
                _ if Instant::now() > deadline => {
                    bail!("the training of {machine} did not finish in 600 s")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_points_follow_the_physics() {
        // Bearing wear: factor 2.5 is wear 0.3, at progress ln(1 + 0.3 (e^4 - 1)) / 4.
        let p = (1.0 + 0.3 * (4.0f64.exp() - 1.0)).ln() / 4.0;
        let wear = failure_point(FaultKind::BearingWear, MachineKind::Pump);
        assert!(
            (wear as f64 - p * 48.0 * HOUR_MS as f64).abs() < 1.0,
            "{wear}"
        );
        // Overheating: τ ln 3, 22 minutes for a pump, 33 for a motor.
        let pump = failure_point(FaultKind::Overheating, MachineKind::Pump);
        assert_eq!(pump, (1_200.0 * 3f64.ln() * 1000.0).round() as i64);
        let motor = failure_point(FaultKind::Overheating, MachineKind::Motor);
        assert!(motor > pump);
        assert_eq!(
            failure_point(FaultKind::StuckSensor, MachineKind::Motor),
            motor
        );
        assert_eq!(failure_point(FaultKind::Dropout, MachineKind::Pump), pump);
        assert_eq!(
            failure_point(FaultKind::Spikes, MachineKind::Pump),
            SHIFT_MS
        );
        for kind in FaultKind::ALL {
            for m in MachineKind::ALL {
                assert!(
                    failure_point(kind, m) < fault_duration_ms(kind),
                    "{kind:?} {m:?}"
                );
            }
        }
    }

    #[test]
    fn the_schedule_is_seeded_spread_and_inside_the_monitored_days() {
        let config = FleetConfig::default();
        let start = Timestamp::from_millis(1_767_225_600_000);
        let (sim, planned) = scenario(&config, start);
        assert_eq!(planned, scenario(&config, start).1);
        assert_ne!(
            planned,
            scenario(
                &FleetConfig {
                    seed: 7,
                    ..config.clone()
                },
                start
            )
            .1
        );
        assert_eq!(planned.len(), FaultKind::ALL.len() * FAULTS_PER_KIND);
        for kind in FaultKind::ALL {
            assert_eq!(
                planned.iter().filter(|p| p.kind == kind).count(),
                FAULTS_PER_KIND
            );
        }
        let faulty = sim.machines.iter().filter(|m| m.fault.is_some()).count();
        assert_eq!(faulty, planned.len());
        let train_end = start.add_millis(DAY_MS);
        let end = start.add_millis(8 * DAY_MS);
        for p in &planned {
            assert!(
                p.start > train_end && p.end.add_millis(GRACE_MS) <= end,
                "{p:?}"
            );
            assert!(p.failure > p.start && p.failure < p.end);
        }
        // Spread: the first and the last start days apart.
        let span = planned[planned.len() - 1].start.as_millis() - planned[0].start.as_millis();
        assert!(span > 3 * DAY_MS, "{span}");
        let sim_windows = Simulator::new(&sim).expect("valid").fault_windows();
        for p in &planned {
            let w = sim_windows
                .iter()
                .find(|w| w.machine == p.machine)
                .expect("window");
            assert_eq!((w.start, w.end, w.kind), (p.start, Some(p.end), p.kind));
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(FleetConfig::default().check().is_ok());
        let bad = [
            FleetConfig {
                machines: 19,
                ..FleetConfig::default()
            },
            FleetConfig {
                days: 2,
                ..FleetConfig::default()
            },
            FleetConfig {
                interval_s: 0,
                ..FleetConfig::default()
            },
            FleetConfig {
                model_params: Some(json!([1])),
                ..FleetConfig::default()
            },
        ];
        for c in bad {
            assert!(c.check().is_err(), "{c:?}");
        }
    }
}
