//! The physics of one simulated machine.

use std::f64::consts::TAU;

use pdm_core::{MachineKey, SensorKey, Timestamp};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{
    bearing_vibration_factor, bearing_wear, FaultKind, FaultWindow, MachineKind, Sample,
    SimMachineConfig, OVERHEAT_EXCESS_C,
};

/// How long bearing wear takes to reach full severity when its window is open-ended.
const DEFAULT_WEAR_SECS: f64 = 7.0 * 86_400.0;
/// Share of samples with a spike during a spikes fault.
pub(super) const SPIKE_PROBABILITY: f64 = 0.04;

/// A fault resolved against the simulation's start.
#[derive(Debug, Clone)]
struct Fault {
    kind: FaultKind,
    start: i64,
    end: Option<i64>,
    /// Index of the affected channel in the kind's sensor list.
    sensor: Option<usize>,
    /// The stuck sensor's frozen value, captured at the first sample of the window.
    frozen: Option<f64>,
}

/// One machine's state between samples.
#[derive(Debug)]
pub(super) struct MachineSim {
    key: MachineKey,
    kind: MachineKind,
    sensors: Vec<SensorKey>,
    rng: StdRng,
    fault: Option<Fault>,
    /// Machine-to-machine differences, drawn once.
    temp_offset: f64,
    vib_scale: f64,
    /// Slow random drift of the load (Ornstein-Uhlenbeck).
    drift: f64,
    /// Lagged temperatures (body, and discharge for compressors).
    temp: Option<f64>,
    temp2: Option<f64>,
    /// Compressor: receiver pressure, load state and duty cycle.
    pressure: f64,
    loaded: bool,
    duty: f64,
}

