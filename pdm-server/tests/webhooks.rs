//! Webhooks end to end, on SQLite and PostgreSQL: real alarm transitions (outbox rows) are
//! delivered by the server's dispatcher to real HTTP receivers in the test, which verify the
//! Standard Webhooks signature with pdm-core's `verify`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::TestApp;
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
use pdm_core::webhook::signing;
use pdm_core::{AlarmTransition, MachineKey, NewMachine, Timestamp};
use pdm_server::config::ServerConfig;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    at: Instant,
}

/// Receivers by behaviour (the path's last segment): `ok`, `flaky` (500 then 200), `later`
/// (503 with `Retry-After: 2`, then 200), `gone` (410), `hang` (never answers), `redirect`.
#[derive(Default)]
struct Receiver {
    got: Mutex<HashMap<String, Vec<Received>>>,
}

impl Receiver {
    fn of(&self, behaviour: &str) -> Vec<Received> {
        self.got
            .lock()
            .expect("lock")
            .get(behaviour)
            .cloned()
            .unwrap_or_default()
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    Path(behaviour): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let n = {
        let mut got = r.got.lock().expect("lock");
        let list = got.entry(behaviour.clone()).or_default();
        list.push(Received {
            id: h("webhook-id"),
            timestamp: h("webhook-timestamp"),
            signature: h("webhook-signature"),
            body: body.to_vec(),
            at: Instant::now(),
        });
        list.len()
    };
    match (behaviour.as_str(), n) {
        ("flaky", 1) => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
        ("later", 1) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", "2")],
            "busy",
        )
            .into_response(),
        ("gone", _) => StatusCode::GONE.into_response(),
        ("hang", _) => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            StatusCode::OK.into_response()
        }
        ("redirect", _) => (StatusCode::FOUND, [("location", "/hooks/ok")]).into_response(),
        _ => StatusCode::NO_CONTENT.into_response(),
    }
}

/// A receiver on a free loopback port: its base URL (`http://127.0.0.1:P/hooks`).
async fn start_receiver() -> (String, Arc<Receiver>) {
    let r = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hooks/{behaviour}", post(receive))
        .with_state(r.clone());
    let addr = common::serve_on_loopback(app).await;
    (format!("http://{addr}/hooks"), r)
}

/// A "server" that answers every connection with bytes that are not HTTP.
async fn start_garbage() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s
                .write_all(b"SSH-2.0-not-http\r\n\x00\x01\x02\r\n\r\n")
                .await;
            let _ = s.shutdown().await;
        }
    });
    format!("http://{addr}/x")
}

fn tweak(c: &mut ServerConfig) {
    c.webhooks.allow_private_destinations = true;
    c.webhooks.retry_schedule_ms = Some(vec![300, 300, 300]);
    c.webhooks.timeout_ms = 2_000;
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(super::TestApp::sqlite_with(super::tweak).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = super::TestApp::postgres_with(super::tweak).await {
                    super::$scenario(app).await;
                }
            }
        }
    )*};
}

on_both_backends!(
    alarm_events_are_signed_delivered_retried_and_redelivered,
    bad_receivers_never_block_others,
    fields_are_validated_and_unknown_ids_are_404,
    one_alarms_events_arrive_in_order,
);

fn now_secs() -> i64 {
    Timestamp::now().as_millis() / 1_000
}

/// Raises an alarm of `machine` (registered first): one `raised` event in the outbox.
async fn raise(app: &TestApp, machine: &str) -> pdm_core::StoredAlarm {
    let store = &app.server().state().store;
    let key = MachineKey::new(machine).expect("key");
    store
        .create_machine(&NewMachine {
            key: key.clone(),
            name: None,
            kind: None,
            description: None,
        })
        .await
        .expect("machine");
    let at = Timestamp::now();
    let alarm = store
        .record_transition(&AlarmTransition {
            machine: key,
            rule_id: "anomaly".into(),
            alarm: None,
            expected_version: 0,
            state: StateName::ActiveUnacked,
            severity: Severity::High,
            state_json: "{}".into(),
            events: vec![AlarmEvent {
                kind: AlarmEventKind::Raised,
                at,
                actor: "system".into(),
                reason: "score above threshold".into(),
                severity: Severity::High,
            }],
            closes: false,
        })
        .await
        .expect("transition");
    app.server().state().webhooks.wake();
    alarm
}

