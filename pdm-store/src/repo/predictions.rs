//! [`PredictionStore`] on both backends.
//!
//! A prediction is unique by machine and instant (the primary key `(machine_id, ts)`), so
//! writes are `INSERT ... ON CONFLICT DO NOTHING`: the first prediction of an instant stays.
//! Writes go in multi-row statements of power-of-two sizes (like the SQLite readings path), so
//! a handful of statement texts cover every batch and stay in the prepared-statement cache.
//! Contributions are stored as a JSON array in a `TEXT` column.
//!
//! Reads of an unknown machine are `NotFound`, like readings; [`last_prediction`] of an
//! unknown machine is `None` (the live path asks it for machines it just read, and a machine
//! deleted meanwhile has nothing to resume).
//!
//! [`last_prediction`]: PredictionStore::last_prediction

use std::collections::HashMap;

use async_trait::async_trait;
use pdm_core::{
    Contribution, MachineKey, ModelId, Prediction, PredictionBucket, PredictionQuery,
    PredictionStore, StoreError, StoreResult, Timestamp,
};

use crate::common;
use crate::error::{db, is_foreign_key_violation};
use crate::sql::{end_tx, Arg, Backend, Cols, On, SqlStore};

/// Most predictions per `INSERT`: 9 parameters a row stay far below the limits of both
/// databases (32766 on SQLite, 65535 on PostgreSQL).
const MAX_ROWS_PER_INSERT: usize = 256;

/// Parameters of one row of [`insert_sql`].
const PARAMS_PER_ROW: usize = 9;

/// `INSERT` of `n` predictions.
fn insert_sql<B: Backend>(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO predictions (machine_id, ts, model_id, score, threshold, anomalous, \
         health, rul_s, contributions) VALUES ",
    );
    for i in 0..n {
        let p = i * PARAMS_PER_ROW;
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, {}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            B::at_millis(&format!("${}", p + 2)),
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9,
        ));
    }
    sql.push_str(" ON CONFLICT DO NOTHING");
    sql
}

/// The size of the next chunk when `remaining` (at least 1) predictions are left: the largest
/// power of two not above `remaining`, [`MAX_ROWS_PER_INSERT`] nor `most` (the backend's
/// [`Backend::BIND_BUDGET`] in rows).
fn next_chunk(remaining: usize, most: usize) -> usize {
    1 << remaining
        .clamp(1, MAX_ROWS_PER_INSERT.min(most).max(1))
        .ilog2()
}

/// The columns [`prediction`] decodes, of `predictions`.
fn columns<B: Backend>() -> String {
    format!(
        "{}, model_id, score, threshold, CAST(CASE WHEN anomalous THEN 1 ELSE 0 END AS BIGINT), \
         health, rul_s, contributions",
        B::millis("ts")
    )
}

/// A prediction of `machine` from [`columns`].
fn prediction(row: &impl Cols, machine: &MachineKey) -> StoreResult<Prediction> {
    let contributions: Vec<Contribution> = serde_json::from_str(&row.text(7)?).map_err(|e| {
        StoreError::Backend(format!("invalid contributions in database: {e}").into())
    })?;
    Ok(Prediction {
        machine: machine.clone(),
        ts: Timestamp::from_millis(row.int(0)?),
        model: ModelId(row.int(1)?),
        score: row.real(2)?,
        threshold: row.real(3)?,
        anomalous: row.int(4)? != 0,
        contributions,
        health: row.opt_real(5)?,
        rul_s: row.opt_real(6)?,
    })
}

/// A bucket from `start, count, anomalous, avg, max, min health, min rul`.
fn bucket(row: &impl Cols) -> StoreResult<PredictionBucket> {
    Ok(PredictionBucket {
        start: Timestamp::from_millis(row.int(0)?),
        count: common::count(row.int(1)?),
        anomalous: common::count(row.int(2)?),
        avg_score: row.real(3)?,
        max_score: row.real(4)?,
        min_health: row.opt_real(5)?,
        min_rul_s: row.opt_real(6)?,
    })
}

