//! A simulator of pumps, motors and compressors, with injected faults and ground truth.
//!
//! Each machine follows a daily load cycle (day shifts at full load, a reduced night shift, a
//! slow sinusoid and random drift); load drives current, flow and pressure at once and
//! temperature with a thermal lag; every channel carries Gaussian noise. Faults can be
//! injected per machine: gradual bearing wear (vibration rises exponentially, temperature
//! follows), overheating, a stuck sensor, spikes, and sensor dropout. Every sample says
//! whether it lies inside a fault window, for evaluating detectors.
//!
//! The same seed gives the same data, whatever the machine order or the pace.
//!
//! ```
//! use pdm_ingest::sim::{FaultConfig, FaultKind, MachineKind, SimConfig, SimMachineConfig, Simulator};
//! use pdm_core::{MachineKey, Timestamp};
//!
//! let config = SimConfig {
//!     start: Some(Timestamp::from_millis(1_767_225_600_000)),
//!     interval_ms: 60_000,
//!     machines: vec![SimMachineConfig {
//!         key: MachineKey::new("pump-1")?,
//!         kind: MachineKind::Pump,
//!         fault: Some(FaultConfig::new(FaultKind::Overheating, 3600, Some(3600))),
//!     }],
//!     ..SimConfig::default()
//! };
//! let mut sim = Simulator::new(&config)?;
//! let tick = sim.next_tick().expect("runs forever without duration_secs");
//! let sample = &tick.samples[0];
//! assert_eq!(sample.topic(), "pdm/pump-1/telemetry");
//! assert_eq!(sample.values.len(), MachineKind::Pump.sensors().len());
//! assert_eq!(sample.fault, None); // the fault starts after an hour
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod machine;
mod run;

use std::collections::HashSet;

use pdm_core::{ConfigError, ConfigResult, MachineKey, SensorKey, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

use crate::codec;
use crate::error::IngestError;
use machine::MachineSim;

#[cfg(feature = "mqtt")]
pub use run::{publish_to_mqtt, PublishSummary};
pub use run::{register_machines, SimulatorSource};

/// Kinds of machine the simulator knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineKind {
    /// Centrifugal pump: temperature, vibration, current, pressure, flow.
    Pump,
    /// Electric motor: temperature, vibration, current, speed.
    Motor,
    /// Screw compressor cycling between load and unload: temperature, vibration, current,
    /// pressure, discharge temperature.
    Compressor,
}

/// One channel of a machine kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SensorSpec {
    /// Sensor key.
    pub key: &'static str,
    /// Unit of measurement.
    pub unit: &'static str,
    /// Lowest plausible value (registered as the sensor's range).
    pub min: f64,
    /// Highest plausible value.
    pub max: f64,
    /// Where a healthy machine's values stay, load cycle and noise included.
    pub healthy: (f64, f64),
}

const fn spec(
    key: &'static str,
    unit: &'static str,
    min: f64,
    max: f64,
    healthy: (f64, f64),
) -> SensorSpec {
    SensorSpec {
        key,
        unit,
        min,
        max,
        healthy,
    }
}

const PUMP: [SensorSpec; 5] = [
    spec("temperature", "degC", -20.0, 150.0, (35.0, 75.0)),
    spec("vibration_rms", "mm/s", 0.0, 50.0, (0.5, 4.0)),
    spec("current", "A", 0.0, 100.0, (8.0, 22.0)),
    spec("pressure", "bar", 0.0, 16.0, (3.5, 6.5)),
    spec("flow", "m3/h", 0.0, 120.0, (25.0, 55.0)),
];

const MOTOR: [SensorSpec; 4] = [
    spec("temperature", "degC", -20.0, 150.0, (30.0, 80.0)),
    spec("vibration_rms", "mm/s", 0.0, 50.0, (0.4, 3.0)),
    spec("current", "A", 0.0, 150.0, (12.0, 48.0)),
    spec("speed", "rpm", 0.0, 3600.0, (1450.0, 1500.0)),
];

const COMPRESSOR: [SensorSpec; 5] = [
    spec("temperature", "degC", -20.0, 150.0, (40.0, 80.0)),
    spec("vibration_rms", "mm/s", 0.0, 50.0, (0.8, 4.5)),
    spec("current", "A", 0.0, 150.0, (12.0, 60.0)),
    spec("pressure", "bar", 0.0, 16.0, (6.0, 8.0)),
    spec("discharge_temperature", "degC", -20.0, 200.0, (60.0, 100.0)),
];

