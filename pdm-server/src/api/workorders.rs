//! Work orders: create (also from an alarm), list, read, change with `If-Match`, history; and
//! the code lists of findings.
//!
//! The lifecycle's rules are `pdm_core::workorder`'s ([`workorder::apply`]); the store refuses
//! a write on a stale version. This module reads the request, checks its fields' form, and
//! maps refusals: a field 422, an impossible move 409, a stale or missing version 412 / 428.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use pdm_core::store::{UserId, WorkOrderQuery, WorkOrderSort};
use pdm_core::workorder::{
    self, Code, CodeKind, Label, NewWorkOrder, Priority, Status, WorkOrderChange, WorkOrderError,
    WorkOrderId,
};
use pdm_core::{AlarmId, MachineKey, Store, Timestamp};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::api::auth::path_id;
use crate::api::models::body_time;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::present;
use crate::extract::{JsonBody, OptionalJsonBody, PageRule, PagedQuery};
use crate::openapi::params::Id;
use crate::openapi::{enum_of, ErrorBody, PageParams, TimeValue};
use crate::state::AppState;
use crate::views::{
    views, CodeView, FleetPrecisionView, MachinePrecisionView, WorkOrderEventView,
    WorkOrderPageView, WorkOrderView,
};

/// Paging of `GET /work-orders`: `limit` 1 to 500, 50 by default; `cursor` = `next` of the
/// previous page.
#[derive(Debug)]
pub struct WorkOrdersPage;

impl PageRule for WorkOrdersPage {
    const DEFAULT_LIMIT: u32 = 50;
    const MAX_LIMIT: u32 = 500;
    const CURSORS: bool = true;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list_work_orders,
    create_work_order,
    get_work_order,
    update_work_order,
    history,
    from_alarm,
    list_codes,
    put_code,
    precision
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/work-orders",
            get(list_work_orders).post(create_work_order),
        )
        .route(
            "/work-orders/{id}",
            get(get_work_order).patch(update_work_order),
        )
        .route("/work-orders/{id}/history", get(history))
        .route("/alarms/{id}/work-order", post(from_alarm))
        .route("/work-order-codes", get(list_codes))
        .route("/alarms/precision", get(precision))
        .route("/work-order-codes/{kind}/{code}", put(put_code))
}

impl From<WorkOrderError> for ApiError {
    fn from(e: WorkOrderError) -> Self {
        match e {
            WorkOrderError::Transition { .. } => ApiError::conflict(e.to_string()),
            WorkOrderError::Invalid(m) | WorkOrderError::Incomplete(m) => {
                ApiError::unprocessable(m)
            }
        }
    }
}

fn work_order_id(raw: &str) -> ApiResult<WorkOrderId> {
    path_id(raw, "work order").map(WorkOrderId)
}

/// A work order answered with its version as the `ETag`.
fn tagged(status: StatusCode, w: pdm_core::workorder::WorkOrder) -> Response {
    let etag = HeaderValue::from_str(&format!("\"{}\"", w.version)).ok();
    let mut resp = (status, Json(WorkOrderView::from(w))).into_response();
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}

/// The version of `If-Match` (`"3"`): 428 without one, 400 when it is not a version.
fn if_match(headers: &HeaderMap) -> ApiResult<crate::extract::IfMatch> {
    match crate::extract::if_match(headers) {
        Ok(crate::extract::IfMatch::Absent) => Err(ApiError::of(
            ErrorCode::PreconditionRequired,
            "If-Match: required: send the ETag of the work order as read (\"<version>\"), so \
             that a change made meanwhile is not overwritten",
        )),
        Ok(m) => Ok(m),
        Err(()) => Err(ApiError::bad_request(
            "If-Match: not an ETag of a work order (\"<version>\") or *",
        )),
    }
}

fn text_field(field: &str, raw: &str, max: usize) -> ApiResult<String> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "{field}: 1 to {max} characters, no control characters"
        )));
    }
    Ok(t.to_owned())
}

