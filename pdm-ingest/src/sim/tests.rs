use std::sync::Arc;

use pdm_core::{
    Catalog, Engine, EngineConfig, MachineKey, MachineStore, Metrics, SensorStore, TelemetryStore,
    Timestamp,
};

use super::*;
use crate::test_store::TestStore;
use crate::{CodecConfig, Intake};

/// 2026-01-01T00:00:00Z, a Thursday: ticks cover nights and days.
const START: i64 = 1_767_225_600_000;

fn machine(key: &str, kind: MachineKind, fault: Option<FaultConfig>) -> SimMachineConfig {
    SimMachineConfig {
        key: MachineKey::new(key).expect("valid key"),
        kind,
        fault,
    }
}

fn config(machines: Vec<SimMachineConfig>, interval_ms: u64, hours: u64) -> SimConfig {
    SimConfig {
        seed: 42,
        interval_ms,
        start: Some(Timestamp::from_millis(START)),
        clamp_to_now: false,
        duration_secs: Some(hours * 3600),
        machines,
        ..SimConfig::default()
    }
}

fn run(config: &SimConfig) -> Vec<Tick> {
    Simulator::new(config).expect("valid config").collect()
}

/// Values of `sensor` of machine `m` with their timestamps.
fn series(ticks: &[Tick], m: usize, sensor: &str) -> Vec<(i64, f64)> {
    ticks
        .iter()
        .filter_map(|t| {
            let s = &t.samples[m];
            s.value(sensor).map(|v| (s.ts.as_millis(), v))
        })
        .collect()
}

fn mean_in(series: &[(i64, f64)], from: i64, to: i64) -> f64 {
    let inside: Vec<f64> = series
        .iter()
        .filter(|(t, _)| (from..to).contains(t))
        .map(|(_, v)| *v)
        .collect();
    assert!(!inside.is_empty(), "no values in [{from}, {to})");
    inside.iter().sum::<f64>() / inside.len() as f64
}

const HOUR: i64 = 3_600_000;

#[test]
fn same_seed_same_data_other_seed_other_data() {
    let c = config(fleet_machines(3), 1_000, 1);
    let a = run(&c);
    assert_eq!(a.len(), 3600);
    assert_eq!(a, run(&c));
    let other = SimConfig {
        seed: 43,
        ..c.clone()
    };
    assert_ne!(a, run(&other));
    // A machine's data does not depend on the other machines or their order.
    let mut reordered = c.clone();
    reordered.machines.reverse();
    reordered.machines.pop();
    let b = run(&reordered);
    assert_eq!(a[100].samples[2], b[100].samples[0]);
}

#[test]
fn healthy_machines_stay_in_their_ranges_and_follow_the_daily_cycle() {
    let c = config(fleet_machines(6), 60_000, 48);
    let ticks = run(&c);
    for (m, mc) in c.machines.iter().enumerate() {
        for spec in mc.kind.sensors() {
            let s = series(&ticks, m, spec.key);
            assert_eq!(s.len(), ticks.len(), "{} {}", mc.key, spec.key);
            for (t, v) in &s {
                assert!(
                    (spec.healthy.0..=spec.healthy.1).contains(v),
                    "{} {} = {v} at {t} outside {:?}",
                    mc.key,
                    spec.key,
                    spec.healthy
                );
                assert!((spec.min..=spec.max).contains(v));
            }
        }
        assert!(ticks.iter().all(|t| t.samples[m].fault.is_none()));
    }
    // Day shift (10:00 to 20:00) draws more current than the night (00:00 to 05:00).
    for m in 0..2 {
        let current = series(&ticks, m, "current");
        let day = mean_in(&current, START + 10 * HOUR, START + 20 * HOUR);
        let night = mean_in(&current, START, START + 5 * HOUR);
        assert!(day > night * 1.2, "machine {m}: day {day} night {night}");
    }
}

#[test]
fn compressors_cycle_between_load_and_unload() {
    let c = config(
        vec![machine("c-1", MachineKind::Compressor, None)],
        1_000,
        2,
    );
    let ticks = run(&c);
    let current = series(&ticks, 0, "current");
    let loaded = current.iter().filter(|(_, v)| *v > 30.0).count();
    let unloaded = current.iter().filter(|(_, v)| *v < 20.0).count();
    assert!(
        loaded > 500 && unloaded > 500,
        "{loaded} loaded, {unloaded} unloaded"
    );
    let switches = current
        .windows(2)
        .filter(|w| (w[0].1 > 30.0) != (w[1].1 > 30.0))
        .count();
    assert!(switches >= 10, "{switches} load changes in 2 hours");
}

