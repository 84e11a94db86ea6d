//! Window features over a multichannel series.
//!
//! A series is an [`ArrayView2`] with one row per sample (time) and one column per channel
//! (sensor). Windows of `window` samples slide by `step` samples; each window gives one output
//! row holding, per channel, the chosen [`Feature`]s. Windows are end-aligned: the first window
//! ends at sample `window - 1`, the next at `window - 1 + step`, and so on, and
//! [`WindowFeatureMatrix::ends`] says which sample each row ends at, so a score can be placed
//! back on the time axis. Feature names are `"<channel>__<feature>"` (for example
//! `temperature__rms`) and [`channel_of`] maps such a name back to its channel.
//!
//! ```
//! use ndarray::array;
//! use pdm_detect::features::{channel_of, Feature, WindowFeatures};
//!
//! let x = array![[1.0], [2.0], [3.0], [4.0]];
//! let out = WindowFeatures::params()
//!     .window(3)
//!     .step(1)
//!     .features(&[Feature::Mean, Feature::Slope])
//!     .transform(&x.view(), &["temperature"])?;
//! assert_eq!(out.names(), ["temperature__mean", "temperature__slope"]);
//! assert_eq!(out.ends(), [2, 3]);
//! assert_eq!(out.values(), &array![[2.0, 1.0], [3.0, 1.0]]);
//! assert_eq!(channel_of("temperature__slope"), Some("temperature"));
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use crate::{check_finite, DetectError, Result};
use ndarray::{Array2, ArrayView2};

/// Separator between the channel and the feature in a feature name.
pub const SEPARATOR: &str = "__";

/// One statistic of a channel over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Arithmetic mean.
    Mean,
    /// Population standard deviation (divides by the window length).
    Std,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// `max - min`.
    PeakToPeak,
    /// Root mean square, `sqrt(mean(x²))`.
    Rms,
    /// Skewness, `m3 / m2^1.5` with population central moments (scipy's biased default); 0 for
    /// a constant window.
    Skewness,
    /// Excess (Fisher) kurtosis, `m4 / m2² - 3` with population central moments (scipy's biased
    /// default); 0 for a constant window.
    Kurtosis,
    /// Crest factor, `max |x| / rms`; 0 when the RMS is 0.
    CrestFactor,
    /// Least-squares slope against the sample index within the window, in units per sample.
    Slope,
}

impl Feature {
    /// Every feature, in the order they are computed by default.
    pub const ALL: [Feature; 10] = [
        Feature::Mean,
        Feature::Std,
        Feature::Min,
        Feature::Max,
        Feature::PeakToPeak,
        Feature::Rms,
        Feature::Skewness,
        Feature::Kurtosis,
        Feature::CrestFactor,
        Feature::Slope,
    ];

    /// The name used in feature names, e.g. `peak_to_peak`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Mean => "mean",
            Feature::Std => "std",
            Feature::Min => "min",
            Feature::Max => "max",
            Feature::PeakToPeak => "peak_to_peak",
            Feature::Rms => "rms",
            Feature::Skewness => "skewness",
            Feature::Kurtosis => "kurtosis",
            Feature::CrestFactor => "crest_factor",
            Feature::Slope => "slope",
        }
    }

    /// The feature of this [`name`](Self::name), if any.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// `"<channel>__<feature>"`.
pub fn feature_name(channel: &str, feature: Feature) -> String {
    format!("{channel}{SEPARATOR}{}", feature.name())
}

/// The channel a feature name belongs to: the part before the last `__`, or `None` when the name
/// has no `__`. Splitting at the last separator keeps channel names that contain `__` whole.
pub fn channel_of(feature_name: &str) -> Option<&str> {
    feature_name.rsplit_once(SEPARATOR).map(|(c, _)| c)
}

/// An invalid window-feature parameter, with the allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowFeaturesParamsError {
    /// `window` is below 2.
    #[error("window must be >= 2 samples, got {0}")]
    Window(usize),
    /// `step` is zero.
    #[error("step must be >= 1 sample, got {0}")]
    Step(usize),
    /// No feature was chosen.
    #[error("features must hold at least one feature, got none")]
    NoFeatures,
    /// A feature was chosen twice, which would give two columns of the same name.
    #[error("features must not repeat a feature, got {0} twice")]
    RepeatedFeature(&'static str),
}

