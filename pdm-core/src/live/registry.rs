//! The model registry's rules: what a stored model's parameters hold, how a machine's active
//! model is loaded, importing a model file, activating a model, and requesting a training.
//!
//! A registered model's `parameters` (a JSON object) hold how its rows are formed and what it
//! was fitted with:
//!
//! ```json
//! {"align": {"channels": ["current", "temperature"], "sample_period_ms": 1000, "max_gap_ms": 5000},
//!  "model": {"window": 10, "margin": 3.0, "...": "..."}, "source": "train"}
//! ```
//!
//! The live path reads `align` to form the rows the model scores, so a model scores the same
//! rows live as it was trained on.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::model::{LiveModel, ModelError, ModelFactory, ModelInfo};
use super::runtime::Live;
use crate::align::AlignConfig;
use crate::ids::{MachineKey, SensorKey};
use crate::model::Timestamp;
use crate::store::{Activation, Job, ModelId, ModelRecord, NewJob, NewModel, Store, StoreError};

/// The earliest training time accepted: 0001-01-01T00:00:00Z, in epoch milliseconds.
pub const MIN_TIME_MS: i64 = -62_135_596_800_000;
/// The latest training time accepted: 9999-12-31T23:59:59.999Z, in epoch milliseconds.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// The job kind of a training.
pub const TRAIN_JOB: &str = "train";

/// What a registered model's `parameters` hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelParameters {
    /// How rows are formed for it.
    pub align: AlignConfig,
    /// What it was fitted with (the factory's parameters), `null` for an imported file.
    #[serde(default)]
    pub model: serde_json::Value,
    /// `train` or `import`.
    #[serde(default)]
    pub source: String,
}

impl ModelParameters {
    /// The JSON text stored with the model.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the stored JSON text back.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        serde_json::from_str(text).map_err(|e| {
            ModelError::File(format!("the model's stored parameters are unreadable: {e}"))
        })
    }
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The store refused or failed (`NotFound`, `Conflict`, ...).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The model file or the request is not usable; the message says why.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A training request: the job's parameters (JSON in the jobs table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// Start of the training range (inclusive).
    pub from: Timestamp,
    /// End of the training range (exclusive).
    pub to: Timestamp,
    /// The kind; the factory's default when absent.
    #[serde(default)]
    pub kind: Option<String>,
    /// The kind's parameters (a JSON object); the defaults when absent.
    #[serde(default)]
    pub params: Option<serde_json::Value>,
    /// Activate the model once trained.
    #[serde(default)]
    pub activate: bool,
    /// Milliseconds between rows; the worker's `live.sample_period_ms` when absent.
    #[serde(default)]
    pub sample_period_ms: Option<u64>,
    /// How long a value is carried forward; the worker's `live.max_gap_ms` when absent.
    #[serde(default)]
    pub max_gap_ms: Option<u64>,
    /// The channels, in column order; every sensor of the machine with readings in the range
    /// (by key) when absent.
    #[serde(default)]
    pub channels: Option<Vec<SensorKey>>,
    /// Who asked (a user, `auto-train`), recorded as the activator.
    #[serde(default)]
    pub requested_by: String,
}

