//! Contextual anomaly detector: learns which quantised values follow which contexts, and scores a
//! row by how little of what it recognises it could have expected.

use super::{check_feature_ranges, check_row, ensure, score_series, StreamParamsError};
use crate::eval::nab::{probation_rows, PROBATION_PERCENT};
use crate::persist::StateError;
use crate::Result;
use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};
use std::collections::HashMap;
use std::ops::Range;

/// A fact: one bit of one feature's quantised value (below [`NEURON_BASE`]), or the activation of
/// a learnt context (`NEURON_BASE + context id`).
type Fact = u32;

/// First neuron fact; sensor facts stay below it (checked when building).
const NEURON_BASE: Fact = 1 << 31;

/// Most contexts a detector may be allowed to store: their ids must fit beside [`NEURON_BASE`].
const MAX_CONTEXTS: usize = (1 << 31) - 1;

/// Checked [`ContextDetector`] parameters; [`build`](Self::build) starts a detector.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextDetectorValidParams {
    value_bits: usize,
    max_left_facts: usize,
    max_active: usize,
    threshold: f64,
    rest_period: usize,
    feature_ranges: Option<Vec<(f64, f64)>>,
    range_rows: usize,
    max_contexts: usize,
}

impl ContextDetectorValidParams {
    /// Bits each value is quantised to (`2^value_bits` levels over its range).
    pub fn value_bits(&self) -> usize {
        self.value_bits
    }

    /// Longest left part of a context learnt by generalisation.
    pub fn max_left_facts(&self) -> usize {
        self.max_left_facts
    }

    /// Most recognised contexts carried into the next row's context.
    pub fn max_active(&self) -> usize {
        self.max_active
    }

    /// Scores at or above this are anomalous, and start a rest period.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Rows after a score at or above the threshold whose scores are reported as 0.
    pub fn rest_period(&self) -> usize {
        self.rest_period
    }

    /// Given value ranges, one `(min, max)` per feature; `None` takes them from the first
    /// `range_rows` rows.
    pub fn feature_ranges(&self) -> Option<&[(f64, f64)]> {
        self.feature_ranges.as_deref()
    }

    /// Rows whose minima and maxima become the ranges when none are given.
    pub fn range_rows(&self) -> usize {
        self.range_rows
    }

    /// Most contexts stored; past it the detector stops learning new ones.
    pub fn max_contexts(&self) -> usize {
        self.max_contexts
    }

    /// A detector for rows of `n_features` values (at least 1, and as many as given ranges).
    pub fn build(&self, n_features: usize) -> Result<ContextDetector> {
        ensure(n_features >= 1, "n_features", ">= 1", n_features as f64)?;
        // Two facts per bit per feature, all below the neuron facts.
        let sensor_facts = n_features.saturating_mul(self.value_bits).saturating_mul(2);
        ensure(
            sensor_facts < NEURON_BASE as usize,
            "n_features * value_bits",
            "< 2^30",
            (n_features.saturating_mul(self.value_bits)) as f64,
        )?;
        let ranges = match &self.feature_ranges {
            Some(r) if r.len() != n_features => {
                return Err(StreamParamsError::FeatureRangesCount {
                    got: r.len(),
                    n_features,
                }
                .into())
            }
            Some(r) => Some(r.clone()),
            None => {
                let values = self.range_rows.saturating_mul(n_features);
                ensure(
                    values <= 1 << 27,
                    "range_rows * n_features",
                    "<= 2^27 without feature_ranges",
                    values as f64,
                )?;
                None
            }
        };
        let mut det = ContextDetector {
            params: self.clone(),
            n_features,
            lo: vec![0.0; n_features],
            step: vec![1.0; n_features],
            top_level: (1u32 << self.value_bits) - 1,
            first_rows: Vec::new(),
            ranges_ready: false,
            memory: Memory::default(),
            group: Vec::new(),
            sensors: Vec::with_capacity(n_features * self.value_bits),
            next_group: Vec::new(),
            active: Vec::new(),
            proposed: Vec::new(),
            proposed_facts: Vec::new(),
            quiet: 0,
        };
        match ranges {
            Some(r) => det.set_ranges(&r),
            None => det.first_rows = Vec::with_capacity(self.range_rows * n_features),
        }
        Ok(det)
    }
}

/// Unchecked [`ContextDetector`] parameters, from [`ContextDetector::params`].
///
/// Defaults are the reference detector's (CAD OSE as submitted to NAB): values quantised to 3
/// bits, generalised contexts of at most 7 left facts, 15 active contexts carried forward,
/// threshold 0.75, a rest period of 30 rows; ranges from the first 150 rows when none are given
/// (NAB gives each file's minimum and maximum instead); at most 2^22 contexts (a few hundred
/// megabytes at worst).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextDetectorParams(ContextDetectorValidParams);

impl Default for ContextDetectorParams {
    fn default() -> Self {
        Self(ContextDetectorValidParams {
            value_bits: 3,
            max_left_facts: 7,
            max_active: 15,
            threshold: 0.75,
            rest_period: 30,
            feature_ranges: None,
            range_rows: 150,
            max_contexts: 1 << 22,
        })
    }
}

