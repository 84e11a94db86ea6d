//! The model registry: trained models of each machine, at most one of them active.
//!
//! A model is registered as a [`ModelStatus::Candidate`] with the next version number of its
//! machine; activating it makes it the machine's one [`ModelStatus::Active`] model and retires
//! the one it replaces, in one transaction (the database's partial unique index "one active
//! model per machine" guards the rule). Metadata ([`ModelRecord`]) and the model file
//! ([`ModelStore::model_bytes`]) are read separately, so that listing never loads model files.
//! Deleting a machine deletes its models.
//!
//! Parameters and training metrics are JSON documents kept as text: the store keeps them byte
//! for byte; what the parameters hold is [`crate::live::ModelParameters`].

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Job, JobId, StoreResult};
use crate::ids::MachineKey;
use crate::model::Timestamp;

/// The id of a stored model, unique across machines and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ModelId(pub i64);

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a model is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelStatus {
    /// Registered, never active or not yet: it scores nothing.
    Candidate,
    /// The machine's live model; at most one per machine.
    Active,
    /// Was active and was replaced; it may be activated again (a rollback).
    Retired,
}

impl ModelStatus {
    /// The stored name: `candidate`, `active`, `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelStatus::Candidate => "candidate",
            ModelStatus::Active => "active",
            ModelStatus::Retired => "retired",
        }
    }

    /// The status of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "candidate" => Some(ModelStatus::Candidate),
            "active" => Some(ModelStatus::Active),
            "retired" => Some(ModelStatus::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model to register (as a candidate).
#[derive(Debug, Clone, PartialEq)]
pub struct NewModel {
    /// The machine it was trained for.
    pub machine: MachineKey,
    /// Its kind, as named in its model file (`pipeline`, `isolation_forest`, ...).
    pub kind: String,
    /// Start of the training range (inclusive).
    pub trained_from: Timestamp,
    /// End of the training range (exclusive).
    pub trained_to: Timestamp,
    /// The training parameters, a JSON document (validated by the caller, kept as given).
    pub parameters: String,
    /// The training metrics, a JSON document (validated by the caller, kept as given).
    pub metrics: String,
    /// The model file (`docs/model-format.md`), stored byte for byte.
    pub bytes: Vec<u8>,
}

/// A stored model without its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// Its id.
    pub id: ModelId,
    /// Its machine.
    pub machine: MachineKey,
    /// Its kind.
    pub kind: String,
    /// 1, 2, ... per machine, in the order the models were registered.
    pub version: i64,
    /// When it was registered (database time).
    pub created_at: Timestamp,
    /// Start of the training range (inclusive).
    pub trained_from: Timestamp,
    /// End of the training range (exclusive).
    pub trained_to: Timestamp,
    /// The training parameters (JSON text).
    pub parameters: String,
    /// The training metrics (JSON text).
    pub metrics: String,
    /// Length of the model file in bytes.
    pub size_bytes: u64,
    /// Where it is in its life.
    pub status: ModelStatus,
    /// Who activated it last (a user name, `auto-train`, ...); `None` if never activated.
    pub activated_by: Option<String>,
    /// When it was activated last; `None` if never activated.
    pub activated_at: Option<Timestamp>,
}

/// Who activates a model, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// Who (a user name, `auto-train`, ...), recorded on the model.
    pub by: String,
    /// When, recorded on the model.
    pub at: Timestamp,
    /// When set, the model must belong to this machine:
    /// [`StoreError::Conflict`](super::StoreError::Conflict) otherwise.
    pub machine: Option<MachineKey>,
}

/// Which models [`ModelStore::list_models`] returns: newest (highest id) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelQuery {
    /// Only the models of this machine.
    pub machine: Option<MachineKey>,
    /// Only the models with an id below this one: the cursor of the next page (the id of the
    /// last model of the previous page).
    pub before: Option<ModelId>,
    /// At most this many.
    pub limit: u32,
}

/// Stores trained models.
#[async_trait]
pub trait ModelStore: Send + Sync + 'static {
    /// Registers a candidate with the next version of its machine (1 for the first; assigned
    /// atomically, so concurrent registrations get distinct versions).
    /// [`StoreError::NotFound`](super::StoreError::NotFound) for an unknown machine,
    /// [`StoreError::Invalid`](super::StoreError::Invalid) for an empty kind or a training
    /// range that ends before it starts.
    async fn create_model(&self, m: &NewModel) -> StoreResult<ModelRecord>;

    /// One model's metadata.
    async fn get_model(&self, id: ModelId) -> StoreResult<ModelRecord>;

    /// One model's file, byte for byte as registered.
    async fn model_bytes(&self, id: ModelId) -> StoreResult<Vec<u8>>;

    /// Models' metadata, newest first, without their files. A machine filter naming an unknown
    /// machine gives an empty list.
    async fn list_models(&self, q: &ModelQuery) -> StoreResult<Vec<ModelRecord>>;

    /// The active model of a machine, if it has one.
    /// [`StoreError::NotFound`](super::StoreError::NotFound) for an unknown machine.
    async fn active_model(&self, machine: &MachineKey) -> StoreResult<Option<ModelRecord>>;

    /// Ends a running training job with the model it trained, in one transaction: registers
    /// `m` as a candidate (as [`create_model`](Self::create_model)), activates it when
    /// `activate` is given (as [`activate_model`](Self::activate_model)), and finishes the job
    /// as succeeded at `at` with the result `{"model": id, "version": v, "activated": bool}`.
    /// `Conflict` (and nothing registered) unless the job is running: a job cancelled while it
    /// trained leaves no model behind.
    async fn register_trained_model(
        &self,
        job: JobId,
        m: &NewModel,
        activate: Option<&Activation>,
        at: Timestamp,
    ) -> StoreResult<(ModelRecord, Job)>;

    /// Makes a model its machine's active model and retires the one it replaces, in one
    /// transaction; concurrent activations on one machine take turns, so exactly one model
    /// ends active. A candidate or a retired model (a rollback) may be activated; activating
    /// the active model changes nothing and returns it. `NotFound` for an unknown id,
    /// `Conflict` when `a.machine` names another machine.
    async fn activate_model(&self, id: ModelId, a: &Activation) -> StoreResult<ModelRecord>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_their_stored_names() {
        for s in [
            ModelStatus::Candidate,
            ModelStatus::Active,
            ModelStatus::Retired,
        ] {
            assert_eq!(ModelStatus::parse(s.as_str()), Some(s));
            assert_eq!(s.to_string(), s.as_str());
        }
        assert_eq!(ModelStatus::parse("Active"), None);
    }
}
