//! Rolling robust z-score: median and MAD of the last `window` values of each feature.

use super::{check_row, ensure, score_series, StreamParamsError};
use crate::persist::StateError;
use crate::Result;
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};

/// Scale of the MAD that makes it estimate the standard deviation of a normal distribution
/// (1 / Phi^-1(3/4)).
const MAD_TO_SIGMA: f64 = 1.4826;

/// Checked [`RobustZScore`] parameters; [`build`](Self::build) starts a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustZScoreValidParams {
    window: usize,
    warm_up: usize,
    mad_floor: f64,
    threshold: f64,
}

impl RobustZScoreValidParams {
    /// Values per feature the median and MAD are taken over.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Rows seen before the first non-zero score.
    pub fn warm_up(&self) -> usize {
        self.warm_up
    }

    /// Smallest MAD divided by, so constant stretches do not divide by zero.
    pub fn mad_floor(&self) -> f64 {
        self.mad_floor
    }

    /// Scores above this are anomalous.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// A detector for rows of `n_features` values (at least 1).
    pub fn build(&self, n_features: usize) -> Result<RobustZScore> {
        ensure(n_features >= 1, "n_features", ">= 1", n_features as f64)?;
        Ok(RobustZScore {
            params: self.clone(),
            windows: (0..n_features)
                .map(|_| SortedWindow::new(self.window))
                .collect(),
            seen: 0,
        })
    }
}

/// Unchecked [`RobustZScore`] parameters, from [`RobustZScore::params`].
///
/// Defaults: a window of 288 values (a day of NAB's five-minute series), 48 rows of warm-up, MAD
/// floor 1e-9, threshold 3.5 (Iglewicz and Hoaglin's cut for the modified z-score).
#[derive(Debug, Clone, PartialEq)]
pub struct RobustZScoreParams(RobustZScoreValidParams);

impl Default for RobustZScoreParams {
    fn default() -> Self {
        Self(RobustZScoreValidParams {
            window: 288,
            warm_up: 48,
            mad_floor: 1e-9,
            threshold: 3.5,
        })
    }
}

impl RobustZScoreParams {
    /// The defaults; the same as [`RobustZScore::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Values per feature in the rolling window, in [3, 1_000_000].
    pub fn window(mut self, w: usize) -> Self {
        self.0.window = w;
        self
    }

    /// Rows learnt before scoring starts (scores are 0 until then), in [3, window].
    pub fn warm_up(mut self, n: usize) -> Self {
        self.0.warm_up = n;
        self
    }

    /// Smallest MAD used, finite and > 0.
    pub fn mad_floor(mut self, f: f64) -> Self {
        self.0.mad_floor = f;
        self
    }

    /// Alarm level of the score, finite and > 0.
    pub fn threshold(mut self, t: f64) -> Self {
        self.0.threshold = t;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&RobustZScoreValidParams, StreamParamsError> {
        let p = &self.0;
        let w = p.window as f64;
        ensure(
            (3..=1_000_000).contains(&p.window),
            "window",
            "in [3, 1000000]",
            w,
        )?;
        ensure(
            p.warm_up >= 3 && p.warm_up <= p.window,
            "warm_up",
            "in [3, window]",
            p.warm_up as f64,
        )?;
        ensure(
            p.mad_floor.is_finite() && p.mad_floor > 0.0,
            "mad_floor",
            "finite and > 0",
            p.mad_floor,
        )?;
        ensure(
            p.threshold.is_finite() && p.threshold > 0.0,
            "threshold",
            "finite and > 0",
            p.threshold,
        )?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<RobustZScoreValidParams, StreamParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters and builds a detector for rows of `n_features` values.
    pub fn build(&self, n_features: usize) -> Result<RobustZScore> {
        self.check_ref()?.build(n_features)
    }
}

/// Rolling robust z-score.
///
/// For each feature the detector keeps the last `window` values twice: in arrival order (a ring)
/// and sorted (binary-search insert and remove; the `O(window)` shift is a memmove, cheap for
/// windows up to a few thousand and simpler than a skip list). The median is read off the sorted
/// buffer; the MAD is the k-th smallest of two sorted sequences (deviations left and right of the
/// median), found by binary search in `O(log window)`. A row's score is the largest over its
/// features of `|x - median| / (1.4826 * max(MAD, mad_floor))`, computed against the window
/// before the row joins it; the first `warm_up` rows score 0.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustZScore {
    params: RobustZScoreValidParams,
    windows: Vec<SortedWindow>,
    seen: usize,
}

impl RobustZScore {
    /// Default parameters, to adjust and then [`build`](RobustZScoreParams::build).
    pub fn params() -> RobustZScoreParams {
        RobustZScoreParams::default()
    }

