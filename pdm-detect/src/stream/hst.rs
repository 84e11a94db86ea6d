//! Streaming half-space trees (Tan, Ting & Liu, "Fast anomaly detection for streaming data",
//! IJCAI 2011).

use super::{check_feature_ranges, check_row, ensure, score_series, StreamParamsError};
use crate::persist::StateError;
use crate::Result;
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::hash::{BuildHasher, Hasher};

/// Deepest trees accepted: a tree has `2^(height+1) - 1` nodes, and 2^20 per tree is already
/// tens of megabytes over a forest.
const MAX_HEIGHT: usize = 20;

/// Most mass counters, or buffered first-window values, a detector allocates (2^27: half a
/// gibibyte of counters per profile, one gibibyte of values).
const MAX_CELLS: usize = 1 << 27;

/// Checked [`HalfSpaceTrees`] parameters; [`build`](Self::build) starts a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfSpaceTreesValidParams {
    n_trees: usize,
    height: usize,
    window_size: usize,
    size_limit: f64,
    threshold: f64,
    feature_ranges: Option<Vec<(f64, f64)>>,
    random_state: Option<u64>,
}

impl HalfSpaceTreesValidParams {
    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.n_trees
    }

    /// Depth of the trees (a root alone has height 0).
    pub fn height(&self) -> usize {
        self.height
    }

    /// Rows per window.
    pub fn window_size(&self) -> usize {
        self.window_size
    }

    /// Reference mass under which a path stops, as a fraction of the window.
    pub fn size_limit(&self) -> f64 {
        self.size_limit
    }

    /// Scores above this are anomalous.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Given working ranges, one `(min, max)` per feature; `None` learns them from the first
    /// window.
    pub fn feature_ranges(&self) -> Option<&[(f64, f64)]> {
        self.feature_ranges.as_deref()
    }

    /// Seed of the trees; `None` seeds from the process's random keys.
    pub fn random_state(&self) -> Option<u64> {
        self.random_state
    }

    /// A detector for rows of `n_features` values (at least 1, and as many as given ranges).
    pub fn build(&self, n_features: usize) -> Result<HalfSpaceTrees> {
        ensure(n_features >= 1, "n_features", ">= 1", n_features as f64)?;
        ensure(
            n_features <= u32::MAX as usize,
            "n_features",
            "<= 2^32 - 1",
            n_features as f64,
        )?;
        // Memory is allocated up front (no allocation per row), so refuse sizes that could not be:
        // the two mass profiles, and the first window's rows when ranges are learnt.
        ensure(
            self.n_trees << (self.height + 1) <= MAX_CELLS,
            "n_trees * 2^(height + 1)",
            "<= 2^27",
            (self.n_trees << (self.height + 1)) as f64,
        )?;
        if self.feature_ranges.is_none() {
            let values = self.window_size.saturating_mul(n_features);
            ensure(
                values <= MAX_CELLS,
                "window_size * n_features",
                "<= 2^27 without feature_ranges",
                values as f64,
            )?;
        }
        let (lo, span, ranges_ready) = match &self.feature_ranges {
            Some(r) if r.len() != n_features => {
                return Err(StreamParamsError::FeatureRangesCount {
                    got: r.len(),
                    n_features,
                }
                .into())
            }
            Some(r) => (
                r.iter().map(|&(a, _)| a).collect(),
                r.iter().map(|&(a, b)| b - a).collect(),
                true,
            ),
            None => (vec![0.0; n_features], vec![1.0; n_features], false),
        };
        let n_internal = (1usize << self.height) - 1;
        let n_nodes = (1usize << (self.height + 1)) - 1;
        let mut rng = StdRng::seed_from_u64(self.random_state.unwrap_or_else(entropy));
        let mut split_dim = Vec::with_capacity(self.n_trees * n_internal);
        let mut split_value = Vec::with_capacity(self.n_trees * n_internal);
        for _ in 0..self.n_trees {
            grow_tree(
                &mut rng,
                n_features,
                self.height,
                &mut split_dim,
                &mut split_value,
            );
        }
        Ok(HalfSpaceTrees {
            // A row must reach a mass of `size_limit * window` to go deeper; masses are counts.
            size_limit: self.size_limit * self.window_size as f64,
            params: self.clone(),
            n_features,
            n_internal,
            n_nodes,
            split_dim,
            split_value,
            reference: vec![0; self.n_trees * n_nodes],
            latest: vec![0; self.n_trees * n_nodes],
            lo,
            span,
            ranges_ready,
            first_window: if ranges_ready {
                Vec::new()
            } else {
                Vec::with_capacity(self.window_size * n_features)
            },
            scaled: vec![0.0; n_features],
            in_window: 0,
            windows_done: 0,
        })
    }
}

