//! Predictions of a machine (raw or bucketed) and its live status.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{PredictionQuery, Store};
use serde::{Deserialize, Serialize};

use crate::api::telemetry::{ReadingsPage, DEFAULT_RANGE_MS};
use crate::error::ApiResult;
use crate::extract::{Keys, MachinePath, PagedQuery};
use crate::openapi::params::Machine;
use crate::openapi::PageParams;
use crate::state::{AppState, DetectionState};
use crate::time::{parse_bucket, parse_range};
use crate::views::{views, LiveStatusView, PredictionBucketView, PredictionView};
use utoipa::ToSchema;

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(predictions, live_status))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/machines/{machine}/predictions", get(predictions))
        .route("/machines/{machine}/live", get(live_status))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PredictionsParams {
    /// Start (inclusive): RFC 3339 or epoch milliseconds; an hour before `to` when left out.
    #[param(schema_with = crate::openapi::time_param)]
    from: Option<String>,
    /// End (exclusive): RFC 3339 or epoch milliseconds; now when left out.
    #[param(schema_with = crate::openapi::time_param)]
    to: Option<String>,
    /// Bucket width (`10s`, `1m`, `1h`, ...): summaries per bucket instead of each prediction.
    #[param(schema_with = crate::openapi::duration_param)]
    bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PredictionsResponse {
    machine: String,
    from: i64,
    to: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    predictions: Option<Vec<PredictionView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<PredictionBucketView>>,
}

/// Predictions of a machine in `[from, to)` (the last hour by default): raw, or summarised in
/// buckets with `bucket=1m`. Paged like readings (`limit`).
#[utoipa::path(get, path = "/machines/{machine}/predictions", tag = "predictions",
    params(Machine, PredictionsParams, PageParams<ReadingsPage>),
    responses((status = 200, description = "Predictions, or buckets with `bucket`", body = PredictionsResponse)))]
async fn predictions(
    State(store): State<Arc<dyn Store>>,
    Keys(machine): MachinePath,
    query: PagedQuery<PredictionsParams, ReadingsPage>,
) -> ApiResult<Json<PredictionsResponse>> {
    let p = query.params;
    let (from, to) = parse_range(p.from.as_deref(), p.to.as_deref(), DEFAULT_RANGE_MS)?;
    // 404 for an unknown machine rather than an empty series that hides a typo.
    store.get_machine(&machine).await?;
    let q = PredictionQuery {
        machine: machine.clone(),
        from,
        to,
        limit: query.page.limit,
    };
    let mut resp = PredictionsResponse {
        machine: machine.as_str().to_owned(),
        from: from.as_millis(),
        to: to.as_millis(),
        bucket_ms: None,
        predictions: None,
        buckets: None,
    };
    match parse_bucket(p.bucket.as_deref())? {
        Some(width) => {
            resp.bucket_ms = Some(width);
            resp.buckets = Some(views(store.prediction_buckets(&q, width).await?));
        }
        None => resp.predictions = Some(views(store.predictions(&q).await?)),
    }
    Ok(Json(resp))
}

/// Where a machine is on the live path of this worker: scoring, warming up, stale (with the
/// stale channels), without a model; `not_seen` before its first reading since the start,
/// `other_worker` when another shard owns it, `off` when this worker does not score.
#[utoipa::path(get, path = "/machines/{machine}/live", tag = "predictions", params(Machine),
    responses((status = 200, description = "The machine's live status", body = LiveStatusView)))]
async fn live_status(
    State(d): State<DetectionState>,
    State(store): State<Arc<dyn Store>>,
    Keys(machine): MachinePath,
) -> ApiResult<Json<LiveStatusView>> {
    store.get_machine(&machine).await?;
    let placeholder = |state: &'static str| LiveStatusView {
        machine: machine.as_str().to_owned(),
        state,
        model: None,
        stale_channels: Vec::new(),
        last_scored: None,
        rows_scored: 0,
        readings_late: 0,
    };
    let Some(live) = &d.live else {
        return Ok(Json(placeholder("off")));
    };
    if !live.config().shard.owns(&machine) {
        return Ok(Json(placeholder("other_worker")));
    }
    Ok(Json(match live.status(&machine).await {
        Some(s) => s.into(),
        None => placeholder("not_seen"),
    }))
}
