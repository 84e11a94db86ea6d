//! Settings of a store connection.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How to open a store. Serde-friendly so that a frontend can embed it in its configuration.
///
/// ```
/// let mut opts = pdm_store::StoreOptions::default();
/// opts.max_connections = 4;
/// opts.migrate = false;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Apply pending migrations when connecting. When off, connecting fails with
    /// [`StoreError::Invalid`](pdm_core::StoreError::Invalid) if the schema is behind, naming
    /// the `migrate` step to run.
    pub migrate: bool,
    /// Most connections: the pool size on PostgreSQL; the number of reader connections on
    /// SQLite (which always writes through one dedicated connection).
    pub max_connections: u32,
    /// How long an operation waits for a free connection before failing as unavailable, in ms.
    pub acquire_timeout_ms: u64,
    /// SQLite only: how long a write waits for another process's write lock, in ms.
    pub busy_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            migrate: true,
            max_connections: 8,
            acquire_timeout_ms: 10_000,
            busy_timeout_ms: 5_000,
        }
    }
}

impl StoreOptions {
    /// These options with [`StoreOptions::migrate`] set to `migrate`.
    pub fn with_migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// These options with [`StoreOptions::max_connections`] set to `n`.
    pub fn with_max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }

    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn busy_timeout(&self) -> Duration {
        Duration::from_millis(self.busy_timeout_ms)
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn pool_size(&self) -> u32 {
        self.max_connections.max(1)
    }
}
