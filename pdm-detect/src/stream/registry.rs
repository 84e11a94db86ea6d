//! The registry of streaming-detector kinds: each kind is listed once, in [`stream_kinds!`], and
//! everything that handles "any streaming detector" is generated from that list or iterates it:
//! [`StreamKind`] (names, model-file kinds, parameter keys), [`StreamSpec`] (a kind with its
//! parameters, set by key or by the detector's own builder), [`StreamModel`] (a running detector of
//! any kind that can be saved), the streaming arms of [`persist::from_bytes`](crate::persist), the
//! Python bindings and the evaluation binary.
//!
//! What a kind must provide is the crate-private trait [`Registered`] (implemented beside each
//! detector) and, through [`keyed_params!`], the parameters it takes by key. See "Adding a
//! detector" in pdm-detect's README.
//!
//! ```
//! use pdm_core::detector::StreamingDetector;
//! use pdm_detect::stream::{ParamValue, StreamKind, StreamModel};
//!
//! let kind = StreamKind::by_name("robust_zscore").expect("registered");
//! assert_eq!(kind.file_kind(), "robust_zscore");
//! let spec = kind.default_spec().set("window", ParamValue::Count(50))?;
//! let mut det = spec.build_model(1)?;
//! for i in 0..100 {
//!     det.update(&[(i % 7) as f64])?;
//! }
//! let again = StreamModel::from_bytes(&det.to_bytes())?;
//! assert_eq!(again.to_bytes(), det.to_bytes());
//! assert_eq!(again.params()[0], ("window", Some(ParamValue::Count(50))));
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use std::fmt::Debug;

use ndarray::{Array1, ArrayView2};
use pdm_core::detector::{self, StreamingDetector};

use super::{
    ContextDetector, ContextDetectorParams, EwmaChart, EwmaChartParams, HalfSpaceTrees,
    HalfSpaceTreesParams, RobustZScore, RobustZScoreParams, ScoreMapping, StreamParamsError,
};
use crate::persist::{self, Envelope, ModelFileError, Persist};
use crate::Result;

/// The type of a parameter set by key ([`StreamSpec::set`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ParamType {
    /// A count or a size (`usize`).
    Count,
    /// A real number (`f64`).
    Real,
    /// A random seed (`u64`).
    Seed,
    /// One `(min, max)` range per feature.
    Ranges,
}

impl ParamType {
    /// The type in words, as error messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "a count",
            Self::Real => "a real number",
            Self::Seed => "a seed",
            Self::Ranges => "(min, max) ranges",
        }
    }
}

/// The value of a parameter set by key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamValue {
    /// A count or a size.
    Count(usize),
    /// A real number.
    Real(f64),
    /// A random seed.
    Seed(u64),
    /// One `(min, max)` range per feature.
    Ranges(Vec<(f64, f64)>),
}

impl ParamValue {
    /// The type of the value.
    pub fn param_type(&self) -> ParamType {
        match self {
            Self::Count(_) => ParamType::Count,
            Self::Real(_) => ParamType::Real,
            Self::Seed(_) => ParamType::Seed,
            Self::Ranges(_) => ParamType::Ranges,
        }
    }
}

/// One parameter of a kind, as it is set by key: its name (the Python keyword) and its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamKey {
    name: &'static str,
    ty: ParamType,
}

impl ParamKey {
    /// The key.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type of its values.
    pub fn param_type(&self) -> ParamType {
        self.ty
    }
}

/// A builder argument type that a [`ParamValue`] can be.
pub(crate) trait FromParamValue: Sized {
    const TYPE: ParamType;
    fn from_value(v: ParamValue) -> Option<Self>;
}

impl FromParamValue for usize {
    const TYPE: ParamType = ParamType::Count;
    fn from_value(v: ParamValue) -> Option<Self> {
        match v {
            ParamValue::Count(n) => Some(n),
            _ => None,
        }
    }
}

impl FromParamValue for f64 {
    const TYPE: ParamType = ParamType::Real;
    fn from_value(v: ParamValue) -> Option<Self> {
        match v {
            ParamValue::Real(x) => Some(x),
            _ => None,
        }
    }
}

