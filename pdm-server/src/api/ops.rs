//! Operations: health probes, metrics and dead letters.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use pdm_core::{DeadLetterQuery, RejectKind, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::state::AppState;

/// Probes and metrics, served at the root (outside the versioned API, and outside any auth).
pub fn root_router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Dead letters, under the versioned API.
pub fn api_router() -> Router<AppState> {
    Router::new().route("/dead-letters", get(dead_letters))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready only when the database answers.
async fn ready(State(s): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match s.telemetry.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ok", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unavailable" })),
            )
        }
    }
}

/// Prometheus text exposition of the ingestion counters.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let m = s.metrics.snapshot();
    let mut out = String::with_capacity(2048);
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "pdm_readings_received_total",
        "Valid readings handed to the engine.",
        m.readings_received,
    );
    counter(
        "pdm_readings_stored_total",
        "Readings newly stored.",
        m.readings_stored,
    );
    counter(
        "pdm_readings_duplicate_total",
        "Readings skipped as already stored.",
        m.readings_duplicate,
    );
    counter(
        "pdm_store_batches_total",
        "Store transactions committed.",
        m.batches_written,
    );
    counter(
        "pdm_store_write_errors_total",
        "Store writes that failed and were retried.",
        m.write_errors,
    );
    counter(
        "pdm_store_write_seconds_total",
        "Time spent in committed store writes, in whole seconds.",
        m.write_micros_total / 1_000_000,
    );
    counter(
        "pdm_dead_letters_pruned_total",
        "Dead letters deleted by retention.",
        m.dead_letters_pruned,
    );
    counter(
        "pdm_readings_pruned_total",
        "Readings deleted by retention.",
        m.readings_pruned,
    );
    counter(
        "pdm_retention_errors_total",
        "Retention deletes that failed (tried again at the next pass).",
        m.retention_errors,
    );
    let _ = writeln!(
        out,
        "# HELP pdm_messages_total Input messages by origin.\n# TYPE pdm_messages_total counter"
    );
    for (origin, n) in [
        ("mqtt", m.messages_mqtt),
        ("http", m.messages_http),
        ("other", m.messages_other),
    ] {
        let _ = writeln!(out, "pdm_messages_total{{origin=\"{origin}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP pdm_dead_letters_total Rejected inputs by reason.\n# TYPE pdm_dead_letters_total counter"
    );
    for (kind, n) in &m.dead_letters {
        let _ = writeln!(
            out,
            "pdm_dead_letters_total{{reason=\"{}\"}} {n}",
            kind.as_str()
        );
    }
    let queued = s.sink.max_capacity() - s.sink.capacity();
    let _ = writeln!(
        out,
        "# HELP pdm_ingest_queue_depth Batches waiting for the writer.\n# TYPE pdm_ingest_queue_depth gauge\npdm_ingest_queue_depth {queued}"
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterParams {
    machine: Option<String>,
    kind: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct DeadLetterView {
    id: i64,
    received_at: Timestamp,
    origin: &'static str,
    channel: String,
    machine: Option<String>,
    kind: RejectKind,
    reason: String,
    /// The payload's first bytes, as text (invalid UTF-8 replaced).
    payload_head: String,
}

async fn dead_letters(
    State(s): State<AppState>,
    QueryParams(p): QueryParams<DeadLetterParams>,
) -> ApiResult<Json<Vec<DeadLetterView>>> {
    let kind = match p.kind.as_deref() {
        None => None,
        Some(k) => Some(RejectKind::parse(k).ok_or_else(|| {
            let all: Vec<&str> = RejectKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::bad_request(format!("unknown kind {k:?}; one of {}", all.join(", ")))
        })?),
    };
    let limit = p.limit.unwrap_or(100).clamp(1, 10_000);
    let q = DeadLetterQuery {
        machine: p.machine,
        kind,
        limit,
    };
    let rows = s.catalog.store().dead_letters(&q).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| DeadLetterView {
                id: r.id,
                received_at: r.letter.received_at,
                origin: r.letter.origin.as_str(),
                channel: r.letter.channel,
                machine: r.letter.machine,
                kind: r.letter.kind,
                reason: r.letter.reason,
                payload_head: String::from_utf8_lossy(&r.letter.payload_head).into_owned(),
            })
            .collect(),
    ))
}