/// A machine without and with `fault`: same key, so same random stream; the samples differ
/// only where the fault acts. Sample 0 is the healthy twin, sample 1 the faulty one.
fn pair(kind: MachineKind, fault: FaultConfig, interval_ms: u64, hours: u64) -> Vec<Tick> {
    let healthy = run(&config(
        vec![machine("twin", kind, None)],
        interval_ms,
        hours,
    ));
    let faulty = run(&config(
        vec![machine("twin", kind, Some(fault))],
        interval_ms,
        hours,
    ));
    healthy
        .into_iter()
        .zip(faulty)
        .map(|(h, f)| Tick {
            ts: f.ts,
            samples: vec![h.samples[0].clone(), f.samples[0].clone()],
        })
        .collect()
}

#[test]
fn bearing_wear_raises_vibration_then_temperature() {
    let fault = FaultConfig::new(FaultKind::BearingWear, 3600, Some(10 * 3600));
    let ticks = pair(MachineKind::Pump, fault, 60_000, 12);
    let (start, end) = (START + HOUR, START + 11 * HOUR);
    let vib_h = series(&ticks, 0, "vibration_rms");
    let vib_f = series(&ticks, 1, "vibration_rms");
    let temp_h = series(&ticks, 0, "temperature");
    let temp_f = series(&ticks, 1, "temperature");
    // Before the window: identical.
    assert_eq!(
        vib_h.iter().take(60).collect::<Vec<_>>(),
        vib_f.iter().take(60).collect::<Vec<_>>()
    );
    // Early on barely visible, at the end about six times the healthy level.
    let early = mean_in(&vib_f, start, start + HOUR) / mean_in(&vib_h, start, start + HOUR);
    let late = mean_in(&vib_f, end - HOUR, end) / mean_in(&vib_h, end - HOUR, end);
    assert!(early < 1.3, "early ratio {early}");
    assert!(late > 4.0, "late ratio {late}");
    let warmer = mean_in(&temp_f, end - HOUR, end) - mean_in(&temp_h, end - HOUR, end);
    assert!(warmer > 7.0, "temperature follows: +{warmer}");
    // Ground truth marks exactly the window.
    for t in &ticks {
        let inside = (start..end).contains(&t.ts.as_millis());
        assert_eq!(t.samples[1].fault.is_some(), inside, "{}", t.ts.as_millis());
    }
}

#[test]
fn overheating_raises_temperature() {
    let fault = FaultConfig::new(FaultKind::Overheating, 3600, Some(2 * 3600));
    let ticks = pair(MachineKind::Motor, fault, 60_000, 5);
    let h = series(&ticks, 0, "temperature");
    let f = series(&ticks, 1, "temperature");
    let during = mean_in(&f, START + 2 * HOUR, START + 3 * HOUR)
        - mean_in(&h, START + 2 * HOUR, START + 3 * HOUR);
    assert!(during > 15.0, "+{during} °C");
    // After the window it cools down again.
    let after = mean_in(&f, START + 4 * HOUR + HOUR / 2, START + 5 * HOUR)
        - mean_in(&h, START + 4 * HOUR + HOUR / 2, START + 5 * HOUR);
    assert!(after < during / 2.0, "cools to +{after} °C");
}

#[test]
fn a_stuck_sensor_repeats_one_value() {
    let fault = FaultConfig::new(FaultKind::StuckSensor, 600, Some(1800));
    let ticks = pair(MachineKind::Compressor, fault, 10_000, 1);
    let f = series(&ticks, 1, "temperature");
    let h = series(&ticks, 0, "temperature");
    let window = |s: &[(i64, f64)]| -> Vec<f64> {
        s.iter()
            .filter(|(t, _)| (START + 600_000..START + 2_400_000).contains(t))
            .map(|(_, v)| *v)
            .collect()
    };
    let stuck = window(&f);
    assert_eq!(stuck.len(), 180);
    assert!(stuck.iter().all(|v| *v == stuck[0]));
    let live = window(&h);
    assert!(live.iter().any(|v| *v != live[0]));
    // Other channels are untouched.
    assert_eq!(series(&ticks, 0, "pressure"), series(&ticks, 1, "pressure"));
}

