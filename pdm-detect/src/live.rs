//! Live scoring: pdm-core's [`ModelFactory`] seam for every model kind of this crate.
//!
//! [`DetectFactory`] turns the bytes of a model file into a [`LiveModel`] that scores one
//! machine's aligned rows one at a time, and trains new model files from aligned training rows.
//! What each kind does live (`docs/detection.md`, "Live scoring", says the same at length):
//!
//! - `pipeline`: a trailing buffer of the last `window` rows; each row scores its window by the
//!   operations of [`Pipeline::scores`] on one window, without allocating, so the live scores of
//!   a series equal `scores` of the whole series bit for bit. Warm-up `window - 1` rows; [`LiveModel::reset`] empties the window.
//! - `isolation_forest`, `pca_detector`: each row alone through [`Detector::score`]; no
//!   warm-up. (A `pca_detector` file scores the row as given: it must have been fitted on rows
//!   in the same units.)
//! - every streaming kind ([`StreamKind`]): `score` is [`StreamingDetector::update`] (scores,
//!   then learns), and so is `warm`; the state stored in the file is the starting state.
//! - all kinds: a [`HealthIndex`] (default parameters) of the scores and their threshold gives
//!   `health`, and [`RulParams`] (defaults) over the last `window` health points, one per
//!   [`TREND_STEP_S`] of row time, gives `rul_s` while the health is below [`DEGRADED_BELOW`].
//!   Warm rows are not scored, so they do not move health.
//! - contributions, for anomalous rows only (score above threshold): the PCA decomposition
//!   ([`pca_attribution`]) for `pipeline` (of the scaled window means, one per channel) and
//!   `pca_detector`; none for `isolation_forest` (median replacement needs the training rows,
//!   which a model file does not keep) and the streaming kinds (none has an attribution).
//!
//! ```
//! use pdm_core::align::AlignConfig;
//! use pdm_core::live::{ModelFactory, TrainSpec, TrainingRows};
//! use pdm_core::SensorKey;
//! use pdm_detect::DetectFactory;
//!
//! let align = AlignConfig {
//!     channels: vec![SensorKey::new("flow")?, SensorKey::new("current")?],
//!     sample_period_ms: 1_000,
//!     max_gap_ms: 5_000,
//! };
//! // 400 rows of two channels driven by one load.
//! let row = |i: usize| {
//!     let load = ((i * 37) % 101) as f64 / 100.0;
//!     [load, 2.0 * load + ((i * 7) % 11) as f64 / 200.0]
//! };
//! let rows = TrainingRows { n_cols: 2, segments: vec![(0..400).flat_map(row).collect()] };
//! let spec = TrainSpec { kind: None, params: r#"{"window": 5}"#.into(), align: align.clone() };
//! let trained = DetectFactory.train(&spec, &rows, &mut |_| true)?;
//! assert_eq!(trained.kind, "pipeline");
//!
//! let mut live = DetectFactory.load(&trained.bytes, &align)?;
//! assert_eq!(live.warmup_rows(), 4);
//! for i in 0..4 {
//!     assert_eq!(live.score(i as i64 * 1_000, &row(i))?, None); // filling the window
//! }
//! let s = live.score(4_000, &row(4))?.expect("a full window");
//! assert!(s.score < s.threshold && s.contributions.is_empty());
//! assert!(s.health.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ndarray::ArrayView2;
use pdm_core::align::AlignConfig;
use pdm_core::detector::{Detector, Rows, StreamingDetector};
use pdm_core::live::{
    LiveModel, LiveScore, ModelError, ModelFactory, ModelInfo, TrainSpec, Trained, TrainingRows,
};
use pdm_core::prediction::MAX_CONTRIBUTIONS;
use serde_json::{json, Map, Value};

use crate::attribution::{pca_attribution, PcaStatistic};
use crate::features::window_mean;
use crate::health::{HealthIndex, RulParams, RulValidParams};
use crate::pca::RowScratch;
use crate::persist::{self, Model};
use crate::stream::{ParamType, ParamValue, StreamKind, StreamModel, StreamSpec};
use crate::{
    Contamination, DetectError, IsolationForest, MaxFeatures, MaxSamples, NComponents, PcaDetector,
    Pipeline,
};

/// The kinds a model file can hold that score rows live.
fn scoring_kinds() -> String {
    let mut kinds = vec!["pipeline", "isolation_forest", "pca_detector"];
    kinds.extend(StreamKind::ALL.iter().map(|k| k.file_kind()));
    kinds.join(", ")
}

/// The kinds [`DetectFactory::train`] fits.
fn trainable_kinds() -> String {
    let mut kinds = vec!["pipeline", "isolation_forest"];
    kinds.extend(StreamKind::ALL.iter().map(|k| k.file_kind()));
    kinds.join(", ")
}

