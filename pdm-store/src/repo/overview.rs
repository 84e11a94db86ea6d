//! [`OverviewStore`] on both backends: grouped counts, and each machine's latest prediction by
//! its primary key (`machine_id, ts`), one index lookup per machine.

use async_trait::async_trait;
use pdm_core::store::{LatestPrediction, OverviewCounts, OverviewStore};
use pdm_core::{StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, On, SqlStore};

fn count(v: i64) -> StoreResult<u64> {
    u64::try_from(v).map_err(|e| StoreError::Backend(e.to_string().into()))
}

/// The one count `sql` answers.
async fn scalar<B: Backend>(
    on: &mut On<'_, B::Db>,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<u64> {
    let row = on
        .fetch_optional(sql, args)
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::Backend("COUNT returned no row".into()))?;
    count(row.int(0)?)
}

#[async_trait]
impl<B: Backend> OverviewStore for SqlStore<B> {
    async fn overview_counts(
        &self,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<OverviewCounts> {
        let now_ms = common::check_time::<B>("overview time", now)?;
        let since_ms = common::check_time::<B>("dead letters since", since)?;
        let mut on = self.reader();
        let machines = scalar::<B>(
            &mut on,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM machines",
            &[],
        )
        .await?;
        let mut open_alarms = Vec::new();
        for r in on
            .fetch_all(
                "SELECT severity, state, CAST(COUNT(*) AS BIGINT) FROM alarms \
                 WHERE closed_at IS NULL GROUP BY severity, state ORDER BY severity, state",
                &[],
            )
            .await
            .map_err(db)?
        {
            open_alarms.push((r.text(0)?, r.text(1)?, count(r.int(2)?)?));
        }
        let mut work_orders = Vec::new();
        for r in on
            .fetch_all(
                "SELECT status, CAST(COUNT(*) AS BIGINT) FROM work_orders GROUP BY status \
                 ORDER BY status",
                &[],
            )
            .await
            .map_err(db)?
        {
            work_orders.push((r.text(0)?, count(r.int(1)?)?));
        }
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM work_orders WHERE due_at IS NOT NULL \
             AND due_at < {} AND status NOT IN ('resolved', 'closed')",
            B::at_millis("$1")
        );
        let overdue = scalar::<B>(&mut on, &sql, &[Arg::Int(now_ms)]).await?;
        let sql = format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM dead_letters WHERE received_at >= {}",
            B::at_millis("$1")
        );
        let dead = scalar::<B>(&mut on, &sql, &[Arg::Int(since_ms)]).await?;
        Ok(OverviewCounts {
            machines,
            open_alarms,
            work_orders,
            overdue_work_orders: overdue,
            dead_letters_since: dead,
        })
    }

    async fn latest_predictions(&self) -> StoreResult<Vec<LatestPrediction>> {
        let sql = format!(
            "SELECT m.key, {}, p.score, p.threshold, \
             CAST(CASE WHEN p.anomalous THEN 1 ELSE 0 END AS BIGINT), p.health, p.rul_s \
             FROM machines m JOIN predictions p ON p.machine_id = m.id \
             AND p.ts = (SELECT MAX(q.ts) FROM predictions q WHERE q.machine_id = m.id) \
             ORDER BY m.key",
            B::millis("p.ts")
        );
        let rows = self.reader().fetch_all(&sql, &[]).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(LatestPrediction {
                    machine: common::key(r.text(0)?)?,
                    ts: Timestamp::from_millis(r.int(1)?),
                    score: r.real(2)?,
                    threshold: r.real(3)?,
                    anomalous: r.int(4)? != 0,
                    health: r.opt_real(5)?,
                    rul_s: r.opt_real(6)?,
                })
            })
            .collect()
    }
}