/// Rejects a prediction no backend could store faithfully, naming it.
fn check<B: Backend>(p: &Prediction) -> StoreResult<()> {
    let ms = p.ts.as_millis();
    let what = || format!("prediction of machine '{}' at {ms} ms", p.machine);
    if B::clamp_millis(ms) != ms {
        return Err(StoreError::Invalid(format!(
            "{} has a timestamp outside the range this database can store",
            what()
        )));
    }
    let numbers = [
        ("score", Some(p.score)),
        ("threshold", Some(p.threshold)),
        ("health", p.health),
        ("rul_s", p.rul_s),
    ];
    for (name, v) in numbers {
        if let Some(v) = v.filter(|v| !v.is_finite()) {
            return Err(StoreError::Invalid(format!(
                "{} has the non-finite {name} {v}",
                what()
            )));
        }
    }
    if let Some(c) = p.contributions.iter().find(|c| !c.share.is_finite()) {
        return Err(StoreError::Invalid(format!(
            "{} has the non-finite share {} for sensor '{}'",
            what(),
            c.share,
            c.sensor
        )));
    }
    Ok(())
}

/// `machine_id = <the id of machine $n>`.
fn of_machine(n: usize) -> String {
    format!("machine_id = (SELECT id FROM machines WHERE key = ${n})")
}

impl<B: Backend> SqlStore<B> {
    /// Writes `predictions` on `on` (a write transaction); the number inserted.
    async fn write_predictions_on(
        on: &mut On<'_, B::Db>,
        predictions: &[Prediction],
        contributions: &[String],
    ) -> StoreResult<u64> {
        let mut machines: HashMap<&MachineKey, i64> = HashMap::new();
        for p in predictions {
            if machines.contains_key(&p.machine) {
                continue;
            }
            let id = on
                .fetch_optional(
                    "SELECT id FROM machines WHERE key = $1",
                    &[Arg::Text(p.machine.as_str())],
                )
                .await
                .map_err(db)?
                .ok_or_else(|| common::machine_not_found(&p.machine))?
                .int(0)?;
            machines.insert(&p.machine, id);
        }
        let mut inserted = 0;
        let mut start = 0;
        while start < predictions.len() {
            let n = next_chunk(predictions.len() - start, B::BIND_BUDGET / PARAMS_PER_ROW);
            let rows = &predictions[start..start + n];
            let mut args = Vec::with_capacity(n * PARAMS_PER_ROW);
            for (p, json) in rows.iter().zip(&contributions[start..start + n]) {
                args.extend([
                    Arg::Int(machines[&p.machine]),
                    Arg::Int(p.ts.as_millis()),
                    Arg::Int(p.model.0),
                    Arg::OptReal(Some(p.score)),
                    Arg::OptReal(Some(p.threshold)),
                    Arg::Flag(p.anomalous),
                    Arg::OptReal(p.health),
                    Arg::OptReal(p.rul_s),
                    Arg::Text(json),
                ]);
            }
            inserted += on.execute(&insert_sql::<B>(n), &args).await.map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::NotFound("a model (or machine) named by the predictions".into())
                } else {
                    db(e)
                }
            })?;
            start += n;
        }
        Ok(inserted)
    }

    /// `NotFound` unless `machine` is registered.
    async fn check_machine(&self, machine: &MachineKey) -> StoreResult<()> {
        if self.machine_exists(machine).await? {
            Ok(())
        } else {
            Err(common::machine_not_found(machine))
        }
    }
}

#[async_trait]
impl<B: Backend> PredictionStore for SqlStore<B> {
    async fn write_predictions(&self, predictions: &[Prediction]) -> StoreResult<u64> {
        if predictions.is_empty() {
            return Ok(0);
        }
        let mut contributions = Vec::with_capacity(predictions.len());
        for p in predictions {
            check::<B>(p)?;
            contributions.push(serde_json::to_string(&p.contributions).map_err(|e| {
                StoreError::Invalid(format!("contributions cannot be stored: {e}"))
            })?);
        }
        if let Some(done) = self
            .db
            .insert_predictions(predictions, &contributions)
            .await
        {
            return done;
        }
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let inserted =
            Self::write_predictions_on(&mut On::Conn(&mut *tx), predictions, &contributions).await;
        end_tx(tx, inserted).await
    }

    async fn predictions(&self, q: &PredictionQuery) -> StoreResult<Vec<Prediction>> {
        let sql = format!(
            "SELECT {} FROM predictions WHERE {} AND ts >= {} AND ts < {} ORDER BY ts LIMIT $4",
            columns::<B>(),
            of_machine(1),
            B::at_millis("$2"),
            B::at_millis("$3"),
        );
        let args = [
            Arg::Text(q.machine.as_str()),
            Arg::Int(B::clamp_millis(q.from.as_millis())),
            Arg::Int(B::clamp_millis(q.to.as_millis())),
            Arg::Int(common::limit(q.limit)),
        ];
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        if rows.is_empty() {
            self.check_machine(&q.machine).await?;
        }
        rows.iter().map(|r| prediction(r, &q.machine)).collect()
    }

