//! Alarms (list, read, acknowledge, shelve, unshelve), their rules (fleet defaults and per
//! machine), machines out of service, and the EEMUA 191 performance figures (issue 10).
//!
//! Commands go through the live path's alarm handle (`pdm_core::live::Alarms`), which applies
//! the policy to the stored state, stores the transition with its events and notifies; this
//! module only reads and validates the request and maps refusals onto 409.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::alarm::{Rule, Severity, StateName, MAX_ID_LEN};
use pdm_core::{AlarmId, AlarmQuery, MachineKey, NewAlarmRule, Store, Timestamp};
use serde::Deserialize;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Keys, OptionalJsonBody, Page, PageRule, PagedQuery, QueryParams};
use crate::openapi::params::{Id, Machine};
use crate::openapi::{enum_of, ErrorBody, PageParams, TimeValue};
use crate::state::AppState;
use crate::time::{parse_range, parse_time};
use crate::views::alarms::rule_definition;
use crate::views::{
    views, AlarmDetailView, AlarmPageView, AlarmRuleView, AlarmUpdateView, PerformanceView,
    ServiceNoteView,
};
use pdm_core::live::{AlarmCommandError, AlarmUpdate, Alarms};
use utoipa::ToSchema;

/// Paging of `GET /alarms`: `limit` 1 to 1000, 100 by default, `cursor` = the last id seen.
#[derive(Debug)]
pub struct AlarmsPage;

impl PageRule for AlarmsPage {
    const DEFAULT_LIMIT: u32 = 100;
    const MAX_LIMIT: u32 = 1_000;
    const CURSORS: bool = true;
}

/// The longest actor name.
pub const MAX_ACTOR_CHARS: usize = 64;
/// The longest reason of a command.
pub const MAX_REASON_CHARS: usize = 500;
/// The longest shelf: 30 days.
pub const MAX_SHELF_MS: i64 = 30 * 86_400_000;
/// The default range of the performance figures: the last 24 hours.
pub const PERFORMANCE_DEFAULT_MS: i64 = 86_400_000;
/// The longest range of the performance figures: 90 days (every event of the range is read).
pub const PERFORMANCE_MAX_MS: i64 = 90 * 86_400_000;

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_alarms,
        performance,
        get_alarm,
        acknowledge,
        shelve,
        unshelve,
        list_fleet_rules,
        get_fleet_rule,
        put_fleet_rule,
        delete_fleet_rule,
        list_machine_rules,
        get_machine_rule,
        put_machine_rule,
        delete_machine_rule,
        out_of_service,
        in_service,
        list_out_of_service
    ),
    components(schemas(RuleBody))
)]
pub struct Doc;

/// `{rule}`: a rule id.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct RuleParam {
    /// The rule's id: a-z, 0-9, `-` and `_`.
    #[param(pattern = "^[a-z0-9_-]{1,64}$")]
    rule: String,
}

/// The body of `PUT .../alarm-rules/{rule}`: a rule (docs/alarms.md), its `id` the path's or
/// left out, and `enabled`. The handler reads it as [`Rule`] (`rule_of_body`); this type only
/// describes it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RuleBody {
    /// The path's rule id, or left out.
    id: Option<String>,
    /// The condition.
    kind: pdm_core::alarm::RuleKind,
    /// The severity when raised.
    severity: Severity,
    /// Escalation steps, each to a severity above `severity`.
    #[serde(default)]
    escalation: Vec<pdm_core::alarm::Escalation>,
    /// Whether the rule is in force (true when left out).
    enabled: Option<bool>,
}

fn alarm_state() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = StateName::ALL.iter().map(|s| s.as_str()).collect();
    enum_of(&names)
}

fn severity() -> utoipa::openapi::schema::Object {
    let names: Vec<&str> = Severity::ALL.iter().map(|s| s.as_str()).collect();
    enum_of(&names)
}

