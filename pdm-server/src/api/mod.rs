//! The HTTP API: one router per resource, merged under `/api/v1`.

pub mod alarms;
pub mod jobs;
pub mod machines;
pub mod models;
pub mod ops;
pub mod predictions;
pub mod push;
pub mod telemetry;
pub mod webhooks;

use axum::Router;

use crate::state::AppState;

/// The versioned API (`/api/v1/...`). Authentication, when it arrives, is a layer on this router
/// alone; the probes and metrics of [`ops::root_router`] stay open for orchestrators.
pub fn api_router() -> Router<AppState> {
    Router::new()
        .merge(machines::router())
        .merge(telemetry::router())
        .merge(models::router())
        .merge(jobs::router())
        .merge(predictions::router())
        .merge(alarms::router())
        .merge(webhooks::router())
        .merge(push::router())
        .merge(ops::api_router())
}
