//! The Numenta Anomaly Benchmark (NAB) score.
//!
//! A detector gives every row of every file an anomaly score in [0, 1]; the labels are windows of
//! rows around each known anomaly. The score rewards early detections inside a window and charges
//! false positives and missed windows, per cost profile:
//!
//! - The first [`probation_rows`] of each file (15 %, at most 750 rows) are the detector's
//!   learning period and are not scored.
//! - Each scored row gets a weight. Inside a window of width `w` whose last row is `r`, row `i`
//!   sits at relative position `p = -(r - i + 1) / w` (from -1 at the left edge to -1/w at the
//!   right edge) and weighs `tp_weight * S(p) / S(-1)`, with [`scaled_sigmoid`]
//!   `S(p) = 2 / (1 + e^(5p)) - 1`. Outside windows a row weighs `fp_weight * S(d)` with
//!   `d = (i - r') / (w' - 1)` measured from the right edge `r'` of the previous window (width
//!   `w'`), so a false positive just after a window costs little and one far away costs about
//!   `fp_weight`; with no window before it, the row weighs `-fp_weight`.
//! - At a threshold `t`, rows with score `>= t` are detections. A window counts the best (the
//!   earliest) of its detections, or `-fn_weight` without one; every detection outside windows
//!   adds its (negative) weight.
//! - [`score_corpus`] picks, per profile, the one threshold that maximises the raw score summed
//!   over all files (NAB tunes it on the test corpus itself), then normalises:
//!   `100 * (S - S_null) / (S_perfect - S_null)`, with `S_perfect = tp_weight * windows` and
//!   `S_null` the score of a detector that never fires (`-fn_weight` per scored window).
//!
//! These rules follow NAB v1.1's `nab/sweeper.py`, `nab/runner.py` and `config/profiles.json`;
//! scoring NAB's published Windowed Gaussian results with them gives its published
//! 39.65 / 20.87 / 47.41 (a test of this module checks it when the data is present).

use super::{EvalError, Result};
use std::cmp::Ordering;

/// Share of each file NAB treats as the detector's learning period.
pub const PROBATION_PERCENT: f64 = 0.15;

/// Cost weights of one NAB application profile (`config/profiles.json`; NAB ignores the true
/// negative weight, so it is left out).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostProfile {
    /// Profile name as NAB spells it.
    pub name: &'static str,
    /// Reward of a detection at the left edge of a window.
    pub tp_weight: f64,
    /// Cost scale of a false positive.
    pub fp_weight: f64,
    /// Cost of a window without detection.
    pub fn_weight: f64,
}

impl CostProfile {
    /// NAB's `standard` profile.
    pub const STANDARD: Self = Self {
        name: "standard",
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 1.0,
    };
    /// NAB's `reward_low_FP_rate` profile: false positives cost twice as much.
    pub const REWARD_LOW_FP_RATE: Self = Self {
        name: "reward_low_FP_rate",
        tp_weight: 1.0,
        fp_weight: 0.22,
        fn_weight: 1.0,
    };
    /// NAB's `reward_low_FN_rate` profile: missed windows cost twice as much.
    pub const REWARD_LOW_FN_RATE: Self = Self {
        name: "reward_low_FN_rate",
        tp_weight: 1.0,
        fp_weight: 0.11,
        fn_weight: 2.0,
    };
    /// The three profiles of the NAB scoreboard, in its column order.
    pub const ALL: [Self; 3] = [
        Self::STANDARD,
        Self::REWARD_LOW_FP_RATE,
        Self::REWARD_LOW_FN_RATE,
    ];

    fn check(&self) -> Result<()> {
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if ok(self.tp_weight) && ok(self.fp_weight) && ok(self.fn_weight) {
            Ok(())
        } else {
            Err(EvalError::Param(format!(
                "profile {}: weights must be finite and >= 0",
                self.name
            )))
        }
    }
}

/// Rows of a file in its probation period: `min(floor(p * n), ceil(p * 5000))`, so 15 % of the
/// file but never more than 750 rows.
pub fn probation_rows(n_rows: usize, probation_percent: f64) -> usize {
    let share = (probation_percent * n_rows as f64).floor();
    // NAB compares `row >= p * 5000`, so a fractional cap rounds up.
    let cap = (probation_percent * 5000.0).ceil();
    share.min(cap).max(0.0) as usize
}

