//! What both backends' telemetry paths share: row decoding (both return the same column shapes,
//! with times as int8 milliseconds), validation done before touching the database, pruning in
//! chunks, and id resolution.

use std::collections::HashMap;
use std::future::Future;

use pdm_core::{Batch, Bucket, MachineKey, Point, SensorKey, StoreError, StoreResult, Timestamp};
use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::cache::SensorIds;
use crate::error::db;

/// Widest bucket accepted, in ms (about 31,700 years): wide enough for "everything in one
/// bucket", narrow enough that aligning any stored timestamp cannot overflow 64 bits.
pub(crate) const MAX_BUCKET_WIDTH_MS: i64 = 1_000_000_000_000_000;

/// How opening a store treats the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) enum Schema {
    /// Apply pending migrations.
    Migrate,
    /// Fail when migrations are pending.
    Check,
    /// Leave it alone (for the migrate command, which migrates next).
    Ignore,
}

impl Schema {
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn from_options(opts: &crate::StoreOptions) -> Self {
        if opts.migrate {
            Schema::Migrate
        } else {
            Schema::Check
        }
    }
}

fn get<'r, R, T>(row: &'r R, i: usize) -> StoreResult<T>
where
    R: Row,
    usize: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(i).map_err(db)
}

/// A key read back from the database.
pub(crate) fn key<K: TryFrom<String, Error = pdm_core::KeyError>>(s: String) -> StoreResult<K> {
    K::try_from(s).map_err(|e| StoreError::Backend(format!("invalid key in database: {e}").into()))
}

/// A point from `ts, value`.
pub(crate) fn point<'r, R>(row: &'r R) -> StoreResult<Point>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Point {
        ts: Timestamp::from_millis(get(row, 0)?),
        value: get(row, 1)?,
    })
}

/// A bucket from `start, avg, min, max, count`.
pub(crate) fn bucket<'r, R>(row: &'r R) -> StoreResult<Bucket>
where
    R: Row,
    usize: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Bucket {
        start: Timestamp::from_millis(get(row, 0)?),
        avg: get(row, 1)?,
        min: get(row, 2)?,
        max: get(row, 3)?,
        count: u64::try_from(get::<R, i64>(row, 4)?).unwrap_or(0),
    })
}

/// A latest value from `sensor_key, ts, value`.
pub(crate) fn latest<'r, R>(row: &'r R) -> StoreResult<pdm_core::Latest>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(pdm_core::Latest {
        sensor: key(get::<R, String>(row, 0)?)?,
        ts: Timestamp::from_millis(get(row, 1)?),
        value: get(row, 2)?,
    })
}

/// Most dead letters one pruning statement deletes: each chunk is its own transaction, so a
/// large pass never holds the writers up for long.
pub(crate) const PRUNE_CHUNK: i64 = 10_000;

/// Deletes a chunk of the oldest dead letters received before `{mark}1` (epoch milliseconds,
/// turned into the column's type by `cutoff`), at most `{mark}2` of them.
pub(crate) fn prune_by_age_sql(cutoff: &str, mark: char) -> String {
    format!(
        "DELETE FROM dead_letters WHERE id IN \
         (SELECT id FROM dead_letters WHERE received_at < {cutoff} ORDER BY id LIMIT {mark}2)"
    )
}

/// Deletes a chunk of the dead letters with an id below `{mark}1`, at most `{mark}2` of them.
pub(crate) fn prune_by_id_sql(mark: char) -> String {
    format!(
        "DELETE FROM dead_letters WHERE id IN \
         (SELECT id FROM dead_letters WHERE id < {mark}1 ORDER BY id LIMIT {mark}2)"
    )
}

/// The id of the oldest dead letter kept when keeping the newest `{mark}1 + 1`.
pub(crate) fn oldest_kept_sql(mark: char) -> String {
    format!("SELECT id FROM dead_letters ORDER BY id DESC LIMIT 1 OFFSET {mark}1")
}

/// The `OFFSET` of [`oldest_kept_sql`] keeping the newest `keep` (at least 1).
pub(crate) fn oldest_kept_offset(keep: u64) -> i64 {
    i64::try_from(keep.saturating_sub(1)).unwrap_or(i64::MAX)
}

