//! Criterion benches of the payload codec: the per-message cost every MQTT and HTTP input pays.

use criterion::{criterion_main, Criterion, Throughput};
use pdm_core::{MachineKey, Timestamp};
use pdm_ingest::codec::{decode, CodecConfig};

fn message(ts: i64, values: usize) -> Vec<u8> {
    let values: Vec<String> = (0..values)
        .map(|j| format!("\"sensor_{j}\":{}.25", 40 + j))
        .collect();
    format!("{{\"ts\":{ts},\"values\":{{{}}}}}", values.join(",")).into_bytes()
}

fn bench_decode(c: &mut Criterion) {
    let machine = MachineKey::new("pump-1").expect("valid key");
    let config = CodecConfig::default();
    let now = Timestamp::now();
    let mut group = c.benchmark_group("decode");
    for values in [1usize, 10, 100] {
        let payload = message(now.as_millis(), values);
        group.throughput(Throughput::Elements(values as u64));
        group.bench_function(format!("object_{values}_values"), |b| {
            b.iter(|| decode(&machine, &payload, now, &config).map(|d| d.readings.len()))
        });
    }
    let items: Vec<String> = (0..100)
        .map(|i| String::from_utf8_lossy(&message(now.as_millis() - i, 10)).into_owned())
        .collect();
    let array = format!("[{}]", items.join(",")).into_bytes();
    group.throughput(Throughput::Elements(1000));
    group.bench_function("array_100_items_of_10_values", |b| {
        b.iter(|| decode(&machine, &array, now, &config).map(|d| d.readings.len()))
    });
    group.finish();
}

// The macro generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench_decode);
}
criterion_main!(group::benches);