impl TrainRequest {
    /// The job parameters' JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Checks what can be checked before the job runs, naming the field.
    pub fn check(&self) -> Result<(), ModelError> {
        for (field, t) in [("from", self.from), ("to", self.to)] {
            if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&t.as_millis()) {
                return Err(ModelError::Params(format!(
                    "{field} ({}) must be between the years 1 and 9999",
                    t.as_millis()
                )));
            }
        }
        if self.to <= self.from {
            return Err(ModelError::Params(format!(
                "to ({}) must be after from ({})",
                self.to.as_millis(),
                self.from.as_millis()
            )));
        }
        if let Some(p) = &self.params {
            if !p.is_object() {
                return Err(ModelError::Params("params must be a JSON object".into()));
            }
        }
        if let Some(c) = &self.channels {
            if c.is_empty() {
                return Err(ModelError::Params(
                    "channels must name at least one sensor".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Loads the active model of `machine` as a live model: `None` when it has none.
pub async fn load_active(
    store: &dyn Store,
    factory: &dyn ModelFactory,
    machine: &MachineKey,
) -> Result<Option<(ModelRecord, ModelParameters, Box<dyn LiveModel>)>, RegistryError> {
    let Some(record) = store.active_model(machine).await? else {
        return Ok(None);
    };
    let params = ModelParameters::parse(&record.parameters)?;
    let bytes = store.model_bytes(record.id).await?;
    let model = factory.load(&bytes, &params.align)?;
    Ok(Some((record, params, model)))
}

/// The registry's operations for a frontend: import, activate, request training.
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    factory: Arc<dyn ModelFactory>,
    live: Option<Arc<Live>>,
    defaults: AlignDefaults,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// The sample period and gap used when a request gives none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlignDefaults {
    /// Milliseconds between rows.
    pub sample_period_ms: u64,
    /// How long a value is carried forward, in ms.
    pub max_gap_ms: u64,
}

/// What to import.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The model file.
    pub bytes: Vec<u8>,
    /// Milliseconds between rows; the default when `None`.
    pub sample_period_ms: Option<u64>,
    /// How long a value is carried forward; the default when `None`.
    pub max_gap_ms: Option<u64>,
    /// Activate it at once, as this actor.
    pub activate_by: Option<String>,
}

impl Registry {
    /// A registry over `store`; `live` (when the live path runs here) is told of activations.
    pub fn new(
        store: Arc<dyn Store>,
        factory: Arc<dyn ModelFactory>,
        live: Option<Arc<Live>>,
        defaults: AlignDefaults,
    ) -> Self {
        Self {
            store,
            factory,
            live,
            defaults,
        }
    }

    /// The factory.
    pub fn factory(&self) -> &Arc<dyn ModelFactory> {
        &self.factory
    }

    /// Imports a model file for `machine`: checks it (format, version, checksum, kind), checks
    /// its feature names against the machine's sensors, builds it as the live path would, and
    /// registers it (activating it when asked). A refused file changes nothing: the machine
    /// keeps its model.
    pub async fn import(
        &self,
        machine: &MachineKey,
        import: Import,
    ) -> Result<ModelRecord, RegistryError> {
        let info: ModelInfo = self.factory.inspect(&import.bytes)?;
        let sensors = self.store.list_sensors(machine).await?;
        let mut channels = Vec::with_capacity(info.feature_names.len());
        let mut unknown = Vec::new();
        for name in &info.feature_names {
            match sensors.iter().find(|s| s.key.as_str() == name) {
                Some(s) => channels.push(s.key.clone()),
                None => unknown.push(name.clone()),
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = sensors.iter().map(|s| s.key.as_str()).collect();
            return Err(ModelError::Mismatch(format!(
                "the model's features {unknown:?} are not sensors of {machine} (its sensors: {known:?}); \
                 a model scores a machine whose sensor keys are its feature names"
            ))
            .into());
        }
        let align = AlignConfig {
            channels,
            sample_period_ms: import
                .sample_period_ms
                .unwrap_or(self.defaults.sample_period_ms),
            max_gap_ms: import.max_gap_ms.unwrap_or(self.defaults.max_gap_ms),
        };
        align
            .check()
            .map_err(|e| ModelError::Params(e.to_string()))?;
        // Build it as the live path will, so that a file that cannot score is refused now.
        self.factory.load(&import.bytes, &align)?;
        let params = ModelParameters {
            align,
            model: serde_json::Value::Null,
            source: "import".into(),
        };
        let now = Timestamp::now();
        let record = self
            .store
            .create_model(&NewModel {
                machine: machine.clone(),
                kind: info.kind,
                trained_from: now,
                trained_to: now,
                parameters: params.to_json(),
                metrics: "{}".into(),
                bytes: import.bytes,
            })
            .await?;
        match import.activate_by {
            Some(by) => self.activate(record.id, machine, &by).await,
            None => Ok(record),
        }
    }

    /// Activates a model of `machine` (`Conflict` for a model of another machine) and swaps it
    /// into the live path without a restart. A model whose file cannot be loaded is refused
    /// (the machine keeps its model).
    pub async fn activate(
        &self,
        id: ModelId,
        machine: &MachineKey,
        by: &str,
    ) -> Result<ModelRecord, RegistryError> {
        let record = self.store.get_model(id).await?;
        if &record.machine != machine {
            return Err(StoreError::Conflict(format!(
                "model {id} belongs to {}, not {machine}",
                record.machine
            ))
            .into());
        }
        let params = ModelParameters::parse(&record.parameters)?;
        let bytes = self.store.model_bytes(id).await?;
        self.factory.load(&bytes, &params.align)?;
        let activation = Activation {
            by: by.to_owned(),
            at: Timestamp::now(),
            machine: Some(machine.clone()),
        };
        let record = self.store.activate_model(id, &activation).await?;
        if let Some(live) = &self.live {
            live.reload(machine).await;
        }
        Ok(record)
    }

    /// Queues a training job for `machine` (the job runner picks it up).
    pub async fn request_training(
        &self,
        machine: &MachineKey,
        request: &TrainRequest,
    ) -> Result<Job, RegistryError> {
        request.check()?;
        if let Some(kind) = &request.kind {
            if kind.trim().is_empty() {
                return Err(ModelError::Params("kind must not be empty".into()).into());
            }
        }
        // The row settings are checked now (with the defaults for what is not given), so that
        // a bad period, gap or channel list is a 4xx naming it rather than a failed job.
        let channels = request
            .channels
            .clone()
            .unwrap_or_else(|| vec![SensorKey::new("any").expect("a valid key")]);
        AlignConfig {
            channels,
            sample_period_ms: request
                .sample_period_ms
                .unwrap_or(self.defaults.sample_period_ms),
            max_gap_ms: request.max_gap_ms.unwrap_or(self.defaults.max_gap_ms),
        }
        .check()
        .map_err(|e| ModelError::Params(e.to_string().replace("align.", "")))?;
        // The machine must exist: NotFound otherwise.
        self.store.get_machine(machine).await?;
        let job = self
            .store
            .create_job(&NewJob {
                kind: TRAIN_JOB.to_owned(),
                machine: Some(machine.clone()),
                params: request.to_json(),
            })
            .await?;
        Ok(job)
    }

    /// Queues a failed or cancelled job again, as a new job with the same kind, machine and
    /// parameters (the old one stays as it ended, for the record). `Conflict` for a job that
    /// is queued, running or succeeded.
    pub async fn retry(&self, id: crate::store::JobId) -> Result<Job, RegistryError> {
        use crate::store::JobStatus;
        let job = self.store.get_job(id).await?;
        if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(StoreError::Conflict(format!(
                "job {id} is {}; only a failed or cancelled job can be retried",
                job.status
            ))
            .into());
        }
        Ok(self
            .store
            .create_job(&NewJob {
                kind: job.kind,
                machine: job.machine,
                params: job.params,
            })
            .await?)
    }

    /// The defaults used when a request gives no period or gap.
    pub fn defaults(&self) -> AlignDefaults {
        self.defaults
    }
}