/// FNV-1a: a stable hash, so a machine's random stream depends on its key, not its position.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// First-order lag: the share of the gap closed in `dt` seconds with time constant `tau`.
fn lag(dt: f64, tau: f64) -> f64 {
    1.0 - (-dt / tau).exp()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

impl MachineSim {
    pub(super) fn new(config: &SimMachineConfig, seed: u64, start: i64) -> Self {
        let kind = config.kind;
        let specs = kind.sensors();
        let sensors = specs
            .iter()
            .filter_map(|s| SensorKey::new(s.key).ok())
            .collect();
        let mut rng = StdRng::seed_from_u64(seed ^ fnv1a(config.key.as_str()));
        let fault = config.fault.as_ref().map(|f| {
            let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000);
            let begin = start.saturating_add(secs(f.start_after_secs));
            let sensor_name = f
                .sensor
                .as_ref()
                .map(SensorKey::as_str)
                .or_else(|| f.kind.default_sensor());
            Fault {
                kind: f.kind,
                start: begin,
                end: f.duration_secs.map(|d| begin.saturating_add(secs(d))),
                sensor: sensor_name.and_then(|n| specs.iter().position(|s| s.key == n)),
                frozen: None,
            }
        });
        let temp_offset = 1.5 * normal(&mut rng);
        let vib_scale = (1.0 + 0.08 * normal(&mut rng)).clamp(0.8, 1.2);
        Self {
            key: config.key.clone(),
            kind,
            sensors,
            rng,
            fault,
            temp_offset,
            vib_scale,
            drift: 0.0,
            temp: None,
            temp2: None,
            pressure: 7.0,
            loaded: true,
            duty: 0.6,
        }
    }

    pub(super) fn key(&self) -> &MachineKey {
        &self.key
    }

    pub(super) fn kind(&self) -> MachineKind {
        self.kind
    }

    pub(super) fn window(&self) -> Option<FaultWindow> {
        let f = self.fault.as_ref()?;
        Some(FaultWindow {
            machine: self.key.clone(),
            kind: f.kind,
            sensor: f.sensor.and_then(|i| self.sensors.get(i).cloned()),
            start: Timestamp::from_millis(f.start),
            end: f.end.map(Timestamp::from_millis),
        })
    }

    /// The machine's load at `ts`, from 0.2 to 1: full on day shifts (06:00 to 22:00 UTC),
    /// reduced at night, a slow sinusoid peaking mid-afternoon, and random drift.
    fn load(&mut self, ts: i64, dt: f64) -> f64 {
        let hour = (ts.rem_euclid(86_400_000)) as f64 / 3_600_000.0;
        let shift = if (6.0..22.0).contains(&hour) {
            1.0
        } else {
            0.55
        };
        let daily = 0.08 * (TAU * (hour - 9.0) / 24.0).sin();
        // Exact discretisation of an Ornstein-Uhlenbeck process (15 min time constant,
        // stationary deviation 0.05), so any sample interval gives the same statistics.
        let a = (-dt / 900.0).exp();
        self.drift = a * self.drift + 0.05 * (1.0 - a * a).sqrt() * normal(&mut self.rng);
        (0.78 * shift + daily + self.drift).clamp(0.2, 1.0)
    }

    /// The sample at `ts`, `dt` seconds after the previous one.
    pub(super) fn step(&mut self, ts: i64, dt: f64) -> Sample {
        let load = self.load(ts, dt);
        let active = self.active_fault(ts);
        let effects = Effects::of(active, ts);
        let noise = Noise::draw(&mut self.rng);
        let mut values = match self.kind {
            MachineKind::Pump => self.pump(load, dt, &effects, &noise),
            MachineKind::Motor => self.motor(load, dt, &effects, &noise),
            MachineKind::Compressor => self.compressor(load, dt, &effects, &noise),
        };
        let dropped = self.apply_sensor_fault(active, &mut values, &noise);
        self.sample(ts, values, dropped, active)
    }

    /// The fault whose window holds `ts`.
    fn active_fault(&self, ts: i64) -> Option<ActiveFault> {
        self.fault
            .as_ref()
            .filter(|f| ts >= f.start && f.end.is_none_or(|end| ts < end))
            .map(|f| ActiveFault {
                kind: f.kind,
                start: f.start,
                end: f.end,
            })
    }

    fn pump(&mut self, load: f64, dt: f64, e: &Effects, noise: &Noise) -> Vec<f64> {
        let n = &noise.normal;
        let target = 42.0 + 20.0 * load + self.temp_offset + e.heat;
        let tau = self.kind.thermal_time_constant_s();
        let temp = lagged(&mut self.temp, target, lag(dt, tau));
        let vib = self.vib_scale * e.vib;
        vec![
            temp + 0.15 * n[0],
            (1.0 + 1.6 * load) * vib + 0.06 * (1.0 + 2.0 * e.wear) * n[1],
            8.5 + 11.0 * load + 1.5 * e.wear + 0.2 * n[2],
            3.8 + 2.0 * load + 0.04 * n[3],
            28.0 + 22.0 * load + 0.5 * n[4],
        ]
    }

    fn motor(&mut self, load: f64, dt: f64, e: &Effects, noise: &Noise) -> Vec<f64> {
        let n = &noise.normal;
        let target = 38.0 + 32.0 * load + self.temp_offset + e.heat;
        let tau = self.kind.thermal_time_constant_s();
        let temp = lagged(&mut self.temp, target, lag(dt, tau));
        let vib = self.vib_scale * e.vib;
        vec![
            temp + 0.15 * n[0],
            (0.8 + 1.2 * load) * vib + 0.05 * (1.0 + 2.0 * e.wear) * n[1],
            12.0 + 30.0 * load + 2.0 * e.wear + 0.4 * n[2],
            1495.0 - 25.0 * load + 1.0 * n[3],
        ]
    }

    fn compressor(&mut self, load: f64, dt: f64, e: &Effects, noise: &Noise) -> Vec<f64> {
        let n = &noise.normal;
        self.cycle(load, dt);
        let target = 50.0 + 18.0 * self.duty + self.temp_offset + e.heat;
        let tau = self.kind.thermal_time_constant_s();
        let temp = lagged(&mut self.temp, target, lag(dt, tau));
        let discharge_target = if self.loaded { 82.0 + 8.0 * load } else { 68.0 };
        let discharge = lagged(
            &mut self.temp2,
            discharge_target + 1.2 * e.heat,
            lag(dt, 120.0),
        );
        let running = if self.loaded { 2.2 + 0.8 * load } else { 1.4 };
        let current = if self.loaded {
            42.0 + 12.0 * load
        } else {
            16.0
        };
        let vib = self.vib_scale * e.vib;
        vec![
            temp + 0.15 * n[0],
            running * vib + 0.08 * (1.0 + 2.0 * e.wear) * n[1],
            current + 2.0 * e.wear + 0.4 * n[2],
            self.pressure + 0.02 * n[3],
            discharge + 0.3 * n[4],
        ]
    }

    /// The compressor's load/unload cycle: the receiver fills while loaded (slower under high
    /// demand) and drains while unloaded, between 6.5 and 7.5 bar; the duty cycle follows.
    fn cycle(&mut self, load: f64, dt: f64) {
        let rate = if self.loaded {
            0.9 - 0.5 * load
        } else {
            -(0.2 + 0.6 * load)
        };
        self.pressure = (self.pressure + rate * dt / 60.0).clamp(6.2, 7.8);
        if self.loaded && self.pressure >= 7.5 {
            self.loaded = false;
        } else if !self.loaded && self.pressure <= 6.5 {
            self.loaded = true;
        }
        let on = if self.loaded { 1.0 } else { 0.0 };
        self.duty += (on - self.duty) * lag(dt, 600.0);
    }

    /// Applies a fault that affects one channel (stuck, spikes) to `values`; returns what a
    /// dropout removes: `Some(None)` every value, `Some(Some(i))` channel `i`.
    fn apply_sensor_fault(
        &mut self,
        active: Option<ActiveFault>,
        values: &mut [f64],
        noise: &Noise,
    ) -> Option<Option<usize>> {
        let (Some(active), Some(fault)) = (active, self.fault.as_mut()) else {
            return None;
        };
        let specs = self.kind.sensors();
        match (active.kind, fault.sensor) {
            (FaultKind::StuckSensor, Some(i)) => {
                if let Some(v) = values.get_mut(i) {
                    *v = *fault.frozen.get_or_insert(*v);
                }
            }
            (FaultKind::Spikes, Some(i)) if noise.spike_roll < SPIKE_PROBABILITY => {
                if let (Some(v), Some(spec)) = (values.get_mut(i), specs.get(i)) {
                    let span = spec.healthy.1 - spec.healthy.0;
                    *v += (1.5 + 1.5 * noise.spike_size) * span;
                }
            }
            (FaultKind::Dropout, sensor) => return Some(sensor),
            _ => {}
        }
        None
    }

    /// The sample of `values` (rounded to three decimals), without the dropped ones.
    fn sample(
        &self,
        ts: i64,
        values: Vec<f64>,
        dropped: Option<Option<usize>>,
        active: Option<ActiveFault>,
    ) -> Sample {
        let values = self
            .sensors
            .iter()
            .zip(values)
            .enumerate()
            .filter(|(i, _)| match dropped {
                None => true,
                Some(None) => false,
                Some(Some(d)) => *i != d,
            })
            .map(|(_, (k, v))| (k.clone(), round3(v)))
            .collect();
        Sample {
            machine: self.key.clone(),
            ts: Timestamp::from_millis(ts),
            values,
            fault: active.map(|f| f.kind),
        }
    }
}

