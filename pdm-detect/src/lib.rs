//! Anomaly detection for pdm, on ndarray.
//!
//! The detection engine: a batch pipeline from raw sensor series to alarms (window
//! [`features`], scalers ([`scale`]), detectors (the [`pca`] detector with Hotelling's T² and Q,
//! an Isolation Forest with scikit-learn's semantics), [`decide`] (thresholds, "k of n"
//! smoothing, events) and [`attribution`] (which sensor)); streaming detectors ([`stream`]:
//! robust z-score, EWMA chart, half-space trees, context detector, registered once as
//! [`StreamKind`]s); [`health`] index and remaining useful life;
//! versioned model files ([`persist`]); live scoring of any model file, one row at a time, and
//! training from aligned rows ([`live`]: [`DetectFactory`], pdm-core's `ModelFactory`); and the
//! NAB and SKAB evaluation ([`eval`]). Models follow
//! the validated-parameters pattern: parameters are built unchecked, checked once, fitting returns
//! a model, and the model scores or transforms.
//!
//! From a multichannel series to events and the sensor to blame:
//!
//! ```
//! use ndarray::{Array2, Axis};
//! use pdm_core::detector::{Detector, Rows};
//! use pdm_detect::{
//!     pca_attribution, DecisionParams, NComponents, PcaDetector, PcaStatistic, StandardScaler,
//!     WindowFeatures,
//! };
//!
//! // Three sensors, 3000 samples; from sample 2500 on the bearing vibrates twice as hard.
//! let series = Array2::from_shape_fn((3000, 3), |(t, c)| {
//!     let noise = ((t * 7919 + c * 104_729) % 1009) as f64 / 1009.0 - 0.5;
//!     let wave = (t as f64 * 0.3 + c as f64).sin();
//!     let gain = if c == 2 && t >= 2500 { 2.0 } else { 1.0 };
//!     10.0 * c as f64 + gain * (wave + 0.2 * noise)
//! });
//! let channels = ["inlet", "outlet", "bearing"];
//!
//! // Windows of 100 samples every 20; the first 2000 samples are the healthy training period.
//! let features = WindowFeatures::params()
//!     .window(100)
//!     .step(20)
//!     .transform(&series.view(), &channels)?;
//! let x = features.values();
//! let n_train = features.ends().iter().take_while(|&&end| end < 2000).count();
//! let train = x.slice_axis(Axis(0), (0..n_train).into());
//!
//! let scaler = StandardScaler::fit(&train)?;
//! let model = PcaDetector::params()
//!     .n_components(NComponents::Variance(0.95))
//!     .alpha(0.99)
//!     .fit(&scaler.transform(&train)?.view())?
//!     .with_feature_names(features.names().to_vec())?;
//!
//! // Score everything, flag 3 of the last 5 windows above the threshold, group into events.
//! let z = scaler.transform(&x.view())?;
//! let rows = z.as_slice().expect("a new array is contiguous");
//! let scores = model.score(Rows::new(rows, z.ncols()).expect("whole rows"))?;
//! let decisions = DecisionParams::new()
//!     .threshold(model.threshold())
//!     .k_of_n(3, 5)
//!     .min_gap(10)
//!     .decide(&scores)?;
//! // One event, and it starts in a window that holds faulty samples.
//! assert_eq!(decisions.events.len(), 1);
//! let event = decisions.events[0];
//! assert!(features.ends()[event.start] >= 2500);
//!
//! // The bearing's features explain the peak.
//! let peak = z.row(event.peak_index).to_vec();
//! let blame = pca_attribution(&model, &peak, PcaStatistic::Dominant)?;
//! assert_eq!(blame.sensors[0].0, "bearing");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The Isolation Forest:
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

use ndarray::ArrayView2;

pub mod attribution;
pub mod decide;
pub mod eval;
pub mod features;
pub mod health;
mod iforest;
pub mod live;
pub mod pca;
pub mod persist;
pub mod pipeline;
pub mod scale;
mod stats;
pub mod stream;

