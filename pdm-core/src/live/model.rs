//! The live-model seam: model files in, live models out; training requests in, model files out.
//!
//! The engine never links a detection library. It is handed a [`ModelFactory`] (pdm-detect
//! implements it for every model kind it has; an embedder may bring their own) that turns the
//! bytes of a model file into a [`LiveModel`] scoring aligned rows one at a time, and fits new
//! model files from aligned training rows.

use serde::{Deserialize, Serialize};

use crate::align::AlignConfig;

/// Why a model file cannot be used, or a model cannot be trained. The message is shown to the
/// user as it is: it names what is wrong and, where it can, what would be right.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file is not a model file this factory reads (format, version, checksum, kind,
    /// state), or is not a model that scores rows (a scaler alone).
    #[error("{0}")]
    File(String),
    /// The file is sound but does not fit the machine or the settings it is used with
    /// (feature names, sample period).
    #[error("{0}")]
    Mismatch(String),
    /// The training kind or parameters are not valid.
    #[error("{0}")]
    Params(String),
    /// The training rows cannot make a model (too few, constant, ...).
    #[error("{0}")]
    Data(String),
}

/// What a model file is, read without building a live model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The kind named in the file (`pipeline`, `isolation_forest`, `robust_zscore`, ...).
    pub kind: String,
    /// The features the model expects, in column order: for live scoring, the machine's
    /// sensor keys.
    pub feature_names: Vec<String>,
    /// Rows needed before the first score (a trailing window of `n` rows needs `n - 1`).
    pub warmup_rows: usize,
}

/// One row's verdict from a live model.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveScore {
    /// The anomaly score; higher is more anomalous.
    pub score: f64,
    /// Scores above this are anomalous.
    pub threshold: f64,
    /// The channels (indices into [`AlignConfig::channels`]) that explain the score, with
    /// their shares (0 to 1), largest first; at most
    /// [`MAX_CONTRIBUTIONS`](crate::prediction::MAX_CONTRIBUTIONS). May be empty for a normal
    /// row (attribution costs more than scoring).
    pub contributions: Vec<(usize, f64)>,
    /// Health index, 1 (healthy) to 0 (failure level).
    pub health: Option<f64>,
    /// Estimated remaining useful life in seconds of row time.
    pub rul_s: Option<f64>,
}

/// A model scoring one machine's aligned rows, in time order, one at a time.
///
/// A live model holds whatever state it needs between rows (a batch pipeline's trailing
/// window, a streaming detector's learnt state, the health index), so that its scores on a
/// series of rows equal the offline scores of the same model on the same rows, bit for bit.
pub trait LiveModel: Send {
    /// Rows needed before the first score.
    fn warmup_rows(&self) -> usize;

    /// Takes the row at `ts_ms` into the state without scoring it: rebuilding the window after
    /// a restart or a model swap, from rows that were scored before.
    fn warm(&mut self, ts_ms: i64, row: &[f64]);

    /// Scores the row at `ts_ms` and takes it into the state; `Ok(None)` while warming up.
    /// Errors (a row of the wrong length, a non-finite value) leave the state as it was.
    fn score(&mut self, ts_ms: i64, row: &[f64]) -> Result<Option<LiveScore>, ModelError>;

    /// Forgets the rows seen (not what the model learnt): the next rows do not follow the
    /// previous ones (a gap in the data), so a trailing window starts afresh.
    fn reset(&mut self);
}

/// What to train.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    /// The kind, as a model file names it; the factory's default when `None`.
    pub kind: Option<String>,
    /// The kind's parameters, a JSON object (`{}` for the defaults).
    pub params: String,
    /// How the rows were formed (the model's features are the channels, in order).
    pub align: AlignConfig,
}

/// A trained model, ready to register.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    /// The kind, as the file names it.
    pub kind: String,
    /// The model file.
    pub bytes: Vec<u8>,
    /// The parameters it was fitted with, defaults filled in (a JSON object).
    pub params: String,
    /// Training metrics (a JSON object: rows, threshold, ...).
    pub metrics: String,
}

/// Aligned training rows: segments of consecutive rows (a gap in the data, a stale
/// condition, ends a segment), row-major, `channels` values per row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainingRows {
    /// Values per row.
    pub n_cols: usize,
    /// Segments in time order, each row-major.
    pub segments: Vec<Vec<f64>>,
}

impl TrainingRows {
    /// Total rows over all segments.
    pub fn n_rows(&self) -> usize {
        if self.n_cols == 0 {
            return 0;
        }
        self.segments.iter().map(|s| s.len() / self.n_cols).sum()
    }
}

/// Turns model files into live models, and trains new ones.
pub trait ModelFactory: Send + Sync + 'static {
    /// The kind trained when a request names none.
    fn default_kind(&self) -> &str;

    /// Reads what a model file is (checking format, version and checksum), without building a
    /// live model.
    fn inspect(&self, bytes: &[u8]) -> Result<ModelInfo, ModelError>;

    /// A live model from a model file, for rows formed as `align` says (its channels must be
    /// the model's feature names, in order).
    fn load(&self, bytes: &[u8], align: &AlignConfig) -> Result<Box<dyn LiveModel>, ModelError>;

    /// Fits a model on training rows. `progress` may be called with the share done (0 to 1)
    /// during a long fit; it returns false when the caller wants the fit abandoned.
    fn train(
        &self,
        spec: &TrainSpec,
        rows: &TrainingRows,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<Trained, ModelError>;
}
