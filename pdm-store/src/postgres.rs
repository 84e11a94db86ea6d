//! The PostgreSQL backend (TimescaleDB hypertable for readings when the extension is there).
//!
//! Timestamps are `TIMESTAMPTZ` in the database and epoch milliseconds everywhere else; the
//! conversion happens in SQL (`timestamptz 'epoch' + ms * interval '1 millisecond'` one way,
//! `(extract(epoch FROM ts) * 1000)::int8` the other, exact on PostgreSQL 14 and later where
//! `extract` returns numeric).

use std::str::FromStr;

use pdm_core::{
    Batch, Bucket, Latest, MachineKey, Point, RangeQuery, StoreError, StoreResult, Timestamp,
    WriteOutcome,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Executor as _, Postgres};

use crate::common::{self, Schema};
use crate::dburl::redact_url;
use crate::error::{db, db_ctx};
use crate::migrate::{self, MigrationReport, POSTGRES_MIGRATIONS};
use crate::sql::{Backend, SqlStore};
use crate::telemetry::HotPath;
use crate::StoreOptions;

/// Earliest storable instant in ms: 4714-11-24 BC, the start of PostgreSQL's timestamp range.
pub const PG_MIN_MS: i64 = -210_866_803_200_000;
/// Bound (exclusive) of storable instants in ms, about year 294,000: the widest offset from the
/// epoch that the millisecond interval arithmetic can represent.
pub const PG_MAX_MS: i64 = 9_223_372_036_854_000;

/// Most readings per INSERT: one statement of three arrays per chunk keeps the message size and
/// the server's memory for one statement bounded on very large batches.
const MAX_ROWS_PER_INSERT: usize = 50_000;

/// Key of the session advisory lock held while migrating ("pdm_migr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7064_6d5f_6d69_6772;

const INSERT_READINGS: &str = "INSERT INTO readings (sensor_id, ts, value) \
     SELECT s, timestamptz 'epoch' + t * interval '1 millisecond', v \
     FROM UNNEST($1::int8[], $2::int8[], $3::float8[]) AS u (s, t, v) \
     ON CONFLICT DO NOTHING";

const INSERT_DEAD_LETTER: &str = "INSERT INTO dead_letters \
     (received_at, origin, channel, machine, kind, reason, payload_head) \
     VALUES (timestamptz 'epoch' + $1::int8 * interval '1 millisecond', $2, $3, $4, $5, $6, $7)";

/// Predictions from arrays, their machine ids looked up in the same statement: one statement
/// whatever the number of rows (atomic on its own), no per-row parameters to parse.
const INSERT_PREDICTIONS: &str = "INSERT INTO predictions \
     (machine_id, ts, model_id, score, threshold, anomalous, health, rul_s, contributions) \
     SELECT m.id, timestamptz 'epoch' + u.t * interval '1 millisecond', u.model, u.score, \
            u.threshold, u.anomalous, u.health, u.rul, u.contributions \
     FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::float8[], $5::float8[], $6::bool[], \
                 $7::float8[], $8::float8[], $9::text[]) \
          AS u (machine, t, model, score, threshold, anomalous, health, rul, contributions) \
     JOIN machines m ON m.key = u.machine \
     ON CONFLICT DO NOTHING";

/// A store in a PostgreSQL database.
///
/// Cheap to share behind an `Arc`; all methods take `&self`.
pub type PgStore = SqlStore<PgDb>;

/// The connections of a [`PgStore`]: one pool for reads and writes.
#[derive(Debug)]
pub struct PgDb {
    pool: PgPool,
    timescale: bool,
    url: String,
}

impl Backend for PgDb {
    type Db = Postgres;

    const LOCK_ROWS: &'static str = " FOR NO KEY UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const BIND_BUDGET: usize = 2_400;

