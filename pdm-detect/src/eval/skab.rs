//! The Skoltech Anomaly Benchmark (SKAB) metrics and protocol.
//!
//! - Outlier detection is point-wise binary classification: [`Confusion`] counts are summed over
//!   files, then [`Confusion::f1`] `= TP / (TP + (FP + FN) / 2)`, [`Confusion::far`] (false alarm
//!   rate) `= FP / (FP + TN)` and [`Confusion::mar`] (missed alarm rate) `= FN / (FN + TP)`.
//!   The leaderboard prints F1 to 2 decimals and FAR, MAR as percentages to 2 decimals.
//! - Changepoint detection uses SKAB's variant of the NAB score (from its `core/metrics.py`, part
//!   of the TSAD package): each true changepoint opens a window of [`CP_WINDOW_SECONDS`] to its
//!   right, a later window that overlaps an earlier one starts where the earlier ends; only the
//!   first predicted changepoint in a window counts, weighted along a tanh curve from `a_tp` at
//!   the window start to `a_fp` at its end ([`tanh_weight`]); each prediction outside every
//!   window costs `a_fp` (no decay, unlike NAB); each window without prediction costs `a_fn`.
//!   Summed over files and normalised as `100 * (S - S_null) / (S_perfect - S_null)` with
//!   `S_perfect = a_tp * windows` and `S_null = a_fn * windows` ([`changepoint_scores`]).
//! - Protocol: each file separately, the first [`TRAIN_ROWS`] rows train, the rest is scored
//!   ([`train_test_split`]). The reference Isolation Forest pipeline post-processes its outlier
//!   flags with [`median3`] and derives changepoints with [`alarm_edges`].

use super::{EvalError, Result};
use std::ops::Range;

/// Rows per file used for training in SKAB's current protocol.
pub const TRAIN_ROWS: usize = 400;

/// Width of the scoring window to the right of each true changepoint, in seconds.
pub const CP_WINDOW_SECONDS: f64 = 60.0;

/// Splits a file of `n_rows` into the first `train_rows` (training) and the rest (test), in time
/// order. Errors when nothing would be left to test.
pub fn train_test_split(n_rows: usize, train_rows: usize) -> Result<(Range<usize>, Range<usize>)> {
    if train_rows == 0 || n_rows <= train_rows {
        return Err(EvalError::Param(format!(
            "a file of {n_rows} rows cannot give {train_rows} training rows and a test part"
        )));
    }
    Ok((0..train_rows, train_rows..n_rows))
}

/// Point-wise confusion counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// Predicted and labelled anomalous.
    pub tp: u64,
    /// Predicted and labelled normal.
    pub tn: u64,
    /// Predicted anomalous, labelled normal.
    pub fp: u64,
    /// Predicted normal, labelled anomalous.
    pub fn_: u64,
}

