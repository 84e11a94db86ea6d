//! Counts across aggregates for the fleet overview (`GET /api/v1/dashboard`), each one
//! grouped query rather than a listing.

use async_trait::async_trait;

use super::StoreResult;
use crate::model::Timestamp;
use crate::MachineKey;

/// The fleet's counts at one time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OverviewCounts {
    /// Machines registered.
    pub machines: u64,
    /// Open alarms (not closed) by severity and state name: `(severity, state, count)`.
    pub open_alarms: Vec<(String, String, u64)>,
    /// Work orders by status name: `(status, count)`.
    pub work_orders: Vec<(String, u64)>,
    /// Work orders past their due date and not resolved or closed.
    pub overdue_work_orders: u64,
    /// Dead letters received since the time asked.
    pub dead_letters_since: u64,
}

/// The latest prediction of one machine.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestPrediction {
    /// The machine.
    pub machine: MachineKey,
    /// When.
    pub ts: Timestamp,
    /// Anomaly score.
    pub score: f64,
    /// The model's threshold.
    pub threshold: f64,
    /// Whether it was anomalous.
    pub anomalous: bool,
    /// Health index, when the model keeps one.
    pub health: Option<f64>,
    /// Remaining useful life in seconds, when known.
    pub rul_s: Option<f64>,
}

/// Reads the overview's counts.
#[async_trait]
pub trait OverviewStore: Send + Sync + 'static {
    /// The counts at `now`, dead letters counted from `since`.
    async fn overview_counts(
        &self,
        now: Timestamp,
        since: Timestamp,
    ) -> StoreResult<OverviewCounts>;
    /// The latest prediction of every machine that has one.
    async fn latest_predictions(&self) -> StoreResult<Vec<LatestPrediction>>;
}
