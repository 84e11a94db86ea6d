//! Bindings of `pdm_detect::decide`: calibrated thresholds, "k of n" smoothing and events.
//! The Python layer checks types and shapes and builds the named tuples; these delegate.

use numpy::{IntoPyArray, PyArray1, PyReadonlyArray1};
use pdm_detect::decide::{self as engine, DecisionParams, Event};
use pyo3::prelude::*;

use crate::error::detect_err;

/// An event as `(start, end, peak_index, peak_score)`, `end` inclusive.
pub type EventTuple = (usize, usize, usize, f64);

fn event_tuple(e: &Event) -> EventTuple {
    (e.start, e.end, e.peak_index, e.peak_score)
}

/// The `quantile` of the training scores (numpy's linear interpolation): a threshold that
/// `1 - quantile` of them exceed.
#[pyfunction]
pub fn calibrate_threshold(
    py: Python<'_>,
    scores: PyReadonlyArray1<'_, f64>,
    quantile: f64,
) -> PyResult<f64> {
    let scores = scores.as_slice()?;
    py.detach(|| engine::calibrate_threshold(scores, quantile))
        .map_err(detect_err)
}

/// "k of n" smoothing of raw flags.
#[pyfunction]
pub fn k_of_n<'py>(
    py: Python<'py>,
    flags: PyReadonlyArray1<'py, bool>,
    k: usize,
    n: usize,
) -> PyResult<Bound<'py, PyArray1<bool>>> {
    let flags = flags.as_slice()?;
    let smoothed = py
        .detach(|| engine::k_of_n(flags, k, n))
        .map_err(detect_err)?;
    Ok(smoothed.into_pyarray(py))
}

/// Runs of `flags` as events, peaks from `scores`, runs closer than `min_gap` merged.
#[pyfunction]
pub fn events(
    py: Python<'_>,
    flags: PyReadonlyArray1<'_, bool>,
    scores: PyReadonlyArray1<'_, f64>,
    min_gap: usize,
) -> PyResult<Vec<EventTuple>> {
    let (flags, scores) = (flags.as_slice()?, scores.as_slice()?);
    let events = py
        .detach(|| engine::events(flags, scores, min_gap))
        .map_err(detect_err)?;
    Ok(events.iter().map(event_tuple).collect())
}

/// Raw flags, smoothed flags and events of `scores`.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn decide<'py>(
    py: Python<'py>,
    scores: PyReadonlyArray1<'py, f64>,
    threshold: f64,
    k: usize,
    n: usize,
    min_gap: usize,
) -> PyResult<(
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<bool>>,
    Vec<EventTuple>,
)> {
    let scores = scores.as_slice()?;
    let params = DecisionParams::new()
        .threshold(threshold)
        .k_of_n(k, n)
        .min_gap(min_gap);
    let d = py.detach(|| params.decide(scores)).map_err(detect_err)?;
    let events = d.events.iter().map(event_tuple).collect();
    Ok((d.raw.into_pyarray(py), d.flags.into_pyarray(py), events))
}
