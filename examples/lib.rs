//! Runnable examples of embedding pdm; each is a file in this folder:
//!
//! - `embed_engine.rs`: the engine with an SQLite store in your own program, no server.
//! - `model_roundtrip.rs`: the Rust side of the Python round-trip test of model files.