/// Grows one tree over the unit workspace and appends its internal nodes in heap order (children
/// of node `i` at `2i + 1` and `2i + 2`).
///
/// As in the paper: per dimension a random `s` in [0, 1] and `w = 2 max(s, 1 - s)` make the
/// workspace `[s - w, s + w]`, which covers [0, 1] with room on both sides; each node splits a
/// random dimension at the middle of its current workspace.
fn grow_tree(
    rng: &mut StdRng,
    n_features: usize,
    height: usize,
    split_dim: &mut Vec<u32>,
    split_value: &mut Vec<f64>,
) {
    let mut mins = Vec::with_capacity(n_features);
    let mut maxs = Vec::with_capacity(n_features);
    for _ in 0..n_features {
        let s: f64 = rng.random();
        let w = 2.0 * s.max(1.0 - s);
        mins.push(s - w);
        maxs.push(s + w);
    }
    let start = split_dim.len();
    let n_internal = (1usize << height) - 1;
    split_dim.resize(start + n_internal, 0);
    split_value.resize(start + n_internal, 0.0);
    // Depth-first with an explicit stack of (node, its workspace); building happens once.
    let mut stack = vec![(0usize, mins, maxs)];
    while let Some((node, mins, maxs)) = stack.pop() {
        if node >= n_internal {
            continue;
        }
        let q = rng.random_range(0..n_features);
        let mid = 0.5 * (mins[q] + maxs[q]);
        split_dim[start + node] = q as u32;
        split_value[start + node] = mid;
        let (mut left_max, mut right_min) = (maxs.clone(), mins.clone());
        left_max[q] = mid;
        right_min[q] = mid;
        stack.push((2 * node + 2, right_min, maxs));
        stack.push((2 * node + 1, mins, left_max));
    }
}

/// A seed nobody chose, for trees without `random_state`: std's per-process random hash keys
/// (rand's OS entropy source is not among this crate's features). The Isolation Forest has the
/// same helper, private to its module.
fn entropy() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x4a5f);
    h.finish()
}

/// Unchecked [`HalfSpaceTrees`] parameters, from [`HalfSpaceTrees::params`].
///
/// Defaults: 25 trees, windows of 250 rows and a size limit of 0.1 window (the paper's settings),
/// height 10 (the paper has 15: paths of a 250-row window rarely need more than 10 levels before
/// their mass falls under the size limit, scores on NAB were the same, and the mass profiles, reset
/// every window, are 32 times smaller), threshold 0.8, ranges from the first window, no fixed
/// seed.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfSpaceTreesParams(HalfSpaceTreesValidParams);

impl Default for HalfSpaceTreesParams {
    fn default() -> Self {
        Self(HalfSpaceTreesValidParams {
            n_trees: 25,
            height: 10,
            window_size: 250,
            size_limit: 0.1,
            threshold: 0.8,
            feature_ranges: None,
            random_state: None,
        })
    }
}

impl HalfSpaceTreesParams {
    /// The defaults; the same as [`HalfSpaceTrees::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of trees, in [1, 1000].
    pub fn n_trees(mut self, n: usize) -> Self {
        self.0.n_trees = n;
        self
    }

    /// Depth of the trees, in [1, 20]; `n_trees * 2^(height + 1)` must be at most 2^27.
    pub fn height(mut self, h: usize) -> Self {
        self.0.height = h;
        self
    }

    /// Rows per window (the reference and latest mass profiles swap every window), in
    /// [2, 2^31]; without `feature_ranges`, `window_size * n_features` must be at most 2^27.
    pub fn window_size(mut self, n: usize) -> Self {
        self.0.window_size = n;
        self
    }

    /// Reference mass under which a path stops, as a fraction of the window, in [0, 1).
    pub fn size_limit(mut self, f: f64) -> Self {
        self.0.size_limit = f;
        self
    }

    /// Alarm level of the score, in (0, 1).
    pub fn threshold(mut self, t: f64) -> Self {
        self.0.threshold = t;
        self
    }