impl Confusion {
    /// Counts `predicted` against `truth`, row by row. `file` names the series in errors.
    pub fn from_flags(file: &str, predicted: &[bool], truth: &[bool]) -> Result<Self> {
        if predicted.len() != truth.len() {
            return Err(EvalError::Length {
                file: file.to_owned(),
                what: "predicted",
                expected: truth.len(),
                got: predicted.len(),
            });
        }
        let mut c = Self::default();
        for (&p, &t) in predicted.iter().zip(truth) {
            match (p, t) {
                (true, true) => c.tp += 1,
                (false, false) => c.tn += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        Ok(c)
    }

    /// Adds another file's counts (SKAB sums counts over files before taking ratios).
    pub fn add(&mut self, other: Confusion) {
        self.tp += other.tp;
        self.tn += other.tn;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }

    /// `TP / (TP + (FP + FN) / 2)`; `None` when there is no positive, predicted or labelled.
    pub fn f1(&self) -> Option<f64> {
        let d = self.tp as f64 + (self.fp + self.fn_) as f64 / 2.0;
        (d > 0.0).then(|| self.tp as f64 / d)
    }

    /// False alarm rate `FP / (FP + TN)`, as a fraction; `None` without labelled normal rows.
    pub fn far(&self) -> Option<f64> {
        let d = self.fp + self.tn;
        (d > 0).then(|| self.fp as f64 / d as f64)
    }

    /// Missed alarm rate `FN / (FN + TP)`, as a fraction; `None` without labelled anomalies.
    pub fn mar(&self) -> Option<f64> {
        let d = self.fn_ + self.tp;
        (d > 0).then(|| self.fn_ as f64 / d as f64)
    }
}

/// Weights of SKAB's changepoint score profiles (`A_tp`, `A_fp`, `A_fn`; costs are negative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpProfile {
    /// Profile name as SKAB's leaderboard spells it.
    pub name: &'static str,
    /// Weight of a detection at the start of a window.
    pub a_tp: f64,
    /// Weight of a detection outside windows (and at a window's end).
    pub a_fp: f64,
    /// Weight of a window without detection.
    pub a_fn: f64,
}

impl CpProfile {
    /// SKAB's `Standard` profile.
    pub const STANDARD: Self = Self {
        name: "Standard",
        a_tp: 1.0,
        a_fp: -0.11,
        a_fn: -1.0,
    };
    /// SKAB's `LowFP` profile.
    pub const LOW_FP: Self = Self {
        name: "LowFP",
        a_tp: 1.0,
        a_fp: -0.22,
        a_fn: -1.0,
    };
    /// SKAB's `LowFN` profile.
    pub const LOW_FN: Self = Self {
        name: "LowFN",
        a_tp: 1.0,
        a_fp: -0.11,
        a_fn: -2.0,
    };
    /// The three profiles in the leaderboard's column order.
    pub const ALL: [Self; 3] = [Self::STANDARD, Self::LOW_FP, Self::LOW_FN];
}

/// Weight of a first detection at relative position `rel` in [0, 1] of its window.
///
/// SKAB samples `y(x) = (a_tp - a_fp) / 2 * (1 - tanh(x) / tanh(pi/2)) + a_fp` at 1000 points
/// `x` evenly spaced over [-pi/2, pi/2] and takes the sample at index
/// `min(floor(1000 * rel), 999)`: `a_tp` at the window start, `a_fp` at its end. The
/// discretisation is kept so scores match SKAB's to the last digit.
pub fn tanh_weight(rel: f64, a_tp: f64, a_fp: f64) -> f64 {
    const N: usize = 1000;
    let half_pi = std::f64::consts::FRAC_PI_2;
    let event = ((rel.max(0.0) * N as f64) as usize).min(N - 1);
    let x = -half_pi + event as f64 * (2.0 * half_pi) / (N - 1) as f64;
    (a_tp - a_fp) / 2.0 * -x.tanh() / half_pi.tanh() + (a_tp - a_fp) / 2.0 + a_fp
}

/// Scoring windows `[t, t + width]` of the true changepoints at `times` where `changepoints` is
/// set, with SKAB's "cut right window" rule: a window that starts before the previous one ends
/// starts at that end instead.
pub fn changepoint_windows(times: &[f64], changepoints: &[bool], width: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = times
        .iter()
        .zip(changepoints)
        .filter(|(_, &c)| c)
        .map(|(&t, _)| (t, t + width))
        .collect();
    for i in 1..out.len() {
        if out[i - 1].1 >= out[i].0 {
            out[i].0 = out[i - 1].1;
        }
    }
    out
}

/// What a changepoint detector did on one or more files: enough to score every profile.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpOutcome {
    /// True changepoint windows.
    pub windows: usize,
    /// Relative position in [0, 1] of the first detection of each detected window.
    pub detections: Vec<f64>,
    /// Seconds from window start to its first detection, per detected window.
    pub delays: Vec<f64>,
    /// Predicted changepoints outside every window.
    pub false_positives: usize,
}

impl CpOutcome {
    /// Windows without detection.
    pub fn missed(&self) -> usize {
        self.windows - self.detections.len()
    }

    /// Mean detection delay in seconds; `None` without detection.
    pub fn mean_delay(&self) -> Option<f64> {
        (!self.delays.is_empty())
            .then(|| self.delays.iter().sum::<f64>() / self.delays.len() as f64)
    }

    /// Adds another file's outcome.
    pub fn add(&mut self, other: CpOutcome) {
        self.windows += other.windows;
        self.detections.extend(other.detections);
        self.delays.extend(other.delays);
        self.false_positives += other.false_positives;
    }
}

/// Matches predicted changepoints to the windows of the true ones in one file. `times` are the
/// row times in seconds (sorted), `truth` and `predicted` flag changepoint rows, `width` is the
/// window width in seconds ([`CP_WINDOW_SECONDS`] in SKAB).
pub fn changepoint_outcome(
    file: &str,
    times: &[f64],
    truth: &[bool],
    predicted: &[bool],
    width: f64,
) -> Result<CpOutcome> {
    for (what, len) in [("truth", truth.len()), ("predicted", predicted.len())] {
        if len != times.len() {
            return Err(EvalError::Length {
                file: file.to_owned(),
                what,
                expected: times.len(),
                got: len,
            });
        }
    }
    if !(width.is_finite() && width >= 0.0) {
        return Err(EvalError::Param(format!(
            "window width must be finite and >= 0, got {width}"
        )));
    }
    let windows = changepoint_windows(times, truth, width);
    let preds: Vec<f64> = times
        .iter()
        .zip(predicted)
        .filter(|(_, &p)| p)
        .map(|(&t, _)| t)
        .collect();
    let mut out = CpOutcome {
        windows: windows.len(),
        ..CpOutcome::default()
    };
    for &(a, b) in &windows {
        if let Some(&t) = preds.iter().find(|&&t| a <= t && t <= b) {
            // A window cut to nothing cannot place a detection; SKAB would divide by zero.
            let rel = if b > a { (t - a) / (b - a) } else { 0.0 };
            out.detections.push(rel);
            out.delays.push(t - a);
        }
    }
    out.false_positives = preds
        .iter()
        .filter(|&&t| !windows.iter().any(|&(a, b)| a <= t && t <= b))
        .count();
    Ok(out)
}

