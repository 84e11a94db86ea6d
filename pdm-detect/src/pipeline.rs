//! The default multivariate pipeline: what pdm runs on a machine's sensors unless told otherwise.
//!
//! 1. **Trailing window mean** of every channel over `window` samples ([`WindowFeatures`] with
//!    [`Feature::Mean`], step 1): one feature row per sample from sample `window - 1` on. It
//!    removes the sample-to-sample noise that dominates raw sensor rows, so what is left is
//!    the state of the machine; it looks only backwards, so it runs live.
//! 2. **Standard scaler** fitted on the training rows: every channel weighs the same whatever
//!    its unit.
//! 3. **PCA** ([`PcaDetector`]) keeping the components that explain `n_components` of the
//!    training variance, and its **Hotelling T²** (or Q, or whichever of the two dominates):
//!    how far the current operating point is from the training ones, in the directions in
//!    which the channels usually move together.
//! 4. **Limit** = `margin` × the largest statistic seen in training. The training set should be
//!    normal operation, so its largest value is a normal value; the margin keeps a row that is
//!    only as unusual as the most unusual training row from raising an alarm. The score of a
//!    row is its statistic divided by the limit, so 1.0 is the alarm level.
//! 5. **k of n** smoothing of the flags, and runs of flags become events ([`crate::decide`]).
//!
//! The defaults (window 10, 90 % of the variance, T², margin 3, 3 of 5) reach F1 0.79 at a
//! false-alarm rate of 11 % on SKAB's valve files under the leaderboard's protocol (see
//! `docs/evaluation.md`), where scikit-learn's Isolation Forest reference gets F1 0.20 at 1.2 %.
//! The margin is the knob that trades missed rows for false alarms: 2.5 to 4 with windows of
//! 10 to 15 samples all land between F1 0.73 and 0.81 there, at false-alarm rates of 4 to 17 %.
//! Training on a few minutes of data sees only a small part of normal operation, hence a margin
//! well above 1.
//!
//! ```
//! use ndarray::Array2;
//! use pdm_detect::pipeline::Pipeline;
//!
//! // Two channels that move together, then a stretch where they part.
//! let x = Array2::from_shape_fn((600, 2), |(i, c)| {
//!     let load = ((i * 37) % 101) as f64 / 100.0 + ((i * 13) % 7) as f64 / 50.0;
//!     if c == 1 && i >= 500 { 3.0 - load } else { load }
//! });
//! let train = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(..400));
//! let model = Pipeline::params().fit(&train, &["flow", "current"])?;
//! let d = model.decide(&x.view())?;
//! // Rows (not windows) of the first event: it starts once the parting shows in the means.
//! let first = d.events[0];
//! assert!(model.row_of(first.start) >= 500 && model.row_of(first.start) < 510);
//! assert!(d.flags[..model.window_index(480).unwrap()].iter().all(|f| !f));
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::attribution::PcaStatistic;
use crate::decide::{DecisionParams, Decisions};
use crate::features::{Feature, WindowFeatures, WindowFeaturesValidParams};
use crate::pca::{NComponents, PcaDetector, PcaDetectorValidParams};
use crate::persist::StateError;
use crate::scale::StandardScaler;
use crate::{DetectError, Result};
use ndarray::{Array1, ArrayView2};

/// An invalid pipeline parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineParamsError {
    /// `window` is below 2 (a trailing mean of one sample is no window feature).
    #[error("window must be at least 2 samples, got {0}")]
    Window(usize),
    /// `margin` is not a finite number of at least 1.
    #[error("margin must be a finite number >= 1, got {0}")]
    Margin(f64),
}

/// Checked pipeline parameters; [`fit`](Self::fit) learns the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineValidParams {
    window: usize,
    n_components: NComponents,
    statistic: PcaStatistic,
    margin: f64,
    k: usize,
    n: usize,
}

