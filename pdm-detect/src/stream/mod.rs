//! Streaming detectors: each scores a row, then learns from it, in constant (or window-bounded)
//! time and without allocating per row.
//!
//! - [`RobustZScore`]: rolling median and MAD per feature, score `max |x - median| / (1.4826 MAD)`.
//! - [`EwmaChart`]: EWMA control chart per feature, score in units of the control limit.
//! - [`HalfSpaceTrees`]: streaming half-space trees (Tan, Ting & Liu 2011) over all features.
//! - [`ContextDetector`]: contextual anomaly detector after CAD OSE (Smirnov 2016): learns which
//!   quantised values follow which contexts, scores how little of a row was expected.
//!
//! All four implement [`StreamingDetector`]; rows may hold several features. Each follows the
//! validated-parameters pattern: `Xxx::params()` builds unchecked parameters, `check()` validates
//! them and `build(n_features)` returns the running detector. [`nab_scores`] runs one over a
//! univariate series and maps its scores into [0, 1] for the Numenta Anomaly Benchmark.
//!
//! The kinds are registered once, in one list (`stream_kinds!`): [`StreamKind`] lists them
//! with their names, model-file kinds and parameter keys, [`StreamSpec`] is a kind with its
//! parameters (set by key too), [`StreamModel`] a running detector of any kind that can be saved.
//! Model files, the Python bindings and the evaluation binary go through them.
//!
//! ```
//! use pdm_core::detector::StreamingDetector;
//! use pdm_detect::stream::RobustZScore;
//!
//! let mut det = RobustZScore::params().window(50).warm_up(20).build(1)?;
//! let mut last = 0.0;
//! for i in 0..100 {
//!     // A periodic signal between -1 and 1.
//!     last = det.update(&[((i * 7) % 13) as f64 / 6.0 - 1.0])?;
//! }
//! assert!(last < det.threshold());
//! let spike = det.update(&[40.0])?;
//! assert!(spike > det.threshold());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod context;
mod ewma;
mod hst;
mod likelihood;
pub(crate) mod registry;
mod robust;

#[cfg(test)]
mod nab_tests;
#[cfg(test)]
mod test_util;

pub use context::{ContextDetector, ContextDetectorParams, ContextDetectorValidParams};
pub use ewma::{EwmaChart, EwmaChartParams, EwmaChartValidParams};
pub use hst::{HalfSpaceTrees, HalfSpaceTreesParams, HalfSpaceTreesValidParams};
pub use likelihood::{AnomalyLikelihood, ScoreMapping};
pub use registry::{ParamKey, ParamType, ParamValue, StreamKind, StreamModel, StreamSpec};
pub use robust::{RobustZScore, RobustZScoreParams, RobustZScoreValidParams};

use crate::{check_finite, DetectError, Result};
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};

/// An invalid streaming-detector parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamParamsError {
    /// A numeric parameter is outside its range (NaN is always outside).
    #[error("{name} must be {range}, got {got}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// The allowed range, in words or interval notation.
        range: &'static str,
        /// The value given.
        got: f64,
    },
    /// Given feature ranges do not match the number of features.
    #[error("feature_ranges must hold one (min, max) per feature ({n_features}), got {got}")]
    FeatureRangesCount {
        /// Number of ranges given.
        got: usize,
        /// Features of the detector.
        n_features: usize,
    },
    /// A parameter set by key ([`StreamSpec::set`]) that the detector does not have.
    #[error("unknown parameter {key:?}; one of {}", key_names(known))]
    UnknownParam {
        /// The key given.
        key: String,
        /// The detector's keys.
        known: &'static [ParamKey],
    },
    /// A parameter set by key with a value of another type.
    #[error("{key} must be {}, got {}", expected.name(), got.name())]
    ParamType {
        /// The key.
        key: &'static str,
        /// The type of its values.
        expected: ParamType,
        /// The type of the value given.
        got: ParamType,
    },
    /// A given feature range is empty or not finite.
    #[error(
        "feature_ranges[{index}] must be finite with min < max and a finite max - min, \
         got ({min}, {max})"
    )]
    FeatureRange {
        /// Feature index.
        index: usize,
        /// Lower end given.
        min: f64,
        /// Upper end given.
        max: f64,
    },
}