impl ContextDetectorParams {
    /// The defaults; the same as [`ContextDetector::params`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Bits each value is quantised to, in [1, 16].
    pub fn value_bits(mut self, bits: usize) -> Self {
        self.0.value_bits = bits;
        self
    }

    /// Longest left part (in facts) of a context learnt by generalising two others, in [1, 1000].
    pub fn max_left_facts(mut self, n: usize) -> Self {
        self.0.max_left_facts = n;
        self
    }

    /// Most recognised contexts (the most often confirmed) carried into the next row's context,
    /// in [1, 1000].
    pub fn max_active(mut self, n: usize) -> Self {
        self.0.max_active = n;
        self
    }

    /// Alarm level of the score, in (0, 1].
    pub fn threshold(mut self, t: f64) -> Self {
        self.0.threshold = t;
        self
    }

    /// Rows after a score at or above the threshold (the first rows included) reported as 0, in
    /// [0, 1000000]: one alarm per event instead of a burst.
    pub fn rest_period(mut self, n: usize) -> Self {
        self.0.rest_period = n;
        self
    }

    /// The range of a univariate detector's values: `feature_ranges(vec![(min, max)])`.
    pub fn value_range(self, min: f64, max: f64) -> Self {
        self.feature_ranges(vec![(min, max)])
    }

    /// Value ranges, one finite `(min, max)` with `min < max` per feature. Values outside are
    /// clamped into it.
    pub fn feature_ranges(mut self, ranges: Vec<(f64, f64)>) -> Self {
        self.0.feature_ranges = Some(ranges);
        self
    }

    /// Rows whose minima and maxima become the ranges when none are given, in [2, 1000000].
    pub fn range_rows(mut self, n: usize) -> Self {
        self.0.range_rows = n;
        self
    }

    /// Most contexts stored, in [1, 2^31 - 1].
    pub fn max_contexts(mut self, n: usize) -> Self {
        self.0.max_contexts = n;
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(&self) -> std::result::Result<&ContextDetectorValidParams, StreamParamsError> {
        let p = &self.0;
        ensure(
            (1..=16).contains(&p.value_bits),
            "value_bits",
            "in [1, 16]",
            p.value_bits as f64,
        )?;
        ensure(
            (1..=1000).contains(&p.max_left_facts),
            "max_left_facts",
            "in [1, 1000]",
            p.max_left_facts as f64,
        )?;
        ensure(
            (1..=1000).contains(&p.max_active),
            "max_active",
            "in [1, 1000]",
            p.max_active as f64,
        )?;
        ensure(
            p.threshold > 0.0 && p.threshold <= 1.0,
            "threshold",
            "in (0, 1]",
            p.threshold,
        )?;
        ensure(
            p.rest_period <= 1_000_000,
            "rest_period",
            "in [0, 1000000]",
            p.rest_period as f64,
        )?;
        ensure(
            (2..=1_000_000).contains(&p.range_rows),
            "range_rows",
            "in [2, 1000000]",
            p.range_rows as f64,
        )?;
        ensure(
            (1..=MAX_CONTEXTS).contains(&p.max_contexts),
            "max_contexts",
            "in [1, 2^31 - 1]",
            p.max_contexts as f64,
        )?;
        check_feature_ranges(p.feature_ranges.as_deref())?;
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(self) -> std::result::Result<ContextDetectorValidParams, StreamParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters and builds a detector for rows of `n_features` values.
    pub fn build(&self, n_features: usize) -> Result<ContextDetector> {
        self.check_ref()?.build(n_features)
    }
}

/// Contextual anomaly detector, after Smirnov's CAD OSE (Contextual Anomaly Detector, Open Source
/// Edition, winner of the 2016 NAB competition: 69.9 on NAB's standard profile).
///
/// **Facts.** Each value is clamped into its range and quantised to `value_bits` bits; bit `s` of
/// feature `f` with value `b` is the fact `2 (f * value_bits + s) + b`, so a row is
/// `n_features * value_bits` facts. A context is a pair of fact sets, a *left* part (what came
/// before) and a *right* part (what followed). Left parts mix sensor facts with *neuron* facts,
/// one per context that was recognised on the previous row, so the memory chains contexts into
/// sequences without a fixed window.
///
/// **Each row.** With `G` the previous row's left group (its sensor facts plus up to `max_active`
/// neuron facts) and `S` the row's sensor facts:
/// 1. `(G, S)` is stored as a context if new (a *zero-level* context: a transition seen once).
/// 2. Every stored context whose left part lies inside `G` is *selected*; one whose right part
///    also lies inside `S` predicted the row and is *active* (its confirmation count grows).
/// 3. Where a zero-level context and the row overlap only partly, the overlaps (left part at most
///    `max_left_facts` facts) are proposed as new, more general contexts — only on rows that
///    brought a new zero-level context, i.e. on something not seen before.
/// 4. The next left group is `S` plus the `max_active` most confirmed active contexts.
///
/// The score is `(1 - active / selected + new / proposed) / 2`: high when few of the contexts
/// that applied predicted the row, and when most of what the row proposes is new to the memory.
/// Any score at or above `threshold` starts a rest period of `rest_period` rows reported as 0,
/// and so do the first rows: one alarm per event.
///
/// **Cost.** Lookups go through hash maps and inverted lists (fact to the semi-contexts holding
/// it), so a row costs time in the number of stored parts that share a fact with it, plus the
/// contexts of the selected left parts. Memory grows with the distinct contexts met (at most
/// `max_contexts`; past it nothing new is learnt); per-row scratch buffers are reused. Scores are
/// deterministic: no randomness, and no hash map is ever iterated.
///
/// **Differences from the reference** (`nab/detectors/context_ose/` in numenta/NAB): semi-context
/// parts are keyed by their exact facts, not their hash; ties among equally confirmed active
/// contexts go to the newer context, not to the tuple hashes' order; the reference's context 0
/// is never selected (its "no new context" marker compares equal to id 0), here it is; a rest
/// period of 0 disables the rest instead of silencing every row; several features are allowed;
/// ranges can be learnt from the first rows; memory is capped.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextDetector {
    params: ContextDetectorValidParams,
    n_features: usize,
    lo: Vec<f64>,
    /// Width of one quantisation level per feature.
    step: Vec<f64>,
    top_level: u32,
    /// The first rows, kept until their ranges are known (no ranges given).
    first_rows: Vec<f64>,
    ranges_ready: bool,
    memory: Memory,
    /// Left group of the previous row, sorted.
    group: Vec<Fact>,
    /// Scratch: the row's sensor facts, sorted.
    sensors: Vec<Fact>,
    /// Scratch: the left group being built.
    next_group: Vec<Fact>,
    /// Scratch: active contexts as `(confirmations, id)`.
    active: Vec<(u32, u32)>,
    /// Scratch: proposed contexts as ranges of `proposed_facts` (left, right).
    proposed: Vec<(Range<usize>, Range<usize>)>,
    proposed_facts: Vec<Fact>,
    /// Consecutive latest rows scoring below the threshold (the first rows count as alarmed).
    quiet: usize,
}

impl ContextDetector {
    /// Default parameters, to adjust and then [`build`](ContextDetectorParams::build).
    pub fn params() -> ContextDetectorParams {
        ContextDetectorParams::default()
    }