    /// The parameters the detector runs with.
    pub fn valid_params(&self) -> &RobustZScoreValidParams {
        &self.params
    }

    /// Median of the current window of feature `j`, `None` before any row or past the features.
    pub fn median(&self, j: usize) -> Option<f64> {
        self.windows.get(j).and_then(SortedWindow::median)
    }

    /// MAD (unscaled) of the current window of feature `j`, `None` before any row or past the
    /// features.
    pub fn mad(&self, j: usize) -> Option<f64> {
        self.windows.get(j).and_then(SortedWindow::mad)
    }

    /// Scores the rows of `x` in order, learning from each; see [`super::score_series`].
    pub fn score_series(&mut self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        score_series(self, x)
    }
}

impl StreamingDetector for RobustZScore {
    fn n_features(&self) -> usize {
        self.windows.len()
    }

    fn update(&mut self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        let score = self.score(row)?;
        for (w, &x) in self.windows.iter_mut().zip(row) {
            w.push(x);
        }
        self.seen = self.seen.saturating_add(1);
        Ok(score)
    }

    fn score(&self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.windows.len())?;
        let mut score = 0.0f64;
        if self.seen >= self.params.warm_up {
            for (w, &x) in self.windows.iter().zip(row) {
                if let (Some(med), Some(mad)) = (w.median(), w.mad()) {
                    let scale = MAD_TO_SIGMA * mad.max(self.params.mad_floor);
                    score = score.max((x - med).abs() / scale);
                }
            }
        }
        Ok(score)
    }

    fn threshold(&self) -> f64 {
        self.params.threshold
    }
}

/// The last `cap` values, in arrival order and sorted. Both buffers are allocated once.
#[derive(Debug, PartialEq)]
struct SortedWindow {
    /// Values kept. Held apart from the buffers' capacity, which a clone does not preserve and
    /// `Vec` may round up.
    cap: usize,
    ring: Vec<f64>,
    /// Next slot of `ring` to overwrite once it is full.
    head: usize,
    sorted: Vec<f64>,
}

impl Clone for SortedWindow {
    /// A copy with buffers of the full window, so that it too never allocates per row.
    fn clone(&self) -> Self {
        let copy = |v: &Vec<f64>| {
            let mut c = Vec::with_capacity(self.cap);
            c.extend_from_slice(v);
            c
        };
        Self {
            cap: self.cap,
            ring: copy(&self.ring),
            head: self.head,
            sorted: copy(&self.sorted),
        }
    }
}

impl SortedWindow {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            ring: Vec::with_capacity(cap),
            head: 0,
            sorted: Vec::with_capacity(cap),
        }
    }

    /// Adds a finite value, dropping the oldest when full.
    fn push(&mut self, x: f64) {
        if self.ring.len() < self.cap {
            self.ring.push(x);
        } else {
            let old = std::mem::replace(&mut self.ring[self.head], x);
            self.head = (self.head + 1) % self.ring.len();
            // Values are finite, so the first element not below `old` is `old` itself.
            let at = self.sorted.partition_point(|&v| v < old);
            self.sorted.remove(at);
        }
        let at = self.sorted.partition_point(|&v| v < x);
        self.sorted.insert(at, x);
    }

    fn median(&self) -> Option<f64> {
        let s = &self.sorted;
        let n = s.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(s[n / 2]),
            _ => Some(0.5 * (s[n / 2 - 1] + s[n / 2])),
        }
    }

    /// Median absolute deviation from the median.
    ///
    /// With `h = n / 2`, every value below index `h` is at most the median and every value from
    /// `h` on at least it, so the deviations `m - s[h-1-i]` and `s[h+i] - m` are two
    /// non-decreasing sequences; the MAD is the median of their union.
    fn mad(&self) -> Option<f64> {
        let m = self.median()?;
        let s = &self.sorted;
        let n = s.len();
        let h = n / 2;
        let left = |i: usize| m - s[h - 1 - i];
        let right = |i: usize| s[h + i] - m;
        let kth = |k: usize| kth_of_two(h, left, n - h, right, k);
        Some(if n % 2 == 1 {
            kth(n / 2)
        } else {
            0.5 * (kth(n / 2 - 1) + kth(n / 2))
        })
    }
}