fn boolean_text() -> utoipa::openapi::schema::Object {
    enum_of(&["true", "false"])
}

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/alarms", get(list_alarms))
        .route("/alarms/performance", get(performance))
        .route("/alarms/{id}", get(get_alarm))
        .route("/alarms/{id}/ack", post(acknowledge))
        .route("/alarms/{id}/shelve", post(shelve))
        .route("/alarms/{id}/unshelve", post(unshelve))
        .route("/alarm-rules", get(list_fleet_rules))
        .route(
            "/alarm-rules/{rule}",
            get(get_fleet_rule)
                .put(put_fleet_rule)
                .delete(delete_fleet_rule),
        )
        .route("/machines/{machine}/alarm-rules", get(list_machine_rules))
        .route(
            "/machines/{machine}/alarm-rules/{rule}",
            get(get_machine_rule)
                .put(put_machine_rule)
                .delete(delete_machine_rule),
        )
        .route(
            "/machines/{machine}/out-of-service",
            post(out_of_service).delete(in_service),
        )
        .route("/out-of-service", get(list_out_of_service))
}

impl From<AlarmCommandError> for ApiError {
    fn from(e: AlarmCommandError) -> Self {
        match e {
            AlarmCommandError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            AlarmCommandError::Refused(refusal) => ApiError::conflict(refusal.to_string()),
            AlarmCommandError::Conflict(msg) => ApiError::conflict(msg),
            AlarmCommandError::Invalid(msg) => ApiError::unprocessable(msg),
            AlarmCommandError::Store(e) => e.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

fn alarm_id(raw: &str) -> ApiResult<AlarmId> {
    raw.parse::<i64>()
        .map(AlarmId)
        .map_err(|_| ApiError::bad_request(format!("alarm id {raw:?} is not a number")))
}

/// The actor of a command: the caller ([`Principal::actor_name`]); a `by` from the body (someone
/// the caller acts for, say an operator on the phone) is recorded beside it, `caller (for by)`,
/// never instead of it.
fn actor(p: &Principal, by: Option<String>) -> ApiResult<String> {
    let caller = p.actor_name();
    let Some(by) = by else {
        return Ok(caller);
    };
    let by = on_behalf(by)?;
    Ok(if by == caller {
        caller
    } else {
        format!("{caller} (for {by})")
    })
}

/// A `by` of a body: 1 to [`MAX_ACTOR_CHARS`] characters, no control characters.
fn on_behalf(by: String) -> ApiResult<String> {
    let n = by.chars().count();
    if n == 0 || n > MAX_ACTOR_CHARS {
        return Err(ApiError::unprocessable(format!(
            "by: must be 1 to {MAX_ACTOR_CHARS} characters (got {n})"
        )));
    }
    if by.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            "by: must not contain control characters",
        ));
    }
    Ok(by)
}

