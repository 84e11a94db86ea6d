//! Which features, and so which sensors, made a row anomalous.
//!
//! Two methods, both returning an [`Attribution`]: features sorted by contribution, and the same
//! contributions summed per sensor through [`channel_of`] (a feature name without `__` is its own
//! sensor).
//!
//! - [`MedianReplacement`] works with any [`Detector`]: the contribution of feature `j` is the
//!   drop of the score when `x_j` alone is replaced by its training median. It is chosen over a
//!   per-feature z-score because it asks the model itself: a feature far from its median that the
//!   model ignores gets no blame, and a feature that is ordinary on its own but breaks a
//!   correlation the model learned does. It costs one extra scoring per feature, done in one
//!   batch. Being one feature at a time, it can credit every feature of a broken pair (restoring
//!   either one restores the pair), and a replacement that itself makes an odd combination gives
//!   a negative contribution.
//! - [`pca_attribution`] uses the PCA detector's own decomposition of T² and Q, which sums
//!   exactly to the statistic.
//!
//! ```
//! use pdm_detect::attribution::Attribution;
//!
//! let names = ["pump__rms".to_string(), "pump__max".into(), "motor__rms".into()];
//! let a = Attribution::from_contributions(&names, &[2.0, 1.5, 3.0])?;
//! assert_eq!(a.features[0], ("motor__rms".to_string(), 3.0));
//! assert_eq!(a.sensors, [("pump".to_string(), 3.5), ("motor".to_string(), 3.0)]);
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::features::channel_of;
use crate::pca::PcaDetector;
use crate::{check_finite, quantile_sorted, DetectError, Result};
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{Detector, Rows};

/// Contributions to one row's score, largest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// `(feature name, contribution)`, sorted by decreasing contribution.
    pub features: Vec<(String, f64)>,
    /// `(sensor, summed contribution of its features)`, sorted by decreasing contribution.
    pub sensors: Vec<(String, f64)>,
}

impl Attribution {
    /// Sorts per-feature contributions and sums them per sensor. Errors when the lengths differ
    /// or a contribution is not finite.
    pub fn from_contributions<S: AsRef<str>>(names: &[S], contributions: &[f64]) -> Result<Self> {
        if names.len() != contributions.len() {
            return Err(DetectError::Length {
                expected: names.len(),
                got: contributions.len(),
            });
        }
        if let Some(index) = contributions.iter().position(|c| !c.is_finite()) {
            return Err(DetectError::NotFiniteScore { index });
        }
        let mut features: Vec<(String, f64)> = names
            .iter()
            .map(|n| n.as_ref().to_string())
            .zip(contributions.iter().copied())
            .collect();
        let mut sensors: Vec<(String, f64)> = Vec::new();
        for (name, c) in &features {
            let sensor = channel_of(name).unwrap_or(name);
            // Linear search: tens of sensors, and it keeps first-seen order for the stable sort.
            match sensors.iter_mut().find(|(s, _)| s == sensor) {
                Some((_, total)) => *total += c,
                None => sensors.push((sensor.to_string(), *c)),
            }
        }
        // Stable sorts: ties keep column order, so the result does not depend on sort internals.
        features.sort_by(|a, b| b.1.total_cmp(&a.1));
        sensors.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(Self { features, sensors })
    }
}

/// Model-agnostic attribution by replacing one feature at a time with its training median; see
/// the [module docs](self) for why.
#[derive(Debug, Clone, PartialEq)]
pub struct MedianReplacement {
    median: Array1<f64>,
}

impl MedianReplacement {
    /// Learns the median of each feature over the training rows (the rows the detector was
    /// fitted on). Errors on no row or a non-finite value.
    pub fn fit(training: &ArrayView2<'_, f64>) -> Result<Self> {
        if training.nrows() == 0 || training.ncols() == 0 {
            return Err(DetectError::Empty);
        }
        check_finite(training)?;
        let mut buf = Vec::with_capacity(training.nrows());
        let median = training
            .columns()
            .into_iter()
            .map(|col| {
                buf.clear();
                buf.extend(col.iter().copied());
                buf.sort_unstable_by(f64::total_cmp);
                quantile_sorted(&buf, 0.5)
            })
            .collect();
        Ok(Self { median })
    }