/// A normalised changepoint score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpScore {
    /// The profile.
    pub profile: CpProfile,
    /// Raw score.
    pub raw: f64,
    /// `a_fn` per window.
    pub null: f64,
    /// `a_tp` per window.
    pub perfect: f64,
    /// `100 * (raw - null) / (perfect - null)`; NaN without windows.
    pub normalized: f64,
}

/// Scores an outcome (usually summed over files) under each profile.
pub fn changepoint_scores(outcome: &CpOutcome, profiles: &[CpProfile]) -> Vec<CpScore> {
    profiles
        .iter()
        .map(|&p| {
            let raw = p.a_fp * outcome.false_positives as f64
                + p.a_fn * outcome.missed() as f64
                + outcome
                    .detections
                    .iter()
                    .map(|&r| tanh_weight(r, p.a_tp, p.a_fp))
                    .sum::<f64>();
            let null = p.a_fn * outcome.windows as f64;
            let perfect = p.a_tp * outcome.windows as f64;
            let normalized = if perfect > null {
                100.0 * (raw - null) / (perfect - null)
            } else {
                f64::NAN
            };
            CpScore {
                profile: p,
                raw,
                null,
                perfect,
                normalized,
            }
        })
        .collect()
}

/// Rolling median over 3 rows of a 0/1 flag (a majority vote of the row and the two before),
/// with the first two rows 0: SKAB's reference post-processing of outlier flags, which drops
/// isolated one-row alarms.
pub fn median3(flags: &[bool]) -> Vec<bool> {
    (0..flags.len())
        .map(|i| i >= 2 && flags[i - 2..=i].iter().filter(|&&f| f).count() >= 2)
        .collect()
}

/// Changepoints from an alarm flag, as SKAB's reference pipeline derives them: the rolling max
/// over `window` rows of the flag, then its rising and falling edges. Rows before the rolling max
/// and its difference are defined (the first `window` rows) carry no changepoint.
pub fn alarm_edges(flags: &[bool], window: usize) -> Vec<bool> {
    let window = window.max(1);
    let rolling: Vec<Option<bool>> = (0..flags.len())
        .map(|i| (i + 1 >= window).then(|| flags[i + 1 - window..=i].iter().any(|&f| f)))
        .collect();
    (0..flags.len())
        .map(
            |i| match (i.checked_sub(1).and_then(|j| rolling[j]), rolling[i]) {
                (Some(a), Some(b)) => a != b,
                _ => false,
            },
        )
        .collect()
}