fn file_error(e: DetectError) -> ModelError {
    ModelError::File(e.to_string())
}

/// The [`ModelFactory`] of pdm-detect: every kind of model file this crate writes that scores
/// rows, and training of the default pipeline, the Isolation Forest and the streaming kinds.
/// See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectFactory;

impl DetectFactory {
    fn read(bytes: &[u8]) -> Result<Model, ModelError> {
        let model = persist::from_bytes(bytes).map_err(file_error)?;
        match &model {
            Model::StandardScaler(_) | Model::RobustScaler(_) | Model::HealthIndex(_) => {
                Err(ModelError::File(format!(
                    "a {} model file cannot score rows on its own; live scoring takes {}",
                    model.kind(),
                    scoring_kinds()
                )))
            }
            _ => Ok(model),
        }
    }
}

/// Feature names and warm-up of a model that scores rows, read from `bytes`, its file.
fn describe(model: &Model, bytes: &[u8]) -> (Vec<String>, usize) {
    match model {
        Model::Pipeline(p) => (p.channels().to_vec(), p.fit_params().window() - 1),
        Model::IsolationForest(f) => (f.feature_names().to_vec(), 0),
        Model::PcaDetector(p) => (p.feature_names().to_vec(), 0),
        // Streaming detectors keep only a feature count; the file's envelope holds the names
        // (`x0`, `x1`, ... unless trained here, which writes the channels).
        Model::Streaming(_) => (envelope_names(bytes), 0),
        // Refused by `read`.
        Model::StandardScaler(_) | Model::RobustScaler(_) | Model::HealthIndex(_) => {
            (Vec::new(), 0)
        }
    }
}