#[test]
fn spikes_show_on_their_sensor() {
    let fault = FaultConfig::new(FaultKind::Spikes, 0, Some(4 * 3600));
    let ticks = pair(MachineKind::Pump, fault, 10_000, 4);
    let healthy_max = MachineKind::Pump.sensors()[1].healthy.1;
    let f = series(&ticks, 1, "vibration_rms");
    let spikes = f.iter().filter(|(_, v)| *v > healthy_max).count();
    let expected = ticks.len() as f64 * super::machine::SPIKE_PROBABILITY;
    assert!(
        (spikes as f64) > expected * 0.6 && (spikes as f64) < expected * 1.4,
        "{spikes} spikes in {} samples",
        ticks.len()
    );
    let h = series(&ticks, 0, "vibration_rms");
    assert!(h.iter().all(|(_, v)| *v <= healthy_max));
    assert_eq!(series(&ticks, 0, "flow"), series(&ticks, 1, "flow"));
}

#[test]
fn dropout_yields_no_values() {
    let fault = FaultConfig::new(FaultKind::Dropout, 600, Some(600));
    let ticks = pair(MachineKind::Motor, fault.clone(), 1_000, 1);
    for t in &ticks {
        let inside = (START + 600_000..START + 1_200_000).contains(&t.ts.as_millis());
        assert_eq!(t.samples[1].values.is_empty(), inside);
        assert!(!t.samples[0].values.is_empty());
    }
    // One sensor only.
    let one = FaultConfig {
        sensor: Some(SensorKey::new("speed").expect("key")),
        ..fault
    };
    let ticks = pair(MachineKind::Motor, one, 1_000, 1);
    let inside = &ticks[700].samples[1];
    assert_eq!(inside.values.len(), 3);
    assert_eq!(inside.value("speed"), None);
    assert_eq!(inside.fault, Some(FaultKind::Dropout));
}

#[test]
fn fault_windows_are_the_ground_truth() {
    let c = config(
        vec![
            machine("a", MachineKind::Pump, None),
            machine(
                "b",
                MachineKind::Motor,
                Some(FaultConfig::new(FaultKind::BearingWear, 60, None)),
            ),
        ],
        1_000,
        1,
    );
    let sim = Simulator::new(&c).expect("valid");
    let windows = sim.fault_windows();
    assert_eq!(windows.len(), 1);
    let w = &windows[0];
    assert_eq!(w.machine.as_str(), "b");
    assert_eq!(
        w.sensor.as_ref().map(SensorKey::as_str),
        Some("vibration_rms")
    );
    assert_eq!(w.start.as_millis(), START + 60_000);
    assert_eq!(w.end, None);
    for tick in sim.take(120) {
        assert_eq!(tick.samples[1].fault.is_some(), w.contains(tick.ts));
    }
}

#[test]
fn payloads_decode_with_the_codec() {
    let c = config(fleet_machines(3), 1_000, 1);
    let mut sim = Simulator::new(&c).expect("valid");
    let tick = sim.next_tick().expect("a tick");
    for s in &tick.samples {
        let d = crate::codec::decode(&s.machine, &s.payload(), s.ts, &CodecConfig::default())
            .expect("decodes");
        assert!(d.problems.is_empty());
        assert_eq!(d.readings.len(), s.values.len());
        assert!(s.topic().ends_with("/telemetry"));
    }
}

