//! Hyperparameters of the Isolation Forest: built unchecked, checked once into valid parameters.

use super::IsolationForest;
use crate::Result;
use ndarray::ArrayView2;

/// How many rows each tree is grown on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum MaxSamples {
    /// `min(256, n_rows)`, the subsample size of the original paper.
    #[default]
    Auto,
    /// This many rows (at least 1); more than the training set has means all of them.
    Count(usize),
    /// This fraction of the training rows, in (0, 1], rounded down.
    Fraction(f64),
}

/// How the decision offset is set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Contamination {
    /// The offset is -0.5, the paper's neutral score.
    #[default]
    Auto,
    /// Expected share of outliers in the training set, in (0, 0.5]: the offset is this percentile
    /// of the training scores.
    Fraction(f64),
}

/// How many features each tree sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxFeatures {
    /// This many features (at least 1, at most the number of features).
    Count(usize),
    /// This fraction of the features, in (0, 1], rounded down but at least 1.
    Fraction(f64),
}

impl Default for MaxFeatures {
    fn default() -> Self {
        Self::Fraction(1.0)
    }
}

/// An invalid Isolation Forest parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IsolationForestParamsError {
    /// `n_estimators` is zero.
    #[error("n_estimators must be >= 1, got {0}")]
    NEstimators(usize),
    /// `max_samples` is a count of zero.
    #[error("max_samples must be >= 1 as a count, got {0}")]
    MaxSamplesCount(usize),
    /// `max_samples` is a fraction outside (0, 1].
    #[error("max_samples must be in (0, 1] as a fraction, got {0}")]
    MaxSamplesFraction(f64),
    /// `max_samples` as a fraction selects no row of this training set.
    #[error("max_samples {fraction} of {n_rows} rows selects no row; it must be >= 1/{n_rows}")]
    MaxSamplesNoRow {
        /// The fraction asked for.
        fraction: f64,
        /// Rows of the training set.
        n_rows: usize,
    },
    /// `contamination` is a fraction outside (0, 0.5].
    #[error("contamination must be in (0, 0.5], got {0}")]
    Contamination(f64),
    /// `max_features` is a count of zero.
    #[error("max_features must be >= 1 as a count, got {0}")]
    MaxFeaturesCount(usize),
    /// `max_features` is a fraction outside (0, 1].
    #[error("max_features must be in (0, 1] as a fraction, got {0}")]
    MaxFeaturesFraction(f64),
    /// `max_features` is a count above the number of features of the training set.
    #[error("max_features must be <= the number of features ({n_features}), got {got}")]
    MaxFeaturesTooMany {
        /// The count asked for.
        got: usize,
        /// Features of the training set.
        n_features: usize,
    },
    /// `n_threads` is zero.
    #[error("n_threads must be >= 1, got {0}")]
    NThreads(usize),
}

/// Checked Isolation Forest parameters; [`fit`](Self::fit) grows a forest.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestValidParams {
    pub(super) n_estimators: usize,
    pub(super) max_samples: MaxSamples,
    pub(super) contamination: Contamination,
    pub(super) max_features: MaxFeatures,
    pub(super) bootstrap: bool,
    pub(super) random_state: Option<u64>,
    pub(super) n_threads: usize,
}

impl IsolationForestValidParams {
    /// Number of trees.
    pub fn n_estimators(&self) -> usize {
        self.n_estimators
    }

    /// Rows per tree, as asked.
    pub fn max_samples(&self) -> MaxSamples {
        self.max_samples
    }

    /// How the decision offset is set.
    pub fn contamination(&self) -> Contamination {
        self.contamination
    }

    /// Features per tree, as asked.
    pub fn max_features(&self) -> MaxFeatures {
        self.max_features
    }

    /// Whether rows are drawn with replacement.
    pub fn bootstrap(&self) -> bool {
        self.bootstrap
    }

    /// Seed of the forest; `None` seeds from the process's random keys.
    pub fn random_state(&self) -> Option<u64> {
        self.random_state
    }

