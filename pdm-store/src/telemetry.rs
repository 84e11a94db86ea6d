//! [`TelemetryStore`] on both backends: the parts that do not depend on the dialect (counting,
//! pruning, ping) are written here once, like the repositories; the hot path (writes, range
//! queries, latest values) is each backend's [`HotPath`], in `sqlite.rs` and `postgres.rs`,
//! where the dialect matters.

use std::future::Future;

use async_trait::async_trait;
use pdm_core::{
    Batch, Bucket, DeadLetterPrune, Latest, MachineKey, MachineRangeQuery, Point, RangeQuery,
    Reading, SensorKey, StoreResult, TelemetryStore, Timestamp, WriteOutcome,
};

use crate::common::{self, PruneBy};
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, SqlStore};

/// The telemetry hot path of a backend, in its own dialect.
pub trait HotPath: Backend + Sized {
    /// How many writes the store can usefully run at once
    /// ([`TelemetryStore::write_concurrency`]).
    const WRITE_CONCURRENCY: usize;

    /// [`TelemetryStore::write`].
    fn write(
        store: &SqlStore<Self>,
        batch: &Batch,
    ) -> impl Future<Output = StoreResult<WriteOutcome>> + Send;

    /// [`TelemetryStore::raw`].
    fn raw(
        store: &SqlStore<Self>,
        q: &RangeQuery,
    ) -> impl Future<Output = StoreResult<Vec<Point>>> + Send;

    /// [`TelemetryStore::buckets`].
    fn buckets(
        store: &SqlStore<Self>,
        q: &RangeQuery,
        width_ms: i64,
    ) -> impl Future<Output = StoreResult<Vec<Bucket>>> + Send;

    /// [`TelemetryStore::latest`].
    fn latest(
        store: &SqlStore<Self>,
        machine: &MachineKey,
    ) -> impl Future<Output = StoreResult<Vec<Latest>>> + Send;
}

#[async_trait]
impl<B: HotPath> TelemetryStore for SqlStore<B> {
    async fn write(&self, batch: &Batch) -> StoreResult<WriteOutcome> {
        B::write(self, batch).await
    }

    async fn raw(&self, q: &RangeQuery) -> StoreResult<Vec<Point>> {
        B::raw(self, q).await
    }

