//! Python bindings of pdm (`pdm_engine`).
//!
//! The PyO3 layer arrives with the Python module issue; until then this crate only fixes the
//! place of the bindings in the workspace and re-exports the engine crates they will wrap, so
//! that the dependency direction (bindings depend on the engine, never the reverse) holds from
//! the start.
//!
//! ```
//! assert_eq!(pdm_engine::ENGINE_CRATES, ["pdm-core", "pdm-detect"]);
//! ```

pub use pdm_core as core;
pub use pdm_detect as detect;

/// The engine crates the bindings wrap.
pub const ENGINE_CRATES: [&str; 2] = ["pdm-core", "pdm-detect"];
