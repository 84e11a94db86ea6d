//! What every route needs, in one place: method, path (as the router declares it, under
//! `/api/v1`) and [`Access`]. A route that is not here answers 500 and fails
//! `every_route_declares_its_access`; a row without a route fails it too.

use pdm_core::store::Permission;
use Permission::*;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Nobody needs to be signed in (sign-in itself, refresh, password reset).
    Public,
    /// Any signed-in user or token (about oneself: `/auth/me`, one's sessions, logout).
    Signed,
    /// This permission.
    Need(Permission),
}

use Access::{Need, Public, Signed};

/// Every route of `/api/v1`: (method, path, access).
pub const POLICY: &[(&str, &str, Access)] = &[
    // The API's description (no data in it).
    ("GET", "/openapi.json", Public),
    // Sign-in and oneself.
    ("POST", "/auth/login", Public),
    ("POST", "/auth/refresh", Public),
    ("POST", "/auth/logout", Signed),
    ("GET", "/auth/me", Signed),
    ("GET", "/auth/sessions", Signed),
    ("DELETE", "/auth/sessions/{id}", Signed),
    ("POST", "/auth/password", Signed),
    ("POST", "/auth/ticket", Signed),
    ("POST", "/auth/password-reset", Public),
    ("POST", "/auth/password-reset/confirm", Public),
    // People, roles, tokens.
    ("GET", "/users", Need(UsersManage)),
    ("POST", "/users", Need(UsersManage)),
    ("GET", "/users/{id}", Need(UsersManage)),
    ("PATCH", "/users/{id}", Need(UsersManage)),
    ("GET", "/users/{id}/sessions", Need(UsersManage)),
    ("POST", "/users/{id}/sessions/revoke", Need(UsersManage)),
    ("GET", "/roles", Need(UsersManage)),
    ("GET", "/roles/{name}", Need(UsersManage)),
    ("PUT", "/roles/{name}", Need(UsersManage)),
    ("DELETE", "/roles/{name}", Need(UsersManage)),
    ("GET", "/tokens", Need(TokensManage)),
    ("POST", "/tokens", Need(TokensManage)),
    ("DELETE", "/tokens/{id}", Need(TokensManage)),
    // Machines and sensors.
    ("GET", "/machines", Need(MachinesRead)),
    ("POST", "/machines", Need(MachinesWrite)),
    ("GET", "/machines/{machine}", Need(MachinesRead)),
    ("PATCH", "/machines/{machine}", Need(MachinesWrite)),
    ("DELETE", "/machines/{machine}", Need(MachinesWrite)),
    ("GET", "/machines/{machine}/sensors", Need(MachinesRead)),
    ("POST", "/machines/{machine}/sensors", Need(MachinesWrite)),
    (
        "GET",
        "/machines/{machine}/sensors/{sensor}",
        Need(MachinesRead),
    ),
    (
        "PATCH",
        "/machines/{machine}/sensors/{sensor}",
        Need(MachinesWrite),
    ),
    (
        "DELETE",
        "/machines/{machine}/sensors/{sensor}",
        Need(MachinesWrite),
    ),
    // Telemetry, predictions, live status, push.
    (
        "POST",
        "/machines/{machine}/telemetry",
        Need(TelemetryWrite),
    ),
    ("GET", "/machines/{machine}/readings", Need(MachinesRead)),
    ("GET", "/machines/{machine}/latest", Need(MachinesRead)),
    ("GET", "/machines/{machine}/predictions", Need(MachinesRead)),
    ("GET", "/machines/{machine}/live", Need(MachinesRead)),
    ("GET", "/events", Need(MachinesRead)),
    ("GET", "/ws", Need(MachinesRead)),
    // Models and jobs.
    ("GET", "/models", Need(ModelsRead)),
    ("GET", "/models/{id}", Need(ModelsRead)),
    ("GET", "/models/{id}/file", Need(ModelsRead)),
    ("POST", "/models/{id}/activate", Need(ModelsWrite)),
    ("POST", "/machines/{machine}/models", Need(ModelsWrite)),
    (
        "POST",
        "/machines/{machine}/models/import",
        Need(ModelsWrite),
    ),
    ("GET", "/jobs", Need(ModelsRead)),
    ("GET", "/jobs/{id}", Need(ModelsRead)),
    ("POST", "/jobs/{id}/cancel", Need(ModelsWrite)),
    ("POST", "/jobs/{id}/retry", Need(ModelsWrite)),
    // Alarms, rules, service.
    ("GET", "/alarms", Need(AlarmsRead)),
    ("GET", "/alarms/performance", Need(AlarmsRead)),
    ("GET", "/alarms/precision", Need(AlarmsRead)),
    ("GET", "/alarms/{id}", Need(AlarmsRead)),
    ("POST", "/alarms/{id}/ack", Need(AlarmsAct)),
    ("POST", "/alarms/{id}/shelve", Need(AlarmsAct)),
    ("POST", "/alarms/{id}/unshelve", Need(AlarmsAct)),
    ("GET", "/alarm-rules", Need(AlarmsRead)),
    ("GET", "/alarm-rules/{rule}", Need(AlarmsRead)),
    ("PUT", "/alarm-rules/{rule}", Need(AlarmRulesWrite)),
    ("DELETE", "/alarm-rules/{rule}", Need(AlarmRulesWrite)),
    ("GET", "/machines/{machine}/alarm-rules", Need(AlarmsRead)),
    (
        "GET",
        "/machines/{machine}/alarm-rules/{rule}",
        Need(AlarmsRead),
    ),
    (
        "PUT",
        "/machines/{machine}/alarm-rules/{rule}",
        Need(AlarmRulesWrite),
    ),
    (
        "DELETE",
        "/machines/{machine}/alarm-rules/{rule}",
        Need(AlarmRulesWrite),
    ),
    (
        "POST",
        "/machines/{machine}/out-of-service",
        Need(AlarmsAct),
    ),
    (
        "DELETE",
        "/machines/{machine}/out-of-service",
        Need(AlarmsAct),
    ),
    ("GET", "/out-of-service", Need(AlarmsRead)),
    // Webhooks.
    ("GET", "/webhooks", Need(WebhooksRead)),
    ("POST", "/webhooks", Need(WebhooksWrite)),
    ("GET", "/webhooks/{id}", Need(WebhooksRead)),
    ("PATCH", "/webhooks/{id}", Need(WebhooksWrite)),
    ("DELETE", "/webhooks/{id}", Need(WebhooksWrite)),
    ("POST", "/webhooks/{id}/rotate-secret", Need(WebhooksWrite)),
    ("POST", "/webhooks/{id}/test", Need(WebhooksWrite)),
    ("GET", "/webhooks/{id}/deliveries", Need(WebhooksRead)),
    (
        "POST",
        "/webhooks/{id}/deliveries/{delivery}/redeliver",
        Need(WebhooksWrite),
    ),
    // Work orders.
    ("GET", "/work-orders", Need(WorkOrdersRead)),
    ("POST", "/work-orders", Need(WorkOrdersWrite)),
    ("GET", "/work-orders/{id}", Need(WorkOrdersRead)),
    ("PATCH", "/work-orders/{id}", Need(WorkOrdersWrite)),
    ("GET", "/work-orders/{id}/history", Need(WorkOrdersRead)),
    ("POST", "/alarms/{id}/work-order", Need(WorkOrdersWrite)),
    ("GET", "/work-order-codes", Need(WorkOrdersRead)),
    (
        "PUT",
        "/work-order-codes/{kind}/{code}",
        Need(WorkOrderCodesWrite),
    ),
    // Comments.
    ("GET", "/work-orders/{id}/comments", Need(WorkOrdersRead)),
    ("POST", "/work-orders/{id}/comments", Need(CommentsWrite)),
    ("GET", "/alarms/{id}/comments", Need(AlarmsRead)),
    ("POST", "/alarms/{id}/comments", Need(CommentsWrite)),
    ("PATCH", "/comments/{id}", Need(CommentsWrite)),
    ("DELETE", "/comments/{id}", Need(CommentsWrite)),
    // Attachments.
    ("GET", "/work-orders/{id}/attachments", Need(WorkOrdersRead)),
    (
        "POST",
        "/work-orders/{id}/attachments",
        Need(AttachmentsWrite),
    ),
    (
        "GET",
        "/work-orders/{id}/attachments/{attachment}",
        Need(WorkOrdersRead),
    ),
    (
        "DELETE",
        "/work-orders/{id}/attachments/{attachment}",
        Need(AttachmentsWrite),
    ),
    ("GET", "/alarms/{id}/attachments", Need(AlarmsRead)),
    ("POST", "/alarms/{id}/attachments", Need(AttachmentsWrite)),
    (
        "GET",
        "/alarms/{id}/attachments/{attachment}",
        Need(AlarmsRead),
    ),
    (
        "DELETE",
        "/alarms/{id}/attachments/{attachment}",
        Need(AttachmentsWrite),
    ),
    ("POST", "/comments/{id}/attachments", Need(AttachmentsWrite)),
    ("GET", "/attachments/usage", Need(OpsRead)),
    // The overview (its alarm and work-order sections need their own read permissions).
    ("GET", "/dashboard", Need(MachinesRead)),
    // System settings.
    ("GET", "/settings", Need(SettingsManage)),
    ("PATCH", "/settings", Need(SettingsManage)),
    // Operations.
    ("GET", "/dead-letters", Need(OpsRead)),
    ("GET", "/audit", Need(AuditRead)),
];