/// Checked window-feature parameters; [`transform`](Self::transform) computes the features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFeaturesValidParams {
    window: usize,
    step: usize,
    features: Vec<Feature>,
}

/// Unchecked window-feature parameters, from [`WindowFeatures::params`].
///
/// Defaults: windows of 64 samples, step 16, every feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowFeaturesParams(WindowFeaturesValidParams);

/// Entry point of window features: [`WindowFeatures::params`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowFeatures;

impl WindowFeatures {
    /// Default parameters, to adjust and then [`check`](WindowFeaturesParams::check).
    pub fn params() -> WindowFeaturesParams {
        WindowFeaturesParams::default()
    }
}

impl Default for WindowFeaturesParams {
    fn default() -> Self {
        Self(WindowFeaturesValidParams {
            window: 64,
            step: 16,
            features: Feature::ALL.to_vec(),
        })
    }
}

impl WindowFeaturesParams {
    /// Samples per window, at least 2 (a slope and a spread need two points).
    pub fn window(mut self, window: usize) -> Self {
        self.0.window = window;
        self
    }

    /// Samples between the ends of consecutive windows, at least 1.
    pub fn step(mut self, step: usize) -> Self {
        self.0.step = step;
        self
    }

    /// Features computed per channel, in this order; at least one, none twice.
    pub fn features(mut self, features: &[Feature]) -> Self {
        self.0.features = features.to_vec();
        self
    }

    /// Checks the parameters and borrows the valid ones.
    pub fn check_ref(
        &self,
    ) -> std::result::Result<&WindowFeaturesValidParams, WindowFeaturesParamsError> {
        use WindowFeaturesParamsError as E;
        let p = &self.0;
        if p.window < 2 {
            return Err(E::Window(p.window));
        }
        if p.step == 0 {
            return Err(E::Step(0));
        }
        if p.features.is_empty() {
            return Err(E::NoFeatures);
        }
        for (i, f) in p.features.iter().enumerate() {
            if p.features[..i].contains(f) {
                return Err(E::RepeatedFeature(f.name()));
            }
        }
        Ok(p)
    }

    /// Checks the parameters and returns the valid ones.
    pub fn check(
        self,
    ) -> std::result::Result<WindowFeaturesValidParams, WindowFeaturesParamsError> {
        self.check_ref()?;
        Ok(self.0)
    }

    /// Checks the parameters, then computes the features; see
    /// [`WindowFeaturesValidParams::transform`].
    pub fn transform<S: AsRef<str>>(
        &self,
        x: &ArrayView2<'_, f64>,
        channels: &[S],
    ) -> Result<WindowFeatureMatrix> {
        self.check_ref()?.transform(x, channels)
    }
}

/// Window features: one row per window, one column per (channel, feature).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowFeatureMatrix {
    values: Array2<f64>,
    names: Vec<String>,
    ends: Vec<usize>,
}

impl WindowFeatureMatrix {
    /// The features, one row per window; columns are grouped by channel, then in the order of
    /// the chosen features.
    pub fn values(&self) -> &Array2<f64> {
        &self.values
    }

    /// Takes the feature matrix out.
    pub fn into_values(self) -> Array2<f64> {
        self.values
    }

    /// Column names, `"<channel>__<feature>"`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// For each row, the index of the last sample of its window.
    pub fn ends(&self) -> &[usize] {
        &self.ends
    }
}

impl WindowFeaturesValidParams {
    /// Samples per window.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Samples between the ends of consecutive windows.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Features computed per channel.
    pub fn features(&self) -> &[Feature] {
        &self.features
    }

    /// Column names for these channels, in output order.
    pub fn feature_names<S: AsRef<str>>(&self, channels: &[S]) -> Vec<String> {
        channels
            .iter()
            .flat_map(|c| self.features.iter().map(|&f| feature_name(c.as_ref(), f)))
            .collect()
    }

    /// Number of windows a series of `n_samples` samples gives: 0 when it is shorter than one
    /// window.
    pub fn n_windows(&self, n_samples: usize) -> usize {
        match n_samples.checked_sub(self.window) {
            Some(rest) => rest / self.step + 1,
            None => 0,
        }
    }

