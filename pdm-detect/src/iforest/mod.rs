//! Isolation Forest (Liu, Ting & Zhou 2008) with scikit-learn's semantics.
//!
//! See [`IsolationForest`] for the model and `docs/detection.md` for the formulas.

mod params;
mod tree;

#[cfg(test)]
mod nab_tests;

pub use params::{
    Contamination, IsolationForestParams, IsolationForestParamsError, IsolationForestValidParams,
    MaxFeatures, MaxSamples,
};
pub use tree::{average_path_length, depth_limit};

use crate::persist::StateError;
use crate::{check_finite, DetectError, Result, Value};
use ndarray::{Array1, ArrayView2, Axis};
use pdm_core::detector::{self, Detector, Rows};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hash::{BuildHasher, Hasher};
use tree::{Forest, ForestParts, TreeSpec};

/// Below this many rows per thread, scoring stays on the calling thread: spawning costs more
/// than it saves.
const MIN_ROWS_PER_THREAD: usize = 1024;

/// Something about a fit worth telling the caller, where scikit-learn would warn.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FitNote {
    /// `max_samples` asked for more rows than the training set has; all rows were used.
    MaxSamplesClipped {
        /// The count asked for.
        requested: usize,
        /// Rows of the training set, used instead.
        n_rows: usize,
    },
}

impl std::fmt::Display for FitNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MaxSamplesClipped { requested, n_rows } => write!(
                f,
                "max_samples ({requested}) is greater than the number of rows ({n_rows}); \
                 max_samples is set to {n_rows}"
            ),
        }
    }
}

/// A fitted Isolation Forest.
///
/// Scores follow scikit-learn: [`score_samples`](Self::score_samples) is the negated anomaly
/// score of the paper (in [-1, 0), lower is more abnormal), [`offset`](Self::offset) is the
/// decision boundary, [`decision_function`](Self::decision_function) is `score_samples - offset`
/// and [`predict`](Self::predict) is -1 where that is negative. Through the pdm
/// [`Detector`] seam, [`Detector::score`] is the anomaly score itself (`-score_samples`, higher
/// is more anomalous) and [`Detector::threshold`] is `-offset`.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForest {
    forest: Forest,
    params: IsolationForestValidParams,
    n_features: usize,
    feature_names: Vec<String>,
    max_samples: usize,
    max_features: usize,
    depth_limit: usize,
    offset: f64,
    notes: Vec<FitNote>,
    n_training_rows: Option<usize>,
}

impl IsolationForest {
    /// Default parameters, to adjust and then [`check`](IsolationForestParams::check) or
    /// [`fit`](IsolationForestParams::fit).
    pub fn params() -> IsolationForestParams {
        IsolationForestParams::default()
    }

    fn fit_valid(p: &IsolationForestValidParams, x: &ArrayView2<'_, f64>) -> Result<Self> {
        let (n_rows, n_cols) = x.dim();
        if n_rows == 0 || n_cols == 0 {
            return Err(DetectError::Empty);
        }
        check_finite(x)?;
        let (max_samples, clipped) = p.effective_max_samples(n_rows)?;
        let max_features = p.effective_max_features(n_cols)?;
        // A tree on m rows has at most 2m - 1 nodes; node indices are u32 to keep the forest
        // small in cache, so refuse a forest that could overflow them rather than wrap.
        let node_bound = (2 * max_samples as u128 - 1) * p.n_estimators as u128;
        if node_bound > u128::from(u32::MAX) {
            return Err(DetectError::ForestTooLarge {
                n_estimators: p.n_estimators,
                max_samples,
            });
        }
        let notes: Vec<FitNote> = clipped
            .map(|requested| FitNote::MaxSamplesClipped { requested, n_rows })
            .into_iter()
            .collect();
        let data = row_major(x);
        let depth_limit = tree::depth_limit(max_samples);
        let spec = TreeSpec {
            data: &data,
            n_rows,
            n_cols,
            max_samples,
            max_features,
            bootstrap: p.bootstrap,
            max_depth: depth_limit,
        };
        // One seed per tree, drawn up front from the forest's seed: a tree's shape then depends
        // on its position only, not on which thread grows it.
        let mut master = StdRng::seed_from_u64(p.random_state.unwrap_or_else(entropy));
        let seeds: Vec<u64> = (0..p.n_estimators).map(|_| master.random()).collect();
        let threads = p.n_threads.min(seeds.len());
        let forest = if threads <= 1 {
            Forest::from_trees(seeds.iter().map(|&s| spec.grow(s)))
        } else {
            let per_thread = seeds.len().div_ceil(threads);
            let spec = &spec;
            let parts: Vec<Vec<tree::Tree>> = std::thread::scope(|scope| {
                let handles: Vec<_> = seeds
                    .chunks(per_thread)
                    .map(|chunk| scope.spawn(move || chunk.iter().map(|&s| spec.grow(s)).collect()))
                    .collect();
                handles.into_iter().map(join).collect()
            });
            Forest::from_trees(parts.into_iter().flatten())
        };
        let mut model = Self {
            forest,
            params: p.clone(),
            n_features: n_cols,
            feature_names: (0..n_cols).map(|i| format!("x{i}")).collect(),
            max_samples,
            max_features,
            depth_limit,
            offset: -0.5,
            notes,
            n_training_rows: Some(n_rows),
        };
        if let Contamination::Fraction(c) = p.contamination {
            let mut scores = model.score_samples_of(x);
            scores.sort_unstable_by(f64::total_cmp);
            // scikit-learn: np.percentile(score_samples(X), 100 * contamination).
            model.offset = percentile_linear(&scores, 100.0 * c);
        }
        Ok(model)
    }