/// Runs `chunk` (one pruning statement, returning the rows it deleted, at most [`PRUNE_CHUNK`])
/// until a chunk comes back short; returns the total.
async fn in_chunks<F, Fut>(chunk: F) -> StoreResult<u64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        let n = chunk().await?;
        total += n;
        if n < PRUNE_CHUNK as u64 {
            return Ok(total);
        }
    }
}

/// Which rows a pruning statement deletes: a chunk of those received before a time (epoch
/// milliseconds), or of those with an id below a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PruneBy {
    ReceivedBefore,
    IdBelow,
}

/// [`TelemetryStore::prune_dead_letters`](pdm_core::TelemetryStore::prune_dead_letters) over a
/// backend's two statements: `delete(by, bound)` runs one chunk (at most [`PRUNE_CHUNK`] rows)
/// and returns the rows it deleted; `oldest_kept(offset)` runs [`oldest_kept_sql`]. The count
/// limit is applied even when the age limit failed, so one failing statement does not lift the
/// cap; the first error is returned.
pub(crate) async fn prune_dead_letters<D, DF, K, KF>(
    p: &pdm_core::DeadLetterPrune,
    delete: D,
    oldest_kept: K,
) -> StoreResult<u64>
where
    D: Fn(PruneBy, i64) -> DF,
    DF: std::future::Future<Output = StoreResult<u64>>,
    K: FnOnce(i64) -> KF,
    KF: std::future::Future<Output = StoreResult<Option<i64>>>,
{
    let delete = &delete;
    let chunks = |by: PruneBy, bound: i64| in_chunks(move || delete(by, bound));
    let by_age = match p.received_before {
        Some(t) => chunks(PruneBy::ReceivedBefore, t.as_millis()).await,
        None => Ok(0),
    };
    let by_count = match p.keep_newest {
        None => Ok(0),
        Some(0) => chunks(PruneBy::IdBelow, i64::MAX).await,
        Some(keep) => match oldest_kept(oldest_kept_offset(keep)).await {
            Ok(Some(id)) => chunks(PruneBy::IdBelow, id).await,
            Ok(None) => Ok(0),
            Err(e) => Err(e),
        },
    };
    Ok(by_age? + by_count?)
}

/// Deletes a chunk of the oldest readings of sensor `{mark}1` timed before `{mark}2` (epoch
/// milliseconds, turned into the column's type by `cutoff`), at most `{mark}3` of them: one range
/// of the `(sensor_id, ts)` primary key, bounded above by the chunk's last timestamp. (An
/// `ts IN (subquery)` form made PostgreSQL probe the key once per row, or hash-join the whole
/// sensor, per chunk.)
pub(crate) fn prune_readings_sql(cutoff: &str, mark: char) -> String {
    format!(
        "DELETE FROM readings WHERE sensor_id = {mark}1 AND ts < {cutoff} AND ts <= \
         (SELECT max(ts) FROM (SELECT ts FROM readings WHERE sensor_id = {mark}1 \
          AND ts < {cutoff} ORDER BY ts LIMIT {mark}3) AS chunk)"
    )
}

/// The sensors that have readings timed before `{mark}1` (through `cutoff`), by id: one probe
/// of the primary key per sensor, so that a pass does not issue a delete per sensor.
pub(crate) fn sensors_with_readings_before_sql(cutoff: &str) -> String {
    format!(
        "SELECT id FROM sensors s WHERE EXISTS \
         (SELECT 1 FROM readings r WHERE r.sensor_id = s.id AND r.ts < {cutoff}) ORDER BY id"
    )
}

/// [`TelemetryStore::prune_readings`](pdm_core::TelemetryStore::prune_readings) over a
/// backend's statements: `sensors()` lists the sensors with old readings, `delete(sensor)`
/// deletes one chunk of that sensor's old readings (at most [`PRUNE_CHUNK`]) and returns the
/// rows it deleted. A sensor whose delete fails does not stop the others; the first error is
/// returned once every sensor was tried.
pub(crate) async fn prune_readings<S, SF, D, DF>(sensors: S, delete: D) -> StoreResult<u64>
where
    S: FnOnce() -> SF,
    SF: std::future::Future<Output = StoreResult<Vec<i64>>>,
    D: Fn(i64) -> DF,
    DF: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    let mut first_error = None;
    for sensor in sensors().await? {
        match in_chunks(|| delete(sensor)).await {
            Ok(n) => total += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        None => Ok(total),
        Some(e) => Err(e),
    }
}