/// The `feature_names` of a model file's envelope (already checked by `persist::from_bytes`).
fn envelope_names(bytes: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("feature_names")?
                .as_array()?
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl ModelFactory for DetectFactory {
    fn default_kind(&self) -> &str {
        "pipeline"
    }

    fn inspect(&self, bytes: &[u8]) -> Result<ModelInfo, ModelError> {
        let model = Self::read(bytes)?;
        let (feature_names, warmup_rows) = describe(&model, bytes);
        Ok(ModelInfo {
            kind: model.kind().to_owned(),
            feature_names,
            warmup_rows,
        })
    }

    fn load(&self, bytes: &[u8], align: &AlignConfig) -> Result<Box<dyn LiveModel>, ModelError> {
        align
            .check()
            .map_err(|e| ModelError::Mismatch(e.to_string()))?;
        let model = Self::read(bytes)?;
        let (names, _) = describe(&model, bytes);
        let channels: Vec<&str> = align.channels.iter().map(|c| c.as_str()).collect();
        if names != channels {
            return Err(ModelError::Mismatch(format!(
                "the {} model's features are [{}] but the rows' channels are [{}]; they must be \
                 the same, in the same order",
                model.kind(),
                names.join(", "),
                channels.join(", ")
            )));
        }
        let core = match model {
            Model::Pipeline(p) => Core::Pipeline(Box::new(Window::new(*p))),
            Model::IsolationForest(f) => Core::Forest(f),
            Model::PcaDetector(p) => Core::Pca(p),
            Model::Streaming(s) => Core::Stream(s),
            Model::StandardScaler(_) | Model::RobustScaler(_) | Model::HealthIndex(_) => {
                return Err(ModelError::File("not a scoring model".into()));
            }
        };
        Ok(Box::new(Live::new(core, names)))
    }

    fn train(
        &self,
        spec: &TrainSpec,
        rows: &TrainingRows,
        progress: &mut dyn FnMut(f64) -> bool,
    ) -> Result<Trained, ModelError> {
        let kind = spec.kind.as_deref().unwrap_or(self.default_kind());
        spec.align
            .check()
            .map_err(|e| ModelError::Params(e.to_string()))?;
        let params = parse_params(&spec.params)?;
        let channels: Vec<String> = spec
            .align
            .channels
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        let segments = segments(rows, channels.len())?;
        let mut step = |f: f64| {
            if progress(f) {
                Ok(())
            } else {
                Err(ModelError::Data("training cancelled".into()))
            }
        };
        step(0.0)?;
        let trained = match kind {
            "pipeline" => train_pipeline(&params, &segments, &channels, &mut step)?,
            "isolation_forest" => train_forest(&params, &segments, &channels, &mut step)?,
            other => match StreamKind::by_file_kind(other).or_else(|| StreamKind::by_name(other)) {
                Some(k) => train_stream(k, &params, &segments, &channels, &mut step)?,
                None => {
                    return Err(ModelError::Params(format!(
                        "cannot train a {other:?} model; trainable kinds: {}",
                        trainable_kinds()
                    )))
                }
            },
        };
        step(1.0)?;
        Ok(trained)
    }
}

// ---------------------------------------------------------------------------------------------
// Live models

/// A model scoring rows, without health: the kind-specific part of [`Live`].
enum Core {
    Pipeline(Box<Window>),
    Forest(Box<IsolationForest>),
    Pca(Box<PcaDetector>),
    Stream(StreamModel),
}

/// A pipeline with its trailing window of rows.
///
/// The rows are kept channel by channel, each value twice (slot `h` and slot `h + window` of
/// the channel's `2 * window` slots), so that each channel's last `window` values are always
/// one contiguous, time-ordered slice. A row then costs what [`Pipeline::scores`] costs for
/// one window, with no allocation: the window means ([`window_mean`], the feature code
/// itself), the scaler's `(mean - centre) / scale`, and the PCA statistics of that one row
/// ([`PcaDetector::row_statistics`], the same operations as the batch statistics), so the
/// scores equal `scores` of the whole series bit for bit (the tests check it).
struct Window {
    model: Pipeline,
    window: usize,
    n_cols: usize,
    /// Channel-major: channel `c`'s slots are `c * 2 * window ..`.
    buf: Vec<f64>,
    /// The slot the next row goes to, in `0..window`.
    head: usize,
    /// Rows in the window, up to `window`.
    filled: usize,
    /// The row a push overwrote, to undo it.
    saved: Vec<f64>,
    /// The scaled window means of the last scored row.
    z: Vec<f64>,
    scratch: RowScratch,
}

impl Window {
    fn new(model: Pipeline) -> Self {
        let window = model.fit_params().window();
        let n_cols = model.channels().len();
        let scratch = model.pca().row_scratch();
        Self {
            model,
            window,
            n_cols,
            buf: vec![0.0; 2 * window * n_cols],
            head: 0,
            filled: 0,
            saved: vec![0.0; n_cols],
            z: vec![0.0; n_cols],
            scratch,
        }
    }

    fn push(&mut self, row: &[f64]) {
        let (w, h) = (self.window, self.head);
        for (c, &v) in row.iter().enumerate() {
            let base = c * 2 * w;
            self.saved[c] = self.buf[base + h];
            self.buf[base + h] = v;
            self.buf[base + h + w] = v;
        }
        self.head = (h + 1) % w;
        self.filled = (self.filled + 1).min(w);
    }

    /// Undoes the last [`push`](Self::push), given the `filled` before it.
    fn undo(&mut self, filled: usize) {
        let w = self.window;
        let h = (self.head + w - 1) % w;
        for (c, &v) in self.saved.iter().enumerate() {
            let base = c * 2 * w;
            self.buf[base + h] = v;
            self.buf[base + h + w] = v;
        }
        self.head = h;
        self.filled = filled;
    }

    /// Channel `c`'s last `window` values, oldest first: after a push at slot `h`, slots
    /// `h + 1 ..= h + window`, which start at `head`.
    fn channel(&self, c: usize) -> &[f64] {
        let start = c * 2 * self.window + self.head;
        &self.buf[start..start + self.window]
    }

    fn score(&mut self, row: &[f64]) -> Result<Option<Scored>, ModelError> {
        let before = self.filled;
        self.push(row);
        if self.filled < self.window {
            return Ok(None);
        }
        let scaler = self.model.scaler();
        for c in 0..self.n_cols {
            // As the scaler's transform: `out -= centre; out /= scale`.
            self.z[c] = (window_mean(self.channel(c)) - scaler.mean()[c]) / scaler.scale()[c];
        }
        if let Some(c) = self.z.iter().position(|v| !v.is_finite()) {
            // As `scores` refuses it (a mean that overflows): an error, and the row is not kept.
            self.undo(before);
            return Err(ModelError::Data(format!(
                "the window mean of channel {} is not a finite number",
                self.model.channels()[c]
            )));
        }
        let (t2, q) = self.model.pca().row_statistics(&self.z, &mut self.scratch);
        let (t2_lim, q_lim) = self.model.limits();
        let statistic = self.model.fit_params().statistic();
        // As `Pipeline::scores` combines them.
        let score = match statistic {
            PcaStatistic::T2 => t2 / t2_lim,
            PcaStatistic::Q => q / q_lim,
            PcaStatistic::Dominant => (t2 / t2_lim).max(q / q_lim),
        };
        let contributions = if score > 1.0 {
            // With Dominant, the statistic that set the score, by the pipeline's own limits.
            let which = match statistic {
                PcaStatistic::Dominant if t2 / t2_lim >= q / q_lim => PcaStatistic::T2,
                PcaStatistic::Dominant => PcaStatistic::Q,
                s => s,
            };
            // Attribution explains a score; it is never a reason to drop one.
            pca_attribution(self.model.pca(), &self.z, which)
                .map(|a| shares(self.model.channels(), &a.sensors))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        Ok(Some(Scored {
            score,
            threshold: 1.0,
            contributions,
        }))
    }

    fn reset(&mut self) {
        self.head = 0;
        self.filled = 0;
    }
}

/// `(channel, contribution)` as channel indices with shares: negative contributions count as
/// 0, the rest are divided by their sum (so every channel's share sums to 1), and the largest
/// [`MAX_CONTRIBUTIONS`] are kept, largest first. Empty when nothing contributes.
fn shares(channels: &[String], contributions: &[(String, f64)]) -> Vec<(usize, f64)> {
    let total: f64 = contributions.iter().map(|(_, c)| c.max(0.0)).sum();
    if !(total.is_finite() && total > 0.0) {
        return Vec::new();
    }
    let mut out: Vec<(usize, f64)> = contributions
        .iter()
        .filter(|(_, c)| *c > 0.0)
        .filter_map(|(name, c)| Some((channels.iter().position(|n| n == name)?, c / total)))
        .collect();
    // Stable: ties keep channel order.
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out.truncate(MAX_CONTRIBUTIONS);
    out
}

impl Core {
    fn warmup_rows(&self) -> usize {
        match self {
            Core::Pipeline(w) => w.window - 1,
            _ => 0,
        }
    }

    /// The row's score, threshold and contributions; `None` while warming up. The row has
    /// been checked (length, finite).
    fn score(&mut self, row: &[f64], names: &[String]) -> Result<Option<Scored>, ModelError> {
        let data = |e: pdm_core::detector::DetectError| ModelError::Data(e.to_string());
        Ok(Some(match self {
            Core::Pipeline(w) => match w.score(row)? {
                None => return Ok(None),
                Some(s) => s,
            },
            Core::Forest(f) => {
                let rows =
                    Rows::new(row, row.len()).map_err(|e| ModelError::Data(e.to_string()))?;
                let score = first(Detector::score(f.as_ref(), rows).map_err(data)?)?;
                // No attribution: median replacement needs the training rows (module docs).
                Scored {
                    score,
                    threshold: Detector::threshold(f.as_ref()),
                    contributions: Vec::new(),
                }
            }
            Core::Pca(p) => {
                let rows =
                    Rows::new(row, row.len()).map_err(|e| ModelError::Data(e.to_string()))?;
                let score = first(Detector::score(p.as_ref(), rows).map_err(data)?)?;
                let threshold = Detector::threshold(p.as_ref());
                let contributions = if score > threshold {
                    pca_attribution(p, row, PcaStatistic::Dominant)
                        .map(|a| shares(names, &a.sensors))
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                Scored {
                    score,
                    threshold,
                    contributions,
                }
            }
            Core::Stream(s) => Scored {
                score: s.update(row).map_err(data)?,
                threshold: s.threshold(),
                contributions: Vec::new(),
            },
        }))
    }

    fn warm(&mut self, row: &[f64]) {
        match self {
            Core::Pipeline(w) => w.push(row),
            Core::Stream(s) => {
                // The row was checked; an error would leave the state unchanged anyway.
                let _ = s.update(row);
            }
            Core::Forest(_) | Core::Pca(_) => {}
        }
    }

    fn reset(&mut self) {
        if let Core::Pipeline(w) = self {
            w.reset();
        }
    }
}

fn first(scores: Vec<f64>) -> Result<f64, ModelError> {
    scores
        .first()
        .copied()
        .ok_or_else(|| ModelError::Data("the detector gave no score".into()))
}

struct Scored {
    score: f64,
    threshold: f64,
    contributions: Vec<(usize, f64)>,
}

/// A live model: the kind's [`Core`], with health and remaining useful life.
struct Live {
    core: Core,
    names: Vec<String>,
    health: HealthIndex,
    rul: RulValidParams,
    trail: Trail,
    /// The last estimate: the row time it was made at and the remaining life then.
    last_rul: Option<(f64, f64)>,
}

/// The last `window` `(seconds, health)` points, kept twice (slot `p` and slot `p + window`) so
/// that they are always contiguous slices for [`RulValidParams::estimate`], without moving
/// them: O(1) per point.
struct Trail {
    window: usize,
    times: Vec<f64>,
    healths: Vec<f64>,
    /// The slot the next point goes to, in `0..window`.
    next: usize,
    len: usize,
}

impl Trail {
    fn new(window: usize) -> Self {
        Self {
            window,
            times: vec![0.0; 2 * window],
            healths: vec![0.0; 2 * window],
            next: 0,
            len: 0,
        }
    }

    fn last_time(&self) -> Option<f64> {
        (self.len > 0).then(|| self.times[self.next + self.window - 1])
    }

    fn push(&mut self, t: f64, h: f64) {
        let (p, w) = (self.next, self.window);
        self.times[p] = t;
        self.times[p + w] = t;
        self.healths[p] = h;
        self.healths[p + w] = h;
        self.next = (p + 1) % w;
        self.len = (self.len + 1).min(w);
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Times and healths, oldest first.
    fn slices(&self) -> (&[f64], &[f64]) {
        let end = self.next + self.window;
        let start = end - self.len;
        (&self.times[start..end], &self.healths[start..end])
    }
}

impl Live {
    fn new(core: Core, names: Vec<String>) -> Self {
        let rul = RulParams::new()
            .check()
            .unwrap_or_else(|_| unreachable!("the defaults are valid"));
        Self {
            core,
            names,
            health: HealthIndex::params()
                .check()
                .unwrap_or_else(|_| unreachable!("the defaults are valid"))
                .build(),
            trail: Trail::new(rul.window()),
            rul,
            last_rul: None,
        }
    }

    fn check(&self, row: &[f64]) -> Result<(), ModelError> {
        if row.len() != self.names.len() {
            return Err(ModelError::Mismatch(format!(
                "a row of {} values for a model of {} channels ({})",
                row.len(),
                self.names.len(),
                self.names.join(", ")
            )));
        }
        if let Some(col) = row.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Data(format!(
                "the value of channel {} is not a finite number ({})",
                self.names[col], row[col]
            )));
        }
        Ok(())
    }

    /// Health after `score`, and the remaining useful life from the trailing health trend.
    ///
    /// The trend is fitted on one health point per [`TREND_STEP_S`] of row time (the last
    /// `window` of them: 100 minutes with the defaults), not on every row: degradation plays
    /// out over hours, and a fit over the last hundred rows of a 1 Hz machine would read the
    /// smoothing's wiggles as a trend. The estimate is refreshed at each point and counts down
    /// between points; it is given only while the health is below [`DEGRADED_BELOW`], so a
    /// healthy machine shows no remaining-life figure at all.
    fn health(&mut self, ts_ms: i64, score: f64, threshold: f64) -> (Option<f64>, Option<f64>) {
        let Ok(h) = self.health.update(score, threshold) else {
            return (self.health.health(), None);
        };
        let t = ts_ms as f64 / 1000.0;
        let last = self.trail.last_time();
        if last.is_some_and(|last| last > t) {
            // Time went back (a replay, a clock change): the trend starts afresh.
            self.trail.clear();
            self.last_rul = None;
        }
        if self
            .trail
            .last_time()
            .is_none_or(|last| t - last >= TREND_STEP_S)
        {
            self.trail.push(t, h);
            let (times, healths) = self.trail.slices();
            self.last_rul = self
                .rul
                .estimate(times, healths)
                .ok()
                .flatten()
                .map(|e| (t, e.rul));
        }
        let rul = (h < DEGRADED_BELOW)
            .then_some(self.last_rul)
            .flatten()
            .map(|(at, rul)| (rul - (t - at)).max(0.0));
        (Some(h), rul)
    }
}

/// Seconds of row time between the health points the remaining-useful-life trend is fitted on.
pub const TREND_STEP_S: f64 = 60.0;

/// A remaining useful life is given only while the health index is below this: with the
/// default failure level (twice the threshold), health 0.5 is a smoothed score at the alarm
/// level. Above it a healthy machine's health wanders (0.8 to 1 on the demo's pump), and a
/// trend fitted to that wandering is not a remaining life.
pub const DEGRADED_BELOW: f64 = 0.5;

impl LiveModel for Live {
    fn warmup_rows(&self) -> usize {
        self.core.warmup_rows()
    }

    fn warm(&mut self, _ts_ms: i64, row: &[f64]) {
        // A row that would be refused by `score` is not taken.
        if self.check(row).is_ok() {
            self.core.warm(row);
        }
    }

    fn score(&mut self, ts_ms: i64, row: &[f64]) -> Result<Option<LiveScore>, ModelError> {
        self.check(row)?;
        let Some(s) = self.core.score(row, &self.names)? else {
            return Ok(None);
        };
        let (health, rul_s) = self.health(ts_ms, s.score, s.threshold);
        Ok(Some(LiveScore {
            score: s.score,
            threshold: s.threshold,
            contributions: s.contributions,
            health,
            rul_s,
        }))
    }

    fn reset(&mut self) {
        self.core.reset();
    }
}

// ---------------------------------------------------------------------------------------------
// Training

fn parse_params(text: &str) -> Result<Map<String, Value>, ModelError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(ModelError::Params(format!(
            "the parameters must be a JSON object, got {other}"
        ))),
        Err(e) => Err(ModelError::Params(format!(
            "the parameters are not valid JSON: {e}"
        ))),
    }
}