fn named<T>(
    field: &str,
    raw: &str,
    parse: fn(&str) -> Result<T, pdm_core::alarm::UnknownName>,
) -> ApiResult<T> {
    parse(raw).map_err(|e| ApiError::unprocessable(format!("{field}: {e}")))
}

fn user(id: i64) -> UserId {
    UserId(id)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    /// What is to be done, in a line.
    #[schema(
        min_length = 1,
        max_length = 200,
        example = "Check the bearing of pump 1"
    )]
    title: String,
    /// More (text or Markdown, stored as written).
    #[serde(default)]
    #[schema(max_length = 20000)]
    description: String,
    /// The machine.
    #[schema(value_type = MachineKey)]
    machine: String,
    /// Alarms of that machine to link.
    #[serde(default)]
    alarms: Vec<i64>,
    /// `low`, `medium` (the default), `high` or `urgent`.
    #[schema(example = "medium")]
    priority: Option<String>,
    /// The assignee's user id.
    assignee: Option<i64>,
    /// Due: epoch milliseconds or RFC 3339.
    #[schema(value_type = Option<TimeValue>)]
    due_at: Option<serde_json::Value>,
}

/// Create a work order.
#[utoipa::path(post, path = "/work-orders", tag = "work orders", request_body = CreateBody,
    responses((status = 201, description = "Created (version 1, in the `ETag`)", body = WorkOrderView)))]
async fn create_work_order(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    JsonBody(b): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let new = NewWorkOrder {
        title: text_field("title", &b.title, workorder::MAX_TITLE)?,
        description: b.description,
        machine: MachineKey::new(&b.machine)
            .map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?,
        alarms: b.alarms.into_iter().map(AlarmId).collect(),
        priority: match b.priority.as_deref() {
            Some(p) => named("priority", p, Priority::parse)?,
            None => Priority::Medium,
        },
        assignee: b.assignee.map(user),
        due_at: b
            .due_at
            .as_ref()
            .map(|v| body_time("due_at", v))
            .transpose()?,
        created_by: p.actor_name(),
        at: Timestamp::now(),
    };
    workorder::check_new(&new)?;
    let created = store.create_work_order(&new).await?;
    Ok(tagged(StatusCode::CREATED, created))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct FromAlarmBody {
    /// The title; `<rule> on <machine> (alarm <id>)` when left out.
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    /// The priority; from the alarm's severity when left out (critical: urgent).
    priority: Option<String>,
    /// More (text or Markdown).
    #[schema(max_length = 20000)]
    description: Option<String>,
    /// The assignee's user id.
    assignee: Option<i64>,
    /// Due: epoch milliseconds or RFC 3339.
    #[schema(value_type = Option<TimeValue>)]
    due_at: Option<serde_json::Value>,
}

/// Create a work order from an alarm, linking it.
#[utoipa::path(post, path = "/alarms/{id}/work-order", tag = "work orders", params(Id),
    request_body(content = Option<FromAlarmBody>, description = "Optional: title, priority, description, assignee, due date"),
    responses((status = 201, description = "Created, linking the alarm", body = WorkOrderView)))]
async fn from_alarm(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<FromAlarmBody>,
) -> ApiResult<Response> {
    let id = AlarmId(path_id(&id, "alarm")?);
    let b = body.unwrap_or_default();
    let alarm = store.get_alarm(id).await?;
    let title = b
        .title
        .as_deref()
        .map(|t| text_field("title", t, workorder::MAX_TITLE))
        .transpose()?;
    let priority = b
        .priority
        .as_deref()
        .map(|p| named("priority", p, Priority::parse))
        .transpose()?;
    let mut new = workorder::from_alarm(&alarm, title, priority, p.actor_name(), Timestamp::now());
    new.description = b.description.unwrap_or_default();
    new.assignee = b.assignee.map(user);
    new.due_at = b
        .due_at
        .as_ref()
        .map(|v| body_time("due_at", v))
        .transpose()?;
    workorder::check_new(&new)?;
    let created = store.create_work_order(&new).await?;
    Ok(tagged(StatusCode::CREATED, created))
}