    /// Names the features (the default names are `x0`, `x1`, ...); there must be one name per
    /// feature.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.n_features {
            return Err(DetectError::Columns {
                expected: self.n_features,
                got: names.len(),
            });
        }
        self.feature_names = names;
        Ok(self)
    }

    /// Opposite of the paper's anomaly score, per row of `x`: `-2^(-E[h(x)] / c(max_samples))`
    /// with `E[h(x)]` the mean path length over the trees. In [-1, 0); lower is more abnormal.
    ///
    /// Errors when `x` has another number of columns than the training set or holds a
    /// non-finite value; zero rows give an empty result.
    ///
    /// `x` may be `f64` or `f32` (widened exactly), in any memory layout: rows are read block by
    /// block, the matrix is not copied first.
    pub fn score_samples<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array1<f64>> {
        self.check_input(x)?;
        Ok(Array1::from(self.score_samples_of(x)))
    }

    /// `score_samples - offset`: negative for outliers, positive for inliers.
    pub fn decision_function<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array1<f64>> {
        Ok(self.score_samples(x)? - self.offset)
    }

    /// +1 for an inlier, -1 for an outlier (a negative [`decision_function`](Self::decision_function)).
    pub fn predict<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array1<i8>> {
        Ok(self
            .decision_function(x)?
            .mapv(|d| if d < 0.0 { -1 } else { 1 }))
    }

    /// The paper's anomaly score `2^(-E[h(x)] / c(max_samples))`, in (0, 1]; higher is more
    /// anomalous. The same as [`Detector::score`].
    pub fn anomaly_score<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array1<f64>> {
        Ok(-self.score_samples(x)?)
    }

    /// Rows the forest was fitted on, when known.
    pub fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    /// Decision boundary on [`score_samples`](Self::score_samples): -0.5 with
    /// [`Contamination::Auto`], else the contamination percentile of the training scores.
    pub fn offset(&self) -> f64 {
        self.offset
    }

    /// The parameters the forest was fitted with.
    pub fn fit_params(&self) -> &IsolationForestValidParams {
        &self.params
    }

    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.forest.n_trees()
    }

    /// Total number of nodes over all trees.
    pub fn n_nodes(&self) -> usize {
        self.forest.n_nodes()
    }

    /// Rows each tree was grown on (scikit-learn's `max_samples_`).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }

    /// Features each tree saw.
    pub fn max_features(&self) -> usize {
        self.max_features
    }

    /// Depth limit of the trees, `ceil(log2(max_samples))`.
    pub fn depth_limit(&self) -> usize {
        self.depth_limit
    }

    /// Number of features of the training set.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// What scikit-learn would have warned about during the fit.
    pub fn notes(&self) -> &[FitNote] {
        &self.notes
    }

    fn check_input<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<()> {
        if x.ncols() != self.n_features {
            return Err(DetectError::Columns {
                expected: self.n_features,
                got: x.ncols(),
            });
        }
        check_finite(x)
    }

    /// Scores validated rows, on `n_threads` threads when there are enough rows.
    fn score_samples_of<T: Value>(&self, x: &ArrayView2<'_, T>) -> Vec<f64> {
        let n_rows = x.nrows();
        let mut out = vec![0.0; n_rows];
        let threads = self
            .params
            .n_threads
            .min(n_rows / MIN_ROWS_PER_THREAD)
            .max(1);
        if threads == 1 {
            self.forest.path_length_sums_of(x, &mut out);
        } else {
            let per_thread = n_rows.div_ceil(threads);
            let forest = &self.forest;
            std::thread::scope(|scope| {
                let handles: Vec<_> = out
                    .chunks_mut(per_thread)
                    .zip(x.axis_chunks_iter(Axis(0), per_thread))
                    .map(|(o, d)| scope.spawn(move || forest.path_length_sums_of(&d, o)))
                    .collect();
                handles.into_iter().for_each(join);
            });
        }
        let denominator = self.forest.n_trees() as f64 * average_path_length(self.max_samples);
        for s in &mut out {
            // With one row per tree c(1) = 0; scikit-learn takes the ratio as 1 then.
            let ratio = if denominator != 0.0 {
                *s / denominator
            } else {
                1.0
            };
            *s = -(-ratio).exp2();
        }
        out
    }
}

