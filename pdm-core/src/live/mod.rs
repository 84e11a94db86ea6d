//! The live path: every machine's rows scored by its active model as readings arrive, and the
//! model registry's rules and background trainings around it.
//!
//! - [`model`]: the seam to detection ([`ModelFactory`], [`LiveModel`]); pdm-detect implements
//!   it, the engine never links a detection library;
//! - [`runtime`]: [`Live`], the owners of the machines' live state, fed by the engine after
//!   each durable write, and the prediction writer;
//! - [`registry`]: what a stored model holds, import, activation, training requests;
//! - [`alarms`]: [`Alarms`], the alarm stage: every machine's rules evaluated on its
//!   predictions, readings and stale data, transitions stored with their outbox rows and
//!   published; people's commands (acknowledge, shelve, out of service);
//! - [`jobs`]: [`JobRunner`], which runs the trainings queued in the jobs table;
//! - [`config`]: [`LiveConfig`] (`[live]`), with the shard assignment of this worker.

pub mod alarms;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod runtime;

pub use alarms::{AlarmCommandError, AlarmUpdate, Alarms, SILENT_AFTER_MS};
pub use config::{LiveConfig, ShardAssignment};
pub use jobs::{JobProgress, JobRunner, JobWaker};
pub use metrics::{LiveMetrics, LiveSnapshot};
pub use model::{
    LiveModel, LiveScore, ModelError, ModelFactory, ModelInfo, TrainSpec, Trained, TrainingRows,
};
pub use registry::{AlignDefaults, Import, ModelParameters, Registry, RegistryError, TrainRequest};
pub use runtime::{Live, LiveEvent, LiveState, MachineStatus};
