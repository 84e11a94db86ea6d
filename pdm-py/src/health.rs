//! Bindings of `pdm_detect::health`: a health index from anomaly scores, and remaining useful
//! life from the health trend.

use std::sync::{Mutex, MutexGuard};

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pdm_detect::health::{HealthIndex, RulParams, TrendModel};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::path::PathBuf;

use crate::error::detect_err;

/// A health index: smooths scores relative to a threshold into a health in [0, 1]. The mutex
/// makes it shareable across threads, as the streaming detectors.
#[pyclass(name = "HealthIndexModel", module = "pdm_engine._native", frozen)]
pub struct PyHealthIndexModel {
    inner: Mutex<HealthIndex>,
}

impl From<HealthIndex> for PyHealthIndexModel {
    fn from(index: HealthIndex) -> Self {
        Self {
            inner: Mutex::new(index),
        }
    }
}

impl PyHealthIndexModel {
    fn lock(&self) -> MutexGuard<'_, HealthIndex> {
        // The index refuses bad input before changing its state, so a poisoned lock still holds
        // a valid index.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Builds a health index with no score seen.
#[pyfunction]
pub fn health_index(alpha: f64, failure_level: f64) -> PyResult<PyHealthIndexModel> {
    let params = HealthIndex::params()
        .alpha(alpha)
        .failure_level(failure_level)
        .check()
        .map_err(|e| detect_err(e.into()))?;
    Ok(PyHealthIndexModel {
        inner: Mutex::new(params.build()),
    })
}

#[pymethods]
impl PyHealthIndexModel {
    /// (alpha, failure_level).
    fn params(&self) -> (f64, f64) {
        let index = self.lock();
        let p = index.valid_params();
        (p.alpha(), p.failure_level())
    }

    /// The index with its smoothed score as the bytes of a pdm model file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.lock().to_bytes())
    }

    /// Writes the model file to `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        self.lock().save(path).map_err(detect_err)
    }

    /// Takes the next score and returns the health.
    fn update(&self, score: f64, threshold: f64) -> PyResult<f64> {
        self.lock().update(score, threshold).map_err(detect_err)
    }

    /// `update` over every score in turn; the health after each.
    fn series<'py>(
        &self,
        py: Python<'py>,
        scores: PyReadonlyArray1<'py, f64>,
        threshold: f64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let scores = scores.as_slice()?;
        let health = py
            .detach(|| {
                // All or nothing: a refused score leaves the index as it was before the call.
                let mut index = self.lock();
                let mut copy = index.clone();
                let health = copy.series(scores, threshold)?;
                *index = copy;
                Ok(health)
            })
            .map_err(detect_err)?;
        Ok(health.into_pyarray(py))
    }

    /// Health after the scores so far, `None` before the first.
    #[getter]
    fn health(&self) -> Option<f64> {
        self.lock().health()
    }

    /// Smoothed score in units of the threshold, `None` before the first.
    #[getter]
    fn smoothed(&self) -> Option<f64> {
        self.lock().smoothed()
    }
}

/// A remaining-useful-life estimate: `(rul, lower, upper, model, slope, slope_std_err,
/// n_points)`, `model` "linear" or "exponential".
pub type RulTuple = (f64, f64, f64, &'static str, f64, f64, usize);

/// Remaining useful life from health values at strictly increasing times; `None` when health is
/// not significantly falling or there are fewer than `min_points` points.
#[pyfunction]
#[pyo3(signature = (times, health, window, min_points, failure_level, confidence))]
pub fn remaining_useful_life(
    py: Python<'_>,
    times: PyReadonlyArray1<'_, f64>,
    health: PyReadonlyArray1<'_, f64>,
    window: usize,
    min_points: usize,
    failure_level: f64,
    confidence: f64,
) -> PyResult<Option<RulTuple>> {
    let params = RulParams::new()
        .window(window)
        .min_points(min_points)
        .failure_level(failure_level)
        .confidence(confidence)
        .check()
        .map_err(|e| detect_err(e.into()))?;
    let (times, health) = (times.as_slice()?, health.as_slice()?);
    let est = py
        .detach(|| params.estimate(times, health))
        .map_err(detect_err)?;
    Ok(est.map(|e| {
        let model = match e.model {
            TrendModel::Linear => "linear",
            TrendModel::Exponential => "exponential",
            // TrendModel is non-exhaustive; a model added later is named when it is bound.
            _ => "unknown",
        };
        (
            e.rul,
            e.lower,
            e.upper,
            model,
            e.slope,
            e.slope_std_err,
            e.n_points,
        )
    }))
}