/// Creates a webhook; its id and secret.
async fn create(app: &TestApp, body: Value) -> (i64, String) {
    let (st, w) = app.post("/api/v1/webhooks", &body.to_string()).await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let secret = w["secret"]
        .as_str()
        .expect("secret shown on create")
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    (w["id"].as_i64().expect("id"), secret)
}

async fn wait_for(r: &Receiver, behaviour: &str, n: usize) -> Vec<Received> {
    common::eventually_some(Duration::from_secs(20), behaviour, || async {
        let got = r.of(behaviour);
        (got.len() >= n).then_some(got)
    })
    .await
}

async fn deliveries(app: &TestApp, id: i64) -> Vec<Value> {
    let (st, v) = app.get(&format!("/api/v1/webhooks/{id}/deliveries")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v.as_array().expect("list").clone()
}

/// The deliveries of `id` once the first is no longer pending.
async fn settled(app: &TestApp, id: i64) -> Vec<Value> {
    common::eventually_some(Duration::from_secs(20), "a settled delivery", || async {
        let d = deliveries(app, id).await;
        (d.first().is_some_and(|d| d["status"] != "pending")).then_some(d)
    })
    .await
}

async fn alarm_events_are_signed_delivered_retried_and_redelivered(app: TestApp) {
    let (base, r) = start_receiver().await;
    let (ok, secret) = create(
        &app,
        serde_json::json!({"url": format!("{base}/ok"), "machines": ["pump-1"],
            "severities": ["high", "critical"], "event_kinds": ["raised"]}),
    )
    .await;
    let (flaky, flaky_secret) =
        create(&app, serde_json::json!({"url": format!("{base}/flaky")})).await;
    let (_other, _) = create(
        &app,
        serde_json::json!({"url": format!("{base}/other"), "machines": ["pump-2"]}),
    )
    .await;
    let (st, listed) = app.get("/api/v1/webhooks").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    assert!(!listed.to_string().contains("whsec_"), "no secret in lists");

    raise(&app, "pump-1").await;
    let got = wait_for(&r, "ok", 1).await;
    let first = &got[0];
    signing::verify(
        &secret,
        &first.id,
        &first.timestamp,
        &first.signature,
        &first.body,
        now_secs(),
    )
    .expect("the signature verifies");
    let body: Value = serde_json::from_slice(&first.body).expect("JSON body");
    assert_eq!(body["type"], "alarm.raised");
    assert_eq!(body["data"]["machine"], "pump-1");
    assert_eq!(body["data"]["severity"], "high");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));

    // 500, then 200 after the (shortened) schedule's delay, with the same webhook-id.
    let got = wait_for(&r, "flaky", 2).await;
    assert_eq!(got[0].id, got[1].id);
    assert_eq!(
        got[0].id, first.id,
        "one webhook-id per event, on every endpoint"
    );
    for g in &got {
        signing::verify(
            &flaky_secret,
            &g.id,
            &g.timestamp,
            &g.signature,
            &g.body,
            now_secs(),
        )
        .expect("each attempt is signed");
    }
    let d = settled(&app, flaky).await;
    assert_eq!(d[0]["status"], "delivered", "{}", d[0]);
    assert_eq!(d[0]["attempts"], 2);
    let log = d[0]["attempt_log"].as_array().expect("attempts");
    assert_eq!(log[0]["status_code"], 500);
    assert!(
        log[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 500")),
        "{}",
        log[0]
    );
    assert_eq!(log[1]["status_code"], 204);
    assert!(log[1]["error"].is_null());
    assert!(
        r.of("other").is_empty(),
        "the filter keeps other machines' events out"
    );

    // Manual redelivery: the same webhook-id again.
    let d = settled(&app, ok).await;
    let delivery = d[0]["id"].as_i64().expect("id");
    let (st, v) = app
        .post(
            &format!("/api/v1/webhooks/{ok}/deliveries/{delivery}/redeliver"),
            "",
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    let got = wait_for(&r, "ok", 2).await;
    assert_eq!(got[1].id, first.id, "a redelivery keeps its webhook-id");

    // Rotation: both secrets sign for a while; each signature verifies with its own secret.
    let (st, rotated) = app
        .post(&format!("/api/v1/webhooks/{ok}/rotate-secret"), "")
        .await;
    assert_eq!(st, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new_secret, secret);
    let (st, sent) = app.post(&format!("/api/v1/webhooks/{ok}/test"), "").await;
    assert_eq!(st, StatusCode::OK, "{sent}");
    assert_eq!(sent["delivered"], true, "{sent}");
    assert_eq!(sent["delivery"]["event_type"], "webhook.test");
    let got = wait_for(&r, "ok", 3).await;
    let test = &got[2];
    let sigs: Vec<&str> = test.signature.split(' ').collect();
    assert_eq!(sigs.len(), 2, "{}", test.signature);
    let body: Value = serde_json::from_slice(&test.body).expect("JSON");
    assert_eq!(body["type"], "webhook.test");
    signing::verify(
        &new_secret,
        &test.id,
        &test.timestamp,
        sigs[0],
        &test.body,
        now_secs(),
    )
    .expect("the new secret's signature");
    signing::verify(
        &secret,
        &test.id,
        &test.timestamp,
        sigs[1],
        &test.body,
        now_secs(),
    )
    .expect("the previous secret's signature");
    app.stop().await;
}

async fn bad_receivers_never_block_others(app: TestApp) {
    let (base, r) = start_receiver().await;
    let garbage = start_garbage().await;
    let (hang, _) = create(&app, serde_json::json!({"url": format!("{base}/hang")})).await;
    let (gone, _) = create(&app, serde_json::json!({"url": format!("{base}/gone")})).await;
    let (redirect, _) = create(&app, serde_json::json!({"url": format!("{base}/redirect")})).await;
    let (junk, _) = create(&app, serde_json::json!({"url": garbage})).await;
    let (later, _) = create(&app, serde_json::json!({"url": format!("{base}/later")})).await;
    create(&app, serde_json::json!({"url": format!("{base}/ok")})).await;

    let started = Instant::now();
    raise(&app, "press-1").await;
    let ok = wait_for(&r, "ok", 1).await;
    assert!(
        ok[0].at.duration_since(started) < Duration::from_millis(1_900),
        "a hanging receiver (2 s timeout) delayed another endpoint: {:?}",
        ok[0].at.duration_since(started)
    );
    // The hanging receiver gets its attempt too (in its own time: under load it may arrive
    // after the healthy endpoint's).
    assert_eq!(
        wait_for(&r, "hang", 1).await.len(),
        1,
        "the hanging receiver got its attempt too"
    );

    // 410 Gone: failed, and the endpoint disabled with the reason.
    let d = settled(&app, gone).await;
    assert_eq!(d[0]["status"], "failed");
    let (_, w) = app.get(&format!("/api/v1/webhooks/{gone}")).await;
    assert_eq!(w["enabled"], false, "{w}");
    assert!(
        w["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410")),
        "{w}"
    );

    // A redirect is a failure (never followed), so is an answer that is not HTTP.
    common::eventually_some(Duration::from_secs(20), "failed attempts", || async {
        let d = deliveries(&app, redirect).await;
        let e = d.first()?["attempt_log"].get(0)?["error"]
            .as_str()?
            .to_owned();
        Some(e)
    })
    .await;
    let d = deliveries(&app, redirect).await;
    assert_eq!(d[0]["attempt_log"][0]["status_code"], 302);
    assert!(r.of("ok").len() == 1, "the redirect was not followed");
    let e = common::eventually_some(Duration::from_secs(20), "a garbage attempt", || async {
        let d = deliveries(&app, junk).await;
        d.first()?["attempt_log"].get(0)?["error"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(e.contains("bad response") || e.contains("connect"), "{e}");

    // Retry-After: 2 s, later than the schedule's 300 ms.
    let got = wait_for(&r, "later", 2).await;
    let gap = got[1].at.duration_since(got[0].at);
    assert!(
        gap >= Duration::from_millis(1_900),
        "Retry-After ignored: {gap:?}"
    );
    let d = settled(&app, later).await;
    assert_eq!(d[0]["status"], "delivered");

    // The hanging receiver's attempt timed out and is retried.
    let e = common::eventually_some(Duration::from_secs(20), "a timed-out attempt", || async {
        let d = deliveries(&app, hang).await;
        d.first()?["attempt_log"].get(0)?["error"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    assert!(e.contains("timed out"), "{e}");
    app.stop().await;
}

async fn fields_are_validated_and_unknown_ids_are_404(app: TestApp) {
    let cases = [
        (serde_json::json!({"url": "ftp://example.com/x"}), "url"),
        (serde_json::json!({"url": "example.com/x"}), "url"),
        (
            serde_json::json!({"url": "http://user:pw@example.com/x"}),
            "url",
        ),
        (
            serde_json::json!({"url": "https://example.com/x", "machines": ["Pump 1"]}),
            "machines[0]",
        ),
        (
            serde_json::json!({"url": "https://example.com/x", "severities": ["huge"]}),
            "severities[0]",
        ),
        (
            serde_json::json!({"url": "https://example.com/x", "event_kinds": ["exploded"]}),
            "event_kinds[0]",
        ),
        (
            serde_json::json!({"url": "https://example.com/x", "colour": "red"}),
            "colour",
        ),
        (serde_json::json!({"description": "no url"}), "url"),
    ];
    for (body, field) in cases {
        let (st, v) = app.post("/api/v1/webhooks", &body.to_string()).await;
        assert!(st.is_client_error(), "{body}: {st} {v}");
        assert!(
            v.to_string().contains(field),
            "{body}: {v} should name {field}"
        );
    }
    let (st, v) = app.get("/api/v1/webhooks/999").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    for (method, uri) in [
        ("PATCH", "/api/v1/webhooks/999"),
        ("DELETE", "/api/v1/webhooks/999"),
        ("POST", "/api/v1/webhooks/999/rotate-secret"),
        ("POST", "/api/v1/webhooks/999/test"),
        ("GET", "/api/v1/webhooks/999/deliveries"),
        ("POST", "/api/v1/webhooks/999/deliveries/1/redeliver"),
    ] {
        let body = (method == "PATCH").then_some("{}");
        let (st, _, v) = app.request(method, uri, body, &[]).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{method} {uri}: {v}");
    }
    let (st, _) = app.get("/api/v1/webhooks/abc").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (id, _) = create(&app, serde_json::json!({"url": "https://example.com/x"})).await;
    let (st, _) = app
        .post(&format!("/api/v1/webhooks/{id}/deliveries/5/redeliver"), "")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "an unknown delivery");
    let (st, v) = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            r#"{"description": null, "enabled": false, "severities": ["low"]}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["enabled"].clone(), v["severities"].clone()),
        (Value::Bool(false), serde_json::json!(["low"]))
    );
    assert!(v.get("secret").is_none(), "no secret after create");
    let (st, v) = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            r#"{"url": "gopher://x"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(v.to_string().contains("url"), "{v}");
    let (st, _) = app.delete(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.get(&format!("/api/v1/webhooks/{id}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Without `webhooks.allow_private_destinations`, loopback and private destinations are
/// refused when created, naming `url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_without_the_setting() {
    let app = TestApp::sqlite().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://localhost:9/x",
        "http://10.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data",
    ] {
        let body = serde_json::json!({ "url": url }).to_string();
        let (st, v) = app.post("/api/v1/webhooks", &body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("url:")),
            "{v}"
        );
    }
    app.stop().await;
}

/// The second event of an alarm waits while the first is being retried at that endpoint.
async fn one_alarms_events_arrive_in_order(app: TestApp) {
    let (base, r) = start_receiver().await;
    create(&app, serde_json::json!({"url": format!("{base}/flaky")})).await;
    let alarm = raise(&app, "fan-1").await;
    let store = &app.server().state().store;
    store
        .record_transition(&AlarmTransition {
            machine: alarm.machine.clone(),
            rule_id: alarm.rule_id.clone(),
            alarm: Some(alarm.id),
            expected_version: alarm.version,
            state: StateName::ActiveUnacked,
            severity: Severity::Critical,
            state_json: "{}".into(),
            events: vec![AlarmEvent {
                kind: AlarmEventKind::Escalated,
                at: Timestamp::now(),
                actor: "system".into(),
                reason: "worse".into(),
                severity: Severity::Critical,
            }],
            closes: false,
        })
        .await
        .expect("escalation");
    app.server().state().webhooks.wake();
    let got = wait_for(&r, "flaky", 3).await;
    let types: Vec<String> = got
        .iter()
        .map(|g| {
            let v: Value = serde_json::from_slice(&g.body).expect("JSON");
            v["type"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        types,
        ["alarm.raised", "alarm.raised", "alarm.escalated"],
        "the escalation waited for the raise's retry"
    );
    assert_eq!(got[0].id, got[1].id);
    assert_ne!(got[1].id, got[2].id, "each event has its own webhook-id");
    app.stop().await;
}