    /// The parameters the detector runs with.
    pub fn valid_params(&self) -> &ContextDetectorValidParams {
        &self.params
    }

    /// Value ranges as `(min, max)` per feature, once known.
    pub fn working_ranges(&self) -> Option<Vec<(f64, f64)>> {
        let top = f64::from(self.top_level);
        self.ranges_ready.then(|| {
            self.lo
                .iter()
                .zip(&self.step)
                .map(|(&l, &s)| (l, l + s * top))
                .collect()
        })
    }

    /// Contexts stored so far.
    pub fn n_contexts(&self) -> usize {
        self.memory.contexts.len()
    }

    /// Scores the rows of `x` in order, learning from each; see [`super::score_series`].
    pub fn score_series(&mut self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        score_series(self, x)
    }

    fn set_ranges(&mut self, ranges: &[(f64, f64)]) {
        let top = f64::from(self.top_level);
        for ((lo, step), &(min, max)) in self.lo.iter_mut().zip(&mut self.step).zip(ranges) {
            *lo = min;
            // A constant feature (learnt ranges only) gets one level per unit.
            *step = if max > min { (max - min) / top } else { 1.0 };
        }
        self.ranges_ready = true;
    }

    /// Fixes the ranges from the buffered first rows and learns from those rows.
    fn learn_first_rows(&mut self) {
        let n = self.n_features;
        let rows = std::mem::take(&mut self.first_rows);
        let ranges: Vec<(f64, f64)> = (0..n)
            .map(|j| {
                rows.iter()
                    .skip(j)
                    .step_by(n)
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                        (a.min(x), b.max(x))
                    })
            })
            .collect();
        self.set_ranges(&ranges);
        for row in rows.chunks_exact(n) {
            self.step_row(row);
        }
    }

    /// The sorted sensor facts of `row` into `self.sensors`.
    fn encode(&mut self, row: &[f64]) {
        self.sensors.clear();
        let bits = self.params.value_bits;
        for (f, ((&x, &lo), &step)) in row.iter().zip(&self.lo).zip(&self.step).enumerate() {
            // Finite by `check_row`; the float-to-int cast saturates, and the level is clamped,
            // so values outside the range land on the end levels.
            let level = (((x - lo) / step).floor().max(0.0) as u32).min(self.top_level);
            for s in 0..bits {
                let base = ((f * bits + s) as Fact) << 1;
                self.sensors.push(base | ((level >> s) & 1));
            }
        }
        // Already ascending: facts grow with feature and bit.
        debug_assert!(self.sensors.windows(2).all(|w| w[0] < w[1]));
    }

    /// Scores and learns one row whose ranges are known; returns the score before the rest
    /// period.
    fn step_row(&mut self, row: &[f64]) -> f64 {
        self.encode(row);
        let max_left = self.params.max_left_facts as u32;
        let mem = &mut self.memory;

        // 1. The transition from the previous group to this row, as a zero-level context.
        let new_zero = if self.group.is_empty() {
            None
        } else {
            match mem.intern(&self.group, &self.sensors, true, self.params.max_contexts) {
                Some((id, true)) => Some(id),
                _ => None,
            }
        };

        // 2. Which right parts this row completes; left parts were crossed with `group` last row.
        mem.right.cross(&self.sensors);
        self.active.clear();
        self.proposed.clear();
        self.proposed_facts.clear();
        let mut selected = 0usize;
        for &l in &mem.left.crossed {
            let left = l as usize;
            let left_full = mem.left.is_full(left);
            // A partial left part only ever proposes, and only on a row with a new transition.
            if !left_full && new_zero.is_none() {
                continue;
            }
            let left_matched = mem.left.matched[left];
            for &c in &mem.by_left[left] {
                if Some(c) == new_zero {
                    continue;
                }
                let ctx = &mut mem.contexts[c as usize];
                let right = ctx.right as usize;
                let right_matched = mem.right.matched[right];
                if left_full {
                    selected += 1;
                }
                if right_matched == 0 {
                    continue;
                }
                if left_full && mem.right.is_full(right) {
                    ctx.confirmed = ctx.confirmed.saturating_add(1);
                    self.active.push((ctx.confirmed, c));
                } else if ctx.zero_level && new_zero.is_some() && left_matched <= max_left {
                    // 3. Generalise: the parts of this transition the row shares.
                    let a = self.proposed_facts.len();
                    mem.left
                        .intersect_into(left, &self.group, &mut self.proposed_facts);
                    let b = self.proposed_facts.len();
                    mem.right
                        .intersect_into(right, &self.sensors, &mut self.proposed_facts);
                    self.proposed.push((a..b, b..self.proposed_facts.len()));
                }
            }
        }
        let predicted = if selected > 0 {
            self.active.len() as f64 / selected as f64
        } else {
            0.0
        };

        // 4. The next group: this row's facts and the most confirmed active contexts (ties to
        // the newer), in any order since the group is sorted next.
        let keep = self.params.max_active.min(self.active.len());
        if keep < self.active.len() {
            self.active.select_nth_unstable_by(keep, |a, b| b.cmp(a));
        }
        self.next_group.clear();
        self.next_group.extend_from_slice(&self.sensors);
        self.next_group
            .extend(self.active[..keep].iter().map(|&(_, c)| NEURON_BASE + c));
        self.next_group.sort_unstable();

        // Store the proposals, counting the really new ones among the distinct ones.
        let mut novelty = 0.0;
        if new_zero.is_some() {
            let facts = &self.proposed_facts;
            let key = |p: &(Range<usize>, Range<usize>)| (&facts[p.0.clone()], &facts[p.1.clone()]);
            self.proposed.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
            self.proposed.dedup_by(|a, b| key(a) == key(b));
            let zero_key = (self.group.as_slice(), self.sensors.as_slice());
            let mut distinct = self.proposed.len() + 1;
            let mut added = 1usize;
            for p in &self.proposed {
                let (l, r) = key(p);
                if (l, r) == zero_key {
                    distinct -= 1;
                } else if let Some((_, true)) = mem.intern(l, r, false, self.params.max_contexts) {
                    added += 1;
                }
            }
            novelty = added as f64 / distinct as f64;
        }

        std::mem::swap(&mut self.group, &mut self.next_group);
        mem.left.cross(&self.group);
        (1.0 - predicted + novelty) / 2.0
    }
}

