//! Bindings of the rest of the detection engine: robust scaler, PCA detector, window features
//! and streaming detectors. Same rules as the module root: newtypes, delegation, GIL released
//! while the engine computes, engine errors mapped once.

use std::sync::{Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pdm_core::detector::StreamingDetector;
use pdm_detect::stream::{ParamKey, ParamType, ParamValue, StreamKind, StreamModel, StreamSpec};
use pdm_detect::{Feature, NComponents, PcaDetector, PcaLimits, RobustScaler, WindowFeatures};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::path::PathBuf;

use crate::error::{detect_err, model_file_error, parameter_error};
use crate::Matrix;

/// A fitted robust scaler (median / IQR).
#[pyclass(name = "RobustScalerModel", module = "pdm_engine._native", frozen)]
pub struct PyRobustScalerModel {
    pub(crate) inner: RobustScaler,
}

/// Learns column medians and interquartile ranges.
#[pyfunction]
pub fn fit_robust_scaler(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
) -> PyResult<PyRobustScalerModel> {
    let view = x.as_array();
    let inner = py.detach(|| RobustScaler::fit(&view)).map_err(detect_err)?;
    Ok(PyRobustScalerModel { inner })
}

#[pymethods]
impl PyRobustScalerModel {
    /// `(x - center) / scale`.
    fn transform<'py>(
        &self,
        py: Python<'py>,
        x: Matrix<'py>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let t = on_matrix!(py, &x, |view| self.inner.transform(&view)).map_err(detect_err)?;
        Ok(t.into_pyarray(py))
    }

    /// Column medians.
    #[getter]
    fn center<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.center().clone().into_pyarray(py)
    }

    /// Column interquartile ranges (1 where the range is 0).
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

/// Two arrays of one value per row or per feature: (T², Q).
type Pair<'py> = (Bound<'py, PyArray1<f64>>, Bound<'py, PyArray1<f64>>);

/// A fitted PCA detector (Hotelling's T² and Q).
#[pyclass(name = "PcaModel", module = "pdm_engine._native", frozen)]
pub struct PyPcaModel {
    pub(crate) inner: PcaDetector,
}

/// Fits a PCA detector. `n_components` is ("count", n) or ("variance", fraction); `limits` is
/// "empirical" or "parametric".
#[pyfunction]
#[pyo3(signature = (x, n_components, alpha, limits, feature_names))]
pub fn fit_pca(
    py: Python<'_>,
    x: PyReadonlyArray2<'_, f64>,
    n_components: (String, f64),
    alpha: f64,
    limits: &str,
    feature_names: Option<Vec<String>>,
) -> PyResult<PyPcaModel> {
    let n = match n_components.0.as_str() {
        "count" => NComponents::Count(n_components.1 as usize),
        "variance" => NComponents::Variance(n_components.1),
        other => return Err(parameter_error(format!("n_components kind {other:?}"))),
    };
    let limits = match limits {
        "empirical" => PcaLimits::Empirical,
        "parametric" => PcaLimits::Parametric,
        other => {
            return Err(parameter_error(format!(
                "limits must be 'empirical' or 'parametric', got {other:?}"
            )))
        }
    };
    let params = PcaDetector::params()
        .n_components(n)
        .alpha(alpha)
        .limits(limits);
    let view = x.as_array();
    let mut model = py.detach(|| params.fit(&view)).map_err(detect_err)?;
    if let Some(names) = feature_names {
        model = model.with_feature_names(names).map_err(detect_err)?;
    }
    Ok(PyPcaModel { inner: model })
}

#[pymethods]
impl PyPcaModel {
    /// (T², Q) per row.
    fn statistics<'py>(&self, py: Python<'py>, x: Matrix<'py>) -> PyResult<Pair<'py>> {
        let s = on_matrix!(py, &x, |view| self.inner.statistics(&view)).map_err(detect_err)?;
        Ok((s.t2.into_pyarray(py), s.q.into_pyarray(py)))
    }