impl MachineKind {
    /// Every kind, in the order fleets rotate through them.
    pub const ALL: [MachineKind; 3] = [
        MachineKind::Pump,
        MachineKind::Motor,
        MachineKind::Compressor,
    ];

    /// Lowercase name (`pump`, `motor`, `compressor`), as registered.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineKind::Pump => "pump",
            MachineKind::Motor => "motor",
            MachineKind::Compressor => "compressor",
        }
    }

    /// The time constant of the machine's body temperature, in seconds: the first-order lag
    /// through which an overheating (or any change of heat) reaches the `temperature` sensor.
    pub fn thermal_time_constant_s(self) -> f64 {
        match self {
            MachineKind::Pump | MachineKind::Compressor => 1_200.0,
            MachineKind::Motor => 1_800.0,
        }
    }

    /// The channels of this kind, in the order samples list them.
    pub fn sensors(self) -> &'static [SensorSpec] {
        match self {
            MachineKind::Pump => &PUMP,
            MachineKind::Motor => &MOTOR,
            MachineKind::Compressor => &COMPRESSOR,
        }
    }
}

/// Faults the simulator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Bearing wear: vibration rises exponentially over the window (to about six times its
    /// healthy level), temperature follows by up to 15 °C; current rises a little.
    BearingWear,
    /// Cooling failure: temperature climbs about 30 °C above normal (with the thermal lag).
    Overheating,
    /// One sensor (`temperature` by default) repeats the value it had when the fault began.
    StuckSensor,
    /// One sensor (`vibration_rms` by default) shows random upward spikes in about 4% of
    /// samples.
    Spikes,
    /// No values at all (or none of `sensor`, when given) for the window.
    Dropout,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 5] = [
        FaultKind::BearingWear,
        FaultKind::Overheating,
        FaultKind::StuckSensor,
        FaultKind::Spikes,
        FaultKind::Dropout,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::BearingWear => "bearing_wear",
            FaultKind::Overheating => "overheating",
            FaultKind::StuckSensor => "stuck_sensor",
            FaultKind::Spikes => "spikes",
            FaultKind::Dropout => "dropout",
        }
    }

    /// The sensor a fault of this kind affects when the configuration names none.
    pub fn default_sensor(self) -> Option<&'static str> {
        match self {
            FaultKind::BearingWear | FaultKind::Spikes => Some("vibration_rms"),
            FaultKind::Overheating | FaultKind::StuckSensor => Some("temperature"),
            FaultKind::Dropout => None,
        }
    }
}

/// How far an overheating fault drives the temperature above normal, in °C, once the thermal
/// lag has run out (the compressor's discharge temperature rises 1.2 times as much).
pub const OVERHEAT_EXCESS_C: f64 = 30.0;

/// Bearing wear at `progress` (0 to 1) through its window, 0 (none) to 1 (full severity): an
/// exponential growth, barely visible at first, then fast.
pub fn bearing_wear(progress: f64) -> f64 {
    let p = progress.clamp(0.0, 1.0);
    ((4.0 * p).exp() - 1.0) / (4.0f64.exp() - 1.0)
}

/// The factor on a machine's healthy vibration at bearing wear `wear` (0 to 1): 1 to 6.
pub fn bearing_vibration_factor(wear: f64) -> f64 {
    1.0 + 5.0 * wear.clamp(0.0, 1.0)
}

/// A fault injected into one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// What goes wrong.
    pub kind: FaultKind,
    /// Seconds of simulated time after the start when the fault begins.
    pub start_after_secs: u64,
    /// How long it lasts, in simulated seconds; for ever when absent (bearing wear then
    /// reaches its full severity after a week).
    #[serde(default)]
    pub duration_secs: Option<u64>,
    /// The sensor affected, for stuck sensor, spikes and dropout; the kind's default when
    /// absent.
    #[serde(default)]
    pub sensor: Option<SensorKey>,
}

impl FaultConfig {
    /// A fault of `kind` beginning `start_after_secs` after the start, on its default sensor.
    pub fn new(kind: FaultKind, start_after_secs: u64, duration_secs: Option<u64>) -> Self {
        Self {
            kind,
            start_after_secs,
            duration_secs,
            sensor: None,
        }
    }
}

/// One simulated machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMachineConfig {
    /// Its key.
    pub key: MachineKey,
    /// Its kind.
    pub kind: MachineKind,
    /// A fault to inject.
    #[serde(default)]
    pub fault: Option<FaultConfig>,
}