    /// Working ranges, one finite `(min, max)` with `min < max` per feature; without them the
    /// first window's minima and maxima are used.
    pub fn feature_ranges(mut self, ranges: Vec<(f64, f64)>) -> Self {
        self.0.feature_ranges = Some(ranges);
        self
    }

    /// Fixes the seed: the same seed and rows give the same scores.
    pub fn random_state(mut self, seed: u64) -> Self {
        self.0.random_state = Some(seed);
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&HalfSpaceTreesValidParams, StreamParamsError> {
        let p = &self.0;
        ensure(
            (1..=1000).contains(&p.n_trees),
            "n_trees",
            "in [1, 1000]",
            p.n_trees as f64,
        )?;
        ensure(
            (1..=MAX_HEIGHT).contains(&p.height),
            "height",
            "in [1, 20]",
            p.height as f64,
        )?;
        ensure(
            (2..=1 << 31).contains(&p.window_size),
            "window_size",
            "in [2, 2^31]",
            p.window_size as f64,
        )?;
        ensure(
            p.size_limit >= 0.0 && p.size_limit < 1.0,
            "size_limit",
            "in [0, 1)",
            p.size_limit,
        )?;
        ensure(
            p.threshold > 0.0 && p.threshold < 1.0,
            "threshold",
            "in (0, 1)",
            p.threshold,
        )?;
        check_feature_ranges(p.feature_ranges.as_deref())?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<HalfSpaceTreesValidParams, StreamParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters and builds a detector for rows of `n_features` values.
    pub fn build(&self, n_features: usize) -> Result<HalfSpaceTrees> {
        self.check_ref()?.build(n_features)
    }
}

/// Streaming half-space trees.
///
/// Trees are built before any data, over a random workspace around the unit cube: each node
/// halves its workspace along a random dimension. Rows are scaled into the unit cube with the
/// working ranges (given, or the first window's minima and maxima; a constant feature gets span
/// 1). Each node counts rows in two mass profiles: `reference` (the previous full window) and
/// `latest` (the current one); every `window_size` rows the latest becomes the reference and the
/// latest restarts from zero. A row is scored against the reference, then counted in the latest
/// along its whole path.
///
/// The paper's score of a row is `sum over trees of r * 2^d`, where the row's path stops at the
/// first node of depth `d` whose reference mass `r` is below `size_limit * window_size` (or at
/// the leaves); higher there means more normal. Divided by `n_trees * window_size` it becomes
/// `D`, the mean ratio of the row's cell's share of the window to the cell's share of the
/// workspace volume, a density relative to uniform over the workspace. pdm reports
/// `1 / (1 + D)`, in (0, 1] and higher for more anomalous rows: a row in an empty cell scores 1,
/// and the default threshold 0.8 means "in a cell at most a quarter as dense as the workspace
/// average" (on a Gaussian feature, about 1% of rows). A row beyond the workspace falls in its
/// outermost cell, whose sparse mass keeps its score a little below 1. The threshold is
/// calibrated on one feature: with several, paths stop in cells cut along some features only, so
/// a row far out in one feature can score well below 0.8 while still outranking normal rows; set
/// the threshold from a normal stretch's scores then. The first window (before any reference
/// exists) scores 0.
#[derive(Debug, Clone, PartialEq)]
pub struct HalfSpaceTrees {
    params: HalfSpaceTreesValidParams,
    n_features: usize,
    n_internal: usize,
    n_nodes: usize,
    /// Split dimension per internal node, tree after tree.
    split_dim: Vec<u32>,
    /// Split value per internal node, in unit-cube coordinates.
    split_value: Vec<f64>,
    /// Reference masses per node (internal and leaves), tree after tree.
    reference: Vec<u32>,
    /// Latest masses, laid out as `reference`.
    latest: Vec<u32>,
    lo: Vec<f64>,
    span: Vec<f64>,
    ranges_ready: bool,
    /// Rows of the first window, kept until its ranges are known.
    first_window: Vec<f64>,
    /// Scratch for a row in unit-cube coordinates.
    scaled: Vec<f64>,
    in_window: usize,
    windows_done: usize,
    size_limit: f64,
}

impl HalfSpaceTrees {
    /// Default parameters, to adjust and then [`build`](HalfSpaceTreesParams::build).
    pub fn params() -> HalfSpaceTreesParams {
        HalfSpaceTreesParams::default()
    }

    /// The parameters the detector runs with.
    pub fn valid_params(&self) -> &HalfSpaceTreesValidParams {
        &self.params
    }

    /// Working ranges as `(min, max)` per feature, once known.
    pub fn working_ranges(&self) -> Option<Vec<(f64, f64)>> {
        self.ranges_ready.then(|| {
            self.lo
                .iter()
                .zip(&self.span)
                .map(|(&l, &s)| (l, l + s))
                .collect()
        })
    }

    /// Scores the rows of `x` in order, learning from each; see [`super::score_series`].
    pub fn score_series(&mut self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        score_series(self, x)
    }

    /// Scales a row into `self.scaled`.
    fn scale(&mut self, row: &[f64]) {
        for ((o, &x), (&l, &s)) in self
            .scaled
            .iter_mut()
            .zip(row)
            .zip(self.lo.iter().zip(&self.span))
        {
            *o = (x - l) / s;
        }
    }

    /// Walks every tree with `self.scaled`: returns the paper's mass score against the reference
    /// and, if `learn`, counts the row in the latest profile along its full path.
    fn walk(&mut self, learn: bool) -> f64 {
        let mut mass = 0.0;
        for t in 0..self.params.n_trees {
            let nodes = t * self.n_nodes;
            let splits = t * self.n_internal;
            let mut node = 0usize;
            let mut scored = false;
            for depth in 0..=self.params.height {
                if !scored {
                    let r = f64::from(self.reference[nodes + node]);
                    if r < self.size_limit || depth == self.params.height {
                        mass += r * (depth as f64).exp2();
                        scored = true;
                        if !learn {
                            break;
                        }
                    }
                }
                if learn {
                    self.latest[nodes + node] += 1;
                }
                if depth < self.params.height {
                    let q = self.split_dim[splits + node] as usize;
                    node = if self.scaled[q] < self.split_value[splits + node] {
                        2 * node + 1
                    } else {
                        2 * node + 2
                    };
                }
            }
        }
        mass
    }

    /// Ends a window: the latest profile becomes the reference.
    fn end_window(&mut self) {
        std::mem::swap(&mut self.reference, &mut self.latest);
        self.latest.iter_mut().for_each(|m| *m = 0);
        self.in_window = 0;
        self.windows_done = self.windows_done.saturating_add(1);
    }

    /// Ranges from the buffered first window, then its rows into the latest profile.
    fn learn_first_window(&mut self) {
        let d = self.n_features;
        for j in 0..d {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for row in self.first_window.chunks_exact(d) {
                lo = lo.min(row[j]);
                hi = hi.max(row[j]);
            }
            self.lo[j] = lo;
            // A constant feature has no span to learn; 1 keeps the scaling defined.
            self.span[j] = if hi > lo { hi - lo } else { 1.0 };
        }
        self.ranges_ready = true;
        let rows = std::mem::take(&mut self.first_window);
        for row in rows.chunks_exact(d) {
            self.scale(row);
            self.walk(true);
        }
    }
}

impl StreamingDetector for HalfSpaceTrees {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn update(&mut self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.n_features)?;
        let mut score = 0.0;
        if !self.ranges_ready {
            self.first_window.extend_from_slice(row);
            self.in_window += 1;
            if self.in_window == self.params.window_size {
                self.learn_first_window();
                self.end_window();
            }
            return Ok(score);
        }
        self.scale(row);
        let mass = self.walk(true);
        if self.windows_done > 0 {
            let density = mass / (self.params.n_trees as f64 * self.params.window_size as f64);
            score = 1.0 / (1.0 + density);
        }
        self.in_window += 1;
        if self.in_window == self.params.window_size {
            self.end_window();
        }
        Ok(score)
    }

    fn score(&self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.n_features)?;
        if !self.ranges_ready || self.windows_done == 0 {
            return Ok(0.0);
        }
        // `walk` without learning, scaling each split's feature where it is read (the same
        // expression as `scale`, so the same value).
        let mut mass = 0.0;
        for t in 0..self.params.n_trees {
            let (nodes, splits) = (t * self.n_nodes, t * self.n_internal);
            let mut node = 0usize;
            for depth in 0..=self.params.height {
                let r = f64::from(self.reference[nodes + node]);
                if r < self.size_limit || depth == self.params.height {
                    mass += r * (depth as f64).exp2();
                    break;
                }
                let q = self.split_dim[splits + node] as usize;
                let x = (row[q] - self.lo[q]) / self.span[q];
                node = if x < self.split_value[splits + node] {
                    2 * node + 1
                } else {
                    2 * node + 2
                };
            }
        }
        let density = mass / (self.params.n_trees as f64 * self.params.window_size as f64);
        Ok(1.0 / (1.0 + density))
    }

