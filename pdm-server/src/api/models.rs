//! The model registry: list, read, export, activate, import, and training requests.
//!
//! The rules (what an import checks, what activation swaps, what a training request holds)
//! are pdm-core's [`Registry`](pdm_core::live::Registry); the handlers read the request and
//! show the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::live::{Import, ModelError, RegistryError, TrainRequest};
use pdm_core::{ModelId, ModelQuery, SensorKey, Store, Timestamp};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Keys, MachinePath, OptionalJsonBody, PageRule, PagedQuery};
use crate::openapi::params::{Id, Machine};
use crate::openapi::{ErrorBody, PageParams, TimeValue};
use crate::state::{AppState, DetectionState};
use crate::time::parse_time;
use crate::views::{views, JobView, ModelView};
use pdm_core::MachineKey;
use utoipa::ToSchema;

/// Largest model file accepted by an import: 64 MiB.
pub const MAX_MODEL_BYTES: usize = 64 << 20;

/// Paging of `GET /models`: `limit` 1 to 1000, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct ModelsPage;

impl PageRule for ModelsPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_models, get_model, model_file, activate, train, import))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/models", get(list_models))
        .route("/models/{id}", get(get_model))
        .route("/models/{id}/file", get(model_file))
        .route("/models/{id}/activate", post(activate))
        .route("/machines/{machine}/models", post(train))
        .route(
            "/machines/{machine}/models/import",
            post(import).layer(axum::extract::DefaultBodyLimit::max(MAX_MODEL_BYTES)),
        )
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Store(e) => e.into(),
            RegistryError::Model(e) => e.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        ApiError::unprocessable(e.to_string())
    }
}

/// A model id from the path: 400 naming it when it is not a number.
fn model_id(raw: &str) -> ApiResult<ModelId> {
    raw.parse::<i64>()
        .map(ModelId)
        .map_err(|_| ApiError::bad_request(format!("model id {raw:?} is not a number")))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ModelsParams {
    /// Only this machine's models.
    #[param(value_type = Option<MachineKey>)]
    machine: Option<String>,
}

/// List registered models, newest first.
#[utoipa::path(get, path = "/models", tag = "models", params(ModelsParams, PageParams<ModelsPage>),
    responses((status = 200, description = "Models, newest first", body = [ModelView])))]
async fn list_models(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<ModelsParams, ModelsPage>,
) -> ApiResult<Json<Vec<ModelView>>> {
    let machine = match query.params.machine.as_deref() {
        Some(m) => Some(
            pdm_core::MachineKey::new(m)
                .map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?,
        ),
        None => None,
    };
    let q = ModelQuery {
        machine,
        before: query.page.cursor_id()?.map(ModelId),
        limit: query.page.limit,
    };
    Ok(Json(views(store.list_models(&q).await?)))
}

/// Read a model's record: its kind, training window, figures, whether active.
#[utoipa::path(get, path = "/models/{id}", tag = "models", params(Id),
    responses((status = 200, description = "The model's record", body = ModelView)))]
async fn get_model(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<ModelView>> {
    Ok(Json(store.get_model(model_id(&id)?).await?.into()))
}

/// The model file, byte for byte (load it in Python with `pdm_engine.load`).
#[utoipa::path(get, path = "/models/{id}/file", tag = "models", params(Id),
    responses((status = 200, description = "The model file", content_type = "application/json", body = Object)))]
async fn model_file(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id = model_id(&id)?;
    let record = store.get_model(id).await?;
    let bytes = store.model_bytes(id).await?;
    let name = format!("{}-v{}.pdm-model.json", record.machine, record.version);
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        bytes,
    ))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ActivateBody {
    /// Someone the caller activates it for, recorded beside the caller (`caller (for by)`).
    by: Option<String>,
    /// The machine the caller means to change: 409 when the model belongs to another.
    machine: Option<String>,
}

/// Make a model the one its machine is scored with.
#[utoipa::path(post, path = "/models/{id}/activate", tag = "models", params(Id),
    request_body(content = Option<ActivateBody>, description = "Optional: for whom, and the machine meant"),
    responses(
        (status = 200, description = "Active; the machine's previous model is not", body = ModelView),
        (status = 409, description = "The model belongs to another machine, or cannot serve", body = ErrorBody)))]
