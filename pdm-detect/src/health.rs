//! Health index from anomaly scores, and remaining useful life from the health trend.
//!
//! [`HealthIndex`] smooths a detector's scores relative to its threshold and maps them to a
//! health in [0, 1] (1 healthy, 0 failed). [`RulParams`] fits the recent health trend and says
//! how long until it reaches a failure level, with an interval, or `None` when health is not
//! significantly falling.
//!
//! ```
//! use pdm_detect::health::{HealthIndex, RulParams, TrendModel};
//!
//! // A detector whose score climbs steadily from 0.2 towards twice its threshold of 1.
//! let mut index = HealthIndex::params().alpha(0.2).failure_level(2.0).check()?.build();
//! let mut times = Vec::new();
//! let mut health = Vec::new();
//! for t in 0..60 {
//!     let score = 0.2 + 0.01 * t as f64;
//!     health.push(index.update(score, 1.0)?);
//!     times.push(t as f64);
//! }
//! let est = RulParams::new().window(40).check()?.estimate(&times, &health)?;
//! let est = est.expect("health is falling");
//! assert_eq!(est.model, TrendModel::Linear);
//! // The score reaches 2 (health 0) at t = 180; the smoothing lags by about 4 rows.
//! assert!((est.rul - (184.0 - 59.0)).abs() < 5.0, "{est:?}");
//! assert!(est.lower <= est.rul && est.rul <= est.upper);
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::persist::StateError;
use crate::stats::normal_quantile;
use crate::{DetectError, Result};

/// An invalid health or remaining-useful-life parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthParamsError {
    /// A numeric parameter is outside its range (NaN is always outside).
    #[error("{name} must be {range}, got {got}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// The allowed range.
        range: &'static str,
        /// The value given.
        got: f64,
    },
}

fn ensure(
    ok: bool,
    name: &'static str,
    range: &'static str,
    got: f64,
) -> std::result::Result<(), HealthParamsError> {
    if ok {
        Ok(())
    } else {
        Err(HealthParamsError::OutOfRange { name, range, got })
    }
}

/// Checked [`HealthIndex`] parameters; [`build`](Self::build) starts an index.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthIndexValidParams {
    alpha: f64,
    failure_level: f64,
}

impl HealthIndexValidParams {
    /// Weight of the newest score in the smoothing.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }

    /// Smoothed score, in thresholds, at which health reaches 0.
    pub fn failure_level(&self) -> f64 {
        self.failure_level
    }

    /// A new index with no score seen.
    pub fn build(&self) -> HealthIndex {
        HealthIndex {
            params: self.clone(),
            smoothed: None,
        }
    }
}

/// Unchecked [`HealthIndex`] parameters, from [`HealthIndex::params`].
///
/// Defaults: `alpha` 0.05 (about 40 rows of memory), failure at a smoothed score of twice the
/// threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthIndexParams(HealthIndexValidParams);

impl Default for HealthIndexParams {
    fn default() -> Self {
        Self(HealthIndexValidParams {
            alpha: 0.05,
            failure_level: 2.0,
        })
    }
}

impl HealthIndexParams {
    /// The defaults; the same as [`HealthIndex::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Weight of the newest score in the exponential smoothing, in (0, 1].
    pub fn alpha(mut self, a: f64) -> Self {
        self.0.alpha = a;
        self
    }

    /// Smoothed score, in units of the detector's threshold, at which health is 0; finite and
    /// > 0.
    pub fn failure_level(mut self, f: f64) -> Self {
        self.0.failure_level = f;
        self
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<HealthIndexValidParams, HealthParamsError> {
        let p = &self.0;
        ensure(
            p.alpha > 0.0 && p.alpha <= 1.0,
            "alpha",
            "in (0, 1]",
            p.alpha,
        )?;
        ensure(
            p.failure_level.is_finite() && p.failure_level > 0.0,
            "failure_level",
            "finite and > 0",
            p.failure_level,
        )?;
        Ok(self.0)
    }
}

/// Health in [0, 1] from a stream of anomaly scores.
///
/// Each score is divided by the detector's threshold, `u = score / threshold`, and smoothed
/// exponentially, `s = alpha u + (1 - alpha) s` (the first `u` starts `s`), so one stray spike
/// barely moves health while a lasting rise does. Health is `clamp(1 - s / failure_level, 0, 1)`:
/// 1 for scores of 0, falling linearly, `1 - 1 / failure_level` while scores sit at the
/// threshold (0.5 with the default `failure_level` 2), and 0 once the smoothed score reaches
/// `failure_level` thresholds and after. Negative scores count as 0.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthIndex {
    params: HealthIndexValidParams,
    smoothed: Option<f64>,
}