    fn threshold(&self) -> f64 {
        self.params.threshold
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HalfSpaceTreesState {
    n_trees: usize,
    height: usize,
    window_size: usize,
    size_limit: f64,
    threshold: f64,
    feature_ranges: Option<Vec<(f64, f64)>>,
    random_state: Option<u64>,
    /// Split dimension and value (unit-cube coordinates) per internal node, trees in heap order.
    split_dim: Vec<u32>,
    split_value: Vec<f64>,
    /// Reference and latest masses per node (internal and leaves), laid out as the splits.
    reference: Vec<u32>,
    latest: Vec<u32>,
    /// Working ranges: lower end and span per feature.
    lo: Vec<f64>,
    span: Vec<f64>,
    ranges_ready: bool,
    /// Rows of the first window, row after row, while the ranges are being learnt.
    first_window: Vec<f64>,
    in_window: usize,
    windows_done: usize,
}

impl crate::persist::Persist for HalfSpaceTrees {
    const KIND: &'static str = "half_space_trees";
    type State = HalfSpaceTreesState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.n_features)
    }

    fn state(&self) -> HalfSpaceTreesState {
        let p = &self.params;
        HalfSpaceTreesState {
            n_trees: p.n_trees,
            height: p.height,
            window_size: p.window_size,
            size_limit: p.size_limit,
            threshold: p.threshold,
            feature_ranges: p.feature_ranges.clone(),
            random_state: p.random_state,
            split_dim: self.split_dim.clone(),
            split_value: self.split_value.clone(),
            reference: self.reference.clone(),
            latest: self.latest.clone(),
            lo: self.lo.clone(),
            span: self.span.clone(),
            ranges_ready: self.ranges_ready,
            first_window: self.first_window.clone(),
            in_window: self.in_window,
            windows_done: self.windows_done,
        }
    }

