//! Readings: idempotent batch writes, range queries (raw and bucketed), latest values, retention.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::MachineKey;
use crate::model::{
    Batch, Bucket, DeadLetterPrune, Latest, MachineRangeQuery, Point, RangeQuery, Reading,
    Timestamp,
};

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Readings newly stored.
    pub inserted: u64,
    /// Readings skipped because the same sensor already had a value at that timestamp.
    pub duplicates: u64,
    /// Dead letters stored.
    pub dead_letters: u64,
}

impl WriteOutcome {
    /// Adds `other` to `self`.
    pub fn add(&mut self, other: WriteOutcome) {
        self.inserted += other.inserted;
        self.duplicates += other.duplicates;
        self.dead_letters += other.dead_letters;
    }
}

/// Stores readings and answers time-range queries.
#[async_trait]
pub trait TelemetryStore: Send + Sync + 'static {
    /// Writes a batch durably, in one transaction: when this returns `Ok`, every reading and dead
    /// letter of the batch survives a crash of the process.
    ///
    /// Idempotent: a reading is unique by machine, sensor and timestamp, and a reading whose key
    /// is already stored is skipped and counted in [`WriteOutcome::duplicates`], never an error
    /// (the first value wins). Sensors named by readings must be registered (the catalog does so
    /// before readings reach the store); a reading of an unregistered sensor fails the write with
    /// [`StoreError::Invalid`](super::StoreError::Invalid).
    async fn write(&self, batch: &Batch) -> StoreResult<WriteOutcome>;

    /// Raw values of one sensor in `[from, to)`, oldest first, at most `limit`.
    async fn raw(&self, q: &RangeQuery) -> StoreResult<Vec<Point>>;

    /// Values of one sensor in `[from, to)` grouped in buckets of `width_ms` milliseconds aligned
    /// to the epoch, oldest first, at most `limit` buckets; empty buckets are left out.
    async fn buckets(&self, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>>;

    /// Readings of every sensor of one machine in `[from, to)`, ordered by timestamp and then
    /// sensor key, at most `limit`: the one read that rebuilds a machine's live window, and
    /// the pages a training job reads. A caller paging through a range continues from the
    /// timestamp of the last reading of a full page (and skips what it already has at that
    /// timestamp), since a page can end in the middle of an instant.
    async fn machine_readings(&self, q: &MachineRangeQuery) -> StoreResult<Vec<Reading>>;

    /// The latest value of every sensor of `machine` that has one, ordered by sensor key.
    async fn latest(&self, machine: &MachineKey) -> StoreResult<Vec<Latest>>;

    /// Number of readings stored for `machine` (all sensors), for operators and tests.
    async fn count_readings(&self, machine: &MachineKey) -> StoreResult<u64>;

    /// Deletes dead letters as `p` says (received before a time, then all but the newest `n`),
    /// returning how many it deleted. Deletes in chunks of bounded size, each its own
    /// transaction, so concurrent writes wait at most one chunk; readings are never touched.
    /// Idempotent: a second call with the same `p` deletes nothing more.
    async fn prune_dead_letters(&self, p: &DeadLetterPrune) -> StoreResult<u64>;

    /// Deletes the readings of every sensor with a timestamp before `before`, returning how many
    /// it deleted; in chunks like [`prune_dead_letters`](Self::prune_dead_letters). A reading
    /// replayed later with such an old timestamp is stored again (and pruned by the next pass).
    async fn prune_readings(&self, before: Timestamp) -> StoreResult<u64>;

    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// How many writes this store can usefully run at once; the engine runs that many writers
    /// unless configured otherwise. One for stores with a single writer (SQLite); more for
    /// servers that spread concurrent transactions over cores (PostgreSQL).
    fn write_concurrency(&self) -> usize {
        1
    }
}
