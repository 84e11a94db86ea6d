//! System settings: read them, change them with a JSON merge patch (admin-only,
//! `settings:manage`); each change is audited with its values and applied at once where the
//! setting allows ([`crate::settings`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::Store;

use crate::audit::Changed;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::settings::{SettingsError, SettingsView};
use crate::state::{AppState, AttachmentState};

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(get_settings, patch_settings))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/settings", get(get_settings).patch(patch_settings))
}

fn tagged(view: SettingsView) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version)).ok();
    let mut resp = Json(view).into_response();
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// The version an optional `If-Match` names (`"3"`; `"0"` before any change; `*`: any).
fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    use crate::extract::IfMatch;
    let bad =
        || ApiError::bad_request("If-Match: not an ETag of the settings (\"<version>\") or *");
    match crate::extract::if_match(headers).map_err(|()| bad())? {
        IfMatch::Absent | IfMatch::Any => Ok(None),
        IfMatch::Versions(v) if v.len() == 1 => Ok(Some(v[0])),
        // Weak tags only never match; a list is not how a client of one version asks.
        IfMatch::Versions(v) if v.is_empty() => Err(ApiError::precondition_failed(
            "If-Match: a weak ETag never matches: send the ETag as read",
        )),
        IfMatch::Versions(_) => Err(bad()),
    }
}

/// The settings in force, what differs from the configuration file, and what waits for a
/// restart; the `ETag` is their version.
#[utoipa::path(get, path = "/settings", tag = "settings",
    responses((status = 200, description = "The settings", body = SettingsView)))]
async fn get_settings(State(files): State<AttachmentState>) -> Response {
    tagged(files.settings.view())
}

/// Change settings with a JSON merge patch (RFC 7396) of the settings document:
/// `{"uploads": {"max_bytes": 10485760}}` sets one, `null` gives it back to the configuration
/// file. Checked whole (a 422 names the setting), stored, audited with the values before and
/// after, and applied at once where `live` lists it (the others at the next start, listed in
/// `restart_required`). `If-Match` with the `ETag` read refuses a change made meanwhile (412).
#[utoipa::path(patch, path = "/settings", tag = "settings",
    request_body(content = Object, description = "A JSON merge patch of the settings document",
        content_type = "application/json"),
    responses((status = 200, description = "The settings after the change", body = SettingsView)))]
async fn patch_settings(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<serde_json::Value>,
) -> ApiResult<Response> {
    let expected = if_match(&headers)?;
    let (view, changed) = files
        .settings
        .update(&*store, &patch, expected, &p.actor_name())
        .await
        .map_err(|e| match e {
            SettingsError::Invalid(m) => ApiError::unprocessable(m),
            SettingsError::Stale(m) => ApiError::precondition_failed(m),
            SettingsError::Busy(m) => ApiError::conflict(m),
            SettingsError::Store(e) => e.into(),
        })?;
    for (name, before, after) in &changed {
        tracing::info!(setting = %name, %before, %after, by = %p.actor_name(), "setting changed");
    }
    let mut resp = tagged(view);
    resp.extensions_mut().insert(Changed(
        changed
            .into_iter()
            .map(|(n, b, a)| format!("{n}: {b} -> {a}"))
            .collect(),
    ));
    Ok(resp)
}