/// A reason: at most [`MAX_REASON_CHARS`]; `required` refuses a missing or blank one.
fn reason(reason: Option<String>, required: bool) -> ApiResult<Option<String>> {
    match reason {
        Some(r) if r.chars().count() > MAX_REASON_CHARS => Err(ApiError::unprocessable(format!(
            "reason: at most {MAX_REASON_CHARS} characters (got {})",
            r.chars().count()
        ))),
        Some(r) if r.trim().is_empty() && required => Err(ApiError::unprocessable(
            "reason: must not be empty: say why",
        )),
        None if required => Err(ApiError::unprocessable(
            "reason: required: say why (at most 500 characters)",
        )),
        r => Ok(r),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlarmsParams {
    /// Only alarms in this state.
    #[param(schema_with = alarm_state)]
    state: Option<String>,
    /// Only this machine's alarms.
    #[param(value_type = Option<MachineKey>)]
    machine: Option<String>,
    /// Only alarms of this severity.
    #[param(schema_with = severity)]
    severity: Option<String>,
    /// Only alarms of this rule id.
    rule: Option<String>,
    /// `true`: only alarms not yet cleared and acknowledged; `false`: only closed ones.
    #[param(schema_with = boolean_text)]
    open: Option<String>,
    /// Raised at or after (RFC 3339 or epoch milliseconds).
    #[param(schema_with = crate::openapi::time_param)]
    from: Option<String>,
    /// Raised before (RFC 3339 or epoch milliseconds).
    #[param(schema_with = crate::openapi::time_param)]
    to: Option<String>,
    /// The same as `cursor` (give one of them).
    #[param(pattern = "^[0-9]{1,18}$")]
    before: Option<String>,
}

/// An optional query parameter read by `parse`; a bad value is refused (`refuse`: 400 or 422)
/// with a message naming `name`.
fn param<T, E: std::fmt::Display>(
    name: &str,
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, E>,
    refuse: fn(String) -> ApiError,
) -> ApiResult<Option<T>> {
    raw.map(parse)
        .transpose()
        .map_err(|e| refuse(format!("{name}: {e}")))
}

impl AlarmsParams {
    /// The store's query for one `page` of alarms, every parameter checked (in the order
    /// they are documented, the cursor last).
    fn query(self, page: &Page) -> ApiResult<AlarmQuery> {
        let bad = |m: String| ApiError::bad_request(m);
        let state = param("state", self.state.as_deref(), StateName::parse, bad)?;
        let severity = param("severity", self.severity.as_deref(), Severity::parse, bad)?;
        let machine = param("machine", self.machine.as_deref(), MachineKey::new, |m| {
            ApiError::unprocessable(m)
        })?;
        let open = param(
            "open",
            self.open.as_deref(),
            |v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(format!("{other:?} is not true or false")),
            },
            bad,
        )?;
        let from = param("from", self.from.as_deref(), parse_time, bad)?;
        let to = param("to", self.to.as_deref(), parse_time, bad)?;
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(ApiError::bad_request("from must be earlier than to"));
            }
        }
        let before = match (page.cursor_id()?, self.before.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "cursor and before are the same parameter: give one",
                ))
            }
            (Some(c), None) => Some(c),
            (None, Some(b)) => Some(b.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "before: {b:?} is not an id; pass the id of the last alarm of the previous page"
                ))
            })?),
            (None, None) => None,
        };
        Ok(AlarmQuery {
            state,
            open,
            machine,
            rule_id: self.rule,
            severity,
            from,
            to,
            before: before.map(AlarmId),
            // One more than asked tells whether a next page exists.
            limit: page.limit + 1,
        })
    }
}

/// Alarms, newest first, filtered; `next` is the cursor of the following page.
#[utoipa::path(get, path = "/alarms", tag = "alarms", params(AlarmsParams, PageParams<AlarmsPage>),
    responses((status = 200, description = "A page of alarms", body = AlarmPageView)))]
async fn list_alarms(
    State(store): State<Arc<dyn Store>>,
    query: PagedQuery<AlarmsParams, AlarmsPage>,
) -> ApiResult<Json<AlarmPageView>> {
    let limit = query.page.limit;
    let q = query.params.query(&query.page)?;
    let mut alarms = store.list_alarms(&q).await?;
    let next = if alarms.len() > limit as usize {
        alarms.truncate(limit as usize);
        alarms.last().map(|a| a.id.to_string())
    } else {
        None
    };
    Ok(Json(AlarmPageView {
        alarms: views(alarms),
        next,
    }))
}

/// An alarm with its events.
#[utoipa::path(get, path = "/alarms/{id}", tag = "alarms", params(Id),
    responses((status = 200, description = "The alarm and its events", body = AlarmDetailView)))]
async fn get_alarm(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<AlarmDetailView>> {
    let id = alarm_id(&id)?;
    let alarm = store.get_alarm(id).await?;
    let events = store.alarm_events(id).await?;
    Ok(Json(AlarmDetailView {
        alarm: alarm.into(),
        events: views(events),
    }))
}

fn update_view(u: AlarmUpdate) -> Json<AlarmUpdateView> {
    Json(AlarmUpdateView {
        alarm: u.alarm.into(),
        events: views(u.events),
    })
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AckBody {
    by: Option<String>,
    reason: Option<String>,
}

/// Acknowledges an alarm (409 when it awaits no acknowledgement, a cleared one included).
#[utoipa::path(post, path = "/alarms/{id}/ack", tag = "alarms", params(Id),
    request_body(content = Option<AckBody>, description = "Optional: for whom, and why"),
    responses((status = 200, description = "Acknowledged", body = AlarmUpdateView), (status = 409, description = "Not possible in the alarm's state", body = ErrorBody)))]
