//! The embedded SQLite backend.
//!
//! One file, WAL journal, `synchronous=FULL` (under WAL, FULL is the setting whose commits
//! survive power loss, not only a crash of the process). SQLite admits one writer at a time, so
//! every write goes through a single dedicated connection (a pool of one: writes queue in
//! memory instead of failing with SQLITE_BUSY), while reads use a separate pool and, thanks to
//! WAL, never wait for writes.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pdm_core::{
    Batch, Bucket, Latest, MachineKey, Point, RangeQuery, StoreError, StoreResult, WriteOutcome,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Executor as _, Sqlite};

use crate::common::{self, Schema};
use crate::error::{db, db_ctx, is_foreign_key_violation};
use crate::migrate::{self, MigrationReport, SQLITE_MIGRATIONS};
use crate::sql::{Backend, SqlStore};
use crate::telemetry::HotPath;
use crate::StoreOptions;

/// Most readings per INSERT statement. Multi-row statements cut the per-statement overhead
/// (a round trip to sqlx's worker thread, bind and step setup) that dominates one-row
/// inserts; 3 parameters per row stay far below SQLite's limit of 32766 bound variables.
const MAX_ROWS_PER_INSERT: usize = 256;

/// `INSERT` statements for 1, 2, 4, ... [`MAX_ROWS_PER_INSERT`] rows. Batches are cut into
/// power-of-two chunks so that a handful of statement texts cover every batch size and stay in
/// the connection's prepared-statement cache.
fn insert_statements() -> &'static [String] {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    SQL.get_or_init(|| {
        let mut all = Vec::new();
        let mut n = 1;
        while n <= MAX_ROWS_PER_INSERT {
            let mut sql = String::from("INSERT INTO readings (sensor_id, ts, value) VALUES ");
            for i in 0..n {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?)");
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            all.push(sql);
            n *= 2;
        }
        all
    })
}

/// The next chunk of a batch with `remaining` (at least 1) readings left: its size, the largest
/// power of two not above `remaining` nor the maximum, and its statement.
fn next_chunk(remaining: usize) -> (usize, &'static str) {
    let exponent = remaining.clamp(1, MAX_ROWS_PER_INSERT).ilog2();
    // In bounds by construction: 2^exponent <= MAX_ROWS_PER_INSERT, the last statement built.
    (1 << exponent, &insert_statements()[exponent as usize])
}

const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters \
     (received_at, origin, channel, machine, kind, reason, payload_head) \
     VALUES (?, ?, ?, ?, ?, ?, ?)";

/// A store in one SQLite file.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub type SqliteStore = SqlStore<SqliteDb>;

/// The connections of a [`SqliteStore`]: one writer, a pool of readers.
#[derive(Debug)]
pub struct SqliteDb {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
}

impl Backend for SqliteDb {
    type Db = Sqlite;

    const LOCK_ROWS: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    const BIND_BUDGET: usize = 300;

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// Times are stored as epoch milliseconds already.
    fn millis(column: &str) -> String {
        column.to_owned()
    }

    fn at_millis(param: &str) -> String {
        param.to_owned()
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories when missing) the file named by a
    /// `sqlite:` URL: `sqlite:data/pdm.db`, `sqlite://data/pdm.db` (relative) or
    /// `sqlite:///var/lib/pdm/pdm.db` (absolute).
    pub async fn open(url: &str, opts: &StoreOptions) -> StoreResult<Self> {
        let path = crate::dburl::sqlite_path(url)?;
        Self::open_with(&path, opts, Schema::from_options(opts)).await
    }

    /// Opens (creating it and its parent directories when missing) the database file at `path`.
    pub async fn open_path(path: impl AsRef<Path>, opts: &StoreOptions) -> StoreResult<Self> {
        Self::open_with(path.as_ref(), opts, Schema::from_options(opts)).await
    }

