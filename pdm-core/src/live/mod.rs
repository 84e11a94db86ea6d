//! The live path: every machine's rows scored by its active model as readings arrive.
//!
//! - [`model`]: the seam to detection ([`ModelFactory`], [`LiveModel`]).

pub mod model;

pub use model::{
    LiveModel, LiveScore, ModelError, ModelFactory, ModelInfo, TrainSpec, Trained, TrainingRows,
};