async fn acknowledge(
    State(alarms): State<Arc<Alarms>>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<AckBody>,
) -> ApiResult<Json<AlarmUpdateView>> {
    let id = alarm_id(&id)?;
    let body = body.unwrap_or_default();
    let by = actor(&p, body.by)?;
    let reason = reason(body.reason, false)?;
    let u = alarms
        .acknowledge(id, &by, reason.as_deref(), Timestamp::now())
        .await?;
    Ok(update_view(u))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ShelveBody {
    /// The shelf's end: RFC 3339 or epoch milliseconds (or give `for_s`).
    #[schema(value_type = Option<TimeValue>)]
    until: Option<serde_json::Value>,
    /// The shelf's length in seconds, 1 to 30 days (or give `until`).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2592000)]
    for_s: Option<serde_json::Value>,
    /// Why (required).
    #[schema(required = true, value_type = String, min_length = 1, max_length = 500)]
    reason: Option<String>,
    by: Option<String>,
}

/// The end of a shelf asked for at `now`: `until` (RFC 3339 or epoch ms) or `for_s` seconds,
/// exactly one, in the future and at most [`MAX_SHELF_MS`] away.
fn shelf_end(
    until: Option<&serde_json::Value>,
    for_s: Option<&serde_json::Value>,
    now: Timestamp,
) -> ApiResult<Timestamp> {
    let max_s = MAX_SHELF_MS / 1_000;
    match (until, for_s) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::unprocessable(
            "until, for_s: give exactly one: the shelf's end (RFC 3339 or epoch milliseconds) \
             or its length in seconds",
        )),
        (Some(u), None) => {
            let end = match u {
                serde_json::Value::String(s) => {
                    parse_time(s).map_err(|e| ApiError::unprocessable(format!("until: {e}")))?
                }
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(ms) => Timestamp::from_millis(ms),
                    None => {
                        return Err(ApiError::unprocessable(format!(
                            "until: {n} is not whole epoch milliseconds"
                        )))
                    }
                },
                other => {
                    return Err(ApiError::unprocessable(format!(
                        "until: must be an RFC 3339 time or epoch milliseconds (got {other})"
                    )))
                }
            };
            if end <= now {
                return Err(ApiError::unprocessable(format!(
                    "until: must be in the future (got {}, now is {})",
                    end.as_millis(),
                    now.as_millis()
                )));
            }
            if end.as_millis() - now.as_millis() > MAX_SHELF_MS {
                return Err(ApiError::unprocessable(format!(
                    "until: a shelf lasts at most 30 days ({max_s} s); got {} s from now",
                    (end.as_millis() - now.as_millis()) / 1_000
                )));
            }
            Ok(end)
        }
        (None, Some(f)) => match f.as_i64() {
            Some(s) if (1..=max_s).contains(&s) => Ok(now.add_millis(s * 1_000)),
            _ => Err(ApiError::unprocessable(format!(
                "for_s: must be a whole number of seconds from 1 to {max_s} (30 days) (got {f})"
            ))),
        },
    }
}

/// Shelves an alarm until `until`, or for `for_s` seconds.
#[utoipa::path(post, path = "/alarms/{id}/shelve", tag = "alarms", params(Id), request_body = ShelveBody,
    responses((status = 200, description = "Shelved", body = AlarmUpdateView), (status = 409, description = "Not possible in the alarm's state", body = ErrorBody)))]
