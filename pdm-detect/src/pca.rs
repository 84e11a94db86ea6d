//! PCA-based multivariate detection: Hotelling's T² inside the model, Q (SPE) off it.
//!
//! Fitting mean-centres the training rows (scale them first, e.g. with
//! [`StandardScaler`](crate::StandardScaler), or a high-variance sensor takes over the model),
//! takes their covariance, decomposes it (Jacobi eigenvalue algorithm, exact to rounding for the
//! tens to hundreds of features of window features) and keeps the `k` leading components.
//! For a row `x` with scores `t = Pᵀ(x - mean)` on the kept components `P`:
//!
//! - `T² = Σ t_i² / λ_i`: how far the row lies from the mean *within* the model, in units of the
//!   training spread along each component. A machine running harder than ever seen, with all its
//!   sensors agreeing, raises T².
//! - `Q = ‖(x - mean) - P t‖²`: the squared residual *off* the model. Sensors that stop agreeing
//!   the way they did in training (a broken correlation) raise Q, even when each value is normal.
//!
//! By default ([`PcaLimits::Empirical`]) both limits are the empirical `alpha`-quantile (numpy's
//! linear percentile) of the statistic over the training rows, so that about `1 - alpha` of the
//! training rows exceed each. They assume nothing about normality, at the price of needing enough
//! training rows for the quantile: with `alpha = 0.99`, a few hundred at least.
//! [`PcaLimits::Parametric`] uses the F-distribution limit of T² and Jackson–Mudholkar's of Q
//! instead, which assume Gaussian data but extrapolate beyond the training rows.
//!
//! The detector score is `max(T² / T²_lim, Q / Q_lim)` and its threshold 1: a row is anomalous
//! when either statistic exceeds its limit.
//!
//! ```
//! use ndarray::Array2;
//! use pdm_detect::{NComponents, PcaDetector};
//!
//! // Two sensors that move together, with a little independent noise.
//! let x = Array2::from_shape_fn((400, 2), |(i, j)| {
//!     let common = ((i * 37) % 101) as f64 / 50.0 - 1.0;
//!     let noise = ((i * 53 + j * 29) % 31) as f64 / 300.0;
//!     common + noise
//! });
//! let model = PcaDetector::params()
//!     .n_components(NComponents::Count(1))
//!     .alpha(0.99)
//!     .fit(&x.view())?;
//! let stats = model.statistics(&ndarray::array![[0.5, 0.5], [0.5, -0.5]].view())?;
//! assert!(stats.q[0] < model.q_limit()); // agreeing sensors
//! assert!(stats.q[1] > model.q_limit()); // the correlation is broken
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::persist::StateError;
use crate::{check_finite, quantile_sorted, stats, DetectError, Result, Value};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use pdm_core::detector::{self, Detector, Rows};

/// How many principal components the model keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NComponents {
    /// This many components, at least 1 and at most the number of features.
    Count(usize),
    /// The fewest leading components whose share of the total variance reaches this fraction,
    /// in (0, 1].
    Variance(f64),
}

impl Default for NComponents {
    fn default() -> Self {
        Self::Variance(0.95)
    }
}

/// How the limits of T² and Q are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcaLimits {
    /// The `alpha`-quantile of each statistic over the training rows (numpy's linear
    /// percentile). Assumes nothing about the distribution; needs enough training rows.
    #[default]
    Empirical,
    /// Formulas for Gaussian data: for T², the limit for new observations
    /// `k (n - 1)(n + 1) / (n (n - k)) · F_alpha(k, n - k)`; for Q, Jackson and Mudholkar's (1979)
    /// from the residual eigenvalues (Box's `g χ²_h` approximation when theirs is undefined).
    Parametric,
}

/// An invalid PCA detector parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PcaDetectorParamsError {
    /// `n_components` is a count of zero.
    #[error("n_components must be >= 1 as a count, got {0}")]
    NComponentsCount(usize),
    /// `n_components` is a variance fraction outside (0, 1].
    #[error("n_components must be in (0, 1] as a variance fraction, got {0}")]
    NComponentsVariance(f64),
    /// `n_components` is a count above the number of features of the training set.
    #[error("n_components must be <= the number of features ({n_features}), got {got}")]
    NComponentsTooMany {
        /// The count asked for.
        got: usize,
        /// Features of the training set.
        n_features: usize,
    },
    /// `alpha` is outside (0, 1).
    #[error("alpha must be in (0, 1), got {0}")]
    Alpha(f64),
}

/// Checked PCA detector parameters; [`fit`](Self::fit) learns the model.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaDetectorValidParams {
    n_components: NComponents,
    alpha: f64,
    limits: PcaLimits,
}

impl PcaDetectorValidParams {
    /// Components kept, as asked.
    pub fn n_components(&self) -> NComponents {
        self.n_components
    }

    /// Confidence level of the limits.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// How the limits are set.
    pub fn limits(&self) -> PcaLimits {
        self.limits
    }

    /// Learns the model on the rows of `x` (already scaled; one row per observation).
    ///
    /// Errors on fewer than 2 rows, no column, a non-finite value, or a component count above
    /// the number of features. Components with no variance are never kept (their T² term would
    /// divide by zero), so [`PcaDetector::n_components`] can be below the count asked for when
    /// the training rows span fewer dimensions.
    pub fn fit(&self, x: &ArrayView2<'_, f64>) -> Result<PcaDetector> {
        PcaDetector::fit_valid(self, x)
    }
}

/// Unchecked PCA detector parameters, from [`PcaDetector::params`].
///
/// Defaults: components explaining 95 % of the variance, empirical limits at the 0.99 quantile.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaDetectorParams(PcaDetectorValidParams);

