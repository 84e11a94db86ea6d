//! The one error of every configuration check: which setting is wrong, and why.
//!
//! Every `check` of a configuration in pdm-core and pdm-ingest (engine, retention, codec,
//! MQTT source and publisher, simulator) returns a [`ConfigError`], so an operator reads the
//! same shape whichever setting is wrong:
//!
//! ```
//! use pdm_core::{ConfigError, Retention};
//!
//! let retention = Retention { interval_s: 0, ..Retention::default() };
//! let err: ConfigError = retention.check().expect_err("zero interval");
//! assert_eq!(err.setting, "engine.retention.interval_s");
//! assert!(err.to_string().starts_with("engine.retention.interval_s: must be between 1 and"));
//! ```

/// A setting that cannot be used: `setting` names it as written in the configuration file,
/// `problem` says what is wrong and, where it helps, what would do.
///
/// Displayed as `setting: problem`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {problem}")]
pub struct ConfigError {
    /// The setting, as a dotted path from the top of the configuration file, e.g.
    /// `engine.retention.interval_s`, `mqtt.url` or `simulator.machines[2].fault.sensor`.
    pub setting: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    /// An error naming `setting`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

/// Result of a configuration check.
pub type ConfigResult<T = ()> = Result<T, ConfigError>;
