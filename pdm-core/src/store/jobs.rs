//! Background jobs (training, import, ...): queued, claimed by one worker, finished once.
//!
//! A job goes `queued -> running -> succeeded | failed`, or to `cancelled` from `queued` or
//! `running`. Every transition is checked by the database in the statement that makes it
//! (`... WHERE status IN (...)`), so two workers racing cannot both claim a job, and a job
//! cancelled while it runs cannot then succeed: the worker's next
//! [`JobStore::update_progress`] or [`JobStore::finish_job`] gives
//! [`StoreError::Conflict`](super::StoreError::Conflict) and it stops.
//!
//! Jobs survive a restart. A worker names itself when it claims a job; at start-up it calls
//! [`JobStore::fail_running_jobs`] with the same name, which marks the jobs it was running when
//! it died as failed with the reason, and leaves other workers' jobs alone. A failed job is
//! retried by creating a new job with the same kind, machine and parameters.
//!
//! Parameters and results are JSON documents kept as text (see [`super::models`]).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::Timestamp;

/// The id of a job, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error message (also a job whose worker died).
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobStatus {
    /// The stored name: `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(JobStatus::Queued),
            "running" => Some(JobStatus::Running),
            "succeeded" => Some(JobStatus::Succeeded),
            "failed" => Some(JobStatus::Failed),
            "cancelled" => Some(JobStatus::Cancelled),
            _ => None,
        }
    }

    /// True once the job can no longer change.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What it does (`train`, `import`, ...), free text chosen by the caller.
    pub kind: String,
    /// The machine it concerns, if any. Not a reference: a job outlives a deleted machine.
    pub machine: Option<MachineKey>,
    /// Its input, a JSON document (validated by the caller, kept as given).
    pub params: String,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What it does.
    pub kind: String,
    /// The machine it concerns, if any.
    pub machine: Option<MachineKey>,
    /// Its input (JSON text).
    pub params: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// How far it got, 0 to 1.
    pub progress: f64,
    /// The last word of its worker: what it is doing, or why it failed or was cancelled.
    pub message: Option<String>,
    /// What it produced (JSON text), once succeeded.
    pub result: Option<String>,
    /// The worker that claimed it.
    pub worker: Option<String>,
    /// When it was queued (database time).
    pub created_at: Timestamp,
    /// When a worker claimed it.
    pub started_at: Option<Timestamp>,
    /// When it finished (succeeded, failed or was cancelled).
    pub finished_at: Option<Timestamp>,
}

/// How a running job ends.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// It succeeded, with its result (JSON text) and an optional last message.
    Succeeded {
        /// What it produced.
        result: String,
        /// A last message.
        message: Option<String>,
    },
    /// It failed, with the reason.
    Failed {
        /// Why.
        message: String,
    },
}

/// Which jobs [`JobStore::list_jobs`] returns: newest (highest id) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs concerning this machine.
    pub machine: Option<MachineKey>,
    /// Only jobs with an id below this one: the cursor of the next page (the id of the last
    /// job of the previous page).
    pub before: Option<JobId>,
    /// At most this many.
    pub limit: u32,
}

/// Stores background jobs.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Queues a job. [`StoreError::Invalid`](super::StoreError::Invalid) for an empty kind.
    async fn create_job(&self, j: &NewJob) -> StoreResult<Job>;

    /// One job.
    async fn get_job(&self, id: JobId) -> StoreResult<Job>;

    /// Jobs, newest first.
    async fn list_jobs(&self, q: &JobQuery) -> StoreResult<Vec<Job>>;

    /// Claims the oldest queued job for `worker` (it becomes running, started at `at`), or
    /// `None` when none is queued. Atomic: concurrent claimers, in this process or others,
    /// never get the same job.
    async fn claim_next_job(&self, worker: &str, at: Timestamp) -> StoreResult<Option<Job>>;

    /// Records the progress (0 to 1) and, when given, the message of a running job.
    /// `Conflict` unless it is running (a cancelled job's worker learns here that it should
    /// stop), `Invalid` for a progress outside 0 to 1.
    async fn update_progress(
        &self,
        id: JobId,
        progress: f64,
        message: Option<&str>,
    ) -> StoreResult<Job>;

    /// Finishes a running job at `at` (progress 1 when it succeeded). `Conflict` unless it is
    /// running.
    async fn finish_job(&self, id: JobId, outcome: &JobOutcome, at: Timestamp) -> StoreResult<Job>;

    /// Cancels a queued or running job at `at`, with the reason as its message. `Conflict`
    /// for a finished job (cancelled included).
    async fn cancel_job(&self, id: JobId, reason: &str, at: Timestamp) -> StoreResult<Job>;

    /// Marks every job still running under `worker` as failed at `at`, with `reason` as its
    /// message: at start-up, for the jobs that worker was running when it stopped. Returns how
    /// many.
    async fn fail_running_jobs(
        &self,
        worker: &str,
        reason: &str,
        at: Timestamp,
    ) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_stored_names() {
        for s in [
            JobStatus::Queued,
            JobStatus::Running,
            JobStatus::Succeeded,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(
                s.is_finished(),
                !matches!(s, JobStatus::Queued | JobStatus::Running)
            );
        }
        assert_eq!(JobStatus::parse("done"), None);
    }
}