    async fn insert_predictions(
        &self,
        predictions: &[pdm_core::Prediction],
        contributions: &[String],
    ) -> Option<StoreResult<u64>> {
        Some(
            self.insert_predictions_unnest(predictions, contributions)
                .await,
        )
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn millis(column: &str) -> String {
        format!("(extract(epoch FROM {column}) * 1000)::int8")
    }

    fn at_millis(param: &str) -> String {
        format!("timestamptz 'epoch' + {param}::int8 * interval '1 millisecond'")
    }

    fn clamp_millis(ms: i64) -> i64 {
        ms.clamp(PG_MIN_MS, PG_MAX_MS)
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

impl PgStore {
    /// Connects to the database named by a `postgres://` or `postgresql://` URL.
    pub async fn connect(url: &str, opts: &StoreOptions) -> StoreResult<Self> {
        Self::connect_with(url, opts, Schema::from_options(opts)).await
    }

    pub(crate) async fn connect_with(
        url: &str,
        opts: &StoreOptions,
        schema: Schema,
    ) -> StoreResult<Self> {
        let shown = redact_url(url);
        let mut connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("invalid PostgreSQL URL {shown}: {e}")))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("pdm");
        }
        // One direct connection first: when the server is down or refuses us, the pool would
        // only report a timeout, while this says why (refused, authentication, no database).
        let probe =
            tokio::time::timeout(opts.acquire_timeout(), PgConnection::connect_with(&connect))
                .await
                .map_err(|_| {
                    StoreError::Unavailable(
                        format!("connecting to {shown}: no answer within the acquire timeout")
                            .into(),
                    )
                })?
                .map_err(|e| db_ctx(format!("connecting to {shown}"), e))?;
        if let Err(e) = probe.close().await {
            tracing::debug!(error = %e, "closing the probe connection failed");
        }
        let pool = PgPoolOptions::new()
            .max_connections(opts.pool_size())
            .acquire_timeout(opts.acquire_timeout())
            .connect_with(connect)
            .await
            .map_err(|e| db_ctx(format!("connecting to {shown}"), e))?;
        let finish = async {
            match schema {
                Schema::Migrate => {
                    let report = migrate_pg(&pool).await?;
                    log_report(&shown, &report);
                }
                Schema::Check => {
                    let current = schema_version(&pool).await?;
                    let needed = migrate::latest(POSTGRES_MIGRATIONS);
                    if current < needed {
                        return Err(migrate::behind(current, needed));
                    }
                    migrate::warn_if_ahead(current, needed);
                }
                Schema::Ignore => {}
            }
            uses_timescale(&pool).await
        };
        let timescale = match finish.await {
            Ok(t) => t,
            Err(e) => {
                pool.close().await;
                return Err(e);
            }
        };
        tracing::debug!(url = %shown, timescale, "PostgreSQL store connected");
        Ok(SqlStore::new(PgDb {
            pool,
            timescale,
            url: shown,
        }))
    }

    /// Applies pending migrations; a no-op when the schema is current. Safe to run from
    /// several processes at once: they take turns on an advisory lock.
    pub async fn migrate(&self) -> StoreResult<MigrationReport> {
        let report = migrate_pg(&self.db.pool).await?;
        log_report(&self.db.url, &report);
        Ok(report)
    }

    /// The schema version recorded in the database (0 for an empty database).
    pub async fn schema_version(&self) -> StoreResult<i64> {
        schema_version(&self.db.pool).await
    }

    /// Whether the TimescaleDB extension was installed when the store connected (readings
    /// are then a hypertable).
    pub fn uses_timescale(&self) -> bool {
        self.db.timescale
    }

    /// The database URL, password redacted.
    pub fn url(&self) -> &str {
        &self.db.url
    }

    /// Closes every connection; later calls fail as unavailable.
    pub async fn close(&self) {
        self.db.pool.close().await;
    }