async fn shelve(
    State(alarms): State<Arc<Alarms>>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ShelveBody>,
) -> ApiResult<Json<AlarmUpdateView>> {
    let id = alarm_id(&id)?;
    let now = Timestamp::now();
    let by = actor(&p, body.by)?;
    let reason = reason(body.reason, true)?.unwrap_or_default();
    let until = shelf_end(body.until.as_ref(), body.for_s.as_ref(), now)?;
    let u = alarms.shelve(id, until, &reason, &by, now).await?;
    Ok(update_view(u))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ByBody {
    by: Option<String>,
}

/// Ends an alarm's shelf (409 when it is not shelved).
#[utoipa::path(post, path = "/alarms/{id}/unshelve", tag = "alarms", params(Id),
    request_body(content = Option<ByBody>, description = "Optional: for whom"),
    responses((status = 200, description = "Unshelved", body = AlarmUpdateView), (status = 409, description = "Not possible in the alarm's state", body = ErrorBody)))]
async fn unshelve(
    State(alarms): State<Arc<Alarms>>,
    p: Principal,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<ByBody>,
) -> ApiResult<Json<AlarmUpdateView>> {
    let id = alarm_id(&id)?;
    let by = actor(&p, body.unwrap_or_default().by)?;
    Ok(update_view(
        alarms.unshelve(id, &by, Timestamp::now()).await?,
    ))
}

/// A rule id from the path: the charset `Rule::check` takes, 422 otherwise.
fn rule_id(raw: &str) -> ApiResult<String> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_ID_LEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::unprocessable(format!(
            "rule id: must be 1 to {MAX_ID_LEN} characters of a-z, 0-9, - and _ (got {raw:?})"
        )))
    }
}

/// The rule of a `PUT` body: the rule's JSON with an optional `enabled` (default true) and an
/// `id` equal to the path's (or left out).
fn rule_of_body(mut body: serde_json::Value, path_id: &str) -> ApiResult<(Rule, bool)> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::unprocessable(
            "the body must be a JSON object: a rule, with an optional enabled",
        ));
    };
    let enabled = match obj.remove("enabled") {
        None => true,
        Some(serde_json::Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "enabled: must be true or false (got {other})"
            )))
        }
    };
    match obj.get("id") {
        None => {
            obj.insert("id".into(), serde_json::Value::String(path_id.to_owned()));
        }
        Some(serde_json::Value::String(id)) if id == path_id => {}
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "rule.id: must be the path's rule id {path_id:?} or left out (got {other})"
            )))
        }
    }
    let rule: Rule =
        serde_json::from_value(body).map_err(|e| ApiError::unprocessable(format!("rule: {e}")))?;
    rule.check()
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    Ok((rule, enabled))
}

/// Stores the rule of `machine` (`None`: the fleet default) and tells the live path.
async fn put_rule(
    store: &dyn Store,
    alarms: &Alarms,
    machine: Option<MachineKey>,
    raw_id: &str,
    body: serde_json::Value,
) -> ApiResult<Json<AlarmRuleView>> {
    let id = rule_id(raw_id)?;
    let (rule, enabled) = rule_of_body(body, &id)?;
    let definition = rule_definition(&rule).map_err(ApiError::internal)?;
    let stored = store
        .put_rule(&NewAlarmRule {
            machine: machine.clone(),
            rule_id: id,
            definition,
            enabled,
        })
        .await?;
    alarms.rules_changed(machine.as_ref()).await;
    Ok(Json(stored.into()))
}

/// The fleet-wide default rules, by id.
#[utoipa::path(get, path = "/alarm-rules", tag = "alarm rules",
    responses((status = 200, description = "The fleet's default rules", body = [AlarmRuleView])))]
async fn list_fleet_rules(
    State(store): State<Arc<dyn Store>>,
) -> ApiResult<Json<Vec<AlarmRuleView>>> {
    Ok(Json(views(store.list_rules(None).await?)))
}

/// Read a fleet default rule.
#[utoipa::path(get, path = "/alarm-rules/{rule}", tag = "alarm rules", params(RuleParam),
    responses((status = 200, description = "The rule", body = AlarmRuleView)))]
async fn get_fleet_rule(
    State(store): State<Arc<dyn Store>>,
    Path(rule): Path<String>,
) -> ApiResult<Json<AlarmRuleView>> {
    let id = rule_id(&rule)?;
    store
        .list_rules(None)
        .await?
        .into_iter()
        .find(|r| r.rule_id == id)
        .map(|r| Json(r.into()))
        .ok_or_else(|| ApiError::not_found(format!("fleet alarm rule '{id}' not found")))
}