/// NAB's weighting curve `2 / (1 + e^(5x)) - 1`: 0.987 at -1, 0 at 0, -0.987 at 1, and exactly
/// -1 beyond 3.
pub fn scaled_sigmoid(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// A labelled anomaly window: rows `start..=end` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelWindow {
    /// First row (0-based).
    pub start: usize,
    /// Last row, inclusive.
    pub end: usize,
}

impl LabelWindow {
    /// The window over rows `start..=end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Number of rows.
    pub fn width(&self) -> usize {
        self.end + 1 - self.start
    }
}

/// Turns windows given as `[start, end]` times into row windows, as NAB does: each limit must
/// be the time of a row (NAB's labels name exact row timestamps), and the window runs from the
/// first row at its start time to the first row at its end time. Times need not be sorted (one
/// NAB file steps back an hour); an unknown limit is an error, so labels that do not belong to
/// the data are caught.
pub fn windows_from_times(
    file: &str,
    times: &[f64],
    limits: &[(f64, f64)],
) -> Result<Vec<LabelWindow>> {
    limits
        .iter()
        .enumerate()
        .map(|(index, &(t1, t2))| {
            let row = |t: f64| times.iter().position(|&x| x == t);
            match (row(t1), row(t2)) {
                (Some(start), Some(end)) if start <= end => Ok(LabelWindow::new(start, end)),
                (Some(start), Some(end)) => Err(EvalError::Window {
                    file: file.to_owned(),
                    index,
                    start,
                    end,
                    reason: "the end time comes before the start time",
                }),
                _ => Err(EvalError::Param(format!(
                    "{file}: window {index}: its start or end time is not the time of a row"
                ))),
            }
        })
        .collect()
}

/// One file of a corpus: a detector's score per row and the labelled windows.
#[derive(Debug, Clone, PartialEq)]
pub struct NabFile {
    name: String,
    scores: Vec<f64>,
    windows: Vec<LabelWindow>,
}

impl NabFile {
    /// Checks and bundles one file. Scores must be numbers in [0, 1]; windows must be non-empty,
    /// inside the file, sorted and disjoint.
    pub fn new(
        name: impl Into<String>,
        scores: Vec<f64>,
        windows: Vec<LabelWindow>,
    ) -> Result<Self> {
        let name = name.into();
        if let Some((row, &value)) = scores
            .iter()
            .enumerate()
            .find(|(_, s)| !(0.0..=1.0).contains(*s))
        {
            return Err(EvalError::Score {
                file: name,
                row,
                value,
            });
        }
        for (index, w) in windows.iter().enumerate() {
            let reason = if w.end < w.start {
                Some("end before start")
            } else if w.end >= scores.len() {
                Some("past the last row")
            } else if index > 0 && w.start <= windows[index - 1].end {
                Some("overlaps or precedes the previous window")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(EvalError::Window {
                    file: name,
                    index,
                    start: w.start,
                    end: w.end,
                    reason,
                });
            }
        }
        Ok(Self {
            name,
            scores,
            windows,
        })
    }

    /// File name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Anomaly score per row.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Labelled windows.
    pub fn windows(&self) -> &[LabelWindow] {
        &self.windows
    }
}

/// Row counts at a threshold, over scored (post-probation) rows: a row in a window is a true
/// positive when detected, else a false negative; outside windows a false positive or a true
/// negative. NAB reports these beside the score; the score itself counts windows, not rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Detected rows inside windows.
    pub tp: u64,
    /// Undetected rows outside windows.
    pub tn: u64,
    /// Detected rows outside windows.
    pub fp: u64,
    /// Undetected rows inside windows.
    pub fn_: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.tn += other.tn;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

/// Raw score of the corpus at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    /// Rows with a score `>=` this are detections (1.1 at the start of a sweep: none are).
    pub threshold: f64,
    /// Raw (unnormalised) score.
    pub score: f64,
    /// Row counts.
    pub counts: Counts,
}

/// Raw score of one file at the profile's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScore {
    /// File name.
    pub name: String,
    /// Raw score.
    pub score: f64,
    /// Row counts.
    pub counts: Counts,
}

