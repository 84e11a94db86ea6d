//! Measures how many readings per second the codec decodes, single-threaded, and how many the
//! whole intake path (codec + catalog checks) prepares.
//!
//! ```text
//! cargo run -p pdm-ingest --release --example decode_throughput
//! ```

#[path = "../tests/common/store.rs"]
mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pdm_core::{Catalog, MachineKey, Origin, Timestamp};
use pdm_ingest::codec::{decode, CodecConfig};
use pdm_ingest::Intake;

const SENSORS: [&str; 10] = [
    "temperature",
    "vibration_rms",
    "current",
    "pressure",
    "flow",
    "speed",
    "discharge_temperature",
    "bearing_temperature",
    "voltage",
    "power",
];

/// A typical message: one item of ten values, as devices send them.
fn message(i: usize, now: i64) -> Vec<u8> {
    let values: Vec<String> = SENSORS
        .iter()
        .enumerate()
        .map(|(k, s)| format!("\"{s}\":{:.3}", 40.0 + (i * 7 + k) as f64 * 0.137 % 20.0))
        .collect();
    format!(
        "{{\"ts\":{},\"values\":{{{}}}}}",
        now - (i as i64 % 1000),
        values.join(",")
    )
    .into_bytes()
}

/// Runs `f` over the messages repeatedly for about `budget`, returns readings per second.
fn rate(budget: Duration, readings_per_pass: usize, mut f: impl FnMut() -> usize) -> f64 {
    let mut passes = 0usize;
    let mut readings = 0usize;
    let start = Instant::now();
    while start.elapsed() < budget || passes < 3 {
        readings += f();
        passes += 1;
    }
    assert_eq!(
        readings,
        passes * readings_per_pass,
        "every reading decodes"
    );
    readings as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let now = Timestamp::now();
    let machine = MachineKey::new("pump-1")?;
    let config = CodecConfig::default();
    let messages: Vec<Vec<u8>> = (0..10_000).map(|i| message(i, now.as_millis())).collect();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    let per_pass = messages.len() * SENSORS.len();
    println!(
        "{} messages of {} values, {} bytes on average",
        messages.len(),
        SENSORS.len(),
        bytes / messages.len()
    );

    let budget = Duration::from_secs(3);
    let single = rate(budget, per_pass, || {
        messages
            .iter()
            .map(|m| decode(&machine, m, now, &config).map_or(0, |d| d.readings.len()))
            .sum()
    });
    println!(
        "codec::decode, one object per message: {:>12.0} readings/s ({:.0} MB/s)",
        single,
        single / SENSORS.len() as f64 * (bytes / messages.len()) as f64 / 1e6
    );

    // The same readings as arrays of 100 items per message.
    let arrays: Vec<Vec<u8>> = messages
        .chunks(100)
        .map(|c| {
            let mut out = b"[".to_vec();
            for (i, m) in c.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(m);
            }
            out.push(b']');
            out
        })
        .collect();
    let batched = rate(budget, per_pass, || {
        arrays
            .iter()
            .map(|m| decode(&machine, m, now, &config).map_or(0, |d| d.readings.len()))
            .sum()
    });
    println!("codec::decode, arrays of 100 items:    {batched:>12.0} readings/s");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = runtime.block_on(store::TestStore::new());
    let limits: Vec<(&str, Option<f64>, Option<f64>)> = SENSORS
        .iter()
        .map(|s| (*s, Some(-1000.0), Some(1000.0)))
        .collect();
    runtime.block_on(store.seed_machine("pump-1", &limits));
    let catalog = Arc::new(runtime.block_on(Catalog::load(store, false))?);
    let intake = Intake::new(catalog, config.clone());
    let prepared = rate(budget, per_pass, || {
        runtime.block_on(async {
            let mut n = 0;
            for m in &messages {
                let p = intake
                    .prepare(Origin::Mqtt, "pdm/pump-1/telemetry", "pump-1", m, now)
                    .await
                    .map_or(0, |p| p.report.accepted);
                n += p;
            }
            n
        })
    });
    println!("Intake::prepare (codec + catalog):    {prepared:>12.0} readings/s");
    Ok(())
}