impl StreamingDetector for ContextDetector {
    fn n_features(&self) -> usize {
        self.n_features
    }

    fn update(&mut self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.n_features)?;
        if !self.ranges_ready {
            self.first_rows.extend_from_slice(row);
            if self.first_rows.len() == self.params.range_rows * self.n_features {
                self.learn_first_rows();
            }
            return Ok(0.0);
        }
        let raw = self.step_row(row);
        let reported = if self.quiet >= self.params.rest_period {
            raw
        } else {
            0.0
        };
        self.quiet = if raw >= self.params.threshold {
            0
        } else {
            self.quiet.saturating_add(1)
        };
        Ok(reported)
    }

    /// Scoring learns contexts as it goes (the crossing state and the confirmations move), so
    /// this scores a copy: it costs a copy of everything learnt.
    fn score(&self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        check_row(row, self.n_features)?;
        self.clone().update(row)
    }

    fn threshold(&self) -> f64 {
        self.params.threshold
    }
}

/// What the detector has learnt: left and right semi-contexts and the contexts pairing them.
#[derive(Debug, Clone, PartialEq, Default)]
struct Memory {
    left: SemiContexts,
    right: SemiContexts,
    contexts: Vec<Context>,
    /// Context id of each stored (left, right) pair.
    ids: HashMap<(u32, u32), u32>,
    /// Contexts of each left semi-context, in creation order.
    by_left: Vec<Vec<u32>>,
}

