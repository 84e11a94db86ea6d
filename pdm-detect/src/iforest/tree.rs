//! Isolation trees: growing one tree on a subsample, and the flat forest they are stored in.

use crate::persist::StateError;
use ndarray::{ArrayView2, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Value;

/// Euler–Mascheroni constant, as numpy's `np.euler_gamma`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// A feature whose range in a node is at most this is treated as constant there. scikit-learn's
/// tree splitter uses the same absolute tolerance (`FEATURE_THRESHOLD`), so trees stop splitting
/// where its trees do.
const FEATURE_THRESHOLD: f64 = 1e-7;

/// Average path length of an unsuccessful search in a binary search tree of `n` keys: the
/// expected depth still to go below a leaf that holds `n` training rows.
///
/// `c(n) = 2 (ln(n - 1) + γ) - 2 (n - 1) / n` for `n > 2`, `c(2) = 1`, `c(n) = 0` for `n <= 1`.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Depth limit of trees grown on `max_samples` rows: `ceil(log2(max(max_samples, 2)))`.
pub fn depth_limit(max_samples: usize) -> usize {
    let n = max_samples.max(2);
    // ceil(log2(n)) for integers, exact where the float formula could round.
    (usize::BITS - (n - 1).leading_zeros()) as usize
}

/// All trees in struct-of-arrays form, as grown and as model files hold them. Rows with
/// `x[feature[i]] <= threshold[i]` go from node `i` to `left[i]`, the others to `left[i] + 1`:
/// children are stored side by side, so one index serves both. A leaf points to itself with a
/// threshold of +inf, so a row that reached it stays there: every row can then take exactly
/// `depth` steps per tree with no test for leaves, which lets several rows walk a tree in
/// lockstep (independent loads the CPU overlaps). `path_length[i]` is a leaf's depth + c(leaf
/// size). Scoring goes through [`Complete`], the same trees padded and heap-ordered, and walks
/// these nodes only for forests too deep or too wide for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Forest {
    nodes: Vec<Packed>,
    path_length: Vec<f64>,
    roots: Vec<u32>,
    /// Steps that reach a leaf from any root: the deepest leaf's depth.
    depth: usize,
    /// The same trees laid out for scoring; `None` when the forest is too deep or has too many
    /// features for it, and the nodes above are walked instead.
    complete: Option<Complete>,
}

/// The deepest forest scored through [`Complete`]: a tree of depth 16 takes 17 bytes x 2^16 in
/// it, never more than about twice the nodes it pads (a tree grown on `m` rows is at most
/// `ceil(log2(m))` deep and has up to `2m - 1` nodes of 24 bytes).
const MAX_COMPLETE_DEPTH: usize = 16;

/// The forest for scoring: every tree padded to a complete binary tree of the forest's depth
/// `D`, heap-ordered (node `h` has children `2h` and `2h + 1`, the root is 1), in arrays of
/// `2^D` entries per tree. A leaf above the bottom has its path length copied to every bottom
/// slot below it, so a row takes exactly `D` steps, `h = 2h + (x > threshold[h])`, and lands on
/// `leaf[h - 2^D]`: no child index to load, and with `2^D` a constant of the kernel
/// (`h & (2^D - 1)` in range by construction) no bounds check either. Slot 0 and the padding
/// below a leaf hold feature 0, threshold +inf; where those rows go does not matter. A row adds
/// the same leaf values in the same tree order as the node walk, so scores are bit-identical.
///
/// Measured on the benchmark above (1M rows, 8 features, 100 trees, one thread): 0.59 us/row
/// with 8 rows in lockstep reading rows at a power-of-two stride, 0.55 with the rows of a group
/// lane-interleaved, 0.40 with 16 rows in lockstep (the step is bound by its ~15-cycle dependent
/// chain: 12, 20 and 24 rows cost a multiply or spills, 32 spill, all slower). Level-by-level
/// over a block (0.70), that loop autovectorized to AVX-512 gathers (0.92, built with AVX-512 on
/// for the trial), features pre-scaled by the group width, the root peeled out of the loop and u32
/// node indices did not pay.
///
/// Tried later on an AMD EPYC (Zen 3, AVX2, 3.2 GHz), where this kernel ran 0.62 us/row (about
/// 2.5 cycles a step) in the same runs: integer order-preserving keys for values and thresholds
/// (0.75-0.85: LLVM keeps the lanes' comparison bits on the stack), thresholds and features
/// packed in one `u64` (0.75-0.85, same reason), AVX2 gathers of 8 lanes (0.9), the first four
/// levels vectorized as comparisons of whole columns (0.65-0.77), and a hand-written x86-64
/// `asm!` walk with 8 lanes in registers and 4 instructions a step (0.51: 1.2x, not worth giving
/// up `forbid(unsafe_code)` for). Prototypes, not kept; the notes are here so nobody repeats them.
#[derive(Debug, Clone, PartialEq)]
struct Complete {
    depth: usize,
    feature: Vec<u8>,
    threshold: Vec<f64>,
    leaf: Vec<f64>,
}

