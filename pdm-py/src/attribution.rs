//! Bindings of `pdm_detect::attribution`: which features, and so which sensors, made a row
//! anomalous. Attributions cross as two lists of `(name, contribution)`, largest first.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1, PyReadonlyArray2};
use pdm_core::detector::Detector;
use pdm_detect::attribution::{self, Attribution, MedianReplacement};
use pyo3::prelude::*;

use crate::error::{detect_err, parameter_error};
use crate::more::PyPcaModel;
use crate::PyIsolationForestModel;

/// `(features, sensors)`, each `(name, contribution)` sorted by decreasing contribution.
pub type AttributionPair = (Vec<(String, f64)>, Vec<(String, f64)>);

fn pair(a: Attribution) -> AttributionPair {
    (a.features, a.sensors)
}

/// The PCA detector's own contributions to one row's T², Q or score (`statistic`: "t2", "q" or
/// "dominant"), each divided by the statistic's limit.
#[pyfunction]
pub fn pca_attribution(
    py: Python<'_>,
    model: PyRef<'_, PyPcaModel>,
    row: PyReadonlyArray1<'_, f64>,
    statistic: &str,
) -> PyResult<AttributionPair> {
    let statistic = crate::pipeline::pca_statistic(statistic)?;
    let row = row.as_slice()?;
    let model = &model.inner;
    py.detach(|| attribution::pca_attribution(model, row, statistic))
        .map(pair)
        .map_err(detect_err)
}

/// Training medians for attribution by median replacement.
#[pyclass(name = "MedianReplacementModel", module = "pdm_engine._native", frozen)]
pub struct PyMedianReplacementModel {
    inner: MedianReplacement,
}

/// Learns the median of each feature over the training rows.
#[pyfunction]
pub fn fit_median_replacement(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
) -> PyResult<PyMedianReplacementModel> {
    let view = x.as_array();
    let inner = py
        .detach(|| MedianReplacement::fit(&view))
        .map_err(detect_err)?;
    Ok(PyMedianReplacementModel { inner })
}

#[pymethods]
impl PyMedianReplacementModel {
    /// Contribution of each feature of `row` to `model`'s score (an `IsolationForestModel` or a
    /// `PcaModel`): the drop of the score when that feature alone takes its median.
    fn explain(
        &self,
        py: Python<'_>,
        model: &Bound<'_, PyAny>,
        row: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<AttributionPair> {
        let row = row.as_slice()?;
        let explain = |detector: &dyn Detector| {
            py.detach(|| self.inner.explain(detector, row))
                .map(pair)
                .map_err(detect_err)
        };
        if let Ok(m) = model.cast::<PyIsolationForestModel>() {
            explain(&m.get().inner)
        } else if let Ok(m) = model.cast::<PyPcaModel>() {
            explain(&m.get().inner)
        } else {
            Err(parameter_error(format!(
                "cannot explain a {}: a fitted IsolationForest or PcaDetector model is needed",
                model.get_type().name()?
            )))
        }
    }

    /// The learned medians, one per feature.
    #[getter]
    fn median<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.median().clone().into_pyarray(py)
    }
}
