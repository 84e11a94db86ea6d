//! Column scalers: learn per-column statistics on training rows, then transform any rows.
//!
//! Both scalers refuse non-finite values and leave constant columns unscaled (scale 1) rather
//! than dividing by zero.

use crate::persist::StateError;
use crate::{check_finite, quantile_sorted, DetectError, Result, Value};
use ndarray::{Array1, Array2, ArrayView2, Axis};

/// Centres each column on its mean and scales it to unit (population) standard deviation.
/// Constant columns are centred only, so they map to zero instead of dividing by zero.
#[derive(Debug, Clone, PartialEq)]
pub struct StandardScaler {
    mean: Array1<f64>,
    scale: Array1<f64>,
    n_training_rows: Option<usize>,
}

impl StandardScaler {
    /// Learns the mean and standard deviation of each column.
    pub fn fit(x: &ArrayView2<'_, f64>) -> Result<Self> {
        if x.nrows() == 0 {
            return Err(DetectError::Empty);
        }
        check_finite(x)?;
        let mean = x.mean_axis(Axis(0)).ok_or(DetectError::Empty)?;
        let scale = x
            .std_axis(Axis(0), 0.0)
            .mapv(|s| if s > 0.0 { s } else { 1.0 });
        Ok(Self {
            mean,
            scale,
            n_training_rows: Some(x.nrows()),
        })
    }

    /// Scales `x` (`f64`, or `f32` widened exactly, any layout) with the learned statistics.
    pub fn transform<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array2<f64>> {
        transform(&self.mean, &self.scale, x)
    }

    /// The same scaler without centring: its means become 0, so it only divides (scikit-learn's
    /// `with_mean=False`, e.g. to keep zeros of sparse data at zero).
    pub fn without_centring(mut self) -> Self {
        self.mean.fill(0.0);
        self
    }

    /// The same scaler without scaling: its scales become 1, so it only centres (scikit-learn's
    /// `with_std=False`).
    pub fn without_scaling(mut self) -> Self {
        self.scale.fill(1.0);
        self
    }

    /// Rows the scaler was fitted on, when known.
    pub fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    /// Learned column means.
    pub fn mean(&self) -> &Array1<f64> {
        &self.mean
    }

    /// Learned column scales (standard deviations; 1 for constant columns).
    pub fn scale(&self) -> &Array1<f64> {
        &self.scale
    }
}

/// Centres each column on its median and divides by its interquartile range (75th minus 25th
/// percentile, numpy's linear interpolation), as scikit-learn's `RobustScaler` with its defaults.
///
/// A few extreme training rows move the median and the quartiles far less than the mean and the
/// standard deviation, so a training set that already holds some faults still gives a usable
/// scale. Columns whose interquartile range is zero (constant, or mostly constant) keep scale 1:
/// they are centred only.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustScaler {
    center: Array1<f64>,
    scale: Array1<f64>,
    n_training_rows: Option<usize>,
}

impl RobustScaler {
    /// Learns the median and interquartile range of each column.
    pub fn fit(x: &ArrayView2<'_, f64>) -> Result<Self> {
        if x.nrows() == 0 || x.ncols() == 0 {
            return Err(DetectError::Empty);
        }
        check_finite(x)?;
        let mut center = Array1::zeros(x.ncols());
        let mut scale = Array1::ones(x.ncols());
        // One buffer reused for every column's sort.
        let mut buf = Vec::with_capacity(x.nrows());
        for (j, col) in x.columns().into_iter().enumerate() {
            buf.clear();
            buf.extend(col.iter().copied());
            buf.sort_unstable_by(f64::total_cmp);
            center[j] = quantile_sorted(&buf, 0.5);
            let iqr = quantile_sorted(&buf, 0.75) - quantile_sorted(&buf, 0.25);
            if iqr > 0.0 {
                scale[j] = iqr;
            }
        }
        Ok(Self {
            center,
            scale,
            n_training_rows: Some(x.nrows()),
        })
    }

    /// Rows the scaler was fitted on, when known.
    pub fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    /// Scales `x` (`f64`, or `f32` widened exactly, any layout) with the learned statistics:
    /// `(x - median) / iqr` per column.
    pub fn transform<T: Value>(&self, x: &ArrayView2<'_, T>) -> Result<Array2<f64>> {
        transform(&self.center, &self.scale, x)
    }

    /// Learned column medians.
    pub fn center(&self) -> &Array1<f64> {
        &self.center
    }

    /// Learned column scales (interquartile ranges; 1 where that is zero).
    pub fn scale(&self) -> &Array1<f64> {
        &self.scale
    }
}

fn transform<T: Value>(
    center: &Array1<f64>,
    scale: &Array1<f64>,
    x: &ArrayView2<'_, T>,
) -> Result<Array2<f64>> {
    if x.ncols() != center.len() {
        return Err(DetectError::Columns {
            expected: center.len(),
            got: x.ncols(),
        });
    }
    check_finite(x)?;
    // One pass that reads `x` in place and writes the result: `(x - center) / scale`.
    let mut out = x.mapv(Into::into);
    out -= center;
    out /= scale;
    Ok(out)
}

/// A model file's feature names must name every column of its scaler.
fn same_width(
    names: &[String],
    field: &'static str,
    columns: &[f64],
) -> std::result::Result<(), StateError> {
    if names.len() == columns.len() {
        Ok(())
    } else {
        Err(StateError::new(
            field,
            format!(
                "{} feature names for a scaler of {} columns",
                names.len(),
                columns.len()
            ),
        ))
    }
}