/// The keys, comma-separated.
fn key_names(keys: &[ParamKey]) -> String {
    keys.iter()
        .map(ParamKey::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `Err(OutOfRange)` unless `ok`; keeps the checks one line each.
pub(crate) fn ensure(
    ok: bool,
    name: &'static str,
    range: &'static str,
    got: f64,
) -> std::result::Result<(), StreamParamsError> {
    if ok {
        Ok(())
    } else {
        Err(StreamParamsError::OutOfRange { name, range, got })
    }
}

/// `Err(FeatureRange)` for the first given range that is not finite with `min < max`.
pub(crate) fn check_feature_ranges(
    ranges: Option<&[(f64, f64)]>,
) -> std::result::Result<(), StreamParamsError> {
    for (index, &(min, max)) in ranges.unwrap_or_default().iter().enumerate() {
        // The width must be finite too: the detectors divide by it.
        if !(min.is_finite() && max.is_finite() && min < max && (max - min).is_finite()) {
            return Err(StreamParamsError::FeatureRange { index, min, max });
        }
    }
    Ok(())
}

/// Checks one row before a detector touches its state, so a bad row leaves it unchanged.
/// The row index in [`detector::DetectError::NotFinite`] is 0: the row given.
pub(crate) fn check_row(
    row: &[f64],
    n_features: usize,
) -> std::result::Result<(), detector::DetectError> {
    if row.len() != n_features {
        return Err(detector::DetectError::FeatureCount {
            expected: n_features,
            got: row.len(),
        });
    }
    match row.iter().position(|v| !v.is_finite()) {
        Some(col) => Err(detector::DetectError::NotFinite { row: 0, col }),
        None => Ok(()),
    }
}

/// Runs `detector` over the rows of `x` in order (score, then learn) and returns one score per
/// row. The batch form behind each detector's `score_series`.
///
/// Errors, before touching the detector, when `x` has another number of columns than the
/// detector has features or holds a non-finite value.
pub fn score_series<D: StreamingDetector + ?Sized>(
    detector: &mut D,
    x: &ArrayView2<'_, f64>,
) -> Result<Array1<f64>> {
    if x.ncols() != detector.n_features() {
        return Err(DetectError::Columns {
            expected: detector.n_features(),
            got: x.ncols(),
        });
    }
    check_finite(x)?;
    let mut out = Array1::zeros(x.nrows());
    // One scratch row for non-contiguous views, reused for every row.
    let mut scratch = vec![0.0; x.ncols()];
    for (row, o) in x.rows().into_iter().zip(out.iter_mut()) {
        *o = match row.as_slice() {
            Some(r) => detector.update(r)?,
            None => {
                scratch
                    .iter_mut()
                    .zip(row.iter())
                    .for_each(|(s, v)| *s = *v);
                detector.update(&scratch)?
            }
        };
    }
    Ok(out)
}

/// Maps a raw score into [0, 1) for NAB: `1 - 2^(-score / threshold)`.
///
/// Monotone, so a threshold on the mapped score is a threshold on the raw one; 0 stays 0, the
/// detector's own threshold maps to 0.5 and twice it to 0.75, which keeps resolution where the
/// benchmark's single corpus-wide threshold is chosen. Scores of 50 thresholds and more round to
/// 1.
pub fn squash(score: f64, threshold: f64) -> f64 {
    if score.is_nan() || threshold.is_nan() || score <= 0.0 || threshold <= 0.0 {
        return 0.0;
    }
    (1.0 - (-score / threshold).exp2()).clamp(0.0, 1.0)
}

/// Runs the detector `spec` over a univariate series and returns one score in [0, 1] per value,
/// as NAB's `anomaly_score` column, with the detector's [`StreamSpec::nab_mapping`]; see
/// [`nab_scores_with`].
pub fn nab_scores(spec: &StreamSpec, values: &[f64]) -> Result<Vec<f64>> {
    nab_scores_with(spec, spec.nab_mapping(), values)
}

/// Runs the detector `spec`, set up for the series by [`StreamSpec::for_nab_file`] (NAB's
/// protocol), over a univariate series and maps each raw score into [0, 1] with `mapping`:
/// through [`squash`] (0.5 is then the detector's own alarm level), through an
/// [`AnomalyLikelihood`] of the raw scores, or clamped as they are.
///
/// Errors on invalid parameters or a non-finite value (its index is the `row` of
/// [`DetectError::NotFinite`]).
pub fn nab_scores_with(
    spec: &StreamSpec,
    mapping: ScoreMapping,
    values: &[f64],
) -> Result<Vec<f64>> {
    if let Some(row) = values.iter().position(|v| !v.is_finite()) {
        return Err(DetectError::NotFinite { row, col: 0 });
    }
    let mut det = spec.for_nab_file(values).build(1)?;
    let threshold = det.threshold();
    let mut likelihood = match mapping {
        ScoreMapping::Squash | ScoreMapping::Raw => None,
        ScoreMapping::Likelihood {
            long_window,
            short_window,
            warm_up,
        } => Some(AnomalyLikelihood::new(long_window, short_window, warm_up)?),
    };
    values
        .iter()
        .map(|&v| {
            let raw = det.update(&[v])?;
            Ok(match (likelihood.as_mut(), mapping) {
                (Some(l), _) => l.update(raw),
                (None, ScoreMapping::Raw) if raw.is_nan() => 0.0,
                (None, ScoreMapping::Raw) => raw.clamp(0.0, 1.0),
                (None, _) => squash(raw, threshold),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2, ShapeBuilder};

    #[test]
    fn squash_is_monotone_and_bounded() {
        assert_eq!(squash(0.0, 2.0), 0.0);
        assert_eq!(squash(-1.0, 2.0), 0.0);
        assert_eq!(squash(f64::NAN, 2.0), 0.0);
        assert_eq!(squash(2.0, 2.0), 0.5);
        assert_eq!(squash(4.0, 2.0), 0.75);
        assert_eq!(squash(1e9, 2.0), 1.0);
        let mut last = 0.0;
        for i in 1..200 {
            let s = squash(i as f64 * 0.1, 1.0);
            assert!(s > last && s <= 1.0);
            last = s;
        }
    }

    #[test]
    fn specs_by_name_build_and_score_into_unit_interval() {
        let values: Vec<f64> = (0..600)
            .map(|i| {
                if i == 500 {
                    30.0
                } else {
                    ((i * 7) % 13) as f64
                }
            })
            .collect();
        for name in StreamSpec::NAMES {
            let spec = StreamSpec::by_name(name).expect("known name");
            for mapping in [ScoreMapping::Squash, ScoreMapping::default()] {
                let scores = nab_scores_with(&spec, mapping, &values).expect("scores");
                assert_eq!(scores.len(), values.len());
                assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{name}");
                let before = scores[400..500].iter().fold(0.0f64, |m, &s| m.max(s));
                assert!(
                    scores[500] > 0.5 && scores[500] > before,
                    "{name} {mapping:?}: spike scored {}, before it at most {before}",
                    scores[500]
                );
            }
        }
        assert!(StreamSpec::by_name("nope").is_none());
        assert_eq!(
            nab_scores(
                &StreamSpec::by_name("ewma_chart").expect("known"),
                &[1.0, f64::NAN]
            ),
            Err(DetectError::NotFinite { row: 1, col: 0 })
        );
    }

    #[test]
    fn score_series_checks_input_and_reads_any_layout() {
        let mut det = EwmaChart::params().warm_up(2).build(2).expect("build");
        assert_eq!(
            det.score_series(&array![[1.0]].view()),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            det.score_series(&array![[1.0, 2.0], [f64::INFINITY, 0.0]].view()),
            Err(DetectError::NotFinite { row: 1, col: 0 })
        );
        let data: Vec<f64> = (0..40).map(|i| ((i * 5) % 7) as f64).collect();
        let c = Array2::from_shape_vec((20, 2), data.clone()).expect("shape");
        let f = Array2::from_shape_vec((20, 2).f(), {
            // The same matrix in column-major order.
            let mut v = vec![0.0; 40];
            for i in 0..20 {
                for j in 0..2 {
                    v[j * 20 + i] = data[i * 2 + j];
                }
            }
            v
        })
        .expect("shape");
        assert_eq!(c, f);
        let a = EwmaChart::params()
            .warm_up(2)
            .build(2)
            .expect("build")
            .score_series(&c.view())
            .expect("c");
        let b = EwmaChart::params()
            .warm_up(2)
            .build(2)
            .expect("build")
            .score_series(&f.view())
            .expect("f");
        assert_eq!(a, b);
    }

    #[test]
    fn score_is_what_update_gives_and_learns_nothing() {
        let rows: Vec<[f64; 2]> = (0..1200)
            .map(|i| {
                let x = (i as f64 * 0.3).sin() + ((i * 7) % 11) as f64 / 50.0;
                let y = if i == 1000 { 9.0 } else { 0.5 * x };
                [x, y]
            })
            .collect();
        for name in StreamSpec::NAMES {
            let spec = StreamSpec::by_name(name).expect("known name");
            let mut det = spec.build(2).expect("build");
            let mut twin = spec.build(2).expect("build");
            for row in &rows {
                let peek = det.score(row).expect("score");
                assert_eq!(det.score(row), Ok(peek), "{name}: score changed the state");
                let got = det.update(row).expect("update");
                assert_eq!(peek.to_bits(), got.to_bits(), "{name}");
                // The twin never peeks: scoring must leave no trace in what follows.
                assert_eq!(twin.update(row).expect("update").to_bits(), got.to_bits());
            }
            assert!(det.score(&[1.0]).is_err(), "{name}: wrong width refused");
        }
    }

    #[test]
    fn detectors_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RobustZScore>();
        assert_send_sync::<EwmaChart>();
        assert_send_sync::<HalfSpaceTrees>();
        assert_send_sync::<ContextDetector>();
        assert_send_sync::<StreamSpec>();
        fn assert_send<T: Send + ?Sized>() {}
        assert_send::<dyn StreamingDetector>();
    }
}