impl FromParamValue for u64 {
    const TYPE: ParamType = ParamType::Seed;
    fn from_value(v: ParamValue) -> Option<Self> {
        match v {
            ParamValue::Seed(s) => Some(s),
            _ => None,
        }
    }
}

impl FromParamValue for Vec<(f64, f64)> {
    const TYPE: ParamType = ParamType::Ranges;
    fn from_value(v: ParamValue) -> Option<Self> {
        match v {
            ParamValue::Ranges(r) => Some(r),
            _ => None,
        }
    }
}

/// A getter's return type as a parameter value; `None` for a parameter left unset.
pub(crate) trait ToParamValue {
    fn to_value(self) -> Option<ParamValue>;
}

impl ToParamValue for usize {
    fn to_value(self) -> Option<ParamValue> {
        Some(ParamValue::Count(self))
    }
}

impl ToParamValue for f64 {
    fn to_value(self) -> Option<ParamValue> {
        Some(ParamValue::Real(self))
    }
}

impl ToParamValue for Option<u64> {
    fn to_value(self) -> Option<ParamValue> {
        self.map(ParamValue::Seed)
    }
}

impl ToParamValue for Option<&[(f64, f64)]> {
    fn to_value(self) -> Option<ParamValue> {
        self.map(|r| ParamValue::Ranges(r.to_vec()))
    }
}

/// The type of a builder method's argument, read off its signature, so that a key's declared type
/// cannot drift from the setter it calls.
pub(crate) const fn setter_type<P, T: FromParamValue>(_setter: fn(P, T) -> P) -> ParamType {
    T::TYPE
}

/// `value` as the argument of the setter of `key`, or the error naming both types.
pub(crate) fn from_value<T: FromParamValue>(
    key: &'static str,
    value: ParamValue,
) -> std::result::Result<T, StreamParamsError> {
    let got = value.param_type();
    T::from_value(value).ok_or(StreamParamsError::ParamType {
        key,
        expected: T::TYPE,
        got,
    })
}

/// Unchecked parameters that can be set by key, and read back by key from the checked ones.
pub(crate) trait KeyedParams: Sized {
    /// The checked parameters a running detector keeps.
    type Valid;
    /// The keys, in the order of the Python constructor.
    const KEYS: &'static [ParamKey];
    /// Sets `key` to `value` with the builder method behind the key.
    fn set_key(self, key: &str, value: ParamValue) -> std::result::Result<Self, StreamParamsError>;
    /// Every key's value (`None`: unset), in the order of [`KEYS`](Self::KEYS).
    fn values(valid: &Self::Valid) -> Vec<(&'static str, Option<ParamValue>)>;
}

/// Implements [`KeyedParams`] for a detector's parameters: `"key" => method`, where `method` is
/// both the builder's setter on the unchecked parameters and the getter on the checked ones.
macro_rules! keyed_params {
    ($params:ty => $valid:ty { $($key:literal => $method:ident),+ $(,)? }) => {
        impl $crate::stream::registry::KeyedParams for $params {
            type Valid = $valid;
            const KEYS: &'static [$crate::stream::ParamKey] = &[$(
                $crate::stream::registry::param_key(
                    $key,
                    $crate::stream::registry::setter_type(<$params>::$method),
                )
            ),+];

            fn set_key(
                self,
                key: &str,
                value: $crate::stream::ParamValue,
            ) -> std::result::Result<Self, $crate::stream::StreamParamsError> {
                match key {
                    $($key => Ok(self.$method($crate::stream::registry::from_value($key, value)?)),)+
                    _ => Err($crate::stream::StreamParamsError::UnknownParam {
                        key: key.to_owned(),
                        known: Self::KEYS,
                    }),
                }
            }

            fn values(valid: &$valid) -> Vec<(&'static str, Option<$crate::stream::ParamValue>)> {
                vec![$((
                    $key,
                    $crate::stream::registry::ToParamValue::to_value(valid.$method()),
                )),+]
            }
        }
    };
}
pub(crate) use keyed_params;

/// A [`ParamKey`] in a constant.
pub(crate) const fn param_key(name: &'static str, ty: ParamType) -> ParamKey {
    ParamKey { name, ty }
}