    /// `max(T²/T²_limit, Q/Q_limit)` per row: above 1 is anomalous.
    fn scores<'py>(&self, py: Python<'py>, x: Matrix<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let s = on_matrix!(py, &x, |view| self.inner.scores(&view)).map_err(detect_err)?;
        Ok(s.into_pyarray(py))
    }

    /// Per-feature contributions to T² and Q of one row.
    fn contributions<'py>(
        &self,
        py: Python<'py>,
        row: PyReadonlyArray1<'py, f64>,
    ) -> PyResult<Pair<'py>> {
        let row = row.as_array().to_vec();
        let c = self.inner.contributions(&row).map_err(detect_err)?;
        Ok((c.t2.into_pyarray(py), c.q.into_pyarray(py)))
    }

    /// Control limit of T².
    #[getter]
    fn t2_limit(&self) -> f64 {
        self.inner.t2_limit()
    }

    /// Control limit of Q.
    #[getter]
    fn q_limit(&self) -> f64 {
        self.inner.q_limit()
    }

    /// Components kept.
    #[getter]
    fn n_components(&self) -> usize {
        self.inner.n_components()
    }

    /// The parameters as fitted: (("count" | "variance", value), alpha, limits).
    fn params(&self) -> ((&'static str, f64), f64, &'static str) {
        let p = self.inner.fit_params();
        let n = match p.n_components() {
            NComponents::Count(k) => ("count", k as f64),
            NComponents::Variance(f) => ("variance", f),
        };
        let limits = match p.limits() {
            PcaLimits::Empirical => "empirical",
            PcaLimits::Parametric => "parametric",
        };
        (n, p.alpha(), limits)
    }

    /// Feature names, in column order.
    #[getter]
    fn feature_names(&self) -> Vec<String> {
        pdm_core::detector::Detector::feature_names(&self.inner).to_vec()
    }

    /// The model as the bytes of a pdm model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// Writes the model file to `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.inner.save(path).map_err(detect_err)
    }

    /// Input features.
    #[getter]
    fn n_features(&self) -> usize {
        self.inner.n_features()
    }

    /// Share of the variance each kept component explains.
    #[getter]
    fn explained_variance_ratio<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.explained_variance_ratio().into_pyarray(py)
    }
}

/// Window features of a multichannel series: (matrix, feature names, window end rows).
#[pyfunction]
#[pyo3(signature = (x, channels, window, step, features))]
#[allow(clippy::type_complexity)]
pub fn window_features<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    channels: Vec<String>,
    window: usize,
    step: usize,
    features: Option<Vec<String>>,
) -> PyResult<(Bound<'py, PyArray2<f64>>, Vec<String>, Vec<usize>)> {
    let mut params = WindowFeatures::params().window(window).step(step);
    if let Some(names) = features {
        let mut chosen = Vec::with_capacity(names.len());
        for n in &names {
            chosen.push(Feature::from_name(n).ok_or_else(|| {
                let all: Vec<&str> = Feature::ALL.iter().map(|f| f.name()).collect();
                parameter_error(format!("unknown feature {n:?}; one of {}", all.join(", ")))
            })?);
        }
        params = params.features(&chosen);
    }
    let view = x.as_array();
    let m = py
        .detach(|| params.transform(&view, &channels))
        .map_err(detect_err)?;
    let names = m.names().to_vec();
    let ends = m.ends().to_vec();
    Ok((m.into_values().into_pyarray(py), names, ends))
}

/// A streaming detector: scores a row, then learns from it. The mutex makes it shareable across
/// threads (free-threaded Python); each call holds it for one update or one series.
#[pyclass(name = "StreamingModel", module = "pdm_engine._native", frozen)]
pub struct PyStreamingModel {
    inner: Mutex<StreamModel>,
}

impl From<StreamModel> for PyStreamingModel {
    fn from(s: StreamModel) -> Self {
        Self {
            inner: Mutex::new(s),
        }
    }
}