/// The segments as matrices, checked against the channels; empty segments are left out.
fn segments(
    rows: &TrainingRows,
    n_channels: usize,
) -> Result<Vec<ArrayView2<'_, f64>>, ModelError> {
    if rows.n_cols != n_channels {
        return Err(ModelError::Mismatch(format!(
            "the training rows have {} values each for {} channels",
            rows.n_cols, n_channels
        )));
    }
    let mut out = Vec::with_capacity(rows.segments.len());
    for (i, s) in rows.segments.iter().enumerate() {
        if s.is_empty() {
            continue;
        }
        if n_channels == 0 || s.len() % n_channels != 0 {
            return Err(ModelError::Data(format!(
                "training segment {i} has {} values, not whole rows of {n_channels}",
                s.len()
            )));
        }
        let view = ArrayView2::from_shape((s.len() / n_channels, n_channels), s)
            .unwrap_or_else(|_| unreachable!("a whole number of rows"));
        out.push(view);
    }
    Ok(out)
}

/// Reads parameters by name, refusing unknown names.
struct Params<'a> {
    kind: &'a str,
    map: &'a Map<String, Value>,
    allowed: &'static [&'static str],
}

impl<'a> Params<'a> {
    fn new(
        kind: &'a str,
        map: &'a Map<String, Value>,
        allowed: &'static [&'static str],
    ) -> Result<Self, ModelError> {
        if let Some(key) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ModelError::Params(format!(
                "unknown parameter {key:?} for {kind}; allowed: {}",
                allowed.join(", ")
            )));
        }
        Ok(Self { kind, map, allowed })
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        debug_assert!(self.allowed.contains(&key));
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> ModelError {
        ModelError::Params(format!(
            "{} parameter {key} must be {expected}, got {got}",
            self.kind
        ))
    }

    fn count(&self, key: &str, default: usize) -> Result<usize, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| self.wrong(key, "a non-negative integer", v)),
        }
    }

    fn real(&self, key: &str, default: f64) -> Result<f64, ModelError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| self.wrong(key, "a number", v)),
        }
    }
}