impl Detector for IsolationForest {
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    fn score(&self, rows: Rows<'_>) -> std::result::Result<Vec<f64>, detector::DetectError> {
        if rows.n_cols() != self.n_features {
            return Err(detector::DetectError::FeatureCount {
                expected: self.n_features,
                got: rows.n_cols(),
            });
        }
        let data = rows.as_slice();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(detector::DetectError::NotFinite {
                row: i / self.n_features,
                col: i % self.n_features,
            });
        }
        let view =
            ArrayView2::from_shape((rows.n_rows(), self.n_features), data).map_err(|_| {
                detector::DetectError::FeatureCount {
                    expected: self.n_features,
                    got: rows.n_cols(),
                }
            })?;
        let mut scores = self.score_samples_of(&view);
        for s in &mut scores {
            *s = -*s;
        }
        Ok(scores)
    }

    fn threshold(&self) -> f64 {
        -self.offset
    }
}

/// The matrix as one row-major slice, copied only when its layout is not already that.
fn row_major<'a>(x: &'a ArrayView2<'_, f64>) -> std::borrow::Cow<'a, [f64]> {
    match x.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(x.iter().copied().collect()),
    }
}

/// A seed nobody chose, for forests without `random_state`: std's per-process random hash keys
/// (rand's OS entropy source is not among this crate's features).
fn entropy() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x5eed);
    h.finish()
}

/// Joins a scoped thread, passing on its panic (a bug here, never bad input) unchanged.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join()
        .unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

