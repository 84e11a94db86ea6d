//! The live path against a real SQLite store and pdm-detect's models: a skipped batch is caught
//! up from the store, a restart resumes where the predictions stop, and the scores equal the
//! offline scores of the same rows, bit for bit, across both.

use std::sync::Arc;

use pdm_core::align::{align, AlignConfig, Aligned};
use pdm_core::live::{Import, Live, LiveConfig, ModelFactory, Registry};
use pdm_core::{Batch, MachineKey, PredictionQuery, Reading, SensorKey, Store, Timestamp};
use pdm_detect::pipeline::Pipeline;
use pdm_detect::DetectFactory;

const CHANNELS: [&str; 3] = ["current", "flow", "temp"];
const BASE: i64 = 1_767_225_600_000;

fn value(i: i64, c: usize) -> f64 {
    let load = (i as f64 * 0.05).sin() + ((i * 7919 + c as i64 * 104_729) % 1009) as f64 / 3000.0;
    10.0 * (c as f64 + 1.0) + load * (c as f64 + 1.0)
}

/// Rows `range` of the machine, one a second, every channel in each.
fn batch(range: std::ops::Range<i64>) -> Batch {
    let machine = MachineKey::new("m").expect("key");
    let sensors: Vec<SensorKey> = CHANNELS
        .iter()
        .map(|c| SensorKey::new(c).expect("key"))
        .collect();
    Batch {
        readings: range
            .flat_map(|i| {
                let machine = machine.clone();
                sensors.iter().enumerate().map(move |(c, s)| Reading {
                    machine: machine.clone(),
                    sensor: s.clone(),
                    ts: Timestamp::from_millis(BASE + i * 1000),
                    value: value(i, c),
                })
            })
            .collect(),
        dead_letters: Vec::new(),
    }
}

fn align_config() -> AlignConfig {
    AlignConfig {
        channels: CHANNELS
            .iter()
            .map(|c| SensorKey::new(c).expect("key"))
            .collect(),
        sample_period_ms: 1000,
        max_gap_ms: 5000,
    }
}

/// The offline scores of every row of `readings`, by timestamp.
fn offline(model: &Pipeline, readings: &[Reading]) -> Vec<(i64, f64)> {
    let rows: Vec<_> = align(readings, &align_config())
        .expect("align")
        .into_iter()
        .filter_map(|a| match a {
            Aligned::Row(r) => Some(r),
            Aligned::Stale(_) => None,
        })
        .collect();
    let flat: Vec<f64> = rows.iter().flat_map(|r| r.values.iter().copied()).collect();
    let x = ndarray::Array2::from_shape_vec((rows.len(), CHANNELS.len()), flat).expect("shape");
    let scores = model.scores(&x.view()).expect("scores");
    rows.iter()
        .skip(model.row_of(0))
        .zip(scores.iter())
        .map(|(r, s)| (r.ts.as_millis(), *s))
        .collect()
}

async fn predictions(store: &Arc<dyn Store>) -> Vec<(i64, f64)> {
    let q = PredictionQuery {
        machine: MachineKey::new("m").expect("key"),
        from: Timestamp::from_millis(BASE - 86_400_000),
        to: Timestamp::from_millis(BASE + 86_400_000),
        limit: 100_000,
    };
    store
        .predictions(&q)
        .await
        .expect("predictions")
        .into_iter()
        .map(|p| (p.ts.as_millis(), p.score))
        .collect()
}

/// Writes a batch durably, then offers it, as the engine does.
async fn write_and_offer(store: &Arc<dyn Store>, live: &Live, b: Batch) {
    store.write(&b).await.expect("write");
    live.offer(b);
}

#[tokio::test(flavor = "current_thread")]
async fn skipped_batches_and_a_restart_are_caught_up_from_the_store_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &Default::default())
        .await
        .expect("connect");
    let machine = MachineKey::new("m").expect("key");
    for c in CHANNELS {
        store
            .ensure_sensor(&machine, &SensorKey::new(c).expect("key"))
            .await
            .expect("sensor");
    }
    // A default pipeline fitted on healthy rows, imported and activated.
    let train: Vec<Vec<f64>> = (0..600)
        .map(|i| (0..3).map(|c| value(i, c)).collect())
        .collect();
    let flat: Vec<f64> = train.iter().flatten().copied().collect();
    let x = ndarray::Array2::from_shape_vec((600, 3), flat).expect("shape");
    let model = Pipeline::params().fit(&x.view(), &CHANNELS).expect("fit");
    let factory: Arc<dyn ModelFactory> = Arc::new(DetectFactory);
    // A queue of one batch: on this single-threaded runtime the owner does not run until the
    // test awaits, so batches offered back to back overflow it.
    let config = LiveConfig {
        tasks: 1,
        queue_capacity: 1,
        ..LiveConfig::default()
    };
    let live = Live::start(store.clone(), factory.clone(), config.clone());
    let registry = Registry::new(
        store.clone(),
        factory.clone(),
        Some(live.clone()),
        pdm_core::live::AlignDefaults {
            sample_period_ms: 1000,
            max_gap_ms: 5000,
        },
    );
    registry
        .import(
            &machine,
            Import {
                bytes: model.to_bytes(),
                sample_period_ms: Some(1000),
                max_gap_ms: Some(5000),
                activate_by: Some("test".into()),
            },
        )
        .await
        .expect("import");

    // Twenty batches of 30 rows, stored, then offered back to back without yielding: the
    // owner's queue of one overflows, the rest are skipped and caught up from the store.
    let batches: Vec<Batch> = (0..20).map(|k| batch(k * 30..(k + 1) * 30)).collect();
    for b in &batches {
        store.write(b).await.expect("write");
    }
    for b in batches {
        live.offer(b);
    }
    // One more batch after the owner had its turn: it sees the skip and catches up.
    live.flush().await;
    write_and_offer(&store, &live, batch(600..630)).await;
    live.flush().await;
    let m = live.metrics();
    assert!(m.readings_skipped > 0, "the test overflowed nothing: {m:?}");
    assert!(m.catch_ups >= 2, "{m:?}");

    // A restart: a new live path on the same store resumes after the last prediction.
    live.shutdown().await;
    let live = Live::start(store.clone(), factory.clone(), config);
    write_and_offer(&store, &live, batch(630..700)).await;
    live.flush().await;
    live.shutdown().await;

    let all = batch(0..700).readings;
    let expected = offline(&model, &all);
    let got = predictions(&store).await;
    // The last instant stays open; every row before it is scored once, as offline.
    assert_eq!(
        got.len(),
        expected.len(),
        "{:?} .. {:?}",
        got.first(),
        got.last()
    );
    for ((t, s), (te, se)) in got.iter().zip(&expected) {
        assert_eq!(t, te);
        assert_eq!(s.to_bits(), se.to_bits(), "row {t}");
    }
}
