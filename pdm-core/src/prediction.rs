//! Predictions: the live path's verdict on one row of one machine.

use serde::{Deserialize, Serialize};

use crate::ids::{MachineKey, SensorKey};
use crate::model::Timestamp;
use crate::store::ModelId;

/// How much one sensor explains a score: its share of the score, 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The sensor.
    pub sensor: SensorKey,
    /// Its share of the score (the shares of all sensors sum to 1).
    pub share: f64,
}

/// What a machine's active model said about the row at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The machine.
    pub machine: MachineKey,
    /// The row's instant (a multiple of the model's sample period).
    pub ts: Timestamp,
    /// The model that scored it.
    pub model: ModelId,
    /// The anomaly score; higher is more anomalous.
    pub score: f64,
    /// Scores above this are anomalous.
    pub threshold: f64,
    /// `score > threshold`.
    pub anomalous: bool,
    /// The sensors that explain the score most, largest share first (at most
    /// [`MAX_CONTRIBUTIONS`]); empty when the model cannot attribute, or the row is normal.
    pub contributions: Vec<Contribution>,
    /// Health index, 1 (healthy) to 0 (at the failure level), when the model keeps one.
    pub health: Option<f64>,
    /// Estimated remaining useful life in seconds, when the health trend gives one.
    pub rul_s: Option<f64>,
}

/// The most contributions a prediction keeps.
pub const MAX_CONTRIBUTIONS: usize = 3;

/// A time range of one machine's predictions; `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionQuery {
    /// The machine.
    pub machine: MachineKey,
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    /// At most this many predictions (raw) or buckets (bucketed), oldest first; at least 1.
    pub limit: u32,
}

/// Predictions of one bucket of time, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionBucket {
    /// Start of the bucket (aligned to the bucket width since the epoch).
    pub start: Timestamp,
    /// Number of predictions.
    pub count: u64,
    /// How many were anomalous.
    pub anomalous: u64,
    /// Mean score.
    pub avg_score: f64,
    /// Highest score.
    pub max_score: f64,
    /// Lowest health index, when any prediction had one.
    pub min_health: Option<f64>,
    /// Lowest remaining-useful-life estimate in seconds, when any prediction had one.
    pub min_rul_s: Option<f64>,
}