/// The result of one profile over a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileReport {
    /// The profile.
    pub profile: CostProfile,
    /// The corpus-wide threshold that maximises the raw score.
    pub threshold: f64,
    /// Raw score at that threshold, summed over files.
    pub raw_score: f64,
    /// Raw score of a detector that never fires.
    pub null_score: f64,
    /// Raw score of a perfect detector (`tp_weight` per window).
    pub perfect_score: f64,
    /// `100 * (raw - null) / (perfect - null)`: 0 for the null detector, 100 for a perfect
    /// one; NaN when the corpus has no window.
    pub normalized: f64,
    /// Row counts summed over files.
    pub counts: Counts,
    /// Per-file raw scores at the threshold, in input order.
    pub files: Vec<FileScore>,
}

/// A scored row: its anomaly score, its weight under a profile and its window (corpus-wide id).
struct Scored {
    score: f64,
    weight: f64,
    window: Option<usize>,
}

/// The scored rows of one file under `profile`; window ids start at `window_offset`.
fn scored_rows(
    file: &NabFile,
    profile: &CostProfile,
    probation_percent: f64,
    window_offset: usize,
) -> Vec<Scored> {
    let n = file.scores.len();
    let probation = probation_rows(n, probation_percent);
    let max_tp = scaled_sigmoid(-1.0);
    let mut out = Vec::with_capacity(n.saturating_sub(probation));
    let mut next = 0; // index of the first window not yet left behind
    let mut previous: Option<LabelWindow> = None;
    for (i, &score) in file.scores.iter().enumerate() {
        while next < file.windows.len() && file.windows[next].end < i {
            previous = Some(file.windows[next]);
            next += 1;
        }
        let current = file.windows.get(next).filter(|w| w.start <= i);
        let weight = match (current, previous) {
            (Some(w), _) => {
                let p = -((w.end - i + 1) as f64) / w.width() as f64;
                scaled_sigmoid(p) * profile.tp_weight / max_tp
            }
            (None, None) => -profile.fp_weight,
            (None, Some(w)) => {
                // A one-row window divides by zero: the distance is infinite, the cost full.
                let d = (i - w.end) as f64 / (w.width() - 1) as f64;
                scaled_sigmoid(d) * profile.fp_weight
            }
        };
        // Weights are computed for probation rows too (a window may start inside it), but
        // those rows are not scored.
        if i >= probation {
            out.push(Scored {
                score,
                weight,
                window: current.map(|_| window_offset + next),
            });
        }
    }
    out
}

/// Score and counts when the rows with `score >= threshold` are detections.
fn score_at(
    rows: &[Scored],
    n_windows: usize,
    profile: &CostProfile,
    threshold: f64,
) -> (f64, Counts) {
    let mut best: Vec<Option<f64>> = vec![None; n_windows];
    let mut present = vec![false; n_windows];
    let mut fp_sum = 0.0;
    let mut counts = Counts::default();
    for r in rows {
        let detected = r.score >= threshold;
        match (r.window, detected) {
            (Some(w), true) => {
                present[w] = true;
                counts.tp += 1;
                best[w] = Some(best[w].map_or(r.weight, |b: f64| b.max(r.weight)));
            }
            (Some(w), false) => {
                present[w] = true;
                counts.fn_ += 1;
            }
            (None, true) => {
                counts.fp += 1;
                fp_sum += r.weight;
            }
            (None, false) => counts.tn += 1,
        }
    }
    let windows: f64 = best
        .iter()
        .zip(&present)
        .filter(|(_, &p)| p)
        .map(|(b, _)| b.unwrap_or(-profile.fn_weight))
        .sum();
    (fp_sum + windows, counts)
}

/// Raw score of one file at `threshold` (rows with score `>= threshold` are detections).
pub fn score_file(
    file: &NabFile,
    profile: &CostProfile,
    probation_percent: f64,
    threshold: f64,
) -> Result<FileScore> {
    profile.check()?;
    check_probation(probation_percent)?;
    let rows = scored_rows(file, profile, probation_percent, 0);
    let (score, counts) = score_at(&rows, file.windows.len(), profile, threshold);
    Ok(FileScore {
        name: file.name.clone(),
        score,
        counts,
    })
}

fn check_probation(p: f64) -> Result<()> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(EvalError::Param(format!(
            "probation_percent must be in [0, 1), got {p}"
        )))
    }
}

