//! Background jobs: list, read, cancel.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::{JobId, JobQuery, JobStatus, MachineKey, Store, Timestamp};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{OptionalJsonBody, PageRule, PagedQuery};
use crate::state::{AppState, DetectionState};
use crate::views::{views, JobView};

/// Paging of `GET /jobs`: `limit` 1 to 1000, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct JobsPage;

impl PageRule for JobsPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", get(get_job))
        .route("/jobs/{id}/cancel", post(cancel_job))
        .route("/jobs/{id}/retry", post(retry_job))
}

fn job_id(raw: &str) -> ApiResult<JobId> {
    raw.parse::<i64>()
        .map(JobId)
        .map_err(|_| ApiError::bad_request(format!("job id {raw:?} is not a number")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsParams {
    status: Option<String>,
    kind: Option<String>,
    machine: Option<String>,
}

async fn list_jobs(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<JobsParams, JobsPage>,
) -> ApiResult<Json<Vec<JobView>>> {
    let p = query.params;
    let status = match p.status.as_deref() {
        Some(s) => Some(JobStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status: {s:?} is not one of queued, running, succeeded, failed, cancelled"
            ))
        })?),
        None => None,
    };
    let machine = match p.machine.as_deref() {
        Some(m) => {
            Some(MachineKey::new(m).map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?)
        }
        None => None,
    };
    let q = JobQuery {
        status,
        kind: p.kind,
        machine,
        before: query.page.cursor_id()?.map(JobId),
        limit: query.page.limit,
    };
    Ok(Json(views(store.list_jobs(&q).await?)))
}

async fn get_job(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(store.get_job(job_id(&id)?).await?.into()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

/// Cancels a queued or running job (409 for a finished one). A running training stops at its
/// next progress report and registers no model.
async fn cancel_job(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<CancelBody>,
) -> ApiResult<Json<JobView>> {
    let id = job_id(&id)?;
    let reason = body
        .and_then(|b| b.reason)
        .unwrap_or_else(|| "cancelled through the API".into());
    if reason.len() > 1_000 {
        return Err(ApiError::unprocessable("reason: at most 1000 characters"));
    }
    Ok(Json(
        store
            .cancel_job(id, &reason, Timestamp::now())
            .await?
            .into(),
    ))
}

/// Queues a failed or cancelled job again (a new job, answered 202); 409 otherwise.
async fn retry_job(
    State(d): State<DetectionState>,
    Path(id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<JobView>)> {
    let job = d.registry.retry(job_id(&id)?).await?;
    d.jobs.wake();
    Ok((axum::http::StatusCode::ACCEPTED, Json(job.into())))
}
