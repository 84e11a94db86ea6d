//! Machines and their sensors: register, list, read, update, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{Catalog, MachineUpdate, NewMachine, NewSensor, SensorUpdate};

use crate::error::ApiResult;
use crate::extract::{JsonBody, Keys, MachinePath, PageRule, PagedQuery, SensorPath};
use crate::openapi::params::{Machine, Sensor};
use crate::openapi::{ErrorBody, PageParams};
use crate::state::AppState;
use crate::views::{views, MachineView, SensorView};
use utoipa::OpenApi;

/// This resource's part of the API description.
#[derive(OpenApi)]
#[openapi(paths(
    list_machines,
    create_machine,
    get_machine,
    update_machine,
    delete_machine,
    list_sensors,
    create_sensor,
    get_sensor,
    update_sensor,
    delete_sensor
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/machines", get(list_machines).post(create_machine))
        .route(
            "/machines/{machine}",
            get(get_machine)
                .patch(update_machine)
                .delete(delete_machine),
        )
        .route(
            "/machines/{machine}/sensors",
            get(list_sensors).post(create_sensor),
        )
        .route(
            "/machines/{machine}/sensors/{sensor}",
            get(get_sensor).patch(update_sensor).delete(delete_sensor),
        )
}

/// List machines.
#[utoipa::path(get, path = "/machines", tag = "machines", params(PageParams<MachinesPage>),
    responses((status = 200, description = "A page of machines, by key", body = [MachineView])))]
async fn list_machines(
    State(c): State<Arc<Catalog>>,
    query: PagedQuery<NoParams, MachinesPage>,
) -> ApiResult<Json<Vec<MachineView>>> {
    let after = query.page.cursor_key()?;
    let page = c
        .store()
        .machines_after(after.as_ref(), query.page.limit)
        .await?;
    Ok(Json(views(page)))
}

/// Paging of `GET /machines`: `limit` 1 to 1000, 100 by default, `cursor` = the last key seen.
#[derive(Debug)]
pub struct MachinesPage;

impl PageRule for MachinesPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
    const CURSOR_PATTERN: &'static str = pdm_core::ids::KEY_PATTERN;
}

/// No parameters but paging.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// Register a machine.
#[utoipa::path(post, path = "/machines", tag = "machines", request_body = NewMachine,
    responses(
        (status = 201, description = "Registered", body = MachineView),
        (status = 409, description = "A machine with this key exists", body = ErrorBody)))]
async fn create_machine(
    State(c): State<Arc<Catalog>>,
    JsonBody(new): JsonBody<NewMachine>,
) -> ApiResult<(StatusCode, Json<MachineView>)> {
    Ok((
        StatusCode::CREATED,
        Json(c.create_machine(&new).await?.into()),
    ))
}

/// Read a machine.
#[utoipa::path(get, path = "/machines/{machine}", tag = "machines", params(Machine),
    responses((status = 200, description = "The machine", body = MachineView)))]
async fn get_machine(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
) -> ApiResult<Json<MachineView>> {
    Ok(Json(c.store().get_machine(&key).await?.into()))
}

/// Update a machine: a field left out is kept, `null` clears it.
#[utoipa::path(patch, path = "/machines/{machine}", tag = "machines", params(Machine),
    request_body = MachineUpdate,
    responses((status = 200, description = "The machine as updated", body = MachineView)))]
async fn update_machine(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
    JsonBody(update): JsonBody<MachineUpdate>,
) -> ApiResult<Json<MachineView>> {
    Ok(Json(c.update_machine(&key, &update).await?.into()))
}

/// Delete a machine with its sensors, readings, models and predictions.
#[utoipa::path(delete, path = "/machines/{machine}", tag = "machines", params(Machine),
    responses((status = 204, description = "Deleted")))]
async fn delete_machine(
    State(c): State<Arc<Catalog>>,
    State(d): State<crate::state::DetectionState>,
    State(files): State<crate::state::AttachmentState>,
    Keys(key): MachinePath,
) -> ApiResult<StatusCode> {
    // Its work orders' and alarms' attachments go with it: their records by cascade, their
    // files after.
    let gone = c.store().machine_attachment_files(&key).await?;
    c.delete_machine(&key).await?;
    crate::api::attachments::remove_stored(&files, &gone).await;
    // Its models and predictions went with it; its live state goes too.
    if let Some(live) = &d.live {
        live.forget(&key).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// List a machine's sensors.
#[utoipa::path(get, path = "/machines/{machine}/sensors", tag = "machines", params(Machine),
    responses((status = 200, description = "Its sensors", body = [SensorView])))]
async fn list_sensors(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
) -> ApiResult<Json<Vec<SensorView>>> {
    // Distinguishes "no such machine" (404) from "no sensors yet" (empty list).
    c.store().get_machine(&key).await?;
    Ok(Json(views(c.store().list_sensors(&key).await?)))
}

/// Register a sensor of a machine.
#[utoipa::path(post, path = "/machines/{machine}/sensors", tag = "machines", params(Machine),
    request_body = NewSensor,
    responses(
        (status = 201, description = "Registered", body = SensorView),
        (status = 409, description = "The machine has a sensor with this key", body = ErrorBody)))]
async fn create_sensor(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
    JsonBody(new): JsonBody<NewSensor>,
) -> ApiResult<(StatusCode, Json<SensorView>)> {
    Ok((
        StatusCode::CREATED,
        Json(c.create_sensor(&key, &new).await?.into()),
    ))
}

/// Read a sensor.
#[utoipa::path(get, path = "/machines/{machine}/sensors/{sensor}", tag = "machines",
    params(Machine, Sensor),
    responses((status = 200, description = "The sensor", body = SensorView)))]
async fn get_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
) -> ApiResult<Json<SensorView>> {
    Ok(Json(c.store().get_sensor(&m, &k).await?.into()))
}

/// Update a sensor: a field left out is kept, `null` clears it.
#[utoipa::path(patch, path = "/machines/{machine}/sensors/{sensor}", tag = "machines",
    params(Machine, Sensor), request_body = SensorUpdate,
    responses((status = 200, description = "The sensor as updated", body = SensorView)))]
async fn update_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
    JsonBody(update): JsonBody<SensorUpdate>,
) -> ApiResult<Json<SensorView>> {
    Ok(Json(c.update_sensor(&m, &k, &update).await?.into()))
}

/// Delete a sensor with its readings.
#[utoipa::path(delete, path = "/machines/{machine}/sensors/{sensor}", tag = "machines",
    params(Machine, Sensor),
    responses((status = 204, description = "Deleted")))]
async fn delete_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
) -> ApiResult<StatusCode> {
    c.delete_sensor(&m, &k).await?;
    Ok(StatusCode::NO_CONTENT)
}
