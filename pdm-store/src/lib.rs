//! Storage backends of pdm: an embedded SQLite file (feature `sqlite`, the default) and
//! PostgreSQL, with TimescaleDB hypertables when the extension is present (feature
//! `postgres`). Both implement [`TelemetryStore`](pdm_core::TelemetryStore) and
//! [`CatalogStore`](pdm_core::CatalogStore) from `pdm-core`, carry
//! their own embedded migrations, and pass the same conformance suite.
//!
//! ```
//! # #[cfg(feature = "sqlite")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use pdm_core::{Batch, MachineKey, NewSensor, RangeQuery, Reading, SensorKey, Timestamp};
//! use pdm_store::StoreOptions;
//!
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}/data/pdm.db", dir.path().display());
//! // Creates the directory and the file, and applies the migrations.
//! let store = pdm_store::connect(&url, &StoreOptions::default()).await?;
//!
//! let pump = MachineKey::new("pump-1")?;
//! let temp = SensorKey::new("temperature")?;
//! store.ensure_machine(&pump).await?;
//! store
//!     .create_sensor(&pump, &NewSensor { key: temp.clone(), unit: Some("degC".into()), min: None, max: None })
//!     .await?;
//!
//! let reading = |ms, value| Reading { machine: pump.clone(), sensor: temp.clone(), ts: Timestamp::from_millis(ms), value };
//! let batch = Batch { readings: vec![reading(1_000, 20.0), reading(2_000, 21.0)], dead_letters: vec![] };
//! assert_eq!(store.write(&batch).await?.inserted, 2);
//! // Writes are idempotent: a replay stores nothing twice.
//! assert_eq!(store.write(&batch).await?.duplicates, 2);
//!
//! let q = RangeQuery { machine: pump.clone(), sensor: temp, from: Timestamp::from_millis(0), to: Timestamp::from_millis(10_000), limit: 100 };
//! let buckets = store.buckets(&q, 10_000).await?;
//! assert_eq!((buckets[0].avg, buckets[0].count), (20.5, 2));
//! # Ok(())
//! # }
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Runtime::new()?.block_on(demo())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`connect`] returns an `Arc<dyn Store>`, which upcasts to `Arc<dyn TelemetryStore>` and
//! `Arc<dyn CatalogStore>`; embedders wanting backend-specific calls use `SqliteStore` or
//! `PgStore` directly. Both are a [`SqlStore`] over their backend's connections: the relational
//! repositories (machines, sensors, dead letters) are one implementation for both backends,
//! and only the telemetry hot path and the migration runner are written per backend (see the
//! crate's README). [`migrate`] runs the migrations alone, for a `migrate` command.
//!
//! Guarantees, per backend:
//! - a write is one transaction; when it returns `Ok`, the batch survives a crash of the process
//!   and, on SQLite (WAL, `synchronous=FULL`), a power loss;
//! - a reading is unique by sensor and timestamp (the table's primary key): replays are counted
//!   as duplicates, the first value wins;
//! - passwords in database URLs never reach errors or logs ([`redact_url`]).

use std::sync::Arc;

use pdm_core::{Store, StoreError, StoreResult};

mod cache;
mod common;
mod dburl;
mod error;
mod migrate;
#[cfg(test)]
mod migration_files;
mod options;
#[cfg(feature = "postgres")]
mod postgres;
mod repo;
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod telemetry;

pub use dburl::{redact_url, BackendKind};
#[cfg(feature = "postgres")]
pub use migrate::POSTGRES_MIGRATIONS;
#[cfg(feature = "sqlite")]
pub use migrate::SQLITE_MIGRATIONS;
pub use migrate::{Migration, MigrationReport};
pub use options::StoreOptions;
#[cfg(feature = "postgres")]
pub use postgres::{PgDb, PgStore, PG_MAX_MS, PG_MIN_MS};
pub use sql::SqlStore;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteDb, SqliteStore};