impl HealthIndex {
    /// Default parameters, to adjust and then [`check`](HealthIndexParams::check).
    pub fn params() -> HealthIndexParams {
        HealthIndexParams::default()
    }

    /// Takes the next score of a detector whose threshold is `threshold` and returns the health.
    ///
    /// Errors, leaving the index unchanged, when `score` is not finite (`NotFinite` at row 0,
    /// column 0) or `threshold` is not finite and > 0.
    pub fn update(&mut self, score: f64, threshold: f64) -> Result<f64> {
        if !score.is_finite() {
            return Err(DetectError::NotFinite { row: 0, col: 0 });
        }
        ensure(
            threshold.is_finite() && threshold > 0.0,
            "threshold",
            "finite and > 0",
            threshold,
        )?;
        let u = score.max(0.0) / threshold;
        let s = match self.smoothed {
            None => u,
            Some(s) => self.params.alpha * u + (1.0 - self.params.alpha) * s,
        };
        self.smoothed = Some(s);
        Ok(self.health_of(s))
    }

    /// Health after the scores so far, `None` before the first.
    pub fn health(&self) -> Option<f64> {
        self.smoothed.map(|s| self.health_of(s))
    }

    /// The parameters the index runs with.
    pub fn valid_params(&self) -> &HealthIndexValidParams {
        &self.params
    }

    /// Smoothed score in units of the threshold, `None` before the first.
    pub fn smoothed(&self) -> Option<f64> {
        self.smoothed
    }

    /// Health of every score of `scores` in turn (continuing from the current state).
    pub fn series(&mut self, scores: &[f64], threshold: f64) -> Result<Vec<f64>> {
        scores
            .iter()
            .enumerate()
            .map(|(row, &s)| {
                self.update(s, threshold).map_err(|e| match e {
                    DetectError::NotFinite { .. } => DetectError::NotFinite { row, col: 0 },
                    e => e,
                })
            })
            .collect()
    }

    fn health_of(&self, s: f64) -> f64 {
        (1.0 - s / self.params.failure_level).clamp(0.0, 1.0)
    }
}

/// The trend model a remaining-useful-life estimate was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrendModel {
    /// `health = a + b t`.
    Linear,
    /// `1 - health = exp(a + b t)`: degradation growing exponentially.
    Exponential,
}

/// A remaining-useful-life estimate, in the units of the times given, counted from the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct RulEstimate {
    /// Time until the fitted trend reaches the failure level (0 when it already has).
    pub rul: f64,
    /// Lower end of the interval.
    pub lower: f64,
    /// Upper end of the interval.
    pub upper: f64,
    /// The model that fitted better.
    pub model: TrendModel,
    /// Fitted slope: of health per time unit for [`TrendModel::Linear`], of `ln(1 - health)`
    /// for [`TrendModel::Exponential`].
    pub slope: f64,
    /// Standard error of the slope.
    pub slope_std_err: f64,
    /// Points the fit used.
    pub n_points: usize,
}

/// Checked remaining-useful-life parameters; [`estimate`](Self::estimate) fits a trend.
#[derive(Debug, Clone, PartialEq)]
pub struct RulValidParams {
    window: usize,
    min_points: usize,
    failure_level: f64,
    confidence: f64,
}

/// Unchecked remaining-useful-life parameters.
///
/// Defaults: the last 100 points, at least 10, failure at health 0, a 90% interval.
#[derive(Debug, Clone, PartialEq)]
pub struct RulParams(RulValidParams);

impl Default for RulParams {
    fn default() -> Self {
        Self(RulValidParams {
            window: 100,
            min_points: 10,
            failure_level: 0.0,
            confidence: 0.9,
        })
    }
}

