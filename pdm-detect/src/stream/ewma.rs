//! EWMA control chart with exponentially weighted estimates of the in-control mean and variance.

use super::{check_row, ensure, score_series, StreamParamsError};
use crate::persist::StateError;
use crate::Result;
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};

/// Checked [`EwmaChart`] parameters; [`build`](Self::build) starts a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaChartValidParams {
    lambda: f64,
    limit: f64,
    alpha: f64,
    warm_up: usize,
    min_std: f64,
    shewhart_limit: f64,
}

impl EwmaChartValidParams {
    /// Weight of the newest row in the chart statistic.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Width of the control limits in standard deviations of the chart statistic (`L`).
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Weight of the newest row in the in-control mean and variance.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Rows seen before the first non-zero score.
    pub fn warm_up(&self) -> usize {
        self.warm_up
    }

    /// Smallest standard deviation used.
    pub fn min_std(&self) -> f64 {
        self.min_std
    }

    /// Distance from the mean, in standard deviations, at which a single row alarms and past
    /// which its pull on the mean and variance is capped.
    pub fn shewhart_limit(&self) -> f64 {
        self.shewhart_limit
    }

    /// A detector for rows of `n_features` values (at least 1).
    pub fn build(&self, n_features: usize) -> Result<EwmaChart> {
        ensure(n_features >= 1, "n_features", ">= 1", n_features as f64)?;
        Ok(EwmaChart {
            params: self.clone(),
            state: vec![FeatureState::default(); n_features],
            seen: 0,
            // Asymptotic standard deviation of the chart statistic, per unit of process sigma.
            stat_scale: (self.lambda / (2.0 - self.lambda)).sqrt(),
        })
    }
}

/// Unchecked [`EwmaChart`] parameters, from [`EwmaChart::params`].
///
/// Defaults: `lambda` 0.2 and `L` 3 (a common chart design), `alpha` 0.01 (the in-control
/// statistics remember about 100 rows), 48 rows of warm-up, `min_std` 1e-9, Shewhart limit 4.
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaChartParams(EwmaChartValidParams);

impl Default for EwmaChartParams {
    fn default() -> Self {
        Self(EwmaChartValidParams {
            lambda: 0.2,
            limit: 3.0,
            alpha: 0.01,
            warm_up: 48,
            min_std: 1e-9,
            shewhart_limit: 4.0,
        })
    }
}

impl EwmaChartParams {
    /// The defaults; the same as [`EwmaChart::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Weight of the newest row in the chart statistic, in (0, 1]; 1 makes a Shewhart chart.
    pub fn lambda(mut self, l: f64) -> Self {
        self.0.lambda = l;
        self
    }

    /// Control-limit width `L` in standard deviations of the chart statistic, finite and > 0.
    pub fn limit(mut self, l: f64) -> Self {
        self.0.limit = l;
        self
    }

    /// Weight of the newest row in the in-control mean and variance, in (0, 1).
    pub fn alpha(mut self, a: f64) -> Self {
        self.0.alpha = a;
        self
    }

    /// Rows learnt before scoring starts (scores are 0 until then), at least 2.
    pub fn warm_up(mut self, n: usize) -> Self {
        self.0.warm_up = n;
        self
    }

    /// Smallest standard deviation used, finite and > 0.
    pub fn min_std(mut self, s: f64) -> Self {
        self.0.min_std = s;
        self
    }