/// Read a work order (its version in the `ETag`).
#[utoipa::path(get, path = "/work-orders/{id}", tag = "work orders", params(Id),
    responses((status = 200, description = "The work order", body = WorkOrderView)))]
async fn get_work_order(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let w = store.get_work_order(work_order_id(&id)?).await?;
    Ok(tagged(StatusCode::OK, w))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    /// New title.
    #[schema(min_length = 1, max_length = 200)]
    title: Option<String>,
    /// New description.
    #[schema(max_length = 20000)]
    description: Option<String>,
    /// New priority.
    priority: Option<String>,
    /// The next status: one of the work order's `next_statuses`.
    status: Option<String>,
    /// The assignee's user id (`null`: nobody).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    assignee: Option<Option<i64>>,
    /// Due (`null`: no date): epoch milliseconds or RFC 3339.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<TimeValue>)]
    due_at: Option<Option<serde_json::Value>>,
    /// A `failure_mode` code (`null` clears it).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    failure_mode: Option<Option<String>>,
    /// A `cause` code.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    cause: Option<Option<String>>,
    /// A `remedy` code.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    remedy: Option<Option<String>>,
    /// What the alarms were (with `status: resolved`): `true_fault`, `false_alarm`,
    /// `planned_work` or `unknown`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    label: Option<Option<String>>,
    /// Minutes of work to book.
    #[schema(minimum = 1)]
    add_time_min: Option<u32>,
    /// Alarms of its machine to link in addition.
    #[serde(default)]
    link_alarms: Vec<i64>,
}

/// Change a work order: send `If-Match` with the version read.
///
/// Its fields, a move of its status (resolving needs a remedy code, a label when alarms are
/// linked, and for a true fault the failure mode and cause), time booked, more alarms. A
/// change made meanwhile makes the version stale: 412, and nothing is written.
#[utoipa::path(patch, path = "/work-orders/{id}", tag = "work orders",
    params(Id, ("If-Match" = String, Header, description = "The ETag of the work order as read: `\"<version>\"`")),
    request_body = UpdateBody,
    responses(
        (status = 200, description = "Changed (the new version in the `ETag`)", body = WorkOrderView),
        (status = 409, description = "The status cannot move there from where it stands", body = ErrorBody),
        (status = 412, description = "Changed meanwhile: read it again", body = ErrorBody),
        (status = 428, description = "No `If-Match`", body = ErrorBody)))]
async fn update_work_order(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(b): JsonBody<UpdateBody>,
) -> ApiResult<Response> {
    let id = work_order_id(&id)?;
    let read = if_match(&headers)?;
    let current = store.get_work_order(id).await?;
    if !read.admits(current.version) {
        return Err(ApiError::precondition_failed(format!(
            "work order {id} is at version {}, not the one sent in If-Match: read it again and \
             redo the change",
            current.version
        )));
    }
    let code = |field: &str, v: Option<Option<String>>| -> ApiResult<Option<Option<String>>> {
        if let Some(Some(c)) = &v {
            workorder::check_code(field, c)?;
        }
        Ok(v)
    };
    let change = WorkOrderChange {
        title: b
            .title
            .as_deref()
            .map(|t| text_field("title", t, workorder::MAX_TITLE))
            .transpose()?,
        description: b.description,
        priority: b
            .priority
            .as_deref()
            .map(|p| named("priority", p, Priority::parse))
            .transpose()?,
        status: b
            .status
            .as_deref()
            .map(|s| named("status", s, Status::parse))
            .transpose()?,
        assignee: b.assignee.map(|a| a.map(user)),
        due_at: b
            .due_at
            .map(|d| d.map(|v| body_time("due_at", &v)).transpose())
            .transpose()?,
        failure_mode: code("failure_mode", b.failure_mode)?,
        cause: code("cause", b.cause)?,
        remedy: code("remedy", b.remedy)?,
        label: b
            .label
            .map(|l| l.map(|l| named("label", &l, Label::parse)).transpose())
            .transpose()?,
        add_time_min: b.add_time_min,
        link_alarms: b.link_alarms.into_iter().map(AlarmId).collect(),
    };
    let next = workorder::apply(&current, &change, Timestamp::now())?;
    let changes = workorder::diff(&current, &next);
    if changes.as_object().is_some_and(|c| c.is_empty()) {
        // Nothing changes: no new version, no history entry.
        return Ok(tagged(StatusCode::OK, current));
    }
    let stored = store
        .update_work_order(&next, &p.actor_name(), &changes)
        .await?;
    Ok(tagged(StatusCode::OK, stored))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only these statuses, comma-separated (`open,in_progress`).
    status: Option<String>,
    /// Only this machine's.
    #[param(value_type = Option<MachineKey>)]
    machine: Option<String>,
    /// Only this assignee's (a user id).
    assignee: Option<i64>,
    /// Only this priority.
    #[param(schema_with = priority_schema)]
    priority: Option<String>,
    /// `true`: only active ones past their due date.
    overdue: Option<bool>,
    /// `newest` (the default), `due` (soonest first) or `priority` (most urgent first).
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
}

