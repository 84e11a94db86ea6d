//! From scores to decisions: a threshold, "k of n" smoothing, and events.
//!
//! A detector gives one score per row (per window, with window features). A raw flag is a score
//! strictly above the threshold, as
//! [`Detector::threshold`](pdm_core::detector::Detector::threshold) has it. One noisy row should
//! not page anyone, so flags are smoothed: a row is flagged when at least `k` of the last `n` raw
//! flags (itself included) are set. Runs of flagged rows become [`Event`]s; runs separated by
//! fewer than `min_gap` unflagged rows are one event.
//!
//! ```
//! use pdm_detect::decide::{DecisionParams, Event};
//!
//! let scores = [0.2, 1.5, 0.3, 1.8, 2.5, 1.2, 0.1, 0.2, 0.1, 1.1];
//! let d = DecisionParams::new().threshold(1.0).k_of_n(2, 3).decide(&scores)?;
//! assert_eq!(d.raw, [false, true, false, true, true, true, false, false, false, true]);
//! assert_eq!(d.flags, [false, false, false, true, true, true, true, false, false, false]);
//! assert_eq!(d.events, [Event { start: 3, end: 6, peak_index: 4, peak_score: 2.5 }]);
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::{quantile_sorted, DetectError, Result};

/// A run of flagged rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event {
    /// First flagged row.
    pub start: usize,
    /// Last flagged row (inclusive).
    pub end: usize,
    /// Row of the highest score in `start..=end` (the first, on ties).
    pub peak_index: usize,
    /// That score.
    pub peak_score: f64,
}

impl Event {
    /// Number of rows, `end - start + 1`.
    pub fn len(&self) -> usize {
        self.end - self.start + 1
    }

    /// Never true: an event holds at least one row. Here because clippy asks for it beside
    /// [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// An invalid decision parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionParamsError {
    /// `threshold` is NaN or infinite.
    #[error("threshold must be a finite number, got {0}")]
    Threshold(f64),
    /// `n` of "k of n" is zero.
    #[error("n (of k of n) must be >= 1, got {0}")]
    N(usize),
    /// `k` of "k of n" is zero or above `n`.
    #[error("k (of k of n) must be in [1, n = {n}], got {k}")]
    K {
        /// `k` asked for.
        k: usize,
        /// `n` asked for.
        n: usize,
    },
    /// A calibration quantile is outside [0, 1].
    #[error("quantile must be in [0, 1], got {0}")]
    Quantile(f64),
}

/// Checked decision parameters; [`decide`](Self::decide) turns scores into decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionValidParams {
    threshold: f64,
    k: usize,
    n: usize,
    min_gap: usize,
}

/// Unchecked decision parameters.
///
/// Defaults: threshold 1 (the threshold of [`PcaDetector`](crate::PcaDetector); take a
/// detector's own with `threshold(detector.threshold())`), 1 of 1 (no smoothing), no merging.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionParams(DecisionValidParams);

impl Default for DecisionParams {
    fn default() -> Self {
        Self(DecisionValidParams {
            threshold: 1.0,
            k: 1,
            n: 1,
            min_gap: 0,
        })
    }
}

/// What [`DecisionValidParams::decide`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    /// Score above the threshold, per row.
    pub raw: Vec<bool>,
    /// Raw flags after "k of n" smoothing, per row.
    pub flags: Vec<bool>,
    /// Runs of smoothed flags, merged across short gaps.
    pub events: Vec<Event>,
}

impl DecisionParams {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores strictly above this are raw flags; finite.
    pub fn threshold(mut self, threshold: f64) -> Self {
        self.0.threshold = threshold;
        self
    }

    /// Flag a row when at least `k` of the last `n` raw flags are set; `1 <= k <= n`.
    pub fn k_of_n(mut self, k: usize, n: usize) -> Self {
        self.0.k = k;
        self.0.n = n;
        self
    }

