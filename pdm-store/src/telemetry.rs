//! [`TelemetryStore`] on both backends: the parts that do not depend on the dialect (counting,
//! pruning, ping) are written here once, like the repositories; the hot path (writes, range
//! queries, latest values) is each backend's [`HotPath`], in `sqlite.rs` and `postgres.rs`,
//! where the dialect matters.

use std::future::Future;

use async_trait::async_trait;
use pdm_core::{
    Batch, Bucket, DeadLetterPrune, Latest, MachineKey, Point, RangeQuery, StoreResult,
    TelemetryStore, Timestamp, WriteOutcome,
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

impl<B: Backend> SqlStore<B> {
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
