//! Benchmarks and evaluation binaries of pdm.
//!
//! - `cargo bench -p benches --bench codec`: criterion benches of payload decoding and intake.
//! - `cargo run --release -p benches --bin ingest_bench`: end-to-end MQTT ingestion into SQLite
//!   and PostgreSQL against the broker's raw drain rate (see `docs/benchmarks.md`).
