//! The error type of the crate.

use pdm_core::StoreError;

/// Errors of pdm-ingest: bad settings, broker trouble, store failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// A setting cannot be used; `setting` names it as written in the configuration file.
    #[error("{setting}: {problem}")]
    Config {
        /// The setting, e.g. `mqtt.url` or `codec.max_payload_bytes`.
        setting: String,
        /// What is wrong with it.
        problem: String,
    },
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

impl IngestError {
    /// An error naming `setting`.
    pub fn config(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        IngestError::Config {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Result of the crate's fallible operations.
pub type Result<T, E = IngestError> = std::result::Result<T, E>;
