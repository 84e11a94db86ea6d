//! Python bindings of pdm: the native module `pdm_engine._native`.
//!
//! Binding types are newtypes over the engine's models (`PyIsolationForestModel { inner }`);
//! their methods delegate, release the GIL while the engine computes, and read numpy arrays
//! without copying (float64, C or Fortran order; the Python layer converts anything else once).
//! Every engine error becomes an exception of `pdm_engine.exceptions`, rooted in `PdmError`.
//! The scikit-learn conventions (parameters as attributes, `fit` returning `self`, fitted
//! attributes ending in `_`) live in the Python package around this module, which holds no
//! logic of its own beyond input checks.

mod attribution;
mod decide;
/// Runs `$body` on the view of a [`Matrix`] (bound to `$v`, f64 or f32) with the GIL released.
macro_rules! on_matrix {
    ($py:expr, $x:expr, |$v:ident| $body:expr) => {
        match $x {
            crate::Matrix::F64(a) => {
                let $v = a.as_array();
                $py.detach(|| $body)
            }
            crate::Matrix::F32(a) => {
                let $v = a.as_array();
                $py.detach(|| $body)
            }
        }
    };
}

mod error;
mod eval;
mod health;
mod more;
mod pipeline;

use std::path::PathBuf;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray2};
use pdm_detect::persist::{self, Model};
use pdm_detect::{Contamination, IsolationForest, MaxFeatures, MaxSamples, StandardScaler};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::{detect_err, parameter_error};