/// The raw corpus score at every distinct threshold, from 1.1 (no detection) down to the lowest
/// score (every row detected): NAB's sweep. Each entry's threshold is the lowest score still
/// detected, so the list is in decreasing threshold order.
pub fn sweep(
    files: &[NabFile],
    profile: &CostProfile,
    probation_percent: f64,
) -> Result<Vec<ThresholdScore>> {
    profile.check()?;
    check_probation(probation_percent)?;
    let mut rows = Vec::new();
    let mut offset = 0;
    for f in files {
        rows.extend(scored_rows(f, profile, probation_percent, offset));
        offset += f.windows.len();
    }
    let mut best: Vec<Option<f64>> = vec![None; offset];
    let mut present = vec![false; offset];
    let mut counts = Counts::default();
    for r in &rows {
        match r.window {
            Some(w) => {
                present[w] = true;
                counts.fn_ += 1;
            }
            None => counts.tn += 1,
        }
    }
    // Only windows with a scored row count: one wholly inside probation is not scored.
    let mut total = -profile.fn_weight * present.iter().filter(|&&p| p).count() as f64;
    // Highest scores first; the order among equal scores does not matter, since a threshold is
    // recorded only once all rows of its score are in.
    rows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut threshold = 1.1;
    for r in &rows {
        if r.score != threshold {
            out.push(ThresholdScore {
                threshold,
                score: total,
                counts,
            });
            threshold = r.score;
        }
        match r.window {
            Some(w) => {
                counts.tp += 1;
                counts.fn_ -= 1;
                match best[w] {
                    None => {
                        total += profile.fn_weight + r.weight;
                        best[w] = Some(r.weight);
                    }
                    Some(b) if r.weight > b => {
                        total += r.weight - b;
                        best[w] = Some(r.weight);
                    }
                    Some(_) => {}
                }
            }
            None => {
                counts.fp += 1;
                counts.tn -= 1;
                total += r.weight;
            }
        }
    }
    out.push(ThresholdScore {
        threshold,
        score: total,
        counts,
    });
    Ok(out)
}