/// What a streaming detector provides to be one of the registered kinds. Implemented beside each
/// detector; the defaults suit a detector with no NAB-specific set-up.
pub(crate) trait Registered:
    StreamingDetector + Persist + Clone + Debug + PartialEq + Send + Sync + 'static
{
    /// The kind's name ([`StreamKind::name`]): the Python `kind`, the evaluation's detector.
    const NAME: &'static str;
    /// One line on what the detector does, without a final period, for listings such as the
    /// evaluation's `--help`.
    const SUMMARY: &'static str;
    /// Its unchecked parameters, settable by key.
    type Params: KeyedParams + Default + Clone + Debug + PartialEq + Send + Sync;

    /// Checks `params` and starts a detector for rows of `n_features` values.
    fn build(params: &Self::Params, n_features: usize) -> Result<Self>;

    /// The checked parameters the detector runs with.
    fn valid(&self) -> &<Self::Params as KeyedParams>::Valid;

    /// The parameters [`StreamSpec::by_name`] gives the kind: tuned for NAB-like univariate
    /// series where that helped, the defaults otherwise.
    fn nab_params() -> Self::Params {
        Self::Params::default()
    }

    /// The parameters as NAB's protocol sets the detector up for one file of `values`
    /// ([`StreamSpec::for_nab_file`]); unchanged by default.
    fn for_nab_file(params: &Self::Params, _values: &[f64]) -> Self::Params {
        params.clone()
    }

    /// How [`nab_scores`](super::nab_scores) maps the raw scores into [0, 1].
    fn nab_mapping() -> ScoreMapping {
        ScoreMapping::default()
    }
}

