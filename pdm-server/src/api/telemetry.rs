//! Telemetry: ingestion over HTTP and the queries of stored readings.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::{
    Batch, Catalog, DeadLetter, Origin, RangeQuery, RejectKind, SensorKey, Store, StoreError,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{Keys, MachinePath, PageRule, PagedQuery, RawSegment};
use crate::openapi::params::Machine;
use crate::openapi::PageParams;
use crate::state::{AppState, IngestState};
use crate::time::{parse_bucket, parse_range};
use crate::views::{views, BucketView, IngestReportView, LatestView, PointView};
use utoipa::ToSchema;

/// Most raw points or buckets one query returns.
pub const MAX_QUERY_LIMIT: u32 = 100_000;
const DEFAULT_QUERY_LIMIT: u32 = 1_000;
/// The range of a query without `from`: the hour before `to`.
pub const DEFAULT_RANGE_MS: i64 = 3_600_000;

/// Paging of `GET .../readings`: `limit` 1 to [`MAX_QUERY_LIMIT`], 1000 by default.
#[derive(Debug)]
pub struct ReadingsPage;

impl PageRule for ReadingsPage {
    const DEFAULT_LIMIT: u32 = DEFAULT_QUERY_LIMIT;
    const MAX_LIMIT: u32 = MAX_QUERY_LIMIT;
}

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(ingest, readings, latest))]
pub struct Doc;

/// A telemetry payload as the API description shows it: deliberately loose, since a bad reading
/// inside it is a dead letter, not a refused request.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum TelemetryBody {
    /// One reading.
    #[schema(value_type = Object)]
    One(serde_json::Value),
    /// Several.
    #[schema(value_type = Vec<Object>)]
    Many(Vec<serde_json::Value>),
}

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
///
/// The machine stays a raw path segment here: a bad key is not refused by the extractor but
/// kept as a `bad_key` dead letter, like any other bad input.
#[utoipa::path(post, path = "/machines/{machine}/telemetry", tag = "telemetry",
    params(("machine" = String, Path, description = "The machine's key (a bad one is kept as a `bad_key` dead letter)")),
    request_body(content = TelemetryBody, content_type = "application/json",
        description = "A telemetry payload, in the format of MQTT ingestion (docs/ingestion.md): \
            one reading `{\"ts\": ..., \"values\": {...}}` or an array of them. A bad reading \
            does not fail the request: it is kept as a dead letter and counted in the answer."),
    responses(
        (status = 202, description = "Stored; what was accepted and what rejected", body = IngestReportView)))]
async fn ingest(
    State(s): State<IngestState>,
    RawSegment(machine): RawSegment,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<IngestReportView>)> {
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
        let details = serde_json::to_value(IngestReportView::from(report)).unwrap_or_default();
        return Err(ApiError::new(status, ErrorCode::Rejected(kind), message).with_details(details));
    }
    s.sink.send_and_wait(prepared.batch).await.map_err(|_| {
        ApiError::unavailable("the server is shutting down; the payload was not stored")
    })?;
    Ok((StatusCode::ACCEPTED, Json(report.into())))
}

fn status_of(kind: RejectKind) -> StatusCode {
    ErrorCode::Rejected(kind).status()
}

/// Keeps the dead letter of a payload refused whole, then answers with its reason.
async fn reject_whole(s: &IngestState, letter: DeadLetter) -> ApiError {
    let err = ApiError::of(ErrorCode::Rejected(letter.kind), letter.reason.clone());
    let batch = Batch {
        readings: Vec::new(),
        dead_letters: vec![letter],
    };
    if let Err(e) = store_dead_letters(s, batch).await {
        tracing::warn!(error = ?e, "could not store dead letter");
    }
    err
}

async fn store_dead_letters(s: &IngestState, batch: Batch) -> ApiResult<()> {
    if batch.is_empty() {
        return Ok(());
    }
    s.sink
        .send_and_wait(batch)
        .await
        .map_err(|_| ApiError::unavailable("the server is shutting down"))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReadingsParams {
    /// The sensor.
    #[param(value_type = SensorKey)]
    sensor: String,
    /// Start (inclusive): RFC 3339 or epoch milliseconds; an hour before `to` when left out.
    #[param(schema_with = crate::openapi::time_param)]
    from: Option<String>,
    /// End (exclusive): RFC 3339 or epoch milliseconds; now when left out.
    #[param(schema_with = crate::openapi::time_param)]
    to: Option<String>,
    /// Bucket width (`10s`, `1m`, `1h`, ...): min, max, mean and count per bucket instead of
    /// the raw points.
    #[param(schema_with = crate::openapi::duration_param)]
    bucket: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ReadingsResponse {
    machine: String,
    sensor: String,
    from: i64,
    to: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    points: Option<Vec<PointView>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    buckets: Option<Vec<BucketView>>,
}

/// Readings of one sensor in `[from, to)`: raw points, or buckets with `bucket=1m`.
#[utoipa::path(get, path = "/machines/{machine}/readings", tag = "telemetry",
    params(Machine, ReadingsParams, PageParams<ReadingsPage>),
    responses((status = 200, description = "Points, or buckets with `bucket`", body = ReadingsResponse)))]
async fn readings(
    State(catalog): State<Arc<Catalog>>,
    State(store): State<Arc<dyn Store>>,
    Keys(machine): MachinePath,
    query: PagedQuery<ReadingsParams, ReadingsPage>,
) -> ApiResult<Json<ReadingsResponse>> {
    let p = query.params;
    let limit = query.page.limit;
    let sensor = SensorKey::new(&p.sensor).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let (from, to) = parse_range(p.from.as_deref(), p.to.as_deref(), DEFAULT_RANGE_MS)?;
    // 404 for an unknown sensor rather than an empty series that hides a typo.
    catalog.store().get_sensor(&machine, &sensor).await?;
    let q = RangeQuery {
        machine: machine.clone(),
        sensor: sensor.clone(),
        from,
        to,
        limit,
    };
    let mut resp = ReadingsResponse {
        machine: machine.as_str().to_owned(),
        sensor: sensor.as_str().to_owned(),
        from: from.as_millis(),
        to: to.as_millis(),
        bucket_ms: None,
        points: None,
        buckets: None,
    };
    match parse_bucket(p.bucket.as_deref())? {
        Some(width) => {
            resp.bucket_ms = Some(width);
            resp.buckets = Some(views(store.buckets(&q, width).await?));
        }
        None => resp.points = Some(views(store.raw(&q).await?)),
    }
    Ok(Json(resp))
}

#[derive(Debug, Serialize, ToSchema)]
struct LatestResponse {
    machine: String,
    values: Vec<LatestView>,
}

/// The latest value of each sensor of a machine.
#[utoipa::path(get, path = "/machines/{machine}/latest", tag = "telemetry", params(Machine),
    responses((status = 200, description = "The latest value of each sensor", body = LatestResponse)))]
async fn latest(
    State(catalog): State<Arc<Catalog>>,
    State(store): State<Arc<dyn Store>>,
    Keys(machine): MachinePath,
) -> ApiResult<Json<LatestResponse>> {
    match catalog.store().get_machine(&machine).await {
        Ok(_) => {}
        Err(StoreError::NotFound(what)) => {
            return Err(ApiError::not_found(format!("{what} not found")))
        }
        Err(e) => return Err(e.into()),
    }
    let values = views(store.latest(&machine).await?);
    Ok(Json(LatestResponse {
        machine: machine.as_str().to_owned(),
        values,
    }))
}