/// Scores a corpus under each profile: the best corpus-wide threshold, the raw, null, perfect
/// and normalised scores, and each file's share.
///
/// Ties between thresholds go to the highest one (the first met in the sweep), as in NAB.
pub fn score_corpus(
    files: &[NabFile],
    profiles: &[CostProfile],
    probation_percent: f64,
) -> Result<Vec<ProfileReport>> {
    profiles
        .iter()
        .map(|profile| {
            let curve = sweep(files, profile, probation_percent)?;
            let best = curve
                .iter()
                .copied()
                .reduce(|a, b| match b.score.partial_cmp(&a.score) {
                    Some(Ordering::Greater) => b,
                    _ => a,
                })
                .ok_or_else(|| EvalError::Param("empty sweep".to_owned()))?;
            let null_score = curve[0].score;
            let n_windows: usize = files.iter().map(|f| f.windows.len()).sum();
            let perfect_score = profile.tp_weight * n_windows as f64;
            let mut counts = Counts::default();
            let per_file = files
                .iter()
                .map(|f| {
                    let s = score_file(f, profile, probation_percent, best.threshold)?;
                    counts.add(s.counts);
                    Ok(s)
                })
                .collect::<Result<Vec<_>>>()?;
            let normalized = if perfect_score > null_score {
                100.0 * (best.score - null_score) / (perfect_score - null_score)
            } else {
                f64::NAN
            };
            Ok(ProfileReport {
                profile: *profile,
                threshold: best.threshold,
                raw_score: best.score,
                null_score,
                perfect_score,
                normalized,
                counts,
                files: per_file,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPS: f64 = 1e-12;

    #[test]
    fn sigmoid_matches_nab_anchor_values() {
        assert!((scaled_sigmoid(-1.0) - 0.986_614_298_151_430_3).abs() < EPS);
        assert!((scaled_sigmoid(-0.5) - 0.848_283_639_957_512_9).abs() < EPS);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.986_614_298_151_430_3).abs() < EPS);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
        assert_eq!(scaled_sigmoid(f64::INFINITY), -1.0);
    }

    #[test]
    fn probation_is_15_percent_capped_at_750() {
        assert_eq!(probation_rows(100, 0.15), 15);
        assert_eq!(probation_rows(4032, 0.15), 604);
        assert_eq!(probation_rows(22_695, 0.15), 750);
        assert_eq!(probation_rows(10, 0.0), 0);
    }

    fn file(scores: Vec<f64>, windows: Vec<LabelWindow>) -> NabFile {
        NabFile::new("f", scores, windows).expect("valid file")
    }

    /// 20 rows, no probation, one window over rows 10..=14 (width 5). The standard profile.
    fn one_window(detect: &[usize]) -> f64 {
        let mut scores = vec![0.0; 20];
        for &i in detect {
            scores[i] = 1.0;
        }
        let f = file(scores, vec![LabelWindow::new(10, 14)]);
        score_file(&f, &CostProfile::STANDARD, 0.0, 0.5)
            .expect("score")
            .score
    }

    #[test]
    fn window_weights_by_hand() {
        let max_tp = scaled_sigmoid(-1.0);
        // No detection: one missed window.
        assert_eq!(one_window(&[]), -1.0);
        // Left edge: p = -(14 - 10 + 1) / 5 = -1, full reward.
        assert!((one_window(&[10]) - 1.0).abs() < EPS);
        // Row 12: p = -(14 - 12 + 1) / 5 = -0.6.
        assert!((one_window(&[12]) - scaled_sigmoid(-0.6) / max_tp).abs() < EPS);
        // Right edge: p = -1/5.
        assert!((one_window(&[14]) - scaled_sigmoid(-0.2) / max_tp).abs() < EPS);
        // Only the earliest detection counts.
        assert!((one_window(&[12, 13, 14]) - scaled_sigmoid(-0.6) / max_tp).abs() < EPS);
        // Before any window: a full -0.11; the window is still missed.
        assert!((one_window(&[3]) - (-1.0 - 0.11)).abs() < EPS);
        // Two rows after the window: d = (16 - 14) / (5 - 1) = 0.5.
        let fp = 0.11 * scaled_sigmoid(0.5);
        assert!((one_window(&[16]) - (-1.0 + fp)).abs() < EPS);
        // Five rows after: d = 5 / 4 = 1.25.
        assert!((one_window(&[19]) - (-1.0 + 0.11 * scaled_sigmoid(1.25))).abs() < EPS);
    }

    #[test]
    fn probation_rows_are_not_scored() {
        // 100 rows: probation 15. A detection at row 5 costs nothing.
        let mut scores = vec![0.0; 100];
        scores[5] = 1.0;
        scores[60] = 1.0;
        let f = file(scores, vec![LabelWindow::new(60, 69)]);
        let s = score_file(&f, &CostProfile::STANDARD, 0.15, 1.0).expect("score");
        assert!((s.score - 1.0).abs() < EPS);
        assert_eq!(
            s.counts,
            Counts {
                tp: 1,
                tn: 75,
                fp: 0,
                fn_: 9
            }
        );
    }

    #[test]
    fn sweep_by_hand() {
        // 20 rows, no probation, window 10..=14. Scores: row 12 = 0.9, row 3 = 0.8, row 10 = 0.7.
        let mut scores = vec![0.0; 20];
        scores[12] = 0.9;
        scores[3] = 0.8;
        scores[10] = 0.7;
        let f = file(scores, vec![LabelWindow::new(10, 14)]);
        let p = CostProfile::STANDARD;
        let curve = sweep(std::slice::from_ref(&f), &p, 0.0).expect("sweep");
        let max_tp = scaled_sigmoid(-1.0);
        let at_09 = scaled_sigmoid(-0.6) / max_tp;
        let expected = [
            (1.1, -1.0),
            (0.9, at_09),
            (0.8, at_09 - 0.11),
            (0.7, 1.0 - 0.11),
        ];
        assert_eq!(curve.len(), 5);
        for (got, (t, s)) in curve.iter().zip(expected) {
            assert_eq!(got.threshold, t);
            assert!((got.score - s).abs() < EPS, "{got:?} vs {s}");
        }
        // Threshold 0 detects everything: the 15 rows outside the window all count.
        let last = curve[4];
        assert_eq!(last.threshold, 0.0);
        assert_eq!(
            last.counts,
            Counts {
                tp: 5,
                tn: 0,
                fp: 15,
                fn_: 0
            }
        );
        // The best threshold is 0.9 (0.917 beats 0.89 at 0.7): normalised (0.917 + 1) / 2.
        let report = score_corpus(std::slice::from_ref(&f), &[p], 0.0).expect("score");
        assert_eq!(report[0].threshold, 0.9);
        assert!((report[0].raw_score - at_09).abs() < EPS);
        assert_eq!(report[0].null_score, -1.0);
        assert_eq!(report[0].perfect_score, 1.0);
        assert!((report[0].normalized - 50.0 * (at_09 + 1.0)).abs() < 1e-9);
        assert!((report[0].files[0].score - at_09).abs() < EPS);
    }

    #[test]
    fn sweep_agrees_with_direct_scoring_at_every_threshold() {
        let scores: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let windows = vec![
            LabelWindow::new(40, 59),
            LabelWindow::new(120, 120),
            LabelWindow::new(150, 179),
        ];
        let f = file(scores, windows);
        for p in CostProfile::ALL {
            for ts in sweep(std::slice::from_ref(&f), &p, 0.15).expect("sweep") {
                let direct = score_file(&f, &p, 0.15, ts.threshold).expect("score");
                assert!(
                    (direct.score - ts.score).abs() < 1e-9,
                    "{p:?} {ts:?} {direct:?}"
                );
                assert_eq!(direct.counts, ts.counts);
            }
        }
    }

    #[test]
    fn corpus_threshold_is_shared_across_files() {
        // File a: a window detected at 0.6. File b: a false positive at 0.8 and no window.
        let mut a = vec![0.0; 40];
        a[20] = 0.6;
        let mut b = vec![0.0; 40];
        b[30] = 0.8;
        let files = [file(a, vec![LabelWindow::new(20, 29)]), file(b, vec![])];
        let report = score_corpus(&files, &[CostProfile::STANDARD], 0.0).expect("score");
        // Threshold 0.6 catches the window (+1) and pays the far false positive (-0.11).
        assert_eq!(report[0].threshold, 0.6);
        assert!((report[0].raw_score - 0.89).abs() < EPS);
        assert!((report[0].files[1].score + 0.11).abs() < EPS);
    }

    #[test]
    fn low_fn_profile_doubles_the_miss() {
        let f = file(vec![0.0; 30], vec![LabelWindow::new(20, 24)]);
        let r = score_corpus(&[f], &CostProfile::ALL, 0.0).expect("score");
        assert_eq!((r[0].null_score, r[2].null_score), (-1.0, -2.0));
        // A constant score still has one threshold that fires everywhere: the 20 rows before
        // the window cost 2.2, the window is caught at its left edge (+1), the 5 rows after
        // cost a little. Worse than silence (-1) for the standard profile, better than a miss
        // that costs 2.
        let after: f64 = (25..30)
            .map(|i| 0.11 * scaled_sigmoid((i - 24) as f64 / 4.0))
            .sum();
        let everywhere = -2.2 + 1.0 + after;
        assert!(everywhere < -1.0 && everywhere > -2.0);
        assert_eq!(r[0].threshold, 1.1);
        assert_eq!(r[0].normalized, 0.0);
        assert_eq!(r[2].threshold, 0.0);
        assert!((r[2].raw_score - everywhere).abs() < EPS);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            NabFile::new("x", vec![0.2, f64::NAN], vec![]),
            Err(EvalError::Score { row: 1, .. })
        ));
        assert!(matches!(
            NabFile::new("x", vec![0.2, 1.5], vec![]),
            Err(EvalError::Score { row: 1, .. })
        ));
        assert!(matches!(
            NabFile::new("x", vec![0.0; 5], vec![LabelWindow::new(3, 5)]),
            Err(EvalError::Window { index: 0, .. })
        ));
        assert!(matches!(
            NabFile::new(
                "x",
                vec![0.0; 10],
                vec![LabelWindow::new(3, 5), LabelWindow::new(5, 6)]
            ),
            Err(EvalError::Window { index: 1, .. })
        ));
    }

    #[test]
    fn windows_from_times_finds_rows() {
        let times = [0.0, 60.0, 120.0, 180.0, 240.0];
        let w = windows_from_times("f", &times, &[(60.0, 180.0), (240.0, 240.0)]).expect("ok");
        assert_eq!(w, vec![LabelWindow::new(1, 3), LabelWindow::new(4, 4)]);
        assert!(windows_from_times("f", &times, &[(61.0, 120.0)]).is_err());
        assert!(windows_from_times("f", &times, &[(180.0, 60.0)]).is_err());
        // A step back in time does not matter; the first row at each time does.
        let w = windows_from_times("f", &[0.0, 60.0, 0.0, 120.0], &[(60.0, 120.0)]).expect("ok");
        assert_eq!(w, vec![LabelWindow::new(1, 3)]);
    }
}
