//! The error type of the crate.

use pdm_core::{ConfigError, StoreError};

/// Errors of pdm-ingest: bad settings, broker trouble, store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// A setting cannot be used; the error names it as written in the configuration file
    /// (`mqtt.url`, `codec.max_payload_bytes`, ...).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The MQTT client failed (the event loop is gone, or a request could not be queued).
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The catalog store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Waiting for something took longer than allowed.
    #[error("timed out: {0}")]
    Timeout(String),
}

/// Result of the crate's fallible operations.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