    /// Writes in one transaction; `None` when a sensor of the batch no longer exists.
    async fn write_resolved(&self, batch: &Batch, ids: &[i64]) -> Result<Option<u64>, sqlx::Error> {
        let ts: Vec<i64> = batch.readings.iter().map(|r| r.ts.as_millis()).collect();
        let values: Vec<f64> = batch.readings.iter().map(|r| r.value).collect();
        let mut distinct = ids.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut tx = self.db.pool.begin().await?;
        // One lock per sensor instead of a foreign-key check per row (migration 0002): a
        // concurrent delete of the sensor waits for this transaction, or has already removed
        // the row and the batch is refused.
        let locked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT id FROM sensors WHERE id = ANY($1) FOR KEY SHARE) s",
        )
        .bind(&distinct)
        .fetch_one(&mut *tx)
        .await?;
        if usize::try_from(locked).ok() != Some(distinct.len()) {
            return Ok(None);
        }
        let mut inserted = 0;
        for start in (0..ids.len()).step_by(MAX_ROWS_PER_INSERT) {
            let end = (start + MAX_ROWS_PER_INSERT).min(ids.len());
            inserted += sqlx::query(INSERT_READINGS)
                .bind(&ids[start..end])
                .bind(&ts[start..end])
                .bind(&values[start..end])
                .execute(&mut *tx)
                .await?
                .rows_affected();
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
        Ok(Some(inserted))
    }
}

/// Query bounds clamped to what the database can hold; readings can only lie inside.
fn clamp(ts: Timestamp) -> i64 {
    ts.as_millis().clamp(PG_MIN_MS, PG_MAX_MS)
}

fn log_report(url: &str, report: &MigrationReport) {
    for (version, name) in &report.applied {
        tracing::info!(url, version, name, "applied PostgreSQL migration");
    }
}

async fn uses_timescale(pool: &PgPool) -> StoreResult<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
        .fetch_one(pool)
        .await
        .map_err(db)
}

async fn schema_version_on(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('pdm_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await?;
    if !exists {
        return Ok(0);
    }
    sqlx::query_scalar("SELECT coalesce(max(version), 0)::int8 FROM pdm_migrations")
        .fetch_one(&mut *conn)
        .await
}

async fn schema_version(pool: &PgPool) -> StoreResult<i64> {
    let mut conn = pool.acquire().await.map_err(db)?;
    schema_version_on(&mut conn).await.map_err(db)
}

async fn migrate_pg(pool: &PgPool) -> StoreResult<MigrationReport> {
    // A connection of its own, closed at the end: the advisory lock belongs to the session, so
    // closing releases it whatever happened, and no pooled connection is left holding it.
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| db_ctx("connecting to migrate", e))?
        .detach();
    let result = migrate_locked(&mut conn).await;
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the migration connection failed");
    }
    result
}

async fn migrate_locked(conn: &mut PgConnection) -> StoreResult<MigrationReport> {
    let ctx = |what: &str| {
        let what = what.to_owned();
        move |e| db_ctx(what, e)
    };
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await
        .map_err(ctx("taking the migration lock"))?;
    // Checked rather than IF NOT EXISTS, which would log a notice on every start.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('pdm_migrations') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(ctx("reading pdm_migrations"))?;
    if !exists {
        sqlx::query(
            "CREATE TABLE pdm_migrations (\
                 version    BIGINT      PRIMARY KEY,\
                 name       TEXT        NOT NULL,\
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now()\
             )",
        )
        .execute(&mut *conn)
        .await
        .map_err(ctx("creating pdm_migrations"))?;
    }
    let mut report = MigrationReport::default();
    for m in POSTGRES_MIGRATIONS {
        let mut tx = conn.begin().await.map_err(ctx("starting a migration"))?;
        let done = sqlx::query("SELECT 1 FROM pdm_migrations WHERE version = $1")
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
            sqlx::query("INSERT INTO pdm_migrations (version, name) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.name)
                .execute(&mut *tx)
                .await
                .map_err(ctx(&what))?;
            report.applied.push((m.version, m.name));
        }
        tx.commit().await.map_err(ctx("committing a migration"))?;
    }
    report.version = schema_version_on(conn)
        .await
        .map_err(ctx("reading pdm_migrations"))?;
    migrate::warn_if_ahead(report.version, migrate::latest(POSTGRES_MIGRATIONS));
    Ok(report)
}

