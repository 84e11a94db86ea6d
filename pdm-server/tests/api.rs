//! The HTTP API through `app()`, on SQLite and on PostgreSQL.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{now_ms, TestApp};
use serde_json::{json, Value};

on_both_backends!(
    machines_and_sensors_crud,
    ingest_then_query_exact,
    bad_http_input_is_refused_and_kept,
    scaffolding_on_the_wire,
    lists_page_with_a_cursor
);

/// The lists that used to answer everything page like the others: `limit`, and `cursor` = the
/// last key or id of the previous page.
async fn lists_page_with_a_cursor(app: TestApp) {
    for key in ["c", "a", "b"] {
        let (st, v) = app
            .post("/api/v1/machines", &json!({ "key": key }).to_string())
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let keys = |v: &Value, field: &str| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|m| m[field].to_string().trim_matches('"').to_owned())
            .collect()
    };
    let (st, v) = app.get("/api/v1/machines?limit=2").await;
    assert_eq!(
        (st, keys(&v, "key")),
        (StatusCode::OK, vec!["a".into(), "b".into()])
    );
    let (st, v) = app.get("/api/v1/machines?limit=2&cursor=b").await;
    assert_eq!(
        (st, keys(&v, "key")),
        (StatusCode::OK, vec!["c".to_owned()])
    );
    let (st, v) = app.get("/api/v1/machines?cursor=c").await;
    assert_eq!((st, v), (StatusCode::OK, json!([])));
    for bad in [
        "/api/v1/machines?cursor=Not%20a%20key",
        "/api/v1/machines?limit=1001",
    ] {
        let (st, v) = app.get(bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }

    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        let (st, v) = app
            .post(
                "/api/v1/tokens",
                &json!({"name": name, "role": "viewer"}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_i64().expect("id"));
    }
    let (_, all) = app.get("/api/v1/tokens").await;
    let names = keys(&all, "name");
    assert!(
        names.ends_with(&["one".into(), "two".into(), "three".into()]),
        "{names:?}"
    );
    let (st, v) = app.get("/api/v1/tokens?limit=2").await;
    assert_eq!(
        (st, keys(&v, "name")),
        (StatusCode::OK, names[..2].to_vec())
    );
    let (st, v) = app.get(&format!("/api/v1/tokens?cursor={}", ids[1])).await;
    assert_eq!(
        (st, keys(&v, "name")),
        (StatusCode::OK, vec!["three".to_owned()])
    );
    let (st, v) = app.get("/api/v1/tokens?cursor=-1").await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");

    let (st, v) = app.get("/api/v1/webhooks?limit=1").await;
    assert_eq!((st, v), (StatusCode::OK, json!([])));

    // Dead letters continue newest first from the last id.
    let (st, _) = app
        .post("/api/v1/machines/a/telemetry", "not json at all")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = app.post("/api/v1/machines/a/telemetry", "{}").await;
    assert!(st.is_client_error(), "{st}");
    let (_, all) = app.get("/api/v1/dead-letters").await;
    let all = all.as_array().expect("list").clone();
    assert!(all.len() >= 2, "{all:?}");
    let (st, page) = app
        .get(&format!("/api/v1/dead-letters?cursor={}", all[0]["id"]))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page.as_array().expect("list")[..], all[1..]);
    app.stop().await;
}

