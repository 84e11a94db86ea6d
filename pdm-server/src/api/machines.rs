//! Machines and their sensors: register, list, read, update, delete.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{Catalog, MachineUpdate, NewMachine, NewSensor, SensorUpdate};

use crate::error::ApiResult;
use crate::extract::{JsonBody, Keys, MachinePath, SensorPath};
use crate::state::AppState;
use crate::views::{views, MachineView, SensorView};

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

async fn list_machines(State(c): State<Arc<Catalog>>) -> ApiResult<Json<Vec<MachineView>>> {
    Ok(Json(views(c.store().list_machines().await?)))
}

async fn create_machine(
    State(c): State<Arc<Catalog>>,
    JsonBody(new): JsonBody<NewMachine>,
) -> ApiResult<(StatusCode, Json<MachineView>)> {
    Ok((
        StatusCode::CREATED,
        Json(c.create_machine(&new).await?.into()),
    ))
}

async fn get_machine(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
) -> ApiResult<Json<MachineView>> {
    Ok(Json(c.store().get_machine(&key).await?.into()))
}

async fn update_machine(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
    JsonBody(update): JsonBody<MachineUpdate>,
) -> ApiResult<Json<MachineView>> {
    Ok(Json(c.update_machine(&key, &update).await?.into()))
}

async fn delete_machine(
    State(c): State<Arc<Catalog>>,
    State(d): State<crate::state::DetectionState>,
    Keys(key): MachinePath,
) -> ApiResult<StatusCode> {
    c.delete_machine(&key).await?;
    // Its models and predictions went with it; its live state goes too.
    if let Some(live) = &d.live {
        live.forget(&key).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_sensors(
    State(c): State<Arc<Catalog>>,
    Keys(key): MachinePath,
) -> ApiResult<Json<Vec<SensorView>>> {
    // Distinguishes "no such machine" (404) from "no sensors yet" (empty list).
    c.store().get_machine(&key).await?;
    Ok(Json(views(c.store().list_sensors(&key).await?)))
}

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

async fn get_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
) -> ApiResult<Json<SensorView>> {
    Ok(Json(c.store().get_sensor(&m, &k).await?.into()))
}

async fn update_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
    JsonBody(update): JsonBody<SensorUpdate>,
) -> ApiResult<Json<SensorView>> {
    Ok(Json(c.update_sensor(&m, &k, &update).await?.into()))
}

async fn delete_sensor(
    State(c): State<Arc<Catalog>>,
    Keys((m, k)): SensorPath,
) -> ApiResult<StatusCode> {
    c.delete_sensor(&m, &k).await?;
    Ok(StatusCode::NO_CONTENT)
}