impl PyStreamingModel {
    fn lock(&self) -> MutexGuard<'_, StreamModel> {
        // A panic inside an update cannot happen on checked input; if one did, the detector's
        // state is still a valid detector state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keyword argument of `key`, extracted as the key's type; `None` for an absent or `None`
/// keyword (the engine's default then applies).
fn param_value(params: Option<&Bound<'_, PyDict>>, key: ParamKey) -> PyResult<Option<ParamValue>> {
    let Some(v) = params
        .map(|p| p.get_item(key.name()))
        .transpose()?
        .flatten()
    else {
        return Ok(None);
    };
    if v.is_none() {
        return Ok(None);
    }
    Ok(Some(match key.param_type() {
        ParamType::Count => ParamValue::Count(v.extract()?),
        ParamType::Real => ParamValue::Real(v.extract()?),
        ParamType::Seed => ParamValue::Seed(v.extract()?),
        ParamType::Ranges => ParamValue::Ranges(v.extract()?),
        other => {
            return Err(parameter_error(format!(
                "{}: this version of the Python module cannot pass {}",
                key.name(),
                other.name()
            )))
        }
    }))
}

/// A parameter value as Python sees it: an int, a float, a list of (min, max) tuples, or None.
fn py_value<'py>(py: Python<'py>, value: Option<ParamValue>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        None => py.None().into_bound(py),
        Some(ParamValue::Count(n)) => n.into_pyobject(py)?.into_any(),
        Some(ParamValue::Real(x)) => x.into_pyobject(py)?.into_any(),
        Some(ParamValue::Seed(s)) => s.into_pyobject(py)?.into_any(),
        Some(ParamValue::Ranges(r)) => r.into_pyobject(py)?.into_any(),
        Some(other) => {
            return Err(model_file_error(format!(
                "this version of the Python module cannot read a parameter of {}",
                other.param_type().name()
            )))
        }
    })
}

/// Builds a streaming detector: `kind` is one of the engine's registered kinds
/// (`StreamKind::ALL`: "robust_zscore", "ewma_chart", "half_space_trees", "context"); `params`
/// holds its parameters by name (absent ones keep the engine's defaults, unknown ones are
/// ignored).
#[pyfunction]
#[pyo3(signature = (kind, n_features, **params))]
pub fn streaming_detector(
    kind: &str,
    n_features: usize,
    params: Option<&Bound<'_, PyDict>>,
) -> PyResult<PyStreamingModel> {
    let kind = StreamKind::by_name(kind).ok_or_else(|| {
        parameter_error(format!(
            "unknown streaming detector {kind:?}; one of {}",
            StreamSpec::NAMES.join(", ")
        ))
    })?;
    let mut spec = kind.default_spec();
    for &key in kind.params() {
        if let Some(value) = param_value(params, key)? {
            spec = spec.set(key.name(), value).map_err(detect_err)?;
        }
    }
    Ok(spec.build_model(n_features).map_err(detect_err)?.into())
}

/// The registered streaming kinds: (name, model-file kind, parameter names), in registration
/// order.
#[pyfunction]
pub fn streaming_kinds() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    StreamKind::ALL
        .into_iter()
        .map(|k| {
            let keys = k.params().iter().map(ParamKey::name).collect();
            (k.name(), k.file_kind(), keys)
        })
        .collect()
}

#[pymethods]
impl PyStreamingModel {
    /// Scores `row`, then learns from it.
    fn update(&self, row: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
        let row = row.as_array().to_vec();
        self.lock().update(&row).map_err(|e| detect_err(e.into()))
    }

    /// Scores `row` as `update` would, without learning from it (the engine's
    /// `StreamingDetector::score`; the context detector scores a copy of itself).
    fn score_one(&self, py: Python<'_>, row: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
        let row = row.as_array().to_vec();
        py.detach(|| self.lock().score(&row))
            .map_err(|e| detect_err(e.into()))
    }

    /// `update` over every row of `x`, in order.
    fn score_series<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let view = x.as_array();
        let s = py
            .detach(|| self.lock().score_series(&view))
            .map_err(detect_err)?;
        Ok(s.into_pyarray(py))
    }

    /// Scores above this are anomalous.
    #[getter]
    fn threshold(&self) -> f64 {
        self.lock().threshold()
    }

    /// Values per row.
    #[getter]
    fn n_features(&self) -> usize {
        self.lock().n_features()
    }

    /// The detector's kind: "robust_zscore", "ewma_chart", "half_space_trees" or "context".
    #[getter]
    fn kind(&self) -> &'static str {
        self.lock().kind().name()
    }

    /// The parameters by their Python names (EwmaChart's lambda is `smoothing`).
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (key, value) in self.lock().params() {
            d.set_item(key, py_value(py, value)?)?;
        }
        Ok(d)
    }

    /// The detector with its learnt state as the bytes of a pdm model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.lock().to_bytes())
    }

    /// Writes the model file to `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.lock().save(path).map_err(detect_err)
    }
}
