//! Background jobs: list, read, cancel.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::{JobId, JobQuery, JobStatus, MachineKey, Store, Timestamp};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{OptionalJsonBody, PageRule, PagedQuery};
use crate::openapi::params::Id;
use crate::openapi::{ErrorBody, PageParams};
use crate::state::{AppState, DetectionState};
use crate::views::{views, JobView};
use utoipa::ToSchema;

/// Paging of `GET /jobs`: `limit` 1 to 1000, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct JobsPage;

impl PageRule for JobsPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_jobs, get_job, cancel_job, retry_job))]
pub struct Doc;

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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct JobsParams {
    /// Only jobs in this state.
    #[param(schema_with = job_status)]
    status: Option<String>,
    /// Only jobs of this kind (`train`).
    kind: Option<String>,
    /// Only this machine's jobs.
    #[param(value_type = Option<MachineKey>)]
    machine: Option<String>,
}

fn job_status() -> utoipa::openapi::schema::Object {
    crate::openapi::enum_of(&["queued", "running", "succeeded", "failed", "cancelled"])
}

/// List background jobs (training), newest first.
#[utoipa::path(get, path = "/jobs", tag = "models", params(JobsParams, PageParams<JobsPage>),
    responses((status = 200, description = "Jobs, newest first", body = [JobView])))]
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

/// Read a job.
#[utoipa::path(get, path = "/jobs/{id}", tag = "models", params(Id),
    responses((status = 200, description = "The job with its progress", body = JobView)))]
async fn get_job(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(store.get_job(job_id(&id)?).await?.into()))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    reason: Option<String>,
}

/// Cancels a queued or running job (409 for a finished one). A running training stops at its
/// next progress report and registers no model.
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "models", params(Id),
    request_body(content = Option<CancelBody>, description = "Optional: why"),
    responses(
        (status = 200, description = "Cancelled", body = JobView),
        (status = 409, description = "The job has finished", body = ErrorBody)))]
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
#[utoipa::path(post, path = "/jobs/{id}/retry", tag = "models", params(Id),
    responses(
        (status = 202, description = "Queued again, as a new job", body = JobView),
        (status = 409, description = "The job has not failed or been cancelled", body = ErrorBody)))]
async fn retry_job(
    State(d): State<DetectionState>,
    Path(id): Path<String>,
) -> ApiResult<(axum::http::StatusCode, Json<JobView>)> {
    let job = d.registry.retry(job_id(&id)?).await?;
    d.jobs.wake();
    Ok((axum::http::StatusCode::ACCEPTED, Json(job.into())))
}