    /// Learned medians, one per feature.
    pub fn median(&self) -> &Array1<f64> {
        &self.median
    }

    /// Contribution of each feature of `row` to `detector`'s score: `score(row)` minus the
    /// score of `row` with that feature replaced by its median. Names come from
    /// [`Detector::feature_names`].
    ///
    /// Errors when `row` or the detector has another number of features than the training set,
    /// `row` holds a non-finite value, or the detector fails.
    pub fn explain(&self, detector: &dyn Detector, row: &[f64]) -> Result<Attribution> {
        let d = self.median.len();
        if row.len() != d {
            return Err(DetectError::Columns {
                expected: d,
                got: row.len(),
            });
        }
        let names = detector.feature_names();
        if names.len() != d {
            return Err(DetectError::Columns {
                expected: d,
                got: names.len(),
            });
        }
        if let Some(col) = row.iter().position(|v| !v.is_finite()) {
            return Err(DetectError::NotFinite { row: 0, col });
        }
        // Row 0 is the row itself, row j + 1 has feature j replaced: one scoring call.
        let mut data = Vec::with_capacity((d + 1) * d);
        data.extend_from_slice(row);
        for j in 0..d {
            data.extend_from_slice(row);
            data[(j + 1) * d + j] = self.median[j];
        }
        let rows = Rows::new(&data, d).map_err(|_| DetectError::Empty)?;
        let scores = detector.score(rows)?;
        if scores.len() != d + 1 {
            return Err(DetectError::Length {
                expected: d + 1,
                got: scores.len(),
            });
        }
        let contributions: Vec<f64> = scores[1..].iter().map(|s| scores[0] - s).collect();
        Attribution::from_contributions(names, &contributions)
    }
}

/// Which PCA statistic [`pca_attribution`] decomposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PcaStatistic {
    /// Hotelling's T².
    T2,
    /// Q, the squared prediction error.
    Q,
    /// Whichever of `T² / T²_lim` and `Q / Q_lim` is larger: the one that sets the score.
    #[default]
    Dominant,
}

impl PcaStatistic {
    /// Every statistic, in the order of [`NAMES`](Self::NAMES).
    pub const ALL: [PcaStatistic; 3] = [PcaStatistic::T2, PcaStatistic::Q, PcaStatistic::Dominant];
    /// Their names, as model files and the Python module write them.
    pub const NAMES: [&'static str; 3] = ["t2", "q", "dominant"];

    /// The statistic's name: `t2`, `q` or `dominant`.
    pub fn name(self) -> &'static str {
        match self {
            PcaStatistic::T2 => "t2",
            PcaStatistic::Q => "q",
            PcaStatistic::Dominant => "dominant",
        }
    }