impl Default for PcaDetectorParams {
    fn default() -> Self {
        Self(PcaDetectorValidParams {
            n_components: NComponents::default(),
            alpha: 0.99,
            limits: PcaLimits::Empirical,
        })
    }
}

impl PcaDetectorParams {
    /// Components to keep.
    pub fn n_components(mut self, n: NComponents) -> Self {
        self.0.n_components = n;
        self
    }

    /// Confidence level of the limits, in (0, 1): the quantile of the training statistics, or of
    /// the parametric distributions.
    pub fn alpha(mut self, alpha: f64) -> Self {
        self.0.alpha = alpha;
        self
    }

    /// How the limits are set.
    pub fn limits(mut self, limits: PcaLimits) -> Self {
        self.0.limits = limits;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(
        &self,
    ) -> std::result::Result<&PcaDetectorValidParams, PcaDetectorParamsError> {
        use PcaDetectorParamsError as E;
        let p = &self.0;
        match p.n_components {
            NComponents::Count(0) => return Err(E::NComponentsCount(0)),
            // Written so that NaN fails too.
            NComponents::Variance(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(E::NComponentsVariance(f))
            }
            _ => {}
        }
        if !(p.alpha > 0.0 && p.alpha < 1.0) {
            return Err(E::Alpha(p.alpha));
        }
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<PcaDetectorValidParams, PcaDetectorParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters, then learns the model; see [`PcaDetectorValidParams::fit`].
    pub fn fit(&self, x: &ArrayView2<'_, f64>) -> Result<PcaDetector> {
        self.check_ref()?.fit(x)
    }
}

/// T² and Q of some rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaStatistics {
    /// Hotelling's T² per row.
    pub t2: Array1<f64>,
    /// Q (squared prediction error) per row.
    pub q: Array1<f64>,
}

/// Per-feature shares of one row's T² and Q; each sums to its statistic.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaContributions {
    /// `Σ_i (t_i / λ_i) p_ji (x_j - mean_j)` for feature `j`; can be negative for a feature that
    /// pulls the row back towards the mean.
    pub t2: Array1<f64>,
    /// `r_j²`, the squared residual of feature `j`; never negative.
    pub q: Array1<f64>,
}

/// A fitted PCA detector; see the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct PcaDetector {
    params: PcaDetectorValidParams,
    mean: Array1<f64>,
    /// All eigenvalues of the training covariance, descending.
    eigenvalues: Array1<f64>,
    /// The kept components, one per column (n_features × k).
    components: Array2<f64>,
    t2_limit: f64,
    q_limit: f64,
    feature_names: Vec<String>,
    n_training_rows: Option<usize>,
}

impl PcaDetector {
    /// Default parameters, to adjust and then [`check`](PcaDetectorParams::check) or
    /// [`fit`](PcaDetectorParams::fit).
    pub fn params() -> PcaDetectorParams {
        PcaDetectorParams::default()
    }

    fn fit_valid(p: &PcaDetectorValidParams, x: &ArrayView2<'_, f64>) -> Result<Self> {
        let (n_rows, n_cols) = x.dim();
        if n_rows == 0 || n_cols == 0 {
            return Err(DetectError::Empty);
        }
        if n_rows < 2 {
            return Err(DetectError::TooFewRows {
                needed: 2,
                got: n_rows,
            });
        }
        if let NComponents::Count(k) = p.n_components {
            if k > n_cols {
                return Err(PcaDetectorParamsError::NComponentsTooMany {
                    got: k,
                    n_features: n_cols,
                }
                .into());
            }
        }
        check_finite(x)?;
        let mean = x.mean_axis(Axis(0)).ok_or(DetectError::Empty)?;
        let centred = x - &mean;
        let cov = centred.t().dot(&centred) / (n_rows - 1) as f64;
        let (eigenvalues, vectors) = symmetric_eigen(cov);
        // A covariance is positive semi-definite; negative eigenvalues are rounding.
        let eigenvalues = eigenvalues.mapv(|l| l.max(0.0));
        let total: f64 = eigenvalues.sum();
        // Eigenvalues below this are zero to rounding: no variance along that direction.
        let rank_tol = eigenvalues.first().copied().unwrap_or(0.0) * n_cols as f64 * f64::EPSILON;
        let rank = eigenvalues.iter().take_while(|&&l| l > rank_tol).count();
        let k = match p.n_components {
            NComponents::Count(k) => k,
            NComponents::Variance(f) => {
                let mut cum = 0.0;
                let mut k = n_cols;
                for (i, l) in eigenvalues.iter().enumerate() {
                    cum += l;
                    // The tolerance keeps a fraction of exactly 1.0 from asking for components
                    // beyond the last one with variance because of a rounded cumulative sum.
                    if cum >= f * total * (1.0 - 1e-12) {
                        k = i + 1;
                        break;
                    }
                }
                k
            }
        }
        .min(rank);
        let components = vectors
            .slice_axis(Axis(1), ndarray::Slice::from(0..k))
            .to_owned();
        let mut model = Self {
            params: p.clone(),
            mean,
            eigenvalues,
            components,
            t2_limit: 0.0,
            q_limit: 0.0,
            feature_names: (0..n_cols).map(|i| format!("x{i}")).collect(),
            n_training_rows: Some(n_rows),
        };
        let (t2_raw, q_raw) = match p.limits {
            PcaLimits::Empirical => {
                let stats = model.statistics_unchecked(x);
                (
                    quantile_of(stats.t2.to_vec(), p.alpha),
                    quantile_of(stats.q.to_vec(), p.alpha),
                )
            }
            PcaLimits::Parametric => {
                let residual = model
                    .eigenvalues
                    .slice_axis(Axis(0), ndarray::Slice::from(k..));
                (
                    hotelling_limit(k, n_rows, p.alpha),
                    jackson_mudholkar(residual, p.alpha),
                )
            }
        };
        // A limit of zero would make every ratio 0/0 or infinite: training rows that all lie on
        // the model (k = n_features, or constant data) give Q = 0 up to rounding, and new rows
        // then differ from it by rounding too. The floor is far above rounding and far below
        // any real deviation of scaled data.
        let q_floor = if total > 0.0 { 1e-9 * total } else { 1e-12 };
        model.t2_limit = t2_raw.max(1e-12);
        model.q_limit = q_raw.max(q_floor);
        Ok(model)
    }

