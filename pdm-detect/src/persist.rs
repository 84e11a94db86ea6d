//! Model files: one versioned, documented format (docs/model-format.md) read and written by
//! Rust and, through the bindings, Python.
//!
//! A file is one JSON document: an envelope naming the format, its version, the kind of model,
//! the library that wrote it, the feature names and training metadata, and the model's
//! parameters and fitted state, with a checksum of the latter. Floats are written in their
//! shortest exact form and read back bit for bit, so a loaded model scores exactly as the saved
//! one. Loading checks everything scoring relies on: a damaged file is refused with a reason,
//! never trusted.
//!
//! ```
//! use ndarray::array;
//! use pdm_detect::{persist, IsolationForest};
//!
//! let x = array![[0.0, 1.0], [0.5, 1.5], [1.0, 0.5], [9.0, 9.0]];
//! let model = IsolationForest::params().n_estimators(10).random_state(1).fit(&x.view())?;
//! let bytes = model.to_bytes();
//! let loaded = IsolationForest::from_bytes(&bytes)?;
//! assert_eq!(loaded.score_samples(&x.view())?, model.score_samples(&x.view())?);
//!
//! // Any model can be loaded without knowing its kind first.
//! match persist::from_bytes(&bytes)? {
//!     persist::Model::IsolationForest(m) => assert_eq!(m.n_estimators(), 10),
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), pdm_detect::DetectError>(())
//! ```

use std::path::Path;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::health::HealthIndex;
use crate::stream::{StreamKind, StreamModel};

use crate::{
    DetectError, IsolationForest, PcaDetector, Pipeline, Result, RobustScaler, StandardScaler,
};

/// The `format` field of every model file.
pub const FORMAT: &str = "pdm-model";

/// The format version this library writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Why a model file cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelFileError {
    /// The file cannot be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// Not JSON, or not a pdm model file.
    #[error("not a pdm model file: {0}")]
    NotAModel(String),
    /// Written by a newer pdm.
    #[error(
        "the model file has format version {found}; this pdm reads versions up to \
         {FORMAT_VERSION}: upgrade pdm to load it"
    )]
    NewerVersion {
        /// The file's version.
        found: u64,
    },
    /// A kind of model this library does not know.
    #[error("unknown model kind {0:?}")]
    UnknownKind(String),
    /// Another kind of model than asked for.
    #[error("the file holds a {found} model, not a {expected}")]
    WrongKind {
        /// The kind asked for.
        expected: &'static str,
        /// The kind in the file.
        found: String,
    },
    /// The checksum does not match the content: the file was altered or damaged.
    #[error("the model's checksum does not match its content: the file is damaged or was edited")]
    Checksum,
    /// The content is inconsistent: which field, and what is wrong with it.
    #[error("the model file is damaged: {0}")]
    Corrupt(StateError),
}

/// Why the content of a model file cannot be used: the field at fault and what is wrong with it.
/// Every kind's check of its stored state (`from_state`) reports this one shape, which
/// [`ModelFileError::Corrupt`] carries into the crate's [`DetectError`].
///
/// It displays as the problem alone, which names the field in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct StateError {
    field: &'static str,
    problem: String,
}

impl StateError {
    /// `field` (as named in the file's `model` object; `envelope` and `model` for the envelope
    /// and the state as a whole) is wrong, as `problem` says.
    pub(crate) fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }

    /// The parameters stored with the state are out of range; `e` says which.
    pub(crate) fn params(e: impl std::fmt::Display) -> Self {
        Self::new("parameters", e.to_string())
    }

    /// The field at fault: the first of the fields the failed check covers, `parameters` for
    /// the stored parameters as a whole.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// What is wrong with it.
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

/// A loaded model of any kind.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Model {
    /// An Isolation Forest (boxed: it is much larger than the other variants).
    IsolationForest(Box<IsolationForest>),
    /// A standard scaler.
    StandardScaler(StandardScaler),
    /// A robust scaler.
    RobustScaler(RobustScaler),
    /// A PCA detector.
    PcaDetector(Box<PcaDetector>),
    /// The default pipeline.
    Pipeline(Box<Pipeline>),
    /// A streaming detector of any registered kind ([`StreamKind`]), with its learnt state.
    Streaming(StreamModel),
    /// A health index, with its smoothed score.
    HealthIndex(HealthIndex),
}