/// Permissions that guard no route of their own but widen what a route lets its caller do
/// (checked by the handler): `comments:moderate` lets `PATCH`/`DELETE /comments/{id}` change
/// anyone's comment (and attach files to it), `attachments:moderate` lets `DELETE
/// .../attachments/{attachment}` delete anyone's attachment, not only one's own.
pub const WIDENING: &[Permission] = &[CommentsModerate, AttachmentsModerate];

/// The permission reading a work order or an alarm needs; writing on it (a comment, an
/// attachment) needs it too, so that a role cannot act on what it may not see.
pub fn read_of(owner: pdm_core::attachment::AttachmentOwner) -> Permission {
    match owner {
        pdm_core::attachment::AttachmentOwner::WorkOrder(_) => WorkOrdersRead,
        pdm_core::attachment::AttachmentOwner::Alarm(_) => AlarmsRead,
    }
}

/// The access of `method` on `path` (with or without the `/api/v1` prefix); `HEAD` is `GET`'s.
pub fn access(method: &str, path: &str) -> Option<Access> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let method = if method == "HEAD" { "GET" } else { method };
    POLICY
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, a)| *a)
}

/// The methods `path` (with or without the `/api/v1` prefix) has; `HEAD` where it has `GET`.
pub fn methods(path: &str) -> Vec<&'static str> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let mut out: Vec<&'static str> = POLICY
        .iter()
        .filter(|(_, p, _)| *p == path)
        .map(|(m, _, _)| *m)
        .collect();
    if out.contains(&"GET") {
        out.push("HEAD");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in POLICY {
            assert!(seen.insert((m, p)), "{m} {p} twice");
        }
        assert_eq!(access("GET", "/api/v1/machines"), Some(Need(MachinesRead)));
        assert_eq!(access("HEAD", "/machines"), Some(Need(MachinesRead)));
        assert_eq!(access("PUT", "/machines"), None);
        assert_eq!(methods("/api/v1/machines"), ["GET", "POST", "HEAD"]);
        assert!(methods("/nowhere").is_empty());
    }
}