/// The `k`-th smallest (0-based, `k < len_a + len_b`) of the union of two non-decreasing
/// sequences given by accessors, by binary search on how many come from `a`.
fn kth_of_two(
    len_a: usize,
    a: impl Fn(usize) -> f64,
    len_b: usize,
    b: impl Fn(usize) -> f64,
    k: usize,
) -> f64 {
    let take = k + 1;
    let mut lo = take.saturating_sub(len_b);
    let mut hi = take.min(len_a);
    loop {
        let i = lo + (hi - lo) / 2;
        let j = take - i;
        if i < len_a && j > 0 && b(j - 1) > a(i) {
            lo = i + 1;
        } else if i > 0 && j < len_b && a(i - 1) > b(j) {
            hi = i - 1;
        } else {
            let from_a = if i > 0 { a(i - 1) } else { f64::NEG_INFINITY };
            let from_b = if j > 0 { b(j - 1) } else { f64::NEG_INFINITY };
            return from_a.max(from_b);
        }
    }
}

impl SortedWindow {
    /// The values kept, oldest first.
    fn in_order(&self) -> Vec<f64> {
        let (newer, older) = self.ring.split_at(self.head);
        older.iter().chain(newer).copied().collect()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RobustZScoreState {
    window: usize,
    warm_up: usize,
    mad_floor: f64,
    threshold: f64,
    seen: usize,
    /// Per feature, the values of its window, oldest first.
    values: Vec<Vec<f64>>,
}

impl crate::persist::Persist for RobustZScore {
    const KIND: &'static str = "robust_zscore";
    type State = RobustZScoreState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.windows.len())
    }

    fn n_training_rows(&self) -> Option<usize> {
        Some(self.seen)
    }

    fn state(&self) -> RobustZScoreState {
        let p = &self.params;
        RobustZScoreState {
            window: p.window,
            warm_up: p.warm_up,
            mad_floor: p.mad_floor,
            threshold: p.threshold,
            seen: self.seen,
            values: self.windows.iter().map(SortedWindow::in_order).collect(),
        }
    }

    fn from_state(
        s: RobustZScoreState,
        names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        if s.values.is_empty() || s.values.len() != names.len() {
            return Err(StateError::new(
                "values",
                format!(
                    "{} windows of values for {} features",
                    s.values.len(),
                    names.len()
                ),
            ));
        }
        let mut det = RobustZScore::params()
            .window(s.window)
            .warm_up(s.warm_up)
            .mad_floor(s.mad_floor)
            .threshold(s.threshold)
            .build(s.values.len())
            .map_err(StateError::params)?;
        // A window holds the latest rows: as many as were seen, up to its length.
        let kept = s.seen.min(s.window);
        for (w, values) in det.windows.iter_mut().zip(&s.values) {
            if values.len() != kept {
                return Err(StateError::new(
                    "values",
                    format!(
                        "every window must hold min(rows seen {}, window {}) = {kept} values, \
                     got {}",
                        s.seen,
                        s.window,
                        values.len()
                    ),
                ));
            }
            if values.iter().any(|v| !v.is_finite()) {
                return Err(StateError::new("values", "window values must be finite"));
            }
            values.iter().for_each(|&v| w.push(v));
        }
        det.seen = s.seen;
        Ok(det)
    }
}

crate::persist::persistable!(RobustZScore);

impl super::registry::Registered for RobustZScore {
    const NAME: &'static str = "robust_zscore";
    const SUMMARY: &'static str = "Streaming robust z-score (rolling median / MAD)";
    type Params = RobustZScoreParams;

    fn build(params: &RobustZScoreParams, n_features: usize) -> Result<Self> {
        params.build(n_features)
    }

    fn valid(&self) -> &RobustZScoreValidParams {
        self.valid_params()
    }

    fn nab_params() -> RobustZScoreParams {
        RobustZScore::params().window(1000)
    }
}

super::registry::keyed_params!(RobustZScoreParams => RobustZScoreValidParams {
    "window" => window,
    "warm_up" => warm_up,
    "mad_floor" => mad_floor,
    "threshold" => threshold,
});

#[cfg(test)]
mod tests {
    use super::super::test_util::{
        assert_deterministic, assert_flags_changes, behaviour, gaussian, run,
    };
    use super::*;

    #[test]
    fn a_clone_scores_as_the_original() {
        // Clones taken empty, while filling and once full carry on exactly as the original.
        let xs = gaussian(200, 9);
        for start in [0, 7, 50] {
            let mut original = RobustZScore::params()
                .window(20)
                .warm_up(5)
                .build(1)
                .expect("build");
            run(&mut original, &xs[..start]);
            let mut copy = original.clone();
            assert_eq!(copy, original);
            assert_eq!(
                run(&mut copy, &xs[start..]),
                run(&mut original, &xs[start..])
            );
        }
    }

