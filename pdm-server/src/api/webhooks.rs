//! Webhook endpoints: CRUD, secret rotation, a test send, the delivery log and redelivery.
//!
//! The secret is answered on create and on rotate only, and never logged. A URL is checked
//! when it is stored (http or https, a host, no credentials, and, unless
//! `webhooks.allow_private_destinations`, no private or loopback address) and again by the
//! sender at every attempt, since a name may resolve elsewhere later.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::alarm::{AlarmEventKind, Severity};
use pdm_core::store::{
    DeliveryQuery, DeliveryStatus, NewWebhook, WebhookFilter, WebhookId, WebhookUpdate,
};
use pdm_core::webhook::{signing, SendError};
use pdm_core::{MachineKey, Store, Timestamp};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::extract::{present, JsonBody, PageRule, PagedQuery};
use crate::openapi::params::Id;
use crate::openapi::PageParams;
use crate::state::{AppState, WebhookState};
use crate::views::{views, DeliveryView, WebhookSecretView, WebhookView};
use crate::webhook_sender::{check_url, resolve};
use utoipa::ToSchema;

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3_600 * 1_000;

/// Paging of `GET /webhooks/{id}/deliveries`: `limit` 1 to 200, 50 by default, `cursor` =
/// the last id seen.
#[derive(Debug)]
pub struct DeliveriesPage;

impl PageRule for DeliveriesPage {
    const DEFAULT_LIMIT: u32 = 50;
    const MAX_LIMIT: u32 = 200;
    const CURSORS: bool = true;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create, list, read, update, remove, rotate, test_send, deliveries, redeliver
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/webhooks", post(create).get(list))
        .route("/webhooks/{id}", get(read).patch(update).delete(remove))
        .route("/webhooks/{id}/rotate-secret", post(rotate))
        .route("/webhooks/{id}/test", post(test_send))
        .route("/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

fn webhook_id(raw: &str) -> ApiResult<WebhookId> {
    raw.parse::<i64>()
        .map(WebhookId)
        .map_err(|_| ApiError::bad_request(format!("webhook id {raw:?} is not a number")))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    description: Option<String>,
    #[serde(default)]
    machines: Vec<String>,
    #[serde(default)]
    severities: Vec<String>,
    #[serde(default)]
    event_kinds: Vec<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    description: Option<Option<String>>,
    machines: Option<Vec<String>>,
    severities: Option<Vec<String>>,
    event_kinds: Option<Vec<String>>,
    enabled: Option<bool>,
}

/// 422 naming `url` unless it is a destination this server may send to.
async fn check_destination(url: &str, allow_private: bool) -> ApiResult<String> {
    let url = url.trim();
    if url.len() > 2_000 {
        return Err(ApiError::unprocessable("url: at most 2000 characters"));
    }
    let (host, port, _) =
        check_url(url).map_err(|e| ApiError::unprocessable(format!("url: {e}")))?;
    match resolve(&host, port, allow_private).await {
        Err(SendError::Refused(why)) => Err(ApiError::unprocessable(format!("url: {why}"))),
        // A name that does not resolve now may later; the sender checks again every time.
        _ => Ok(url.to_owned()),
    }
}

fn check_description(d: &Option<String>) -> ApiResult<()> {
    match d {
        Some(d) if d.chars().count() > 1_000 => Err(ApiError::unprocessable(
            "description: at most 1000 characters",
        )),
        _ => Ok(()),
    }
}

fn parse_list<T>(
    field: &str,
    raw: &[String],
    parse: impl Fn(&str) -> Result<T, String>,
) -> ApiResult<Vec<T>> {
    raw.iter()
        .enumerate()
        .map(|(i, s)| parse(s).map_err(|e| ApiError::unprocessable(format!("{field}[{i}]: {e}"))))
        .collect()
}

fn machines(raw: &[String]) -> ApiResult<Vec<MachineKey>> {
    parse_list("machines", raw, |s| {
        MachineKey::new(s).map_err(|e| e.to_string())
    })
}

fn severities(raw: &[String]) -> ApiResult<Vec<Severity>> {
    parse_list("severities", raw, |s| {
        Severity::parse(s).map_err(|e| e.to_string())
    })
}

fn event_kinds(raw: &[String]) -> ApiResult<Vec<AlarmEventKind>> {
    parse_list("event_kinds", raw, |s| {
        AlarmEventKind::parse(s).map_err(|e| e.to_string())
    })
}

/// Creates an endpoint (201 with its secret).
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = CreateBody,
    responses((status = 201, description = "Created, with its signing secret (shown on create and rotate only)", body = WebhookSecretView)))]