    async fn buckets(&self, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>> {
        B::buckets(self, q, width_ms).await
    }

    async fn machine_readings(&self, q: &MachineRangeQuery) -> StoreResult<Vec<Reading>> {
        self.machine_readings_of(q).await
    }

    async fn latest(&self, machine: &MachineKey) -> StoreResult<Vec<Latest>> {
        B::latest(self, machine).await
    }

    async fn count_readings(&self, machine: &MachineKey) -> StoreResult<u64> {
        self.count_readings_of(machine).await
    }

    async fn prune_dead_letters(&self, p: &DeadLetterPrune) -> StoreResult<u64> {
        self.prune_dead_letters_by(p).await
    }

    async fn prune_readings(&self, before: Timestamp) -> StoreResult<u64> {
        self.prune_readings_before(before).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.ping_reader().await
    }

    fn write_concurrency(&self) -> usize {
        B::WRITE_CONCURRENCY
    }
}

/// Most sensors one statement of [`SqlStore::machine_readings_of`] reads: one subquery each,
/// below SQLite's limit of 500 terms of a compound `SELECT`.
const SENSORS_PER_STATEMENT: usize = 100;

impl<B: Backend> SqlStore<B> {
    /// [`TelemetryStore::machine_readings`](pdm_core::TelemetryStore::machine_readings), written
    /// once: the machine's sensors first, then per sensor one range of the `(sensor_id, ts)`
    /// primary key of at most `limit` readings (`UNION ALL` of one subquery per sensor, so the
    /// work per page is bounded by `limit` per sensor however long the range is), merged by
    /// timestamp and then sensor key. A machine with more than [`SENSORS_PER_STATEMENT`] sensors
    /// takes one statement per group of sensors, merged here.
    pub(crate) async fn machine_readings_of(
        &self,
        q: &MachineRangeQuery,
    ) -> StoreResult<Vec<Reading>> {
        let rows = self
            .reader()
            .fetch_all(
                "SELECT s.id, s.key FROM sensors s JOIN machines m ON m.id = s.machine_id \
                 WHERE m.key = $1",
                &[Arg::Text(q.machine.as_str())],
            )
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return if self.machine_exists(&q.machine).await? {
                Ok(Vec::new())
            } else {
                Err(common::machine_not_found(&q.machine))
            };
        }
        let mut sensors: Vec<(SensorKey, i64)> = rows
            .iter()
            .map(|r| Ok((common::key(r.text(1)?)?, r.int(0)?)))
            .collect::<StoreResult<_>>()?;
        // Bytewise, as keys order everywhere; the position is the tie-break within an instant.
        sensors.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
        let mut out: Vec<(i64, usize, f64)> = Vec::new();
        for (group, chunk) in sensors.chunks(SENSORS_PER_STATEMENT).enumerate() {
            let first = group * SENSORS_PER_STATEMENT;
            let mut sql = String::from("SELECT o, ms, value FROM (");
            let mut args = vec![
                Arg::Int(B::clamp_millis(q.from.as_millis())),
                Arg::Int(B::clamp_millis(q.to.as_millis())),
                Arg::Int(common::limit(q.limit)),
            ];
            for (i, (_, id)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push_str(" UNION ALL ");
                }
                args.push(Arg::Int(*id));
                sql.push_str(&format!(
                    "SELECT * FROM (SELECT CAST({} AS BIGINT) AS o, {} AS ms, value \
                     FROM readings WHERE sensor_id = ${} AND ts >= {} AND ts < {} \
                     ORDER BY ts LIMIT $3) AS s{i}",
                    first + i,
                    B::millis("ts"),
                    args.len(),
                    B::at_millis("$1"),
                    B::at_millis("$2"),
                ));
            }
            sql.push_str(") AS u ORDER BY ms, o LIMIT $3");
            let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
            for r in &rows {
                let o = usize::try_from(r.int(0)?).map_err(|_| {
                    pdm_core::StoreError::Backend("negative sensor position".into())
                })?;
                out.push((r.int(1)?, o, r.real(2)?));
            }
        }
        if sensors.len() > SENSORS_PER_STATEMENT {
            out.sort_unstable_by_key(|a| (a.0, a.1));
            out.truncate(limit);
        }
        Ok(out
            .into_iter()
            .map(|(ms, o, value)| Reading {
                machine: q.machine.clone(),
                sensor: sensors[o].0.clone(),
                ts: Timestamp::from_millis(ms),
                value,
            })
            .collect())
    }

    /// [`TelemetryStore::count_readings`](pdm_core::TelemetryStore::count_readings).
    pub(crate) async fn count_readings_of(&self, machine: &MachineKey) -> StoreResult<u64> {
        if !self.machine_exists(machine).await? {
            return Err(common::machine_not_found(machine));
        }
        let row = self
            .reader()
            .fetch_optional(
                "SELECT count(*) FROM readings WHERE sensor_id IN (\
                     SELECT s.id FROM sensors s JOIN machines m ON m.id = s.machine_id \
                     WHERE m.key = $1)",
                &[Arg::Text(machine.as_str())],
            )
            .await
            .map_err(db)?;
        Ok(common::count(
            row.map(|r| r.int(0)).transpose()?.unwrap_or(0),
        ))
    }

    /// [`TelemetryStore::prune_dead_letters`](pdm_core::TelemetryStore::prune_dead_letters):
    /// deletes on the writer, finds the oldest kept on the reader.
    pub(crate) async fn prune_dead_letters_by(&self, p: &DeadLetterPrune) -> StoreResult<u64> {
        let by_age = common::prune_by_age_sql(&B::at_millis("$1"), '$');
        let by_id = common::prune_by_id_sql('$');
        let delete = |by: PruneBy, bound: i64| {
            let (sql, bound) = match by {
                PruneBy::ReceivedBefore => (&by_age, B::clamp_millis(bound)),
                PruneBy::IdBelow => (&by_id, bound),
            };
            async move {
                self.writer()
                    .execute(sql, &[Arg::Int(bound), Arg::Int(common::PRUNE_CHUNK)])
                    .await
                    .map_err(db)
            }
        };
        let oldest_kept = |offset: i64| async move {
            let row = self
                .reader()
                .fetch_optional(&common::oldest_kept_sql('$'), &[Arg::Int(offset)])
                .await
                .map_err(db)?;
            row.map(|r| r.int(0)).transpose()
        };
        common::prune_dead_letters(p, delete, oldest_kept).await
    }

    /// [`TelemetryStore::prune_readings`](pdm_core::TelemetryStore::prune_readings): lists the
    /// sensors with old readings on the reader, deletes on the writer.
    pub(crate) async fn prune_readings_before(&self, before: Timestamp) -> StoreResult<u64> {
        let sql = common::prune_readings_sql(&B::at_millis("$2"), '$');
        let cutoff = B::clamp_millis(before.as_millis());
        let sensors = || async {
            let rows = self
                .reader()
                .fetch_all(
                    &common::sensors_with_readings_before_sql(&B::at_millis("$1")),
                    &[Arg::Int(cutoff)],
                )
                .await
                .map_err(db)?;
            rows.iter().map(|r| r.int(0)).collect()
        };
        let delete = |sensor: i64| {
            let sql = &sql;
            async move {
                self.writer()
                    .execute(
                        sql,
                        &[
                            Arg::Int(sensor),
                            Arg::Int(cutoff),
                            Arg::Int(common::PRUNE_CHUNK),
                        ],
                    )
                    .await
                    .map_err(db)
            }
        };
        common::prune_readings(sensors, delete).await
    }

    /// [`TelemetryStore::ping`](pdm_core::TelemetryStore::ping), on the reader.
    pub(crate) async fn ping_reader(&self) -> StoreResult<()> {
        self.reader().execute("SELECT 1", &[]).await.map_err(db)?;
        Ok(())
    }
}