    fn from_state(
        s: HalfSpaceTreesState,
        names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let n_features = names.len();
        let mut params = HalfSpaceTrees::params()
            .n_trees(s.n_trees)
            .height(s.height)
            .window_size(s.window_size)
            .size_limit(s.size_limit)
            .threshold(s.threshold);
        if let Some(r) = s.feature_ranges {
            params = params.feature_ranges(r);
        }
        if let Some(seed) = s.random_state {
            params = params.random_state(seed);
        }
        // Building checks the parameters and sizes; its random trees are then replaced.
        let mut det = params.build(n_features).map_err(StateError::params)?;
        let (internal, nodes) = (
            det.params.n_trees * det.n_internal,
            det.params.n_trees * det.n_nodes,
        );
        if s.split_dim.len() != internal || s.split_value.len() != internal {
            return Err(StateError::new(
                "split_dim",
                format!("the trees need {internal} splits"),
            ));
        }
        if s.split_dim.iter().any(|&d| d as usize >= n_features)
            || s.split_value.iter().any(|v| !v.is_finite())
        {
            return Err(StateError::new(
                "split_dim",
                format!("every split needs a dimension below {n_features} and a finite value"),
            ));
        }
        if s.reference.len() != nodes || s.latest.len() != nodes {
            return Err(StateError::new(
                "reference",
                format!("the mass profiles need {nodes} nodes each"),
            ));
        }
        // Masses count rows of one window; the latest profile's roots count the rows of the
        // current window once the ranges are known (before, rows wait in `first_window`).
        let window = det.params.window_size;
        let too_heavy = |m: &u32| *m as usize > window;
        let roots_ok = (0..det.params.n_trees).all(|t| {
            let root = s.latest[t * det.n_nodes] as usize;
            root == if s.ranges_ready { s.in_window } else { 0 }
        });
        if s.reference.iter().any(too_heavy) || s.latest.iter().any(too_heavy) || !roots_ok {
            return Err(StateError::new(
                "latest",
                format!(
                    "the masses must count at most the window's {window} rows, and the latest \
                 roots the {} rows of the current window",
                    s.in_window
                ),
            ));
        }
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if s.lo.len() != n_features
            || s.span.len() != n_features
            || !finite(&s.lo)
            || !finite(&s.span)
            || s.span.iter().any(|&w| w <= 0.0)
        {
            return Err(StateError::new(
                "lo",
                format!(
                    "the working ranges need {n_features} finite lower ends and positive spans"
                ),
            ));
        }
        let first_ok = if s.ranges_ready {
            s.first_window.is_empty()
        } else {
            s.first_window.len() == s.in_window * n_features && finite(&s.first_window)
        };
        if s.in_window >= window || !first_ok {
            return Err(StateError::new(
                "in_window",
                format!(
                    "{} rows into a window of {window}, with {} values of the first window kept",
                    s.in_window,
                    s.first_window.len()
                ),
            ));
        }
        det.split_dim = s.split_dim;
        det.split_value = s.split_value;
        det.reference = s.reference;
        det.latest = s.latest;
        det.lo = s.lo;
        det.span = s.span;
        det.ranges_ready = s.ranges_ready;
        if !s.ranges_ready {
            det.first_window.clear();
            det.first_window.extend_from_slice(&s.first_window);
        }
        det.in_window = s.in_window;
        det.windows_done = s.windows_done;
        Ok(det)
    }
}