async fn create(
    State(store): State<Arc<dyn Store>>,
    State(hooks): State<WebhookState>,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<(StatusCode, Json<WebhookSecretView>)> {
    let url = check_destination(&body.url, hooks.allow_private()).await?;
    check_description(&body.description)?;
    let new = NewWebhook {
        url,
        description: body.description,
        secret: signing::generate_secret(),
        filter: WebhookFilter {
            machines: machines(&body.machines)?,
            severities: severities(&body.severities)?,
            event_kinds: event_kinds(&body.event_kinds)?,
        },
        enabled: body.enabled.unwrap_or(true),
    };
    let created = store.create_webhook(&new).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// List webhook endpoints.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(PageParams<WebhooksPage>),
    responses((status = 200, description = "A page of endpoints by id (no secrets)", body = [WebhookView])))]
async fn list(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<crate::api::machines::NoParams, WebhooksPage>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let after = query.page.cursor_id()?.map(WebhookId);
    Ok(Json(views(
        store.webhooks_after(after, query.page.limit).await?,
    )))
}

/// Paging of `GET /webhooks`: `limit` 1 to 500, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct WebhooksPage;

impl PageRule for WebhooksPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 500;
    const CURSORS: bool = true;
}

/// Read an endpoint.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(Id),
    responses((status = 200, description = "The endpoint", body = WebhookView)))]
async fn read(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookView>> {
    Ok(Json(store.get_webhook(webhook_id(&id)?).await?.into()))
}

/// Changes an endpoint; enabling it again clears why it was disabled.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(Id), request_body = UpdateBody,
    responses((status = 200, description = "The endpoint as changed", body = WebhookView)))]
async fn update(
    State(store): State<Arc<dyn Store>>,
    State(hooks): State<WebhookState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<Json<WebhookView>> {
    let id = webhook_id(&id)?;
    let current = store.get_webhook(id).await?;
    let url = match &body.url {
        Some(u) => Some(check_destination(u, hooks.allow_private()).await?),
        None => None,
    };
    if let Some(d) = &body.description {
        check_description(d)?;
    }
    let filter =
        if body.machines.is_some() || body.severities.is_some() || body.event_kinds.is_some() {
            let mut f = current.filter;
            if let Some(m) = &body.machines {
                f.machines = machines(m)?;
            }
            if let Some(s) = &body.severities {
                f.severities = severities(s)?;
            }
            if let Some(k) = &body.event_kinds {
                f.event_kinds = event_kinds(k)?;
            }
            Some(f)
        } else {
            None
        };
    let u = WebhookUpdate {
        url,
        description: body.description,
        filter,
        enabled: body.enabled,
    };
    let updated = store.update_webhook(id, &u).await?;
    if updated.enabled {
        // Deliveries that waited while it was disabled may go now.
        hooks.wake();
    }
    Ok(Json(updated.into()))
}

/// Delete an endpoint.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(Id),
    responses((status = 204, description = "Deleted, with its deliveries")))]
async fn remove(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = webhook_id(&id)?;
    if store.delete_webhook(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("webhook {id} not found")))
    }
}

