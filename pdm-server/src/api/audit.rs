//! `GET /audit`: the audit log, newest first, filtered and paged. Nothing writes it through the
//! API (append-only); [`crate::audit`] does.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::store::{AuditEntry, AuditQuery};
use pdm_core::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::extract::{PageRule, PagedQuery};
use crate::openapi::PageParams;
use crate::state::AppState;
use crate::time::parse_time;

/// Paging of `GET /audit`: `limit` 1 to 1000, 100 by default, `cursor` = `next`.
#[derive(Debug)]
pub struct AuditPage;

impl PageRule for AuditPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_audit))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list_audit))
}

/// An entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Its id.
    pub id: i64,
    /// Epoch milliseconds.
    pub at: i64,
    /// Who: a user's email, `token:<name>`, `device:<machine>`; for a sign-in, the email tried.
    pub actor: String,
    /// Their role then.
    pub role: Option<String>,
    /// What: the route (`PATCH /work-orders/{id}`), or `sign_in`, `sign_in_failed`.
    pub action: String,
    /// On what: the path (`work-orders/5`).
    pub target: Option<String>,
    /// The names of the fields sent (never their values).
    pub fields: Vec<String>,
    /// From where.
    pub client_addr: Option<String>,
    /// The status answered.
    pub status: u16,
    /// `success` (2xx) or `failure`.
    pub outcome: &'static str,
}

impl From<AuditEntry> for AuditEntryView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            at: e.at.as_millis(),
            outcome: if (200..300).contains(&e.status) {
                "success"
            } else {
                "failure"
            },
            actor: e.actor,
            role: e.role,
            action: e.action,
            target: e.target,
            fields: e.fields,
            client_addr: e.client_addr,
            status: e.status,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditPageView {
    /// The entries, newest first.
    pub entries: Vec<AuditEntryView>,
    /// The `cursor` of the next page (`null`: this is the last).
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditParams {
    /// Only this actor's.
    actor: Option<String>,
    /// Only this action (`sign_in_failed`, `PATCH /work-orders/{id}`).
    action: Option<String>,
    /// Only this target (`work-orders/5`).
    target: Option<String>,
    /// `success` or `failure`.
    #[param(schema_with = outcome_schema)]
    outcome: Option<String>,
    /// At or after.
    #[param(schema_with = crate::openapi::time_param)]
    from: Option<String>,
    /// Before.
    #[param(schema_with = crate::openapi::time_param)]
    to: Option<String>,
}

fn outcome_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::enum_of(&["success", "failure"])
}

/// The audit log: every change, every refusal for want of a permission, every sign-in and
/// failed sign-in; newest first.
#[utoipa::path(get, path = "/audit", tag = "operations", params(AuditParams, PageParams<AuditPage>),
    responses((status = 200, description = "A page of entries", body = AuditPageView)))]
async fn list_audit(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<AuditParams, AuditPage>,
) -> ApiResult<Json<AuditPageView>> {
    let p = query.params;
    let time = |field: &str, v: Option<&str>| {
        v.map(|t| parse_time(t).map_err(|e| ApiError::bad_request(format!("{field}: {e}"))))
            .transpose()
    };
    let q = AuditQuery {
        actor: p.actor,
        action: p.action,
        target: p.target,
        success: match p.outcome.as_deref() {
            None => None,
            Some("success") => Some(true),
            Some("failure") => Some(false),
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "outcome: {other:?} is not success or failure"
                )))
            }
        },
        from: time("from", p.from.as_deref())?,
        to: time("to", p.to.as_deref())?,
        before: query.page.cursor_id()?,
        limit: query.page.limit + 1,
    };
    let mut entries = store.list_audit(&q).await?;
    let limit = query.page.limit as usize;
    let next = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(AuditPageView {
        entries: entries.into_iter().map(AuditEntryView::from).collect(),
        next,
    }))
}