impl Memory {
    /// The id of context `(left, right)` and whether it is new, storing it if new (unless the
    /// memory is full: `None`). Storing with `zero_level` marks an existing context too.
    fn intern(
        &mut self,
        left: &[Fact],
        right: &[Fact],
        zero_level: bool,
        max_contexts: usize,
    ) -> Option<(u32, bool)> {
        if let (Some(l), Some(r)) = (self.left.id(left), self.right.id(right)) {
            if let Some(&c) = self.ids.get(&(l, r)) {
                let ctx = &mut self.contexts[c as usize];
                ctx.zero_level |= zero_level;
                return Some((c, false));
            }
        }
        if self.contexts.len() >= max_contexts {
            return None;
        }
        let l = self.left.get_or_insert(left);
        let r = self.right.get_or_insert(right);
        if self.by_left.len() <= l as usize {
            self.by_left.resize_with(l as usize + 1, Vec::new);
        }
        // Below max_contexts <= 2^31 - 1, so the id fits.
        let c = self.contexts.len() as u32;
        self.contexts.push(Context {
            right: r,
            confirmed: 0,
            zero_level,
        });
        self.ids.insert((l, r), c);
        self.by_left[l as usize].push(c);
        Some((c, true))
    }
}

/// A learnt context: its right part and how often it was confirmed.
#[derive(Debug, Clone, PartialEq)]
struct Context {
    right: u32,
    confirmed: u32,
    /// Stored (or met again) as a whole transition rather than as a generalisation.
    zero_level: bool,
}

/// Distinct fact sets (one side of contexts), with an inverted index from fact to sets, and how
/// much of each set the latest crossing matched.
#[derive(Debug, Clone, PartialEq, Default)]
struct SemiContexts {
    facts: Vec<Box<[Fact]>>,
    ids: HashMap<Box<[Fact]>, u32>,
    postings: HashMap<Fact, Vec<u32>>,
    /// Facts of each set present in the latest crossing.
    matched: Vec<u32>,
    /// Sets with at least one fact in the latest crossing, in the order the crossing met them
    /// (deterministic; nothing downstream depends on it, the proposals and the active contexts
    /// are ordered by their own keys).
    crossed: Vec<u32>,
    /// Number of facts of each set.
    sizes: Vec<u32>,
}

impl SemiContexts {
    fn id(&self, facts: &[Fact]) -> Option<u32> {
        self.ids.get(facts).copied()
    }

    fn get_or_insert(&mut self, facts: &[Fact]) -> u32 {
        if let Some(id) = self.id(facts) {
            return id;
        }
        // Fewer sets than contexts, so the id fits as the context ids do.
        let id = self.facts.len() as u32;
        for &f in facts {
            self.postings.entry(f).or_default().push(id);
        }
        let boxed: Box<[Fact]> = facts.into();
        self.ids.insert(boxed.clone(), id);
        self.facts.push(boxed);
        self.matched.push(0);
        // Sets are parts of rows and groups, far below 2^32 facts.
        self.sizes.push(facts.len() as u32);
        id
    }

    /// Counts, for every set, its facts present in `input`.
    fn cross(&mut self, input: &[Fact]) {
        for &id in &self.crossed {
            self.matched[id as usize] = 0;
        }
        self.crossed.clear();
        for f in input {
            for &id in self.postings.get(f).map_or(&[][..], Vec::as_slice) {
                let m = &mut self.matched[id as usize];
                if *m == 0 {
                    self.crossed.push(id);
                }
                *m += 1;
            }
        }
    }

    fn is_full(&self, id: usize) -> bool {
        self.matched[id] == self.sizes[id]
    }

    /// Appends the facts of set `id` also in `input` (both sorted) to `out`, in order.
    fn intersect_into(&self, id: usize, input: &[Fact], out: &mut Vec<Fact>) {
        let set = &self.facts[id];
        let (mut i, mut j) = (0, 0);
        while i < set.len() && j < input.len() {
            match set[i].cmp(&input[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    out.push(set[i]);
                    i += 1;
                    j += 1;
                }
            }
        }
    }
}

/// One stored context in a model file: its left and right semi-contexts, confirmations and
/// whether it was stored as a whole transition.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextState {
    left: u32,
    right: u32,
    confirmed: u32,
    zero_level: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ContextDetectorState {
    value_bits: usize,
    max_left_facts: usize,
    max_active: usize,
    threshold: f64,
    rest_period: usize,
    feature_ranges: Option<Vec<(f64, f64)>>,
    range_rows: usize,
    max_contexts: usize,
    /// Lower end and level width per feature (meaningful once `ranges_ready`).
    lo: Vec<f64>,
    step: Vec<f64>,
    ranges_ready: bool,
    /// The first rows, row after row, while the ranges are being learnt.
    first_rows: Vec<f64>,
    /// Left and right semi-contexts (sorted fact sets); ids are positions.
    left: Vec<Vec<u32>>,
    right: Vec<Vec<u32>>,
    /// Contexts in id order.
    contexts: Vec<ContextState>,
    /// The previous row's group (sorted facts).
    group: Vec<u32>,
    quiet: usize,
}

impl crate::persist::Persist for ContextDetector {
    const KIND: &'static str = "context_detector";
    type State = ContextDetectorState;

    fn feature_names(&self) -> Vec<String> {
        crate::persist::numbered_names(self.n_features)
    }