/// A new secret; the previous one keeps signing for 24 hours (both signatures are sent).
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", tag = "webhooks", params(Id),
    responses((status = 200, description = "The new secret", body = WebhookSecretView)))]
async fn rotate(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookSecretView>> {
    let id = webhook_id(&id)?;
    let until = Timestamp::now().add_millis(ROTATION_OVERLAP_MS);
    let rotated = store
        .rotate_secret(id, &signing::generate_secret(), until)
        .await?;
    Ok(Json(rotated.into()))
}

/// The answer of a test send.
#[derive(Debug, serde::Serialize, ToSchema)]
struct TestView {
    /// Whether the receiver answered 2xx.
    delivered: bool,
    /// The delivery, with its one attempt.
    delivery: DeliveryView,
}

/// Sends a `webhook.test` event now and answers with the attempt's result.
#[utoipa::path(post, path = "/webhooks/{id}/test", tag = "webhooks", params(Id),
    responses((status = 200, description = "The attempt's result", body = TestView)))]
async fn test_send(
    State(hooks): State<WebhookState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TestView>> {
    let id = webhook_id(&id)?;
    let Some(dispatcher) = &hooks.dispatcher else {
        return Err(ApiError::unavailable(
            "the webhook dispatcher is off on this worker (webhooks.enabled)",
        ));
    };
    let sent = dispatcher.send_test(id).await?;
    Ok(Json(TestView {
        delivered: sent.delivery.status == DeliveryStatus::Delivered,
        delivery: DeliveryView::new(sent.delivery, vec![sent.attempt]),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveriesParams {
    /// Only deliveries in this state.
    #[param(schema_with = delivery_status)]
    status: Option<String>,
}

fn delivery_status() -> utoipa::openapi::schema::Object {
    crate::openapi::enum_of(&["pending", "delivered", "failed"])
}

/// The deliveries of an endpoint, newest first, each with its attempts.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", tag = "webhooks", params(Id, DeliveriesParams, PageParams<DeliveriesPage>),
    responses((status = 200, description = "Deliveries, newest first", body = [DeliveryView])))]
async fn deliveries(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
    query: PagedQuery<DeliveriesParams, DeliveriesPage>,
) -> ApiResult<Json<Vec<DeliveryView>>> {
    let id = webhook_id(&id)?;
    let status = match query.params.status.as_deref() {
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status: {s:?} is not one of pending, delivered, failed"
            ))
        })?),
        None => None,
    };
    let q = DeliveryQuery {
        webhook: id,
        status,
        before: query.page.cursor_id()?,
        limit: query.page.limit,
    };
    let mut out = Vec::new();
    for d in store.list_deliveries(&q).await? {
        let attempts = store.delivery_attempts(d.id).await?;
        out.push(DeliveryView::new(d, attempts));
    }
    Ok(Json(out))
}

/// Sends a delivery again (202), with its `webhook-id` unchanged.
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{delivery}/redeliver", tag = "webhooks",
    params(Id, ("delivery" = i64, Path, description = "The delivery's id")),
    responses((status = 202, description = "Queued again", body = DeliveryView)))]
async fn redeliver(
    State(store): State<Arc<dyn Store>>,
    State(hooks): State<WebhookState>,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<DeliveryView>)> {
    let id = webhook_id(&id)?;
    let delivery: i64 = delivery
        .parse()
        .map_err(|_| ApiError::bad_request(format!("delivery id {delivery:?} is not a number")))?;
    let webhook = store.get_webhook(id).await?;
    store.get_delivery(id, delivery).await?;
    if !webhook.enabled {
        return Err(ApiError::conflict(format!(
            "webhook {id} is disabled; enable it (PATCH enabled: true) to redeliver"
        )));
    }
    let d = store.redeliver(id, delivery, Timestamp::now()).await?;
    hooks.wake();
    let attempts = store.delivery_attempts(d.id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::new(d, attempts))))
}