    /// Names the features (the default names are `x0`, `x1`, ...); one name per feature. Use
    /// [`WindowFeatureMatrix::names`](crate::WindowFeatureMatrix::names) so that contributions
    /// trace back to sensors.
    pub fn with_feature_names(mut self, names: Vec<String>) -> Result<Self> {
        if names.len() != self.n_features() {
            return Err(DetectError::Columns {
                expected: self.n_features(),
                got: names.len(),
            });
        }
        self.feature_names = names;
        Ok(self)
    }

    /// The parameters the model was fitted with.
    pub fn fit_params(&self) -> &PcaDetectorValidParams {
        &self.params
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// Rows the model was fitted on, when known.
    pub fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    /// Number of components kept.
    pub fn n_components(&self) -> usize {
        self.components.ncols()
    }

    /// Training means, subtracted before projecting.
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// Kept components, one unit vector per column (n_features × n_components). Each is signed
    /// so that its largest entry in absolute value is positive.
    pub fn components(&self) -> &Array2<f64> {
        &self.components
    }

    /// Every eigenvalue of the training covariance (divisor n - 1), descending; the first
    /// [`n_components`](Self::n_components) are the variances of the kept components.
    pub fn eigenvalues(&self) -> &Array1<f64> {
        &self.eigenvalues
    }

    /// Share of the total variance along each eigenvector, descending (zeros for data with no
    /// variance).
    pub fn explained_variance_ratio(&self) -> Array1<f64> {
        let total = self.eigenvalues.sum();
        if total > 0.0 {
            &self.eigenvalues / total
        } else {
            Array1::zeros(self.eigenvalues.len())
        }
    }

    /// Limit of T²: its `alpha`-quantile over the training rows.
    pub fn t2_limit(&self) -> f64 {
        self.t2_limit
    }

    /// Limit of Q: its `alpha`-quantile over the training rows.
    pub fn q_limit(&self) -> f64 {
        self.q_limit
    }

    /// T² and Q of each row of `x`.
    ///
    /// Errors when `x` has another number of columns than the training set or holds a
    /// non-finite value.
    ///
    /// `x` may be `f64` or `f32` (widened exactly), in any layout.
    pub fn statistics<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<PcaStatistics> {
        self.check_input(x)?;
        Ok(self.statistics_unchecked(x))
    }

    /// `max(T² / T²_lim, Q / Q_lim)` per row, the [`Detector::score`] of this model.
    pub fn scores<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array1<f64>> {
        let s = self.statistics(x)?;
        Ok(self.combine(&s))
    }

    /// How much each feature adds to the T² and the Q of one row.
    pub fn contributions(&self, row: &[f64]) -> Result<PcaContributions> {
        let view = ArrayView2::from_shape((1, row.len()), row).map_err(|_| DetectError::Empty)?;
        self.check_input(&view)?;
        let xc = &ArrayView1::from(row) - &self.mean;
        let t = self.components.t().dot(&xc);
        let lambdas = self
            .eigenvalues
            .slice_axis(Axis(0), ndarray::Slice::from(0..t.len()));
        let weights = &t / &lambdas;
        // Σ_i (t_i / λ_i) p_ji, then times x_j.
        let t2 = self.components.dot(&weights) * &xc;
        let residual = &xc - &self.components.dot(&t);
        Ok(PcaContributions {
            t2,
            q: residual.mapv(|r| r * r),
        })
    }

    fn combine(&self, s: &PcaStatistics) -> Array1<f64> {
        ndarray::Zip::from(&s.t2)
            .and(&s.q)
            .map_collect(|&t2, &q| (t2 / self.t2_limit).max(q / self.q_limit))
    }

    fn check_input<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<()> {
        if x.ncols() != self.n_features() {
            return Err(DetectError::Columns {
                expected: self.n_features(),
                got: x.ncols(),
            });
        }
        check_finite(x)
    }

    /// Buffers for [`row_statistics`](Self::row_statistics), sized for this model.
    pub(crate) fn row_scratch(&self) -> RowScratch {
        let (d, k) = (self.n_features(), self.n_components());
        RowScratch {
            centred: Array2::zeros((1, d)),
            t: Array2::zeros((1, k)),
            back: Array2::zeros((1, d)),
            terms: vec![0.0; d.max(k)],
        }
    }

    /// T² and Q of one finite row of `n_features` values, without allocating: the same
    /// operations, in the same order, as [`statistics`](Self::statistics) does on each row of a
    /// matrix (the products go through the same matrix multiplication), so the values are the
    /// same bit for bit. The live pipeline scores each row with it.
    pub(crate) fn row_statistics(&self, row: &[f64], s: &mut RowScratch) -> (f64, f64) {
        let k = self.n_components();
        for ((c, &x), &m) in s.centred.iter_mut().zip(row).zip(&self.mean) {
            *c = x - m;
        }
        ndarray::linalg::general_mat_mul(1.0, &s.centred, &self.components, 0.0, &mut s.t);
        for ((term, &t), &lambda) in s.terms.iter_mut().zip(&s.t).zip(&self.eigenvalues) {
            *term = t * t / lambda;
        }
        let t2 = ArrayView1::from(&s.terms[..k]).sum();
        ndarray::linalg::general_mat_mul(1.0, &s.t, &self.components.t(), 0.0, &mut s.back);
        for ((term, &c), &b) in s.terms.iter_mut().zip(&s.centred).zip(&s.back) {
            let r = c - b;
            *term = r * r;
        }
        let q = ArrayView1::from(&s.terms[..row.len()]).sum();
        (t2, q)
    }

    fn statistics_unchecked<T: Value>(&self, x: &ArrayView2<'_, T>) -> PcaStatistics {
        let mut centred = x.mapv(Into::into);
        centred -= &self.mean;
        let t = centred.dot(&self.components);
        let lambdas = self
            .eigenvalues
            .slice_axis(Axis(0), ndarray::Slice::from(0..self.n_components()));
        let t2 = (&t * &t / lambdas).sum_axis(Axis(1));
        let residual = &centred - &t.dot(&self.components.t());
        let q = (&residual * &residual).sum_axis(Axis(1));
        PcaStatistics { t2, q }
    }
}

impl Detector for PcaDetector {
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    fn score(&self, rows: Rows<'_>) -> std::result::Result<Vec<f64>, detector::DetectError> {
        let d = self.n_features();
        if rows.n_cols() != d {
            return Err(detector::DetectError::FeatureCount {
                expected: d,
                got: rows.n_cols(),
            });
        }
        let data = rows.as_slice();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(detector::DetectError::NotFinite {
                row: i / d,
                col: i % d,
            });
        }
        // Rows guarantees a whole number of rows of d columns, so the shape always fits.
        let view = ArrayView2::from_shape((rows.n_rows(), d), data).map_err(|_| {
            detector::DetectError::FeatureCount {
                expected: d,
                got: rows.n_cols(),
            }
        })?;
        let s = self.statistics_unchecked(&view);
        Ok(self.combine(&s).to_vec())
    }