    fn state(&self) -> ContextDetectorState {
        let p = &self.params;
        let mem = &self.memory;
        let mut left_of = vec![0u32; mem.contexts.len()];
        for (l, ids) in mem.by_left.iter().enumerate() {
            for &c in ids {
                left_of[c as usize] = l as u32;
            }
        }
        let sets = |s: &SemiContexts| s.facts.iter().map(|f| f.to_vec()).collect();
        ContextDetectorState {
            value_bits: p.value_bits,
            max_left_facts: p.max_left_facts,
            max_active: p.max_active,
            threshold: p.threshold,
            rest_period: p.rest_period,
            feature_ranges: p.feature_ranges.clone(),
            range_rows: p.range_rows,
            max_contexts: p.max_contexts,
            lo: self.lo.clone(),
            step: self.step.clone(),
            ranges_ready: self.ranges_ready,
            first_rows: self.first_rows.clone(),
            left: sets(&mem.left),
            right: sets(&mem.right),
            contexts: mem
                .contexts
                .iter()
                .zip(left_of)
                .map(|(c, left)| ContextState {
                    left,
                    right: c.right,
                    confirmed: c.confirmed,
                    zero_level: c.zero_level,
                })
                .collect(),
            group: self.group.clone(),
            quiet: self.quiet,
        }
    }

    fn from_state(
        s: ContextDetectorState,
        names: Vec<String>,
    ) -> std::result::Result<Self, StateError> {
        let n = names.len();
        let mut params = ContextDetector::params()
            .value_bits(s.value_bits)
            .max_left_facts(s.max_left_facts)
            .max_active(s.max_active)
            .threshold(s.threshold)
            .rest_period(s.rest_period)
            .range_rows(s.range_rows)
            .max_contexts(s.max_contexts);
        if let Some(r) = s.feature_ranges {
            params = params.feature_ranges(r);
        }
        let mut det = params.build(n).map_err(StateError::params)?;
        let finite = |v: &[f64]| v.iter().all(|x| x.is_finite());
        if s.lo.len() != n || s.step.len() != n || !finite(&s.lo) || !finite(&s.step) {
            return Err(StateError::new(
                "lo",
                format!("the ranges need {n} finite lower ends and level widths"),
            ));
        }
        if s.step.iter().any(|&w| w <= 0.0) {
            return Err(StateError::new("step", "level widths must be positive"));
        }
        let first_ok = if s.ranges_ready {
            s.first_rows.is_empty()
        } else {
            s.first_rows.len() % n == 0
                && s.first_rows.len() < det.params.range_rows * n
                && finite(&s.first_rows)
        };
        if !first_ok {
            return Err(StateError::new(
                "first_rows",
                format!(
                    "{} values of the first rows kept (ranges learnt: {})",
                    s.first_rows.len(),
                    s.ranges_ready
                ),
            ));
        }
        if det.ranges_ready && !s.ranges_ready {
            return Err(StateError::new(
                "ranges_ready",
                "the detector was given its ranges, so they cannot still be learnt",
            ));
        }
        if s.contexts.len() > det.params.max_contexts {
            return Err(StateError::new(
                "contexts",
                format!(
                    "{} contexts stored, above max_contexts {}",
                    s.contexts.len(),
                    det.params.max_contexts
                ),
            ));
        }
        // Sensor facts stay below the neuron facts; neuron facts name stored contexts.
        let sensor_facts = (n * det.params.value_bits * 2) as Fact;
        let n_contexts = s.contexts.len() as Fact;
        let fact_ok =
            |f: Fact| f < sensor_facts || (f >= NEURON_BASE && f - NEURON_BASE < n_contexts);
        let set_ok =
            |set: &[Fact]| set.windows(2).all(|w| w[0] < w[1]) && set.iter().all(|&f| fact_ok(f));
        if !s.left.iter().chain(&s.right).all(|set| set_ok(set)) || !set_ok(&s.group) {
            return Err(StateError::new(
                "left",
                "a fact set is unsorted, repeated or names an unknown fact",
            ));
        }
        let mem = &mut det.memory;
        for (side, sets) in [(&mut mem.left, &s.left), (&mut mem.right, &s.right)] {
            for set in sets {
                if side.id(set).is_some() {
                    return Err(StateError::new("left", "a semi-context is stored twice"));
                }
                side.get_or_insert(set);
            }
        }
        mem.by_left = vec![Vec::new(); mem.left.facts.len()];
        for (c, ctx) in s.contexts.iter().enumerate() {
            let (l, r) = (ctx.left as usize, ctx.right as usize);
            if l >= mem.left.facts.len() || r >= mem.right.facts.len() {
                return Err(StateError::new(
                    "contexts",
                    format!("context {c} names a semi-context that is not stored"),
                ));
            }
            if mem.ids.insert((ctx.left, ctx.right), c as u32).is_some() {
                return Err(StateError::new(
                    "contexts",
                    format!("context {c} is stored twice"),
                ));
            }
            mem.by_left[l].push(c as u32);
            mem.contexts.push(Context {
                right: ctx.right,
                confirmed: ctx.confirmed,
                zero_level: ctx.zero_level,
            });
        }
        det.lo = s.lo;
        det.step = s.step;
        det.ranges_ready = s.ranges_ready;
        if !s.ranges_ready {
            det.first_rows.extend_from_slice(&s.first_rows);
        }
        det.group = s.group;
        // The crossing of the left parts with the group, as the last row left it.
        det.memory.left.cross(&det.group);
        det.quiet = s.quiet;
        Ok(det)
    }
}

