//! The parts of [`TelemetryStore`](pdm_core::TelemetryStore) that do not depend on the dialect
//! (counting, pruning, ping), written once for both backends like the repositories. The hot
//! path (writes, range queries, latest values) stays per backend, in `sqlite.rs` and
//! `postgres.rs`, where the dialect matters.

use pdm_core::{DeadLetterPrune, MachineKey, StoreResult, Timestamp};

use crate::common::{self, PruneBy};
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, SqlStore};

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