/// The list of registered kinds: `Variant(DetectorType, ParamsType)`, one line per kind. It
/// generates [`StreamKind`], [`StreamSpec`] and [`StreamModel`], each with one variant per line.
macro_rules! stream_kinds {
    ($($variant:ident($det:ident, $params:ident)),+ $(,)?) => {
        /// Number of registered kinds.
        const COUNT: usize = [$(stringify!($variant)),+].len();

        /// A registered kind of streaming detector. [`StreamKind::ALL`] lists them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum StreamKind {
            $(
                #[doc = concat!("[`", stringify!($det), "`].")]
                $variant,
            )+
        }

        impl StreamKind {
            /// Every registered kind, in registration order.
            pub const ALL: [StreamKind; COUNT] = [$(StreamKind::$variant),+];

            /// The kind's name (`robust_zscore`, ...): the Python `kind` and the evaluation's
            /// detector name (with `-` for `_`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => <$det as Registered>::NAME,)+
                }
            }

            /// The `kind` field of the detector's model files.
            pub fn file_kind(self) -> &'static str {
                match self {
                    $(Self::$variant => <$det as Persist>::KIND,)+
                }
            }

            /// One line on what the detector does.
            pub fn summary(self) -> &'static str {
                match self {
                    $(Self::$variant => <$det as Registered>::SUMMARY,)+
                }
            }

            /// The parameters [`StreamSpec::set`] takes, in the order of the Python constructor.
            pub fn params(self) -> &'static [ParamKey] {
                match self {
                    $(Self::$variant => <$params as KeyedParams>::KEYS,)+
                }
            }

            /// The detector with the engine's default parameters.
            pub fn default_spec(self) -> StreamSpec {
                match self {
                    $(Self::$variant => StreamSpec::$variant($params::default()),)+
                }
            }

            /// The detector with the parameters of [`StreamSpec::by_name`].
            pub fn nab_spec(self) -> StreamSpec {
                match self {
                    $(Self::$variant => StreamSpec::$variant(<$det as Registered>::nab_params()),)+
                }
            }

            /// Decodes the state of a model file whose kind is this kind's
            /// [`file_kind`](Self::file_kind).
            pub(crate) fn decode(
                self,
                envelope: Envelope,
            ) -> std::result::Result<StreamModel, ModelFileError> {
                Ok(match self {
                    $(Self::$variant => StreamModel::$variant(Box::new(persist::decode(envelope)?)),)+
                })
            }
        }

        /// Which streaming detector to run, with its parameters: what an evaluation names and
        /// what the Python constructors build.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum StreamSpec {
            $(
                #[doc = concat!("[`", stringify!($det), "`] with its parameters.")]
                $variant($params),
            )+
        }

        impl StreamSpec {
            /// Names accepted by [`by_name`](Self::by_name): those of [`StreamKind::ALL`].
            pub const NAMES: [&'static str; COUNT] = [$(<$det as Registered>::NAME),+];

            /// The kind of detector.
            pub fn kind(&self) -> StreamKind {
                match self {
                    $(Self::$variant(_) => StreamKind::$variant,)+
                }
            }

            /// Checks the parameters and builds the detector for rows of `n_features` values.
            pub fn build(&self, n_features: usize) -> Result<Box<dyn StreamingDetector>> {
                Ok(match self {
                    $(Self::$variant(p) => Box::new(<$det as Registered>::build(p, n_features)?),)+
                })
            }

            /// Checks the parameters and builds the detector, kept by its concrete type so that
            /// it can be saved.
            pub fn build_model(&self, n_features: usize) -> Result<StreamModel> {
                Ok(match self {
                    $(Self::$variant(p) => {
                        StreamModel::$variant(Box::new(<$det as Registered>::build(p, n_features)?))
                    })+
                })
            }

            /// Sets the parameter `key` (one of the kind's [`StreamKind::params`]) to `value`.
            ///
            /// Errors on a key the kind does not have or a value of another type; the value
            /// itself is checked when the detector is built.
            pub fn set(self, key: &str, value: ParamValue) -> Result<Self> {
                Ok(match self {
                    $(Self::$variant(p) => Self::$variant(p.set_key(key, value)?),)+
                })
            }

            /// The specification as NAB runs it on one file of `values`: NAB hands every
            /// detector the file's minimum and maximum and its probation period (the first
            /// [`probation_rows`](crate::eval::nab::probation_rows) rows). The context detector
            /// takes them as its value range (a constant file gets `(min, min + 1)`) and a rest
            /// period of a fifth of the probation, as the reference NAB runner does; the other
            /// detectors are returned unchanged.
            pub fn for_nab_file(&self, values: &[f64]) -> Self {
                match self {
                    $(Self::$variant(p) => {
                        Self::$variant(<$det as Registered>::for_nab_file(p, values))
                    })+
                }
            }

            /// How [`nab_scores`](super::nab_scores) maps this detector's raw scores into
            /// [0, 1]: as they are for the context detector (already in [0, 1], its rest period
            /// already thins its alarms), the default [`AnomalyLikelihood`](super::AnomalyLikelihood)
            /// otherwise.
            pub fn nab_mapping(&self) -> ScoreMapping {
                match self {
                    $(Self::$variant(_) => <$det as Registered>::nab_mapping(),)+
                }
            }
        }

        /// A running streaming detector of any registered kind, kept by its concrete type so
        /// that it can be saved; what a model file of a streaming kind loads into.
        #[derive(Debug, Clone, PartialEq)]
        #[non_exhaustive]
        pub enum StreamModel {
            $(
                #[doc = concat!("A [`", stringify!($det), "`], with its learnt state.")]
                $variant(Box<$det>),
            )+
        }

        $(
            impl From<$det> for StreamModel {
                fn from(d: $det) -> Self {
                    Self::$variant(Box::new(d))
                }
            }
        )+

        impl StreamModel {
            /// The kind of detector.
            pub fn kind(&self) -> StreamKind {
                match self {
                    $(Self::$variant(_) => StreamKind::$variant,)+
                }
            }

            /// The parameters the detector runs with, by key, in the order of
            /// [`StreamKind::params`] (`None`: left unset, e.g. no fixed seed).
            pub fn params(&self) -> Vec<(&'static str, Option<ParamValue>)> {
                match self {
                    $(Self::$variant(d) => <$params as KeyedParams>::values(d.valid()),)+
                }
            }

            /// The detector with its learnt state as the bytes of a model file.
            pub fn to_bytes(&self) -> Vec<u8> {
                match self {
                    $(Self::$variant(d) => d.to_bytes(),)+
                }
            }

            /// Writes the model file to `path` (atomically: a temporary file renamed into
            /// place).
            pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
                Ok(persist::write_file(path.as_ref(), &self.to_bytes())?)
            }

            fn as_dyn(&self) -> &dyn StreamingDetector {
                match self {
                    $(Self::$variant(d) => d.as_ref(),)+
                }
            }

            fn as_dyn_mut(&mut self) -> &mut dyn StreamingDetector {
                match self {
                    $(Self::$variant(d) => d.as_mut(),)+
                }
            }
        }
    };
}