crate::persist::persistable!(ContextDetector);

impl super::registry::Registered for ContextDetector {
    const NAME: &'static str = "context";
    const SUMMARY: &'static str =
        "Streaming contextual anomaly detector (after CAD OSE); on NAB it gets each file's value \
         range and a rest period of a fifth of the probation, NAB's protocol";
    type Params = ContextDetectorParams;

    fn build(params: &ContextDetectorParams, n_features: usize) -> Result<Self> {
        params.build(n_features)
    }

    fn valid(&self) -> &ContextDetectorValidParams {
        self.valid_params()
    }

    /// The file's minimum and maximum as the value range (a constant file gets `(min, min + 1)`)
    /// and a rest period of a fifth of the probation, as the reference NAB runner does.
    fn for_nab_file(params: &ContextDetectorParams, values: &[f64]) -> ContextDetectorParams {
        let (min, max) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let mut p = params.clone();
        if min.is_finite() && max.is_finite() {
            p = p.value_range(min, if max > min { max } else { min + 1.0 });
        }
        let probation = probation_rows(values.len(), PROBATION_PERCENT);
        p.rest_period(probation / 5)
    }

    /// Its scores are already in [0, 1], and its rest period already thins its alarms.
    fn nab_mapping() -> super::ScoreMapping {
        super::ScoreMapping::Raw
    }
}

