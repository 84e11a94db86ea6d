//! [`JobStore`] on both backends.
//!
//! Every transition is one `UPDATE ... WHERE id = $1 AND status IN (...)`: the database
//! decides whether the job was still in a state that allows it, so racing workers, a cancel
//! and a finish cannot both win. When no row changed, a second read tells an unknown job
//! (`NotFound`) from one in the wrong state (`Conflict`).

use async_trait::async_trait;
use pdm_core::{
    Job, JobId, JobOutcome, JobQuery, JobStatus, JobStore, NewJob, StoreError, StoreResult,
    Timestamp,
};

use crate::common;
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, ListQuery, On, SqlStore};

/// The columns [`job`] decodes.
fn columns<B: Backend>() -> String {
    format!(
        "id, kind, machine, params, status, progress, message, result, worker, {}, {}, {}",
        B::millis("created_at"),
        B::millis("started_at"),
        B::millis("finished_at"),
    )
}

/// A job from [`columns`].
fn job(row: &impl Cols) -> StoreResult<Job> {
    let id = JobId(row.int(0)?);
    let status = row.text(4)?;
    Ok(Job {
        id,
        kind: row.text(1)?,
        machine: row.opt_text(2)?.map(common::key).transpose()?,
        params: row.text(3)?,
        status: JobStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!("job {id} has unknown status '{status}'").into())
        })?,
        progress: row.real(5)?,
        message: row.opt_text(6)?,
        result: row.opt_text(7)?,
        worker: row.opt_text(8)?,
        created_at: Timestamp::from_millis(row.int(9)?),
        started_at: row.opt_int(10)?.map(Timestamp::from_millis),
        finished_at: row.opt_int(11)?.map(Timestamp::from_millis),
    })
}

pub(crate) fn job_not_found(id: JobId) -> StoreError {
    StoreError::NotFound(format!("job {id}"))
}

impl<B: Backend> SqlStore<B> {
    /// Runs a transition of job `$1` (`sql` ends in `RETURNING` the [`columns`]); when it
    /// changed nothing, `NotFound` or a `Conflict` saying that the job, in its current status,
    /// cannot `what`.
    async fn transition(
        &self,
        id: JobId,
        sql: &str,
        args: &[Arg<'_>],
        what: &str,
    ) -> StoreResult<Job> {
        if let Some(row) = self.writer().fetch_optional(sql, args).await.map_err(db)? {
            return job(&row);
        }
        Err(self.unchanged(id, what).await)
    }

    /// Why a transition of job `id` changed nothing: `NotFound`, or a `Conflict` saying that
    /// the job, in its current status, cannot `what`.
    async fn unchanged(&self, id: JobId, what: &str) -> StoreError {
        // On the writer: the state that made the update do nothing, not an older snapshot.
        let sql = format!("SELECT {} FROM jobs WHERE id = $1", columns::<B>());
        let row = match self
            .writer()
            .fetch_optional(&sql, &[Arg::Int(id.0)])
            .await
            .map_err(db)
        {
            Ok(Some(row)) => row,
            Ok(None) => return job_not_found(id),
            Err(e) => return e,
        };
        match job(&row) {
            Ok(current) => {
                StoreError::Conflict(format!("job {id} is {}: cannot {what}", current.status))
            }
            Err(e) => e,
        }
    }
}

/// Finishes the running job `id` with `outcome` at `at`, on `on`; `None` when it changed
/// nothing (the job is unknown or not running).
pub(crate) async fn finish_on<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: JobId,
    outcome: &JobOutcome,
    at: Timestamp,
) -> StoreResult<Option<Job>> {
    let (status, progress, message, result) = match outcome {
        JobOutcome::Succeeded { result, message } => (
            JobStatus::Succeeded,
            Some(1.0),
            message.as_deref(),
            Some(result.as_str()),
        ),
        JobOutcome::Failed { message } => (JobStatus::Failed, None, Some(message.as_str()), None),
    };
    let sql = format!(
        "UPDATE jobs SET status = $2, progress = coalesce($3, progress), \
             message = coalesce($4, message), result = $5, finished_at = {} \
         WHERE id = $1 AND status = 'running' RETURNING {}",
        B::at_millis("$6"),
        columns::<B>()
    );
    let args = [
        Arg::Int(id.0),
        Arg::Text(status.as_str()),
        Arg::OptReal(progress),
        Arg::OptText(message),
        Arg::OptText(result),
        Arg::Int(B::clamp_millis(at.as_millis())),
    ];
    let row = on.fetch_optional(&sql, &args).await.map_err(db)?;
    row.as_ref().map(job).transpose()
}