/// Settings of the simulator (`[simulator]` in a configuration file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of all randomness: the same seed gives the same data.
    pub seed: u64,
    /// Time between two samples of a machine, in simulated milliseconds.
    pub interval_ms: u64,
    /// Simulated time of the first sample: epoch milliseconds or an RFC 3339 string; the
    /// wall-clock time when absent.
    #[serde(deserialize_with = "de_start")]
    pub start: Option<Timestamp>,
    /// Simulated seconds per real second when running in real time (source, publisher).
    pub speed: f64,
    /// Never run ahead of the wall clock: with `start` in the past and `speed` above 1, the
    /// simulator replays the past quickly, then continues at real time. Readings from the
    /// future would be rejected by a server's time window.
    pub clamp_to_now: bool,
    /// Stop after this many simulated seconds; run for ever when absent.
    pub duration_secs: Option<u64>,
    /// Register the machines (with their kind) and sensors (with unit and plausible range)
    /// in the catalog before the in-process source starts.
    pub register: bool,
    /// The machines.
    pub machines: Vec<SimMachineConfig>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            interval_ms: 1_000,
            start: None,
            speed: 1.0,
            clamp_to_now: true,
            duration_secs: None,
            register: true,
            machines: fleet_machines(3),
        }
    }
}

fn de_start<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Start {
        Millis(i64),
        Text(String),
    }
    match Option::<Start>::deserialize(d)? {
        None => Ok(None),
        Some(Start::Millis(ms)) => Ok(Some(Timestamp::from_millis(ms))),
        Some(Start::Text(s)) => codec::parse_rfc3339(&s).map(Some).map_err(|e| {
            serde::de::Error::custom(format!("start {s:?} is not an RFC 3339 timestamp: {e}"))
        }),
    }
}

fn fleet_machines(n: usize) -> Vec<SimMachineConfig> {
    (0..n)
        .filter_map(|i| {
            let kind = MachineKind::ALL[i % MachineKind::ALL.len()];
            let number = i / MachineKind::ALL.len() + 1;
            // Kind names and numbers always form valid keys.
            let key = MachineKey::new(&format!("{}-{number}", kind.as_str())).ok()?;
            Some(SimMachineConfig {
                key,
                kind,
                fault: None,
            })
        })
        .collect()
}

impl SimConfig {
    /// `n` healthy machines, kinds rotating pump, motor, compressor (`pump-1`, `motor-1`,
    /// `compressor-1`, `pump-2`, ...).
    pub fn fleet(n: usize, seed: u64) -> Self {
        Self {
            seed,
            machines: fleet_machines(n),
            ..Self::default()
        }
    }

