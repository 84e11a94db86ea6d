//! Evaluation metrics of published anomaly benchmarks, usable on your own data.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark score (label windows, probation period, scaled
//!   sigmoid weights, three cost profiles, one corpus-wide threshold per profile, null/perfect
//!   normalisation).
//! - [`skab`]: the Skoltech Anomaly Benchmark metrics (point-wise F1, false and missed alarm
//!   rates, SKAB's NAB-style changepoint score) and its train/test protocol.
//! - [`text`]: parsers of the benchmark file formats from text already in memory (NAB data and
//!   results CSVs, NAB's `combined_windows.json`, SKAB's `;`-separated CSVs). Reading files is
//!   left to the caller.
//!
//! The scoring functions do no I/O: they take scores, labels and row times as slices.
//!
//! ```
//! use pdm_detect::eval::nab::{score_corpus, CostProfile, LabelWindow, NabFile};
//!
//! // 1000 rows, one labelled window over rows 600..=699; the detector fires at row 610.
//! let mut scores = vec![0.0; 1000];
//! scores[610] = 0.9;
//! let file = NabFile::new("demo.csv", scores, vec![LabelWindow::new(600, 699)])?;
//! let report = score_corpus(&[file], &CostProfile::ALL, 0.15)?;
//! let standard = &report[0];
//! assert_eq!(standard.threshold, 0.9);
//! assert!(standard.normalized > 95.0); // an early detection, no false positive
//! # Ok::<(), pdm_detect::eval::EvalError>(())
//! ```

pub mod nab;
pub mod skab;
pub mod text;

#[cfg(test)]
pub(crate) mod test_data;

#[cfg(test)]
mod nab_data_tests;
#[cfg(test)]
mod skab_data_tests;

pub use skab::roc_auc;

/// Errors of the evaluation module: bad scores, bad labels, or unparsable benchmark text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// Two inputs of one file have different lengths.
    #[error("{file}: {what} has {got} rows, expected {expected}")]
    Length {
        /// File (or series) name.
        file: String,
        /// Which input is off.
        what: &'static str,
        /// Rows expected.
        expected: usize,
        /// Rows given.
        got: usize,
    },
    /// An anomaly score is NaN, infinite or outside [0, 1].
    #[error("{file}: row {row}: anomaly score {value} is not a number in [0, 1]")]
    Score {
        /// File name.
        file: String,
        /// Row index (0-based, data rows).
        row: usize,
        /// The offending value.
        value: f64,
    },
    /// A label window is empty, reversed, out of range, unsorted or overlaps another.
    #[error("{file}: label window {index} ({start}..={end}): {reason}")]
    Window {
        /// File name.
        file: String,
        /// Window position in the file's list.
        index: usize,
        /// First row.
        start: usize,
        /// Last row.
        end: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A weight or parameter is out of range.
    #[error("invalid parameter: {0}")]
    Param(String),
    /// Text in a benchmark format could not be parsed.
    #[error("{source_name}:{line}: {message}")]
    Parse {
        /// File name or other label of the text.
        source_name: String,
        /// 1-based line number (0 when the error is not tied to a line).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Result of the evaluation module.
pub type Result<T> = std::result::Result<T, EvalError>;