/// A matrix from numpy, read in place: float64 or float32, C or Fortran order (the engine widens
/// float32 exactly as it reads).
#[derive(FromPyObject)]
pub(crate) enum Matrix<'py> {
    F64(PyReadonlyArray2<'py, f64>),
    F32(PyReadonlyArray2<'py, f32>),
}

/// A fitted Isolation Forest (scikit-learn semantics), as the pdm server runs it.
#[pyclass(name = "IsolationForestModel", module = "pdm_engine._native", frozen)]
pub struct PyIsolationForestModel {
    inner: IsolationForest,
}

fn samples_param(kind: &str, value: f64) -> PyResult<MaxSamples> {
    Ok(match kind {
        "auto" => MaxSamples::Auto,
        "count" => MaxSamples::Count(value as usize),
        "fraction" => MaxSamples::Fraction(value),
        other => return Err(parameter_error(format!("max_samples kind {other:?}"))),
    })
}

fn features_param(kind: &str, value: f64) -> PyResult<MaxFeatures> {
    Ok(match kind {
        "count" => MaxFeatures::Count(value as usize),
        "fraction" => MaxFeatures::Fraction(value),
        other => return Err(parameter_error(format!("max_features kind {other:?}"))),
    })
}

impl PyIsolationForestModel {
    /// `score_samples` of a float64 or float32 matrix, read in place, the GIL released.
    fn scores(&self, py: Python<'_>, x: &Matrix<'_>) -> PyResult<numpy::ndarray::Array1<f64>> {
        on_matrix!(py, x, |view| self.inner.score_samples(&view)).map_err(detect_err)
    }
}

/// Fits an Isolation Forest on `x` (rows = samples). Parameters arrive normalised by the Python
/// layer: `max_samples` as ("auto" | "count" | "fraction", value), `contamination` as `None`
/// (auto) or a fraction, `max_features` as ("count" | "fraction", value).
#[pyfunction]
#[pyo3(signature = (x, n_estimators, max_samples, contamination, max_features, bootstrap, random_state, n_threads, feature_names))]
#[allow(clippy::too_many_arguments)]
fn fit_isolation_forest(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    n_estimators: usize,
    max_samples: (String, f64),
    contamination: Option<f64>,
    max_features: (String, f64),
    bootstrap: bool,
    random_state: Option<u64>,
    n_threads: usize,
    feature_names: Option<Vec<String>>,
) -> PyResult<PyIsolationForestModel> {
    let mut params = IsolationForest::params()
        .n_estimators(n_estimators)
        .max_samples(samples_param(&max_samples.0, max_samples.1)?)
        .contamination(contamination.map_or(Contamination::Auto, Contamination::Fraction))
        .max_features(features_param(&max_features.0, max_features.1)?)
        .bootstrap(bootstrap)
        .n_threads(n_threads.max(1));
    if let Some(seed) = random_state {
        params = params.random_state(seed);
    }
    let view = x.as_array();
    let mut model = py.detach(|| params.fit(&view)).map_err(detect_err)?;
    if let Some(names) = feature_names {
        model = model.with_feature_names(names).map_err(detect_err)?;
    }
    Ok(PyIsolationForestModel { inner: model })
}

#[pymethods]
impl PyIsolationForestModel {
    /// scikit-learn's `score_samples`: in [-1, 0), lower is more abnormal.
    fn score_samples<'py>(
        &self,
        py: Python<'py>,
        x: Matrix<'py>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(self.scores(py, &x)?.into_pyarray(py))
    }

    /// `score_samples - offset`: negative for outliers.
    fn decision_function<'py>(
        &self,
        py: Python<'py>,
        x: Matrix<'py>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let offset = self.inner.offset();
        Ok((self.scores(py, &x)? - offset).into_pyarray(py))
    }

    /// +1 for inliers, -1 for outliers.
    fn predict<'py>(&self, py: Python<'py>, x: Matrix<'py>) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let offset = self.inner.offset();
        let d = self.scores(py, &x)? - offset;
        Ok(d.mapv(|d| if d < 0.0 { -1i64 } else { 1 }).into_pyarray(py))
    }

    #[getter]
    fn offset(&self) -> f64 {
        self.inner.offset()
    }

    /// Number of input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Names of the input features.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        pdm_core::detector::Detector::feature_names(&self.inner).to_vec()
    }

    /// Rows per tree actually used.
    #[getter]
    fn max_samples_used(&self) -> usize {
        self.inner.max_samples()
    }

    /// The parameters the model was fitted with, for rebuilding an estimator:
    /// (n_estimators, max_samples, contamination, max_features, bootstrap, random_state).
    #[allow(clippy::type_complexity)]
    fn params(
        &self,
    ) -> (
        usize,
        (String, f64),
        Option<f64>,
        (String, f64),
        bool,
        Option<u64>,
    ) {
        let p = self.inner.fit_params();
        let max_samples = match p.max_samples() {
            MaxSamples::Auto => ("auto".to_owned(), 0.0),
            MaxSamples::Count(n) => ("count".to_owned(), n as f64),
            MaxSamples::Fraction(f) => ("fraction".to_owned(), f),
        };
        let contamination = match p.contamination() {
            Contamination::Fraction(f) => Some(f),
            _ => None,
        };
        let max_features = match p.max_features() {
            MaxFeatures::Count(n) => ("count".to_owned(), n as f64),
            MaxFeatures::Fraction(f) => ("fraction".to_owned(), f),
        };
        (
            p.n_estimators(),
            max_samples,
            contamination,
            max_features,
            p.bootstrap(),
            p.random_state(),
        )
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

/// A fitted standard scaler.
#[pyclass(name = "StandardScalerModel", module = "pdm_engine._native", frozen)]
pub struct PyStandardScalerModel {
    inner: StandardScaler,
}

/// Learns column means and standard deviations; without centring the means are 0, without
/// scaling the scales 1.
#[pyfunction]
#[pyo3(signature = (x, with_mean = true, with_std = true))]
fn fit_standard_scaler(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    with_mean: bool,
    with_std: bool,
) -> PyResult<PyStandardScalerModel> {
    let view = x.as_array();
    let mut inner = py
        .detach(|| StandardScaler::fit(&view))
        .map_err(detect_err)?;
    if !with_mean {
        inner = inner.without_centring();
    }
    if !with_std {
        inner = inner.without_scaling();
    }
    Ok(PyStandardScalerModel { inner })
}

#[pymethods]
impl PyStandardScalerModel {
    /// `(x - mean) / scale`.
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: Matrix<'py>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let t = on_matrix!(py, &x, |view| self.inner.transform(&view)).map_err(detect_err)?;
        Ok(t.into_pyarray(py))
    }

    /// Column means.
    #[getter]
    fn mean<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.mean().clone().into_pyarray(py)
    }

    /// Column scales.
    #[getter]
    fn scale<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.scale().clone().into_pyarray(py)
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