    /// Computes the features of every full window of `x` (rows = samples, columns = channels
    /// named by `channels`).
    ///
    /// Errors when `channels` does not name every column, or `x` holds a non-finite value
    /// (missing samples must be filled or cut before, since a NaN would poison every feature of
    /// its windows). A series shorter than one window gives zero rows.
    pub fn transform<S: AsRef<str>>(
        &self,
        x: &ArrayView2<'_, f64>,
        channels: &[S],
    ) -> Result<WindowFeatureMatrix> {
        if channels.len() != x.ncols() {
            return Err(DetectError::Columns {
                expected: x.ncols(),
                got: channels.len(),
            });
        }
        check_finite(x)?;
        let n_windows = self.n_windows(x.nrows());
        let n_feat = self.features.len();
        let mut values = Array2::zeros((n_windows, x.ncols() * n_feat));
        let mut ends = Vec::with_capacity(n_windows);
        // One channel-major copy of the series (the only allocation besides the output), so that
        // each window of a channel is a contiguous slice for the lane-wise sums of Stats::of.
        let by_channel = x.t().as_standard_layout().into_owned();
        for (w, mut out) in values.rows_mut().into_iter().enumerate() {
            let end = self.window - 1 + w * self.step;
            ends.push(end);
            let start = end + 1 - self.window;
            for (c, channel) in by_channel.rows().into_iter().enumerate() {
                let samples = channel.as_slice().and_then(|s| s.get(start..=end));
                let Some(samples) = samples else {
                    // Unreachable: the copy is in standard layout and end < n_samples.
                    return Err(DetectError::Empty);
                };
                let stats = Stats::of(samples);
                for (k, &f) in self.features.iter().enumerate() {
                    out[c * n_feat + k] = stats.get(f);
                }
            }
        }
        Ok(WindowFeatureMatrix {
            values,
            names: self.feature_names(channels),
            ends,
        })
    }
}

/// The [`Feature::Mean`] of one window of one channel, exactly as [`WindowFeaturesValidParams::
/// transform`] computes it (the live pipeline's window means).
pub(crate) fn window_mean(samples: &[f64]) -> f64 {
    Stats::of(samples).mean
}

/// Partial sums kept per pass in [`Stats::of`].
const LANES: usize = 4;

/// Every statistic of one channel over one window.
struct Stats {
    mean: f64,
    m2: f64,
    m3: f64,
    m4: f64,
    min: f64,
    max: f64,
    mean_square: f64,
    max_abs: f64,
    slope: f64,
}

