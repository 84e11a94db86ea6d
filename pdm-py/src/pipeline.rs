//! Binding of the default multivariate pipeline (`pdm_detect::pipeline`): trailing means,
//! standard scaler, PCA statistic, limit from the training rows, k of n.

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pdm_detect::{NComponents, PcaStatistic, Pipeline};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{detect_err, parameter_error};

/// A fitted default pipeline.
#[pyclass(name = "PipelineModel", module = "pdm_engine._native", frozen)]
pub struct PyPipelineModel {
    pub(crate) inner: Pipeline,
}

/// The PCA statistic called `name`, or a `ParameterError` listing the names.
pub(crate) fn pca_statistic(name: &str) -> PyResult<PcaStatistic> {
    PcaStatistic::from_name(name).ok_or_else(|| {
        parameter_error(format!(
            "statistic must be one of {}, got {name:?}",
            PcaStatistic::NAMES.map(|n| format!("'{n}'")).join(", ")
        ))
    })
}

/// Fits the pipeline on training rows (rows = samples, columns = `channels`).
#[pyfunction]
#[pyo3(signature = (x, channels, window, n_components, statistic_name, margin, k, n))]
#[allow(clippy::too_many_arguments)]
pub fn fit_pipeline(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    channels: Vec<String>,
    window: usize,
    n_components: (String, f64),
    statistic_name: &str,
    margin: f64,
    k: usize,
    n: usize,
) -> PyResult<PyPipelineModel> {
    let components = match n_components.0.as_str() {
        "count" => NComponents::Count(n_components.1 as usize),
        "variance" => NComponents::Variance(n_components.1),
        other => return Err(parameter_error(format!("n_components kind {other:?}"))),
    };
    let params = Pipeline::params()
        .window(window)
        .n_components(components)
        .statistic(pca_statistic(statistic_name)?)
        .margin(margin)
        .k_of_n(k, n);
    let view = x.as_array();
    let inner = py
        .detach(|| params.fit(&view, &channels))
        .map_err(detect_err)?;
    Ok(PyPipelineModel { inner })
}

/// (start, end, peak_index, peak_score) of each event, in rows.
type EventRow = (usize, usize, usize, f64);

#[pymethods]
impl PyPipelineModel {
    /// One score per full window (1.0 is the limit); score `i` belongs to row `i + window - 1`.
    fn scores<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let view = x.as_array();
        let s = py.detach(|| self.inner.scores(&view)).map_err(detect_err)?;
        Ok(s.into_pyarray(py))
    }

    /// (flags per full window, events in rows).
    fn decide(
        &self,
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f64>,
    ) -> PyResult<(Vec<bool>, Vec<EventRow>)> {
        let view = x.as_array();
        let d = py.detach(|| self.inner.decide(&view)).map_err(detect_err)?;
        let events = d
            .events
            .iter()
            .map(|e| {
                (
                    self.inner.row_of(e.start),
                    self.inner.row_of(e.end),
                    self.inner.row_of(e.peak_index),
                    e.peak_score,
                )
            })
            .collect();
        Ok((d.flags, events))
    }

    /// The parameters as fitted: (window, ("count" | "variance", value), statistic, margin, k, n).
    #[allow(clippy::type_complexity)]
    fn params(&self) -> (usize, (&'static str, f64), &'static str, f64, usize, usize) {
        let p = self.inner.fit_params();
        let components = match p.n_components() {
            NComponents::Count(k) => ("count", k as f64),
            NComponents::Variance(f) => ("variance", f),
        };
        let statistic = p.statistic().name();
        let (k, n) = p.k_of_n();
        (p.window(), components, statistic, p.margin(), k, n)
    }

    /// Channel names, in column order.
    #[getter]
    fn channels(&self) -> Vec<String> {
        self.inner.channels().to_vec()
    }

    /// The limits of T² and Q the scores divide by.
    #[getter]
    fn limits(&self) -> (f64, f64) {
        self.inner.limits()
    }

    /// The model as the bytes of a pdm model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Writes the model file to `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(path).map_err(detect_err)
    }
}