fn priority_schema() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = Priority::ALL.iter().map(|p| p.as_str()).collect();
    enum_of(&names)
}

fn sort_schema() -> utoipa::openapi::schema::Object {
    enum_of(&["newest", "due", "priority"])
}

/// List work orders, filtered and sorted.
#[utoipa::path(get, path = "/work-orders", tag = "work orders",
    params(ListParams, PageParams<WorkOrdersPage>),
    responses((status = 200, description = "A page of work orders", body = WorkOrderPageView)))]
async fn list_work_orders(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<ListParams, WorkOrdersPage>,
) -> ApiResult<Json<WorkOrderPageView>> {
    let p = query.params;
    let bad = |m: String| ApiError::bad_request(m);
    let mut q = WorkOrderQuery {
        limit: query.page.limit + 1,
        ..WorkOrderQuery::default()
    };
    if let Some(list) = &p.status {
        for s in list.split(',') {
            q.status
                .push(Status::parse(s.trim()).map_err(|e| bad(format!("status: {e}")))?);
        }
    }
    q.machine = p
        .machine
        .as_deref()
        .map(|m| MachineKey::new(m).map_err(|e| ApiError::unprocessable(format!("machine: {e}"))))
        .transpose()?;
    q.assignee = p.assignee.map(user);
    q.priority = p
        .priority
        .as_deref()
        .map(|s| Priority::parse(s).map_err(|e| bad(format!("priority: {e}"))))
        .transpose()?;
    if p.overdue == Some(true) {
        q.overdue_at = Some(Timestamp::now());
    }
    q.sort = match p.sort.as_deref() {
        None | Some("newest") => WorkOrderSort::Newest,
        Some("due") => WorkOrderSort::Due,
        Some("priority") => WorkOrderSort::Priority,
        Some(other) => {
            return Err(bad(format!(
                "sort: {other:?} is not newest, due or priority"
            )))
        }
    };
    // The cursor: the last id (newest first), or the offset of the next page (other orders).
    let cursor = query.page.cursor_id()?;
    match q.sort {
        WorkOrderSort::Newest => q.before = cursor.map(WorkOrderId),
        _ => {
            q.offset = u32::try_from(cursor.unwrap_or(0))
                .map_err(|_| bad("cursor: out of range".into()))?;
        }
    }
    let mut orders = store.list_work_orders(&q).await?;
    let limit = query.page.limit as usize;
    let next = if orders.len() > limit {
        orders.truncate(limit);
        match q.sort {
            WorkOrderSort::Newest => orders.last().map(|w| w.id.to_string()),
            _ => Some((u64::from(q.offset) + limit as u64).to_string()),
        }
    } else {
        None
    };
    Ok(Json(WorkOrderPageView {
        work_orders: views(orders),
        next,
    }))
}

/// A work order's history: every change, oldest first.
#[utoipa::path(get, path = "/work-orders/{id}/history", tag = "work orders", params(Id),
    responses((status = 200, description = "Its changes, oldest first", body = [WorkOrderEventView])))]
