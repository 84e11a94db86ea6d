//! The reference server of pdm: REST API, HTTP and MQTT ingestion, and a demo with simulated
//! machines, composed from the engine crates.
//!
//! The library exposes [`app`] (the axum router for a given [`AppState`]) so that tests and
//! embedding applications can drive it without a network; `main.rs` only calls [`cli::main`].
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use pdm_server::config::ServerConfig;
//!
//! let config = ServerConfig { data_dir: "./pdm-data".into(), ..ServerConfig::default() };
//! let server = pdm_server::run::Server::start(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until_signal().await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod files;
pub mod layers;
pub mod mail;
pub mod metrics;
pub mod openapi;
pub mod run;
pub mod settings;
pub mod state;
pub mod time;
pub mod views;
pub mod webhook_sender;

use axum::Router;
pub use state::AppState;

/// The whole HTTP app: `/api/v1/...`, `/health/...` and `/metrics`, behind the request-id,
/// tracing, metrics and timeout [`layers`].
pub fn app(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let timeout = state.request_timeout;
    let cors = layers::cors(&state.cors_origins);
    let mut router = Router::new()
        .nest("/api/v1", api::api_router(&state))
        .merge(api::ops::root_router())
        .merge(openapi::docs_router())
        .fallback(|| async { error::ApiError::not_found("no such route") })
        .with_state(state);
    if let Some(cors) = cors {
        // Outside the routes: a preflight is answered here, before any route's access check.
        router = router.layer(cors);
    }
    layers::apply(router, metrics, timeout)
}

/// [`app`] with no authentication at all: every `/api/v1` route open to anyone. Only the peer
/// of `auth_bench` (the same read, unauthenticated); never serve it.
#[doc(hidden)]
pub fn app_without_auth(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    let timeout = state.request_timeout;
    let router = Router::new()
        .nest("/api/v1", api::routes())
        .merge(api::ops::root_router())
        .with_state(state);
    layers::apply(router, metrics, timeout)
}