impl Model {
    /// The kind as written in files (`isolation_forest`, `standard_scaler`, `robust_scaler`,
    /// `pca_detector`, `pipeline`, `health_index`, and the streaming kinds'
    /// [`StreamKind::file_kind`]: `robust_zscore`, `ewma_chart`, `half_space_trees`,
    /// `context_detector`).
    pub fn kind(&self) -> &'static str {
        match self {
            Model::IsolationForest(_) => IsolationForest::KIND,
            Model::StandardScaler(_) => StandardScaler::KIND,
            Model::RobustScaler(_) => RobustScaler::KIND,
            Model::PcaDetector(_) => PcaDetector::KIND,
            Model::Pipeline(_) => Pipeline::KIND,
            Model::Streaming(m) => m.kind().file_kind(),
            Model::HealthIndex(_) => HealthIndex::KIND,
        }
    }
}

/// What a model type provides to be written to and read from files.
pub(crate) trait Persist: Sized {
    /// The `kind` field.
    const KIND: &'static str;
    /// Parameters and fitted state.
    type State: Serialize + DeserializeOwned;
    fn feature_names(&self) -> Vec<String>;
    /// Training rows, for the envelope's metadata; `None` where the model does not keep them.
    fn n_training_rows(&self) -> Option<usize> {
        None
    }
    fn state(&self) -> Self::State;
    /// Rebuilds the model from its stored state, checking everything scoring relies on.
    fn from_state(
        state: Self::State,
        feature_names: Vec<String>,
    ) -> std::result::Result<Self, StateError>;
    /// Restores the envelope's `n_training_rows` after [`from_state`](Self::from_state), for
    /// models that keep it.
    fn restore_training_rows(&mut self, _n: Option<usize>) {}
}

/// The envelope of every model file; `model` holds the kind's state.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Envelope {
    format: String,
    format_version: u32,
    kind: String,
    library: String,
    feature_names: Vec<String>,
    n_training_rows: Option<usize>,
    checksum: String,
    model: Value,
}

/// `x0`, `x1`, ...: the feature names of a model that has none of its own.
pub(crate) fn numbered_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("x{i}")).collect()
}

/// FNV-1a, 64 bits: cheap, and enough to catch a damaged or hand-edited file (not a signature).
pub(crate) fn checksum(model: &Value) -> String {
    let text = model.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

pub(crate) fn write<M: Persist>(m: &M) -> Vec<u8> {
    // Serializing plain structs of numbers and strings to a Value cannot fail.
    let model = serde_json::to_value(m.state()).unwrap_or(Value::Null);
    let envelope = Envelope {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: M::KIND.into(),
        library: concat!("pdm-detect ", env!("CARGO_PKG_VERSION")).into(),
        feature_names: m.feature_names(),
        n_training_rows: m.n_training_rows(),
        checksum: checksum(&model),
        model,
    };
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Checks the envelope and returns it; the version is read before anything else, so a newer
/// file is refused for its version, not for a layout this library does not know.
fn open(bytes: &[u8]) -> std::result::Result<Envelope, ModelFileError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ModelFileError::NotAModel(e.to_string()))?;
    if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
        return Err(ModelFileError::NotAModel(format!(
            "no \"format\": \"{FORMAT}\" field"
        )));
    }
    let version = value
        .get("format_version")
        .and_then(Value::as_u64)
        .ok_or_else(|| ModelFileError::NotAModel("no format_version field".into()))?;
    if version > u64::from(FORMAT_VERSION) {
        return Err(ModelFileError::NewerVersion { found: version });
    }
    let envelope: Envelope = serde_json::from_value(value)
        .map_err(|e| ModelFileError::Corrupt(StateError::new("envelope", e.to_string())))?;
    if envelope.checksum != checksum(&envelope.model) {
        return Err(ModelFileError::Checksum);
    }
    Ok(envelope)
}

/// The model of kind `M` in a checked envelope.
pub(crate) fn decode<M: Persist>(envelope: Envelope) -> std::result::Result<M, ModelFileError> {
    let state: M::State = serde_json::from_value(envelope.model).map_err(|e| {
        ModelFileError::Corrupt(StateError::new("model", format!("{} state: {e}", M::KIND)))
    })?;
    let mut model =
        M::from_state(state, envelope.feature_names).map_err(ModelFileError::Corrupt)?;
    model.restore_training_rows(envelope.n_training_rows);
    Ok(model)
}

