//! Embed the pdm engine in your own program, without the server: an SQLite store, the catalog,
//! the engine, and readings fed in by your code (here: a simulated pump), stored durably and
//! queried back.
//!
//! Run with `cargo run -p examples --example embed_engine`.

use std::sync::Arc;

use pdm_core::{
    Catalog, Engine, EngineConfig, InputContext, MachineKey, Metrics, NewMachine, NewSensor,
    Origin, RangeQuery, Reading, SensorKey, Timestamp,
};
use pdm_ingest::sim::{SimConfig, Simulator};
use pdm_store::StoreOptions;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("pdm-embed-example-{}", std::process::id()));
    let url = format!("sqlite://{}", dir.join("pdm.db").display());
    let store = pdm_store::connect(&url, &StoreOptions::default()).await?;

    // Registration goes through the catalog, which validates every reading against it.
    let catalog = Arc::new(Catalog::load(store.clone(), false).await?);
    let pump = MachineKey::new("pump-1")?;
    catalog
        .create_machine(&NewMachine {
            key: pump.clone(),
            name: Some("Feed pump 1".into()),
            kind: Some("pump".into()),
            description: None,
        })
        .await?;
    for (key, unit, min, max) in [
        ("temperature", "degC", -20.0, 150.0),
        ("vibration_rms", "mm/s", 0.0, 50.0),
        ("current", "A", 0.0, 100.0),
        ("pressure", "bar", 0.0, 25.0),
        ("flow", "m3/h", 0.0, 200.0),
    ] {
        let sensor = NewSensor {
            key: SensorKey::new(key)?,
            unit: Some(unit.into()),
            min: Some(min),
            max: Some(max),
        };
        catalog.create_sensor(&pump, &sensor).await?;
    }

    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(
        store.clone(),
        catalog.clone(),
        metrics.clone(),
        EngineConfig::default(),
    );
    let sink = engine.sink();

    // One simulated hour of the pump, one sample a second, sent in batches of a minute.
    let mut sim_config = SimConfig::fleet(1, 42);
    sim_config.start = Some(Timestamp::now().add_millis(-3_600_000));
    sim_config.duration_secs = Some(3_600);
    let sim = Simulator::new(&sim_config)?;
    let ctx = InputContext {
        origin: Origin::Other,
        channel: "example",
        payload: b"",
    };
    let mut pending = Vec::new();
    for tick in sim {
        for sample in tick.samples {
            pending.extend(sample.values.into_iter().map(|(sensor, value)| Reading {
                machine: sample.machine.clone(),
                sensor,
                ts: sample.ts,
                value,
            }));
        }
        if pending.len() >= 300 {
            let (kept, dead_letters) = catalog.admit(std::mem::take(&mut pending), ctx).await?;
            // Returns once the batch is durable: this is where an MQTT source would ack.
            sink.send_and_wait(pdm_core::Batch {
                readings: kept,
                dead_letters,
            })
            .await?;
        }
    }
    let (kept, dead_letters) = catalog.admit(pending, ctx).await?;
    sink.send_and_wait(pdm_core::Batch {
        readings: kept,
        dead_letters,
    })
    .await?;
    engine.shutdown().await;

    let stored = store.count_readings(&pump).await?;
    println!("stored {stored} readings in {}", dir.display());
    let q = RangeQuery {
        machine: pump.clone(),
        sensor: SensorKey::new("temperature")?,
        from: Timestamp::now().add_millis(-3_600_000),
        to: Timestamp::now(),
        limit: 10,
    };
    for b in store.buckets(&q, 600_000).await? {
        println!(
            "  10 min from {}: temperature avg {:.1} (min {:.1}, max {:.1}, n={})",
            b.start.as_millis(),
            b.avg,
            b.min,
            b.max,
            b.count
        );
    }
    let m = metrics.snapshot();
    println!(
        "metrics: {} received, {} stored, {} batches",
        m.readings_received, m.readings_stored, m.batches_written
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