crate::persist::persistable!(HalfSpaceTrees);

impl super::registry::Registered for HalfSpaceTrees {
    const NAME: &'static str = "half_space_trees";
    const SUMMARY: &'static str = "Streaming half-space trees";
    type Params = HalfSpaceTreesParams;

    fn build(params: &HalfSpaceTreesParams, n_features: usize) -> Result<Self> {
        params.build(n_features)
    }

    fn valid(&self) -> &HalfSpaceTreesValidParams {
        self.valid_params()
    }

    fn nab_params() -> HalfSpaceTreesParams {
        HalfSpaceTrees::params().random_state(42)
    }
}

// `feature_ranges` is not a key (yet): the Python class has never taken it.
super::registry::keyed_params!(HalfSpaceTreesParams => HalfSpaceTreesValidParams {
    "n_trees" => n_trees,
    "height" => height,
    "window_size" => window_size,
    "size_limit" => size_limit,
    "threshold" => threshold,
    "random_state" => random_state,
});

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_flags_changes, behaviour, gaussian, run};
    use super::*;

    fn params() -> HalfSpaceTreesParams {
        HalfSpaceTrees::params().random_state(7)
    }

    #[test]
    fn flags_spike_shift_and_variance_change() {
        let b = behaviour(|| Box::new(params().build(1).expect("build")));
        println!("HalfSpaceTrees {b:?}");
        assert_flags_changes(&b);
    }

    #[test]
    fn same_seed_same_scores_other_seed_other_scores() {
        let xs = gaussian(1500, 4);
        let a = run(&mut params().build(1).expect("build"), &xs);
        let b = run(&mut params().build(1).expect("build"), &xs);
        let c = run(&mut params().random_state(8).build(1).expect("build"), &xs);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn outlier_in_one_of_two_features_stands_out() {
        let a = gaussian(1000, 12);
        let b = gaussian(1000, 13);
        let mut det = params().build(2).expect("build");
        let mut scores: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| det.update(&[x, y]).expect("row"))
            .collect();
        let alarms = scores[250..]
            .iter()
            .filter(|&&s| s > det.threshold())
            .count();
        assert!(alarms < 30, "{alarms} alarms in 750 rows");
        let s = det.update(&[0.0, 10.0]).expect("row");
        // Paths stop in coarse cells cut along one feature only, which an outlier in the other
        // feature shares with normal rows: it outranks them, but the one-feature threshold does
        // not carry over (see the docs).
        let mut normal = scores.split_off(250);
        normal.sort_by(f64::total_cmp);
        let p99 = normal[normal.len() * 99 / 100];
        assert!(s > p99, "outlier {s}, 99th percentile of normal rows {p99}");
    }

    #[test]
    fn trees_halve_the_workspace() {
        let det = params().height(3).n_trees(2).build(1).expect("build");
        assert_eq!(det.split_dim.len(), 2 * 7);
        for t in 0..2 {
            let v = &det.split_value[t * 7..(t + 1) * 7];
            // Children split their parent's half at its middle: the gaps are equal.
            let (root, l, r) = (v[0], v[1], v[2]);
            assert!((root - l - (r - root)).abs() < 1e-12);
            assert!((v[3] < l) && (l < v[4]) && (v[5] < r) && (r < v[6]));
            // The root splits the workspace [s - w, s + w] at s, inside [0, 1].
            assert!((0.0..=1.0).contains(&root));
        }
    }

    #[test]
    fn first_window_scores_zero_and_sets_ranges() {
        let mut det = params().window_size(100).build(2).expect("build");
        for i in 0..100 {
            let s = det
                .update(&[i as f64, ((i * 37) % 100) as f64 - 50.0])
                .expect("row");
            assert_eq!(s, 0.0);
        }
        assert_eq!(det.working_ranges(), Some(vec![(0.0, 99.0), (-50.0, 49.0)]));
        // Reference now holds the first window: every row passes the root.
        assert_eq!(det.reference[0], 100);
        assert_eq!(det.reference[det.n_nodes], 100);
        assert!(det.update(&[1.0, 2.0]).expect("row") > 0.0);
    }

    #[test]
    fn row_far_outside_the_window_scores_above_threshold() {
        // One feature spread evenly over [0, 99]: the cut at the workspace middle leaves the
        // far right half empty or nearly so, whatever the seed.
        for seed in 0..20 {
            let mut det = params()
                .random_state(seed)
                .window_size(100)
                .build(1)
                .expect("build");
            for i in 0..100 {
                det.update(&[i as f64]).expect("row");
            }
            let inside = det.update(&[50.0]).expect("row");
            let outside = det.update(&[500.0]).expect("row");
            assert!(inside < det.threshold(), "seed {seed}: {inside}");
            assert!(outside > det.threshold(), "seed {seed}: {outside}");
        }
    }

    #[test]
    fn constant_feature_gets_unit_span() {
        let mut det = params().window_size(10).build(1).expect("build");
        for _ in 0..10 {
            det.update(&[5.0]).expect("row");
        }
        assert_eq!(det.working_ranges(), Some(vec![(5.0, 6.0)]));
    }

    #[test]
    fn given_ranges_are_used_and_checked() {
        let det = params()
            .feature_ranges(vec![(-3.0, 3.0)])
            .build(1)
            .expect("build");
        assert_eq!(det.working_ranges(), Some(vec![(-3.0, 3.0)]));
        assert_eq!(
            params()
                .feature_ranges(vec![(0.0, 1.0)])
                .build(2)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err(
                "invalid parameter: feature_ranges must hold one (min, max) per feature (2), \
                 got 1"
                    .to_owned()
            )
        );
        assert_eq!(
            params()
                .feature_ranges(vec![(1.0, 1.0)])
                .check()
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("feature_ranges[0] must be finite with min < max and a finite max - min, got (1, 1)".to_owned())
        );
    }

    #[test]
    fn windows_swap_profiles() {
        let mut det = params()
            .window_size(10)
            .feature_ranges(vec![(0.0, 1.0)])
            .build(1)
            .expect("build");
        for _ in 0..10 {
            det.update(&[0.5]).expect("row");
        }
        assert_eq!((det.reference[0], det.latest[0]), (10, 0));
        for _ in 0..3 {
            det.update(&[0.5]).expect("row");
        }
        assert_eq!((det.reference[0], det.latest[0]), (10, 3));
    }

    #[test]
    fn bad_rows_leave_the_state_alone() {
        let mut det = params().window_size(10).build(1).expect("build");
        det.update(&[1.0]).expect("row");
        let before = det.clone();
        assert!(det.update(&[f64::NAN]).is_err());
        assert!(det.update(&[]).is_err());
        assert_eq!(det, before);
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let err = |p: HalfSpaceTreesParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = HalfSpaceTrees::params;
        assert_eq!(err(p()), "accepted");
        assert_eq!(err(p().n_trees(0)), "n_trees must be in [1, 1000], got 0");
        assert_eq!(err(p().height(21)), "height must be in [1, 20], got 21");
        assert_eq!(
            err(p().window_size(1)),
            "window_size must be in [2, 2^31], got 1"
        );
        assert_eq!(
            err(p().size_limit(1.0)),
            "size_limit must be in [0, 1), got 1"
        );
        assert_eq!(
            err(p().threshold(0.0)),
            "threshold must be in (0, 1), got 0"
        );
    }
}