pub(crate) fn read<M: Persist>(bytes: &[u8]) -> std::result::Result<M, ModelFileError> {
    let envelope = open(bytes)?;
    if envelope.kind != M::KIND {
        return Err(ModelFileError::WrongKind {
            expected: M::KIND,
            found: envelope.kind,
        });
    }
    decode(envelope)
}

/// Reads a model of any kind from the bytes of a model file.
pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
    let envelope = open(bytes)?;
    Ok(match envelope.kind.as_str() {
        IsolationForest::KIND => Model::IsolationForest(Box::new(decode(envelope)?)),
        StandardScaler::KIND => Model::StandardScaler(decode(envelope)?),
        RobustScaler::KIND => Model::RobustScaler(decode(envelope)?),
        PcaDetector::KIND => Model::PcaDetector(Box::new(decode(envelope)?)),
        Pipeline::KIND => Model::Pipeline(Box::new(decode(envelope)?)),
        HealthIndex::KIND => Model::HealthIndex(decode(envelope)?),
        other => match StreamKind::by_file_kind(other) {
            Some(kind) => Model::Streaming(kind.decode(envelope)?),
            None => return Err(ModelFileError::UnknownKind(other.to_owned()).into()),
        },
    })
}

/// Reads a model of any kind from a file.
pub fn load(path: impl AsRef<Path>) -> Result<Model> {
    from_bytes(&read_file(path.as_ref())?)
}

