//! The storage seam: a telemetry store for readings and a catalog store for machines and sensors.
//!
//! Implementations live in `pdm-store` (SQLite, PostgreSQL). Every implementation must pass the
//! conformance suite there; the rules it checks are written on each method here.

use async_trait::async_trait;

use crate::ids::{MachineKey, SensorKey};
use crate::model::{
    Batch, Bucket, DeadLetterPrune, DeadLetterQuery, Latest, Machine, MachineUpdate, NewMachine,
    NewSensor, Point, RangeQuery, Sensor, SensorUpdate, StoredDeadLetter, Timestamp,
};

/// A boxed error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named thing exists already, or is still referenced.
    #[error("{0}")]
    Conflict(String),
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
    /// The database cannot be reached; retrying later may work.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other failure of the backend.
    #[error("database error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// True when a retry may succeed (connection lost, pool exhausted, lock timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// Result of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

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
    /// [`StoreError::Invalid`].
    async fn write(&self, batch: &Batch) -> StoreResult<WriteOutcome>;

    /// Raw values of one sensor in `[from, to)`, oldest first, at most `limit`.
    async fn raw(&self, q: &RangeQuery) -> StoreResult<Vec<Point>>;

    /// Values of one sensor in `[from, to)` grouped in buckets of `width_ms` milliseconds aligned
    /// to the epoch, oldest first, at most `limit` buckets; empty buckets are left out.
    async fn buckets(&self, q: &RangeQuery, width_ms: i64) -> StoreResult<Vec<Bucket>>;

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

/// Stores machines, sensors and dead letters.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Registers a machine; [`StoreError::Conflict`] when the key exists.
    async fn create_machine(&self, m: &NewMachine) -> StoreResult<Machine>;
    /// Registers a machine unless it exists; returns it either way.
    async fn ensure_machine(&self, key: &MachineKey) -> StoreResult<Machine>;
    /// One machine.
    async fn get_machine(&self, key: &MachineKey) -> StoreResult<Machine>;
    /// All machines, ordered by key.
    async fn list_machines(&self) -> StoreResult<Vec<Machine>>;
    /// Updates a machine.
    async fn update_machine(&self, key: &MachineKey, u: &MachineUpdate) -> StoreResult<Machine>;
    /// Deletes a machine with its sensors and readings.
    async fn delete_machine(&self, key: &MachineKey) -> StoreResult<()>;

    /// Registers a sensor; [`StoreError::NotFound`] without the machine,
    /// [`StoreError::Conflict`] when the key exists.
    async fn create_sensor(&self, machine: &MachineKey, s: &NewSensor) -> StoreResult<Sensor>;
    /// Registers a sensor (and its machine) unless it exists; returns it either way.
    async fn ensure_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor>;
    /// One sensor.
    async fn get_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<Sensor>;
    /// Sensors of one machine, ordered by key.
    async fn list_sensors(&self, machine: &MachineKey) -> StoreResult<Vec<Sensor>>;
    /// All sensors of all machines.
    async fn list_all_sensors(&self) -> StoreResult<Vec<Sensor>>;
    /// Updates a sensor.
    async fn update_sensor(
        &self,
        machine: &MachineKey,
        key: &SensorKey,
        u: &SensorUpdate,
    ) -> StoreResult<Sensor>;
    /// Deletes a sensor with its readings.
    async fn delete_sensor(&self, machine: &MachineKey, key: &SensorKey) -> StoreResult<()>;

    /// Dead letters, newest first.
    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>>;
}

/// A database holding both telemetry and catalog.
pub trait Store: TelemetryStore + CatalogStore {}

impl<T: TelemetryStore + CatalogStore> Store for T {}
