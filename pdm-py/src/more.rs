//! Bindings of the rest of the detection engine: robust scaler, PCA detector, window features
//! and streaming detectors. Same rules as the module root: newtypes, delegation, GIL released
//! while the engine computes, engine errors mapped once.

use std::sync::{Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pdm_core::detector::StreamingDetector;
use pdm_detect::stream::{self, ContextDetector, EwmaChart, HalfSpaceTrees, RobustZScore};
use pdm_detect::{Feature, NComponents, PcaDetector, PcaLimits, RobustScaler, WindowFeatures};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

use crate::error::{detect_err, parameter_error};
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

/// One of the engine's streaming detectors, kept by its concrete type so that it can be saved.
pub(crate) enum Stream {
    Robust(RobustZScore),
    Ewma(EwmaChart),
    Hst(Box<HalfSpaceTrees>),
    Context(Box<ContextDetector>),
}

impl Stream {
    fn as_dyn(&mut self) -> &mut dyn StreamingDetector {
        match self {
            Self::Robust(d) => d,
            Self::Ewma(d) => d,
            Self::Hst(d) => d.as_mut(),
            Self::Context(d) => d.as_mut(),
        }
    }
}

/// A streaming detector: scores a row, then learns from it. The mutex makes it shareable across
/// threads (free-threaded Python); each call holds it for one update or one series.
#[pyclass(name = "StreamingModel", module = "pdm_engine._native", frozen)]
pub struct PyStreamingModel {
    inner: Mutex<Stream>,
}

impl From<Stream> for PyStreamingModel {
    fn from(s: Stream) -> Self {
        Self {
            inner: Mutex::new(s),
        }
    }
}

impl PyStreamingModel {
    fn lock(&self) -> MutexGuard<'_, Stream> {
        // A panic inside an update cannot happen on checked input; if one did, the detector's
        // state is still a valid detector state.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a streaming detector: `kind` is "robust_zscore", "ewma_chart" or "half_space_trees";
/// `params` holds its parameters by name (absent ones keep the engine's defaults).
#[pyfunction]
#[pyo3(signature = (kind, n_features, **params))]
pub fn streaming_detector(
    kind: &str,
    n_features: usize,
    params: Option<&Bound<'_, pyo3::types::PyDict>>,
) -> PyResult<PyStreamingModel> {
    let get_f = |k: &str| -> PyResult<Option<f64>> {
        match params.map(|p| p.get_item(k)).transpose()?.flatten() {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let get_u = |k: &str| -> PyResult<Option<usize>> {
        match params.map(|p| p.get_item(k)).transpose()?.flatten() {
            Some(v) if !v.is_none() => Ok(Some(v.extract()?)),
            _ => Ok(None),
        }
    };
    let inner = match kind {
        "robust_zscore" => {
            let mut p = RobustZScore::params();
            if let Some(v) = get_u("window")? {
                p = p.window(v)
            }
            if let Some(v) = get_u("warm_up")? {
                p = p.warm_up(v)
            }
            if let Some(v) = get_f("mad_floor")? {
                p = p.mad_floor(v)
            }
            if let Some(v) = get_f("threshold")? {
                p = p.threshold(v)
            }
            Stream::Robust(p.build(n_features).map_err(detect_err)?)
        }
        "ewma_chart" => {
            let mut p = EwmaChart::params();
            if let Some(v) = get_f("smoothing")? {
                p = p.lambda(v)
            }
            if let Some(v) = get_f("limit")? {
                p = p.limit(v)
            }
            if let Some(v) = get_f("alpha")? {
                p = p.alpha(v)
            }
            if let Some(v) = get_u("warm_up")? {
                p = p.warm_up(v)
            }
            if let Some(v) = get_f("min_std")? {
                p = p.min_std(v)
            }
            if let Some(v) = get_f("shewhart_limit")? {
                p = p.shewhart_limit(v)
            }
            Stream::Ewma(p.build(n_features).map_err(detect_err)?)
        }
        "half_space_trees" => {
            let mut p = HalfSpaceTrees::params();
            if let Some(v) = get_u("n_trees")? {
                p = p.n_trees(v)
            }
            if let Some(v) = get_u("height")? {
                p = p.height(v)
            }
            if let Some(v) = get_u("window_size")? {
                p = p.window_size(v)
            }
            if let Some(v) = get_f("size_limit")? {
                p = p.size_limit(v)
            }
            if let Some(v) = get_f("threshold")? {
                p = p.threshold(v)
            }
            if let Some(v) = params
                .map(|d| d.get_item("random_state"))
                .transpose()?
                .flatten()
            {
                if !v.is_none() {
                    p = p.random_state(v.extract()?);
                }
            }
            Stream::Hst(Box::new(p.build(n_features).map_err(detect_err)?))
        }
        "context" => {
            let mut p = ContextDetector::params();
            if let Some(v) = get_u("value_bits")? {
                p = p.value_bits(v)
            }
            if let Some(v) = get_u("max_left_facts")? {
                p = p.max_left_facts(v)
            }
            if let Some(v) = get_u("max_active")? {
                p = p.max_active(v)
            }
            if let Some(v) = get_f("threshold")? {
                p = p.threshold(v)
            }
            if let Some(v) = get_u("rest_period")? {
                p = p.rest_period(v)
            }
            if let Some(v) = get_u("range_rows")? {
                p = p.range_rows(v)
            }
            if let Some(v) = get_u("max_contexts")? {
                p = p.max_contexts(v)
            }
            if let Some(v) = params
                .map(|d| d.get_item("feature_ranges"))
                .transpose()?
                .flatten()
            {
                if !v.is_none() {
                    p = p.feature_ranges(v.extract()?);
                }
            }
            Stream::Context(Box::new(p.build(n_features).map_err(detect_err)?))
        }
        other => {
            return Err(parameter_error(format!(
                "unknown streaming detector {other:?}; one of {}",
                stream::StreamSpec::NAMES.join(", ")
            )))
        }
    };
    Ok(PyStreamingModel {
        inner: Mutex::new(inner),
    })
}

#[pymethods]
impl PyStreamingModel {
    /// Scores `row`, then learns from it.
    fn update(&self, row: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
        let row = row.as_array().to_vec();
        self.lock()
            .as_dyn()
            .update(&row)
            .map_err(|e| detect_err(e.into()))
    }

    /// Scores `row` as `update` would, without learning from it (the engine's
    /// `StreamingDetector::score`; the context detector scores a copy of itself).
    fn score_one(&self, py: Python<'_>, row: PyReadonlyArray1<'_, f64>) -> PyResult<f64> {
        let row = row.as_array().to_vec();
        py.detach(|| self.lock().as_dyn().score(&row))
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
            .detach(|| stream::score_series(self.lock().as_dyn(), &view))
            .map_err(detect_err)?;
        Ok(s.into_pyarray(py))
    }

    /// Scores above this are anomalous.
    #[getter]
    fn threshold(&self) -> f64 {
        self.lock().as_dyn().threshold()
    }

    /// Values per row.
    #[getter]
    fn n_features(&self) -> usize {
        self.lock().as_dyn().n_features()
    }

    /// The detector's kind: "robust_zscore", "ewma_chart", "half_space_trees" or "context".
    #[getter]
    fn kind(&self) -> &'static str {
        match &*self.lock() {
            Stream::Robust(_) => "robust_zscore",
            Stream::Ewma(_) => "ewma_chart",
            Stream::Hst(_) => "half_space_trees",
            Stream::Context(_) => "context",
        }
    }

    /// The parameters by their Python names (EwmaChart's lambda is `smoothing`).
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let d = pyo3::types::PyDict::new(py);
        match &*self.lock() {
            Stream::Robust(m) => {
                let p = m.valid_params();
                d.set_item("window", p.window())?;
                d.set_item("warm_up", p.warm_up())?;
                d.set_item("mad_floor", p.mad_floor())?;
                d.set_item("threshold", p.threshold())?;
            }
            Stream::Ewma(m) => {
                let p = m.valid_params();
                d.set_item("smoothing", p.lambda())?;
                d.set_item("limit", p.limit())?;
                d.set_item("alpha", p.alpha())?;
                d.set_item("warm_up", p.warm_up())?;
                d.set_item("min_std", p.min_std())?;
                d.set_item("shewhart_limit", p.shewhart_limit())?;
            }
            Stream::Hst(m) => {
                let p = m.valid_params();
                d.set_item("n_trees", p.n_trees())?;
                d.set_item("height", p.height())?;
                d.set_item("window_size", p.window_size())?;
                d.set_item("size_limit", p.size_limit())?;
                d.set_item("threshold", p.threshold())?;
                d.set_item("random_state", p.random_state())?;
            }
            Stream::Context(m) => {
                let p = m.valid_params();
                d.set_item("value_bits", p.value_bits())?;
                d.set_item("max_left_facts", p.max_left_facts())?;
                d.set_item("max_active", p.max_active())?;
                d.set_item("threshold", p.threshold())?;
                d.set_item("rest_period", p.rest_period())?;
                d.set_item("feature_ranges", p.feature_ranges().map(<[_]>::to_vec))?;
                d.set_item("range_rows", p.range_rows())?;
                d.set_item("max_contexts", p.max_contexts())?;
            }
        }
        Ok(d)
    }

    /// The detector with its learnt state as the bytes of a pdm model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let bytes = match &*self.lock() {
            Stream::Robust(m) => m.to_bytes(),
            Stream::Ewma(m) => m.to_bytes(),
            Stream::Hst(m) => m.to_bytes(),
            Stream::Context(m) => m.to_bytes(),
        };
        PyBytes::new(py, &bytes)
    }

    /// Writes the model file to `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        match &*self.lock() {
            Stream::Robust(m) => m.save(path),
            Stream::Ewma(m) => m.save(path),
            Stream::Hst(m) => m.save(path),
            Stream::Context(m) => m.save(path),
        }
        .map_err(detect_err)
    }
}