#[async_trait]
impl<B: Backend> JobStore for SqlStore<B> {
    async fn create_job(&self, j: &NewJob) -> StoreResult<Job> {
        if j.kind.trim().is_empty() {
            return Err(StoreError::Invalid("job kind is empty".into()));
        }
        let sql = format!(
            "INSERT INTO jobs (kind, machine, params) VALUES ($1, $2, $3) RETURNING {}",
            columns::<B>()
        );
        let args = [
            Arg::Text(&j.kind),
            Arg::OptText(j.machine.as_ref().map(|m| m.as_str())),
            Arg::Text(&j.params),
        ];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        job(&row)
    }

    async fn get_job(&self, id: JobId) -> StoreResult<Job> {
        let sql = format!("SELECT {} FROM jobs WHERE id = $1", columns::<B>());
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Int(id.0)])
            .await
            .map_err(db)?
            .ok_or_else(|| job_not_found(id))?;
        job(&row)
    }

    async fn list_jobs(&self, q: &JobQuery) -> StoreResult<Vec<Job>> {
        let (sql, args) = ListQuery::new(format!("SELECT {} FROM jobs", columns::<B>()))
            .filter("status =", q.status.map(|v| Arg::Text(v.as_str())))
            .filter("kind =", q.kind.as_deref().map(Arg::Text))
            .filter(
                "machine =",
                q.machine.as_ref().map(|m| Arg::Text(m.as_str())),
            )
            .filter("id <", q.before.map(|b| Arg::Int(b.0)))
            .newest_first("id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter().map(job).collect()
    }

    async fn claim_next_job(&self, worker: &str, at: Timestamp) -> StoreResult<Option<Job>> {
        // PostgreSQL: concurrent claimers skip the row another one has locked and take the
        // next; the outer condition rechecks the status. SQLite: one writer at a time.
        let sql = format!(
            "UPDATE jobs SET status = 'running', worker = $1, started_at = {}, progress = 0 \
             WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1{}) \
             AND status = 'queued' RETURNING {}",
            B::at_millis("$2"),
            B::SKIP_LOCKED,
            columns::<B>()
        );
        let args = [Arg::Text(worker), Arg::Int(B::clamp_millis(at.as_millis()))];
        let row = self
            .writer()
            .fetch_optional(&sql, &args)
            .await
            .map_err(db)?;
        row.as_ref().map(job).transpose()
    }

    async fn update_progress(
        &self,
        id: JobId,
        progress: f64,
        message: Option<&str>,
    ) -> StoreResult<Job> {
        if !(0.0..=1.0).contains(&progress) {
            return Err(StoreError::Invalid(format!(
                "progress must be between 0 and 1, got {progress}"
            )));
        }
        let sql = format!(
            "UPDATE jobs SET progress = $2, message = coalesce($3, message) \
             WHERE id = $1 AND status = 'running' RETURNING {}",
            columns::<B>()
        );
        let args = [
            Arg::Int(id.0),
            Arg::OptReal(Some(progress)),
            Arg::OptText(message),
        ];
        self.transition(id, &sql, &args, "record progress").await
    }

    async fn finish_job(&self, id: JobId, outcome: &JobOutcome, at: Timestamp) -> StoreResult<Job> {
        match finish_on::<B>(&mut self.writer(), id, outcome, at).await? {
            Some(j) => Ok(j),
            None => {
                let status = match outcome {
                    JobOutcome::Succeeded { .. } => JobStatus::Succeeded,
                    JobOutcome::Failed { .. } => JobStatus::Failed,
                };
                Err(self.unchanged(id, &format!("become {status}")).await)
            }
        }
    }

    async fn cancel_job(&self, id: JobId, reason: &str, at: Timestamp) -> StoreResult<Job> {
        let sql = format!(
            "UPDATE jobs SET status = 'cancelled', message = $2, finished_at = {} \
             WHERE id = $1 AND status IN ('queued', 'running') RETURNING {}",
            B::at_millis("$3"),
            columns::<B>()
        );
        let args = [
            Arg::Int(id.0),
            Arg::Text(reason),
            Arg::Int(B::clamp_millis(at.as_millis())),
        ];
        self.transition(id, &sql, &args, "be cancelled").await
    }

    async fn fail_running_jobs(
        &self,
        worker: &str,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let sql = format!(
            "UPDATE jobs SET status = 'failed', message = $2, finished_at = {} \
             WHERE status = 'running' AND worker = $1",
            B::at_millis("$3")
        );
        let args = [
            Arg::Text(worker),
            Arg::Text(reason),
            Arg::Int(B::clamp_millis(at.as_millis())),
        ];
        self.writer().execute(&sql, &args).await.map_err(db)
    }
}