async fn machines_and_sensors_crud(app: TestApp) {
    let s = &app;

    let (st, m) = s
        .post(
            "/api/v1/machines",
            r#"{"key":"pump-1","name":"Feed pump","kind":"pump"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{m}");
    assert_eq!(m["key"], "pump-1");
    assert_eq!(m["name"], "Feed pump");
    let (st, e) = s.post("/api/v1/machines", r#"{"key":"pump-1"}"#).await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("pump-1"),
        "{e}"
    );
    let (st, e) = s.post("/api/v1/machines", r#"{"key":"Pump 1"}"#).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("machine key"),
        "{e}"
    );
    let (st, e) = s
        .post("/api/v1/machines", r#"{"key":"pump-2","nmae":"typo"}"#)
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("nmae"),
        "{e}"
    );
    let (st, _) = s.post("/api/v1/machines", "{not json").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, m) = s
        .patch(
            "/api/v1/machines/pump-1",
            r#"{"name":"Pump one","kind":null}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{m}");
    assert_eq!(m["name"], "Pump one");
    assert_eq!(m["kind"], Value::Null);
    let (st, list) = s.get("/api/v1/machines").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let (st, _) = s.get("/api/v1/machines/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get("/api/v1/machines/BAD%20KEY").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    let (st, e) = s
        .post(
            "/api/v1/machines/pump-1/sensors",
            r#"{"key":"temperature","min":10,"max":5}"#,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap_or("").contains("min"),
        "{e}"
    );
    let (st, sensor) = s
        .post(
            "/api/v1/machines/pump-1/sensors",
            r#"{"key":"temperature","unit":"degC","min":-20,"max":150}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{sensor}");
    assert_eq!(sensor["unit"], "degC");
    let (st, _) = s
        .post(
            "/api/v1/machines/pump-1/sensors",
            r#"{"key":"temperature"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = s
        .post("/api/v1/machines/nope/sensors", r#"{"key":"temperature"}"#)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, sensor) = s
        .patch(
            "/api/v1/machines/pump-1/sensors/temperature",
            r#"{"max":null,"unit":"K"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{sensor}");
    assert_eq!(
        (
            sensor["unit"].clone(),
            sensor["max"].clone(),
            sensor["min"].clone()
        ),
        (json!("K"), Value::Null, json!(-20.0))
    );
    let (st, _) = s
        .patch(
            "/api/v1/machines/pump-1/sensors/temperature",
            r#"{"max":-30}"#,
        )
        .await;
    assert_eq!(
        st,
        StatusCode::UNPROCESSABLE_ENTITY,
        "max below the existing min"
    );
    let (st, list) = s.get("/api/v1/machines/pump-1/sensors").await;
    assert_eq!(
        (st, list.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (st, _) = s
        .delete("/api/v1/machines/pump-1/sensors/temperature")
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get("/api/v1/machines/pump-1/sensors/temperature").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.delete("/api/v1/machines/pump-1").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = s.get("/api/v1/machines/pump-1").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.get("/api/v1/no-such-route").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn register(s: &TestApp, machine: &str, sensors: &[(&str, Option<f64>, Option<f64>)]) {
    let (st, body) = s
        .post("/api/v1/machines", &json!({ "key": machine }).to_string())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    for (key, min, max) in sensors {
        let body = json!({ "key": key, "min": min, "max": max }).to_string();
        let (st, b) = s
            .post(&format!("/api/v1/machines/{machine}/sensors"), &body)
            .await;
        assert_eq!(st, StatusCode::CREATED, "{b}");
    }
}

async fn ingest_then_query_exact(app: TestApp) {
    let s = &app;
    register(
        s,
        "motor-1",
        &[("temperature", None, None), ("current", None, None)],
    )
    .await;
    let t0 = (now_ms() / 120_000 - 5) * 120_000; // aligned to 2 minutes, ten minutes ago
                                                 // 120 samples, one per second, of two sensors.
    let items: Vec<Value> = (0..120)
        .map(|i| json!({ "ts": t0 + i * 1000, "values": { "temperature": i as f64, "current": 10.0 + (i % 2) as f64 } }))
        .collect();
    let body = Value::Array(items).to_string();
    let uri = "/api/v1/machines/motor-1/telemetry";
    let (st, report) = s.post(uri, &body).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{report}");
    assert_eq!(report["accepted"], 240);
    assert_eq!(report["rejected"].as_array().map(Vec::len), Some(0));
    // A replay stores nothing twice.
    let (st, _) = s.post(uri, &body).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    // RFC 3339 timestamps are accepted too.
    let rfc = time::OffsetDateTime::from_unix_timestamp((t0 + 120_000) / 1000)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let one = json!({ "ts": rfc, "values": { "temperature": 120.0 } }).to_string();
    let (st, report) = s.post(uri, &one).await;
    assert_eq!(
        (st, report["accepted"].clone()),
        (StatusCode::ACCEPTED, json!(1)),
        "{report}"
    );

    let q = format!(
        "/api/v1/machines/motor-1/readings?sensor=temperature&from={t0}&to={}&limit=100000",
        t0 + 3_600_000
    );
    let (st, r) = s.get(&q).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    let points = r["points"].as_array().expect("points");
    assert_eq!(points.len(), 121);
    assert_eq!(points[0], json!({ "ts": t0, "value": 0.0 }));
    assert_eq!(points[120], json!({ "ts": t0 + 120_000, "value": 120.0 }));
    // [from, to) and limit.
    let q = format!(
        "/api/v1/machines/motor-1/readings?sensor=temperature&from={}&to={}&limit=5",
        t0 + 10_000,
        t0 + 20_000
    );
    let (_, r) = s.get(&q).await;
    let points = r["points"].as_array().expect("points");
    assert_eq!(points.len(), 5);
    assert_eq!(points[0]["value"], 10.0);
    let q = format!(
        "/api/v1/machines/motor-1/readings?sensor=temperature&from={}&to={}",
        t0 + 10_000,
        t0 + 20_000
    );
    let (_, r) = s.get(&q).await;
    assert_eq!(r["points"].as_array().map(Vec::len), Some(10));

    // Minute buckets: 0..59, 60..119, 120.
    let q = format!(
        "/api/v1/machines/motor-1/readings?sensor=temperature&from={t0}&to={}&bucket=1m",
        t0 + 3_600_000
    );
    let (st, r) = s.get(&q).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["bucket_ms"], 60_000);
    let b = r["buckets"].as_array().expect("buckets");
    assert_eq!(b.len(), 3, "{r}");
    assert_eq!(
        b[0],
        json!({ "start": t0, "avg": 29.5, "min": 0.0, "max": 59.0, "count": 60 })
    );
    assert_eq!(
        b[1],
        json!({ "start": t0 + 60_000, "avg": 89.5, "min": 60.0, "max": 119.0, "count": 60 })
    );
    assert_eq!(
        b[2],
        json!({ "start": t0 + 120_000, "avg": 120.0, "min": 120.0, "max": 120.0, "count": 1 })
    );
    let q = format!(
        "/api/v1/machines/motor-1/readings?sensor=current&from={t0}&to={}&bucket=2m",
        t0 + 3_600_000
    );
    let (_, r) = s.get(&q).await;
    assert_eq!(
        r["buckets"][0],
        json!({ "start": t0, "avg": 10.5, "min": 10.0, "max": 11.0, "count": 120 })
    );

    let (st, latest) = s.get("/api/v1/machines/motor-1/latest").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        latest["values"],
        json!([
            { "sensor": "current", "ts": t0 + 119_000, "value": 11.0 },
            { "sensor": "temperature", "ts": t0 + 120_000, "value": 120.0 },
        ])
    );

    for (q, want) in [
        ("sensor=temperature&bucket=5w", StatusCode::BAD_REQUEST),
        ("sensor=temperature&from=yesterday", StatusCode::BAD_REQUEST),
        ("sensor=temperature&limit=0", StatusCode::BAD_REQUEST),
        ("sensor=temperature&from=10&to=5", StatusCode::BAD_REQUEST),
        ("sensor=nope", StatusCode::NOT_FOUND),
        ("sensor=Bad%20Key", StatusCode::UNPROCESSABLE_ENTITY),
        ("", StatusCode::BAD_REQUEST),
    ] {
        let (st, e) = s
            .get(&format!("/api/v1/machines/motor-1/readings?{q}"))
            .await;
        assert_eq!(st, want, "{q}: {e}");
        assert!(e["error"]["message"].is_string(), "{q}: {e}");
    }
    let (st, _) = s.get("/api/v1/machines/nope/latest").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    let (_, metrics) = s.get("/metrics").await;
    let text = metrics.as_str().expect("text");
    assert!(text.contains("pdm_readings_stored_total 241"), "{text}");
    assert!(text.contains("pdm_readings_duplicate_total 240"), "{text}");
    app.stop().await;
}

async fn dead_letter_kinds(s: &TestApp) -> Vec<String> {
    let (st, list) = s.get("/api/v1/dead-letters?limit=1000").await;
    assert_eq!(st, StatusCode::OK, "{list}");
    list.as_array()
        .expect("list")
        .iter()
        .map(|d| d["kind"].as_str().unwrap_or("").to_owned())
        .collect()
}

async fn bad_http_input_is_refused_and_kept(app: TestApp) {
    let limit = app.config().codec.max_payload_bytes;
    let s = &app;
    register(
        s,
        "pump-1",
        &[
            ("temperature", Some(-20.0), Some(150.0)),
            ("pressure", None, None),
        ],
    )
    .await;
    let now = now_ms();
    let uri = "/api/v1/machines/pump-1/telemetry";

    // Whole-payload refusals: status, reason, and a dead letter each.
    let huge = format!(
        r#"{{"ts":{now},"values":{{"temperature":1}},"pad":"{}"}}"#,
        "x".repeat(limit)
    );
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            uri,
            "{\"ts\": ".to_owned(),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            uri,
            "[1, 2]".to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "malformed",
        ),
        (uri, huge, StatusCode::PAYLOAD_TOO_LARGE, "oversized"),
        (
            "/api/v1/machines/Pump%201/telemetry",
            format!(r#"{{"ts":{now},"values":{{"temperature":1}}}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_key",
        ),
        (
            "/api/v1/machines/ghost/telemetry",
            format!(r#"{{"ts":{now},"values":{{"temperature":1}}}}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_machine",
        ),
    ];
    for (path, body, status, kind) in &cases {
        let (st, e) = s.post(path, body).await;
        assert_eq!(st, *status, "{kind}: {e}");
        assert!(
            !e["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{kind}: {e}"
        );
    }

    // One message, each item with another problem, and two valid readings among them.
    let day = 86_400_000i64;
    let mixed = json!([
        { "ts": now, "values": { "temperature": 50.5, "pressure": "high" } },
        { "ts": now + 1, "values": { "temperature": 999.0 } },
        { "ts": now + 2, "values": { "vibration": 1.0 } },
        { "ts": now + 3, "values": { "Bad Sensor": 1.0 } },
        { "ts": "not a time", "values": { "temperature": 1.0 } },
        { "ts": now + 100 * 365 * day, "values": { "temperature": 1.0 } },
        { "ts": now + 4, "values": { "temperature": null } },
        { "ts": now + 5, "values": { "pressure": 4.5 } },
    ])
    .to_string();
    // A number too large for a double: non-finite, which JSON builders cannot even write.
    let mixed = format!(
        "{},{{\"ts\":{},\"values\":{{\"pressure\":1e999}}}}]",
        mixed.trim_end_matches(']'),
        now + 6
    );
    let (st, report) = s.post(uri, &mixed).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    let kinds: Vec<&str> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["kind"].as_str().unwrap_or(""))
        .collect();
    for kind in [
        "bad_value",
        "out_of_range",
        "unknown_sensor",
        "bad_key",
        "bad_timestamp",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {report}");
    }
    assert_eq!(kinds.len(), 8, "{report}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "bad_value").count(),
        3,
        "{report}"
    );
    for r in report["rejected"].as_array().expect("rejected") {
        assert!(r["reason"].as_str().is_some_and(|m| m.len() > 10), "{r}");
    }

    // Every value of a payload bad: 422 and nothing stored.
    let (st, report) = s
        .post(
            uri,
            &json!({ "ts": now + 9, "values": { "temperature": "hot" } }).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{report}");

    // The valid readings went through, the rest are dead letters.
    let q = format!(
        "/api/v1/machines/pump-1/readings?sensor=temperature&from={}&to={}",
        now - 1,
        now + 10
    );
    let (_, r) = s.get(&q).await;
    assert_eq!(r["points"], json!([{ "ts": now, "value": 50.5 }]));
    let kinds = dead_letter_kinds(s).await;
    for kind in [
        "malformed",
        "oversized",
        "bad_key",
        "unknown_machine",
        "bad_value",
        "out_of_range",
        "unknown_sensor",
        "bad_timestamp",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} dead letter in {kinds:?}"
        );
    }
    let (st, list) = s.get("/api/v1/dead-letters?kind=out_of_range").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["origin"], "http");
    assert!(
        list[0]["payload_head"]
            .as_str()
            .is_some_and(|p| p.starts_with('[')),
        "{list}"
    );
    let (st, _) = s.get("/api/v1/dead-letters?kind=nonsense").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, _) = s.get("/health/ready").await;
    assert_eq!(st, StatusCode::OK, "still up and ready");
    let (_, metrics) = s.get("/metrics").await;
    let text = metrics.as_str().expect("text");
    assert!(
        text.contains("pdm_dead_letters_total{reason=\"out_of_range\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pdm_dead_letters_pruned_total 0")
            && text.contains("pdm_readings_pruned_total 0")
            && text.contains("pdm_retention_errors_total 0"),
        "retention keeps fresh letters and, by default, every reading: {text}"
    );
    app.stop().await;
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

/// Request ids, error codes, path keys, the paging rule, view shapes and HTTP metrics, as a
/// client sees them.
async fn scaffolding_on_the_wire(app: TestApp) {
    let s = &app;
    register(s, "pump-1", &[("temperature", None, None)]).await;

    // Request ids: made when absent, kept when given.
    let (st, headers, _) = s.request("GET", "/api/v1/machines", None, &[]).await;
    assert_eq!(st, StatusCode::OK);
    let made = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(made.len(), 36, "a UUID: {made:?}");
    let (_, headers, _) = s
        .request(
            "GET",
            "/api/v1/machines/nope",
            None,
            &[("x-request-id", "req-42")],
        )
        .await;
    assert_eq!(
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        Some("req-42")
    );
    // An id unfit for a log line (too long, or odd characters) is replaced by a new one.
    let long = "a".repeat(129);
    for unfit in ["a b", "<id>", long.as_str()] {
        let (_, headers, _) = s
            .request("GET", "/api/v1/machines", None, &[("x-request-id", unfit)])
            .await;
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(id.len(), 36, "{unfit:?} replaced by a UUID: {id:?}");
    }

    // The error body: code and message, nothing else.
    let (st, e) = s.get("/api/v1/machines/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(keys(&e), ["error"], "{e}");
    assert_eq!(keys(&e["error"]), ["code", "message"], "{e}");
    assert_eq!(e["error"]["code"], "not_found", "{e}");

    // Keys in the path are validated by the extractor, with the key's reason.
    for (uri, what) in [
        ("/api/v1/machines/Bad%20Key/latest", "machine key"),
        ("/api/v1/machines/Bad%20Key/sensors", "machine key"),
        ("/api/v1/machines/pump-1/sensors/Bad%20Key", "sensor key"),
        (
            "/api/v1/machines/Bad%20Key/readings?sensor=temperature",
            "machine key",
        ),
    ] {
        let (st, e) = s.get(uri).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {e}");
        assert_eq!(e["error"]["code"], "unprocessable", "{uri}: {e}");
        assert!(
            e["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what)),
            "{uri}: {e}"
        );
    }
    let (st, e) = s.delete("/api/v1/machines/pump-1/sensors/Bad%20Key").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    // A segment that is not UTF-8 once decoded is the JSON error too, on every route, the
    // ingestion route (which keeps bad keys as dead letters) included.
    for (method, uri) in [
        ("GET", "/api/v1/machines/%FF/latest"),
        ("POST", "/api/v1/machines/%FF/telemetry"),
    ] {
        let (st, _, e) = s.request(method, uri, Some("{}"), &[]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{method} {uri}: {e}");
        assert_eq!(e["error"]["code"], "bad_request", "{method} {uri}: {e}");
    }

    // One paging rule: out-of-range limits are refused everywhere. (GET /dead-letters clamped
    // them to 1..10000 before; that is the one deliberate change of behaviour.)
    for (uri, want) in [
        ("/api/v1/dead-letters?limit=10000", StatusCode::OK),
        ("/api/v1/dead-letters?limit=10001", StatusCode::BAD_REQUEST),
        ("/api/v1/dead-letters?limit=0", StatusCode::BAD_REQUEST),
        ("/api/v1/dead-letters?cursor=abc", StatusCode::BAD_REQUEST),
        (
            "/api/v1/dead-letters?kind=bad_value&limit=5",
            StatusCode::OK,
        ),
        (
            "/api/v1/machines/pump-1/readings?sensor=temperature&limit=100000",
            StatusCode::OK,
        ),
        (
            "/api/v1/machines/pump-1/readings?sensor=temperature&limit=100001",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (st, e) = s.get(uri).await;
        assert_eq!(st, want, "{uri}: {e}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(e["error"]["code"], "bad_request", "{uri}: {e}");
        }
    }

    // Views answer the same fields the core types did.
    let (_, m) = s.get("/api/v1/machines/pump-1").await;
    assert_eq!(
        keys(&m),
        ["created_at", "description", "key", "kind", "name"],
        "{m}"
    );
    assert!(m["created_at"].is_i64(), "{m}");
    let (_, sensor) = s.get("/api/v1/machines/pump-1/sensors/temperature").await;
    assert_eq!(
        keys(&sensor),
        ["created_at", "key", "machine", "max", "min", "unit"],
        "{sensor}"
    );

    // HTTP metrics by matched route and status class.
    let (_, _) = s.get("/api/v1/no-such-route").await;
    let (st, headers, metrics) = s.request("GET", "/metrics", None, &[]).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/plain; version=0.0.4")
    );
    let text = metrics.as_str().expect("text");
    for series in [
        "pdm_http_requests_total{method=\"GET\",route=\"/api/v1/machines/{machine}\",status=\"4xx\"} 2",
        "pdm_http_requests_total{method=\"POST\",route=\"/api/v1/machines\",status=\"2xx\"} 1",
        "pdm_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"4xx\"} 1",
        "pdm_http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/dead-letters\",status=\"2xx\"} 2",
        "# TYPE pdm_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_zero_request_timeout_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config(dir.path(), None, false);
    cfg.request_timeout_ms = 0;
    let err = pdm_server::run::Server::start(cfg)
        .await
        .expect_err("a zero timeout answers nothing")
        .to_string();
    assert!(err.contains("request_timeout_ms"), "{err}");
}
