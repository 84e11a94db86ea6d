//! Anomaly detection for pdm, on ndarray.
//!
//! This crate grows into the detection engine (multivariate and streaming detectors, health and
//! remaining useful life, evaluation). Today it holds an Isolation Forest with scikit-learn's
//! semantics and the standard scaler every later model builds on. Both follow the
//! validated-parameters pattern: parameters are built unchecked, checked once, fitting returns a
//! model, and the model scores or transforms.
//!
//! ```
//! use ndarray::Array2;
//! use pdm_core::detector::{Detector, Rows};
//! use pdm_detect::{Contamination, IsolationForest, MaxSamples};
//!
//! // A tight cloud of 200 rows around (0, 0).
//! let x = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f64 / 10.0);
//! let model = IsolationForest::params()
//!     .n_estimators(100)
//!     .max_samples(MaxSamples::Auto)
//!     .contamination(Contamination::Fraction(0.05))
//!     .random_state(42)
//!     .fit(&x.view())?;
//!
//! // scikit-learn's view: lower score_samples is more abnormal, predict gives -1 for outliers.
//! let far = ndarray::array![[25.0, -25.0]];
//! assert_eq!(model.predict(&far.view())?[0], -1);
//!
//! // The pdm Detector seam: higher is more anomalous, above the threshold is an anomaly.
//! let scores = model.score(Rows::new(&[25.0, -25.0, 0.5, 0.5], 2).expect("2 columns"))?;
//! assert!(scores[0] > model.threshold());
//! assert!(scores[0] > scores[1]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The scaler:
//!
//! ```
//! use ndarray::array;
//! use pdm_detect::StandardScaler;
//!
//! let x = array![[1.0, 10.0], [3.0, 10.0]];
//! let scaler = StandardScaler::fit(&x.view())?;
//! let z = scaler.transform(&x.view())?;
//! assert_eq!(z, array![[-1.0, 0.0], [1.0, 0.0]]); // the constant column maps to 0
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use ndarray::{Array1, Array2, ArrayView2, Axis};

pub mod health;
mod iforest;
pub mod stream;

pub use iforest::{
    average_path_length, depth_limit, Contamination, FitNote, IsolationForest,
    IsolationForestParams, IsolationForestParamsError, IsolationForestValidParams, MaxFeatures,
    MaxSamples,
};
pub use stream::{
    nab_scores, nab_scores_with, AnomalyLikelihood, EwmaChart, EwmaChartParams, HalfSpaceTrees,
    HalfSpaceTreesParams, RobustZScore, RobustZScoreParams, ScoreMapping, StreamParamsError,
    StreamSpec,
};

/// Errors of this crate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DetectError {
    /// Fitting needs at least one row.
    #[error("cannot fit on an empty matrix")]
    Empty,
    /// A value is NaN or infinite.
    #[error("row {row}, column {col} is not a finite number")]
    NotFinite {
        /// Row index.
        row: usize,
        /// Column index.
        col: usize,
    },
    /// The matrix has another number of columns than the model was fitted on.
    #[error("expected {expected} columns, got {got}")]
    Columns {
        /// Columns at fit time.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// The forest could outgrow its 32-bit node indices.
    #[error(
        "{n_estimators} trees of up to {max_samples} rows each can exceed 2^32 nodes; \
         use fewer trees or a smaller max_samples"
    )]
    ForestTooLarge {
        /// Trees asked for.
        n_estimators: usize,
        /// Rows per tree.
        max_samples: usize,
    },
    /// A model parameter is out of its range, or does not fit the training set.
    #[error("invalid parameter: {0}")]
    Params(#[from] IsolationForestParamsError),
    /// A streaming-detector parameter is out of its range.
    #[error("invalid parameter: {0}")]
    StreamParams(#[from] StreamParamsError),
    /// A health or remaining-useful-life parameter is out of its range.
    #[error("invalid parameter: {0}")]
    HealthParams(#[from] health::HealthParamsError),
    /// A streaming detector refused a row (through the pdm-core seam).
    #[error(transparent)]
    Stream(#[from] pdm_core::detector::DetectError),
    /// Two series that go together have different lengths.
    #[error("expected {expected} values, got {got}")]
    Length {
        /// Length of the first series.
        expected: usize,
        /// Length of the second.
        got: usize,
    },
    /// Times are not strictly increasing.
    #[error("time {index} is not after the one before it")]
    NotIncreasing {
        /// Index of the offending time.
        index: usize,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, DetectError>;

fn check_finite(x: &ArrayView2<'_, f64>) -> Result<()> {
    for ((row, col), v) in x.indexed_iter() {
        if !v.is_finite() {
            return Err(DetectError::NotFinite { row, col });
        }
    }
    Ok(())
}

/// Centres each column on its mean and scales it to unit (population) standard deviation.
/// Constant columns are centred only, so they map to zero instead of dividing by zero.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardScaler {
    mean: Array1<f64>,
    scale: Array1<f64>,
}

impl StandardScaler {
    /// Learns the mean and standard deviation of each column.
    pub fn fit(x: &ArrayView2<'_, f64>) -> Result<Self> {
        if x.nrows() == 0 {
            return Err(DetectError::Empty);
        }
        check_finite(x)?;
        let mean = x.mean_axis(Axis(0)).ok_or(DetectError::Empty)?;
        let scale = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 0.0 { s } else { 1.0 });
        Ok(Self { mean, scale })
    }

    /// Scales `x` with the learned statistics.
    pub fn transform(&self, x: &ArrayView2<'_, f64>) -> Result<Array2<f64>> {
        if x.ncols() != self.mean.len() {
            return Err(DetectError::Columns {
                expected: self.mean.len(),
                got: x.ncols(),
            });
        }
        check_finite(x)?;
        Ok((x - &self.mean) / &self.scale)
    }

    /// Learned column means.
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// Learned column scales (standard deviations; 1 for constant columns).
    pub fn scale(&self) -> &Array1<f64> {
        &self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn scales_to_zero_mean_unit_variance() {
        let x = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]];
        let s = StandardScaler::fit(&x.view()).expect("fit");
        let z = s.transform(&x.view()).expect("transform");
        for col in z.columns() {
            assert!(col.mean().expect("mean").abs() < 1e-12);
            assert!((col.std(0.0) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(StandardScaler::fit(&empty.view()), Err(DetectError::Empty));
        let nan = array![[1.0, f64::NAN]];
        assert_eq!(
            StandardScaler::fit(&nan.view()),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
        let s = StandardScaler::fit(&array![[1.0, 2.0]].view()).expect("fit");
        assert_eq!(
            s.transform(&array![[1.0]].view()),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn model_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StandardScaler>();
    }
}