    fn threshold(&self) -> f64 {
        1.0
    }
}

/// Buffers of [`PcaDetector::row_statistics`].
#[derive(Debug, Clone)]
pub(crate) struct RowScratch {
    centred: Array2<f64>,
    t: Array2<f64>,
    back: Array2<f64>,
    terms: Vec<f64>,
}

/// Limit of T² for a new observation of a Gaussian population whose mean and covariance were
/// estimated on `n` rows, `k` components kept: `k (n - 1)(n + 1) / (n (n - k)) · F_alpha(k, n - k)`
/// (Tracy, Young & Mason 1992). 0 without components, where T² is always 0.
fn hotelling_limit(k: usize, n: usize, alpha: f64) -> f64 {
    if k == 0 || n <= k {
        return 0.0;
    }
    let (k, n) = (k as f64, n as f64);
    k * (n - 1.0) * (n + 1.0) / (n * (n - k)) * stats::f_quantile(alpha, k, n - k)
}

/// Jackson and Mudholkar's (1979) limit of Q from the residual eigenvalues:
/// `θ_i = Σ λ^i`, `h0 = 1 - 2 θ1 θ3 / (3 θ2²)`,
/// `Q = θ1 (c sqrt(2 θ2 h0²) / θ1 + 1 + θ2 h0 (h0 - 1) / θ1²)^(1 / h0)` with `c` the normal
/// `alpha`-quantile. Very uneven residual eigenvalues make `h0 <= 0`, and a low `alpha` can make
/// the bracket non-positive; Box's `g χ²_h` (g = θ2 / θ1, h = θ1² / θ2, the χ² quantile by
/// Wilson–Hilferty) stands in then. 0 without residual variance.
fn jackson_mudholkar(residual: ArrayView1<'_, f64>, alpha: f64) -> f64 {
    let theta = |p: i32| residual.iter().map(|l| l.powi(p)).sum::<f64>();
    let (t1, t2, t3) = (theta(1), theta(2), theta(3));
    if t1 <= 0.0 || t2 <= 0.0 {
        return 0.0;
    }
    let z = stats::normal_quantile(alpha);
    let h0 = 1.0 - 2.0 * t1 * t3 / (3.0 * t2 * t2);
    if h0 > 0.0 {
        let bracket = z * (2.0 * t2 * h0 * h0).sqrt() / t1 + 1.0 + t2 * h0 * (h0 - 1.0) / (t1 * t1);
        if bracket > 0.0 {
            return t1 * bracket.powf(1.0 / h0);
        }
    }
    let (g, h) = (t2 / t1, t1 * t1 / t2);
    let base = 1.0 - 2.0 / (9.0 * h) + z * (2.0 / (9.0 * h)).sqrt();
    g * h * base.max(0.0).powi(3)
}

fn quantile_of(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    quantile_sorted(&v, q)
}

/// Most sweeps of the Jacobi algorithm; it converges quadratically, in well under 20 sweeps for
/// the matrices met here, so reaching this means the input was not symmetric.
const MAX_SWEEPS: usize = 100;