    /// Shewhart limit in standard deviations of a single row, finite and > 0: a row this far from
    /// the in-control mean alarms on its own, and learning caps its deviation there.
    pub fn shewhart_limit(mut self, k: f64) -> Self {
        self.0.shewhart_limit = k;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&EwmaChartValidParams, StreamParamsError> {
        let p = &self.0;
        ensure(
            p.lambda > 0.0 && p.lambda <= 1.0,
            "lambda",
            "in (0, 1]",
            p.lambda,
        )?;
        ensure(
            p.limit.is_finite() && p.limit > 0.0,
            "limit",
            "finite and > 0",
            p.limit,
        )?;
        ensure(
            p.alpha > 0.0 && p.alpha < 1.0,
            "alpha",
            "in (0, 1)",
            p.alpha,
        )?;
        ensure(p.warm_up >= 2, "warm_up", ">= 2", p.warm_up as f64)?;
        ensure(
            p.min_std.is_finite() && p.min_std > 0.0,
            "min_std",
            "finite and > 0",
            p.min_std,
        )?;
        ensure(
            p.shewhart_limit.is_finite() && p.shewhart_limit > 0.0,
            "shewhart_limit",
            "finite and > 0",
            p.shewhart_limit,
        )?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<EwmaChartValidParams, StreamParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters and builds a detector for rows of `n_features` values.
    pub fn build(&self, n_features: usize) -> Result<EwmaChart> {
        self.check_ref()?.build(n_features)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct FeatureState {
    /// Chart statistic `z`.
    z: f64,
    /// In-control mean estimate.
    mean: f64,
    /// In-control variance estimate.
    var: f64,
}

/// Combined Shewhart–EWMA control chart (Lucas & Saccucci 1990), one per feature.
///
/// Per feature: the chart statistic `z_t = lambda x_t + (1 - lambda) z_(t-1)` is compared with an
/// in-control mean `mu` and standard deviation `sigma`, which are themselves exponentially
/// weighted estimates (weight `alpha`, but at least `1 / rows seen`, so the first rows get plain
/// running means instead of a start biased towards the first value). The EWMA score is
/// `|z_t - mu| / (L sigma sqrt(lambda / (2 - lambda)))`: the distance to the centre line in units
/// of the asymptotic control limit. The EWMA statistic alone is slow on isolated spikes and blind
/// to a wider spread, so the row itself is also charted: the Shewhart score is
/// `|x_t - mu| / (shewhart_limit sigma)`. A feature's score is the larger of the two, so a score
/// above 1 is out of control on either chart.
///
/// Learning caps a row's deviation from `mu` at `shewhart_limit sigma`: an outburst then widens
/// `sigma` gradually instead of at once, which keeps a variance increase in alarm for a while and
/// keeps one spike from masking the rows after it. A row's score is the largest over its
/// features, computed against `mu` and `sigma` before the row updates them; the first `warm_up`
/// rows score 0 (and learn uncapped).
#[derive(Debug, Clone, PartialEq)]
pub struct EwmaChart {
    params: EwmaChartValidParams,
    state: Vec<FeatureState>,
    seen: usize,
    stat_scale: f64,
}

impl EwmaChart {
    /// Default parameters, to adjust and then [`build`](EwmaChartParams::build).
    pub fn params() -> EwmaChartParams {
        EwmaChartParams::default()
    }

    /// The parameters the detector runs with.
    pub fn valid_params(&self) -> &EwmaChartValidParams {
        &self.params
    }

    /// In-control mean and standard deviation of feature `j`, `None` past the features.
    pub fn centre(&self, j: usize) -> Option<(f64, f64)> {
        self.state.get(j).map(|s| (s.mean, s.var.sqrt()))
    }

    /// Scores the rows of `x` in order, learning from each; see [`super::score_series`].
    pub fn score_series(&mut self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        score_series(self, x)
    }
}

impl StreamingDetector for EwmaChart {
    fn n_features(&self) -> usize {
        self.state.len()
    }

    fn update(&mut self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.state.len())?;
        let p = &self.params;
        let first = self.seen == 0;
        let scoring = self.seen >= p.warm_up;
        self.seen = self.seen.saturating_add(1);
        let alpha = p.alpha.max(1.0 / self.seen as f64);
        let mut score = 0.0f64;
        for (s, &x) in self.state.iter_mut().zip(row) {
            s.z = if first {
                x
            } else {
                p.lambda * x + (1.0 - p.lambda) * s.z
            };
            let sigma = s.var.sqrt().max(p.min_std);
            let cap = p.shewhart_limit * sigma;
            if scoring {
                let ewma = (s.z - s.mean).abs() / (p.limit * sigma * self.stat_scale);
                let shewhart = (x - s.mean).abs() / cap;
                score = score.max(ewma).max(shewhart);
            }
            // Exponentially weighted mean and variance (West 1979); with alpha = 1/n they are the
            // running mean and population variance.
            if first {
                s.mean = x;
                s.var = 0.0;
            } else {
                let diff = if scoring {
                    (x - s.mean).clamp(-cap, cap)
                } else {
                    x - s.mean
                };
                let incr = alpha * diff;
                s.mean += incr;
                s.var = (1.0 - alpha) * (s.var + diff * incr);
            }
        }
        Ok(score)
    }

    fn score(&self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.state.len())?;
        let p = &self.params;
        if self.seen < p.warm_up {
            return Ok(0.0);
        }
        // As `update` computes it, from the state before the row; `seen >= warm_up >= 2` here,
        // so the row is not the first.
        let mut score = 0.0f64;
        for (s, &x) in self.state.iter().zip(row) {
            let z = p.lambda * x + (1.0 - p.lambda) * s.z;
            let sigma = s.var.sqrt().max(p.min_std);
            let ewma = (z - s.mean).abs() / (p.limit * sigma * self.stat_scale);
            let shewhart = (x - s.mean).abs() / (p.shewhart_limit * sigma);
            score = score.max(ewma).max(shewhart);
        }
        Ok(score)
    }

    fn threshold(&self) -> f64 {
        1.0
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EwmaChartState {
    lambda: f64,
    limit: f64,
    alpha: f64,
    warm_up: usize,
    min_std: f64,
    shewhart_limit: f64,
    seen: usize,
    /// Per feature: the chart statistic, the in-control mean and variance.
    z: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
}

impl crate::persist::Persist for EwmaChart {
    const KIND: &'static str = "ewma_chart";
    type State = EwmaChartState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.state.len())
    }

    fn n_training_rows(&self) -> Option<usize> {
        Some(self.seen)
    }

    fn state(&self) -> EwmaChartState {
        let p = &self.params;
        EwmaChartState {
            lambda: p.lambda,
            limit: p.limit,
            alpha: p.alpha,
            warm_up: p.warm_up,
            min_std: p.min_std,
            shewhart_limit: p.shewhart_limit,
            seen: self.seen,
            z: self.state.iter().map(|s| s.z).collect(),
            mean: self.state.iter().map(|s| s.mean).collect(),
            var: self.state.iter().map(|s| s.var).collect(),
        }
    }

    fn from_state(s: EwmaChartState, names: Vec<String>) -> std::result::Result<Self, StateError> {
        let n = names.len();
        if n == 0 || [s.z.len(), s.mean.len(), s.var.len()] != [n, n, n] {
            return Err(StateError::new(
                "z",
                format!("the chart needs one z, mean and variance per feature ({n})"),
            ));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if !finite(&s.z) || !finite(&s.mean) || !finite(&s.var) || s.var.iter().any(|&v| v < 0.0) {
            return Err(StateError::new(
                "var",
                "the chart's statistics must be finite and its variances >= 0",
            ));
        }
        let mut chart = EwmaChart::params()
            .lambda(s.lambda)
            .limit(s.limit)
            .alpha(s.alpha)
            .warm_up(s.warm_up)
            .min_std(s.min_std)
            .shewhart_limit(s.shewhart_limit)
            .build(n)
            .map_err(StateError::params)?;
        for (i, st) in chart.state.iter_mut().enumerate() {
            *st = FeatureState {
                z: s.z[i],
                mean: s.mean[i],
                var: s.var[i],
            };
        }
        chart.seen = s.seen;
        Ok(chart)
    }
}

crate::persist::persistable!(EwmaChart);

impl super::registry::Registered for EwmaChart {
    const NAME: &'static str = "ewma_chart";
    const SUMMARY: &'static str = "Streaming Shewhart–EWMA control chart";
    type Params = EwmaChartParams;

    fn build(params: &EwmaChartParams, n_features: usize) -> Result<Self> {
        params.build(n_features)
    }

    fn valid(&self) -> &EwmaChartValidParams {
        self.valid_params()
    }

    fn nab_params() -> EwmaChartParams {
        EwmaChart::params().alpha(0.002)
    }
}

// The chart's λ goes by `smoothing` in keyed parameters (and Python): `lambda` is a keyword there.
super::registry::keyed_params!(EwmaChartParams => EwmaChartValidParams {
    "smoothing" => lambda,
    "limit" => limit,
    "alpha" => alpha,
    "warm_up" => warm_up,
    "min_std" => min_std,
    "shewhart_limit" => shewhart_limit,
});

#[cfg(test)]
mod tests {
    use super::super::test_util::{
        assert_deterministic, assert_flags_changes, behaviour, gaussian,
    };
    use super::*;

    #[test]
    fn same_rows_same_scores() {
        assert_deterministic(|| Box::new(EwmaChart::params().build(1).expect("build")));
    }

    #[test]
    fn flags_spike_shift_and_variance_change() {
        let b = behaviour(|| Box::new(EwmaChart::params().build(1).expect("build")));
        println!("EwmaChart {b:?}");
        assert_flags_changes(&b);
    }

    #[test]
    fn warm_up_gives_running_mean_and_variance() {
        let mut det = EwmaChart::params()
            .alpha(0.001)
            .warm_up(10)
            .build(1)
            .expect("build");
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        for x in xs {
            assert_eq!(det.update(&[x]).expect("row"), 0.0);
        }
        // Mean 5, population standard deviation 2 (the textbook example).
        let (m, s) = det.centre(0).expect("feature 0");
        assert!(
            (m - 5.0).abs() < 1e-12 && (s - 2.0).abs() < 1e-12,
            "{m} {s}"
        );
    }

    #[test]
    fn shewhart_case_scores_in_sigma_over_limit() {
        // lambda = 1: z is the row itself and the limit is L sigma; the Shewhart limit is wider.
        let mut det = EwmaChart::params()
            .lambda(1.0)
            .limit(3.0)
            .shewhart_limit(5.0)
            .alpha(0.001)
            .warm_up(8)
            .build(1)
            .expect("build");
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            det.update(&[x]).expect("row");
        }
        let s = det.update(&[11.0]).expect("row");
        assert!((s - 1.0).abs() < 1e-12, "{s}");
    }

    #[test]
    fn shewhart_part_scores_a_spike_the_ewma_smooths() {
        let mut det = EwmaChart::params()
            .lambda(0.1)
            .limit(3.0)
            .shewhart_limit(4.0)
            .alpha(0.001)
            .warm_up(8)
            .build(1)
            .expect("build");
        for x in [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0] {
            det.update(&[x]).expect("row");
        }
        // 21 is 8 sigma out: the Shewhart score is 8 / 4; the EWMA one is lower.
        let s = det.update(&[21.0]).expect("row");
        assert!((s - 2.0).abs() < 1e-12, "{s}");
        // Learning capped the deviation at 4 sigma = 8: the mean moved by 8 / 9, not 16 / 9.
        let (m, _) = det.centre(0).expect("feature 0");
        assert!((m - (5.0 + 8.0 / 9.0)).abs() < 1e-12, "{m}");
    }

    #[test]
    fn multivariate_score_is_the_largest_feature_score() {
        let mut both = EwmaChart::params().build(2).expect("build");
        let mut first = EwmaChart::params().build(1).expect("build");
        let mut second = EwmaChart::params().build(1).expect("build");
        for (&x, &y) in gaussian(400, 1).iter().zip(&gaussian(400, 2)) {
            let s = both.update(&[x, y]).expect("row");
            let s1 = first.update(&[x]).expect("row");
            let s2 = second.update(&[y]).expect("row");
            assert_eq!(s, s1.max(s2));
        }
    }

    #[test]
    fn bad_rows_leave_the_state_alone() {
        let mut det = EwmaChart::params().build(1).expect("build");
        det.update(&[1.0]).expect("row");
        let before = det.clone();
        assert!(det.update(&[f64::NEG_INFINITY]).is_err());
        assert!(det.update(&[1.0, 2.0]).is_err());
        assert_eq!(det, before);
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let err = |p: EwmaChartParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = EwmaChart::params;
        assert_eq!(err(p()), "accepted");
        assert_eq!(err(p().lambda(0.0)), "lambda must be in (0, 1], got 0");
        assert_eq!(err(p().lambda(1.0)), "accepted");
        assert_eq!(err(p().limit(-1.0)), "limit must be finite and > 0, got -1");
        assert_eq!(err(p().alpha(1.0)), "alpha must be in (0, 1), got 1");
        assert_eq!(err(p().warm_up(1)), "warm_up must be >= 2, got 1");
        assert_eq!(
            err(p().min_std(f64::INFINITY)),
            "min_std must be finite and > 0, got inf"
        );
        assert_eq!(
            err(p().shewhart_limit(0.0)),
            "shewhart_limit must be finite and > 0, got 0"
        );
    }
}
