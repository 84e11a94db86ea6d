//! Anomaly likelihood: how unusual the recent raw scores are against their own long history.

use super::ensure;
use crate::Result;

/// Turns a detector's raw scores into a tail probability in [0, 1], in the manner of Numenta's
/// anomaly likelihood (Ahmad et al. 2017).
///
/// The raw scores' long-run mean and variance are tracked with exponential weights
/// `1 / long_window`; the mean of the last `short_window` raw scores is standardised with them,
/// `z = (short_mean - mean) / std`, and the likelihood is the normal probability `Phi(z)`. A
/// detector whose scores are always high on a noisy series then stops alarming there, while a
/// burst of unusual scores on a quiet series stands out; and the output is comparable across
/// series, which a single threshold over many series (as NAB's) needs. The first `warm_up` scores
/// give 0.5 (no evidence either way). The standard deviation is floored at 1e-6 times the mean's
/// magnitude plus 1e-12, so constant raw scores do not divide by zero.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyLikelihood {
    alpha: f64,
    warm_up: usize,
    short: Vec<f64>,
    short_cap: usize,
    head: usize,
    mean: f64,
    var: f64,
    seen: usize,
}

impl AnomalyLikelihood {
    /// A likelihood over a long-run memory of about `long_window` scores (at least 2), a short
    /// average of `short_window` scores (at least 1, at most `long_window`) and `warm_up` scores
    /// before the first likelihood (at least 2).
    pub fn new(long_window: usize, short_window: usize, warm_up: usize) -> Result<Self> {
        ensure(long_window >= 2, "long_window", ">= 2", long_window as f64)?;
        ensure(
            short_window >= 1 && short_window <= long_window,
            "short_window",
            "in [1, long_window]",
            short_window as f64,
        )?;
        ensure(warm_up >= 2, "warm_up", ">= 2", warm_up as f64)?;
        Ok(Self {
            alpha: 1.0 / long_window as f64,
            warm_up,
            short: Vec::with_capacity(short_window),
            short_cap: short_window,
            head: 0,
            mean: 0.0,
            var: 0.0,
            seen: 0,
        })
    }

    /// Takes the next raw score (non-finite scores count as 0) and returns the likelihood that
    /// the recent scores are unusually high, in [0, 1].
    pub fn update(&mut self, score: f64) -> f64 {
        let x = if score.is_finite() { score } else { 0.0 };
        if self.short.len() < self.short_cap {
            self.short.push(x);
        } else {
            self.short[self.head] = x;
            self.head = (self.head + 1) % self.short_cap;
        }
        // Summed afresh each time: the short window is small, and a running sum would drift.
        let short_mean = self.short.iter().sum::<f64>() / self.short.len() as f64;
        let out = if self.seen >= self.warm_up {
            let std = self.var.sqrt().max(1e-6 * self.mean.abs() + 1e-12);
            normal_cdf((short_mean - self.mean) / std)
        } else {
            0.5
        };
        self.seen = self.seen.saturating_add(1);
        // Plain running moments until the weights reach 1 / long_window.
        let alpha = self.alpha.max(1.0 / self.seen as f64);
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
        out
    }
}

/// Standard normal distribution function, through `erfc` (Numerical Recipes' Chebyshev fit,
/// relative error below 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// How [`super::nab_scores_with`] maps raw scores into [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum ScoreMapping {
    /// [`super::squash`] with the detector's threshold.
    Squash,
    /// [`AnomalyLikelihood`] of the raw scores.
    Likelihood {
        /// Long-run memory, in rows.
        long_window: usize,
        /// Rows averaged for the recent score.
        short_window: usize,
        /// Rows before the first likelihood.
        warm_up: usize,
    },
    /// The raw score as it is, clamped into [0, 1]: for detectors whose scores already are a
    /// level in [0, 1] ([`super::ContextDetector`]).
    Raw,
}

impl Default for ScoreMapping {
    /// The likelihood over about 2000 rows of memory, the recent 10 rows, after 300 rows.
    fn default() -> Self {
        Self::Likelihood {
            long_window: 2000,
            short_window: 10,
            warm_up: 300,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_tables() {
        // Values from a standard normal table.
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((normal_cdf(-1.959_964) - 0.025).abs() < 1e-6);
        assert!((normal_cdf(3.0) - 0.998_650_1).abs() < 1e-6);
    }

    #[test]
    fn burst_of_high_scores_is_likely_anomalous_and_fades() {
        let mut l = AnomalyLikelihood::new(500, 5, 50).expect("valid");
        let mut out = Vec::new();
        for i in 0..1000 {
            let raw = if (600..610).contains(&i) {
                5.0
            } else {
                ((i * 7) % 11) as f64 / 10.0
            };
            out.push(l.update(raw));
        }
        assert!(out[..50].iter().all(|&p| p == 0.5));
        assert!(out[609] > 0.999, "{}", out[609]);
        assert!(out[100..600].iter().all(|&p| p < 0.99));
        assert!(out.iter().all(|p| (0.0..=1.0).contains(p)));
    }

    #[test]
    fn parameter_errors() {
        let e = |r: Result<AnomalyLikelihood>| r.map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            e(AnomalyLikelihood::new(1, 1, 2)),
            Err("invalid parameter: long_window must be >= 2, got 1".to_owned())
        );
        assert_eq!(
            e(AnomalyLikelihood::new(10, 11, 2)),
            Err("invalid parameter: short_window must be in [1, long_window], got 11".to_owned())
        );
        assert_eq!(
            e(AnomalyLikelihood::new(10, 1, 0)),
            Err("invalid parameter: warm_up must be >= 2, got 0".to_owned())
        );
    }
}