/// Eigenvalues (descending) and unit eigenvectors (columns, in the same order) of a symmetric
/// matrix, by the cyclic Jacobi eigenvalue algorithm.
///
/// Jacobi is slower than tridiagonalisation and QR for large matrices, but simple, accurate to
/// high relative precision and plenty fast for a few hundred features. Each eigenvector is signed
/// so that its largest entry in absolute value is positive, which makes the result reproducible.
pub(crate) fn symmetric_eigen(mut a: Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut v = Array2::<f64>::eye(n);
    let norm2: f64 = a.iter().map(|x| x * x).sum();
    for sweep in 0..MAX_SWEEPS {
        let mut off = 0.0;
        for p in 0..n {
            for q in p + 1..n {
                off += a[[p, q]] * a[[p, q]];
            }
        }
        if off <= (f64::EPSILON * f64::EPSILON) * norm2 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[[p, q]];
                // After a few sweeps, an element too small to change either diagonal entry is
                // zeroed instead of rotated (Numerical Recipes' rule): rotating it would only
                // shuffle rounding, and the relative stopping test could then never be met.
                let g = 100.0 * apq.abs();
                if sweep > 3
                    && a[[p, p]].abs() + g == a[[p, p]].abs()
                    && a[[q, q]].abs() + g == a[[q, q]].abs()
                {
                    a[[p, q]] = 0.0;
                    a[[q, p]] = 0.0;
                    continue;
                }
                if apq == 0.0 {
                    continue;
                }
                // Rotation that zeroes a[p][q] (Numerical Recipes' stable form: the smaller root
                // of t² + 2θt - 1 = 0).
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * apq);
                let t = if theta == 0.0 {
                    1.0
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                a[[p, q]] = 0.0;
                a[[q, p]] = 0.0;
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let values = Array1::from_iter(order.iter().map(|&i| a[[i, i]]));
    let mut vectors = Array2::zeros((n, n));
    for (dst, &src) in order.iter().enumerate() {
        let col = v.column(src);
        let big = col
            .iter()
            .copied()
            .fold(0.0_f64, |m, x| if x.abs() > m.abs() { x } else { m });
        let sign = if big < 0.0 { -1.0 } else { 1.0 };
        vectors.column_mut(dst).assign(&(&col * sign));
    }
    (values, vectors)
}

/// `n_components` as written in model files.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum NComponentsParam {
    Count(usize),
    Variance(f64),
}

impl From<NComponents> for NComponentsParam {
    fn from(n: NComponents) -> Self {
        match n {
            NComponents::Count(k) => Self::Count(k),
            NComponents::Variance(f) => Self::Variance(f),
        }
    }
}