stream_kinds! {
    RobustZScore(RobustZScore, RobustZScoreParams),
    EwmaChart(EwmaChart, EwmaChartParams),
    HalfSpaceTrees(HalfSpaceTrees, HalfSpaceTreesParams),
    Context(ContextDetector, ContextDetectorParams),
}

impl StreamKind {
    /// The kind called `name`, or `None`.
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The kind whose model files have `kind` as their kind, or `None`.
    pub fn by_file_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.file_kind() == kind)
    }

    /// The parameter `key` of the kind, or `None`.
    pub fn param(self, key: &str) -> Option<ParamKey> {
        self.params().iter().copied().find(|p| p.name == key)
    }
}

impl StreamSpec {
    /// The detector called `name` (one of [`NAMES`](Self::NAMES)) with parameters for NAB-like
    /// univariate series, or `None` for an unknown name.
    ///
    /// The parameters were picked among a few candidates by the pointwise ROC AUC of the
    /// labelled windows on NAB's own files: a robust z-score over 1000 rows, an EWMA chart whose
    /// in-control statistics remember about 500 rows (`alpha` 0.002), half-space trees with the
    /// paper's settings and seed 42. A NAB score with them is therefore somewhat optimistic.
    /// The context detector has the reference detector's parameters, untuned.
    pub fn by_name(name: &str) -> Option<Self> {
        StreamKind::by_name(name).map(StreamKind::nab_spec)
    }
}

impl StreamModel {
    /// Reads a streaming detector of any registered kind from the bytes of a model file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match persist::from_bytes(bytes)? {
            persist::Model::Streaming(m) => Ok(m),
            other => Err(ModelFileError::WrongKind {
                expected: "streaming detector",
                found: other.kind().to_owned(),
            }
            .into()),
        }
    }

    /// Scores the rows of `x` in order, learning from each; see [`super::score_series`].
    pub fn score_series(&mut self, x: &ArrayView2<'_, f64>) -> Result<Array1<f64>> {
        super::score_series(self.as_dyn_mut(), x)
    }
}

impl StreamingDetector for StreamModel {
    fn n_features(&self) -> usize {
        self.as_dyn().n_features()
    }

    fn update(&mut self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        self.as_dyn_mut().update(row)
    }

    fn score(&self, row: &[f64]) -> std::result::Result<f64, detector::DetectError> {
        self.as_dyn().score(row)
    }

    fn threshold(&self) -> f64 {
        self.as_dyn().threshold()
    }
}

