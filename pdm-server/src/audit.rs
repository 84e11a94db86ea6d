//! The audit log: every change made through the API (every request but reads and telemetry),
//! every request refused for want of a permission, every sign-in and failed sign-in; with who,
//! their role, what, on what, the names of the fields sent (never their values), from where,
//! when and the status answered. Written by [`record`] (a layer inside the access check) and
//! by the sign-in and access code; read at `GET /api/v1/audit`; append-only; pruned after
//! `audit.retention_days`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use pdm_core::store::NewAuditEntry;
use pdm_core::{Store, Timestamp};
use serde::Deserialize;

use crate::auth::Principal;
use crate::state::AppState;

/// Largest body whose field names are read (the JSON body limit); a larger one is audited
/// without its fields.
const MAX_FIELDS_BODY: usize = 2 << 20;

/// What a handler changed, with values, for its audit entry (a response extension): in place of
/// the body's field names. Only for changes without secrets (the system settings).
#[derive(Debug, Clone)]
pub struct Changed(pub Vec<String>);

/// `[audit]`: the audit log's retention.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Days an entry is kept (1 to 36500).
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention_days: 365,
        }
    }
}

impl AuditConfig {
    /// Refuses settings that cannot work, naming them.
    pub fn check(&self) -> Result<(), crate::config::ConfigError> {
        if !(1..=36_500).contains(&self.retention_days) {
            return Err(crate::config::ConfigError::new(
                "audit.retention_days",
                "must be 1 to 36500 days",
            ));
        }
        Ok(())
    }
}

/// Appends `entry`; a failure is logged (the request it records has been answered already).
pub async fn append(store: &dyn Store, entry: NewAuditEntry) {
    if let Err(e) = store.record_audit(&entry).await {
        tracing::warn!(error = %e, action = %entry.action, "cannot write the audit log");
    }
}

/// The names of the top-level fields of a JSON object body, sorted; none for anything else.
pub fn field_names(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(m)) => {
            let mut names: Vec<String> = m.keys().map(|k| k.chars().take(64).collect()).collect();
            names.sort();
            names.truncate(64);
            names
        }
        _ => Vec::new(),
    }
}

/// `POST /work-orders/{id}` of a request: its method and route (without `/api/v1`).
pub fn action(method: &Method, route: &str) -> String {
    format!(
        "{method} {}",
        route.strip_prefix("/api/v1").unwrap_or(route)
    )
}

/// The path a request acted on, without `/api/v1/` (`work-orders/5`).
pub fn target(path: &str) -> Option<String> {
    let t = path
        .strip_prefix("/api/v1/")
        .unwrap_or(path)
        .trim_matches('/');
    (!t.is_empty()).then(|| t.chars().take(512).collect())
}

/// The layer that audits every request but reads and telemetry, after the access check (so
/// its principal is known).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let skip = matches!(method, Method::GET | Method::HEAD | Method::OPTIONS)
        || route.ends_with("/telemetry")
        || route.ends_with("/auth/login"); // audited by the sign-in itself
    if skip {
        return next.run(req).await;
    }
    let principal = req.extensions().get::<Principal>().cloned();
    let path = req.uri().path().to_owned();
    let json = crate::extract::is_json(req.headers());
    let (parts, body) = req.into_parts();
    let client = crate::api::auth::client_of(&parts, &state.auth);
    let (fields, body) = if json {
        match axum::body::to_bytes(body, MAX_FIELDS_BODY).await {
            Ok(bytes) => (field_names(&bytes), Body::from(bytes)),
            // Over the JSON limit (or unreadable): refused here, never passed on cut.
            Err(_) => {
                return crate::error::ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    crate::error::ErrorCode::BadRequest,
                    format!("a JSON body is at most {MAX_FIELDS_BODY} bytes"),
                )
                .into_response();
            }
        }
    } else {
        (Vec::new(), body)
    };
    let resp = next.run(Request::from_parts(parts, body)).await;
    let fields = match resp.extensions().get::<Changed>() {
        Some(c) => c.0.clone(),
        None => fields,
    };
    let (actor, role) = match &principal {
        Some(p) => (p.actor_name(), Some(p.role.clone())),
        None => ("anonymous".to_owned(), None),
    };
    append(
        &*state.store,
        NewAuditEntry {
            at: Timestamp::now(),
            actor,
            role,
            action: action(&method, &route),
            target: target(&path),
            fields,
            client_addr: client,
            status: resp.status().as_u16(),
        },
    )
    .await;
    resp
}

/// Deletes entries older than the `audit.retention_days` setting, hourly, until `stop`.
pub async fn prune(
    store: Arc<dyn Store>,
    settings: crate::settings::SettingsHandle,
    mut stop: pdm_core::Shutdown,
) {
    loop {
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(3_600)) => {}
        }
        // The `audit.retention_days` setting in force at each pass.
        let retention_days = settings.current().audit.retention_days;
        let before = Timestamp::now().add_millis(-i64::from(retention_days) * 86_400_000);
        match store.prune_audit(before).await {
            Ok(n) if n > 0 => tracing::info!(entries = n, "audit log pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune the audit log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_field_names_are_kept() {
        let names = field_names(br#"{"password": "hunter2 secret", "email": "a@b", "n": 1}"#);
        assert_eq!(names, ["email", "n", "password"]);
        assert!(field_names(b"[1, 2]").is_empty());
        assert!(field_names(b"not json").is_empty());
        assert_eq!(
            action(&Method::PATCH, "/api/v1/work-orders/{id}"),
            "PATCH /work-orders/{id}"
        );
        assert_eq!(
            target("/api/v1/work-orders/5").as_deref(),
            Some("work-orders/5")
        );
    }
}