/// Count as returned by SQL (`int8`) to the trait's `u64`.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Limits are `u32` in the trait and `int8` in SQL.
/// `Invalid` unless `t` is a time the backend `B` stores exactly (named `name` in the
/// message); its milliseconds.
pub(crate) fn check_time<B: crate::sql::Backend>(
    name: &str,
    t: pdm_core::Timestamp,
) -> pdm_core::StoreResult<i64> {
    let ms = t.as_millis();
    if B::clamp_millis(ms) == ms {
        Ok(ms)
    } else {
        Err(pdm_core::StoreError::Invalid(format!(
            "{name} ({ms} ms) is outside the range this database can store"
        )))
    }
}

pub(crate) fn limit(n: u32) -> i64 {
    i64::from(n)
}

/// Rejects readings no backend could store faithfully, naming the first one.
pub(crate) fn check_readings(batch: &Batch, ts_range: Option<(i64, i64)>) -> StoreResult<()> {
    for r in &batch.readings {
        if !r.value.is_finite() {
            return Err(StoreError::Invalid(format!(
                "reading of sensor '{}' of machine '{}' at {} ms has the non-finite value {}",
                r.sensor,
                r.machine,
                r.ts.as_millis(),
                r.value
            )));
        }
        if let Some((lo, hi)) = ts_range {
            let ms = r.ts.as_millis();
            if ms < lo || ms >= hi {
                return Err(StoreError::Invalid(format!(
                    "reading of sensor '{}' of machine '{}' has timestamp {ms} ms, outside the \
                     range this database can store ({lo} to {hi} ms)",
                    r.sensor, r.machine
                )));
            }
        }
    }
    Ok(())
}

/// Checks a bucket width.
pub(crate) fn check_width(width_ms: i64) -> StoreResult<()> {
    if width_ms <= 0 || width_ms > MAX_BUCKET_WIDTH_MS {
        return Err(StoreError::Invalid(format!(
            "bucket width must be between 1 and {MAX_BUCKET_WIDTH_MS} ms, got {width_ms}"
        )));
    }
    Ok(())
}

/// Checks the plausible range of a new sensor.
pub(crate) fn check_sensor_range(min: Option<f64>, max: Option<f64>) -> StoreResult<()> {
    pdm_core::model::check_range(min, max).map_err(StoreError::Invalid)
}

/// The error for a missing machine.
pub(crate) fn machine_not_found(key: &MachineKey) -> StoreError {
    StoreError::NotFound(format!("machine '{key}'"))
}

/// The error for a missing sensor.
pub(crate) fn sensor_not_found(machine: &MachineKey, key: &SensorKey) -> StoreError {
    StoreError::NotFound(format!("sensor '{key}' of machine '{machine}'"))
}

/// The error for a second write that still hits a deleted sensor.
pub(crate) fn sensor_deleted_during_write() -> StoreError {
    StoreError::Invalid(
        "a sensor named by the batch was deleted while the batch was being written".into(),
    )
}

/// Where the sensor ids of a machine come from on a cache miss.
pub(crate) trait LoadSensorIds: Sync {
    /// Every sensor of `machine` with its id; empty when the machine does not exist.
    fn load_sensor_ids(
        &self,
        machine: &MachineKey,
    ) -> impl Future<Output = StoreResult<HashMap<SensorKey, i64>>> + Send;
}

/// The sensor id of every reading of the batch, loading machines missing from the cache.
pub(crate) async fn resolve_ids<L: LoadSensorIds>(
    loader: &L,
    cache: &SensorIds,
    batch: &Batch,
) -> StoreResult<Vec<i64>> {
    match cache.resolve(&batch.readings) {
        Ok(ids) => Ok(ids),
        Err(missing) => {
            for machine in &missing.machines {
                let sensors = loader.load_sensor_ids(machine).await?;
                // Unknown machines stay out of the cache, so that requests naming arbitrary
                // machines cannot grow it.
                if !sensors.is_empty() {
                    cache.put_machine(machine.clone(), sensors);
                }
            }
            cache
                .resolve(&batch.readings)
                .map_err(|m| m.not_registered())
        }
    }
}