impl Stats {
    /// Two passes over the window, no allocation: sums, then central moments about the mean.
    ///
    /// One pass of raw power sums would be faster but loses the digits of a sensor that reads
    /// 1000 ± 0.01 and makes kurtosis a difference of huge near-equal numbers; the window is in
    /// cache for the second pass, so it costs little. Each pass keeps [`LANES`] partial sums:
    /// one accumulator would chain every addition on the previous one (floating-point addition
    /// is not reassociated by the compiler), which measured about 2x slower on 20 channels.
    fn of(x: &[f64]) -> Self {
        let n = x.len() as f64;
        let mut sum = [0.0; LANES];
        let mut sum_sq = [0.0; LANES];
        let mut min = [f64::INFINITY; LANES];
        let mut max = [f64::NEG_INFINITY; LANES];
        let mut max_abs = [0.0_f64; LANES];
        let mut pass1 = |l: usize, v: f64| {
            sum[l] += v;
            sum_sq[l] += v * v;
            min[l] = min[l].min(v);
            max[l] = max[l].max(v);
            max_abs[l] = max_abs[l].max(v.abs());
        };
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        for c in chunks {
            for (l, &v) in c.iter().enumerate() {
                pass1(l, v);
            }
        }
        for &v in rest {
            pass1(0, v);
        }
        let mean = sum.iter().sum::<f64>() / n;
        let mean_square = sum_sq.iter().sum::<f64>() / n;
        let min = min.into_iter().fold(f64::INFINITY, f64::min);
        let max = max.into_iter().fold(f64::NEG_INFINITY, f64::max);
        let max_abs = max_abs.into_iter().fold(0.0, f64::max);
        // Exactly constant: the mean may still differ from the value in its last bit, so the
        // spread and shape are set rather than computed from rounding noise.
        if min == max {
            return Self {
                mean: min,
                m2: 0.0,
                m3: 0.0,
                m4: 0.0,
                min,
                max,
                mean_square,
                max_abs,
                slope: 0.0,
            };
        }
        let mut s2 = [0.0; LANES];
        let mut s3 = [0.0; LANES];
        let mut s4 = [0.0; LANES];
        let mut st = [0.0; LANES];
        let t_mean = (n - 1.0) / 2.0;
        let mut pass2 = |l: usize, t: f64, v: f64| {
            let d = v - mean;
            let d2 = d * d;
            s2[l] += d2;
            s3[l] += d2 * d;
            s4[l] += d2 * d2;
            st[l] += (t - t_mean) * d;
        };
        let chunks = x.chunks_exact(LANES);
        let rest = chunks.remainder();
        let mut t0 = 0.0;
        for c in chunks {
            for (l, &v) in c.iter().enumerate() {
                pass2(l, t0 + l as f64, v);
            }
            t0 += LANES as f64;
        }
        for (l, &v) in rest.iter().enumerate() {
            pass2(0, t0 + l as f64, v);
        }
        let total = |a: [f64; LANES]| a.iter().sum::<f64>();
        Self {
            mean,
            m2: total(s2) / n,
            m3: total(s3) / n,
            m4: total(s4) / n,
            min,
            max,
            mean_square,
            max_abs,
            // Least squares on t = 0..n-1: sum((t - t̄)(x - x̄)) / sum((t - t̄)²), the
            // denominator being n(n² - 1) / 12.
            slope: total(st) / (n * (n * n - 1.0) / 12.0),
        }
    }

    /// Whether skewness and kurtosis would be ratios of rounding noise: no spread, or a spread
    /// below 1e-12 of the magnitude, far under any sensor's resolution.
    fn flat(&self) -> bool {
        self.m2.sqrt() <= 1e-12 * self.max_abs
    }

    fn get(&self, f: Feature) -> f64 {
        match f {
            Feature::Mean => self.mean,
            Feature::Std => self.m2.sqrt(),
            Feature::Min => self.min,
            Feature::Max => self.max,
            Feature::PeakToPeak => self.max - self.min,
            Feature::Rms => self.mean_square.sqrt(),
            Feature::Skewness if self.flat() => 0.0,
            Feature::Skewness => self.m3 / self.m2.powf(1.5),
            Feature::Kurtosis if self.flat() => 0.0,
            Feature::Kurtosis => self.m4 / (self.m2 * self.m2) - 3.0,
            Feature::CrestFactor => {
                let rms = self.mean_square.sqrt();
                if rms > 0.0 {
                    self.max_abs / rms
                } else {
                    0.0
                }
            }
            Feature::Slope => self.slope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, ShapeBuilder};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    fn all_features(x: &Array2<f64>, window: usize) -> WindowFeatureMatrix {
        let names: Vec<String> = (0..x.ncols()).map(|c| format!("c{c}")).collect();
        WindowFeatures::params()
            .window(window)
            .step(1)
            .transform(&x.view(), &names)
            .expect("features")
    }

    fn assert_row(got: ndarray::ArrayView1<'_, f64>, want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (k, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(close(g, w), "{}: got {g}, want {w}", Feature::ALL[k].name());
        }
    }

    #[test]
    fn hand_computed_ramp() {
        // 1, 2, 3, 4: mean 2.5; deviations ±0.5, ±1.5 give m2 = 1.25, m3 = 0,
        // m4 = (2 * 1.5^4 + 2 * 0.5^4) / 4 = 2.5625, so kurtosis 2.5625 / 1.5625 - 3 = -1.36;
        // mean square (1 + 4 + 9 + 16) / 4 = 7.5; slope 1 per sample.
        let x = array![[1.0], [2.0], [3.0], [4.0]];
        let out = all_features(&x, 4);
        let rms = 7.5_f64.sqrt();
        assert_row(
            out.values().row(0),
            &[
                2.5,
                1.25_f64.sqrt(),
                1.0,
                4.0,
                3.0,
                rms,
                0.0,
                -1.36,
                4.0 / rms,
                1.0,
            ],
        );
    }

