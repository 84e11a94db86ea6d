//! Bindings of `pdm_detect::eval`: SKAB's point-wise metrics and the NAB score, on the caller's
//! own predictions and labels.

use numpy::PyReadonlyArray1;
use pdm_detect::eval::nab::{self, CostProfile, Counts, LabelWindow, NabFile};
use pdm_detect::eval::skab::Confusion;
use pyo3::prelude::*;

use crate::error::{eval_err, parameter_error};

/// Confusion counts `(tp, tn, fp, fn)`.
pub type CountsTuple = (u64, u64, u64, u64);

/// SKAB's metrics: `(counts, f1, far, mar)`, each ratio `None` where it is undefined.
pub type SkabTuple = (CountsTuple, Option<f64>, Option<f64>, Option<f64>);

/// Sums the confusion of every `(predicted, truth)` pair, then takes SKAB's ratios.
#[pyfunction]
pub fn skab_metrics(
    py: Python<'_>,
    pairs: Vec<(PyReadonlyArray1<'_, bool>, PyReadonlyArray1<'_, bool>)>,
) -> PyResult<SkabTuple> {
    let slices = pairs
        .iter()
        .map(|(p, t)| Ok((p.as_slice()?, t.as_slice()?)))
        .collect::<PyResult<Vec<_>>>()?;
    let total = py
        .detach(|| {
            let mut total = Confusion::default();
            for (i, (p, t)) in slices.iter().enumerate() {
                total.add(Confusion::from_flags(&format!("pair {i}"), p, t)?);
            }
            Ok(total)
        })
        .map_err(eval_err)?;
    Ok((
        (total.tp, total.tn, total.fp, total.fn_),
        total.f1(),
        total.far(),
        total.mar(),
    ))
}

fn counts(c: &Counts) -> CountsTuple {
    (c.tp, c.tn, c.fp, c.fn_)
}

/// One profile's result: `(profile, threshold, raw, null, perfect, normalized, counts,
/// [(file, raw score, counts)])`.
pub type ProfileTuple = (
    &'static str,
    f64,
    f64,
    f64,
    f64,
    f64,
    CountsTuple,
    Vec<(String, f64, CountsTuple)>,
);

/// One file of a NAB corpus: name, a score in [0, 1] per row, label windows `(start, end)`.
pub type FileTuple<'py> = (String, PyReadonlyArray1<'py, f64>, Vec<(usize, usize)>);

/// Scores a corpus under each profile named in `profiles` (NAB's names).
#[pyfunction]
pub fn nab_score(
    py: Python<'_>,
    files: Vec<FileTuple<'_>>,
    profiles: Vec<String>,
    probation_percent: f64,
) -> PyResult<Vec<ProfileTuple>> {
    let profiles = profiles
        .iter()
        .map(|name| {
            CostProfile::ALL
                .into_iter()
                .find(|p| p.name == name)
                .ok_or_else(|| {
                    let names: Vec<&str> = CostProfile::ALL.iter().map(|p| p.name).collect();
                    parameter_error(format!(
                        "unknown NAB profile {name:?}; one of {}",
                        names.join(", ")
                    ))
                })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let files = files
        .into_iter()
        .map(|(name, scores, windows)| {
            let windows = windows
                .into_iter()
                .map(|(s, e)| LabelWindow::new(s, e))
                .collect();
            NabFile::new(name, scores.as_slice()?.to_vec(), windows).map_err(eval_err)
        })
        .collect::<PyResult<Vec<_>>>()?;
    let reports = py
        .detach(|| nab::score_corpus(&files, &profiles, probation_percent))
        .map_err(eval_err)?;
    Ok(reports
        .iter()
        .map(|r| {
            (
                r.profile.name,
                r.threshold,
                r.raw_score,
                r.null_score,
                r.perfect_score,
                r.normalized,
                counts(&r.counts),
                r.files
                    .iter()
                    .map(|f| (f.name.clone(), f.score, counts(&f.counts)))
                    .collect(),
            )
        })
        .collect())
}
