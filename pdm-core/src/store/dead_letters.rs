//! The dead-letter aggregate: input that could not be accepted, kept for operators. Dead letters
//! are written with their batch through [`TelemetryStore::write`](super::TelemetryStore::write)
//! and pruned by [`TelemetryStore::prune_dead_letters`](super::TelemetryStore::prune_dead_letters);
//! this trait reads them.

use async_trait::async_trait;

use super::StoreResult;
use crate::model::{DeadLetterQuery, StoredDeadLetter};

/// Reads dead letters.
#[async_trait]
pub trait DeadLetterStore: Send + Sync + 'static {
    /// Dead letters, newest first.
    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>>;
}
