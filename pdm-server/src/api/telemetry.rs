//! Telemetry: ingestion over HTTP and the queries of stored readings.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::{
    Batch, Bucket, DeadLetter, Latest, MachineKey, Origin, Point, RangeQuery, RejectKind,
    SensorKey, StoreError, Timestamp,
};
use pdm_ingest::IngestReport;
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::extract::{machine_key, sensor_key, QueryParams};
use crate::state::AppState;
use crate::time::{parse_duration_ms, parse_time};

/// Most raw points or buckets one query returns.
pub const MAX_QUERY_LIMIT: u32 = 100_000;
const DEFAULT_QUERY_LIMIT: u32 = 1_000;
const DEFAULT_RANGE_MS: i64 = 3_600_000;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/machines/{machine}/telemetry", post(ingest))
        .route("/machines/{machine}/readings", get(readings))
        .route("/machines/{machine}/latest", get(latest))
}

/// Takes a telemetry payload (same format as MQTT) and answers once its valid readings are
/// durably stored: 202 with the accepted and rejected counts and reasons; 400, 413 or 422 with
/// the reason when nothing of it could be taken. Every rejection is also kept as a dead letter.
async fn ingest(
    State(s): State<AppState>,
    Path(machine): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<IngestReport>)> {
    s.metrics.message(Origin::Http);
    let channel = format!("/api/v1/machines/{machine}/telemetry");
    let limit = s.intake.codec().max_payload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = |got: String| {
        DeadLetter::new(
            Origin::Http,
            channel.clone(),
            Some(machine.clone()),
            RejectKind::Oversized,
            format!("payload of {got} bytes exceeds the limit of {limit} bytes"),
            &[],
        )
    };
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(reject_whole(&s, too_large(n.to_string())).await);
    }
    // Reads at most `limit` bytes: a body without a (truthful) length cannot exhaust memory.
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return Err(reject_whole(&s, too_large(format!("more than {limit}"))).await),
    };
    let prepared = s
        .intake
        .prepare(Origin::Http, &channel, &machine, &bytes, Timestamp::now())
        .await?;
    let report = prepared.report;
    let refused = report.fatal.or_else(|| {
        (report.accepted == 0)
            .then(|| report.rejected.first().map(|r| r.kind))
            .flatten()
    });
    if let Some(kind) = refused {
        store_dead_letters(&s, prepared.batch).await?;
        let mut message = report
            .rejected
            .first()
            .map_or_else(|| "payload rejected".to_owned(), |r| r.reason.clone());
        if report.rejected.len() > 1 {
            message.push_str(&format!(
                " (and {} more problems)",
                report.rejected.len() - 1
            ));
        }
        let status = if report.fatal.is_some() {
            status_of(kind)
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let details = serde_json::to_value(&report).unwrap_or_default();
        return Err(ApiError::new(status, kind.as_str(), message).with_details(details));
    }
    s.sink.send_and_wait(prepared.batch).await.map_err(|_| {
        ApiError::unavailable("the server is shutting down; the payload was not stored")
    })?;
    Ok((StatusCode::ACCEPTED, Json(report)))
}

fn status_of(kind: RejectKind) -> StatusCode {
    match kind {
        RejectKind::Oversized => StatusCode::PAYLOAD_TOO_LARGE,
        RejectKind::Malformed => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// Keeps the dead letter of a payload refused whole, then answers with its reason.
async fn reject_whole(s: &AppState, letter: DeadLetter) -> ApiError {
    let err = ApiError::new(
        status_of(letter.kind),
        letter.kind.as_str(),
        letter.reason.clone(),
    );
    let batch = Batch {
        readings: Vec::new(),
        dead_letters: vec![letter],
    };
    if let Err(e) = store_dead_letters(s, batch).await {
        tracing::warn!(error = ?e, "could not store dead letter");
    }
    err
}

async fn store_dead_letters(s: &AppState, batch: Batch) -> ApiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    s.sink
        .send_and_wait(batch)
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadingsParams {
    sensor: String,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    bucket: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReadingsResponse {
    machine: MachineKey,
    sensor: SensorKey,
    from: Timestamp,
    to: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<Point>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<Bucket>>,
}

/// Readings of one sensor in `[from, to)`: raw points, or buckets with `bucket=1m`.
async fn readings(
    State(s): State<AppState>,
    Path(machine): Path<String>,
    QueryParams(p): QueryParams<ReadingsParams>,
) -> ApiResult<Json<ReadingsResponse>> {
    let machine = machine_key(&machine)?;
    let sensor = sensor_key(&p.sensor)?;
    let to = match &p.to {
        Some(t) => parse_time(t).map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => Timestamp::now().add_millis(1),
    };
    let from = match &p.from {
        Some(t) => parse_time(t).map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => to.add_millis(-DEFAULT_RANGE_MS),
    };
    if from >= to {
        return Err(ApiError::bad_request("from must be earlier than to"));
    }
    let limit = p.limit.unwrap_or(DEFAULT_QUERY_LIMIT);
    if limit == 0 || limit > MAX_QUERY_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_QUERY_LIMIT}"
        )));
    }
    // 404 for an unknown sensor rather than an empty series that hides a typo.
    s.catalog.store().get_sensor(&machine, &sensor).await?;
    let q = RangeQuery {
        machine: machine.clone(),
        sensor: sensor.clone(),
        from,
        to,
        limit,
    };
    let mut resp = ReadingsResponse {
        machine,
        sensor,
        from,
        to,
        bucket_ms: None,
        points: None,
        buckets: None,
    };
    match &p.bucket {
        Some(b) => {
            let width =
                parse_duration_ms(b).map_err(|e| ApiError::bad_request(format!("bucket: {e}")))?;
            resp.bucket_ms = Some(width);
            resp.buckets = Some(s.telemetry.buckets(&q, width).await?);
        }
        None => resp.points = Some(s.telemetry.raw(&q).await?),
    }
    Ok(Json(resp))
}

#[derive(Debug, Serialize)]
struct LatestResponse {
    machine: MachineKey,
    values: Vec<Latest>,
}

/// The latest value of each sensor of a machine.
async fn latest(
    State(s): State<AppState>,
    Path(machine): Path<String>,
) -> ApiResult<Json<LatestResponse>> {
    let machine = machine_key(&machine)?;
    match s.catalog.store().get_machine(&machine).await {
        Ok(_) => {}
        Err(StoreError::NotFound(what)) => {
            return Err(ApiError::not_found(format!("{what} not found")))
        }
        Err(e) => return Err(e.into()),
    }
    let values = s.telemetry.latest(&machine).await?;
    Ok(Json(LatestResponse { machine, values }))
}