    #[test]
    fn hand_computed_spike() {
        // 0, 0, 0, 4: mean 1; deviations -1, -1, -1, 3: m2 = 12 / 4 = 3, m3 = 24 / 4 = 6,
        // m4 = 84 / 4 = 21. Skewness 6 / 3^1.5 = 2 / sqrt(3); kurtosis 21 / 9 - 3 = -2 / 3.
        // Mean square 4, RMS 2, crest 4 / 2 = 2. Slope: sum((t - 1.5) d) = 1.5 + 0.5 - 0.5 + 4.5
        // = 6 over n (n² - 1) / 12 = 5, so 1.2 (numpy.polyfit agrees).
        let x = array![[0.0], [0.0], [0.0], [4.0]];
        let out = all_features(&x, 4);
        assert_row(
            out.values().row(0),
            &[
                1.0,
                3.0_f64.sqrt(),
                0.0,
                4.0,
                4.0,
                2.0,
                2.0 / 3.0_f64.sqrt(),
                -2.0 / 3.0,
                2.0,
                1.2,
            ],
        );
    }

    #[test]
    fn hand_computed_odd_length() {
        // 0, 0, 0, 0, 5 (the last sample falls outside the 4-wide partial sums): mean 1;
        // deviations -1 (four times) and 4: m2 = 20 / 5 = 4, m3 = 60 / 5 = 12, m4 = 260 / 5 = 52.
        // Skewness 12 / 8 = 1.5, kurtosis 52 / 16 - 3 = 0.25. Mean square 5, crest 5 / √5 = √5.
        // Slope: sum((t - 2) d) = 2 + 1 + 0 - 1 + 8 = 10 over n (n² - 1) / 12 = 10, so 1.
        let x = array![[0.0], [0.0], [0.0], [0.0], [5.0]];
        let out = all_features(&x, 5);
        let r5 = 5.0_f64.sqrt();
        assert_row(
            out.values().row(0),
            &[1.0, 2.0, 0.0, 5.0, 5.0, r5, 1.5, 0.25, r5, 1.0],
        );
    }

