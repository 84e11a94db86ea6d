//! The detection seam: detectors score feature rows; streaming detectors update on one row.
//!
//! Fitting is separate from scoring: validated parameters fit into a model, and a model scores.
//! Implementations live in `pdm-detect`. Higher scores mean more anomalous.

/// A borrowed row-major matrix of feature rows.
#[derive(Debug, Clone, Copy)]
pub struct Rows<'a> {
    data: &'a [f64],
    n_cols: usize,
}

/// A matrix whose data length is not a multiple of its column count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} values do not make rows of {n_cols} columns")]
pub struct ShapeError {
    /// Number of values.
    pub len: usize,
    /// Requested columns.
    pub n_cols: usize,
}

impl<'a> Rows<'a> {
    /// Views `data` as rows of `n_cols` values.
    pub fn new(data: &'a [f64], n_cols: usize) -> Result<Self, ShapeError> {
        if n_cols == 0 || data.len() % n_cols != 0 {
            return Err(ShapeError {
                len: data.len(),
                n_cols,
            });
        }
        Ok(Self { data, n_cols })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.data.len() / self.n_cols
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> Option<&'a [f64]> {
        self.data.get(i * self.n_cols..(i + 1) * self.n_cols)
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &'a [f64] {
        self.data
    }
}

/// Errors of scoring.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// The rows have a different number of features than the model was fitted on.
    #[error("expected {expected} features per row, got {got}")]
    FeatureCount {
        /// Features of the model.
        expected: usize,
        /// Features given.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("row {row}, feature {col} is not a finite number")]
    NotFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
}

/// A fitted batch model.
pub trait Detector: Send + Sync {
    /// Names of the features the model expects, in column order.
    fn feature_names(&self) -> &[String];
    /// One anomaly score per row; higher is more anomalous.
    fn score(&self, rows: Rows<'_>) -> Result<Vec<f64>, DetectError>;
    /// Scores above this are anomalous.
    fn threshold(&self) -> f64;
}

/// A detector that learns as it scores, one row at a time.
pub trait StreamingDetector: Send {
    /// Number of features per row.
    fn n_features(&self) -> usize;
    /// Scores `row` and then learns from it; higher is more anomalous.
    fn update(&mut self, row: &[f64]) -> Result<f64, DetectError>;
    /// The score [`update`](Self::update) would give `row`, without learning from it: the state
    /// is unchanged. For a what-if, or to keep anomalous rows out of what the detector learns
    /// (score, then `update` only the rows that look normal).
    fn score(&self, row: &[f64]) -> Result<f64, DetectError>;
    /// Scores above this are anomalous.
    fn threshold(&self) -> f64;
}