fn params_error(e: DetectError) -> ModelError {
    ModelError::Params(e.to_string())
}

fn data_error(e: DetectError) -> ModelError {
    ModelError::Data(e.to_string())
}

fn n_rows(segments: &[ArrayView2<'_, f64>]) -> usize {
    segments.iter().map(|s| s.nrows()).sum()
}

/// The segments as one matrix, for models that score rows alone (no window spans a gap).
fn concatenated(segments: &[ArrayView2<'_, f64>], n_cols: usize) -> ndarray::Array2<f64> {
    if segments.is_empty() {
        return ndarray::Array2::zeros((0, n_cols));
    }
    ndarray::concatenate(ndarray::Axis(0), segments)
        .unwrap_or_else(|_| unreachable!("every segment has n_cols columns"))
}

const PIPELINE_PARAMS: &[&str] = &["window", "n_components", "statistic", "margin", "k", "n"];

fn train_pipeline(
    map: &Map<String, Value>,
    segments: &[ArrayView2<'_, f64>],
    channels: &[String],
    step: &mut dyn FnMut(f64) -> Result<(), ModelError>,
) -> Result<Trained, ModelError> {
    let p = Params::new("pipeline", map, PIPELINE_PARAMS)?;
    let defaults = Pipeline::params()
        .check()
        .unwrap_or_else(|_| unreachable!("the defaults are valid"));
    let window = p.count("window", defaults.window())?;
    let n_components = match p.get("n_components") {
        None => defaults.n_components(),
        Some(v) if v.is_u64() => NComponents::Count(p.count("n_components", 0)?),
        Some(v) => NComponents::Variance(v.as_f64().ok_or_else(|| {
            p.wrong(
                "n_components",
                "an integer count or a variance fraction in (0, 1]",
                v,
            )
        })?),
    };
    let statistic = match p.get("statistic") {
        None => defaults.statistic(),
        Some(v) => v
            .as_str()
            .and_then(PcaStatistic::from_name)
            .ok_or_else(|| p.wrong("statistic", "one of \"t2\", \"q\", \"dominant\"", v))?,
    };
    let margin = p.real("margin", defaults.margin())?;
    let k = p.count("k", defaults.k_of_n().0)?;
    let n = p.count("n", defaults.k_of_n().1)?;
    let params = Pipeline::params()
        .window(window)
        .n_components(n_components)
        .statistic(statistic)
        .margin(margin)
        .k_of_n(k, n)
        .check()
        .map_err(params_error)?;
    let rows = n_rows(segments);
    let longest = segments.iter().map(|s| s.nrows()).max().unwrap_or(0);
    step(0.1)?;
    let model = params
        .fit_segments(segments, channels)
        .map_err(|e| match e {
            DetectError::TooFewRows { got, .. } => ModelError::Data(format!(
                "the pipeline needs at least 2 windows of {window} consecutive rows (a segment \
                 of {} rows); the training rows ({rows} in {} segments, the longest {longest}) \
                 give {got}",
                window + 1,
                segments.len()
            )),
            e => data_error(e),
        })?;
    step(0.9)?;
    let (t2_limit, q_limit) = model.limits();
    let n_components_json = match n_components {
        NComponents::Count(c) => json!(c),
        NComponents::Variance(f) => json!(f),
    };
    Ok(Trained {
        kind: "pipeline".into(),
        bytes: model.to_bytes(),
        params: json!({
            "window": window,
            "n_components": n_components_json,
            "statistic": statistic.name(),
            "margin": margin,
            "k": k,
            "n": n,
        })
        .to_string(),
        metrics: json!({
            "rows": rows,
            "segments": segments.len(),
            "threshold": 1.0,
            "t2_limit": t2_limit,
            "q_limit": q_limit,
            "n_components": model.pca().n_components(),
        })
        .to_string(),
    })
}

const FOREST_PARAMS: &[&str] = &[
    "n_estimators",
    "max_samples",
    "contamination",
    "max_features",
    "bootstrap",
    "random_state",
];

fn train_forest(
    map: &Map<String, Value>,
    segments: &[ArrayView2<'_, f64>],
    channels: &[String],
    step: &mut dyn FnMut(f64) -> Result<(), ModelError>,
) -> Result<Trained, ModelError> {
    let p = Params::new("isolation_forest", map, FOREST_PARAMS)?;
    let n_estimators = p.count("n_estimators", 100)?;
    let max_samples = match p.get("max_samples") {
        None => MaxSamples::Auto,
        Some(Value::String(s)) if s == "auto" => MaxSamples::Auto,
        Some(v) if v.is_u64() => MaxSamples::Count(p.count("max_samples", 0)?),
        Some(v) => MaxSamples::Fraction(v.as_f64().ok_or_else(|| {
            p.wrong(
                "max_samples",
                "\"auto\", a count or a fraction in (0, 1]",
                v,
            )
        })?),
    };
    let contamination = match p.get("contamination") {
        None => Contamination::Auto,
        Some(Value::String(s)) if s == "auto" => Contamination::Auto,
        Some(v) => Contamination::Fraction(
            v.as_f64()
                .ok_or_else(|| p.wrong("contamination", "\"auto\" or a fraction in (0, 0.5]", v))?,
        ),
    };
    let max_features = match p.get("max_features") {
        None => MaxFeatures::default(),
        Some(v) if v.is_u64() => MaxFeatures::Count(p.count("max_features", 0)?),
        Some(v) => MaxFeatures::Fraction(
            v.as_f64()
                .ok_or_else(|| p.wrong("max_features", "a count or a fraction in (0, 1]", v))?,
        ),
    };
    let bootstrap = match p.get("bootstrap") {
        None => false,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| p.wrong("bootstrap", "true or false", v))?,
    };
    let random_state = match p.get("random_state") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| p.wrong("random_state", "a non-negative integer or null", v))?,
        ),
    };
    let mut params = IsolationForest::params()
        .n_estimators(n_estimators)
        .max_samples(max_samples)
        .contamination(contamination)
        .max_features(max_features)
        .bootstrap(bootstrap);
    if let Some(seed) = random_state {
        params = params.random_state(seed);
    }
    params
        .check_ref()
        .map_err(|e| ModelError::Params(format!("invalid parameter: {e}")))?;
    let rows = n_rows(segments);
    if rows < 2 {
        return Err(ModelError::Data(format!(
            "the isolation forest needs at least 2 training rows; it has {rows}"
        )));
    }
    let x = concatenated(segments, channels.len());
    step(0.1)?;
    let model = params
        .fit(&x.view())
        .and_then(|m| m.with_feature_names(channels.to_vec()))
        .map_err(|e| match e {
            DetectError::Params(_) => params_error(e),
            e => data_error(e),
        })?;
    step(0.9)?;
    Ok(Trained {
        kind: "isolation_forest".into(),
        bytes: model.to_bytes(),
        params: json!({
            "n_estimators": n_estimators,
            "max_samples": match max_samples {
                MaxSamples::Auto => json!("auto"),
                MaxSamples::Count(c) => json!(c),
                MaxSamples::Fraction(f) => json!(f),
            },
            "contamination": match contamination {
                Contamination::Auto => json!("auto"),
                Contamination::Fraction(f) => json!(f),
            },
            "max_features": match max_features {
                MaxFeatures::Count(c) => json!(c),
                MaxFeatures::Fraction(f) => json!(f),
            },
            "bootstrap": bootstrap,
            "random_state": random_state,
        })
        .to_string(),
        metrics: json!({
            "rows": rows,
            "segments": segments.len(),
            "threshold": Detector::threshold(&model),
            "max_samples": model.max_samples(),
        })
        .to_string(),
    })
}