/// One node, packed into 16 bytes: a step down the tree reads one cache line and checks one
/// bound, where three parallel arrays cost three of each (1.32 us/row with parallel arrays, 1.20
/// packed, `benches/iforest_speed.py`, 1M rows, 8 features, 100 trees). Scoring now walks
/// [`Complete`] (0.40 us/row on the same data); these nodes remain what fitting produces, what
/// model files hold, and the walk for forests deeper than [`MAX_COMPLETE_DEPTH`] or splitting on
/// a feature past 255.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
struct Packed {
    threshold: f64,
    feature: u32,
    left: u32,
}

/// Rows scored together against one tree before moving to the next, so the tree's nodes stay in
/// cache across the block.
const BLOCK: usize = 256;

/// Rows walking one tree in lockstep.
const LANES: usize = 8;

/// Rows walking one tree in lockstep in [`Complete`] scoring.
const GROUP: usize = 16;

/// Groups scored together against one tree in [`Complete`] scoring.
const GROUPS: usize = 16;

/// The forest's arrays as a model file holds them (leaf thresholds, +inf in memory, are written
/// as 0: JSON has no infinity, and a leaf is known by pointing to itself).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ForestParts {
    pub(crate) feature: Vec<u32>,
    pub(crate) threshold: Vec<f64>,
    pub(crate) left: Vec<u32>,
    pub(crate) path_length: Vec<f64>,
    pub(crate) roots: Vec<u32>,
}

impl Forest {
    pub(crate) fn to_parts(&self) -> ForestParts {
        let leaf = |i: usize, n: &Packed| n.left as usize == i;
        ForestParts {
            feature: self.nodes.iter().map(|n| n.feature).collect(),
            threshold: (self.nodes.iter().enumerate())
                .map(|(i, n)| if leaf(i, n) { 0.0 } else { n.threshold })
                .collect(),
            left: self.nodes.iter().map(|n| n.left).collect(),
            path_length: self.path_length.clone(),
            roots: self.roots.clone(),
        }
    }