    /// Threads used to grow trees and to score.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Grows the forest on the rows of `x` (one row per observation, one column per feature).
    ///
    /// Errors on an empty matrix, a non-finite value, or a parameter that does not fit this
    /// training set (`max_features` above its number of features, a `max_samples` fraction that
    /// selects no row).
    pub fn fit(&self, x: &ArrayView2<'_, f64>) -> Result<IsolationForest> {
        IsolationForest::fit_valid(self, x)
    }

    /// Rows each tree is grown on for a training set of `n_rows` rows, and the count asked for
    /// when it was above `n_rows` and had to be lowered to it (scikit-learn warns then).
    pub(super) fn effective_max_samples(
        &self,
        n_rows: usize,
    ) -> std::result::Result<(usize, Option<usize>), IsolationForestParamsError> {
        match self.max_samples {
            MaxSamples::Auto => Ok((n_rows.min(256), None)),
            MaxSamples::Count(k) if k > n_rows => Ok((n_rows, Some(k))),
            MaxSamples::Count(k) => Ok((k, None)),
            MaxSamples::Fraction(f) => {
                // Truncation, as scikit-learn's int(max_samples * n_samples).
                let k = (f * n_rows as f64) as usize;
                if k == 0 {
                    Err(IsolationForestParamsError::MaxSamplesNoRow {
                        fraction: f,
                        n_rows,
                    })
                } else {
                    Ok((k.min(n_rows), None))
                }
            }
        }
    }

    /// Features each tree sees for a training set of `n_features` features.
    pub(super) fn effective_max_features(
        &self,
        n_features: usize,
    ) -> std::result::Result<usize, IsolationForestParamsError> {
        match self.max_features {
            MaxFeatures::Count(k) if k > n_features => {
                Err(IsolationForestParamsError::MaxFeaturesTooMany { got: k, n_features })
            }
            MaxFeatures::Count(k) => Ok(k),
            MaxFeatures::Fraction(f) => Ok(((f * n_features as f64) as usize).clamp(1, n_features)),
        }
    }
}

/// Unchecked Isolation Forest parameters, from [`IsolationForest::params`].
///
/// Defaults are scikit-learn's: 100 trees, `max_samples` auto, `contamination` auto, all
/// features, no bootstrap; plus one thread and no fixed seed.
#[derive(Debug, Clone, PartialEq)]
pub struct IsolationForestParams(IsolationForestValidParams);

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self(IsolationForestValidParams {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            contamination: Contamination::Auto,
            max_features: MaxFeatures::default(),
            bootstrap: false,
            random_state: None,
            n_threads: 1,
        })
    }
}