impl From<NComponentsParam> for NComponents {
    fn from(n: NComponentsParam) -> Self {
        match n {
            NComponentsParam::Count(k) => Self::Count(k),
            NComponentsParam::Variance(f) => Self::Variance(f),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PcaDetectorState {
    n_components: NComponentsParam,
    alpha: f64,
    /// `"empirical"` or `"parametric"`.
    limits: String,
    mean: Vec<f64>,
    eigenvalues: Vec<f64>,
    /// Kept components, one array per component (each `n_features` long).
    components: Vec<Vec<f64>>,
    t2_limit: f64,
    q_limit: f64,
}

impl crate::persist::Persist for PcaDetector {
    const KIND: &'static str = "pca_detector";
    type State = PcaDetectorState;

    fn feature_names(&self) -> Vec<String> {
        self.feature_names.clone()
    }

    fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    fn restore_training_rows(&mut self, n: Option<usize>) {
        self.n_training_rows = n;
    }

    fn state(&self) -> PcaDetectorState {
        PcaDetectorState {
            n_components: self.params.n_components.into(),
            alpha: self.params.alpha,
            limits: match self.params.limits {
                PcaLimits::Empirical => "empirical",
                PcaLimits::Parametric => "parametric",
            }
            .into(),
            mean: self.mean.to_vec(),
            eigenvalues: self.eigenvalues.to_vec(),
            components: self
                .components
                .columns()
                .into_iter()
                .map(|c| c.to_vec())
                .collect(),
            t2_limit: self.t2_limit,
            q_limit: self.q_limit,
        }
    }

    fn from_state(
        s: PcaDetectorState,
        feature_names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let limits = match s.limits.as_str() {
            "empirical" => PcaLimits::Empirical,
            "parametric" => PcaLimits::Parametric,
            other => {
                return Err(StateError::new(
                    "limits",
                    format!("unknown PCA limits {other:?}"),
                ))
            }
        };
        let params = PcaDetector::params()
            .n_components(s.n_components.into())
            .alpha(s.alpha)
            .limits(limits)
            .check()
            .map_err(StateError::params)?;
        let d = s.mean.len();
        let k = s.components.len();
        if d == 0 || feature_names.len() != d {
            return Err(StateError::new(
                "mean",
                format!(
                    "the PCA model has {d} means for {} feature names",
                    feature_names.len()
                ),
            ));
        }
        if s.eigenvalues.len() != d || k == 0 || k > d {
            return Err(StateError::new(
                "eigenvalues",
                format!(
                    "a PCA model of {d} features needs {d} eigenvalues and 1 to {d} components, \
                 got {} and {k}",
                    s.eigenvalues.len()
                ),
            ));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&s.mean) || !finite(&s.eigenvalues) {
            return Err(StateError::new(
                "mean",
                "the PCA means and eigenvalues must be finite",
            ));
        }
        if s.eigenvalues.windows(2).any(|w| w[0] < w[1]) || s.eigenvalues.iter().any(|&l| l < 0.0) {
            return Err(StateError::new(
                "eigenvalues",
                "the PCA eigenvalues must be non-negative and descending",
            ));
        }
        if s.eigenvalues[..k].iter().any(|&l| l <= 0.0) {
            return Err(StateError::new(
                "eigenvalues",
                "every kept PCA component needs a positive eigenvalue",
            ));
        }
        if s.components.iter().any(|c| c.len() != d || !finite(c)) {
            return Err(StateError::new(
                "components",
                format!("every PCA component must hold {d} finite loadings"),
            ));
        }
        let positive = |l: f64| l.is_finite() && l > 0.0;
        if !positive(s.t2_limit) || !positive(s.q_limit) {
            return Err(StateError::new(
                "t2_limit",
                "the PCA limits must be finite and positive",
            ));
        }
        let components = Array2::from_shape_fn((d, k), |(i, j)| s.components[j][i]);
        Ok(Self {
            params,
            mean: Array1::from(s.mean),
            eigenvalues: Array1::from(s.eigenvalues),
            components,
            t2_limit: s.t2_limit,
            q_limit: s.q_limit,
            feature_names,
            n_training_rows: None,
        })
    }
}

crate::persist::persistable!(PcaDetector);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ndarray::array;
    use rand::distr::StandardUniform;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Standard normal draws by Box–Muller (rand_distr is not a dependency).
    fn normals(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = 1.0 - rng.sample::<f64, _>(StandardUniform);
                let v: f64 = rng.sample(StandardUniform);
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    /// `n` rows whose `d` features are one shared factor plus `noise` times independent noise.
    pub(crate) fn one_factor(n: usize, d: usize, noise: f64, seed: u64) -> Array2<f64> {
        let z = normals(n * (d + 1), seed);
        Array2::from_shape_fn((n, d), |(i, j)| {
            z[i * (d + 1)] + noise * z[i * (d + 1) + 1 + j]
        })
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn eigen_of_known_matrices() {
        // [[2, 1], [1, 2]]: eigenvalues 3 and 1, eigenvectors (1, 1)/√2 and (1, -1)/√2.
        let (l, v) = symmetric_eigen(array![[2.0, 1.0], [1.0, 2.0]]);
        let h = 0.5_f64.sqrt();
        assert!(close(l[0], 3.0, 1e-14) && close(l[1], 1.0, 1e-14), "{l}");
        assert!(
            close(v[[0, 0]], h, 1e-14) && close(v[[1, 0]], h, 1e-14),
            "{v}"
        );
        assert!(close(v[[0, 1]].abs(), h, 1e-14) && close(v[[1, 1]], -v[[0, 1]], 1e-14));

        // The second-difference matrix tridiag(-1, 2, -1) of order 3: eigenvalues 2 + √2, 2,
        // 2 - √2 with eigenvectors (1, -√2, 1)/2, (1, 0, -1)/√2, (1, √2, 1)/2.
        let a = array![[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]];
        let (l, v) = symmetric_eigen(a);
        let r2 = 2.0_f64.sqrt();
        for (got, want) in l.iter().zip([2.0 + r2, 2.0, 2.0 - r2]) {
            assert!(close(*got, want, 1e-14), "{l}");
        }
        let want = [[0.5, -r2 / 2.0, 0.5], [h, 0.0, -h], [0.5, r2 / 2.0, 0.5]];
        for (k, w) in want.iter().enumerate() {
            // Compare up to sign: the sign convention is checked below.
            let dot: f64 = (0..3).map(|i| v[[i, k]] * w[i]).sum();
            assert!(close(dot.abs(), 1.0, 1e-13), "vector {k}: {v}");
        }

        // Diagonal: already decomposed, only sorted.
        let (l, v) = symmetric_eigen(array![[1.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 3.0]]);
        assert_eq!(l, array![5.0, 3.0, 1.0]);
        assert_eq!(v, array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
    }

    #[test]
    fn eigen_reconstructs_a_random_symmetric_matrix() {
        let d = 12;
        let z = normals(d * d, 9);
        let b = Array2::from_shape_vec((d, d), z).expect("shape");
        let a = &b + &b.t();
        let (l, v) = symmetric_eigen(a.clone());
        // V is orthonormal and V diag(l) Vᵀ is A again.
        let vtv = v.t().dot(&v);
        let rebuilt = (&v * &l).dot(&v.t());
        for i in 0..d {
            for j in 0..d {
                let eye = if i == j { 1.0 } else { 0.0 };
                assert!((vtv[[i, j]] - eye).abs() < 1e-12);
                assert!((rebuilt[[i, j]] - a[[i, j]]).abs() < 1e-11);
            }
        }
        assert!(l.windows(2).into_iter().all(|w| w[0] >= w[1]));
        for col in v.columns() {
            let big = col
                .iter()
                .fold(0.0_f64, |m, &x| if x.abs() > m.abs() { x } else { m });
            assert!(big > 0.0);
        }
    }

    #[test]
    fn component_count_from_variance_fraction() {
        // Orthogonal ±1 columns with zero mean scaled by 3, 2, 1: the covariance is
        // (4 / 3) diag(9, 4, 1), so eigenvalues 12, 16/3, 4/3 and explained shares 9/14, 4/14,
        // 1/14 (cumulative 0.643, 0.929, 1).
        let x = array![
            [3.0, 2.0, 1.0],
            [3.0, -2.0, -1.0],
            [-3.0, 2.0, -1.0],
            [-3.0, -2.0, 1.0]
        ];
        let fit = |f| {
            PcaDetector::params()
                .n_components(NComponents::Variance(f))
                .fit(&x.view())
                .expect("fit")
        };
        let m = fit(0.9);
        assert_eq!(m.n_components(), 2);
        for (got, want) in m.eigenvalues().iter().zip([12.0, 16.0 / 3.0, 4.0 / 3.0]) {
            assert!(close(*got, want, 1e-14));
        }
        for (got, want) in m.explained_variance_ratio().iter().zip([9.0, 4.0, 1.0]) {
            assert!(close(*got, want / 14.0, 1e-14));
        }
        assert_eq!(m.mean(), &array![0.0, 0.0, 0.0]);
        assert_eq!(fit(0.5).n_components(), 1);
        assert_eq!(fit(0.95).n_components(), 3);
        assert_eq!(fit(1.0).n_components(), 3);
    }

    #[test]
    fn broken_correlation_raises_q_not_t2() {
        let x = one_factor(2000, 2, 0.3, 1);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .fit(&x.view())
            .expect("fit");
        let rows = array![[1.0, 1.0], [1.5, -1.5], [4.0, 4.0]];
        let s = m.statistics(&rows.view()).expect("stats");
        // Normal: both statistics inside their limits.
        assert!(s.t2[0] < m.t2_limit() && s.q[0] < m.q_limit(), "{s:?}");
        // Each value ordinary, but they disagree: off the model.
        assert!(s.t2[1] < m.t2_limit(), "{s:?}");
        assert!(s.q[1] > 5.0 * m.q_limit(), "{s:?}");
        // Far along the main axis: inside the model, beyond its spread.
        assert!(s.t2[2] > 2.0 * m.t2_limit(), "{s:?}");
        assert!(s.q[2] < m.q_limit(), "{s:?}");
        let scores = m.scores(&rows.view()).expect("scores");
        assert!(scores[0] < 1.0 && scores[1] > 1.0 && scores[2] > 1.0);
    }

    #[test]
    fn limits_are_training_quantiles() {
        let x = one_factor(1000, 3, 0.5, 2);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .alpha(0.95)
            .fit(&x.view())
            .expect("fit");
        let s = m.statistics(&x.view()).expect("stats");
        // The 0.95 quantile of 1000 values lies at position 949.05: 50 values above it.
        let above_t2 = s.t2.iter().filter(|&&v| v > m.t2_limit()).count();
        let above_q = s.q.iter().filter(|&&v| v > m.q_limit()).count();
        assert_eq!((above_t2, above_q), (50, 50));
    }

    #[test]
    fn jackson_mudholkar_against_chi_square() {
        // m equal residual eigenvalues λ: Q / λ is exactly χ² with m degrees of freedom.
        // Tables: χ²_0.95(10) = 18.307, χ²_0.99(1) = 6.635, χ²_0.99(5) = 15.086.
        let ones = |m: usize| Array1::from_elem(m, 1.0);
        let jm = |l: Array1<f64>, a| jackson_mudholkar(l.view(), a);
        assert!(close(jm(ones(10), 0.95), 18.307, 0.01));
        assert!(close(jm(ones(1), 0.99), 6.635, 0.03));
        assert!(close(jm(ones(5) * 2.0, 0.99), 2.0 * 15.086, 0.01));
        // Very uneven eigenvalues (h0 < 0): Box's approximation, still near the mean of Q
        // (θ1 = 2) and above it.
        let uneven = Array1::from_iter(std::iter::once(1.0).chain(std::iter::repeat_n(0.01, 100)));
        let q = jm(uneven, 0.99);
        assert!(q.is_finite() && q > 2.0 && q < 20.0, "{q}");
        assert_eq!(jm(Array1::zeros(3), 0.99), 0.0);
        assert_eq!(jm(Array1::zeros(0), 0.99), 0.0);
    }

    #[test]
    fn parametric_limits_on_gaussian_data() {
        // k = 1 of 2 features, n = 2000: T² is about F(1, 1999), whose 0.99 quantile is near
        // z_0.995² = 2.5758² = 6.635; Q is λ2 χ²_1, 0.99 quantile 6.635 λ2.
        let x = one_factor(2000, 2, 0.3, 8);
        let p = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .limits(PcaLimits::Parametric);
        let m = p.fit(&x.view()).expect("fit");
        assert_eq!(m.fit_params().limits(), PcaLimits::Parametric);
        assert!(close(m.t2_limit(), 6.635, 0.01), "{}", m.t2_limit());
        let lambda2 = m.eigenvalues()[1];
        assert!(close(m.q_limit(), 6.635 * lambda2, 0.03), "{}", m.q_limit());
        // On Gaussian data the empirical limits agree within sampling error.
        let e = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .fit(&x.view())
            .expect("fit");
        assert!(
            close(e.t2_limit(), m.t2_limit(), 0.15),
            "{} vs {}",
            e.t2_limit(),
            m.t2_limit()
        );
        assert!(
            close(e.q_limit(), m.q_limit(), 0.15),
            "{} vs {}",
            e.q_limit(),
            m.q_limit()
        );
        // Hand-checked form: k (n - 1)(n + 1) / (n (n - k)) F with k = 2, n = 12 is
        // 2 · 11 · 13 / (12 · 10) F_0.95(2, 10) = 2.38333 · 4.10276 (F(2, 10) in closed form).
        let f = 5.0 * (0.05_f64.powf(-0.2) - 1.0);
        assert!(close(hotelling_limit(2, 12, 0.95), 286.0 / 120.0 * f, 1e-9));
        assert_eq!(hotelling_limit(0, 12, 0.95), 0.0);
    }

    #[test]
    fn contributions_point_at_the_feature() {
        // Three sensors on one factor: (0, 0, 3) breaks only the third.
        let x = one_factor(2000, 3, 0.2, 3);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .fit(&x.view())
            .expect("fit");
        let row = [0.0, 0.0, 3.0];
        let c = m.contributions(&row).expect("contributions");
        let s = m
            .statistics(&ArrayView2::from_shape((1, 3), &row[..]).expect("row"))
            .expect("s");
        assert!(close(c.q.sum(), s.q[0], 1e-12) && close(c.t2.sum(), s.t2[0], 1e-12));
        // The component is about (1, 1, 1)/√3, the residual about (-1, -1, 2): shares 1, 1, 4.
        assert!(c.q[2] > 3.0 * c.q[0] && c.q[2] > 3.0 * c.q[1], "{:?}", c.q);

        // Two independent pairs of sensors (a, b) and (c, d): a row far along the first pair's
        // factor puts its T² on a and b.
        let f = normals(2000 * 6, 4);
        let x = Array2::from_shape_fn((2000, 4), |(i, j)| {
            f[i * 6 + j / 2] + 0.2 * f[i * 6 + 2 + j]
        });
        let m = PcaDetector::params()
            .n_components(NComponents::Count(2))
            .fit(&x.view())
            .expect("fit");
        let row = [5.0, 5.0, 0.0, 0.0];
        let c = m.contributions(&row).expect("contributions");
        let s = m
            .statistics(&ArrayView2::from_shape((1, 4), &row[..]).expect("row"))
            .expect("s");
        assert!(s.t2[0] > m.t2_limit());
        assert!(close(c.t2.sum(), s.t2[0], 1e-12));
        assert!(
            c.t2[0] > 0.4 * s.t2[0] && c.t2[1] > 0.4 * s.t2[0],
            "{:?}",
            c.t2
        );
        assert!(c.t2[2].abs() < 0.1 * s.t2[0] && c.t2[3].abs() < 0.1 * s.t2[0]);
    }

    #[test]
    fn detector_seam() {
        let x = one_factor(500, 2, 0.3, 5);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .fit(&x.view())
            .expect("fit")
            .with_feature_names(vec!["a".into(), "b".into()])
            .expect("names");
        assert_eq!(m.feature_names(), ["a", "b"]);
        assert_eq!(Detector::threshold(&m), 1.0);
        let data = [0.1, 0.1, 1.5, -1.5];
        let s = m.score(Rows::new(&data, 2).expect("rows")).expect("score");
        let direct = m
            .scores(&ArrayView2::from_shape((2, 2), &data[..]).expect("view"))
            .expect("scores");
        assert_eq!(s, direct.to_vec());
        assert!(s[0] < 1.0 && s[1] > 1.0);
        assert_eq!(
            m.score(Rows::new(&[1.0, 2.0, 3.0], 3).expect("rows")),
            Err(detector::DetectError::FeatureCount {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            m.score(Rows::new(&[1.0, 2.0, f64::NAN, 0.0], 2).expect("rows")),
            Err(detector::DetectError::NotFinite { row: 1, col: 0 })
        );
        assert!(m.clone().with_feature_names(vec!["a".into()]).is_err());
    }

    #[test]
    fn degenerate_training_sets_stay_finite() {
        // Constant data: no component has variance, T² is 0 and Q measures the distance to the
        // training point.
        let x = Array2::from_elem((10, 3), 2.0);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(2))
            .fit(&x.view())
            .expect("fit");
        assert_eq!(m.n_components(), 0);
        let s = m
            .scores(&array![[2.0, 2.0, 2.0], [2.0, 2.0, 3.0]].view())
            .expect("s");
        assert_eq!(s[0], 0.0);
        assert!(s[1].is_finite() && s[1] > 1.0);

        // Every component kept: Q is rounding only and must not raise alarms.
        let x = one_factor(300, 3, 0.5, 6);
        let m = PcaDetector::params()
            .n_components(NComponents::Count(3))
            .fit(&x.view())
            .expect("fit");
        let s = m.statistics(&array![[0.3, -0.2, 0.1]].view()).expect("s");
        assert!(s.q[0] < m.q_limit());
    }

    #[test]
    fn rejects_bad_input_and_parameters() {
        let err = |p: PcaDetectorParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = PcaDetector::params;
        assert_eq!(
            err(p().n_components(NComponents::Count(0))),
            "n_components must be >= 1 as a count, got 0"
        );
        assert_eq!(
            err(p().n_components(NComponents::Variance(1.5))),
            "n_components must be in (0, 1] as a variance fraction, got 1.5"
        );
        assert_eq!(
            err(p().n_components(NComponents::Variance(f64::NAN))),
            "n_components must be in (0, 1] as a variance fraction, got NaN"
        );
        assert_eq!(err(p().alpha(1.0)), "alpha must be in (0, 1), got 1");
        assert_eq!(err(p().alpha(0.0)), "alpha must be in (0, 1), got 0");
        assert_eq!(err(p().alpha(0.5)), "accepted");
        let defaults = p().check().expect("defaults");
        assert_eq!(defaults.n_components(), NComponents::Variance(0.95));
        assert_eq!(defaults.alpha(), 0.99);

        let x = array![[1.0, 2.0], [2.0, 1.0]];
        let e = p()
            .n_components(NComponents::Count(3))
            .fit(&x.view())
            .expect_err("too many");
        assert_eq!(
            e.to_string(),
            "invalid parameter: n_components must be <= the number of features (2), got 3"
        );
        assert_eq!(
            p().fit(&array![[1.0, 2.0]].view()),
            Err(DetectError::TooFewRows { needed: 2, got: 1 })
        );
        assert_eq!(
            p().fit(&Array2::zeros((0, 2)).view()),
            Err(DetectError::Empty)
        );
        assert_eq!(
            p().fit(&array![[1.0, 2.0], [f64::INFINITY, 1.0]].view()),
            Err(DetectError::NotFinite { row: 1, col: 0 })
        );
        let m = p().fit(&x.view()).expect("fit");
        assert_eq!(
            m.statistics(&array![[1.0]].view()),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            m.contributions(&[1.0, f64::NAN]),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
        assert!(m.contributions(&[]).is_err());
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PcaDetector>();
        assert_send_sync::<PcaDetectorParams>();
        assert_send_sync::<PcaDetectorValidParams>();
        assert_send_sync::<PcaDetectorParamsError>();
    }
}
