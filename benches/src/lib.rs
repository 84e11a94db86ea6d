//! Benchmarks and evaluation binaries of pdm.
//!
//! - `cargo bench -p benches --bench codec`: criterion benches of payload decoding and intake.
//! - `cargo run --release -p benches --bin ingest_bench`: end-to-end MQTT ingestion into SQLite
//!   and PostgreSQL against the broker's raw drain rate (see `docs/benchmarks.md`).
//! - `cargo run --release -p benches --bin live_bench -- ingest|memory|scoring`: ingestion with
//!   live detection against without, memory of 1,000 live machines, live scoring throughput.
//!
//! - `cargo run --release -p benches --bin eval -- fleet`: the fleet scenario of issue 10
//!   ([`fleet`]): a seeded simulated week of at least 20 machines with faults at known times,
//!   through the engine, the live path and the alarm stage (see `docs/evaluation.md`).
//!
//! What the binaries share: a fresh PostgreSQL database per round ([`pg`]), a keep-alive HTTP
//! client ([`http::Http`]) and [`http::percentile`], and [`median`].

pub mod fleet;
pub mod http;

/// Helpers shared by the benchmark binaries.
pub mod pg {
    use anyhow::Context as _;
    use sqlx::Connection as _;

    /// Creates a fresh database `pdm_<tag>_<pid>` on the server of `base` (dropping one left
    /// over); its URL and name.
    pub async fn fresh(base: &str, tag: &str) -> anyhow::Result<(String, String)> {
        let name = format!("pdm_{tag}_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(base)
            .await
            .context("connect to PostgreSQL")?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let (prefix, _) = base.rsplit_once('/').context("database URL has no path")?;
        Ok((format!("{prefix}/{name}"), name))
    }

    /// Drops a database made by [`fresh`], closing its connections.
    pub async fn drop(base: &str, name: &str) -> anyhow::Result<()> {
        let mut admin = sqlx::PgConnection::connect(base).await?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        Ok(())
    }
}

/// The median (the upper one of an even count); `v` must not be empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits until the engine counted `expected` readings stored, polling every `poll`; an error
/// after ten minutes.
pub async fn wait_stored(
    metrics: &pdm_core::Metrics,
    expected: u64,
    poll: std::time::Duration,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while metrics.snapshot().readings_stored < expected {
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {expected} readings stored in 600 s",
                metrics.snapshot().readings_stored
            );
        }
        tokio::time::sleep(poll).await;
    }
    Ok(())
}