/// Unchecked pipeline parameters, from [`Pipeline::params`].
///
/// Defaults: window 10, components explaining 90 % of the variance, T², margin 3, 3 of 5.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineParams(PipelineValidParams);

impl Default for PipelineParams {
    fn default() -> Self {
        Self(PipelineValidParams {
            window: 10,
            n_components: NComponents::Variance(0.9),
            statistic: PcaStatistic::T2,
            margin: 3.0,
            k: 3,
            n: 5,
        })
    }
}

impl PipelineParams {
    /// Samples in the trailing mean (1 uses the raw rows).
    pub fn window(mut self, window: usize) -> Self {
        self.0.window = window;
        self
    }

    /// Principal components to keep.
    pub fn n_components(mut self, n: NComponents) -> Self {
        self.0.n_components = n;
        self
    }

    /// The PCA statistic that scores a row.
    pub fn statistic(mut self, statistic: PcaStatistic) -> Self {
        self.0.statistic = statistic;
        self
    }

    /// The limit as a multiple of the largest training statistic, at least 1.
    pub fn margin(mut self, margin: f64) -> Self {
        self.0.margin = margin;
        self
    }

    /// Flag a row when at least `k` of the last `n` rows pass the limit.
    pub fn k_of_n(mut self, k: usize, n: usize) -> Self {
        self.0.k = k;
        self.0.n = n;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&PipelineValidParams, DetectError> {
        let p = &self.0;
        if p.window < 2 {
            return Err(PipelineParamsError::Window(p.window).into());
        }
        if !(p.margin.is_finite() && p.margin >= 1.0) {
            return Err(PipelineParamsError::Margin(p.margin).into());
        }
        self.pca_params()?;
        self.decision_params().check_ref()?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<PipelineValidParams, DetectError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters, then learns the model; see [`PipelineValidParams::fit`].
    pub fn fit<S: AsRef<str>>(&self, x: &ArrayView2<'_, f64>, channels: &[S]) -> Result<Pipeline> {
        self.check_ref()?.fit(x, channels)
    }

    fn pca_params(&self) -> Result<PcaDetectorValidParams> {
        Ok(PcaDetector::params()
            .n_components(self.0.n_components)
            .check()?)
    }

    fn decision_params(&self) -> DecisionParams {
        DecisionParams::new()
            .threshold(1.0)
            .k_of_n(self.0.k, self.0.n)
    }
}

impl PipelineValidParams {
    /// Samples in the trailing mean.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Components kept, as asked.
    pub fn n_components(&self) -> NComponents {
        self.n_components
    }

    /// The statistic that scores a row.
    pub fn statistic(&self) -> PcaStatistic {
        self.statistic
    }

    /// The limit as a multiple of the largest training statistic.
    pub fn margin(&self) -> f64 {
        self.margin
    }

    /// The `(k, n)` of the smoothing.
    pub fn k_of_n(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// Learns the model on `x` (rows = samples of normal operation, columns = the channels named
    /// by `channels`).
    ///
    /// Errors when `channels` does not name every column, `x` holds a non-finite value, or it
    /// has too few rows: at least `window + 1` (two feature rows), and enough for the PCA.
    pub fn fit<S: AsRef<str>>(&self, x: &ArrayView2<'_, f64>, channels: &[S]) -> Result<Pipeline> {
        let features = self.features();
        let needed = self.window + 1;
        if x.nrows() < needed {
            return Err(DetectError::TooFewRows {
                needed,
                got: x.nrows(),
            });
        }
        let f = features.transform(x, channels)?;
        self.fit_features(
            features,
            f.values(),
            f.names().to_vec(),
            channels,
            x.nrows(),
        )
    }

    /// Learns the model on several segments of consecutive rows (a gap in the data ends a
    /// segment): the windows of each segment, so that no window spans a gap, fitted together.
    /// One segment fits exactly as [`fit`](Self::fit). Segments shorter than a window give no
    /// window; errors with [`DetectError::TooFewRows`] (in windows) when they give fewer than 2.
    pub(crate) fn fit_segments<S: AsRef<str>>(
        &self,
        segments: &[ArrayView2<'_, f64>],
        channels: &[S],
    ) -> Result<Pipeline> {
        let features = self.features();
        let mut parts = Vec::with_capacity(segments.len());
        for x in segments {
            parts.push(features.transform(x, channels)?);
        }
        let n_windows: usize = parts.iter().map(|f| f.values().nrows()).sum();
        if n_windows < 2 {
            return Err(DetectError::TooFewRows {
                needed: 2,
                got: n_windows,
            });
        }
        let views: Vec<_> = parts.iter().map(|f| f.values().view()).collect();
        let values =
            ndarray::concatenate(ndarray::Axis(0), &views).map_err(|_| DetectError::Empty)?;
        let names = features.feature_names(channels);
        let n_rows = segments.iter().map(|x| x.nrows()).sum();
        self.fit_features(features, &values, names, channels, n_rows)
    }

    /// The fit after the window features: scaler, PCA and limits.
    fn fit_features<S: AsRef<str>>(
        &self,
        features: WindowFeaturesValidParams,
        values: &ndarray::Array2<f64>,
        names: Vec<String>,
        channels: &[S],
        n_rows: usize,
    ) -> Result<Pipeline> {
        let scaler = StandardScaler::fit(&values.view())?;
        let z = scaler.transform(&values.view())?;
        let params = PipelineParams(self.clone());
        let pca = params
            .pca_params()?
            .fit(&z.view())?
            .with_feature_names(names)?;
        let stats = pca.statistics(&z.view())?;
        let largest = |v: &Array1<f64>| v.iter().fold(0.0f64, |m, &s| m.max(s));
        // A zero statistic everywhere (constant training rows) would make every change an
        // infinite score; the smallest positive limit keeps the scores finite.
        let limit = |v: &Array1<f64>| (self.margin * largest(v)).max(f64::MIN_POSITIVE);
        Ok(Pipeline {
            params: self.clone(),
            features,
            channels: channels.iter().map(|c| c.as_ref().to_owned()).collect(),
            scaler,
            t2_limit: limit(&stats.t2),
            q_limit: limit(&stats.q),
            pca,
            n_training_rows: Some(n_rows),
        })
    }

    fn features(&self) -> WindowFeaturesValidParams {
        WindowFeatures::params()
            .window(self.window)
            .step(1)
            .features(&[Feature::Mean])
            .check()
            .unwrap_or_else(|_| unreachable!("window >= 1 and step 1 are valid"))
    }
}

/// A fitted default pipeline; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    params: PipelineValidParams,
    features: WindowFeaturesValidParams,
    channels: Vec<String>,
    scaler: StandardScaler,
    pca: PcaDetector,
    t2_limit: f64,
    q_limit: f64,
    n_training_rows: Option<usize>,
}

impl Pipeline {
    /// Default parameters, to adjust and then [`fit`](PipelineParams::fit).
    pub fn params() -> PipelineParams {
        PipelineParams::default()
    }

    /// The parameters the model was fitted with.
    pub fn fit_params(&self) -> &PipelineValidParams {
        &self.params
    }

    /// Channel names, in column order.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// The fitted scaler of the window means.
    pub fn scaler(&self) -> &StandardScaler {
        &self.scaler
    }

    /// The fitted PCA model of the scaled window means.
    pub fn pca(&self) -> &PcaDetector {
        &self.pca
    }

    /// Rows (samples) the pipeline was fitted on, when known.
    pub fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    /// The alarm limits of T² and Q (the score divides by them).
    pub fn limits(&self) -> (f64, f64) {
        (self.t2_limit, self.q_limit)
    }

    /// The row of `x` that score `index` belongs to: the last sample of its window.
    pub fn row_of(&self, index: usize) -> usize {
        index + self.params.window - 1
    }

    /// The score index of row `row`, `None` for rows before the first full window.
    pub fn window_index(&self, row: usize) -> Option<usize> {
        row.checked_sub(self.params.window - 1)
    }

    /// One score per full window of `x` (rows = samples, the channels of training in the same
    /// order): score `i` belongs to row [`row_of(i)`](Self::row_of). 1.0 is the alarm limit.
    ///
    /// To score new rows as they come, pass the last `window - 1` rows before them too, so that
    /// their windows are full (for [`decide`](Self::decide) to flag them as a single call over
    /// everything would, `window - 1 + n - 1` rows: the k-of-n smoothing starts afresh with each
    /// call). Errors on another number of columns or a non-finite value.
    pub fn scores(&self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        if x.ncols() != self.channels.len() {
            return Err(DetectError::Columns {
                expected: self.channels.len(),
                got: x.ncols(),
            });
        }
        let f = self.features.transform(x, &self.channels)?;
        let z = self.scaler.transform(&f.values().view())?;
        let s = self.pca.statistics(&z.view())?;
        let (t2_lim, q_lim) = (self.t2_limit, self.q_limit);
        Ok(match self.params.statistic {
            PcaStatistic::T2 => s.t2 / t2_lim,
            PcaStatistic::Q => s.q / q_lim,
            PcaStatistic::Dominant => ndarray::Zip::from(&s.t2)
                .and(&s.q)
                .map_collect(|&t2, &q| (t2 / t2_lim).max(q / q_lim)),
        })
    }

    /// [`scores`](Self::scores), then the smoothed flags and events (indices are score
    /// indices; [`row_of`](Self::row_of) maps them to rows).
    pub fn decide(&self, x: &ArrayView2<'_, f64>) -> Result<Decisions> {
        let scores = self.scores(x)?;
        let scores = scores.as_slice().ok_or(DetectError::Empty)?;
        PipelineParams(self.params.clone())
            .decision_params()
            .decide(scores)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PipelineState {
    window: usize,
    n_components: crate::pca::NComponentsParam,
    /// `"t2"`, `"q"` or `"dominant"`.
    statistic: String,
    margin: f64,
    k: usize,
    n: usize,
    scaler: crate::scale::StandardScalerState,
    pca: crate::pca::PcaDetectorState,
    t2_limit: f64,
    q_limit: f64,
}

impl crate::persist::Persist for Pipeline {
    const KIND: &'static str = "pipeline";
    type State = PipelineState;

    fn feature_names(&self) -> Vec<String> {
        self.channels.clone()
    }

    fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    fn restore_training_rows(&mut self, n: Option<usize>) {
        self.n_training_rows = n;
        // The scaler and the PCA model were fitted on the training rows' windows.
        let windows = n.and_then(|n| n.checked_sub(self.params.window - 1));
        self.scaler.restore_training_rows(windows);
        self.pca.restore_training_rows(windows);
    }

    fn state(&self) -> PipelineState {
        let p = &self.params;
        PipelineState {
            window: p.window,
            n_components: p.n_components.into(),
            statistic: p.statistic.name().into(),
            margin: p.margin,
            k: p.k,
            n: p.n,
            scaler: self.scaler.state(),
            pca: self.pca.state(),
            t2_limit: self.t2_limit,
            q_limit: self.q_limit,
        }
    }

    fn from_state(
        s: PipelineState,
        channels: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let statistic = PcaStatistic::from_name(&s.statistic).ok_or_else(|| {
            StateError::new(
                "statistic",
                format!("unknown pipeline statistic {:?}", s.statistic),
            )
        })?;
        let params = Pipeline::params()
            .window(s.window)
            .n_components(s.n_components.into())
            .statistic(statistic)
            .margin(s.margin)
            .k_of_n(s.k, s.n)
            .check()
            .map_err(StateError::params)?;
        let features = params.features();
        let names = features.feature_names(&channels);
        let scaler = StandardScaler::from_state(s.scaler, names.clone())?;
        let pca = PcaDetector::from_state(s.pca, names)?;
        if scaler.mean().len() != channels.len() {
            return Err(StateError::new(
                "scaler",
                format!(
                    "the pipeline's scaler has {} columns for {} channels",
                    scaler.mean().len(),
                    channels.len()
                ),
            ));
        }
        let positive = |l: f64| l.is_finite() && l > 0.0;
        if !positive(s.t2_limit) || !positive(s.q_limit) {
            return Err(StateError::new(
                "t2_limit",
                "the pipeline's limits must be finite and positive",
            ));
        }
        Ok(Self {
            params,
            features,
            channels,
            scaler,
            pca,
            t2_limit: s.t2_limit,
            q_limit: s.q_limit,
            n_training_rows: None,
        })
    }
}

crate::persist::persistable!(Pipeline);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ArrayView2, Axis, Slice};

    fn head(x: &Array2<f64>, n: usize) -> ArrayView2<'_, f64> {
        x.slice_axis(Axis(0), Slice::from(..n))
    }

    /// Two channels driven by one load, with a little independent noise.
    fn coupled(n: usize) -> Array2<f64> {
        Array2::from_shape_fn((n, 2), |(i, c)| {
            let load = ((i * 37) % 101) as f64 / 100.0;
            let noise = (((i * 7 + c * 3) % 11) as f64 - 5.0) / 200.0;
            2.0 * load + noise + c as f64
        })
    }

    #[test]
    fn parameters_are_checked_with_their_range() {
        let e = Pipeline::params().window(0).check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid parameter: window must be at least 2 samples, got 0"
        );
        // One sample is no window: refused here, not a panic in fit.
        assert!(Pipeline::params().window(1).check().is_err());
        let e = Pipeline::params().margin(0.5).check().unwrap_err();
        assert!(e
            .to_string()
            .contains("margin must be a finite number >= 1, got 0.5"));
        assert!(Pipeline::params().margin(f64::NAN).check().is_err());
        assert!(Pipeline::params().k_of_n(4, 3).check().is_err());
        assert!(Pipeline::params()
            .n_components(NComponents::Variance(1.5))
            .check()
            .is_err());
        let p = Pipeline::params().check().expect("defaults are valid");
        assert_eq!(
            (p.window(), p.margin(), p.k_of_n(), p.statistic()),
            (10, 3.0, (3, 5), PcaStatistic::T2)
        );
    }

    #[test]
    fn training_rows_stay_below_the_limit_and_a_broken_correlation_passes_it() {
        let x = coupled(300);
        let model = Pipeline::params()
            .k_of_n(1, 1)
            .fit(&x.view(), &["a", "b"])
            .expect("fit");
        let train_scores = model.scores(&x.view()).expect("scores");
        assert_eq!(train_scores.len(), 300 - 9);
        // Exactly 1 / margin at the largest training row.
        let top = train_scores.iter().fold(0.0f64, |m, &s| m.max(s));
        assert!((top - 1.0 / 3.0).abs() < 1e-12, "{top}");

        let mut live = coupled(400);
        for i in 350..400 {
            live[[i, 1]] -= 3.0;
        }
        let d = model.decide(&live.view()).expect("decide");
        let first = d.flags.iter().position(|&f| f).expect("flagged");
        assert!(
            (350..=360).contains(&model.row_of(first)),
            "first flag at row {}",
            model.row_of(first)
        );
        assert!(d.flags[model.window_index(360).unwrap()..]
            .iter()
            .all(|&f| f));
        assert_eq!(d.events.len(), 1);
    }

    #[test]
    fn every_statistic_scores_and_windows_map_to_rows() {
        let x = coupled(200);
        for statistic in [PcaStatistic::T2, PcaStatistic::Q, PcaStatistic::Dominant] {
            let model = Pipeline::params()
                .statistic(statistic)
                .window(5)
                .fit(&x.view(), &["a", "b"])
                .expect("fit");
            let s = model.scores(&x.view()).expect("scores");
            assert_eq!(s.len(), 196);
            assert!(s.iter().all(|v| v.is_finite() && *v >= 0.0 && *v <= 1.0));
            assert_eq!(model.row_of(0), 4);
            assert_eq!(model.window_index(3), None);
            assert_eq!(model.window_index(4), Some(0));
        }
    }

    #[test]
    fn bad_input_is_refused() {
        let x = coupled(100);
        assert_eq!(
            Pipeline::params().fit(&head(&x, 10), &["a", "b"]),
            Err(DetectError::TooFewRows {
                needed: 11,
                got: 10
            })
        );
        assert!(Pipeline::params().fit(&x.view(), &["a"]).is_err());
        let model = Pipeline::params().fit(&x.view(), &["a", "b"]).expect("fit");
        assert_eq!(
            model.scores(&x.slice_axis(Axis(1), Slice::from(..1))),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        let mut bad = x.clone();
        bad[[50, 1]] = f64::NAN;
        assert_eq!(
            model.scores(&bad.view()),
            Err(DetectError::NotFinite { row: 50, col: 1 })
        );
        // Shorter than a window: no score, no error.
        assert_eq!(model.scores(&head(&x, 5)).expect("short").len(), 0);
    }

    #[test]
    fn constant_training_rows_give_finite_scores() {
        let x = Array2::from_elem((50, 3), 2.0);
        let model = Pipeline::params()
            .fit(&x.view(), &["a", "b", "c"])
            .expect("fit");
        let mut live = x.clone();
        live[[40, 0]] = 3.0;
        assert!(model
            .scores(&live.view())
            .expect("scores")
            .iter()
            .all(|v| v.is_finite()));
    }

    #[test]
    fn a_saved_pipeline_loads_and_scores_bit_for_bit_the_same() {
        let x = coupled(300);
        let model = Pipeline::params()
            .statistic(PcaStatistic::Dominant)
            .fit(&x.view(), &["flow", "current"])
            .expect("fit");
        let bytes = model.to_bytes();
        let loaded = Pipeline::from_bytes(&bytes).expect("load");
        assert_eq!(loaded, model);
        assert_eq!(loaded.n_training_rows(), Some(300));
        assert_eq!(loaded.pca().n_training_rows(), Some(291), "windows of 10");
        let mut live = coupled(400);
        live[[350, 1]] += 2.0;
        let (a, b) = (
            model.scores(&live.view()).expect("scores"),
            loaded.scores(&live.view()).expect("scores"),
        );
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert_eq!(loaded.to_bytes(), bytes, "writing is deterministic");
        match crate::persist::from_bytes(&bytes).expect("any") {
            crate::persist::Model::Pipeline(p) => assert_eq!(p.channels(), ["flow", "current"]),
            other => panic!("{other:?}"),
        }
        // Training metadata from a file cannot overflow the window arithmetic.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        v["n_training_rows"] = u64::MAX.into();
        let huge = Pipeline::from_bytes(&serde_json::to_vec(&v).expect("json")).expect("load");
        assert_eq!(huge.n_training_rows(), Some(u64::MAX as usize));
        assert_eq!(huge.window_index(usize::MAX), Some(usize::MAX - 9));
        // A damaged limit behind a valid checksum is refused, not trusted.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        v["model"]["margin"] = 0.5.into();
        let sum = crate::persist::checksum(&v["model"]);
        v["checksum"] = sum.into();
        let e = Pipeline::from_bytes(&serde_json::to_vec(&v).expect("json")).unwrap_err();
        assert!(e.to_string().contains("margin"), "{e}");
    }
}