    async fn prediction_buckets(
        &self,
        q: &PredictionQuery,
        width_ms: i64,
    ) -> StoreResult<Vec<PredictionBucket>> {
        common::check_width(width_ms)?;
        // The bucket arithmetic of the readings (floor division: `%` truncates toward zero,
        // so negative timestamps not on a boundary step one bucket further down).
        let sql = format!(
            "SELECT b, count(*), sum(a), avg(score), max(score), min(health), min(rul_s) FROM (\
                 SELECT CASE WHEN ms >= 0 OR ms % $1 = 0 THEN ms - ms % $1 \
                             ELSE ms - ms % $1 - $1 END AS b, \
                        CASE WHEN anomalous THEN 1 ELSE 0 END AS a, score, health, rul_s \
                 FROM (SELECT {} AS ms, anomalous, score, health, rul_s FROM predictions \
                       WHERE {} AND ts >= {} AND ts < {}) AS p \
             ) AS x GROUP BY b ORDER BY b LIMIT $5",
            B::millis("ts"),
            of_machine(2),
            B::at_millis("$3"),
            B::at_millis("$4"),
        );
        let args = [
            Arg::Int(width_ms),
            Arg::Text(q.machine.as_str()),
            Arg::Int(B::clamp_millis(q.from.as_millis())),
            Arg::Int(B::clamp_millis(q.to.as_millis())),
            Arg::Int(common::limit(q.limit)),
        ];
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        if rows.is_empty() {
            self.check_machine(&q.machine).await?;
        }
        rows.iter().map(bucket).collect()
    }

    async fn last_prediction(&self, machine: &MachineKey) -> StoreResult<Option<Timestamp>> {
        let sql = format!(
            "SELECT {} FROM predictions WHERE {} ORDER BY ts DESC LIMIT 1",
            B::millis("ts"),
            of_machine(1)
        );
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(machine.as_str())])
            .await
            .map_err(db)?;
        Ok(row
            .map(|r| r.int(0))
            .transpose()?
            .map(Timestamp::from_millis))
    }

    async fn prune_predictions(&self, before: Timestamp) -> StoreResult<u64> {
        let cutoff = B::clamp_millis(before.as_millis());
        let machines = || async {
            let rows = self
                .reader()
                .fetch_all(
                    &format!(
                        "SELECT id FROM machines m WHERE EXISTS (SELECT 1 FROM predictions p \
                         WHERE p.machine_id = m.id AND p.ts < {}) ORDER BY id",
                        B::at_millis("$1")
                    ),
                    &[Arg::Int(cutoff)],
                )
                .await
                .map_err(db)?;
            rows.iter().map(|r| r.int(0)).collect()
        };
        // One range of the primary key per chunk, bounded above by the chunk's last instant
        // (the statement of the readings, `common::prune_readings_sql`).
        let at = B::at_millis("$2");
        let sql = format!(
            "DELETE FROM predictions WHERE machine_id = $1 AND ts < {at} AND ts <= \
             (SELECT max(ts) FROM (SELECT ts FROM predictions WHERE machine_id = $1 \
              AND ts < {at} ORDER BY ts LIMIT $3) AS chunk)"
        );
        let delete = |machine: i64| {
            let sql = &sql;
            async move {
                self.writer()
                    .execute(
                        sql,
                        &[
                            Arg::Int(machine),
                            Arg::Int(cutoff),
                            Arg::Int(common::PRUNE_CHUNK),
                        ],
                    )
                    .await
                    .map_err(db)
            }
        };
        common::prune_readings(machines, delete).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        assert_eq!(next_chunk(1, 256), 1);
        assert_eq!(next_chunk(3, 256), 2);
        assert_eq!(next_chunk(10_000, 10_000), MAX_ROWS_PER_INSERT);
        // SQLite's budget of 300 parameters: 33 rows, so chunks of 32.
        assert_eq!(next_chunk(10_000, 300 / PARAMS_PER_ROW), 32);
        const { assert!(MAX_ROWS_PER_INSERT * PARAMS_PER_ROW < 32_766) };
    }
}