pub(crate) fn read_file(path: &Path) -> std::result::Result<Vec<u8>, ModelFileError> {
    std::fs::read(path).map_err(|e| ModelFileError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so a crash
/// never leaves a half-written model where a good one was.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> std::result::Result<(), ModelFileError> {
    let io = |e: std::io::Error| ModelFileError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let tmp = path.with_extension("pdm-tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

impl From<ModelFileError> for DetectError {
    fn from(e: ModelFileError) -> Self {
        DetectError::ModelFile(e)
    }
}

/// `to_bytes`, `from_bytes`, `save` and `load` for a model type.
macro_rules! persistable {
    ($t:ty) => {
        impl $t {
            /// The model as the bytes of a model file (docs/model-format.md).
            pub fn to_bytes(&self) -> Vec<u8> {
                $crate::persist::write(self)
            }

            /// Reads a model of this kind from the bytes of a model file.
            pub fn from_bytes(bytes: &[u8]) -> $crate::Result<Self> {
                Ok($crate::persist::read(bytes)?)
            }

            /// Writes the model to `path` (atomically: a temporary file renamed into place).
            pub fn save(&self, path: impl AsRef<std::path::Path>) -> $crate::Result<()> {
                Ok($crate::persist::write_file(
                    path.as_ref(),
                    &self.to_bytes(),
                )?)
            }

            /// Reads a model of this kind from `path`.
            pub fn load(path: impl AsRef<std::path::Path>) -> $crate::Result<Self> {
                Self::from_bytes(&$crate::persist::read_file(path.as_ref())?)
            }
        }
    };
}
pub(crate) use persistable;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{ContextDetector, EwmaChart, HalfSpaceTrees, RobustZScore};
    use crate::{Contamination, MaxFeatures, MaxSamples};
    use ndarray::Array2;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn data(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| rng.random::<f64>() * 10.0 - 5.0)
    }

    fn forest() -> IsolationForest {
        IsolationForest::params()
            .n_estimators(50)
            .max_samples(MaxSamples::Count(128))
            .contamination(Contamination::Fraction(0.05))
            .max_features(MaxFeatures::Fraction(0.75))
            .random_state(7)
            .fit(&data(1000, 4, 1).view())
            .expect("fit")
            .with_feature_names(vec!["a".into(), "b".into(), "c".into(), "d".into()])
            .expect("names")
    }

    #[test]
    fn a_loaded_forest_scores_bit_for_bit_like_the_saved_one() {
        let model = forest();
        let loaded = IsolationForest::from_bytes(&model.to_bytes()).expect("load");
        let x = data(5000, 4, 2);
        let (a, b) = (
            model.score_samples(&x.view()).expect("score"),
            loaded.score_samples(&x.view()).expect("score"),
        );
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert_eq!(model.offset().to_bits(), loaded.offset().to_bits());
        assert_eq!(
            pdm_core::detector::Detector::feature_names(&loaded),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            loaded.to_bytes(),
            model.to_bytes(),
            "writing is deterministic"
        );
    }

    #[test]
    fn scalers_round_trip_and_files_are_written_whole() {
        let x = data(100, 3, 3);
        let scaler = StandardScaler::fit(&x.view()).expect("fit");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scaler.json");
        scaler.save(&path).expect("save");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temporary left"
        );
        assert_eq!(StandardScaler::load(&path).expect("load"), scaler);
        match load(&path).expect("load any") {
            Model::StandardScaler(s) => assert_eq!(s, scaler),
            other => panic!("{other:?}"),
        }
        let missing = StandardScaler::load(dir.path().join("nope.json")).expect_err("missing");
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }

    fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).expect("json");
        f(&mut v);
        serde_json::to_vec(&v).expect("json")
    }

    fn error_of(bytes: &[u8]) -> ModelFileError {
        match IsolationForest::from_bytes(bytes) {
            Err(DetectError::ModelFile(e)) => e,
            other => panic!("expected a model file error, got {other:?}"),
        }
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_with_a_reason() {
        let bytes = forest().to_bytes();
        let newer = edit(&bytes, |v| v["format_version"] = 2.into());
        assert_eq!(error_of(&newer), ModelFileError::NewerVersion { found: 2 });
        assert!(error_of(&newer).to_string().contains("upgrade pdm"));
        assert!(matches!(
            error_of(b"{\"format\": \"pdm-mod"),
            ModelFileError::NotAModel(_)
        ));
        assert!(matches!(
            error_of(&bytes[..bytes.len() / 2]),
            ModelFileError::NotAModel(_)
        ));
        assert!(matches!(
            error_of(b"[1, 2, 3]"),
            ModelFileError::NotAModel(_)
        ));
        let scaler = StandardScaler::fit(&data(10, 4, 1).view())
            .expect("fit")
            .to_bytes();
        assert!(matches!(
            error_of(&scaler),
            ModelFileError::WrongKind { .. }
        ));
        let unknown = edit(&bytes, |v| v["kind"] = "neural_net".into());
        assert!(matches!(
            from_bytes(&unknown),
            Err(DetectError::ModelFile(ModelFileError::UnknownKind(_)))
        ));
        // Any edit of the content without a matching checksum.
        let edited = edit(&bytes, |v| v["model"]["offset"] = (-0.1).into());
        assert_eq!(error_of(&edited), ModelFileError::Checksum);
        // Structural damage behind a valid checksum: refused, not trusted.
        for (field, value) in [
            ("left", serde_json::json!([5_000_000])),
            ("roots", serde_json::json!([])),
            ("threshold", serde_json::json!([1.0])),
        ] {
            let damaged = edit(&bytes, |v| {
                v["model"][field] = value;
                let sum = checksum(&v["model"]);
                v["checksum"] = sum.into();
            });
            assert!(
                matches!(error_of(&damaged), ModelFileError::Corrupt(_)),
                "{field}"
            );
        }
        let bad_feature = edit(&bytes, |v| {
            let lefts = v["model"]["left"].clone();
            // The first split node now names a feature the model does not have.
            let n = lefts.as_array().map_or(0, Vec::len);
            let split = (0..n)
                .find(|&i| lefts[i] != serde_json::json!(i))
                .expect("a split");
            v["model"]["feature"][split] = 99.into();
            let sum = checksum(&v["model"]);
            v["checksum"] = sum.into();
        });
        assert!(error_of(&bad_feature).to_string().contains("feature 99"));
    }

    #[test]
    fn pca_detectors_and_robust_scalers_round_trip_and_damage_is_refused() {
        let x = data(300, 4, 5);
        let pca = crate::PcaDetector::params()
            .n_components(crate::NComponents::Count(2))
            .fit(&x.view())
            .expect("fit")
            .with_feature_names(vec!["a".into(), "b".into(), "c".into(), "d".into()])
            .expect("names");
        let bytes = pca.to_bytes();
        let loaded = PcaDetector::from_bytes(&bytes).expect("load");
        assert_eq!(loaded, pca);
        let y = data(100, 4, 6);
        let (a, b) = (
            pca.scores(&y.view()).expect("scores"),
            loaded.scores(&y.view()).expect("scores"),
        );
        assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
        assert_eq!(from_bytes(&bytes).expect("any").kind(), "pca_detector");
        for (field, value) in [
            ("eigenvalues", serde_json::json!([1.0, 2.0, 0.5, 0.1])),
            ("components", serde_json::json!([[1.0, 0.0]])),
            ("q_limit", serde_json::json!(0.0)),
            ("limits", serde_json::json!("guess")),
        ] {
            let damaged = edit(&bytes, |v| {
                v["model"][field] = value;
                let sum = checksum(&v["model"]);
                v["checksum"] = sum.into();
            });
            assert!(
                matches!(
                    PcaDetector::from_bytes(&damaged),
                    Err(DetectError::ModelFile(ModelFileError::Corrupt(_)))
                ),
                "{field}"
            );
        }

        let robust = RobustScaler::fit(&x.view()).expect("fit");
        let loaded = RobustScaler::from_bytes(&robust.to_bytes()).expect("load");
        assert_eq!(loaded, robust);
        assert_eq!(
            from_bytes(&robust.to_bytes()).expect("any").kind(),
            "robust_scaler"
        );
    }

    /// Runs `det` over `rows`, returning the score bits.
    fn run_bits(
        det: &mut dyn pdm_core::detector::StreamingDetector,
        rows: &Array2<f64>,
    ) -> Vec<u64> {
        rows.rows()
            .into_iter()
            .map(|r| det.update(&r.to_vec()).expect("row").to_bits())
            .collect()
    }

    #[test]
    fn streaming_detectors_resume_from_a_model_file_exactly() {
        let (before, after) = (data(700, 2, 11), data(700, 2, 12));
        let mut robust = RobustZScore::params().window(100).build(2).expect("build");
        let mut ewma = EwmaChart::params().build(2).expect("build");
        let mut hst = HalfSpaceTrees::params()
            .window_size(100)
            .random_state(5)
            .build(2)
            .expect("build");
        // Saved mid-window, after the ranges were learnt.
        run_bits(&mut robust, &before);
        run_bits(&mut ewma, &before);
        run_bits(&mut hst, &before);
        let mut robust2 = RobustZScore::from_bytes(&robust.to_bytes()).expect("load");
        let mut ewma2 = EwmaChart::from_bytes(&ewma.to_bytes()).expect("load");
        let mut hst2 = HalfSpaceTrees::from_bytes(&hst.to_bytes()).expect("load");
        assert_eq!(robust2.to_bytes(), robust.to_bytes());
        assert_eq!(hst2.to_bytes(), hst.to_bytes());
        assert_eq!(
            run_bits(&mut robust2, &after),
            run_bits(&mut robust, &after)
        );
        assert_eq!(run_bits(&mut ewma2, &after), run_bits(&mut ewma, &after));
        assert_eq!(run_bits(&mut hst2, &after), run_bits(&mut hst, &after));
        // The context detector, saved after it learnt thousands of contexts.
        let noise = data(3000, 1, 14);
        let wave = Array2::from_shape_fn((3000, 1), |(i, _)| {
            (i as f64 * 0.3).sin() + 0.05 * noise[[i, 0]]
        });
        let mut ctx = ContextDetector::params().build(1).expect("build");
        run_bits(
            &mut ctx,
            &wave
                .slice_axis(ndarray::Axis(0), (..2000).into())
                .to_owned(),
        );
        assert!(ctx.n_contexts() > 100, "{}", ctx.n_contexts());
        let mut ctx2 = ContextDetector::from_bytes(&ctx.to_bytes()).expect("load");
        assert_eq!(ctx2.to_bytes(), ctx.to_bytes());
        let more = wave
            .slice_axis(ndarray::Axis(0), (2000..).into())
            .to_owned();
        assert_eq!(run_bits(&mut ctx2, &more), run_bits(&mut ctx, &more));
        let damaged = edit(&ctx.to_bytes(), |v| {
            v["model"]["contexts"][0]["right"] = 999_999.into();
            let sum = checksum(&v["model"]);
            v["checksum"] = sum.into();
        });
        assert!(ContextDetector::from_bytes(&damaged).is_err());
        // A health index carries on from its smoothed score.
        let mut health = HealthIndex::params().check().expect("params").build();
        health.series(&[0.5, 2.0, 3.0], 1.0).expect("scores");
        let mut health2 = HealthIndex::from_bytes(&health.to_bytes()).expect("load");
        assert_eq!(health2, health);
        assert_eq!(
            health2.series(&[4.0, 0.1], 1.0).expect("scores"),
            health.series(&[4.0, 0.1], 1.0).expect("scores")
        );
        // Saved while the first window is still learning the ranges.
        let mut young = HalfSpaceTrees::params()
            .window_size(100)
            .random_state(5)
            .build(2)
            .expect("build");
        run_bits(&mut young, &data(40, 2, 13));
        let mut young2 = HalfSpaceTrees::from_bytes(&young.to_bytes()).expect("load");
        assert_eq!(run_bits(&mut young2, &after), run_bits(&mut young, &after));
        assert_eq!(
            from_bytes(&ewma.to_bytes()).expect("any").kind(),
            "ewma_chart"
        );

        let bytes = robust.to_bytes();
        for (field, value) in [
            ("values", serde_json::json!([[1.0, 2.0], [1.0]])),
            ("window", serde_json::json!(0)),
        ] {
            let damaged = edit(&bytes, |v| {
                v["model"][field] = value;
                let sum = checksum(&v["model"]);
                v["checksum"] = sum.into();
            });
            assert!(
                matches!(
                    RobustZScore::from_bytes(&damaged),
                    Err(DetectError::ModelFile(ModelFileError::Corrupt(_)))
                ),
                "{field}"
            );
        }
        // State that no detector can reach is refused, not trusted: masses past the window
        // (they would overflow as rows are counted), a window shorter than the rows seen, a
        // semi-context stored twice.
        let refit = |bytes: &[u8], f: &dyn Fn(&mut Value)| {
            edit(bytes, |v| {
                f(v);
                let sum = checksum(&v["model"]);
                v["checksum"] = sum.into();
            })
        };
        let heavy = refit(&hst.to_bytes(), &|v| {
            v["model"]["latest"][0] = u32::MAX.into()
        });
        assert!(HalfSpaceTrees::from_bytes(&heavy).is_err());
        let short = refit(&robust.to_bytes(), &|v| {
            v["model"]["values"] = serde_json::json!([[1.0], [2.0]]);
        });
        assert!(RobustZScore::from_bytes(&short).is_err());
        let twice = refit(&ctx.to_bytes(), &|v| {
            let last = v["model"]["left"]
                .as_array()
                .and_then(|a| a.last().cloned());
            if let (Some(last), Some(left)) = (last, v["model"]["left"].as_array_mut()) {
                left.push(last);
            }
        });
        assert!(ContextDetector::from_bytes(&twice)
            .unwrap_err()
            .to_string()
            .contains("stored twice"));
        // Ranges too wide for a finite width cannot be given in the first place.
        assert!(HalfSpaceTrees::params()
            .feature_ranges(vec![(-1e308, 1e308)])
            .build(1)
            .is_err());

        let damaged = edit(&hst.to_bytes(), |v| {
            v["model"]["split_dim"][0] = 7.into();
            let sum = checksum(&v["model"]);
            v["checksum"] = sum.into();
        });
        assert!(HalfSpaceTrees::from_bytes(&damaged)
            .unwrap_err()
            .to_string()
            .contains("dimension below 2"));
    }
}