/// A JSON value as the parameter `key` of type `ty`.
fn param_value(
    kind: StreamKind,
    key: &str,
    ty: ParamType,
    v: &Value,
) -> Result<ParamValue, ModelError> {
    let wrong = || {
        ModelError::Params(format!(
            "{} parameter {key} must be {}, got {v}",
            kind.file_kind(),
            ty.name()
        ))
    };
    Ok(match ty {
        ParamType::Count => ParamValue::Count(
            v.as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(wrong)?,
        ),
        ParamType::Real => ParamValue::Real(v.as_f64().ok_or_else(wrong)?),
        ParamType::Seed => ParamValue::Seed(v.as_u64().ok_or_else(wrong)?),
        ParamType::Ranges => ParamValue::Ranges(
            v.as_array()
                .ok_or_else(wrong)?
                .iter()
                .map(|r| match r.as_array().map(Vec::as_slice) {
                    Some([a, b]) => Some((a.as_f64()?, b.as_f64()?)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(wrong)?,
        ),
    })
}

fn param_json(v: Option<ParamValue>) -> Value {
    match v {
        None => Value::Null,
        Some(ParamValue::Count(n)) => json!(n),
        Some(ParamValue::Real(x)) => json!(x),
        Some(ParamValue::Seed(s)) => json!(s),
        Some(ParamValue::Ranges(r)) => json!(r.iter().map(|&(a, b)| [a, b]).collect::<Vec<_>>()),
    }
}

fn train_stream(
    kind: StreamKind,
    map: &Map<String, Value>,
    segments: &[ArrayView2<'_, f64>],
    channels: &[String],
    step: &mut dyn FnMut(f64) -> Result<(), ModelError>,
) -> Result<Trained, ModelError> {
    let allowed = || {
        kind.params()
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut spec: StreamSpec = kind.default_spec();
    for (key, v) in map {
        let Some(pk) = kind.param(key) else {
            return Err(ModelError::Params(format!(
                "unknown parameter {key:?} for {}; allowed: {}",
                kind.file_kind(),
                allowed()
            )));
        };
        if v.is_null() {
            continue;
        }
        spec = spec
            .set(key, param_value(kind, key, pk.param_type(), v)?)
            .map_err(params_error)?;
    }
    let mut model = spec.build_model(channels.len()).map_err(params_error)?;
    let rows = n_rows(segments);
    if rows == 0 {
        return Err(ModelError::Data(format!(
            "a {} detector needs at least 1 training row; it has 0",
            kind.file_kind()
        )));
    }
    // Learning the rows in order is the detector's fit: its state after them is the model.
    let mut done = 0usize;
    let mut scratch = vec![0.0; channels.len()];
    let every = (rows / 10).max(1);
    for (s, seg) in segments.iter().enumerate() {
        for (i, row) in seg.rows().into_iter().enumerate() {
            scratch
                .iter_mut()
                .zip(row.iter())
                .for_each(|(d, v)| *d = *v);
            model
                .update(&scratch)
                .map_err(|e| ModelError::Data(format!("training segment {s}, row {i}: {e}")))?;
            done += 1;
            if done % every == 0 {
                step(0.1 + 0.8 * done as f64 / rows as f64)?;
            }
        }
    }
    let params: Map<String, Value> = model
        .params()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), param_json(v)))
        .collect();
    Ok(Trained {
        kind: kind.file_kind().into(),
        bytes: with_names(&model.to_bytes(), channels)?,
        params: Value::Object(params).to_string(),
        metrics: json!({
            "rows": rows,
            "segments": segments.len(),
            "threshold": model.threshold(),
        })
        .to_string(),
    })
}

/// A streaming model's file with the channels as its feature names (a streaming detector is
/// built from a feature count only, and writes `x0`, `x1`, ...). The checksum covers the
/// `model` state alone, so the envelope's names can be set.
fn with_names(bytes: &[u8], channels: &[String]) -> Result<Vec<u8>, ModelError> {
    let mut v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ModelError::Data(format!("cannot write the model: {e}")))?;
    v["feature_names"] = json!(channels);
    let bytes = serde_json::to_vec(&v)
        .map_err(|e| ModelError::Data(format!("cannot write the model: {e}")))?;
    // Written here, read back here: check that the file is still one this crate reads.
    persist::from_bytes(&bytes).map_err(data_error)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests;