    fn median_of(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    }

    #[test]
    fn rolling_median_and_mad_match_a_full_sort() {
        // Rounded values make ties, the case a binary search gets wrong first.
        let xs: Vec<f64> = gaussian(700, 3).iter().map(|x| (x * 4.0).round()).collect();
        for cap in [3, 4, 5, 50, 51] {
            let mut w = SortedWindow::new(cap);
            for (t, &x) in xs.iter().enumerate() {
                w.push(x);
                let mut last: Vec<f64> = xs[(t + 1).saturating_sub(cap)..=t].to_vec();
                let med = median_of(&mut last);
                let mut dev: Vec<f64> = last.iter().map(|v| (v - med).abs()).collect();
                let mad = median_of(&mut dev);
                assert_eq!(w.median(), Some(med), "cap {cap}, t {t}");
                assert_eq!(w.mad(), Some(mad), "cap {cap}, t {t}");
            }
        }
        assert_eq!(SortedWindow::new(3).mad(), None);
    }

    #[test]
    fn known_window_values() {
        let mut det = RobustZScore::params()
            .window(5)
            .warm_up(5)
            .build(1)
            .expect("build");
        for x in [1.0, 2.0, 3.0, 4.0, 100.0] {
            assert_eq!(det.update(&[x]).expect("row"), 0.0);
        }
        // Window {1, 2, 3, 4, 100}: median 3, deviations {2, 1, 0, 1, 97}, MAD 1.
        assert_eq!(det.median(0), Some(3.0));
        assert_eq!(det.mad(0), Some(1.0));
        let s = det.update(&[6.0]).expect("row");
        assert!((s - 3.0 / 1.4826).abs() < 1e-12);
        // 1 left the window: {2, 3, 4, 100, 6}.
        assert_eq!(det.median(0), Some(4.0));
    }

    #[test]
    fn same_rows_same_scores() {
        assert_deterministic(|| Box::new(RobustZScore::params().build(1).expect("build")));
    }

    #[test]
    fn flags_spike_shift_and_variance_change() {
        let b = behaviour(|| Box::new(RobustZScore::params().build(1).expect("build")));
        println!("RobustZScore {b:?}");
        assert_flags_changes(&b);
    }

    #[test]
    fn multivariate_score_is_the_largest_feature_score() {
        let mut both = RobustZScore::params().build(2).expect("build");
        let mut first = RobustZScore::params().build(1).expect("build");
        let mut second = RobustZScore::params().build(1).expect("build");
        let a = gaussian(400, 1);
        let b = gaussian(400, 2);
        for (&x, &y) in a.iter().zip(&b) {
            let s = both.update(&[x, y]).expect("row");
            let s1 = first.update(&[x]).expect("row");
            let s2 = second.update(&[y]).expect("row");
            assert_eq!(s, s1.max(s2));
        }
    }

    #[test]
    fn constant_stream_uses_the_floor() {
        let mut det = RobustZScore::params()
            .window(10)
            .warm_up(5)
            .build(1)
            .expect("build");
        let scores = run(&mut det, &[2.0; 20]);
        assert!(scores.iter().all(|&s| s == 0.0));
        let s = det.update(&[2.5]).expect("row");
        assert!(s.is_finite() && s > 1e6);
    }

    #[test]
    fn bad_rows_leave_the_state_alone() {
        let mut det = RobustZScore::params().build(2).expect("build");
        det.update(&[1.0, 2.0]).expect("row");
        let before = det.clone();
        assert_eq!(
            det.update(&[1.0]),
            Err(detector::DetectError::FeatureCount {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            det.update(&[1.0, f64::NAN]),
            Err(detector::DetectError::NotFinite { row: 0, col: 1 })
        );
        assert_eq!(det, before);
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let err = |p: RobustZScoreParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = RobustZScore::params;
        assert_eq!(err(p()), "accepted");
        assert_eq!(err(p().window(2)), "window must be in [3, 1000000], got 2");
        assert_eq!(
            err(p().window(10).warm_up(11)),
            "warm_up must be in [3, window], got 11"
        );
        assert_eq!(
            err(p().mad_floor(0.0)),
            "mad_floor must be finite and > 0, got 0"
        );
        assert_eq!(
            err(p().threshold(f64::NAN)),
            "threshold must be finite and > 0, got NaN"
        );
        assert_eq!(
            p().build(0).map(|_| ()).map_err(|e| e.to_string()),
            Err("invalid parameter: n_features must be >= 1, got 0".to_owned())
        );
    }
}