impl PgDb {
    /// [`Backend::insert_predictions`]: one `UNNEST` statement.
    async fn insert_predictions_unnest(
        &self,
        predictions: &[pdm_core::Prediction],
        contributions: &[String],
    ) -> StoreResult<u64> {
        let machines: Vec<&str> = predictions.iter().map(|p| p.machine.as_str()).collect();
        let mut distinct = machines.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let known: Vec<String> = sqlx::query_scalar("SELECT key FROM machines WHERE key = ANY($1)")
            .bind(&distinct)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        if let Some(missing) = predictions
            .iter()
            .find(|p| !known.iter().any(|k| k == p.machine.as_str()))
        {
            return Err(common::machine_not_found(&missing.machine));
        }
        // Models are checked once per batch (no foreign key: migration 0004).
        let mut models: Vec<i64> = predictions.iter().map(|p| p.model.0).collect();
        models.sort_unstable();
        models.dedup();
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM models WHERE id = ANY($1)")
            .bind(&models)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        if usize::try_from(found).ok() != Some(models.len()) {
            return Err(StoreError::NotFound(
                "a model named by the predictions".into(),
            ));
        }
        let result = sqlx::query(INSERT_PREDICTIONS)
            .bind(&machines)
            .bind(
                predictions
                    .iter()
                    .map(|p| p.ts.as_millis())
                    .collect::<Vec<_>>(),
            )
            .bind(predictions.iter().map(|p| p.model.0).collect::<Vec<_>>())
            .bind(predictions.iter().map(|p| p.score).collect::<Vec<_>>())
            .bind(predictions.iter().map(|p| p.threshold).collect::<Vec<_>>())
            .bind(predictions.iter().map(|p| p.anomalous).collect::<Vec<_>>())
            .bind(predictions.iter().map(|p| p.health).collect::<Vec<_>>())
            .bind(predictions.iter().map(|p| p.rul_s).collect::<Vec<_>>())
            .bind(contributions)
            .execute(&self.pool)
            .await;
        match result {
            Ok(done) => Ok(done.rows_affected()),
            Err(e) if crate::error::is_foreign_key_violation(&e) => Err(StoreError::NotFound(
                "a model (or machine) named by the predictions".into(),
            )),
            Err(e) => Err(db(e)),
        }
    }
}

impl HotPath for PgDb {
    async fn write(store: &PgStore, batch: &Batch) -> StoreResult<WriteOutcome> {
        common::check_readings(batch, Some((PG_MIN_MS, PG_MAX_MS)))?;
        if batch.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let total = batch.readings.len() as u64;
        let outcome = |inserted: u64| WriteOutcome {
            inserted,
            duplicates: total.saturating_sub(inserted),
            dead_letters: batch.dead_letters.len() as u64,
        };
        let ids = common::resolve_ids(store, &store.ids, batch).await?;
        match store.write_resolved(batch, &ids).await {
            Ok(Some(inserted)) => Ok(outcome(inserted)),
            Ok(None) => {
                // A cached id whose sensor another worker deleted: reload and retry once.
                store.ids.clear();
                let ids = common::resolve_ids(store, &store.ids, batch).await?;
                match store.write_resolved(batch, &ids).await {
                    Ok(Some(inserted)) => Ok(outcome(inserted)),
                    Ok(None) => Err(common::sensor_deleted_during_write()),
                    Err(e) => Err(db(e)),
                }
            }
            Err(e) => Err(db(e)),
        }
    }