/// Area under the ROC curve of `scores` (higher means more anomalous) for the `labels`, by the
/// Mann–Whitney U statistic with ties counted half. `None` when lengths differ, a score is NaN,
/// or one class is empty.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    if scores.len() != labels.len() || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the 1-based ranks of the positives, tied runs sharing their mean rank.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mean_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += mean_rank * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_metrics_by_hand() {
        // truth:     1 1 1 0 0 0 0 0
        // predicted: 1 0 0 1 0 0 0 0  -> TP 1, FN 2, FP 1, TN 4
        let t = [true, true, true, false, false, false, false, false];
        let p = [true, false, false, true, false, false, false, false];
        let c = Confusion::from_flags("f", &p, &t).expect("same length");
        assert_eq!(
            c,
            Confusion {
                tp: 1,
                tn: 4,
                fp: 1,
                fn_: 2
            }
        );
        // F1 = 1 / (1 + 3/2) = 0.4; FAR = 1/5; MAR = 2/3.
        assert_eq!(c.f1(), Some(0.4));
        assert_eq!(c.far(), Some(0.2));
        assert_eq!(c.mar(), Some(2.0 / 3.0));
        let mut sum = c;
        sum.add(Confusion {
            tp: 3,
            tn: 0,
            fp: 0,
            fn_: 0,
        });
        // F1 = 4 / (4 + 3/2) = 8/11.
        assert_eq!(sum.f1(), Some(8.0 / 11.0));
        assert_eq!(Confusion::default().f1(), None);
        assert!(Confusion::from_flags("f", &p[..3], &t).is_err());
    }

    #[test]
    fn skab_leaderboard_counts_give_the_published_ratios() {
        // SKAB's Isolation Forest counts (notes: TP 2185, TN 10748, FP 282, FN 10586)
        // print as F1 0.29, FAR 2.56 %, MAR 82.89 %.
        let c = Confusion {
            tp: 2185,
            tn: 10748,
            fp: 282,
            fn_: 10586,
        };
        let r2 = |x: f64| (x * 100.0).round() / 100.0;
        assert_eq!(r2(c.f1().expect("f1")), 0.29);
        assert_eq!(r2(100.0 * c.far().expect("far")), 2.56);
        assert_eq!(r2(100.0 * c.mar().expect("mar")), 82.89);
    }

    #[test]
    fn tanh_weight_ends_and_middle() {
        assert!((tanh_weight(0.0, 1.0, -0.11) - 1.0).abs() < 1e-12);
        assert!((tanh_weight(1.0, 1.0, -0.11) + 0.11).abs() < 1e-12);
        // The curve is symmetric about its centre, the mean of the ends: samples 499 and 500
        // straddle x = 0.
        let mid = (tanh_weight(0.4995, 1.0, -0.11) + tanh_weight(0.5005, 1.0, -0.11)) / 2.0;
        assert!((mid - 0.445).abs() < 1e-12);
        assert!(tanh_weight(0.25, 1.0, -0.11) > tanh_weight(0.5, 1.0, -0.11));
    }

    #[test]
    fn windows_are_cut_on_the_right() {
        let times: Vec<f64> = (0..200).map(f64::from).collect();
        let mut cp = vec![false; 200];
        cp[10] = true;
        cp[40] = true; // inside the first window's 60 s
        cp[150] = true;
        assert_eq!(
            changepoint_windows(&times, &cp, 60.0),
            vec![(10.0, 70.0), (70.0, 100.0), (150.0, 210.0)]
        );
    }

    #[test]
    fn changepoint_score_by_hand() {
        // One file, 1 s rows, changepoints at 10 and 100: windows [10, 70] and [100, 160].
        let times: Vec<f64> = (0..200).map(f64::from).collect();
        let mut truth = vec![false; 200];
        truth[10] = true;
        truth[100] = true;
        // Predictions: 40 (first in window 1, rel 0.5), 50 (second in window 1: ignored),
        // 80 (between windows: FP), 190 (after: FP). Window 2 missed.
        let mut pred = vec![false; 200];
        for i in [40, 50, 80, 190] {
            pred[i] = true;
        }
        let o = changepoint_outcome("f", &times, &truth, &pred, 60.0).expect("outcome");
        assert_eq!(o.windows, 2);
        assert_eq!(o.detections, vec![0.5]);
        assert_eq!(o.delays, vec![30.0]);
        assert_eq!(o.false_positives, 2);
        assert_eq!(o.missed(), 1);
        let s = changepoint_scores(&o, &CpProfile::ALL);
        let w = |a_fp| tanh_weight(0.5, 1.0, a_fp);
        // Standard: w - 2*0.11 - 1; null -2; perfect 2.
        assert!((s[0].raw - (w(-0.11) - 0.22 - 1.0)).abs() < 1e-12);
        assert!((s[0].normalized - 100.0 * (s[0].raw + 2.0) / 4.0).abs() < 1e-12);
        // LowFN: a missed window costs 2; null -4.
        assert!((s[2].raw - (w(-0.11) - 0.22 - 2.0)).abs() < 1e-12);
        assert_eq!(s[2].null, -4.0);
        // No prediction at all scores 0, all of them at window starts 100.
        let none = changepoint_outcome("f", &times, &truth, &[false; 200], 60.0).expect("ok");
        assert_eq!(
            changepoint_scores(&none, &CpProfile::ALL)[0].normalized,
            0.0
        );
        let perfect = changepoint_outcome("f", &times, &truth, &truth, 60.0).expect("ok");
        assert!((changepoint_scores(&perfect, &CpProfile::ALL)[1].normalized - 100.0).abs() < 1e-9);
    }

    #[test]
    fn post_processing() {
        let f = |s: &str| s.bytes().map(|b| b == b'1').collect::<Vec<bool>>();
        assert_eq!(median3(&f("1101001110")), f("0011000111"));
        // Rolling max over 3: undefined, undefined, then 0 0 1 1 1 0 0 -> edges at 4 and 7.
        assert_eq!(alarm_edges(&f("000010000"), 3), f("000010010"));
    }

    #[test]
    fn split_and_auc() {
        assert_eq!(
            train_test_split(1000, 400).expect("ok"),
            (0..400, 400..1000)
        );
        assert!(train_test_split(400, 400).is_err());
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            Some(1.0)
        );
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            Some(0.0)
        );
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), Some(0.5));
        let auc = roc_auc(&[0.1, 0.2, 0.9, 0.5], &[false, false, false, true]).expect("auc");
        assert!((auc - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(roc_auc(&[0.1], &[true]), None);
    }
}