    pub(crate) async fn open_with(
        path: &Path,
        opts: &StoreOptions,
        schema: Schema,
    ) -> StoreResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(
                    format!(
                        "cannot create the directory {} of the database: {e}",
                        dir.display()
                    )
                    .into(),
                )
            })?;
        }
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(opts.busy_timeout())
            // The committing connection runs the checkpoint (and, at FULL, its fsync) inside its
            // commit. SQLite's default of every 1000 pages (4 MiB) stalls the single writer
            // often under sustained ingestion; every 10000 pages (about 40 MiB of WAL) raised the
            // median durable rate of ingest_bench from about 274k to 315k readings/s and removed
            // its slow rounds (docs/benchmarks.md).
            .pragma("wal_autocheckpoint", "10000");
        let what = || format!("opening SQLite database {}", path.display());
        // Connections live as long as the store: a reconnect would only lose the statement
        // cache, and SQLite connections do not go stale.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(opts.acquire_timeout())
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone())
            .await
            .map_err(|e| db_ctx(what(), e))?;
        let store_writer = writer.clone();
        let finish = async {
            match schema {
                Schema::Migrate => {
                    let report = migrate_sqlite(&writer).await?;
                    log_report(path, &report);
                }
                Schema::Check => {
                    let current = schema_version(&writer).await?;
                    let needed = migrate::latest(SQLITE_MIGRATIONS);
                    if current < needed {
                        return Err(migrate::behind(current, needed));
                    }
                    migrate::warn_if_ahead(current, needed);
                }
                Schema::Ignore => {}
            }
            SqlitePoolOptions::new()
                .max_connections(opts.pool_size())
                .acquire_timeout(opts.acquire_timeout())
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(connect)
                .await
                .map_err(|e| db_ctx(what(), e))
        };
        let reader = match finish.await {
            Ok(reader) => reader,
            Err(e) => {
                store_writer.close().await;
                return Err(e);
            }
        };
        tracing::debug!(path = %path.display(), "SQLite store open");
        Ok(SqlStore::new(SqliteDb {
            writer: store_writer,
            reader,
            path: path.to_owned(),
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.db.path
    }

    /// Applies pending migrations; a no-op when the schema is current.
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        let report = migrate_sqlite(&self.db.writer).await?;
        log_report(&self.db.path, &report);
        Ok(report)
    }

    /// The schema version recorded in the database (0 for an empty database).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        schema_version(&self.db.writer).await
    }

    /// Closes every connection; later calls fail as unavailable.
    pub async fn close(&self) {
        self.db.writer.close().await;
        self.db.reader.close().await;
    }

    async fn write_resolved(&self, batch: &Batch, ids: &[i64]) -> Result<u64, sqlx::Error> {
        // IMMEDIATE (begin_write) takes the write lock up front: another process writing the
        // same file makes us wait (busy_timeout) instead of failing mid-transaction.
        let mut tx = self.db.begin_write().await?;
        let mut inserted = 0;
        let mut rows = batch.readings.iter().zip(ids);
        let mut remaining = batch.readings.len();
        while remaining > 0 {
            let (n, sql) = next_chunk(remaining);
            let mut q = sqlx::query(sql);
            for (r, &id) in rows.by_ref().take(n) {
                q = q.bind(id).bind(r.ts.as_millis()).bind(r.value);
            }
            inserted += q.execute(&mut *tx).await?.rows_affected();
            remaining -= n;
        }
        for d in &batch.dead_letters {
            sqlx::query(INSERT_DEAD_LETTER)
                .bind(d.received_at.as_millis())
                .bind(d.origin.as_str())
                .bind(d.channel.as_str())
                .bind(d.machine.as_deref())
                .bind(d.kind.as_str())
                .bind(d.reason.as_str())
                .bind(d.payload_head.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }
}

fn log_report(path: &Path, report: &MigrationReport) {
    for (version, name) in &report.applied {
        tracing::info!(path = %path.display(), version, name, "applied SQLite migration");
    }
}

async fn schema_version(pool: &SqlitePool) -> StoreResult<i64> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pdm_migrations'",
    )
    .fetch_one(pool)
    .await
    .map_err(db)?;
    if exists == 0 {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM pdm_migrations")
        .fetch_one(pool)
        .await
        .map_err(db)
}

async fn migrate_sqlite(pool: &SqlitePool) -> StoreResult<MigrationReport> {
    let ctx = |what: &str| {
        let what = what.to_owned();
        move |e| db_ctx(what, e)
    };
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS pdm_migrations (\
             version    INTEGER PRIMARY KEY,\
             name       TEXT    NOT NULL,\
             applied_at INTEGER NOT NULL\
         ) STRICT",
    )
    .execute(pool)
    .await
    .map_err(ctx("creating pdm_migrations"))?;
    let mut report = MigrationReport::default();
    for m in SQLITE_MIGRATIONS {
        // Checking and applying inside one write transaction makes concurrent migrators (two
        // processes starting on the same file) take turns; the second finds it done.
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(ctx("starting a migration"))?;
        let done = sqlx::query("SELECT 1 FROM pdm_migrations WHERE version = ?")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await
            .map_err(ctx("reading pdm_migrations"))?
            .is_some();
        if !done {
            let what = format!("applying migration {} ({})", m.version, m.name);
            // A plain string runs as a script, every statement of the file (`raw_sql` would too,
            // but its future is not provably `Send` where callers spawn it).
            (&mut *tx).execute(m.sql).await.map_err(ctx(&what))?;
            sqlx::query("INSERT INTO pdm_migrations (version, name, applied_at) VALUES (?, ?, ?)")
                .bind(m.version)
                .bind(m.name)
                .bind(pdm_core::Timestamp::now().as_millis())
                .execute(&mut *tx)
                .await
                .map_err(ctx(&what))?;
            report.applied.push((m.version, m.name));
        }
        tx.commit().await.map_err(ctx("committing a migration"))?;
    }
    report.version = schema_version(pool).await?;
    migrate::warn_if_ahead(report.version, migrate::latest(SQLITE_MIGRATIONS));
    Ok(report)
}