    /// Merge runs separated by fewer than this many unflagged rows; 0 and 1 never merge.
    pub fn min_gap(mut self, min_gap: usize) -> Self {
        self.0.min_gap = min_gap;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&DecisionValidParams, DecisionParamsError> {
        let p = &self.0;
        if !p.threshold.is_finite() {
            return Err(DecisionParamsError::Threshold(p.threshold));
        }
        check_k_of_n(p.k, p.n)?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<DecisionValidParams, DecisionParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters, then decides; see [`DecisionValidParams::decide`].
    pub fn decide(&self, scores: &[f64]) -> Result<Decisions> {
        self.check_ref()?.decide(scores)
    }
}

impl DecisionValidParams {
    /// The threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// `(k, n)` of the smoothing.
    pub fn k_of_n(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The merge gap.
    pub fn min_gap(&self) -> usize {
        self.min_gap
    }

    /// Flags, smooths and groups `scores` (in time order). Errors on a non-finite score.
    pub fn decide(&self, scores: &[f64]) -> Result<Decisions> {
        check_scores(scores)?;
        let raw: Vec<bool> = scores.iter().map(|&s| s > self.threshold).collect();
        let flags = smooth(&raw, self.k, self.n);
        let events = group(&flags, scores, self.min_gap);
        Ok(Decisions { raw, flags, events })
    }
}

/// A threshold that `1 - quantile` of the training scores exceed: their `quantile` with numpy's
/// default linear interpolation (`np.quantile(scores, quantile)`).
///
/// Errors on no score, a non-finite score, or a quantile outside [0, 1].
pub fn calibrate_threshold(training_scores: &[f64], quantile: f64) -> Result<f64> {
    if !(0.0..=1.0).contains(&quantile) {
        return Err(DecisionParamsError::Quantile(quantile).into());
    }
    if training_scores.is_empty() {
        return Err(DetectError::Empty);
    }
    check_scores(training_scores)?;
    let mut sorted = training_scores.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Ok(quantile_sorted(&sorted, quantile))
}

/// "k of n" smoothing: row `i` is flagged when at least `k` of the raw flags at rows
/// `i + 1 - n ..= i` (fewer at the start) are set. Errors unless `1 <= k <= n`.
pub fn k_of_n(raw: &[bool], k: usize, n: usize) -> Result<Vec<bool>> {
    check_k_of_n(k, n)?;
    Ok(smooth(raw, k, n))
}

/// Runs of `flags` as events, peaks taken from `scores` (same length), runs separated by fewer
/// than `min_gap` unflagged rows merged into one event that spans the gap.
///
/// Errors when the lengths differ or a score is not finite.
pub fn events(flags: &[bool], scores: &[f64], min_gap: usize) -> Result<Vec<Event>> {
    if flags.len() != scores.len() {
        return Err(DetectError::Length {
            expected: flags.len(),
            got: scores.len(),
        });
    }
    check_scores(scores)?;
    Ok(group(flags, scores, min_gap))
}

fn check_k_of_n(k: usize, n: usize) -> std::result::Result<(), DecisionParamsError> {
    if n == 0 {
        return Err(DecisionParamsError::N(n));
    }
    if k == 0 || k > n {
        return Err(DecisionParamsError::K { k, n });
    }
    Ok(())
}

fn check_scores(scores: &[f64]) -> Result<()> {
    match scores.iter().position(|s| !s.is_finite()) {
        Some(index) => Err(DetectError::NotFiniteScore { index }),
        None => Ok(()),
    }
}

fn smooth(raw: &[bool], k: usize, n: usize) -> Vec<bool> {
    // A running count over the last n flags, so the cost does not grow with n.
    let mut count = 0;
    raw.iter()
        .enumerate()
        .map(|(i, &f)| {
            count += usize::from(f);
            if let Some(old) = i.checked_sub(n) {
                count -= usize::from(raw[old]);
            }
            count >= k
        })
        .collect()
}

fn group(flags: &[bool], scores: &[f64], min_gap: usize) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        if !flags[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < flags.len() && flags[i] {
            i += 1;
        }
        let end = i - 1;
        match events.last_mut() {
            Some(last) if start - last.end - 1 < min_gap => last.end = end,
            _ => events.push(Event {
                start,
                end,
                peak_index: start,
                peak_score: scores[start],
            }),
        }
    }
    for e in &mut events {
        for (j, &s) in scores.iter().enumerate().take(e.end + 1).skip(e.start) {
            if s > e.peak_score {
                e.peak_index = j;
                e.peak_score = s;
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: bool = true;
    const F: bool = false;

    #[test]
    fn calibration_is_numpy_quantile() {
        // np.quantile([1, 2, 3, 4], q) for q = 0, 0.1, 0.5, 0.9, 1: 1, 1.3, 2.5, 3.7, 4.
        let s = [4.0, 1.0, 3.0, 2.0];
        let q = |q| calibrate_threshold(&s, q).expect("quantile");
        assert_eq!(q(0.0), 1.0);
        assert!((q(0.1) - 1.3).abs() < 1e-12);
        assert_eq!(q(0.5), 2.5);
        assert!((q(0.9) - 3.7).abs() < 1e-12);
        assert_eq!(q(1.0), 4.0);
        assert_eq!(calibrate_threshold(&[7.0], 0.99), Ok(7.0));
        assert_eq!(calibrate_threshold(&[], 0.5), Err(DetectError::Empty));
        assert_eq!(
            calibrate_threshold(&[1.0, f64::NAN], 0.5),
            Err(DetectError::NotFiniteScore { index: 1 })
        );
        assert_eq!(
            calibrate_threshold(&s, 1.5).map_err(|e| e.to_string()),
            Err("invalid parameter: quantile must be in [0, 1], got 1.5".into())
        );
    }

    #[test]
    fn k_of_n_by_hand() {
        let raw = [T, F, T, F, F, T, T, F];
        // 2 of 3: windows ending at each row hold T | TF | TFT | FTF | TFF | FFT | FTT | TTF.
        assert_eq!(k_of_n(&raw, 2, 3).expect("valid"), [F, F, T, F, F, F, T, T]);
        assert_eq!(k_of_n(&raw, 1, 1).expect("valid"), raw);
        // 1 of 3 holds a flag for two rows after it.
        assert_eq!(k_of_n(&raw, 1, 3).expect("valid"), [T, T, T, T, T, T, T, T]);
        assert_eq!(k_of_n(&raw, 3, 3).expect("valid"), [F, F, F, F, F, F, F, F]);
        assert!(k_of_n(&[], 1, 2).expect("valid").is_empty());
        assert_eq!(
            k_of_n(&raw, 4, 3).map_err(|e| e.to_string()),
            Err("invalid parameter: k (of k of n) must be in [1, n = 3], got 4".into())
        );
        assert_eq!(
            k_of_n(&raw, 0, 3).map_err(|e| e.to_string()),
            Err("invalid parameter: k (of k of n) must be in [1, n = 3], got 0".into())
        );
        assert_eq!(
            k_of_n(&raw, 1, 0).map_err(|e| e.to_string()),
            Err("invalid parameter: n (of k of n) must be >= 1, got 0".into())
        );
    }

    #[test]
    fn events_by_hand() {
        let flags = [F, T, T, F, F, T, F, T, F, F, F, T];
        let scores = [0.0, 2.0, 3.0, 0.5, 0.1, 4.0, 0.9, 1.5, 0.0, 0.0, 0.0, 9.0];
        let ev = |start, end, peak_index, peak_score| Event {
            start,
            end,
            peak_index,
            peak_score,
        };
        // No merging: four runs.
        assert_eq!(
            events(&flags, &scores, 0).expect("events"),
            [
                ev(1, 2, 2, 3.0),
                ev(5, 5, 5, 4.0),
                ev(7, 7, 7, 1.5),
                ev(11, 11, 11, 9.0)
            ]
        );
        assert_eq!(
            events(&flags, &scores, 1).expect("events"),
            events(&flags, &scores, 0).expect("events")
        );
        // Gaps of 2, 1 and 3 unflagged rows: min_gap 2 merges the 1-row gap only.
        assert_eq!(
            events(&flags, &scores, 2).expect("events"),
            [ev(1, 2, 2, 3.0), ev(5, 7, 5, 4.0), ev(11, 11, 11, 9.0)]
        );
        assert_eq!(
            events(&flags, &scores, 3).expect("events"),
            [ev(1, 7, 5, 4.0), ev(11, 11, 11, 9.0)]
        );
        assert_eq!(
            events(&flags, &scores, 4).expect("events"),
            [ev(1, 11, 11, 9.0)]
        );
        // A run reaching the last row, ties keep the first peak.
        assert_eq!(
            events(&[F, T, T], &[0.0, 2.0, 2.0], 0).expect("events"),
            [ev(1, 2, 1, 2.0)]
        );
        assert_eq!(ev(1, 2, 1, 2.0).len(), 2);
        assert!(events(&[], &[], 5).expect("events").is_empty());
        assert_eq!(
            events(&[T], &[1.0, 2.0], 0),
            Err(DetectError::Length {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            events(&[T], &[f64::INFINITY], 0),
            Err(DetectError::NotFiniteScore { index: 0 })
        );
    }

    #[test]
    fn decide_by_hand() {
        // Threshold 1, strictly above: the score 1.0 at row 2 is not a raw flag.
        let scores = [0.5, 1.2, 1.0, 1.3, 0.2, 0.2, 0.2, 5.0];
        let d = DecisionParams::new()
            .k_of_n(2, 2)
            .min_gap(0)
            .decide(&scores)
            .expect("decide");
        assert_eq!(d.raw, [F, T, F, T, F, F, F, T]);
        assert_eq!(d.flags, [F, F, F, F, F, F, F, F]);
        assert!(d.events.is_empty());
        let d = DecisionParams::new()
            .threshold(0.6)
            .k_of_n(2, 3)
            .min_gap(2)
            .decide(&scores)
            .expect("decide");
        // Raw: F T T T F F F T; 2 of 3: F F T T T F F F.
        assert_eq!(d.flags, [F, F, T, T, T, F, F, F]);
        assert_eq!(
            d.events,
            [Event {
                start: 2,
                end: 4,
                peak_index: 3,
                peak_score: 1.3
            }]
        );
        assert_eq!(
            DecisionParams::new().decide(&[0.0, f64::NAN]),
            Err(DetectError::NotFiniteScore { index: 1 })
        );
    }

    #[test]
    fn parameters_are_checked() {
        let err = |p: DecisionParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            err(DecisionParams::new().threshold(f64::NAN)),
            "threshold must be a finite number, got NaN"
        );
        assert_eq!(
            err(DecisionParams::new().k_of_n(3, 2)),
            "k (of k of n) must be in [1, n = 2], got 3"
        );
        assert_eq!(err(DecisionParams::new().k_of_n(2, 2)), "accepted");
        let v = DecisionParams::new().min_gap(3).check().expect("valid");
        assert_eq!((v.threshold(), v.k_of_n(), v.min_gap()), (1.0, (1, 1), 3));
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<DecisionParams>();
        assert_send_sync::<DecisionValidParams>();
        assert_send_sync::<Decisions>();
        assert_send_sync::<DecisionParamsError>();
    }
}
