//! Machines and their sensors: register, list, read, update, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{Machine, MachineUpdate, NewMachine, NewSensor, Sensor, SensorUpdate};

use crate::error::ApiResult;
use crate::extract::{machine_key, sensor_key, JsonBody};
use crate::state::AppState;

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

async fn list_machines(State(s): State<AppState>) -> ApiResult<Json<Vec<Machine>>> {
    Ok(Json(s.catalog.store().list_machines().await?))
}

async fn create_machine(
    State(s): State<AppState>,
    JsonBody(new): JsonBody<NewMachine>,
) -> ApiResult<(StatusCode, Json<Machine>)> {
    Ok((
        StatusCode::CREATED,
        Json(s.catalog.create_machine(&new).await?),
    ))
}

async fn get_machine(
    State(s): State<AppState>,
    Path(machine): Path<String>,
) -> ApiResult<Json<Machine>> {
    let key = machine_key(&machine)?;
    Ok(Json(s.catalog.store().get_machine(&key).await?))
}

async fn update_machine(
    State(s): State<AppState>,
    Path(machine): Path<String>,
    JsonBody(update): JsonBody<MachineUpdate>,
) -> ApiResult<Json<Machine>> {
    let key = machine_key(&machine)?;
    Ok(Json(s.catalog.update_machine(&key, &update).await?))
}

async fn delete_machine(
    State(s): State<AppState>,
    Path(machine): Path<String>,
) -> ApiResult<StatusCode> {
    let key = machine_key(&machine)?;
    s.catalog.delete_machine(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_sensors(
    State(s): State<AppState>,
    Path(machine): Path<String>,
) -> ApiResult<Json<Vec<Sensor>>> {
    let key = machine_key(&machine)?;
    // Distinguishes "no such machine" (404) from "no sensors yet" (empty list).
    s.catalog.store().get_machine(&key).await?;
    Ok(Json(s.catalog.store().list_sensors(&key).await?))
}

async fn create_sensor(
    State(s): State<AppState>,
    Path(machine): Path<String>,
    JsonBody(new): JsonBody<NewSensor>,
) -> ApiResult<(StatusCode, Json<Sensor>)> {
    let key = machine_key(&machine)?;
    Ok((
        StatusCode::CREATED,
        Json(s.catalog.create_sensor(&key, &new).await?),
    ))
}

async fn get_sensor(
    State(s): State<AppState>,
    Path((machine, sensor)): Path<(String, String)>,
) -> ApiResult<Json<Sensor>> {
    let (m, k) = (machine_key(&machine)?, sensor_key(&sensor)?);
    Ok(Json(s.catalog.store().get_sensor(&m, &k).await?))
}

async fn update_sensor(
    State(s): State<AppState>,
    Path((machine, sensor)): Path<(String, String)>,
    JsonBody(update): JsonBody<SensorUpdate>,
) -> ApiResult<Json<Sensor>> {
    let (m, k) = (machine_key(&machine)?, sensor_key(&sensor)?);
    Ok(Json(s.catalog.update_sensor(&m, &k, &update).await?))
}

async fn delete_sensor(
    State(s): State<AppState>,
    Path((machine, sensor)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (m, k) = (machine_key(&machine)?, sensor_key(&sensor)?);
    s.catalog.delete_sensor(&m, &k).await?;
    Ok(StatusCode::NO_CONTENT)
}