    /// Injects faults into some machines of the fleet, for demonstrations: of every four
    /// machines, the second develops bearing wear over six hours from 15 minutes on, the
    /// third overheats for an hour from 30 minutes on, the fourth shows spikes for two hours
    /// from 10 minutes on; the first stays healthy.
    pub fn with_demo_faults(mut self) -> Self {
        for (i, m) in self.machines.iter_mut().enumerate() {
            m.fault = match i % 4 {
                1 => Some(FaultConfig::new(
                    FaultKind::BearingWear,
                    900,
                    Some(6 * 3600),
                )),
                2 => Some(FaultConfig::new(FaultKind::Overheating, 1800, Some(3600))),
                3 => Some(FaultConfig::new(FaultKind::Spikes, 600, Some(2 * 3600))),
                _ => None,
            };
        }
        self
    }

    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> ConfigResult {
        if self.interval_ms == 0 {
            return Err(ConfigError::new(
                "simulator.interval_ms",
                "must be at least 1",
            ));
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(ConfigError::new(
                "simulator.speed",
                "must be a positive number of simulated seconds per real second",
            ));
        }
        if self.machines.is_empty() {
            return Err(ConfigError::new(
                "simulator.machines",
                "must name at least one machine",
            ));
        }
        let mut seen = HashSet::new();
        for (i, m) in self.machines.iter().enumerate() {
            if !seen.insert(&m.key) {
                return Err(ConfigError::new(
                    format!("simulator.machines[{i}].key"),
                    format!("'{}' appears more than once", m.key),
                ));
            }
            let Some(f) = &m.fault else { continue };
            if f.duration_secs == Some(0) {
                return Err(ConfigError::new(
                    format!("simulator.machines[{i}].fault.duration_secs"),
                    "must be at least 1, or absent for a fault that lasts",
                ));
            }
            if let Some(s) = &f.sensor {
                if !m.kind.sensors().iter().any(|spec| spec.key == s.as_str()) {
                    let known: Vec<&str> = m.kind.sensors().iter().map(|s| s.key).collect();
                    return Err(ConfigError::new(
                        format!("simulator.machines[{i}].fault.sensor"),
                        format!(
                            "a {} has no sensor '{s}' (it has {})",
                            m.kind.as_str(),
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One sample of one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The machine.
    pub machine: MachineKey,
    /// When it was taken (simulated time).
    pub ts: Timestamp,
    /// Values by sensor; empty during a dropout of the whole machine.
    pub values: Vec<(SensorKey, f64)>,
    /// Ground truth: the fault whose window holds this sample.
    pub fault: Option<FaultKind>,
}

impl Sample {
    /// The sample in the payload format (one object, `ts` in epoch milliseconds).
    pub fn payload(&self) -> Vec<u8> {
        codec::encode(self.ts, &self.values)
    }

    /// The MQTT topic it belongs on.
    pub fn topic(&self) -> String {
        codec::topic(&self.machine)
    }

    /// The value of `sensor`, if the sample has one.
    pub fn value(&self, sensor: &str) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| k.as_str() == sensor)
            .map(|(_, v)| *v)
    }
}

/// The samples of all machines at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// The instant (simulated time).
    pub ts: Timestamp,
    /// One sample per machine, in configuration order.
    pub samples: Vec<Sample>,
}

/// Where and when a fault is injected: the ground truth for evaluating detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultWindow {
    /// The machine.
    pub machine: MachineKey,
    /// The fault.
    pub kind: FaultKind,
    /// The sensor it affects, when it affects one.
    pub sensor: Option<SensorKey>,
    /// First instant inside the window.
    pub start: Timestamp,
    /// First instant after the window; `None` when the fault lasts.
    pub end: Option<Timestamp>,
}

impl FaultWindow {
    /// True when `ts` is inside the window.
    pub fn contains(&self, ts: Timestamp) -> bool {
        ts >= self.start && self.end.is_none_or(|end| ts < end)
    }
}

/// The running simulation: call [`Simulator::next_tick`] (or iterate) for samples.
#[derive(Debug)]
pub struct Simulator {
    machines: Vec<MachineSim>,
    start: i64,
    next: i64,
    interval: i64,
    end: Option<i64>,
    speed: f64,
    clamp_to_now: bool,
    register: bool,
}

impl Simulator {
    /// Checks `config` and sets the simulation up at its start time.
    pub fn new(config: &SimConfig) -> Result<Self, IngestError> {
        config.check()?;
        let start = config.start.unwrap_or_else(Timestamp::now).as_millis();
        let interval = i64::try_from(config.interval_ms).unwrap_or(i64::MAX);
        let end = config.duration_secs.map(|d| {
            start.saturating_add(i64::try_from(d).unwrap_or(i64::MAX).saturating_mul(1000))
        });
        let machines = config
            .machines
            .iter()
            .map(|m| MachineSim::new(m, config.seed, start))
            .collect();
        Ok(Self {
            machines,
            start,
            next: start,
            interval,
            end,
            speed: config.speed,
            clamp_to_now: config.clamp_to_now,
            register: config.register,
        })
    }

    /// Simulated time of the first sample.
    pub fn start(&self) -> Timestamp {
        Timestamp::from_millis(self.start)
    }

    /// Simulated time of the next tick, `None` when the configured duration is over.
    pub fn next_ts(&self) -> Option<Timestamp> {
        match self.end {
            Some(end) if self.next >= end => None,
            _ => Some(Timestamp::from_millis(self.next)),
        }
    }

    /// The samples of the next instant.
    pub fn next_tick(&mut self) -> Option<Tick> {
        let ts = self.next_ts()?;
        let dt = self.interval as f64 / 1000.0;
        let samples = self
            .machines
            .iter_mut()
            .map(|m| m.step(ts.as_millis(), dt))
            .collect();
        self.next = self.next.saturating_add(self.interval);
        Some(Tick { ts, samples })
    }

    /// The injected faults with their windows.
    pub fn fault_windows(&self) -> Vec<FaultWindow> {
        self.machines
            .iter()
            .filter_map(MachineSim::window)
            .collect()
    }

    /// The simulated machines and their kinds.
    pub fn machines(&self) -> Vec<(MachineKey, MachineKind)> {
        self.machines
            .iter()
            .map(|m| (m.key().clone(), m.kind()))
            .collect()
    }

    /// Simulated seconds per real second.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Iterator for Simulator {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        self.next_tick()
    }
}

#[cfg(test)]
mod tests;