async fn history(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<WorkOrderEventView>>> {
    let events = store.work_order_history(work_order_id(&id)?).await?;
    Ok(Json(views(events)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct PrecisionParams {
    /// Only this machine.
    #[param(value_type = Option<MachineKey>)]
    machine: Option<String>,
}

/// Alarm precision: the share of judged alarms (labelled by a resolved work order) that were
/// real faults, fleet-wide and per machine.
#[utoipa::path(get, path = "/alarms/precision", tag = "alarms", params(PrecisionParams),
    responses(
        (status = 200, description = "The figures", body = FleetPrecisionView),
        (status = 404, description = "No such machine", body = ErrorBody)))]
async fn precision(
    State(store): State<Arc<dyn Store>>,
    crate::extract::QueryParams(p): crate::extract::QueryParams<PrecisionParams>,
) -> ApiResult<Json<FleetPrecisionView>> {
    let machine = p
        .machine
        .as_deref()
        .map(|m| MachineKey::new(m).map_err(|e| ApiError::unprocessable(format!("machine: {e}"))))
        .transpose()?;
    if let Some(m) = &machine {
        store.get_machine(m).await?;
    }
    let mut fleet = pdm_core::store::LabelCounts::default();
    let mut per: std::collections::BTreeMap<String, pdm_core::store::LabelCounts> =
        Default::default();
    for (m, a) in store.labelled_alarms(machine.as_ref()).await? {
        fleet.add(a.label);
        per.entry(m.as_str().to_owned()).or_default().add(a.label);
    }
    Ok(Json(FleetPrecisionView {
        fleet: fleet.into(),
        machines: per
            .into_iter()
            .map(|(machine, c)| MachinePrecisionView {
                machine,
                figures: c.into(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CodesParams {
    /// Only this list.
    #[param(schema_with = kind_schema)]
    kind: Option<String>,
}

fn kind_schema() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = CodeKind::ALL.iter().map(|k| k.as_str()).collect();
    enum_of(&names)
}

/// The code lists of findings (failure modes, causes, remedies), retired codes included.
#[utoipa::path(get, path = "/work-order-codes", tag = "work orders", params(CodesParams),
    responses((status = 200, description = "Codes by list and code", body = [CodeView])))]
async fn list_codes(
    State(store): State<Arc<dyn Store>>,
    crate::extract::QueryParams(p): crate::extract::QueryParams<CodesParams>,
) -> ApiResult<Json<Vec<CodeView>>> {
    let kind = p
        .kind
        .as_deref()
        .map(|k| CodeKind::parse(k).map_err(|e| ApiError::bad_request(format!("kind: {e}"))))
        .transpose()?;
    Ok(Json(views(store.list_codes(kind).await?)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeBody {
    /// What it means.
    #[schema(min_length = 1, max_length = 200)]
    description: String,
    /// Offered for new findings (true when left out); false retires it.
    active: Option<bool>,
}

/// `{kind}` and `{code}` of a code.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct CodePath {
    /// `failure_mode`, `cause` or `remedy`.
    #[param(schema_with = kind_schema)]
    kind: String,
    /// The code: a-z, 0-9, `-` and `_`.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    code: String,
}

/// Create (201) or replace (200) a code; `active: false` retires it.
#[utoipa::path(put, path = "/work-order-codes/{kind}/{code}", tag = "work orders", params(CodePath),
    request_body = CodeBody,
    responses(
        (status = 200, description = "Replaced", body = CodeView),
        (status = 201, description = "Created", body = CodeView)))]
async fn put_code(
    State(store): State<Arc<dyn Store>>,
    Path((kind, code)): Path<(String, String)>,
    JsonBody(b): JsonBody<CodeBody>,
) -> ApiResult<(StatusCode, Json<CodeView>)> {
    let kind = CodeKind::parse(&kind).map_err(|e| ApiError::unprocessable(format!("kind: {e}")))?;
    workorder::check_code("code", &code)?;
    let entry = Code {
        kind,
        code,
        description: text_field("description", &b.description, 200)?,
        active: b.active.unwrap_or(true),
    };
    let created = store.put_code(&entry).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(entry.into())))
}