    async fn raw(store: &PgStore, q: &RangeQuery) -> StoreResult<Vec<Point>> {
        // The sensor id comes from the database, not the write cache, so that a sensor
        // registered again by another worker is read under its current id.
        let rows = sqlx::query(
            "SELECT (extract(epoch FROM ts) * 1000)::int8, value FROM readings \
             WHERE sensor_id = (SELECT s.id FROM sensors s JOIN machines m ON m.id = s.machine_id \
                                WHERE m.key = $1 AND s.key = $2) \
               AND ts >= timestamptz 'epoch' + $3::int8 * interval '1 millisecond' \
               AND ts < timestamptz 'epoch' + $4::int8 * interval '1 millisecond' \
             ORDER BY ts LIMIT $5",
        )
        .bind(q.machine.as_str())
        .bind(q.sensor.as_str())
        .bind(clamp(q.from))
        .bind(clamp(q.to))
        .bind(common::limit(q.limit))
        .fetch_all(&store.db.pool)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            store.check_sensor(&q.machine, &q.sensor).await?;
        }
        rows.iter().map(common::point).collect()
    }

    async fn buckets(store: &PgStore, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>> {
        common::check_width(width_ms)?;
        // The same integer arithmetic as on SQLite, so both backends cut buckets identically:
        // floor division, with `%` truncating toward zero for negative timestamps.
        let rows = sqlx::query(
            "SELECT b, avg(value), min(value), max(value), count(*) FROM (\
                 SELECT CASE WHEN ms >= 0 OR ms % $1 = 0 THEN ms - ms % $1 \
                             ELSE ms - ms % $1 - $1 END AS b, value \
                 FROM (SELECT (extract(epoch FROM ts) * 1000)::int8 AS ms, value \
                       FROM readings \
                       WHERE sensor_id = (SELECT s.id FROM sensors s \
                                          JOIN machines m ON m.id = s.machine_id \
                                          WHERE m.key = $2 AND s.key = $3) \
                         AND ts >= timestamptz 'epoch' + $4::int8 * interval '1 millisecond' \
                         AND ts < timestamptz 'epoch' + $5::int8 * interval '1 millisecond' \
                      ) AS r \
             ) AS x \
             GROUP BY b ORDER BY b LIMIT $6",
        )
        .bind(width_ms)
        .bind(q.machine.as_str())
        .bind(q.sensor.as_str())
        .bind(clamp(q.from))
        .bind(clamp(q.to))
        .bind(common::limit(q.limit))
        .fetch_all(&store.db.pool)
        .await
        .map_err(db)?;
        if rows.is_empty() {
            store.check_sensor(&q.machine, &q.sensor).await?;
        }
        rows.iter().map(common::bucket).collect()
    }

    async fn latest(store: &PgStore, machine: &MachineKey) -> StoreResult<Vec<Latest>> {
        // Per sensor, one descent of the primary key to its newest row.
        let rows = sqlx::query(
            "SELECT s.key, (extract(epoch FROM r.ts) * 1000)::int8, r.value \
             FROM machines m \
             JOIN sensors s ON s.machine_id = m.id \
             CROSS JOIN LATERAL (\
                 SELECT ts, value FROM readings WHERE sensor_id = s.id \
                 ORDER BY ts DESC LIMIT 1) AS r \
             WHERE m.key = $1 ORDER BY s.key",
        )
        .bind(machine.as_str())
        .fetch_all(&store.db.pool)
        .await
        .map_err(db)?;
        if rows.is_empty() && !store.machine_exists(machine).await? {
            return Err(common::machine_not_found(machine));
        }
        rows.iter().map(common::latest).collect()
    }

    /// PostgreSQL runs each session on its own core: two concurrent transactions nearly double
    /// the insert rate of one on a two-core server (docs/benchmarks.md); more mostly contend.
    const WRITE_CONCURRENCY: usize = 2;
}