/// numpy's default ("linear") percentile of sorted, non-empty data, `q` in [0, 100].
fn percentile_linear(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let pos = (n - 1) as f64 * (q / 100.0);
    let lo = (pos.floor() as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2, ShapeBuilder};
    use rand::distr::StandardUniform;

    /// `n` rows of `d` standard-ish normal features (sum of uniforms), fixed seed.
    fn blob(n: usize, d: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((n, d), |_| {
            (0..12)
                .map(|_| rng.sample::<f64, _>(StandardUniform))
                .sum::<f64>()
                - 6.0
        })
    }

    fn params() -> IsolationForestParams {
        IsolationForest::params().random_state(42)
    }

    #[test]
    fn separated_outlier_gets_the_lowest_score() {
        let mut x = blob(300, 2, 1);
        x.row_mut(137).assign(&array![12.0, -12.0]);
        let model = params().fit(&x.view()).expect("fit");
        let s = model.score_samples(&x.view()).expect("score");
        let (argmin, min) = s
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1))
            .expect("non-empty");
        assert_eq!(argmin, 137);
        assert!(*min < -0.7, "outlier score {min}");
        assert!(s.iter().all(|v| (-1.0..0.0).contains(v)));
        assert_eq!(model.predict(&x.view()).expect("predict")[137], -1);
        let scored = Detector::score(
            &model,
            Rows::new(&[12.0, -12.0, 0.0, 0.0], 2).expect("rows"),
        )
        .expect("score");
        assert!(scored[0] > model.threshold());
        assert!(scored[1] < model.threshold());
    }

    #[test]
    fn auto_contamination_offset_is_minus_half() {
        let model = params().fit(&blob(50, 3, 2).view()).expect("fit");
        assert_eq!(model.offset(), -0.5);
        assert_eq!(Detector::threshold(&model), 0.5);
    }

    #[test]
    fn contamination_flags_its_share_of_training_rows() {
        let x = blob(1000, 2, 3);
        let model = params()
            .contamination(Contamination::Fraction(0.1))
            .fit(&x.view())
            .expect("fit");
        let outliers = model
            .predict(&x.view())
            .expect("predict")
            .iter()
            .filter(|&&p| p == -1)
            .count();
        // The offset is the 10th percentile of these very scores: exactly 100 lie below it,
        // bar ties at the boundary.
        assert!((95..=105).contains(&outliers), "{outliers} outliers");
        let d = model.decision_function(&x.view()).expect("decision");
        let s = model.score_samples(&x.view()).expect("score");
        assert!((&s - model.offset() - &d).iter().all(|v| v.abs() < 1e-15));
    }

    #[test]
    fn numpy_percentile() {
        let v = [1.0, 2.0, 3.0, 4.0];
        // np.percentile([1, 2, 3, 4], q) for q = 0, 10, 50, 100: 1.0, 1.3, 2.5, 4.0.
        assert_eq!(percentile_linear(&v, 0.0), 1.0);
        assert!((percentile_linear(&v, 10.0) - 1.3).abs() < 1e-12);
        assert_eq!(percentile_linear(&v, 50.0), 2.5);
        assert_eq!(percentile_linear(&v, 100.0), 4.0);
        assert_eq!(percentile_linear(&[7.0], 30.0), 7.0);
    }

    #[test]
    fn deterministic_across_runs_and_thread_counts() {
        let x = blob(5000, 3, 4);
        let p = params()
            .n_estimators(20)
            .max_features(MaxFeatures::Count(2))
            .contamination(Contamination::Fraction(0.05));
        let one = p.clone().fit(&x.view()).expect("fit");
        let again = p.clone().fit(&x.view()).expect("fit");
        let three = p.clone().n_threads(3).fit(&x.view()).expect("fit");
        assert_eq!(one.forest, again.forest);
        assert_eq!(one.forest, three.forest);
        let s1 = one.score_samples(&x.view()).expect("score");
        assert_eq!(s1, three.score_samples(&x.view()).expect("score"));
        assert_eq!(one.offset(), three.offset());
        let other = params()
            .random_state(43)
            .n_estimators(20)
            .fit(&x.view())
            .expect("fit");
        assert_ne!(one.forest, other.forest);
    }

    #[test]
    fn bootstrap_and_small_subsamples() {
        let x = blob(40, 2, 5);
        let model = params()
            .bootstrap(true)
            .max_samples(MaxSamples::Count(500))
            .fit(&x.view())
            .expect("fit");
        assert_eq!(model.max_samples(), 40);
        assert_eq!(model.depth_limit(), 6);
        assert_eq!(
            model.notes(),
            [FitNote::MaxSamplesClipped {
                requested: 500,
                n_rows: 40
            }]
        );
        // One row per tree: every path is 0 and c(1) = 0, which scikit-learn scores -0.5.
        let single = params()
            .max_samples(MaxSamples::Count(1))
            .fit(&x.view())
            .expect("fit");
        let s = single.score_samples(&x.view()).expect("score");
        assert!(s.iter().all(|&v| v == -0.5));
    }

    #[test]
    fn rejects_bad_input() {
        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(params().fit(&empty.view()), Err(DetectError::Empty));
        let no_cols = Array2::<f64>::zeros((3, 0));
        assert_eq!(params().fit(&no_cols.view()), Err(DetectError::Empty));
        let inf = array![[1.0, 2.0], [3.0, f64::INFINITY]];
        let e = params().fit(&inf.view()).expect_err("inf");
        assert_eq!(e, DetectError::NotFinite { row: 1, col: 1 });
        assert_eq!(e.to_string(), "row 1, column 1 is not a finite number");
        let e = params()
            .n_estimators(0)
            .fit(&array![[1.0]].view())
            .expect_err("param");
        assert_eq!(
            e.to_string(),
            "invalid parameter: n_estimators must be >= 1, got 0"
        );
        let e = params()
            .max_features(MaxFeatures::Count(3))
            .fit(&array![[1.0, 2.0]].view())
            .expect_err("too many features");
        assert!(e.to_string().contains("max_features"));

        // Refused before any tree is grown, so this costs nothing.
        let many = Array2::<f64>::zeros((1 << 22, 1));
        let e = params()
            .n_estimators(1024)
            .max_samples(MaxSamples::Fraction(1.0))
            .fit(&many.view())
            .expect_err("too large");
        assert!(matches!(e, DetectError::ForestTooLarge { .. }), "{e}");

        let model = params().fit(&blob(20, 2, 6).view()).expect("fit");
        let e = model
            .score_samples(&array![[1.0, 2.0, 3.0]].view())
            .expect_err("cols");
        assert_eq!(
            e,
            DetectError::Columns {
                expected: 2,
                got: 3
            }
        );
        let e = model
            .score_samples(&array![[1.0, 2.0], [f64::NAN, 0.0]].view())
            .expect_err("nan");
        assert_eq!(e, DetectError::NotFinite { row: 1, col: 0 });
        let none = model
            .score_samples(&Array2::<f64>::zeros((0, 2)).view())
            .expect("empty");
        assert!(none.is_empty());

        let rows = Rows::new(&[1.0, 2.0, 3.0], 3).expect("rows");
        assert_eq!(
            Detector::score(&model, rows),
            Err(detector::DetectError::FeatureCount {
                expected: 2,
                got: 3
            })
        );
        let rows = Rows::new(&[1.0, 2.0, 3.0, f64::NEG_INFINITY], 2).expect("rows");
        assert_eq!(
            Detector::score(&model, rows),
            Err(detector::DetectError::NotFinite { row: 1, col: 1 })
        );
        assert!(model.clone().with_feature_names(vec!["a".into()]).is_err());
        let named = model
            .with_feature_names(vec!["a".into(), "b".into()])
            .expect("names");
        assert_eq!(Detector::feature_names(&named), ["a", "b"]);
    }

    #[test]
    fn non_contiguous_input_scores_like_contiguous() {
        let x = blob(100, 2, 7);
        let model = params().n_estimators(10).fit(&x.view()).expect("fit");
        let mut column_major = Array2::zeros((100, 2).f());
        column_major.assign(&x);
        assert!(column_major.view().as_slice().is_none());
        assert_eq!(
            model.score_samples(&column_major.view()).expect("score"),
            model.score_samples(&x.view()).expect("score")
        );
    }

    #[test]
    fn f32_input_scores_as_its_exact_f64_widening_in_any_layout() {
        let x = blob(1000, 3, 8).mapv(|v| v as f32);
        let wide = x.mapv(f64::from);
        let model = params().n_threads(2).fit(&wide.view()).expect("fit");
        let want = model.score_samples(&wide.view()).expect("f64");
        let mut column_major = Array2::<f32>::zeros((1000, 3).f());
        column_major.assign(&x);
        for got in [
            model.score_samples(&x.view()).expect("f32"),
            model
                .score_samples(&column_major.view())
                .expect("f32, column-major"),
            model.score_samples(&x.t().t()).expect("f32, view"),
        ] {
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        let mut bad = x.clone();
        bad[[3, 1]] = f32::NAN;
        assert_eq!(
            model.score_samples(&bad.view()),
            Err(DetectError::NotFinite { row: 3, col: 1 })
        );
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<IsolationForest>();
        assert_send_sync::<IsolationForestParams>();
        assert_send_sync::<IsolationForestValidParams>();
        assert_send_sync::<IsolationForestParamsError>();
    }
}