/// Create or replace a fleet default rule.
#[utoipa::path(put, path = "/alarm-rules/{rule}", tag = "alarm rules", params(RuleParam), request_body = RuleBody,
    responses((status = 200, description = "Stored; the live path applies it at once", body = AlarmRuleView)))]
async fn put_fleet_rule(
    State(store): State<Arc<dyn Store>>,
    State(alarms): State<Arc<Alarms>>,
    Path(rule): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<AlarmRuleView>> {
    put_rule(&*store, &alarms, None, &rule, body).await
}

/// Delete a fleet default rule.
#[utoipa::path(delete, path = "/alarm-rules/{rule}", tag = "alarm rules", params(RuleParam),
    responses((status = 204, description = "Deleted")))]
async fn delete_fleet_rule(
    State(store): State<Arc<dyn Store>>,
    State(alarms): State<Arc<Alarms>>,
    Path(rule): Path<String>,
) -> ApiResult<StatusCode> {
    let id = rule_id(&rule)?;
    if !store.delete_rule(None, &id).await? {
        return Err(ApiError::not_found(format!(
            "fleet alarm rule '{id}' not found"
        )));
    }
    alarms.rules_changed(None).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The rules that apply to a machine: its own, and the fleet defaults it does not override.
#[utoipa::path(get, path = "/machines/{machine}/alarm-rules", tag = "alarm rules", params(Machine),
    responses((status = 200, description = "The rules in force for the machine", body = [AlarmRuleView])))]
async fn list_machine_rules(
    State(store): State<Arc<dyn Store>>,
    Keys(machine): Keys<MachineKey>,
) -> ApiResult<Json<Vec<AlarmRuleView>>> {
    store.get_machine(&machine).await?;
    let rules = store.list_rules(Some(&machine)).await?;
    let own: std::collections::HashSet<String> = rules
        .iter()
        .filter(|r| r.machine.is_some())
        .map(|r| r.rule_id.clone())
        .collect();
    let defaults: std::collections::HashSet<String> = rules
        .iter()
        .filter(|r| r.machine.is_none())
        .map(|r| r.rule_id.clone())
        .collect();
    let out = rules
        .into_iter()
        .filter(|r| r.machine.is_some() || !own.contains(&r.rule_id))
        .map(|r| {
            let overrides = r.machine.is_some() && defaults.contains(&r.rule_id);
            let mut v = AlarmRuleView::from(r);
            v.overrides_default = overrides;
            v
        })
        .collect();
    Ok(Json(out))
}

/// The rule that applies to a machine under this id: its own, else the fleet default.
#[utoipa::path(get, path = "/machines/{machine}/alarm-rules/{rule}", tag = "alarm rules", params(Machine, RuleParam),
    responses((status = 200, description = "The rule in force", body = AlarmRuleView)))]
async fn get_machine_rule(
    State(store): State<Arc<dyn Store>>,
    Keys((machine, rule)): Keys<(MachineKey, String)>,
) -> ApiResult<Json<AlarmRuleView>> {
    let id = rule_id(&rule)?;
    store.get_machine(&machine).await?;
    let matching: Vec<_> = store
        .list_rules(Some(&machine))
        .await?
        .into_iter()
        .filter(|r| r.rule_id == id)
        .collect();
    let overrides = matching.len() > 1;
    // The machine's own rule comes before the default of the same id.
    let first = matching.into_iter().next().ok_or_else(|| {
        ApiError::not_found(format!(
            "alarm rule '{id}' of machine '{machine}' not found (neither its own nor a fleet default)"
        ))
    })?;
    let mut v = AlarmRuleView::from(first);
    v.overrides_default = v.machine.is_some() && overrides;
    Ok(Json(v))
}

/// Create or replace a machine's own rule (overriding a fleet default of the same id).
#[utoipa::path(put, path = "/machines/{machine}/alarm-rules/{rule}", tag = "alarm rules", params(Machine, RuleParam),
    request_body = RuleBody,
    responses((status = 200, description = "Stored; the live path applies it at once", body = AlarmRuleView)))]