pub use attribution::{pca_attribution, Attribution, MedianReplacement, PcaStatistic};
pub use decide::{
    calibrate_threshold, DecisionParams, DecisionParamsError, DecisionValidParams, Decisions, Event,
};
pub use features::{
    channel_of, Feature, WindowFeatureMatrix, WindowFeatures, WindowFeaturesParams,
    WindowFeaturesParamsError, WindowFeaturesValidParams,
};
pub use live::DetectFactory;
pub use pca::{
    NComponents, PcaContributions, PcaDetector, PcaDetectorParams, PcaDetectorParamsError,
    PcaDetectorValidParams, PcaLimits, PcaStatistics,
};
pub use pipeline::{Pipeline, PipelineParams, PipelineParamsError, PipelineValidParams};
pub use scale::{RobustScaler, StandardScaler};

pub use iforest::{
    average_path_length, depth_limit, Contamination, FitNote, IsolationForest,
    IsolationForestParams, IsolationForestParamsError, IsolationForestValidParams, MaxFeatures,
    MaxSamples,
};
pub use stream::{
    nab_scores, nab_scores_with, AnomalyLikelihood, EwmaChart, EwmaChartParams, HalfSpaceTrees,
    HalfSpaceTreesParams, RobustZScore, RobustZScoreParams, ScoreMapping, StreamKind, StreamModel,
    StreamParamsError, StreamSpec,
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
    /// A model file cannot be read, written or used.
    #[error("model file: {0}")]
    ModelFile(persist::ModelFileError),
    /// A window-feature parameter is out of its range.
    #[error("invalid parameter: {0}")]
    WindowFeatures(#[from] WindowFeaturesParamsError),
    /// A PCA detector parameter is out of its range, or does not fit the training set.
    #[error("invalid parameter: {0}")]
    Pca(#[from] PcaDetectorParamsError),
    /// The training set has too few rows for the model.
    #[error("need at least {needed} rows, got {got}")]
    TooFewRows {
        /// Rows the model needs.
        needed: usize,
        /// Rows given.
        got: usize,
    },
    /// A decision parameter is out of its range.
    #[error("invalid parameter: {0}")]
    Decision(#[from] DecisionParamsError),
    /// A parameter of the default pipeline is out of its range.
    #[error("invalid parameter: {0}")]
    Pipeline(#[from] PipelineParamsError),
    /// A score is NaN or infinite.
    #[error("score {index} is not a finite number")]
    NotFiniteScore {
        /// Position of the score.
        index: usize,
    },
    /// A detector failed while scoring.
    #[error("detector: {0}")]
    Detector(#[from] pdm_core::detector::DetectError),
    /// Two sequences that go together have different lengths.
    #[error("expected {expected} values, got {got}")]
    Length {
        /// Length of the first sequence.
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

fn check_finite<T: Value>(x: &ArrayView2<'_, T>) -> Result<()> {
    for ((row, col), &v) in x.indexed_iter() {
        if !v.into().is_finite() {
            return Err(DetectError::NotFinite { row, col });
        }
    }
    Ok(())
}

/// An element type models read without converting the whole matrix first: `f64`, and `f32`
/// (widened exactly to `f64` as it is read, block by block, e.g. by
/// [`IsolationForest::score_samples`]).
pub trait Value: Copy + Into<f64> + Send + Sync + 'static + sealed::Sealed {}

impl Value for f64 {}
impl Value for f32 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f64 {}
    impl Sealed for f32 {}
}

/// numpy's default ("linear") quantile of sorted, non-empty data, `q` in [0, 1].
///
/// Callers check that `sorted` is non-empty and `q` in range; this only interpolates.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let pos = last as f64 * q;
    let lo = (pos.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let t = pos - lo as f64;
    let (a, b) = (sorted[lo], sorted[hi]);
    let d = b - a;
    // numpy's _lerp interpolates from the nearer end, which keeps the result monotone in t.
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}
