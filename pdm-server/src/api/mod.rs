//! The HTTP API: one router per resource, merged under `/api/v1`.

pub mod alarms;
pub mod attachments;
pub mod audit;
pub mod auth;
pub mod comments;
pub mod dashboard;
pub mod jobs;
pub mod machines;
pub mod models;
pub mod ops;
pub mod predictions;
pub mod push;
pub mod settings;
pub mod telemetry;
pub mod users;
pub mod webhooks;
pub mod workorders;

use axum::Router;

use crate::state::AppState;

/// The versioned API (`/api/v1/...`), every route behind [`crate::auth::require`]: its access
/// is declared in [`crate::auth::policy`]. The probes and metrics of [`ops::root_router`] stay
/// open for orchestrators.
pub fn api_router(state: &AppState) -> Router<AppState> {
    // The access check outside, the audit inside it (so that it knows who is asking).
    routes()
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::record,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::require,
        ))
}

/// Every route of the API, without authentication: only for [`crate::app_without_auth`].
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(machines::router())
        .merge(telemetry::router())
        .merge(models::router())
        .merge(jobs::router())
        .merge(predictions::router())
        .merge(alarms::router())
        .merge(webhooks::router())
        .merge(workorders::router())
        .merge(audit::router())
        .merge(comments::router())
        .merge(attachments::router())
        .merge(settings::router())
        .merge(dashboard::router())
        .merge(push::router())
        .merge(ops::api_router())
        .merge(crate::openapi::api_router())
}

/// Each resource's part of the OpenAPI document (merged by [`crate::openapi::document`]).
pub(crate) fn docs() -> Vec<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi;
    vec![
        auth::Doc::openapi(),
        users::Doc::openapi(),
        machines::Doc::openapi(),
        telemetry::Doc::openapi(),
        models::Doc::openapi(),
        jobs::Doc::openapi(),
        predictions::Doc::openapi(),
        alarms::Doc::openapi(),
        webhooks::Doc::openapi(),
        workorders::Doc::openapi(),
        audit::Doc::openapi(),
        comments::Doc::openapi(),
        attachments::Doc::openapi(),
        settings::Doc::openapi(),
        dashboard::Doc::openapi(),
        push::Doc::openapi(),
        ops::Doc::openapi(),
    ]
}
