//! Predictions: what the live path's models said about each row of each machine.
//!
//! A prediction is unique by machine and timestamp (the row's instant): writing one that is
//! already stored keeps the first and counts the other as a duplicate, so a restart that scores
//! a row again stores nothing twice. Deleting a machine deletes its predictions; retention
//! prunes old ones like readings.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::Timestamp;
use crate::prediction::{Prediction, PredictionBucket, PredictionQuery};

/// Stores predictions.
#[async_trait]
pub trait PredictionStore: Send + Sync + 'static {
    /// Writes predictions in one transaction; returns how many were new (the others were
    /// already stored for their machine and instant and are left as they were).
    /// [`StoreError::NotFound`](super::StoreError::NotFound) when a machine is unknown.
    async fn write_predictions(&self, predictions: &[Prediction]) -> StoreResult<u64>;

    /// Predictions of one machine in `[from, to)`, oldest first, at most `limit`.
    async fn predictions(&self, q: &PredictionQuery) -> StoreResult<Vec<Prediction>>;

    /// Predictions of one machine in `[from, to)` summarised in buckets of `width_ms`
    /// milliseconds aligned to the epoch, oldest first, at most `limit` buckets; empty buckets
    /// are left out.
    async fn prediction_buckets(
        &self,
        q: &PredictionQuery,
        width_ms: i64,
    ) -> StoreResult<Vec<PredictionBucket>>;

    /// The instant of the newest prediction of `machine`, if any: where the live path resumes.
    async fn last_prediction(&self, machine: &MachineKey) -> StoreResult<Option<Timestamp>>;

    /// Deletes the predictions (of every machine) before `before`, in chunks like
    /// [`TelemetryStore::prune_readings`](super::TelemetryStore::prune_readings); returns how
    /// many.
    async fn prune_predictions(&self, before: Timestamp) -> StoreResult<u64>;
}
