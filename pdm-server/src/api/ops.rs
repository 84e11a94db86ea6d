//! Operations: health probes, metrics and dead letters.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{Catalog, DeadLetterQuery, RejectKind, Store};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::{PageRule, PagedQuery};
use crate::openapi::PageParams;
use crate::state::{AppState, MetricsState};
use crate::views::{views, DeadLetterView};

/// Probes and metrics, served at the root (outside the versioned API, and outside any auth).
pub fn root_router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Dead letters, under the versioned API.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/dead-letters", get(dead_letters))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready only when the database answers.
async fn ready(State(store): State<Arc<dyn Store>>) -> (StatusCode, Json<serde_json::Value>) {
    match store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unavailable" })),
            )
        }
    }
}

/// The Prometheus text exposition of the registry: the engine's counters and the HTTP series.
async fn metrics(State(m): State<MetricsState>) -> ApiResult<impl IntoResponse> {
    let text = crate::metrics::encode(&m.registry)
        .map_err(|e| ApiError::internal(format!("encoding metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text))
}

/// Paging of `GET /dead-letters`: `limit` 1 to 10000, 100 by default, `cursor` = the last id
/// seen (newest first).
#[derive(Debug)]
pub struct DeadLettersPage;

impl PageRule for DeadLettersPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 10_000;
    const CURSORS: bool = true;
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeadLetterParams {
    /// Only this machine's (as written by the sender, so any string).
    machine: Option<String>,
    /// Only this kind of rejection.
    #[param(schema_with = reject_kind)]
    kind: Option<String>,
}

/// The kinds of rejection, as the schema of `kind`.
fn reject_kind() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = RejectKind::ALL.iter().map(|k| k.as_str()).collect();
    crate::openapi::enum_of(&names)
}

/// Readings and payloads that could not be stored, and why.
#[utoipa::path(get, path = "/dead-letters", tag = "operations",
    params(DeadLetterParams, PageParams<DeadLettersPage>),
    responses((status = 200, description = "Dead letters, newest first", body = [DeadLetterView])))]
async fn dead_letters(
    State(catalog): State<Arc<Catalog>>,
    query: PagedQuery<DeadLetterParams, DeadLettersPage>,
) -> ApiResult<Json<Vec<DeadLetterView>>> {
    let p = query.params;
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => Some(RejectKind::parse(k).ok_or_else(|| {
            let all: Vec<&str> = RejectKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::bad_request(format!("unknown kind {k:?}; one of {}", all.join(", ")))
        })?),
    };
    let q = DeadLetterQuery {
        machine: p.machine,
        kind,
        before: query.page.cursor_id()?,
        limit: query.page.limit,
    };
    let rows = catalog.store().dead_letters(&q).await?;
    Ok(Json(views(rows)))
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(dead_letters))]
pub struct Doc;