impl RulParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most recent points fitted, at least 3.
    pub fn window(mut self, n: usize) -> Self {
        self.0.window = n;
        self
    }

    /// Fewest points to estimate from (fewer give `None`), in [3, window].
    pub fn min_points(mut self, n: usize) -> Self {
        self.0.min_points = n;
        self
    }

    /// Health at failure, in [0, 1).
    pub fn failure_level(mut self, f: f64) -> Self {
        self.0.failure_level = f;
        self
    }

    /// Coverage of the interval, and the confidence that the slope is falling, in (0, 1).
    pub fn confidence(mut self, c: f64) -> Self {
        self.0.confidence = c;
        self
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<RulValidParams, HealthParamsError> {
        let p = &self.0;
        ensure(p.window >= 3, "window", ">= 3", p.window as f64)?;
        ensure(
            p.min_points >= 3 && p.min_points <= p.window,
            "min_points",
            "in [3, window]",
            p.min_points as f64,
        )?;
        ensure(
            p.failure_level >= 0.0 && p.failure_level < 1.0,
            "failure_level",
            "in [0, 1)",
            p.failure_level,
        )?;
        ensure(
            p.confidence > 0.0 && p.confidence < 1.0,
            "confidence",
            "in (0, 1)",
            p.confidence,
        )?;
        Ok(self.0)
    }
}

impl RulValidParams {
    /// Most recent points fitted.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Fewest points to estimate from.
    pub fn min_points(&self) -> usize {
        self.min_points
    }

    /// Health at failure.
    pub fn failure_level(&self) -> f64 {
        self.failure_level
    }

    /// Coverage of the interval.
    pub fn confidence(&self) -> f64 {
        self.confidence
    }

    /// Remaining useful life from health values at strictly increasing times.
    ///
    /// Over the last `window` points, fits health linearly in time and `ln(1 - health)`
    /// linearly in time (the exponential model; only when every health is below 1), both by
    /// least squares, and keeps the model with the smaller sum of squared residuals in health.
    /// The trend must fall significantly: the `confidence` interval of its slope,
    /// `slope ± t(n - 2) * se`, must lie wholly on the degrading side, else the answer is `None`
    /// (also with fewer than `min_points` points). The RUL is when the fitted line reaches the
    /// failure level, less the last time. Its interval is Fieller's `confidence` interval for
    /// that crossing time, from the standard errors of the slope and of the level at the
    /// centroid (uncorrelated there) with the t quantile of `n - 2` degrees of freedom; for the
    /// exponential model it is computed on `ln(1 - health)`. It assumes independent residuals
    /// around the model, so it is too narrow when the health series is smoothed or
    /// autocorrelated. Values are clamped at 0 (already failed).
    ///
    /// Errors when the lengths differ, a value is not finite, or times do not increase.
    pub fn estimate(&self, times: &[f64], health: &[f64]) -> Result<Option<RulEstimate>> {
        if times.len() != health.len() {
            return Err(DetectError::Length {
                expected: times.len(),
                got: health.len(),
            });
        }
        for (row, (t, h)) in times.iter().zip(health).enumerate() {
            if !t.is_finite() {
                return Err(DetectError::NotFinite { row, col: 0 });
            }
            if !h.is_finite() {
                return Err(DetectError::NotFinite { row, col: 1 });
            }
            if row > 0 && times[row - 1] >= *t {
                return Err(DetectError::NotIncreasing { index: row });
            }
        }
        let start = times.len().saturating_sub(self.window);
        let (t, h) = (&times[start..], &health[start..]);
        let n = t.len();
        if n < self.min_points {
            return Ok(None);
        }
        let tq = t_quantile(0.5 + 0.5 * self.confidence, (n - 2) as f64);

        let lin = ols(t, h.iter().copied());
        let lin_sse: f64 = t
            .iter()
            .zip(h)
            .map(|(&ti, &hi)| (hi - lin.at(ti)).powi(2))
            .sum();
        let exp = h.iter().all(|&v| v < 1.0).then(|| {
            let fit = ols(t, h.iter().map(|&v| (1.0 - v).ln()));
            let sse: f64 = t
                .iter()
                .zip(h)
                .map(|(&ti, &hi)| (hi - (1.0 - fit.at(ti).exp())).powi(2))
                .sum();
            (fit, sse)
        });
        let last = t[n - 1];
        let (model, fit, target) = match exp {
            // Degrading means ln(1 - health) rising: flip its sign so both models fall.
            Some((fit, sse)) if sse < lin_sse => (
                TrendModel::Exponential,
                fit.negated(),
                -(1.0 - self.failure_level).ln(),
            ),
            _ => (TrendModel::Linear, lin, self.failure_level),
        };
        // Significantly falling: the slope's interval lies wholly below zero.
        let slope_upper = fit.slope + tq * fit.se;
        if slope_upper.is_nan() || slope_upper >= 0.0 {
            return Ok(None);
        }
        let c = target - fit.y_mean;
        let rul = fit.t_mean + c / fit.slope - last;
        // Fieller's interval for where the true line crosses the target: the times t0 with
        // (y_mean + b (t0 - t_mean) - target)^2 <= tq^2 (se_level^2 + se^2 (t0 - t_mean)^2),
        // a quadratic in t0 - t_mean whose leading coefficient b^2 - tq^2 se^2 is positive
        // because the slope is significant, so the interval is finite.
        let g = fit.slope * fit.slope - tq * tq * fit.se * fit.se;
        let disc = (fit.slope * c).powi(2) - g * (c * c - (tq * fit.level_se).powi(2));
        let root = disc.max(0.0).sqrt();
        let a = fit.t_mean + (fit.slope * c - root) / g - last;
        let b = fit.t_mean + (fit.slope * c + root) / g - last;
        Ok(Some(RulEstimate {
            rul: rul.max(0.0),
            lower: a.min(b).max(0.0),
            upper: a.max(b).max(0.0),
            model,
            slope: match model {
                TrendModel::Linear => fit.slope,
                TrendModel::Exponential => -fit.slope,
            },
            slope_std_err: fit.se,
            n_points: n,
        }))
    }
}