async fn put_machine_rule(
    State(store): State<Arc<dyn Store>>,
    State(alarms): State<Arc<Alarms>>,
    Keys((machine, rule)): Keys<(MachineKey, String)>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> ApiResult<Json<AlarmRuleView>> {
    put_rule(&*store, &alarms, Some(machine), &rule, body).await
}

/// Deletes a machine's own rule (a fleet default of the same id applies again).
#[utoipa::path(delete, path = "/machines/{machine}/alarm-rules/{rule}", tag = "alarm rules", params(Machine, RuleParam),
    responses((status = 204, description = "Deleted")))]
async fn delete_machine_rule(
    State(store): State<Arc<dyn Store>>,
    State(alarms): State<Arc<Alarms>>,
    Keys((machine, rule)): Keys<(MachineKey, String)>,
) -> ApiResult<StatusCode> {
    let id = rule_id(&rule)?;
    store.get_machine(&machine).await?;
    if !store.delete_rule(Some(&machine), &id).await? {
        return Err(ApiError::not_found(format!(
            "alarm rule '{id}' of machine '{machine}' not found"
        )));
    }
    alarms.rules_changed(Some(&machine)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct OutOfServiceBody {
    /// Why (required).
    #[schema(required = true, value_type = String, min_length = 1, max_length = 500)]
    reason: Option<String>,
    /// Someone the caller acts for, recorded beside the caller.
    by: Option<String>,
}

/// Takes a machine out of service (409 when it is already).
#[utoipa::path(post, path = "/machines/{machine}/out-of-service", tag = "alarms", params(Machine),
    request_body = OutOfServiceBody,
    responses(
        (status = 201, description = "Out of service: its alarms are suppressed", body = ServiceNoteView),
        (status = 409, description = "Already out of service", body = ErrorBody)))]
async fn out_of_service(
    State(alarms): State<Arc<Alarms>>,
    p: Principal,
    Keys(machine): Keys<MachineKey>,
    JsonBody(body): JsonBody<OutOfServiceBody>,
) -> ApiResult<(StatusCode, Json<ServiceNoteView>)> {
    let by = actor(&p, body.by)?;
    let reason = reason(body.reason, true)?.unwrap_or_default();
    let note = alarms
        .out_of_service(&machine, &by, &reason, Timestamp::now())
        .await?;
    Ok((StatusCode::CREATED, Json(note.into())))
}

/// Puts a machine back in service; answers the note it had (409 when it was in service).
#[utoipa::path(delete, path = "/machines/{machine}/out-of-service", tag = "alarms", params(Machine),
    responses(
        (status = 200, description = "Back in service; the note it had", body = ServiceNoteView),
        (status = 409, description = "It was in service", body = ErrorBody)))]