/// Opens the store named by `url`, picking the backend from its scheme: `sqlite:PATH`,
/// `sqlite://PATH` (relative) or `sqlite:///PATH` (absolute) for SQLite;
/// `postgres://...` or `postgresql://...` for PostgreSQL.
///
/// Applies pending migrations unless [`StoreOptions::migrate`] is off, in which case it fails
/// when the schema is behind. Fails with [`StoreError::Invalid`] naming the scheme when it is
/// unknown or its backend was not compiled in, and with [`StoreError::Unavailable`] when the
/// database cannot be reached.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_variables)
)]
pub async fn connect(url: &str, opts: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    let schema = common::Schema::from_options(opts);
    match enabled(BackendKind::from_url(url)?)? {
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            let path = dburl::sqlite_path(url)?;
            Ok(Arc::new(SqliteStore::open_with(&path, opts, schema).await?))
        }
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => Ok(Arc::new(PgStore::connect_with(url, opts, schema).await?)),
        #[allow(unreachable_patterns)]
        other => Err(disabled(other)),
    }
}

/// Applies the pending migrations of the database named by `url` and reports what it did; a
/// no-op on a current schema. Connects, migrates, and closes its connections.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(unused_variables)
)]
pub async fn migrate(url: &str, opts: &StoreOptions) -> StoreResult<MigrationReport> {
    match enabled(BackendKind::from_url(url)?)? {
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            let path = dburl::sqlite_path(url)?;
            let store = SqliteStore::open_with(&path, opts, common::Schema::Ignore).await?;
            let report = store.migrate().await;
            store.close().await;
            report
        }
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            let store = PgStore::connect_with(url, opts, common::Schema::Ignore).await?;
            let report = store.migrate().await;
            store.close().await;
            report
        }
        #[allow(unreachable_patterns)]
        other => Err(disabled(other)),
    }
}

fn enabled(kind: BackendKind) -> StoreResult<BackendKind> {
    if kind.is_enabled() {
        Ok(kind)
    } else {
        Err(disabled(kind))
    }
}

fn disabled(kind: BackendKind) -> StoreError {
    StoreError::Invalid(format!(
        "database URL scheme '{kind}' needs pdm-store built with the `{kind}` feature"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Frontends spawn these on multi-threaded runtimes; a future that is not provably `Send`
    /// where it is used generically breaks them at compile time.
    #[test]
    fn public_futures_are_send() {
        let opts = StoreOptions::default();
        assert_send(&connect("sqlite://unused.db", &opts));
        assert_send(&migrate("sqlite://unused.db", &opts));
        #[cfg(feature = "sqlite")]
        assert_send(&SqliteStore::open("sqlite://unused.db", &opts));
        #[cfg(feature = "postgres")]
        assert_send(&PgStore::connect("postgres://unused/db", &opts));
    }

    #[tokio::test]
    async fn names_the_scheme_when_unknown_or_disabled() {
        let opts = StoreOptions::default();
        let msg = connect("mysql://u:secret@h/db", &opts)
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("'mysql'") && !msg.contains("secret"), "{msg}");
        #[cfg(not(feature = "postgres"))]
        {
            let msg = connect("postgres://u:secret@h/db", &opts)
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("`postgres` feature"), "{msg}");
        }
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn unreachable_postgres_is_unavailable_and_redacted() {
        let opts = StoreOptions {
            acquire_timeout_ms: 2_000,
            ..StoreOptions::default()
        };
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let err = connect("postgres://pdm:hunter2@127.0.0.1:1/pdm", &opts)
            .await
            .err()
            .map(|e| (e.is_transient(), e.to_string()));
        let (transient, msg) = err.unwrap_or_default();
        assert!(transient, "{msg}");
        assert!(
            !msg.contains("hunter2") && msg.contains("pdm:***@127.0.0.1:1"),
            "{msg}"
        );
        assert!(msg.to_lowercase().contains("refused"), "says why: {msg}");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_creates_missing_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/pdm.db");
        let store = SqliteStore::open_path(&path, &StoreOptions::default())
            .await
            .expect("open");
        assert!(path.exists());
        assert_eq!(
            store.schema_version().await.ok(),
            Some(migrate::latest(SQLITE_MIGRATIONS))
        );
        assert!(store
            .migrate()
            .await
            .map(|r| r.applied.is_empty())
            .unwrap_or(false));
        store.close().await;
    }
}