    /// Rebuilds a forest from a model file's arrays, checking every invariant scoring relies on
    /// (indices in range, children after their parent within the same tree, finite values), so
    /// that no file, however damaged, can make scoring read out of bounds or loop.
    pub(crate) fn from_parts(p: ForestParts, n_features: usize) -> Result<Self, StateError> {
        let n = p.feature.len();
        if [p.threshold.len(), p.left.len(), p.path_length.len()] != [n, n, n] {
            return Err(StateError::new(
                "feature",
                "the forest's node arrays differ in length",
            ));
        }
        if p.roots.is_empty() || p.roots[0] != 0 {
            return Err(StateError::new(
                "roots",
                "the forest has no trees, or its first tree does not start at node 0",
            ));
        }
        let nodes = (p.feature.iter().zip(&p.threshold).zip(&p.left))
            .map(|((&feature, &threshold), &left)| Packed {
                threshold,
                feature,
                left,
            })
            .collect();
        let mut forest = Forest {
            nodes,
            path_length: p.path_length,
            roots: p.roots,
            depth: 0,
            complete: None,
        };
        for t in 0..forest.roots.len() {
            let start = forest.roots[t] as usize;
            let end = forest.roots.get(t + 1).map_or(n, |&r| r as usize);
            if start >= end || end > n {
                return Err(StateError::new(
                    "roots",
                    format!("tree {t} has no nodes or ends past the node arrays"),
                ));
            }
            let mut depth_of = vec![0usize; end - start];
            for i in start..end {
                let left = forest.nodes[i].left as usize;
                if left == i {
                    let pl = forest.path_length[i];
                    if !(pl.is_finite() && pl >= 0.0) {
                        return Err(StateError::new(
                            "path_length",
                            format!("leaf {i} has path length {pl}"),
                        ));
                    }
                    forest.nodes[i].threshold = f64::INFINITY;
                    forest.nodes[i].feature = 0;
                    forest.depth = forest.depth.max(depth_of[i - start]);
                    continue;
                }
                if left <= i || left + 1 >= end {
                    return Err(StateError::new(
                        "left",
                        format!("node {i} of tree {t} has children outside the tree"),
                    ));
                }
                if forest.nodes[i].feature as usize >= n_features {
                    return Err(StateError::new(
                        "feature",
                        format!(
                            "node {i} splits on feature {} of {n_features}",
                            forest.nodes[i].feature
                        ),
                    ));
                }
                if !forest.nodes[i].threshold.is_finite() {
                    return Err(StateError::new(
                        "threshold",
                        format!("node {i} has a non-finite threshold"),
                    ));
                }
                let d = depth_of[i - start] + 1;
                depth_of[left - start] = d;
                depth_of[left + 1 - start] = d;
            }
        }
        forest.complete = Complete::build(&forest);
        Ok(forest)
    }

    /// Steps from a root to the deepest leaf.
    pub(super) fn depth(&self) -> usize {
        self.depth
    }

    pub(super) fn n_trees(&self) -> usize {
        self.roots.len()
    }

    pub(super) fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Appends a tree, moving its node indices past the nodes already stored.
    fn push(&mut self, tree: Tree) {
        let offset = self.nodes.len() as u32;
        self.roots.push(offset);
        for (i, node) in tree.nodes.iter().enumerate() {
            let me = offset + i as u32;
            match *node {
                Node::Split {
                    feature,
                    threshold,
                    left,
                } => {
                    self.nodes.push(Packed {
                        threshold,
                        feature,
                        left: offset + left,
                    });
                    self.path_length.push(0.0);
                }
                Node::Leaf { path_length } => {
                    self.nodes.push(Packed {
                        threshold: f64::INFINITY,
                        feature: 0,
                        left: me,
                    });
                    self.path_length.push(path_length);
                }
            }
        }
        self.depth = self.depth.max(tree.depth);
    }

    pub(super) fn from_trees(trees: impl IntoIterator<Item = Tree>) -> Self {
        let mut forest = Self::default();
        for t in trees {
            forest.push(t);
        }
        forest.complete = Complete::build(&forest);
        forest
    }

    /// One step down from node `i` for the row starting at `rows[at]`. Rows are finite
    /// (checked by the caller), so the +inf threshold of a leaf keeps them in it.
    #[inline]
    fn step(&self, i: usize, rows: &[f64], at: usize) -> usize {
        let n = self.nodes[i];
        let x = rows[at + n.feature as usize];
        n.left as usize + usize::from(x > n.threshold)
    }

    /// Writes into `out[k]` the summed path length over all trees of row `k` of `data`
    /// (row-major, `n_cols` per row). The caller has checked the shape and finiteness.
    #[cfg(test)]
    pub(super) fn path_length_sums(&self, data: &[f64], n_cols: usize, out: &mut [f64]) {
        match &self.complete {
            Some(c) if n_cols <= 256 => c.path_length_sums(data, n_cols, out),
            _ => self.walk_nodes(data, n_cols, out),
        }
    }

