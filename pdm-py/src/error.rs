//! One mapping from engine errors to the Python exceptions of `pdm_engine.exceptions`.
//!
//! The exception classes are defined in Python, where a class can derive from both `PdmError`
//! and `ValueError` (the scikit-learn convention for bad parameters and data); this module looks
//! them up when raising.

use pdm_detect::eval::EvalError;
use pdm_detect::persist::ModelFileError;
use pdm_detect::DetectError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

fn raise(class: &str, message: String) -> PyErr {
    Python::attach(|py| {
        let cls = py
            .import("pdm_engine.exceptions")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match cls {
            Ok(cls) => PyErr::from_type(cls, message),
            // The package is broken (the module is imported from elsewhere): still say what
            // went wrong.
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

/// A bad parameter (`ParameterError`, a `ValueError`).
pub fn parameter_error(message: String) -> PyErr {
    raise("ParameterError", message)
}

/// A model file that cannot be used (`ModelFileError`, a `ValueError`).
pub fn model_file_error(message: String) -> PyErr {
    raise("ModelFileError", message)
}

/// Maps an engine error onto the exception hierarchy.
pub fn detect_err(e: DetectError) -> PyErr {
    let message = e.to_string();
    let class = match &e {
        DetectError::Params(_)
        | DetectError::StreamParams(_)
        | DetectError::HealthParams(_)
        | DetectError::WindowFeatures(_)
        | DetectError::Pca(_)
        | DetectError::Decision(_)
        | DetectError::Pipeline(_) => "ParameterError",
        DetectError::ModelFile(ModelFileError::NewerVersion { .. }) => "ModelVersionError",
        DetectError::ModelFile(ModelFileError::Io { .. }) => "ModelIOError",
        DetectError::ModelFile(_) => "ModelFileError",
        _ => "DataError",
    };
    raise(class, message)
}

/// Maps an evaluation error: a bad parameter is a `ParameterError`, anything about the scores,
/// labels or windows given is a `DataError`.
pub fn eval_err(e: EvalError) -> PyErr {
    let class = match &e {
        EvalError::Param(_) => "ParameterError",
        _ => "DataError",
    };
    raise(class, e.to_string())
}