impl IsolationForestParams {
    /// The defaults; the same as [`IsolationForest::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of trees, at least 1.
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.0.n_estimators = n;
        self
    }

    /// Rows each tree is grown on.
    pub fn max_samples(mut self, m: MaxSamples) -> Self {
        self.0.max_samples = m;
        self
    }

    /// How the decision offset is set.
    pub fn contamination(mut self, c: Contamination) -> Self {
        self.0.contamination = c;
        self
    }

    /// Features each tree sees.
    pub fn max_features(mut self, m: MaxFeatures) -> Self {
        self.0.max_features = m;
        self
    }

    /// Draw each tree's rows with replacement.
    pub fn bootstrap(mut self, b: bool) -> Self {
        self.0.bootstrap = b;
        self
    }

    /// Fixes the seed: the same seed and data give the same forest, whatever `n_threads`.
    pub fn random_state(mut self, seed: u64) -> Self {
        self.0.random_state = Some(seed);
        self
    }

    /// Threads used to grow trees and to score, at least 1.
    pub fn n_threads(mut self, n: usize) -> Self {
        self.0.n_threads = n;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(
        &self,
    ) -> std::result::Result<&IsolationForestValidParams, IsolationForestParamsError> {
        use IsolationForestParamsError as E;
        let p = &self.0;
        if p.n_estimators == 0 {
            return Err(E::NEstimators(0));
        }
        match p.max_samples {
            MaxSamples::Count(0) => return Err(E::MaxSamplesCount(0)),
            // Written so that NaN fails too.
            MaxSamples::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(E::MaxSamplesFraction(f))
            }
            _ => {}
        }
        if let Contamination::Fraction(c) = p.contamination {
            if !(c > 0.0 && c <= 0.5) {
                return Err(E::Contamination(c));
            }
        }
        match p.max_features {
            MaxFeatures::Count(0) => return Err(E::MaxFeaturesCount(0)),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return Err(E::MaxFeaturesFraction(f))
            }
            _ => {}
        }
        if p.n_threads == 0 {
            return Err(E::NThreads(0));
        }
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(
        self,
    ) -> std::result::Result<IsolationForestValidParams, IsolationForestParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters, then grows the forest on `x`; see
    /// [`IsolationForestValidParams::fit`].
    pub fn fit(&self, x: &ArrayView2<'_, f64>) -> Result<IsolationForest> {
        self.check_ref()?.fit(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(p: IsolationForestParams) -> String {
        match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_scikit_learn() {
        let v = IsolationForest::params().check().expect("defaults");
        assert_eq!(v.n_estimators(), 100);
        assert_eq!(v.max_samples(), MaxSamples::Auto);
        assert_eq!(v.contamination(), Contamination::Auto);
        assert_eq!(v.max_features(), MaxFeatures::Fraction(1.0));
        assert!(!v.bootstrap());
        assert_eq!(v.n_threads(), 1);
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let p = IsolationForest::params;
        assert_eq!(err(p().n_estimators(0)), "n_estimators must be >= 1, got 0");
        assert_eq!(
            err(p().contamination(Contamination::Fraction(0.7))),
            "contamination must be in (0, 0.5], got 0.7"
        );
        assert_eq!(
            err(p().contamination(Contamination::Fraction(0.0))),
            "contamination must be in (0, 0.5], got 0"
        );
        assert_eq!(
            err(p().contamination(Contamination::Fraction(f64::NAN))),
            "contamination must be in (0, 0.5], got NaN"
        );
        assert_eq!(
            err(p().contamination(Contamination::Fraction(0.5))),
            "accepted"
        );
        assert_eq!(
            err(p().max_samples(MaxSamples::Count(0))),
            "max_samples must be >= 1 as a count, got 0"
        );
        assert_eq!(
            err(p().max_samples(MaxSamples::Fraction(1.5))),
            "max_samples must be in (0, 1] as a fraction, got 1.5"
        );
        assert_eq!(err(p().max_samples(MaxSamples::Fraction(1.0))), "accepted");
        assert_eq!(
            err(p().max_features(MaxFeatures::Count(0))),
            "max_features must be >= 1 as a count, got 0"
        );
        assert_eq!(
            err(p().max_features(MaxFeatures::Fraction(0.0))),
            "max_features must be in (0, 1] as a fraction, got 0"
        );
        assert_eq!(err(p().n_threads(0)), "n_threads must be >= 1, got 0");
    }

    #[test]
    fn data_dependent_sizes() {
        let v = |p: IsolationForestParams| p.check().expect("valid");
        let p = IsolationForest::params;
        assert_eq!(v(p()).effective_max_samples(1000), Ok((256, None)));
        assert_eq!(v(p()).effective_max_samples(100), Ok((100, None)));
        let count = v(p().max_samples(MaxSamples::Count(500)));
        assert_eq!(count.effective_max_samples(100), Ok((100, Some(500))));
        let frac = v(p().max_samples(MaxSamples::Fraction(0.25)));
        assert_eq!(frac.effective_max_samples(10), Ok((2, None)));
        assert!(frac.effective_max_samples(3).is_err());
        let mf = v(p().max_features(MaxFeatures::Fraction(0.5)));
        assert_eq!(mf.effective_max_features(5), Ok(2));
        assert_eq!(mf.effective_max_features(1), Ok(1));
        let mf = v(p().max_features(MaxFeatures::Count(3)));
        assert_eq!(
            mf.effective_max_features(2),
            Err(IsolationForestParamsError::MaxFeaturesTooMany {
                got: 3,
                n_features: 2
            })
        );
    }
}