/// How an Isolation Forest is written in model files (docs/model-format.md).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IsolationForestState {
    n_estimators: usize,
    max_samples_param: SamplesParam,
    contamination: ContaminationParam,
    max_features_param: FeaturesParam,
    bootstrap: bool,
    random_state: Option<u64>,
    n_features: usize,
    max_samples: usize,
    max_features: usize,
    depth_limit: usize,
    offset: f64,
    feature: Vec<u32>,
    threshold: Vec<f64>,
    left: Vec<u32>,
    path_length: Vec<f64>,
    roots: Vec<u32>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum SamplesParam {
    Auto,
    Count(usize),
    Fraction(f64),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum ContaminationParam {
    Auto,
    Fraction(f64),
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FeaturesParam {
    Count(usize),
    Fraction(f64),
}

impl crate::persist::Persist for IsolationForest {
    const KIND: &'static str = "isolation_forest";
    type State = IsolationForestState;

    fn feature_names(&self) -> Vec<String> {
        self.feature_names.clone()
    }

    fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    fn restore_training_rows(&mut self, n: Option<usize>) {
        self.n_training_rows = n;
    }

    fn state(&self) -> IsolationForestState {
        let p = &self.params;
        let parts = self.forest.to_parts();
        IsolationForestState {
            n_estimators: p.n_estimators,
            max_samples_param: match p.max_samples {
                MaxSamples::Auto => SamplesParam::Auto,
                MaxSamples::Count(n) => SamplesParam::Count(n),
                MaxSamples::Fraction(f) => SamplesParam::Fraction(f),
            },
            contamination: match p.contamination {
                Contamination::Auto => ContaminationParam::Auto,
                Contamination::Fraction(f) => ContaminationParam::Fraction(f),
            },
            max_features_param: match p.max_features {
                MaxFeatures::Count(n) => FeaturesParam::Count(n),
                MaxFeatures::Fraction(f) => FeaturesParam::Fraction(f),
            },
            bootstrap: p.bootstrap,
            random_state: p.random_state,
            n_features: self.n_features,
            max_samples: self.max_samples,
            max_features: self.max_features,
            depth_limit: self.depth_limit,
            offset: self.offset,
            feature: parts.feature,
            threshold: parts.threshold,
            left: parts.left,
            path_length: parts.path_length,
            roots: parts.roots,
        }
    }

    fn from_state(
        s: IsolationForestState,
        feature_names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let mut params = IsolationForest::params()
            .n_estimators(s.n_estimators)
            .max_samples(match s.max_samples_param {
                SamplesParam::Auto => MaxSamples::Auto,
                SamplesParam::Count(n) => MaxSamples::Count(n),
                SamplesParam::Fraction(f) => MaxSamples::Fraction(f),
            })
            .contamination(match s.contamination {
                ContaminationParam::Auto => Contamination::Auto,
                ContaminationParam::Fraction(f) => Contamination::Fraction(f),
            })
            .max_features(match s.max_features_param {
                FeaturesParam::Count(n) => MaxFeatures::Count(n),
                FeaturesParam::Fraction(f) => MaxFeatures::Fraction(f),
            })
            .bootstrap(s.bootstrap);
        if let Some(seed) = s.random_state {
            params = params.random_state(seed);
        }
        let params = params
            .check()
            .map_err(|e| StateError::new("parameters", format!("parameters: {e}")))?;
        if s.n_features == 0 || feature_names.len() != s.n_features {
            return Err(StateError::new(
                "n_features",
                format!(
                    "{} feature names for {} features",
                    feature_names.len(),
                    s.n_features
                ),
            ));
        }
        if s.max_samples == 0 || s.depth_limit != tree::depth_limit(s.max_samples) {
            return Err(StateError::new(
                "depth_limit",
                format!(
                    "depth limit {} does not follow from max_samples {}",
                    s.depth_limit, s.max_samples
                ),
            ));
        }
        if s.max_features == 0 || s.max_features > s.n_features || !s.offset.is_finite() {
            return Err(StateError::new(
                "max_features",
                "max_features or offset out of range",
            ));
        }
        let parts = ForestParts {
            feature: s.feature,
            threshold: s.threshold,
            left: s.left,
            path_length: s.path_length,
            roots: s.roots,
        };
        let forest = Forest::from_parts(parts, s.n_features)?;
        if forest.n_trees() != s.n_estimators {
            return Err(StateError::new(
                "roots",
                format!(
                    "{} trees for n_estimators {}",
                    forest.n_trees(),
                    s.n_estimators
                ),
            ));
        }
        if forest.depth() > s.depth_limit {
            return Err(StateError::new(
                "depth_limit",
                format!("a tree is deeper than the limit {}", s.depth_limit),
            ));
        }
        Ok(IsolationForest {
            forest,
            params,
            n_features: s.n_features,
            feature_names,
            max_samples: s.max_samples,
            max_features: s.max_features,
            depth_limit: s.depth_limit,
            offset: s.offset,
            notes: Vec::new(),
            n_training_rows: None,
        })
    }
}

crate::persist::persistable!(IsolationForest);