async fn activate(
    State(d): State<DetectionState>,
    State(store): State<Arc<dyn Store>>,
    p: crate::auth::Principal,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<ActivateBody>,
) -> ApiResult<Json<ModelView>> {
    let id = model_id(&id)?;
    let body = body.unwrap_or_default();
    let caller = p.actor_name();
    let by = match body.by {
        None => caller,
        Some(b) if b.trim().is_empty() || b.len() > 128 || b.chars().any(char::is_control) => {
            return Err(ApiError::unprocessable(
                "by: must be 1 to 128 characters, no control characters",
            ))
        }
        Some(b) if b == caller => caller,
        Some(b) => format!("{caller} (for {b})"),
    };
    let machine = match body.machine {
        Some(m) => pdm_core::MachineKey::new(&m)
            .map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?,
        None => store.get_model(id).await?.machine,
    };
    Ok(Json(d.registry.activate(id, &machine, &by).await?.into()))
}

/// `POST /machines/{machine}/models`: a training request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TrainBody {
    /// Start of the training window: epoch milliseconds or RFC 3339.
    #[schema(value_type = TimeValue)]
    from: serde_json::Value,
    /// End of the training window: epoch milliseconds or RFC 3339.
    #[schema(value_type = TimeValue)]
    to: serde_json::Value,
    /// The detector (`isolation_forest`, ...); the default when left out.
    kind: Option<String>,
    /// The detector's parameters.
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Value>,
    #[serde(default)]
    activate: bool,
    sample_period_ms: Option<u64>,
    max_gap_ms: Option<u64>,
    channels: Option<Vec<String>>,
}

/// A time in a body: epoch milliseconds or an RFC 3339 string.
pub(crate) fn body_time(field: &str, v: &serde_json::Value) -> ApiResult<Timestamp> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => {
            return Err(ApiError::unprocessable(format!(
                "{field}: must be epoch milliseconds or an RFC 3339 time"
            )))
        }
    };
    parse_time(&text).map_err(|e| ApiError::unprocessable(format!("{field}: {e}")))
}

/// Train a model on a machine's stored readings (a background job).
#[utoipa::path(post, path = "/machines/{machine}/models", tag = "models", params(Machine),
    request_body = TrainBody,
    responses((status = 202, description = "A training job, queued", body = JobView)))]
async fn train(
    State(d): State<DetectionState>,
    Keys(machine): MachinePath,
    JsonBody(body): JsonBody<TrainBody>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let channels = match body.channels {
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    SensorKey::new(c)
                        .map_err(|e| ApiError::unprocessable(format!("channels[{i}]: {e}")))
                })
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        None => None,
    };
    let request = TrainRequest {
        from: body_time("from", &body.from)?,
        to: body_time("to", &body.to)?,
        kind: body.kind,
        params: body.params,
        activate: body.activate,
        sample_period_ms: body.sample_period_ms,
        max_gap_ms: body.max_gap_ms,
        channels,
        requested_by: "api".into(),
    };
    let job = d.registry.request_training(&machine, &request).await?;
    d.jobs.wake();
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ImportParams {
    /// The sampling period the model expects, when the file does not say.
    sample_period_ms: Option<u64>,
    /// The longest gap bridged when aligning, when the file does not say.
    max_gap_ms: Option<u64>,
    /// Activate it once registered.
    #[serde(default)]
    activate: bool,
}

/// `POST /machines/{machine}/models/import?sample_period_ms&max_gap_ms&activate`: the body is
/// a model file saved from Python (`model.save(path)` or `model.to_bytes()`).
#[utoipa::path(post, path = "/machines/{machine}/models/import", tag = "models",
    params(Machine, ImportParams),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "A model file saved from Python (`model.save(path)` or `model.to_bytes()`)"),
    responses((status = 201, description = "Registered", body = ModelView)))]
async fn import(
    State(d): State<DetectionState>,
    Keys(machine): MachinePath,
    query: Result<axum::extract::Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    bytes: Bytes,
) -> ApiResult<(StatusCode, Json<ModelView>)> {
    let axum::extract::Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the body must be a model file (from pdm_engine's save or to_bytes)",
        ));
    }
    let import = Import {
        bytes: bytes.to_vec(),
        sample_period_ms: p.sample_period_ms,
        max_gap_ms: p.max_gap_ms,
        activate_by: p.activate.then(|| "api".to_owned()),
    };
    let record = d.registry.import(&machine, import).await?;
    Ok((StatusCode::CREATED, Json(record.into())))
}