/// A least-squares line, kept as centroid and slope.
#[derive(Debug, Clone, Copy)]
struct Fit {
    t_mean: f64,
    y_mean: f64,
    slope: f64,
    /// Standard error of the slope.
    se: f64,
    /// Standard error of the fitted level at `t_mean` (`s / sqrt(n)`).
    level_se: f64,
}

impl Fit {
    /// The same fit of `-y`.
    fn negated(self) -> Self {
        Self {
            y_mean: -self.y_mean,
            slope: -self.slope,
            ..self
        }
    }

    fn at(&self, t: f64) -> f64 {
        self.y_mean + self.slope * (t - self.t_mean)
    }
}

/// Ordinary least squares of `y` on `t` (at least 3 points, strictly increasing `t`).
fn ols(t: &[f64], y: impl Iterator<Item = f64> + Clone) -> Fit {
    let n = t.len() as f64;
    let t_mean = t.iter().sum::<f64>() / n;
    let y_mean = y.clone().sum::<f64>() / n;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (&ti, yi) in t.iter().zip(y.clone()) {
        sxx += (ti - t_mean).powi(2);
        sxy += (ti - t_mean) * (yi - y_mean);
    }
    let slope = sxy / sxx;
    let sse: f64 = t
        .iter()
        .zip(y)
        .map(|(&ti, yi)| (yi - y_mean - slope * (ti - t_mean)).powi(2))
        .sum();
    let s2 = sse / (n - 2.0);
    Fit {
        t_mean,
        y_mean,
        slope,
        se: (s2 / sxx).sqrt(),
        level_se: (s2 / n).sqrt(),
    }
}

/// Quantile `p` of Student's t with `nu` degrees of freedom: exact for 1 and 2, else the
/// Cornish–Fisher expansion around the normal quantile (Abramowitz & Stegun 26.7.5), within
/// about 1% for `nu >= 3` at the usual levels.
fn t_quantile(p: f64, nu: f64) -> f64 {
    if nu <= 1.0 {
        return (std::f64::consts::PI * (p - 0.5)).tan();
    }
    if nu <= 2.0 {
        return (2.0 * p - 1.0) / (2.0 * p * (1.0 - p)).sqrt();
    }
    let z = normal_quantile(p);
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * nu)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * nu * nu)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * nu.powi(3))
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthIndexState {
    alpha: f64,
    failure_level: f64,
    /// Smoothed score in thresholds; null before the first score.
    smoothed: Option<f64>,
}

impl crate::persist::Persist for HealthIndex {
    const KIND: &'static str = "health_index";
    type State = HealthIndexState;

    fn feature_names(&self) -> Vec<String> {
        vec!["score".to_owned()]
    }