    #[test]
    fn constant_and_zero_windows_are_finite() {
        // 0.1 three times: a mean computed as a sum / 3 need not be 0.1 exactly; the features
        // must still be exact.
        let x = array![[0.1, 0.0], [0.1, 0.0], [0.1, 0.0]];
        let out = all_features(&x, 3);
        let v = out.values().row(0).to_vec();
        assert_row(
            ndarray::ArrayView1::from(&v[..10]),
            &[0.1, 0.0, 0.1, 0.1, 0.0, 0.1, 0.0, 0.0, 1.0, 0.0],
        );
        assert_eq!(v[10..], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn large_offset_keeps_the_spread() {
        // The spike window shifted by 1e6: location features shift, shape features must not.
        let x = array![[1e6], [1e6], [1e6], [1e6 + 4.0]];
        let out = all_features(&x, 4);
        let v = out.values().row(0);
        let k = |f: Feature| Feature::ALL.iter().position(|&g| g == f).expect("feature");
        assert!(close(v[k(Feature::Mean)], 1e6 + 1.0));
        assert!((v[k(Feature::Std)] - 3.0_f64.sqrt()).abs() < 1e-9);
        assert!((v[k(Feature::Skewness)] - 2.0 / 3.0_f64.sqrt()).abs() < 1e-9);
        assert!((v[k(Feature::Kurtosis)] + 2.0 / 3.0).abs() < 1e-9);
        assert!((v[k(Feature::Slope)] - 1.2).abs() < 1e-9);
    }

    #[test]
    fn windows_are_end_aligned_and_named_by_channel() {
        // Two channels, 7 samples, window 3, step 2: windows end at 2, 4, 6.
        let x = array![
            [0.0, 10.0],
            [1.0, 10.0],
            [2.0, 10.0],
            [3.0, 10.0],
            [4.0, 10.0],
            [5.0, 10.0],
            [6.0, 13.0]
        ];
        let out = WindowFeatures::params()
            .window(3)
            .step(2)
            .features(&[Feature::Max, Feature::Mean])
            .transform(&x.view(), &["speed", "temperature"])
            .expect("features");
        assert_eq!(out.ends(), [2, 4, 6]);
        assert_eq!(
            out.names(),
            [
                "speed__max",
                "speed__mean",
                "temperature__max",
                "temperature__mean"
            ]
        );
        assert_eq!(
            out.values(),
            &array![
                [2.0, 1.0, 10.0, 10.0],
                [4.0, 3.0, 10.0, 10.0],
                [6.0, 5.0, 13.0, 11.0]
            ]
        );
        let names: Vec<_> = out.names().iter().map(|n| channel_of(n)).collect();
        assert_eq!(
            names,
            [
                Some("speed"),
                Some("speed"),
                Some("temperature"),
                Some("temperature")
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for f in Feature::ALL {
            assert_eq!(Feature::from_name(f.name()), Some(f));
            assert_eq!(
                channel_of(&feature_name("bearing__1", f)),
                Some("bearing__1")
            );
        }
        assert_eq!(Feature::from_name("median"), None);
        assert_eq!(channel_of("no_separator"), None);
        assert_eq!(
            feature_name("temperature", Feature::Rms),
            "temperature__rms"
        );
    }

    #[test]
    fn short_series_gives_no_rows() {
        let p = WindowFeatures::params()
            .window(5)
            .step(2)
            .check()
            .expect("valid");
        assert_eq!(p.n_windows(4), 0);
        assert_eq!(p.n_windows(5), 1);
        assert_eq!(p.n_windows(6), 1);
        assert_eq!(p.n_windows(7), 2);
        let out = p
            .transform(&Array2::zeros((4, 2)).view(), &["a", "b"])
            .expect("features");
        assert_eq!(out.values().dim(), (0, 20));
        assert!(out.ends().is_empty());
    }

    #[test]
    fn rejects_bad_input_and_parameters() {
        let x = array![[1.0, 2.0], [f64::NAN, 3.0], [1.0, 2.0]];
        let p = WindowFeatures::params().window(2);
        assert_eq!(
            p.transform(&x.view(), &["a", "b"]),
            Err(DetectError::NotFinite { row: 1, col: 0 })
        );
        assert_eq!(
            p.transform(&x.view(), &["a"]),
            Err(DetectError::Columns {
                expected: 2,
                got: 1
            })
        );
        let err = |p: WindowFeaturesParams| match p.check() {
            Ok(_) => String::from("accepted"),
            Err(e) => e.to_string(),
        };
        let p = WindowFeatures::params;
        assert_eq!(err(p().window(1)), "window must be >= 2 samples, got 1");
        assert_eq!(err(p().step(0)), "step must be >= 1 sample, got 0");
        assert_eq!(
            err(p().features(&[])),
            "features must hold at least one feature, got none"
        );
        assert_eq!(
            err(p().features(&[Feature::Rms, Feature::Min, Feature::Rms])),
            "features must not repeat a feature, got rms twice"
        );
        assert_eq!(err(p().window(2).step(1)), "accepted");
        let e = p()
            .window(0)
            .transform(&Array2::zeros((3, 1)).view(), &["a"])
            .expect_err("window");
        assert_eq!(
            e.to_string(),
            "invalid parameter: window must be >= 2 samples, got 0"
        );
        let defaults = p().check().expect("defaults");
        assert_eq!((defaults.window(), defaults.step()), (64, 16));
        assert_eq!(defaults.features(), Feature::ALL);
    }

    #[test]
    fn column_major_input_gives_the_same_features() {
        let x = Array2::from_shape_fn((50, 3), |(i, j)| ((i * 13 + j * 7) % 17) as f64);
        let mut f = Array2::zeros((50, 3).f());
        f.assign(&x);
        let a = all_features(&x, 8);
        let b = all_features(&f, 8);
        assert_eq!(a, b);
    }

    #[test]
    fn types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<WindowFeaturesParams>();
        assert_send_sync::<WindowFeaturesValidParams>();
        assert_send_sync::<WindowFeatureMatrix>();
        assert_send_sync::<WindowFeaturesParamsError>();
    }
}