async fn in_service(
    State(alarms): State<Arc<Alarms>>,
    p: Principal,
    Keys(machine): Keys<MachineKey>,
    OptionalJsonBody(body): OptionalJsonBody<ByBody>,
) -> ApiResult<Json<ServiceNoteView>> {
    let by = actor(&p, body.unwrap_or_default().by)?;
    let note = alarms.in_service(&machine, &by, Timestamp::now()).await?;
    Ok(Json(note.into()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ServiceParams {
    machine: Option<String>,
}

/// The machines out of service, by key.
#[utoipa::path(get, path = "/out-of-service", tag = "alarms", params(ServiceParams),
    responses((status = 200, description = "Machines out of service", body = [ServiceNoteView])))]
async fn list_out_of_service(
    State(store): State<Arc<dyn Store>>,
    QueryParams(p): QueryParams<ServiceParams>,
) -> ApiResult<Json<Vec<ServiceNoteView>>> {
    let machine = p
        .machine
        .as_deref()
        .map(MachineKey::new)
        .transpose()
        .map_err(|e| ApiError::unprocessable(format!("machine: {e}")))?;
    if let Some(m) = &machine {
        store.get_machine(m).await?;
    }
    Ok(Json(views(store.out_of_service(machine.as_ref()).await?)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeParams {
    /// Start (inclusive); 24 hours before `to` when left out.
    #[param(schema_with = crate::openapi::time_param)]
    from: Option<String>,
    /// End (exclusive); now when left out.
    #[param(schema_with = crate::openapi::time_param)]
    to: Option<String>,
}

/// The EEMUA 191 figures of `[from, to)`: the last 24 hours by default, at most 90 days.
#[utoipa::path(get, path = "/alarms/performance", tag = "alarms", params(RangeParams),
    responses((status = 200, description = "The EEMUA 191 figures", body = PerformanceView)))]
async fn performance(
    State(store): State<Arc<dyn Store>>,
    QueryParams(p): QueryParams<RangeParams>,
) -> ApiResult<Json<PerformanceView>> {
    let (from, to) = parse_range(p.from.as_deref(), p.to.as_deref(), PERFORMANCE_DEFAULT_MS)?;
    if to.as_millis().saturating_sub(from.as_millis()) > PERFORMANCE_MAX_MS {
        return Err(ApiError::bad_request(format!(
            "from, to: the range is at most 90 days ({PERFORMANCE_MAX_MS} ms)"
        )));
    }
    let figures = pdm_core::store::alarms::alarm_performance(&*store, from, to).await?;
    Ok(Json(figures.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shelf_ends_are_checked() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        let v = |j: &str| serde_json::from_str::<serde_json::Value>(j).expect("json");
        assert_eq!(
            shelf_end(None, Some(&v("60")), now)
                .map(Timestamp::as_millis)
                .ok(),
            Some(1_700_000_060_000)
        );
        assert_eq!(
            shelf_end(Some(&v("\"2023-11-14T22:14:20Z\"")), None, now)
                .map(Timestamp::as_millis)
                .ok(),
            Some(1_700_000_060_000)
        );
        for (until, for_s, named) in [
            (None, None, "until, for_s"),
            (Some("1"), Some("1"), "until, for_s"),
            (Some("1600000000000"), None, "until"),
            (Some("\"tomorrow\""), None, "until"),
            (Some("1800000000000"), None, "until"),
            (None, Some("0"), "for_s"),
            (None, Some("2592001"), "for_s"),
            (None, Some("1.5"), "for_s"),
        ] {
            let u = until.map(v);
            let f = for_s.map(v);
            let e = shelf_end(u.as_ref(), f.as_ref(), now).expect_err("refused");
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
            let shown = format!("{e:?}");
            assert!(shown.contains(&format!("message: \"{named}:")), "{shown}");
        }
    }

    #[test]
    fn actors_and_reasons_are_checked() {
        assert_eq!(on_behalf("ann".into()).ok().as_deref(), Some("ann"));
        assert!(on_behalf(String::new()).is_err());
        assert!(on_behalf("x".repeat(65)).is_err());
        assert!(on_behalf("a\nb".into()).is_err());
        assert!(reason(None, true).is_err());
        assert!(reason(Some("  ".into()), true).is_err());
        assert!(reason(Some("é".repeat(500)), true).is_ok());
        assert!(reason(Some("x".repeat(501)), false).is_err());
        assert_eq!(reason(None, false).ok(), Some(None));
    }

    #[test]
    fn put_bodies_take_the_path_id_and_enabled() {
        let body = serde_json::json!({"severity": "low", "kind": {"type": "anomaly", "k": 1, "n": 2},
            "enabled": false});
        let (rule, enabled) = rule_of_body(body, "hot").expect("valid");
        assert_eq!((rule.id.as_str(), enabled), ("hot", false));
        let bad = serde_json::json!({"id": "cold", "severity": "low",
            "kind": {"type": "anomaly", "k": 1, "n": 2}});
        assert!(
            format!("{:?}", rule_of_body(bad, "hot").expect_err("other id")).contains("rule.id")
        );
        let bad =
            serde_json::json!({"severity": "low", "kind": {"type": "anomaly", "k": 3, "n": 2}});
        assert!(
            format!("{:?}", rule_of_body(bad, "hot").expect_err("k > n")).contains("rule.kind.k")
        );
    }
}