/// The fault in effect at a sample.
#[derive(Debug, Clone, Copy)]
struct ActiveFault {
    kind: FaultKind,
    start: i64,
    end: Option<i64>,
}

/// What the fault in effect does to the physics of every kind.
#[derive(Debug, Clone, Copy)]
struct Effects {
    /// Bearing wear, 0 (none) to 1 (full severity).
    wear: f64,
    /// Extra heat, in °C before the thermal lag.
    heat: f64,
    /// Factor on the healthy vibration (before the machine's own scale).
    vib: f64,
}

impl Effects {
    fn of(active: Option<ActiveFault>, ts: i64) -> Self {
        let progress = |start: i64, end: Option<i64>| {
            let span = end.map_or(DEFAULT_WEAR_SECS * 1000.0, |e| (e - start) as f64);
            ((ts - start) as f64 / span.max(1.0)).clamp(0.0, 1.0)
        };
        // Bearing wear grows exponentially: barely visible at first, then fast.
        let wear = match active {
            Some(ActiveFault {
                kind: FaultKind::BearingWear,
                start,
                end,
            }) => bearing_wear(progress(start, end)),
            _ => 0.0,
        };
        let overheat = match active {
            Some(ActiveFault {
                kind: FaultKind::Overheating,
                ..
            }) => OVERHEAT_EXCESS_C,
            _ => 0.0,
        };
        Self {
            wear,
            heat: 15.0 * wear + overheat,
            vib: bearing_vibration_factor(wear),
        }
    }
}

/// The random draws of one step. They happen on every step, fault or not, so a fault changes
/// only the channels it affects and the rest of the stream stays identical.
struct Noise {
    /// One standard normal draw per channel (compressors and pumps use five, motors four).
    normal: [f64; 5],
    /// Decides whether a spikes fault shows a spike on this sample.
    spike_roll: f64,
    /// The size of that spike.
    spike_size: f64,
}

impl Noise {
    fn draw(rng: &mut StdRng) -> Self {
        let mut normal = [0.0; 5];
        for n in &mut normal {
            *n = self::normal(rng);
        }
        Self {
            normal,
            spike_roll: rng.random(),
            spike_size: rng.random(),
        }
    }
}

/// Moves a lagged quantity towards `target`; starts at the target (a warm machine).
fn lagged(state: &mut Option<f64>, target: f64, share: f64) -> f64 {
    let v = match *state {
        Some(v) => v + (target - v) * share,
        None => target,
    };
    *state = Some(v);
    v
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    // 1 - u is in (0, 1]: its logarithm is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}