    fn state(&self) -> HealthIndexState {
        HealthIndexState {
            alpha: self.params.alpha,
            failure_level: self.params.failure_level,
            smoothed: self.smoothed,
        }
    }

    fn from_state(
        s: HealthIndexState,
        _names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let params = HealthIndex::params()
            .alpha(s.alpha)
            .failure_level(s.failure_level)
            .check()
            .map_err(StateError::params)?;
        if s.smoothed.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
            return Err(StateError::new(
                "smoothed",
                "the smoothed score must be finite and >= 0",
            ));
        }
        let mut index = params.build();
        index.smoothed = s.smoothed;
        Ok(index)
    }
}

crate::persist::persistable!(HealthIndex);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn noise(n: usize, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = 1.0 - rng.random::<f64>();
                let v: f64 = rng.random();
                sd * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    fn rul() -> RulValidParams {
        RulParams::new().check().expect("defaults")
    }

    #[test]
    fn quantiles_match_tables() {
        // Values from standard normal and Student t tables.
        assert!((normal_quantile(0.975) - 1.959_964).abs() < 1e-6);
        assert!((normal_quantile(0.05) + 1.644_854).abs() < 1e-6);
        assert!((normal_quantile(0.999) - 3.090_232).abs() < 1e-6);
        assert!((t_quantile(0.95, 1.0) - 6.314).abs() < 1e-3);
        assert!((t_quantile(0.95, 2.0) - 2.920).abs() < 1e-3);
        assert!((t_quantile(0.95, 3.0) - 2.353).abs() < 0.03);
        assert!((t_quantile(0.95, 10.0) - 1.812).abs() < 2e-3);
        assert!((t_quantile(0.975, 30.0) - 2.042).abs() < 1e-3);
        assert!((t_quantile(0.95, 98.0) - 1.661).abs() < 1e-3);
    }

    #[test]
    fn linear_degradation_gives_rul_near_truth() {
        // Health 1 - 0.005 t + noise: reaches 0 at t = 200, so 101 time units after t = 99.
        // Over many noise draws every estimate is close and about 90% of the intervals hold the
        // truth, as a 90% interval should (a single draw misses one time in ten).
        let t: Vec<f64> = (0..100).map(f64::from).collect();
        let runs = 200;
        let mut covered = 0;
        for seed in 0..runs {
            let e = noise(100, 0.01, seed);
            let h: Vec<f64> = t.iter().zip(&e).map(|(t, e)| 1.0 - 0.005 * t + e).collect();
            let est = rul().estimate(&t, &h).expect("valid").expect("falling");
            assert_eq!(est.model, TrendModel::Linear);
            assert!((est.rul - 101.0).abs() < 6.0, "seed {seed}: {est:?}");
            assert!(est.lower < est.rul && est.rul < est.upper);
            assert_eq!(est.n_points, 100);
            if est.lower <= 101.0 && 101.0 <= est.upper {
                covered += 1;
            }
        }
        let coverage = f64::from(covered) / f64::from(runs as u32);
        assert!((0.85..=0.95).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn exponential_degradation_picks_the_exponential_model() {
        // 1 - health = 0.02 e^(0.03 t) with multiplicative noise: health 0 at t = ln(50) / 0.03.
        let t: Vec<f64> = (0..100).map(f64::from).collect();
        let e = noise(100, 0.02, 6);
        let h: Vec<f64> = t
            .iter()
            .zip(&e)
            .map(|(t, e)| 1.0 - 0.02 * (0.03 * t + e).exp())
            .collect();
        let truth = 50f64.ln() / 0.03 - 99.0;
        let est = rul().estimate(&t, &h).expect("valid").expect("falling");
        assert_eq!(est.model, TrendModel::Exponential);
        assert!((est.rul - truth).abs() < 0.1 * truth, "{est:?} vs {truth}");
        assert!(
            est.lower <= truth && truth <= est.upper,
            "{est:?} vs {truth}"
        );
    }

    #[test]
    fn flat_or_short_or_rising_health_gives_none() {
        let t: Vec<f64> = (0..100).map(f64::from).collect();
        let flat: Vec<f64> = noise(100, 0.02, 7).iter().map(|e| 0.8 + e).collect();
        assert_eq!(rul().estimate(&t, &flat).expect("valid"), None);
        let rising: Vec<f64> = t.iter().map(|t| 0.2 + 0.005 * t).collect();
        assert_eq!(rul().estimate(&t, &rising).expect("valid"), None);
        let falling: Vec<f64> = t.iter().map(|t| 1.0 - 0.005 * t).collect();
        assert_eq!(rul().estimate(&t[..9], &falling[..9]).expect("valid"), None);
        assert!(rul()
            .estimate(&t[..10], &falling[..10])
            .expect("valid")
            .is_some());
    }

    #[test]
    fn only_the_window_is_fitted() {
        // Flat for 200 points, then falling: the default window of 100 sees mostly the fall.
        let t: Vec<f64> = (0..300).map(f64::from).collect();
        let h: Vec<f64> = t
            .iter()
            .map(|&t| {
                if t < 200.0 {
                    1.0
                } else {
                    1.0 - 0.01 * (t - 200.0)
                }
            })
            .collect();
        let est = RulParams::new()
            .window(90)
            .check()
            .expect("valid")
            .estimate(&t, &h)
            .expect("valid")
            .expect("falling");
        assert_eq!(est.n_points, 90);
        assert!((est.rul - 1.0).abs() < 1e-6, "{est:?}");
    }

    #[test]
    fn past_failure_clamps_to_zero() {
        let t: Vec<f64> = (0..20).map(f64::from).collect();
        let h: Vec<f64> = t.iter().map(|t| 0.5 - 0.05 * t).collect();
        let est = RulParams::new()
            .failure_level(0.2)
            .check()
            .expect("valid")
            .estimate(&t, &h)
            .expect("valid")
            .expect("falling");
        assert_eq!((est.rul, est.lower, est.upper), (0.0, 0.0, 0.0));
    }

    #[test]
    fn health_index_maps_smoothed_score() {
        let mut hi = HealthIndex::params()
            .alpha(0.5)
            .failure_level(2.0)
            .check()
            .expect("valid")
            .build();
        assert_eq!(hi.health(), None);
        assert_eq!(hi.update(0.0, 3.0).expect("score"), 1.0);
        // u = 1: s = 0.5, health 1 - 0.25.
        assert_eq!(hi.update(3.0, 3.0).expect("score"), 0.75);
        // u = 5: s = 2.75, past failure.
        assert_eq!(hi.update(15.0, 3.0).expect("score"), 0.0);
        assert_eq!(hi.smoothed(), Some(2.75));
        let before = hi.clone();
        assert!(hi.update(f64::NAN, 3.0).is_err());
        assert!(hi.update(1.0, 0.0).is_err());
        assert_eq!(hi, before);
        assert_eq!(
            hi.series(&[0.0, f64::INFINITY], 1.0),
            Err(DetectError::NotFinite { row: 1, col: 0 })
        );
    }

    #[test]
    fn input_errors() {
        assert_eq!(
            rul().estimate(&[0.0, 1.0], &[1.0]),
            Err(DetectError::Length {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            rul().estimate(&[0.0, 1.0, 1.0], &[1.0, 1.0, 1.0]),
            Err(DetectError::NotIncreasing { index: 2 })
        );
        assert_eq!(
            rul().estimate(&[0.0, 1.0], &[1.0, f64::NAN]),
            Err(DetectError::NotFinite { row: 1, col: 1 })
        );
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let e = |r: std::result::Result<RulValidParams, HealthParamsError>| match r {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            e(RulParams::new().window(2).check()),
            "window must be >= 3, got 2"
        );
        assert_eq!(
            e(RulParams::new().window(5).min_points(6).check()),
            "min_points must be in [3, window], got 6"
        );
        assert_eq!(
            e(RulParams::new().failure_level(1.0).check()),
            "failure_level must be in [0, 1), got 1"
        );
        assert_eq!(
            e(RulParams::new().confidence(0.0).check()),
            "confidence must be in (0, 1), got 0"
        );
        assert_eq!(
            HealthIndex::params()
                .alpha(0.0)
                .check()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("alpha must be in (0, 1], got 0".to_owned())
        );
        assert_eq!(
            HealthIndex::params()
                .failure_level(f64::NAN)
                .check()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("failure_level must be finite and > 0, got NaN".to_owned())
        );
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HealthIndex>();
        assert_send_sync::<RulValidParams>();
        assert_send_sync::<RulEstimate>();
    }
}