    /// [`path_length_sums`](Self::path_length_sums) of the rows of `x`, in any layout and as
    /// `f64` or `f32`: the complete-tree walk copies (and widens) rows block by block into its
    /// own buffer anyway, so the matrix is never copied whole. The node walk, for forests too
    /// deep for it, reads one row-major `f64` copy.
    pub(super) fn path_length_sums_of<T: Value>(&self, x: &ArrayView2<'_, T>, out: &mut [f64]) {
        match &self.complete {
            Some(c) if x.ncols() <= 256 => c.path_length_sums_of(x, out),
            _ => {
                let data: Vec<f64> = x.iter().map(|&v| v.into()).collect();
                self.walk_nodes(&data, x.ncols(), out);
            }
        }
    }

    /// [`path_length_sums`](Self::path_length_sums) over the nodes, for forests too deep for
    /// [`Complete`].
    fn walk_nodes(&self, data: &[f64], n_cols: usize, out: &mut [f64]) {
        for (b, sums) in out.chunks_mut(BLOCK).enumerate() {
            let rows = &data[b * BLOCK * n_cols..(b * BLOCK + sums.len()) * n_cols];
            sums.fill(0.0);
            for &root in &self.roots {
                let root = root as usize;
                let mut lanes = sums.chunks_exact_mut(LANES);
                let mut lane_rows = rows.chunks_exact(LANES * n_cols);
                for (lane_sums, group) in (&mut lanes).zip(&mut lane_rows) {
                    let mut at = [root; LANES];
                    for _ in 0..self.depth {
                        for (l, i) in at.iter_mut().enumerate() {
                            *i = self.step(*i, group, l * n_cols);
                        }
                    }
                    for (sum, i) in lane_sums.iter_mut().zip(at) {
                        *sum += self.path_length[i];
                    }
                }
                let rest = lane_rows.remainder();
                for (sum, row) in lanes
                    .into_remainder()
                    .iter_mut()
                    .zip(rest.chunks_exact(n_cols))
                {
                    let mut i = root;
                    for _ in 0..self.depth {
                        i = self.step(i, row, 0);
                    }
                    *sum += self.path_length[i];
                }
            }
        }
    }

    /// Depth of the deepest leaf of any tree.
    #[cfg(test)]
    pub(super) fn max_depth(&self) -> usize {
        let mut deepest = 0;
        for &root in &self.roots {
            let mut stack = vec![(root as usize, 0usize)];
            while let Some((i, d)) = stack.pop() {
                let l = self.nodes[i].left as usize;
                if l == i {
                    deepest = deepest.max(d);
                } else {
                    stack.push((l, d + 1));
                    stack.push((l + 1, d + 1));
                }
            }
        }
        deepest
    }
}

impl Complete {
    /// Pads the forest's trees; `None` when it is deeper than [`MAX_COMPLETE_DEPTH`] or splits
    /// on a feature past 255.
    fn build(forest: &Forest) -> Option<Self> {
        let depth = forest.depth;
        if depth > MAX_COMPLETE_DEPTH || forest.nodes.iter().any(|n| n.feature > 255) {
            return None;
        }
        // Padding a tree to 2^depth slots costs about twice its nodes for trees grown by `fit`;
        // a forest of long, thin trees (possible in a crafted model file) would cost far more,
        // so it keeps the node walk instead.
        let slots = forest.roots.len().checked_shl(depth as u32)?;
        if slots > 4 * forest.nodes.len() {
            return None;
        }
        let size = 1usize << depth;
        let n = forest.roots.len() * size;
        let mut c = Complete {
            depth,
            feature: vec![0; n],
            threshold: vec![f64::INFINITY; n],
            leaf: vec![0.0; n],
        };
        let mut stack = Vec::new();
        for (t, &root) in forest.roots.iter().enumerate() {
            let base = t * size;
            // (node, heap index, depth)
            stack.push((root as usize, 1usize, 0usize));
            while let Some((i, h, d)) = stack.pop() {
                let node = forest.nodes[i];
                let left = node.left as usize;
                if left == i {
                    let below = depth - d;
                    let first = (h << below) - size;
                    c.leaf[base + first..base + first + (1 << below)].fill(forest.path_length[i]);
                } else {
                    c.feature[base + h] = node.feature as u8;
                    c.threshold[base + h] = node.threshold;
                    stack.push((left, 2 * h, d + 1));
                    stack.push((left + 1, 2 * h + 1, d + 1));
                }
            }
        }
        Some(c)
    }