#[test]
fn config_is_checked_and_read_from_files() {
    assert!(SimConfig::default().check().is_ok());
    let cases = [
        (
            SimConfig {
                interval_ms: 0,
                ..SimConfig::default()
            },
            "simulator.interval_ms",
        ),
        (
            SimConfig {
                speed: f64::NAN,
                ..SimConfig::default()
            },
            "simulator.speed",
        ),
        (
            SimConfig {
                machines: vec![],
                ..SimConfig::default()
            },
            "simulator.machines",
        ),
        (
            SimConfig {
                machines: vec![
                    machine("x", MachineKind::Pump, None),
                    machine("x", MachineKind::Motor, None),
                ],
                ..SimConfig::default()
            },
            "simulator.machines[1].key",
        ),
        (
            SimConfig {
                machines: vec![machine(
                    "x",
                    MachineKind::Motor,
                    Some(FaultConfig {
                        sensor: Some(SensorKey::new("flow").expect("key")),
                        ..FaultConfig::new(FaultKind::Spikes, 0, None)
                    }),
                )],
                ..SimConfig::default()
            },
            "simulator.machines[0].fault.sensor",
        ),
    ];
    for (c, setting) in cases {
        let e = c.check().expect_err(setting).to_string();
        assert!(e.starts_with(setting), "{e}");
    }
    let parsed: SimConfig = serde_json::from_str(
        r#"{"seed": 1, "start": "2026-01-01T00:00:00Z", "machines": [
            {"key": "p-1", "kind": "pump",
             "fault": {"kind": "stuck_sensor", "start_after_secs": 60, "sensor": "flow"}}]}"#,
    )
    .expect("parses");
    assert_eq!(parsed.start, Some(Timestamp::from_millis(START)));
    assert_eq!(
        parsed.machines[0].fault.as_ref().map(|f| f.kind),
        Some(FaultKind::StuckSensor)
    );
    assert!(parsed.check().is_ok());
    let millis: SimConfig = serde_json::from_str(r#"{"start": 5}"#).expect("parses");
    assert_eq!(millis.start, Some(Timestamp::from_millis(5)));
    assert!(serde_json::from_str::<SimConfig>(r#"{"start": "soon"}"#).is_err());
    assert!(serde_json::from_str::<SimConfig>(r#"{"sped": 2}"#).is_err());
}

#[test]
fn fleets_rotate_kinds_and_demo_faults_are_valid() {
    let f = SimConfig::fleet(5, 9).with_demo_faults();
    let keys: Vec<&str> = f.machines.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(
        keys,
        ["pump-1", "motor-1", "compressor-1", "pump-2", "motor-2"]
    );
    assert!(f.check().is_ok());
    assert_eq!(f.machines[0].fault, None);
    assert!(f.machines[1].fault.is_some());
}

// Real time, not a paused clock: the SQLite store works on its own threads, which a paused
// clock does not wait for (it would jump to the next timer and time out the store's calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_feeds_the_engine_through_the_intake() {
    let store = TestStore::new().await;
    let catalog = Arc::new(Catalog::load(store.clone(), false).await.expect("loads"));
    let metrics = Arc::new(Metrics::default());
    let telemetry: Arc<dyn TelemetryStore> = store.clone();
    let mut engine = Engine::start(
        telemetry,
        catalog.clone(),
        metrics.clone(),
        EngineConfig::default(),
    );
    let mut c = config(
        vec![
            machine("pump-1", MachineKind::Pump, None),
            machine(
                "motor-1",
                MachineKind::Motor,
                Some(FaultConfig::new(FaultKind::Dropout, 10, Some(10))),
            ),
        ],
        1_000,
        1,
    );
    c.duration_secs = Some(60);
    c.speed = 10.0;
    let intake = Arc::new(Intake::new(catalog.clone(), CodecConfig::default()));
    let source = SimulatorSource::new(Simulator::new(&c).expect("valid"), intake);
    let started = tokio::time::Instant::now();
    engine.add_source(Box::new(source));
    // 60 simulated seconds at 10x: about 6 seconds, longer on a busy machine.
    pdm_testkit::eventually(
        std::time::Duration::from_secs(60),
        "the simulation's 500 readings stored",
        || async { metrics.snapshot().readings_stored >= 500 },
    )
    .await;
    engine.shutdown().await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));

    assert_eq!(store.readings_of("pump-1").await.len(), 60 * 5);
    assert_eq!(store.readings_of("motor-1").await.len(), 50 * 4);
    assert!(store.all_dead_letters().await.is_empty());
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.messages_other, 110);
    assert_eq!(snapshot.readings_stored, 500);
    // Registered with kind, units and ranges.
    let pump = MachineKey::new("pump-1").expect("key");
    assert_eq!(
        store
            .get_machine(&pump)
            .await
            .expect("registered")
            .kind
            .as_deref(),
        Some("pump")
    );
    let sensors = store.list_sensors(&pump).await.expect("listed");
    assert_eq!(sensors.len(), 5);
    assert!(sensors.iter().all(|s| s.unit.is_some() && s.min.is_some()));
}