fn wrap(py: Python<'_>, model: Model) -> PyResult<Py<PyAny>> {
    match model {
        Model::IsolationForest(m) => {
            Ok(Py::new(py, PyIsolationForestModel { inner: *m })?.into_any())
        }
        Model::StandardScaler(m) => Ok(Py::new(py, PyStandardScalerModel { inner: m })?.into_any()),
        Model::RobustScaler(m) => {
            Ok(Py::new(py, more::PyRobustScalerModel { inner: m })?.into_any())
        }
        Model::PcaDetector(m) => Ok(Py::new(py, more::PyPcaModel { inner: *m })?.into_any()),
        Model::Pipeline(m) => Ok(Py::new(py, pipeline::PyPipelineModel { inner: *m })?.into_any()),
        Model::Streaming(m) => Ok(Py::new(py, more::PyStreamingModel::from(m))?.into_any()),
        Model::HealthIndex(m) => Ok(Py::new(py, health::PyHealthIndexModel::from(m))?.into_any()),
        other => Err(error::model_file_error(format!(
            "this version of the Python module cannot wrap a {} model",
            other.kind()
        ))),
    }
}

/// Reads a model file of any kind.
#[pyfunction]
fn load_model(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let model = py.detach(|| persist::load(path)).map_err(detect_err)?;
    wrap(py, model)
}

/// Reads a model of any kind from the bytes of a model file.
#[pyfunction]
fn model_from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Py<PyAny>> {
    let model = persist::from_bytes(data).map_err(detect_err)?;
    wrap(py, model)
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyIsolationForestModel>()?;
    m.add_class::<PyStandardScalerModel>()?;
    m.add_function(wrap_pyfunction!(fit_isolation_forest, m)?)?;
    m.add_function(wrap_pyfunction!(fit_standard_scaler, m)?)?;
    m.add_function(wrap_pyfunction!(load_model, m)?)?;
    m.add_function(wrap_pyfunction!(model_from_bytes, m)?)?;
    m.add_class::<pipeline::PyPipelineModel>()?;
    m.add_function(wrap_pyfunction!(pipeline::fit_pipeline, m)?)?;
    m.add_class::<more::PyRobustScalerModel>()?;
    m.add_class::<more::PyPcaModel>()?;
    m.add_class::<more::PyStreamingModel>()?;
    m.add_function(wrap_pyfunction!(more::fit_robust_scaler, m)?)?;
    m.add_function(wrap_pyfunction!(more::fit_pca, m)?)?;
    m.add_function(wrap_pyfunction!(more::window_features, m)?)?;
    m.add_function(wrap_pyfunction!(more::streaming_detector, m)?)?;
    m.add_function(wrap_pyfunction!(more::streaming_kinds, m)?)?;
    m.add_function(wrap_pyfunction!(decide::calibrate_threshold, m)?)?;
    m.add_function(wrap_pyfunction!(decide::k_of_n, m)?)?;
    m.add_function(wrap_pyfunction!(decide::events, m)?)?;
    m.add_function(wrap_pyfunction!(decide::decide, m)?)?;
    m.add_class::<attribution::PyMedianReplacementModel>()?;
    m.add_function(wrap_pyfunction!(attribution::pca_attribution, m)?)?;
    m.add_function(wrap_pyfunction!(attribution::fit_median_replacement, m)?)?;
    m.add_class::<health::PyHealthIndexModel>()?;
    m.add_function(wrap_pyfunction!(health::health_index, m)?)?;
    m.add_function(wrap_pyfunction!(health::remaining_useful_life, m)?)?;
    m.add_function(wrap_pyfunction!(eval::skab_metrics, m)?)?;
    m.add_function(wrap_pyfunction!(eval::nab_score, m)?)?;
    m.add("MODEL_FORMAT_VERSION", persist::FORMAT_VERSION)?;
    Ok(())
}