    /// The statistic called `name` (one of [`NAMES`](Self::NAMES)), or `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The PCA detector's own contributions for one row, divided by the statistic's limit so that
/// they sum to that statistic's ratio (with [`PcaStatistic::Dominant`], to the detector score).
pub fn pca_attribution(
    model: &PcaDetector,
    row: &[f64],
    statistic: PcaStatistic,
) -> Result<Attribution> {
    let c = model.contributions(row)?;
    let use_t2 = match statistic {
        PcaStatistic::T2 => true,
        PcaStatistic::Q => false,
        PcaStatistic::Dominant => c.t2.sum() / model.t2_limit() >= c.q.sum() / model.q_limit(),
    };
    let scaled = if use_t2 {
        c.t2 / model.t2_limit()
    } else {
        c.q / model.q_limit()
    };
    Attribution::from_contributions(model.feature_names(), &scaled.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pca::tests::one_factor;
    use crate::NComponents;
    use ndarray::array;
    use pdm_core::detector;

    /// Score `10 |x0| + |x1|`: feature 0 weighs ten times feature 1.
    struct Weighted(Vec<String>);

    impl Detector for Weighted {
        fn feature_names(&self) -> &[String] {
            &self.0
        }
        fn score(&self, rows: Rows<'_>) -> std::result::Result<Vec<f64>, detector::DetectError> {
            Ok((0..rows.n_rows())
                .filter_map(|i| rows.row(i))
                .map(|r| 10.0 * r[0].abs() + r[1].abs())
                .collect())
        }
        fn threshold(&self) -> f64 {
            1.0
        }
    }

    #[test]
    fn sorts_and_sums_per_sensor() {
        let names = ["a__mean", "a__std", "b__rms", "plain"];
        let a = Attribution::from_contributions(&names, &[1.0, 2.0, 5.0, -1.0]).expect("a");
        let f: Vec<(&str, f64)> = a.features.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(
            f,
            [
                ("b__rms", 5.0),
                ("a__std", 2.0),
                ("a__mean", 1.0),
                ("plain", -1.0)
            ]
        );
        let s: Vec<(&str, f64)> = a.sensors.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(s, [("b", 5.0), ("a", 3.0), ("plain", -1.0)]);
        assert_eq!(
            Attribution::from_contributions(&names, &[1.0]),
            Err(DetectError::Length {
                expected: 4,
                got: 1
            })
        );
        assert_eq!(
            Attribution::from_contributions(&["a"], &[f64::NAN]),
            Err(DetectError::NotFiniteScore { index: 0 })
        );
    }

    #[test]
    fn median_replacement_by_hand() {
        // Medians: column 0 of -1, 0, 2 is 0; column 1 of 5, 1, 3 is 3.
        let training = array![[-1.0, 5.0], [0.0, 1.0], [2.0, 3.0]];
        let m = MedianReplacement::fit(&training.view()).expect("fit");
        assert_eq!(m.median(), &array![0.0, 3.0]);
        let det = Weighted(vec!["s1__rms".into(), "s2__rms".into()]);
        // Row (1, -2) scores 12; with x0 = 0 it scores 2 (drop 10), with x1 = 3 it scores 13
        // (drop -1: the median is further from this model's zero than the value was).
        let a = m.explain(&det, &[1.0, -2.0]).expect("explain");
        assert_eq!(
            a.features,
            [("s1__rms".to_string(), 10.0), ("s2__rms".to_string(), -1.0)]
        );
        assert_eq!(
            a.sensors,
            [("s1".to_string(), 10.0), ("s2".to_string(), -1.0)]
        );
        assert_eq!(
            m.explain(&det, &[1.0]),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            m.explain(&det, &[1.0, f64::NAN]),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
        let short = Weighted(vec!["only".into()]);
        assert!(m.explain(&short, &[1.0, 2.0]).is_err());
        assert_eq!(
            MedianReplacement::fit(&ndarray::Array2::zeros((0, 2)).view()),
            Err(DetectError::Empty)
        );
    }

    #[test]
    fn both_methods_blame_the_broken_sensor() {
        let x = one_factor(2000, 3, 0.2, 11);
        let names = vec![
            "inlet__mean".to_string(),
            "outlet__mean".into(),
            "bearing__mean".into(),
        ];
        let model = PcaDetector::params()
            .n_components(NComponents::Count(1))
            .fit(&x.view())
            .expect("fit")
            .with_feature_names(names)
            .expect("names");
        let row = [0.0, 0.0, 3.0];
        let score = model
            .score(Rows::new(&row, 3).expect("rows"))
            .expect("score")[0];
        assert!(score > 1.0);

        let generic = MedianReplacement::fit(&x.view())
            .expect("fit")
            .explain(&model, &row)
            .expect("explain");
        assert_eq!(generic.sensors[0].0, "bearing");

        let own = pca_attribution(&model, &row, PcaStatistic::Dominant).expect("pca");
        assert_eq!(own.sensors[0].0, "bearing");
        let total: f64 = own.features.iter().map(|(_, c)| c).sum();
        assert!((total - score).abs() < 1e-9 * score, "{total} vs {score}");
        let q = pca_attribution(&model, &row, PcaStatistic::Q).expect("q");
        assert_eq!(q, own);
        let t2 = pca_attribution(&model, &row, PcaStatistic::T2).expect("t2");
        assert_eq!(t2.features.len(), 3);
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Attribution>();
        assert_send_sync::<MedianReplacement>();
    }
}