#[cfg(test)]
mod state_error_tests {
    use super::*;
    use crate::stream::RobustZScore;

    fn refit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(bytes).expect("json");
        f(&mut v);
        let sum = checksum(&v["model"]);
        v["checksum"] = sum.into();
        serde_json::to_vec(&v).expect("json")
    }

    fn state_error(r: Result<impl std::fmt::Debug>) -> StateError {
        match r {
            Err(DetectError::ModelFile(ModelFileError::Corrupt(e))) => e,
            other => panic!("expected a damaged state, got {other:?}"),
        }
    }

    #[test]
    fn state_errors_name_the_field_and_keep_their_message() {
        let bytes = RobustZScore::params()
            .window(10)
            .warm_up(5)
            .build(1)
            .expect("build")
            .to_bytes();
        let e = state_error(RobustZScore::from_bytes(&refit(&bytes, |v| {
            v["model"]["values"] = serde_json::json!([[1.0], [2.0]]);
        })));
        assert_eq!(e.field(), "values");
        assert_eq!(e.problem(), "2 windows of values for 1 features");
        assert_eq!(
            DetectError::from(ModelFileError::Corrupt(e)).to_string(),
            "model file: the model file is damaged: 2 windows of values for 1 features"
        );
        let e = state_error(RobustZScore::from_bytes(&refit(&bytes, |v| {
            v["model"]["window"] = 0.into();
        })));
        assert_eq!(e.field(), "parameters");
        assert_eq!(
            e.problem(),
            "invalid parameter: window must be in [3, 1000000], got 0"
        );
        let e = state_error(RobustZScore::from_bytes(&refit(&bytes, |v| {
            v["model"]["seen"] = "many".into();
        })));
        assert_eq!(e.field(), "model");
        assert!(e.problem().starts_with("robust_zscore state: "), "{e}");
    }
}