impl HotPath for SqliteDb {
    async fn write(store: &SqliteStore, batch: &Batch) -> StoreResult<WriteOutcome> {
        common::check_readings(batch, None)?;
        let total = batch.readings.len() as u64;
        let outcome = |inserted: u64| WriteOutcome {
            inserted,
            duplicates: total.saturating_sub(inserted),
            dead_letters: batch.dead_letters.len() as u64,
        };
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let ids = common::resolve_ids(store, &store.ids, batch).await?;
        match store.write_resolved(batch, &ids).await {
            Ok(inserted) => Ok(outcome(inserted)),
            Err(e) if is_foreign_key_violation(&e) => {
                // A cached id whose sensor was deleted behind our back: reload and retry once.
                store.ids.clear();
                let ids = common::resolve_ids(store, &store.ids, batch).await?;
                match store.write_resolved(batch, &ids).await {
                    Ok(inserted) => Ok(outcome(inserted)),
                    Err(e) if is_foreign_key_violation(&e) => {
                        Err(common::sensor_deleted_during_write())
                    }
                    Err(e) => Err(db(e)),
                }
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn raw(store: &SqliteStore, q: &RangeQuery) -> StoreResult<Vec<Point>> {
        // The sensor id comes from the database, not the write cache, so that a sensor
        // registered again by another process is read under its current id.
        let rows = sqlx::query(
            "SELECT ts, value FROM readings \
             WHERE sensor_id = (SELECT s.id FROM sensors s JOIN machines m ON m.id = s.machine_id \
                                WHERE m.key = ?1 AND s.key = ?2) \
               AND ts >= ?3 AND ts < ?4 \
             ORDER BY ts LIMIT ?5",
        )
        .bind(q.machine.as_str())
        .bind(q.sensor.as_str())
        .bind(q.from.as_millis())
        .bind(q.to.as_millis())
        .bind(common::limit(q.limit))
        .fetch_all(&store.db.reader)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            store.check_sensor(&q.machine, &q.sensor).await?;
        }
        rows.iter().map(common::point).collect()
    }

    async fn buckets(
        store: &SqliteStore,
        q: &RangeQuery,
        width_ms: i64,
    ) -> StoreResult<Vec<Bucket>> {
        common::check_width(width_ms)?;
        // Floor division: `%` truncates toward zero, so negative timestamps not on a boundary
        // step one bucket further down.
        let rows = sqlx::query(
            "SELECT b, avg(value), min(value), max(value), count(*) FROM (\
                 SELECT CASE WHEN ts >= 0 OR ts % ?1 = 0 THEN ts - ts % ?1 \
                             ELSE ts - ts % ?1 - ?1 END AS b, value \
                 FROM readings \
                 WHERE sensor_id = (SELECT s.id FROM sensors s \
                                    JOIN machines m ON m.id = s.machine_id \
                                    WHERE m.key = ?2 AND s.key = ?3) \
                   AND ts >= ?4 AND ts < ?5) \
             GROUP BY b ORDER BY b LIMIT ?6",
        )
        .bind(width_ms)
        .bind(q.machine.as_str())
        .bind(q.sensor.as_str())
        .bind(q.from.as_millis())
        .bind(q.to.as_millis())
        .bind(common::limit(q.limit))
        .fetch_all(&store.db.reader)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            store.check_sensor(&q.machine, &q.sensor).await?;
        }
        rows.iter().map(common::bucket).collect()
    }

    async fn latest(store: &SqliteStore, machine: &MachineKey) -> StoreResult<Vec<Latest>> {
        // Per sensor, one descent of the primary key to its newest row.
        let rows = sqlx::query(
            "SELECT s.key, r.ts, r.value \
             FROM machines m \
             JOIN sensors s ON s.machine_id = m.id \
             JOIN readings r ON r.sensor_id = s.id AND r.ts = (\
                 SELECT ts FROM readings WHERE sensor_id = s.id ORDER BY ts DESC LIMIT 1) \
             WHERE m.key = ? ORDER BY s.key",
        )
        .bind(machine.as_str())
        .fetch_all(&store.db.reader)
        .await
        .map_err(db)?;
        if rows.is_empty() && !store.machine_exists(machine).await? {
            return Err(common::machine_not_found(machine));
        }
        rows.iter().map(common::latest).collect()
    }

    const WRITE_CONCURRENCY: usize = 1;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        assert_eq!(next_chunk(1).0, 1);
        assert_eq!(next_chunk(3).0, 2);
        assert_eq!(next_chunk(255).0, 128);
        assert_eq!(next_chunk(100_000).0, MAX_ROWS_PER_INSERT);
        let mut remaining = 10_007;
        let mut statements = 0;
        while remaining > 0 {
            let (n, sql) = next_chunk(remaining);
            assert_eq!(sql.matches("(?,?,?)").count(), n);
            remaining -= n;
            statements += 1;
        }
        assert!(statements < 50, "{statements}");
    }

    #[tokio::test]
    async fn connections_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_path(dir.path().join("pdm.db"), &StoreOptions::default())
            .await
            .expect("open");
        for pool in [&store.db.writer, &store.db.reader] {
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(pool)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
            // 2 is FULL: under WAL, the level at which commits survive power loss.
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(pool)
                .await
                .expect("synchronous");
            assert_eq!(sync, 2);
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(pool)
                .await
                .expect("foreign_keys");
            assert_eq!(fk, 1);
        }
        store.close().await;
    }
}
