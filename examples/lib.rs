//! Runnable examples of embedding pdm; each is a file in this folder:
//!
//! - `embed_engine.rs`: the engine with an SQLite store in your own program, no server.
