//! The layers every request goes through, outermost first:
//!
//! 1. request id: an `x-request-id` is set when the client sent none (a UUID v4);
//! 2. tracing: one span per request with method, matched route and request id, and status and
//!    latency recorded when it is answered (a `debug` event "answered");
//! 3. the request id is copied to the response;
//! 4. HTTP metrics: count and latency per method, matched route and status class;
//! 5. timeout: a request not answered within the configured time gets a 503 `timeout` JSON
//!    error;
//! 6. security headers on every answer ([`SECURITY_HEADERS`]): no sniffing, no framing, no
//!    referrer, no caching of API answers, a content security policy that allows nothing (the
//!    API serves data, not pages; the docs pages have their own). CORS only for the origins of
//!    `cors_origins` ([`cors`]): browsers on other origins are refused. Bodies are limited by axum's default (2 MiB per JSON body; telemetry and model
//!    imports have their own limits).
//!
//! 5xx answers are logged by [`ApiError`](crate::error::ApiError) inside the span, so the
//! tracing layer logs no failures of its own.
//!
//! The timeout and ingestion: a telemetry payload is written by the engine's writer task, not
//! by the request; dropping a timed-out request never cuts a write in the middle. It can only
//! drop the answer: the payload may then be stored without the client knowing, and the client,
//! told 503, sends it again, which stores nothing twice (writes are idempotent). Nothing that
//! was acknowledged (answered 202) is lost.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, Response};
use axum::middleware::{self, Next};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::error::{ApiError, ErrorCode};
use crate::state::MetricsState;

/// The request-id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long a request may take unless configured otherwise.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Wraps every route of `router` (so that the matched route is known) in the layers above.
pub fn apply(router: Router, metrics: MetricsState, timeout: Duration) -> Router {
    router
        .layer(middleware::from_fn_with_state(timeout, time_limit))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(metrics, record))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                .on_request(())
                .on_response(answered)
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(refuse_unusable_request_id))
}

/// One origin of `cors_origins`: `scheme://host[:port]`, nothing more (no path, no wildcard).
pub fn cors_origin(origin: &str) -> Result<axum::http::HeaderValue, String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} must start with https:// or http://"))?;
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(format!(
            "{origin:?} must be scheme://host[:port] exactly (no path, no trailing slash, no wildcard)"
        ));
    }
    axum::http::HeaderValue::from_str(origin).map_err(|e| format!("{origin:?}: {e}"))
}

/// CORS for `origins` (checked by [`cors_origin`]): the API's methods, the headers a client
/// sends (`Authorization`, `Content-Type`, `Last-Event-ID`, `If-Match`) and the ones it reads;
/// no cookies (credentials are bearer tokens). `None` when there are no origins.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, Method};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let list: Vec<_> = origins.iter().filter_map(|o| cors_origin(o).ok()).collect();
    if list.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(list))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER, header::ETAG, header::ALLOW])
            .max_age(Duration::from_secs(600)),
    )
}

/// Longest request id taken from a client.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's `x-request-id` goes into every log line of its request, so only a short id of
/// `[A-Za-z0-9._-]` is kept; any other is replaced by a new one (the answer carries it).
async fn refuse_unusable_request_id(mut req: Request, next: Next) -> Response<Body> {
    let usable = |v: &axum::http::HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_LEN
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    };
    if req.headers().get(&REQUEST_ID).is_some_and(|v| !usable(v)) {
        req.headers_mut().remove(&REQUEST_ID);
    }
    next.run(req).await
}

/// The headers every answer carries (a handler's own value of one is kept).
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("cache-control", "no-store"),
];

async fn security_headers(req: Request, next: Next) -> Response<Body> {
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(
                HeaderName::from_static(name),
                axum::http::HeaderValue::from_static(value),
            );
        }
    }
    res
}

fn route(req: &Request) -> Option<&str> {
    req.extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

fn span(req: &Request) -> Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = route(req).unwrap_or("unmatched"),
        request_id = id,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn answered(res: &Response<Body>, latency: Duration, span: &Span) {
    span.record("status", res.status().as_u16());
    // Whole microseconds, shown as milliseconds: `1.421`, not `1.421541000000001`.
    let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
    span.record("latency_ms", f64::from(micros) / 1000.0);
    tracing::debug!("answered");
}

async fn record(State(m): State<MetricsState>, req: Request, next: Next) -> Response<Body> {
    let method = req.method().clone();
    let route = route(&req).map(str::to_owned);
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    m.http
        .record(&method, route.as_deref(), res.status(), start.elapsed());
    res
}

async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response<Body> {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => axum::response::IntoResponse::into_response(ApiError::of(
            ErrorCode::Timeout,
            format!(
                "the request was not answered within {} ms; retry later",
                limit.as_millis()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn slow_requests_get_the_json_timeout() {
        let (registry, http) = crate::metrics::test_registry();
        let metrics = MetricsState {
            registry: std::sync::Arc::new(registry),
            http,
            push: crate::metrics::PushMetrics::default(),
        };
        let app = apply(
            Router::new()
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        "late"
                    }),
                )
                .route("/fast", get(|| async { "ok" })),
            metrics.clone(),
            Duration::from_millis(50),
        );
        let req = Request::get("/slow")
            .header("x-request-id", "abc-1")
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some("abc-1"),
            "a given request id is propagated"
        );
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        let res = app
            .oneshot(Request::get("/fast").body(Body::empty()).expect("request"))
            .await
            .expect("infallible");
        assert_eq!(res.status(), StatusCode::OK);
        for (name, value) in SECURITY_HEADERS {
            assert_eq!(
                res.headers().get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name}"
            );
        }
        let id = res
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(id.len(), 36, "a missing id is made: {id:?}");
        let text = crate::metrics::encode(&metrics.registry).expect("encode");
        assert!(
            text.contains(
                "pdm_http_requests_total{method=\"GET\",route=\"/slow\",status=\"5xx\"} 1"
            ),
            "{text}"
        );
    }
}