super::registry::keyed_params!(ContextDetectorParams => ContextDetectorValidParams {
    "value_bits" => value_bits,
    "max_left_facts" => max_left_facts,
    "max_active" => max_active,
    "threshold" => threshold,
    "rest_period" => rest_period,
    "feature_ranges" => feature_ranges,
    "range_rows" => range_rows,
    "max_contexts" => max_contexts,
});

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_deterministic, behaviour, gaussian, run};
    use super::*;

    /// A sine of period 25 between -1 and 1, the kind of repeating pattern the detector learns.
    fn sine(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (std::f64::consts::TAU * i as f64 / 25.0).sin())
            .collect()
    }

    fn on_sine() -> ContextDetector {
        ContextDetector::params()
            .value_range(-1.0, 1.0)
            .build(1)
            .expect("build")
    }

    fn max(xs: &[f64]) -> f64 {
        xs.iter().fold(0.0f64, |m, &s| m.max(s))
    }

    #[test]
    fn learns_a_repeating_pattern_then_flags_a_spike() {
        let mut det = on_sine();
        let mut xs = sine(3000);
        // A value in range, but one the pattern never takes at that phase (near its peak).
        xs[2506] = -xs[2506];
        let scores = run(&mut det, &xs);
        let thr = det.threshold();
        assert!(
            max(&scores[1500..2506]) < thr,
            "{}",
            max(&scores[1500..2506])
        );
        assert!(scores[2506] >= thr, "spike scored {}", scores[2506]);
    }

    #[test]
    fn flags_a_level_shift() {
        let mut det = on_sine();
        let xs: Vec<f64> = sine(3000)
            .into_iter()
            .enumerate()
            .map(|(i, x)| if i >= 2500 { 0.5 * x + 0.5 } else { x })
            .collect();
        let scores = run(&mut det, &xs);
        let thr = det.threshold();
        assert!(max(&scores[1500..2500]) < thr);
        assert!(
            max(&scores[2500..2525]) >= thr,
            "{}",
            max(&scores[2500..2525])
        );
    }

    #[test]
    fn rest_period_reports_zero_after_an_alarm() {
        let mut xs = sine(3000);
        xs[2506] = -xs[2506];
        xs[2516] = -xs[2516];
        let scores = |rest: usize| {
            let mut det = ContextDetector::params()
                .value_range(-1.0, 1.0)
                .rest_period(rest)
                .build(1)
                .expect("build");
            run(&mut det, &xs)
        };
        let (none, long) = (scores(0), scores(30));
        // Without a rest the first rows already score (nothing is known yet), and so does the
        // second anomaly; with it both are silenced.
        let at = |s: &[f64], i: usize| (s[i], i);
        assert!(none[0] > 0.0, "{:?}", at(&none, 0));
        assert!(none[2506] >= 0.75, "{:?}", at(&none, 2506));
        assert!(none[2516] >= 0.75, "{:?}", at(&none, 2516));
        assert!(long[..30].iter().all(|&s| s == 0.0));
        assert!(long[2506] >= 0.75, "{:?}", at(&long, 2506));
        assert!(long[2507..2537].iter().all(|&s| s == 0.0));
        assert!(max(&long[2537..]) < 0.75);
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut at_ends = on_sine();
        let mut beyond = on_sine();
        let xs = sine(600);
        for (i, &x) in xs.iter().enumerate() {
            let far = if x > 0.9 {
                1e300
            } else if x < -0.9 {
                -f64::MAX
            } else {
                x
            };
            let near = far.clamp(-1.0, 1.0);
            let (a, b) = (at_ends.update(&[near]), beyond.update(&[far]));
            assert_eq!(a, b, "row {i}");
            assert!(b.expect("row").is_finite());
        }
        assert_eq!(at_ends, beyond);
    }

    #[test]
    fn ranges_are_learnt_from_the_first_rows() {
        let xs = sine(400);
        let mut det = ContextDetector::params()
            .range_rows(50)
            .build(1)
            .expect("build");
        assert_eq!(det.working_ranges(), None);
        let scores = run(&mut det, &xs);
        assert!(scores[..50].iter().all(|&s| s == 0.0));
        let (lo, hi) = det.working_ranges().expect("learnt")[0];
        let (min, max) = xs[..50]
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        assert_eq!(lo, min);
        assert!((hi - max).abs() < 1e-12);
        assert!(det.n_contexts() > 0);
        // A constant start still gives a usable range.
        let mut flat = ContextDetector::params()
            .range_rows(5)
            .build(1)
            .expect("build");
        let s = run(&mut flat, &[3.0; 40]);
        assert!(s.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn same_rows_same_scores() {
        assert_deterministic(|| Box::new(ContextDetector::params().build(1).expect("build")));
    }

    #[test]
    fn on_gaussian_noise_alarms_are_rare_and_a_shift_is_flagged() {
        // The +8 sigma shift lands on the top level (clamped) for good, a run of transitions
        // never seen: flagged. A lone +10 sigma spike is not (about 0.8 thresholds): clamped, it
        // is the top level, which noise visits too, and the quantised contexts of noise are
        // never confident. Values are not distances here; a tighter range would separate it.
        let b = behaviour(|| {
            Box::new(
                ContextDetector::params()
                    .value_range(-3.0, 3.0)
                    .build(1)
                    .expect("build"),
            )
        });
        println!("ContextDetector {b:?}");
        assert!(b.false_alarm_rate < 0.01, "{b:?}");
        assert!(b.shift >= 1.0, "{b:?}");
    }

    #[test]
    fn two_features_flag_a_change_in_either() {
        let mut det = ContextDetector::params()
            .feature_ranges(vec![(-1.0, 1.0), (-1.0, 1.0)])
            .build(2)
            .expect("build");
        let a = sine(3000);
        let thr = det.threshold();
        let mut scores = Vec::new();
        for (i, &x) in a.iter().enumerate() {
            let y = if i == 2506 { x } else { -x };
            scores.push(det.update(&[x, y]).expect("row"));
        }
        assert!(max(&scores[1500..2506]) < thr);
        assert!(scores[2506] >= thr, "{}", scores[2506]);
    }

    #[test]
    fn memory_is_capped() {
        let mut det = ContextDetector::params()
            .max_contexts(10)
            .value_range(-4.0, 4.0)
            .build(1)
            .expect("build");
        let scores = run(&mut det, &gaussian(500, 3));
        assert_eq!(det.n_contexts(), 10);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn bad_rows_leave_the_state_alone() {
        let mut det = ContextDetector::params()
            .feature_ranges(vec![(0.0, 1.0), (0.0, 1.0)])
            .build(2)
            .expect("build");
        for i in 0..50 {
            det.update(&[(i % 5) as f64 / 4.0, 0.5]).expect("row");
        }
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
        assert_eq!(
            det.update(&[f64::INFINITY, 0.0]),
            Err(detector::DetectError::NotFinite { row: 0, col: 0 })
        );
        assert_eq!(det, before);
    }

    #[test]
    fn errors_name_the_parameter_and_its_range() {
        let err = |p: ContextDetectorParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = ContextDetector::params;
        assert_eq!(err(p()), "accepted");
        let cases: [(ContextDetectorParams, &str); 12] = [
            (p(), "accepted"),
            (p().value_bits(0), "value_bits must be in [1, 16], got 0"),
            (p().value_bits(17), "value_bits must be in [1, 16], got 17"),
            (
                p().max_left_facts(0),
                "max_left_facts must be in [1, 1000], got 0",
            ),
            (
                p().max_active(1001),
                "max_active must be in [1, 1000], got 1001",
            ),
            (
                p().threshold(f64::NAN),
                "threshold must be in (0, 1], got NaN",
            ),
            (p().threshold(0.0), "threshold must be in (0, 1], got 0"),
            (
                p().rest_period(1_000_001),
                "rest_period must be in [0, 1000000], got 1000001",
            ),
            (
                p().range_rows(1),
                "range_rows must be in [2, 1000000], got 1",
            ),
            (
                p().max_contexts(0),
                "max_contexts must be in [1, 2^31 - 1], got 0",
            ),
            (
                p().value_range(1.0, 1.0),
                "feature_ranges[0] must be finite with min < max and a finite max - min, got (1, 1)",
            ),
            (
                p().value_range(0.0, f64::INFINITY),
                "feature_ranges[0] must be finite with min < max and a finite max - min, got (0, inf)",
            ),
        ];
        for (params, message) in cases {
            assert_eq!(err(params), message);
        }
        assert_eq!(
            p().value_range(0.0, 1.0)
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
            p().build(0).map(|_| ()).map_err(|e| e.to_string()),
            Err("invalid parameter: n_features must be >= 1, got 0".to_owned())
        );
    }
}