    /// [`Forest::path_length_sums`] for `n_cols <= 256`.
    #[cfg(test)]
    fn path_length_sums(&self, data: &[f64], n_cols: usize, out: &mut [f64]) {
        match ArrayView2::from_shape((out.len(), n_cols), data) {
            Ok(x) => self.path_length_sums_of(&x, out),
            Err(_) => unreachable!("callers pass out.len() rows of n_cols values"),
        }
    }

    fn path_length_sums_of<T: Value>(&self, x: &ArrayView2<'_, T>, out: &mut [f64]) {
        // Rows are copied group by group, lane-interleaved: feature `f` of lane `l` of group `g`
        // at `g * n_cols * GROUP + f * GROUP + l`. A group's window of 256 x GROUP values is
        // then in bounds for any u8 feature, so the step reads `x` with no check and no per-lane
        // base (the lane is a constant offset). The tail past the last group is never read.
        let group = x.ncols() * GROUP;
        let mut buf = vec![0.0; GROUPS * group + 256 * GROUP];
        let mut at = [[0usize; GROUP]; GROUPS];
        let blocks = x.axis_chunks_iter(Axis(0), GROUPS * GROUP);
        let n_cols = x.ncols().max(1);
        for (rows, sums) in blocks.zip(out.chunks_mut(GROUPS * GROUP)) {
            let mut put = |k: usize, f: usize, v: T| {
                let (g, l) = (k / GROUP, k % GROUP);
                buf[g * group + f * GROUP + l] = v.into();
            };
            match rows.as_slice() {
                // Row-major: one pass over the block's memory.
                Some(data) => {
                    for (k, row) in data.chunks_exact(n_cols).enumerate() {
                        row.iter().enumerate().for_each(|(f, &v)| put(k, f, v));
                    }
                }
                None => {
                    for (k, row) in rows.rows().into_iter().enumerate() {
                        row.iter().enumerate().for_each(|(f, &v)| put(k, f, v));
                    }
                }
            }
            let groups = sums.len().div_ceil(GROUP);
            let at = &mut at[..groups];
            sums.fill(0.0);
            macro_rules! dispatch {
                ($($d:literal)*) => {
                    match self.depth {
                        $($d => self.block::<{ 1 << $d }>(&buf, group, at, sums),)*
                        _ => unreachable!("depth checked when the layout was built"),
                    }
                };
            }
            dispatch!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
    }

    /// Adds every tree's path length to `sums`, for rows in `buf` as
    /// [`path_length_sums`](Self::path_length_sums) lays them out; `N` = 2^depth. A last,
    /// partial group walks on whatever its missing lanes hold, and their sums are dropped.
    fn block<const N: usize>(
        &self,
        buf: &[f64],
        group: usize,
        at: &mut [[usize; GROUP]],
        sums: &mut [f64],
    ) {
        let depth = N.trailing_zeros();
        let trees = (self.feature.chunks_exact(N))
            .zip(self.threshold.chunks_exact(N))
            .zip(self.leaf.chunks_exact(N));
        for ((feature, threshold), leaf) in trees {
            let (Ok(feature), Ok(threshold), Ok(leaf)) = (
                <&[u8; N]>::try_from(feature),
                <&[f64; N]>::try_from(threshold),
                <&[f64; N]>::try_from(leaf),
            ) else {
                unreachable!("chunks of N");
            };
            for (g, at) in at.iter_mut().enumerate() {
                let Ok(x) = <&[f64; 256 * GROUP]>::try_from(&buf[g * group..][..256 * GROUP])
                else {
                    unreachable!("the buffer has a window's tail");
                };
                let mut hs = [1; GROUP];
                for _ in 0..depth {
                    for (l, h) in hs.iter_mut().enumerate() {
                        let k = *h & (N - 1);
                        let v = x[usize::from(feature[k]) * GROUP + l];
                        *h = 2 * k + usize::from(v > threshold[k]);
                    }
                }
                *at = hs;
            }
            for (sums, at) in sums.chunks_mut(GROUP).zip(at.iter()) {
                for (sum, h) in sums.iter_mut().zip(at) {
                    *sum += leaf[h & (N - 1)];
                }
            }
        }
    }
}

/// A node of a tree being grown.
#[derive(Debug, Clone, Copy)]
enum Node {
    Split {
        feature: u32,
        threshold: f64,
        left: u32,
    },
    Leaf {
        path_length: f64,
    },
}

/// One tree, node indices local to it.
#[derive(Debug, Default)]
pub(super) struct Tree {
    nodes: Vec<Node>,
    /// Depth of the deepest leaf.
    depth: usize,
}

/// What a tree is grown from.
pub(super) struct TreeSpec<'a> {
    /// Training rows, row-major.
    pub data: &'a [f64],
    pub n_rows: usize,
    pub n_cols: usize,
    /// Rows per tree (already at most `n_rows`).
    pub max_samples: usize,
    /// Features per tree (already at most `n_cols`).
    pub max_features: usize,
    pub bootstrap: bool,
    pub max_depth: usize,
}