/// Checks stored scaler statistics (model files): one finite centre and one finite, positive
/// scale per column.
fn checked_parts(
    center_field: &'static str,
    center: Vec<f64>,
    scale: Vec<f64>,
) -> std::result::Result<(Array1<f64>, Array1<f64>), StateError> {
    if center.is_empty() || center.len() != scale.len() {
        return Err(StateError::new(
            "scale",
            "a scaler needs as many centres as scales, at least one",
        ));
    }
    let finite_centres = center.iter().all(|m| m.is_finite());
    if !finite_centres || scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(StateError::new(
            if finite_centres {
                "scale"
            } else {
                center_field
            },
            "a scaler's centres must be finite and its scales finite and positive",
        ));
    }
    Ok((Array1::from(center), Array1::from(scale)))
}

impl StandardScaler {
    /// A scaler from stored statistics (model files), checked by [`checked_parts`].
    pub(crate) fn from_parts(
        mean: Vec<f64>,
        scale: Vec<f64>,
    ) -> std::result::Result<Self, StateError> {
        let (mean, scale) = checked_parts("mean", mean, scale)?;
        Ok(Self {
            mean,
            scale,
            n_training_rows: None,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StandardScalerState {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

impl crate::persist::Persist for StandardScaler {
    const KIND: &'static str = "standard_scaler";
    type State = StandardScalerState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.mean.len())
    }

    fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    fn restore_training_rows(&mut self, n: Option<usize>) {
        self.n_training_rows = n;
    }

    fn state(&self) -> StandardScalerState {
        StandardScalerState {
            mean: self.mean.to_vec(),
            scale: self.scale.to_vec(),
        }
    }

    fn from_state(
        s: StandardScalerState,
        names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        same_width(&names, "mean", &s.mean)?;
        Self::from_parts(s.mean, s.scale)
    }
}

crate::persist::persistable!(StandardScaler);

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RobustScalerState {
    center: Vec<f64>,
    scale: Vec<f64>,
}

impl crate::persist::Persist for RobustScaler {
    const KIND: &'static str = "robust_scaler";
    type State = RobustScalerState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.center.len())
    }

    fn n_training_rows(&self) -> Option<usize> {
        self.n_training_rows
    }

    fn restore_training_rows(&mut self, n: Option<usize>) {
        self.n_training_rows = n;
    }

    fn state(&self) -> RobustScalerState {
        RobustScalerState {
            center: self.center.to_vec(),
            scale: self.scale.to_vec(),
        }
    }

    fn from_state(
        s: RobustScalerState,
        names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        same_width(&names, "center", &s.center)?;
        let (center, scale) = checked_parts("center", s.center, s.scale)?;
        Ok(Self {
            center,
            scale,
            n_training_rows: None,
        })
    }
}

crate::persist::persistable!(RobustScaler);

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn scales_to_zero_mean_unit_variance() {
        let x = array![[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]];
        let s = StandardScaler::fit(&x.view()).expect("fit");
        let z = s.transform(&x.view()).expect("transform");
        for col in z.columns() {
            assert!(col.mean().expect("mean").abs() < 1e-12);
            assert!((col.std(0.0) - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn rejects_bad_input() {
        let empty = Array2::<f64>::zeros((0, 2));
        assert_eq!(StandardScaler::fit(&empty.view()), Err(DetectError::Empty));
        assert_eq!(RobustScaler::fit(&empty.view()), Err(DetectError::Empty));
        let nan = array![[1.0, f64::NAN]];
        assert_eq!(
            StandardScaler::fit(&nan.view()),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
        assert_eq!(
            RobustScaler::fit(&nan.view()),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
        let s = StandardScaler::fit(&array![[1.0, 2.0]].view()).expect("fit");
        assert_eq!(
            s.transform(&array![[1.0]].view()),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        let r = RobustScaler::fit(&array![[1.0, 2.0]].view()).expect("fit");
        assert_eq!(
            r.transform(&array![[1.0]].view()),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            r.transform(&array![[1.0, f64::INFINITY]].view()),
            Err(DetectError::NotFinite { row: 0, col: 1 })
        );
    }

    #[test]
    fn robust_scaler_uses_median_and_iqr() {
        // Column 0: 1, 2, 3, 4, 100. Median 3; quartiles at positions 1 and 3: 2 and 4; IQR 2.
        // Column 1: 0, 0, 0, 0, 5: median 0, quartiles 0 and 0, IQR 0 -> scale 1.
        // Column 2: all 7, constant -> centre 7, scale 1.
        let x = array![
            [1.0, 0.0, 7.0],
            [2.0, 0.0, 7.0],
            [3.0, 0.0, 7.0],
            [4.0, 0.0, 7.0],
            [100.0, 5.0, 7.0]
        ];
        let r = RobustScaler::fit(&x.view()).expect("fit");
        assert_eq!(r.center(), &array![3.0, 0.0, 7.0]);
        assert_eq!(r.scale(), &array![2.0, 1.0, 1.0]);
        let z = r.transform(&array![[5.0, 5.0, 7.0]].view()).expect("z");
        assert_eq!(z, array![[1.0, 5.0, 0.0]]);
    }

    #[test]
    fn robust_scaler_interpolates_quartiles() {
        // 1, 2, 3, 4: np.percentile at 25 -> 1.75, 50 -> 2.5, 75 -> 3.25; IQR 1.5.
        let x = array![[4.0], [1.0], [3.0], [2.0]];
        let r = RobustScaler::fit(&x.view()).expect("fit");
        assert_eq!(r.center(), &array![2.5]);
        assert_eq!(r.scale(), &array![1.5]);
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StandardScaler>();
        assert_send_sync::<RobustScaler>();
    }
}