impl From<StreamModel> for persist::Model {
    fn from(m: StreamModel) -> Self {
        persist::Model::Streaming(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectError;

    /// Rows that every kind can learn from and score: two features, a wave and its echo.
    fn rows(n: usize, from: usize) -> Vec<[f64; 2]> {
        (from..from + n)
            .map(|i| {
                let x = (i as f64 * 0.3).sin() + ((i * 7) % 11) as f64 / 50.0;
                [x, 0.5 * x + ((i * 3) % 5) as f64 / 20.0]
            })
            .collect()
    }

    fn run(det: &mut StreamModel, rows: &[[f64; 2]]) -> Vec<u64> {
        rows.iter()
            .map(|r| det.update(r).expect("update").to_bits())
            .collect()
    }

    #[test]
    fn kinds_are_listed_once_and_found_by_name_and_file_kind() {
        assert_eq!(StreamKind::ALL.len(), StreamSpec::NAMES.len());
        for (i, kind) in StreamKind::ALL.into_iter().enumerate() {
            assert_eq!(StreamSpec::NAMES[i], kind.name());
            assert_eq!(StreamKind::by_name(kind.name()), Some(kind));
            assert_eq!(StreamKind::by_file_kind(kind.file_kind()), Some(kind));
            assert_eq!(kind.default_spec().kind(), kind);
            assert_eq!(kind.nab_spec().kind(), kind);
            assert_eq!(StreamSpec::by_name(kind.name()), Some(kind.nab_spec()));
            assert!(!kind.summary().is_empty());
            for other in &StreamKind::ALL[i + 1..] {
                assert_ne!(kind.name(), other.name());
                assert_ne!(kind.file_kind(), other.file_kind());
            }
            // A streaming kind must not take the model-file kind of a batch model.
            assert!(!matches!(
                kind.file_kind(),
                "isolation_forest"
                    | "standard_scaler"
                    | "robust_scaler"
                    | "pca_detector"
                    | "pipeline"
                    | "health_index"
            ));
        }
        assert_eq!(StreamKind::by_name("nope"), None);
        assert_eq!(StreamKind::by_file_kind("nope"), None);
    }

    #[test]
    fn every_kind_round_trips_through_model_bytes() {
        for kind in StreamKind::ALL {
            let mut det = kind.default_spec().build_model(2).expect("build");
            assert_eq!(det.kind(), kind);
            run(&mut det, &rows(700, 0));
            let bytes = det.to_bytes();
            let envelope: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(envelope["kind"], kind.file_kind(), "{kind:?}");
            let mut loaded = match persist::from_bytes(&bytes).expect("load") {
                persist::Model::Streaming(m) => m,
                other => panic!("{kind:?} loaded as {other:?}"),
            };
            assert_eq!(loaded.kind(), kind);
            assert_eq!(
                loaded.to_bytes(),
                bytes,
                "{kind:?}: writing is deterministic"
            );
            let again = StreamModel::from_bytes(&bytes).expect("load");
            assert_eq!(again.to_bytes(), bytes, "{kind:?}");
            let more = rows(300, 700);
            assert_eq!(run(&mut loaded, &more), run(&mut det, &more), "{kind:?}");
        }
        let scaler = crate::StandardScaler::fit(&ndarray::array![[1.0], [2.0]].view())
            .expect("fit")
            .to_bytes();
        assert!(matches!(
            StreamModel::from_bytes(&scaler),
            Err(DetectError::ModelFile(ModelFileError::WrongKind { .. }))
        ));
    }

    #[test]
    fn every_kind_rebuilds_from_its_params_by_key() {
        for kind in StreamKind::ALL {
            // Non-default values where the kind has them, so that setting is seen to apply.
            let mut spec = kind.nab_spec();
            if kind.param("random_state").is_some() {
                spec = spec.set("random_state", ParamValue::Seed(7)).expect("seed");
            }
            let det = spec.build_model(1).expect("build");
            let params = det.params();
            let keys: Vec<_> = params.iter().map(|(k, _)| *k).collect();
            let declared: Vec<_> = kind.params().iter().map(ParamKey::name).collect();
            assert_eq!(keys, declared, "{kind:?}");
            let mut rebuilt = kind.default_spec();
            for (key, value) in params.iter().cloned() {
                if let Some(value) = value {
                    assert_eq!(
                        Some(value.param_type()),
                        kind.param(key).map(|p| p.param_type()),
                        "{kind:?} {key}"
                    );
                    rebuilt = rebuilt.set(key, value).expect("set");
                }
            }
            let again = rebuilt.build_model(1).expect("build");
            assert_eq!(again.params(), params, "{kind:?}");
            assert_eq!(again.to_bytes(), det.to_bytes(), "{kind:?}");
        }
    }

    #[test]
    fn setting_by_key_refuses_unknown_keys_and_other_types() {
        let spec = StreamKind::RobustZScore.default_spec();
        let unknown = spec.clone().set("windw", ParamValue::Count(5)).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "invalid parameter: unknown parameter \"windw\"; one of window, warm_up, mad_floor, \
             threshold"
        );
        let wrong = spec.set("window", ParamValue::Real(5.0)).unwrap_err();
        assert_eq!(
            wrong,
            DetectError::StreamParams(StreamParamsError::ParamType {
                key: "window",
                expected: ParamType::Count,
                got: ParamType::Real,
            })
        );
        assert_eq!(
            wrong.to_string(),
            "invalid parameter: window must be a count, got a real number"
        );
        // Values are checked when the detector is built, as with the builder.
        let zero = StreamKind::RobustZScore
            .default_spec()
            .set("window", ParamValue::Count(0))
            .expect("set");
        assert!(zero.build_model(1).is_err());
    }

    #[test]
    fn registry_types_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<StreamKind>();
        assert_send_sync::<StreamSpec>();
        assert_send_sync::<StreamModel>();
    }
}