impl TreeSpec<'_> {
    /// Grows one tree from its own seed: the seed alone decides the rows, the features and every
    /// split, which is what makes the forest independent of the thread that grew each tree.
    pub(super) fn grow(&self, seed: u64) -> Tree {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut rows: Vec<usize> = if self.bootstrap {
            let mut r: Vec<usize> = (0..self.max_samples)
                .map(|_| rng.random_range(0..self.n_rows))
                .collect();
            // scikit-learn fits bootstrap trees on the distinct drawn rows, weighted by their
            // counts; the weights never change a split or a node's row count, so the distinct
            // rows give the same tree.
            r.sort_unstable();
            r.dedup();
            r
        } else {
            rand::seq::index::sample(&mut rng, self.n_rows, self.max_samples).into_vec()
        };
        let features: Vec<usize> = if self.max_features < self.n_cols {
            rand::seq::index::sample(&mut rng, self.n_cols, self.max_features).into_vec()
        } else {
            (0..self.n_cols).collect()
        };
        self.grow_on(&mut rows, &features, &mut rng)
    }

    fn grow_on(&self, rows: &mut [usize], features: &[usize], rng: &mut StdRng) -> Tree {
        let mut tree = Tree::default();
        tree.nodes.push(Node::Leaf { path_length: 0.0 });
        // (node, start, end, depth): the node's rows are rows[start..end].
        let mut stack = vec![(0usize, 0usize, rows.len(), 0usize)];
        let mut candidates: Vec<usize> = Vec::with_capacity(features.len());
        while let Some((node, start, end, depth)) = stack.pop() {
            let n = end - start;
            let node_rows = &mut rows[start..end];
            let split = if n <= 1 || depth >= self.max_depth {
                None
            } else {
                self.draw_split(node_rows, features, &mut candidates, rng)
            };
            let Some((feature, threshold)) = split else {
                tree.nodes[node] = Node::Leaf {
                    path_length: depth as f64 + average_path_length(n),
                };
                tree.depth = tree.depth.max(depth);
                continue;
            };
            let mid = start + self.partition(node_rows, feature, threshold);
            let left = tree.nodes.len();
            tree.nodes.extend([Node::Leaf { path_length: 0.0 }; 2]);
            tree.nodes[node] = Node::Split {
                feature: feature as u32,
                threshold,
                left: left as u32,
            };
            stack.push((left + 1, mid, end, depth + 1));
            stack.push((left, start, mid, depth + 1));
        }
        tree
    }

    /// Draws the split feature uniformly among the features that vary in the node, and a
    /// threshold uniform in [min, max) of it; `None` when every feature is constant there.
    fn draw_split(
        &self,
        node_rows: &[usize],
        features: &[usize],
        candidates: &mut Vec<usize>,
        rng: &mut StdRng,
    ) -> Option<(usize, f64)> {
        candidates.clear();
        candidates.extend_from_slice(features);
        // Draw among the remaining candidates; a constant one is swapped out of the range, so
        // the draw that succeeds is uniform among the non-constant features.
        let mut remaining = candidates.len();
        while remaining > 0 {
            let j = rng.random_range(0..remaining);
            let f = candidates[j];
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for &r in node_rows {
                let v = self.data[r * self.n_cols + f];
                lo = lo.min(v);
                hi = hi.max(v);
            }
            if hi <= lo + FEATURE_THRESHOLD {
                candidates.swap(j, remaining - 1);
                remaining -= 1;
                continue;
            }
            let mut t = lo + (hi - lo) * rng.random::<f64>();
            // Rounding can land on max, which would leave the right side empty; scikit-learn
            // moves the threshold to min then, and so do we.
            if t >= hi {
                t = lo;
            }
            return Some((f, t));
        }
        None
    }

    /// Moves the rows with `x[feature] <= threshold` to the front; returns how many there are.
    fn partition(&self, node_rows: &mut [usize], feature: usize, threshold: f64) -> usize {
        let mut mid = 0;
        for i in 0..node_rows.len() {
            if self.data[node_rows[i] * self.n_cols + feature] <= threshold {
                node_rows.swap(i, mid);
                mid += 1;
            }
        }
        mid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_known_values() {
        assert_eq!(average_path_length(0), 0.0);
        assert_eq!(average_path_length(1), 0.0);
        assert_eq!(average_path_length(2), 1.0);
        // 2 (ln 2 + γ) - 4/3, by hand.
        assert!((average_path_length(3) - 1.207_392_357_589_623).abs() < 1e-12);
        // c(256), the denominator for max_samples = 256 (scikit-learn's
        // _average_path_length([256])): 2 (ln 255 + γ) - 510/256.
        assert!((average_path_length(256) - 10.244_770_920_119_917).abs() < 1e-9);
    }

    #[test]
    fn depth_limit_is_ceil_log2() {
        assert_eq!(depth_limit(1), 1);
        assert_eq!(depth_limit(2), 1);
        assert_eq!(depth_limit(3), 2);
        assert_eq!(depth_limit(4), 2);
        assert_eq!(depth_limit(5), 3);
        assert_eq!(depth_limit(256), 8);
        assert_eq!(depth_limit(257), 9);
    }

    #[test]
    fn trees_respect_the_depth_limit_and_isolate_distinct_rows() {
        // 64 distinct rows on a line: without a limit a tree would often go deeper than 3.
        let data: Vec<f64> = (0..64).map(f64::from).collect();
        let spec = TreeSpec {
            data: &data,
            n_rows: 64,
            n_cols: 1,
            max_samples: 64,
            max_features: 1,
            bootstrap: false,
            max_depth: 3,
        };
        let forest = Forest::from_trees((0..20).map(|s| spec.grow(s)));
        assert_eq!(forest.max_depth(), 3);

        let deep = TreeSpec {
            max_depth: 100,
            ..spec
        };
        let forest = Forest::from_trees((0..5).map(|s| deep.grow(s)));
        // Unlimited, every leaf holds one row: 64 leaves, 63 splits.
        assert_eq!(forest.n_nodes(), 5 * 127);
    }

    #[test]
    fn constant_features_make_leaves() {
        // Four identical rows: nothing to split, one leaf of size 4.
        let data = vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0];
        let spec = TreeSpec {
            data: &data,
            n_rows: 4,
            n_cols: 2,
            max_samples: 4,
            max_features: 2,
            bootstrap: false,
            max_depth: 2,
        };
        let forest = Forest::from_trees([spec.grow(7)]);
        assert_eq!(forest.n_nodes(), 1);
        let mut out = [0.0];
        forest.path_length_sums(&[5.0, 5.0], 2, &mut out);
        assert_eq!(out[0], average_path_length(4));
    }

    /// Sums over the trees of a plain walk from each root, leaf test and child index per step.
    fn plain_sums(forest: &Forest, data: &[f64], n_cols: usize) -> Vec<f64> {
        let mut out = Vec::new();
        for row in data.chunks_exact(n_cols) {
            let mut sum = 0.0;
            for &root in &forest.roots {
                let mut i = root as usize;
                while forest.nodes[i].left as usize != i {
                    let n = forest.nodes[i];
                    i = n.left as usize + usize::from(row[n.feature as usize] > n.threshold);
                }
                sum += forest.path_length[i];
            }
            out.push(sum);
        }
        out
    }

    #[test]
    fn complete_and_node_walks_match_a_plain_walk_bit_for_bit() {
        // Depths 0 (constant column), 1, 5, 8 and 10; widths below, at and past 16 features;
        // row counts that leave partial groups and blocks.
        for (n, n_cols, max_samples, constant) in [
            (37, 1, 16, true),
            (300, 1, 2, false),
            (517, 5, 32, false),
            (1003, 16, 256, false),
            (611, 40, 1000, false),
        ] {
            let data: Vec<f64> = (0..n * n_cols)
                .map(|i| {
                    if constant {
                        3.0
                    } else {
                        ((i * 7919) % 1009) as f64 - 500.0
                    }
                })
                .collect();
            let spec = TreeSpec {
                data: &data,
                n_rows: n,
                n_cols,
                max_samples: max_samples.min(n),
                max_features: n_cols,
                bootstrap: false,
                max_depth: depth_limit(max_samples.min(n)),
            };
            let forest = Forest::from_trees((0..7).map(|s| spec.grow(s)));
            assert!(forest.complete.is_some());
            let plain = plain_sums(&forest, &data, n_cols);
            let mut complete = vec![0.0; n];
            forest.path_length_sums(&data, n_cols, &mut complete);
            let mut nodes = vec![0.0; n];
            forest.walk_nodes(&data, n_cols, &mut nodes);
            for k in 0..n {
                assert_eq!(
                    complete[k].to_bits(),
                    plain[k].to_bits(),
                    "{n_cols} cols, row {k}"
                );
                assert_eq!(
                    nodes[k].to_bits(),
                    plain[k].to_bits(),
                    "{n_cols} cols, row {k}"
                );
            }
        }
    }

    #[test]
    fn lockstep_scoring_matches_a_plain_walk() {
        // 1003 rows: full blocks, full lane groups and a remainder of each.
        let n = 1003;
        let data: Vec<f64> = (0..n * 3).map(|i| ((i * 7919) % 1009) as f64).collect();
        let spec = TreeSpec {
            data: &data,
            n_rows: n,
            n_cols: 3,
            max_samples: 256,
            max_features: 2,
            bootstrap: true,
            max_depth: depth_limit(256),
        };
        let forest = Forest::from_trees((0..10).map(|s| spec.grow(s)));
        let mut fast = vec![0.0; n];
        forest.path_length_sums(&data, 3, &mut fast);
        for (k, row) in data.chunks_exact(3).enumerate() {
            let mut plain = 0.0;
            for &root in &forest.roots {
                let mut i = root as usize;
                while forest.nodes[i].left as usize != i {
                    let n = forest.nodes[i];
                    i = n.left as usize + usize::from(row[n.feature as usize] > n.threshold);
                }
                plain += forest.path_length[i];
            }
            assert_eq!(fast[k], plain, "row {k}");
        }
    }
}
