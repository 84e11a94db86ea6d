//! Live push over a real TCP port: an SSE client reading the HTTP body as it streams (hyper)
//! and WebSocket clients (tokio-tungstenite, and a raw one that never answers pings).
//!
//! The waits below are guards against a hang (a stream that never delivers fails after 30 s
//! naming what it waited for), never measurements: the order of events on the bus is what the
//! tests assert.

#[macro_use]
mod common;

use std::net::SocketAddr;

use axum::http::StatusCode;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use pdm_core::bus::PushKind;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use common::sse::{connect, get, guard, refused, SseClient};
use common::TestApp;

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_open(addr: SocketAddr, small: bool) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let stream = connect(addr, small).await;
    let mut req = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    let token = common::admin_token(&addr.to_string()).await.expect("token");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (ws, resp) = guard(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(req, stream),
    )
    .await
    .expect("handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws
}

/// The next message, pings and pongs skipped (tungstenite answers pings itself).
async fn ws_next(ws: &mut Ws) -> Message {
    loop {
        let msg = guard("a WebSocket message", ws.next())
            .await
            .expect("the socket stays open")
            .expect("a message");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

async fn ws_json(ws: &mut Ws) -> Value {
    match ws_next(ws).await {
        Message::Text(t) => serde_json::from_str(&t).expect("JSON text"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

async fn ws_command(ws: &mut Ws, cmd: &str) -> Value {
    ws.send(Message::Text(cmd.into())).await.expect("send");
    ws_json(ws).await
}

async fn register(app: &TestApp, machine: &str) {
    let (st, body) = app
        .post("/api/v1/machines", &json!({ "key": machine }).to_string())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, body) = app
        .post(
            &format!("/api/v1/machines/{machine}/sensors"),
            r#"{"key": "temp"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// Readings of `temp`, a second apart from a fixed start plus `at`: distinct instants, so
/// that each is stored (and published) once.
async fn send_temp(app: &TestApp, machine: &str, at: i64, value: f64) {
    let ts = common::now_ms() - 600_000 + at * 1_000;
    let body = json!({ "ts": ts, "values": { "temp": value } }).to_string();
    let (st, answer) = app
        .post(&format!("/api/v1/machines/{machine}/telemetry"), &body)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{answer}");
}

async fn metrics_text(addr: SocketAddr) -> String {
    let resp = get(addr, "/metrics", &[], false).await;
    let bytes = guard("the metrics", resp.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn sse_filters_ids_and_resume(app: TestApp) {
    let addr = app.server().local_addr();
    register(&app, "pump-1").await;
    register(&app, "fan-1").await;
    let mut every = SseClient::open(addr, "", &[]).await;
    let mut pumps = SseClient::open(addr, "?machines=pump-1&kinds=reading", &[]).await;

    // fan-1 first, seen by the unfiltered client, so that it is on the bus before pump-1.
    send_temp(&app, "fan-1", 0, 20.0).await;
    let e = every.next_event().await;
    assert_eq!(
        (e.event.as_str(), e.json()["machine"].as_str()),
        ("reading", Some("fan-1"))
    );
    let mut ids = Vec::new();
    for (i, v) in [21.0, 22.0, 23.0].into_iter().enumerate() {
        send_temp(&app, "pump-1", i as i64, v).await;
        let e = pumps.next_event().await;
        assert_eq!(e.event, "reading");
        let data = e.json();
        assert_eq!(data["machine"], "pump-1", "{data}");
        assert_eq!(data["readings"][0]["sensor"], "temp");
        assert_eq!(data["readings"][0]["value"], v);
        ids.push(e.id.expect("an id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Resume after the first: the two that followed, from the replay, through the filter.
    let first = ids[0].to_string();
    let mut again = SseClient::open(
        addr,
        "?machines=pump-1&kinds=reading",
        &[("last-event-id", first.as_str())],
    )
    .await;
    assert_eq!(again.next_event().await.id, Some(ids[1]));
    assert_eq!(again.next_event().await.id, Some(ids[2]));
    // The query parameter, for clients that cannot set headers; the header wins over it.
    let mut by_query = SseClient::open(
        addr,
        &format!("?kinds=reading&last_event_id={}", ids[1]),
        &[],
    )
    .await;
    assert_eq!(by_query.next_event().await.id, Some(ids[2]));
    let mut both = SseClient::open(
        addr,
        &format!("?kinds=reading&machines=pump-1&last_event_id={}", ids[0]),
        &[("last-event-id", &ids[1].to_string())],
    )
    .await;
    assert_eq!(both.next_event().await.id, Some(ids[2]));

    // An id from before a restart (older than anything held): a reset first, whose id is the
    // last event published, then the live events.
    let mut stale = SseClient::open(addr, "?machines=pump-1", &[("last-event-id", "1")]).await;
    let reset = stale.next_event().await;
    assert_eq!(reset.event, "reset");
    assert_eq!(reset.json()["last_event_id"].as_u64(), reset.id);
    assert!(reset.id >= Some(ids[2]), "{reset:?} {ids:?}");
    assert!(
        reset.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("REST")),
        "{reset:?}"
    );
    send_temp(&app, "pump-1", 10, 24.0).await;
    let live = stale.next_event().await;
    assert_eq!(live.event, "reading");
    assert!(live.id > reset.id);

    let text = metrics_text(addr).await;
    assert!(
        text.contains("pdm_push_clients{transport=\"sse\"} 6"),
        "{text}"
    );
    drop((every, pumps, again, by_query, both, stale));

    // The buffer moves on (10 000 events by default): a client resuming from before it is
    // told to reload too.
    let bus = app.server().state().bus.clone();
    let before = bus.next_id() - 1;
    for i in 0..10_001 {
        bus.publish(PushKind::Job, None, &json!({ "n": i }));
    }
    let mut late = SseClient::open(
        addr,
        "?kinds=job",
        &[("last-event-id", &before.to_string())],
    )
    .await;
    let reset = late.next_event().await;
    assert_eq!(
        (reset.event.as_str(), reset.id),
        ("reset", Some(bus.next_id() - 1))
    );
    bus.publish(PushKind::Job, None, &json!({ "n": "after" }));
    assert_eq!(late.next_event().await.json()["n"], "after");

    // Stopping the server ends the streams (the graceful shutdown does not wait for them).
    app.stop().await;
    assert!(late.next_item().await.is_none(), "the stream ends");
}

async fn bad_requests_name_the_field(app: TestApp) {
    let addr = app.server().local_addr();
    for (uri, headers, field, says) in [
        (
            "/api/v1/events?kinds=alarm,alarms",
            &[][..],
            "kinds",
            "alarms",
        ),
        (
            "/api/v1/events?machines=pump-1,Pump%202",
            &[],
            "machines",
            "Pump 2",
        ),
        (
            "/api/v1/events?last_event_id=abc",
            &[],
            "last_event_id",
            "abc",
        ),
        (
            "/api/v1/events",
            &[("last-event-id", "12x")],
            "Last-Event-ID",
            "12x",
        ),
    ] {
        let (st, body) = refused(addr, uri, headers).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
        assert_eq!(body["error"]["details"]["field"], field, "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(field) && message.contains(says),
            "{body}"
        );
    }
    let (st, body) = refused(addr, "/api/v1/events?kind=alarm", &[]).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kind")),
        "{body}"
    );
    // Not a WebSocket handshake: the API's error, not a plain-text one.
    let (st, body) = refused(addr, "/api/v1/ws", &[]).await;
    assert!(st.is_client_error(), "{st}");
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    app.stop().await;
}

async fn websocket_commands(app: TestApp) {
    let addr = app.server().local_addr();
    register(&app, "pump-1").await;
    register(&app, "fan-1").await;
    let mut ws = ws_open(addr, false).await;

    // Bad commands are answered, naming the field, and the socket stays open.
    for (cmd, field) in [
        ("not json", None),
        (
            r#"{"op": "subscribe", "kinds": ["alarm", "alarms"]}"#,
            Some("kinds[1]"),
        ),
        (
            r#"{"op": "subscribe", "machines": ["Pump 1"]}"#,
            Some("machines[0]"),
        ),
        (
            r#"{"op": "subscribe", "machines": "pump-1"}"#,
            Some("machines"),
        ),
        (r#"{"op": "dance"}"#, Some("op")),
        (r#"{"kinds": []}"#, None),
        (r#"{"op": "subscribe", "colour": "red"}"#, None),
        (r#"{"op": "unsubscribe", "after": 3}"#, Some("after")),
        (r#"{"op": "subscribe", "after": -1}"#, Some("after")),
    ] {
        let answer = ws_command(&mut ws, cmd).await;
        assert_eq!(answer["error"]["code"], "bad_request", "{cmd}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        match field {
            Some(f) => {
                assert_eq!(answer["error"]["details"]["field"], f, "{cmd}: {answer}");
                assert!(message.contains(f), "{cmd}: {answer}");
            }
            None => assert!(!message.is_empty(), "{cmd}: {answer}"),
        }
    }
    ws.send(Message::Binary(vec![1u8, 2, 3].into()))
        .await
        .expect("send");
    let answer = ws_json(&mut ws).await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("text")),
        "{answer}"
    );

    let answer = ws_command(
        &mut ws,
        r#"{"op": "subscribe", "machines": ["pump-1"], "kinds": ["reading"]}"#,
    )
    .await;
    assert_eq!(
        answer,
        json!({"op": "subscribed", "subscription": {"pump-1": ["reading"]}, "after": null})
    );
    // An unfiltered SSE client sees fan-1's reading go by before pump-1's is sent.
    let mut every = SseClient::open(addr, "", &[]).await;
    send_temp(&app, "fan-1", 0, 20.0).await;
    assert_eq!(every.next_event().await.json()["machine"], "fan-1");
    send_temp(&app, "pump-1", 0, 30.0).await;
    let frame = ws_json(&mut ws).await;
    assert_eq!(
        (frame["kind"].as_str(), frame["machine"].as_str()),
        (Some("reading"), Some("pump-1"))
    );
    assert_eq!(frame["data"]["readings"][0]["value"], 30.0);
    let first = frame["id"].as_u64().expect("id");
    assert_eq!(
        every.next_event().await.id,
        Some(first),
        "the same id on both"
    );

    // fan-1 wholly, then pump-1 away: pump-1's next reading goes by (the SSE client sees it)
    // and the next frame is fan-1's.
    let answer = ws_command(&mut ws, r#"{"op": "subscribe", "machines": ["fan-1"]}"#).await;
    assert_eq!(
        answer["subscription"],
        json!({"fan-1": ["reading", "prediction", "alarm", "job"], "pump-1": ["reading"]})
    );
    let answer = ws_command(&mut ws, r#"{"op": "unsubscribe", "machines": ["pump-1"]}"#).await;
    assert_eq!(answer["op"], "unsubscribed");
    assert_eq!(
        answer["subscription"],
        json!({"fan-1": ["reading", "prediction", "alarm", "job"]})
    );
    send_temp(&app, "pump-1", 1, 31.0).await;
    assert_eq!(every.next_event().await.json()["machine"], "pump-1");
    send_temp(&app, "fan-1", 1, 21.0).await;
    let frame = ws_json(&mut ws).await;
    assert_eq!(
        frame["machine"], "fan-1",
        "pump-1 was unsubscribed: {frame}"
    );

    // Resume: subscribe again after the first pump-1 reading: the replay through the filter.
    let answer = ws_command(&mut ws, r#"{"op": "unsubscribe"}"#).await;
    assert_eq!(answer["subscription"], json!({}));
    let answer = ws_command(
        &mut ws,
        &json!({"op": "subscribe", "machines": ["pump-1"], "after": first}).to_string(),
    )
    .await;
    assert_eq!(answer["after"], first);
    let frame = ws_json(&mut ws).await;
    assert_eq!(
        (
            frame["machine"].as_str(),
            frame["data"]["readings"][0]["value"].as_f64()
        ),
        (Some("pump-1"), Some(31.0))
    );
    assert!(frame["id"].as_u64() > Some(first));
    // From before a restart: a reset first.
    let answer = ws_command(&mut ws, r#"{"op": "subscribe", "after": 1}"#).await;
    assert_eq!(answer["op"], "subscribed");
    let reset = ws_json(&mut ws).await;
    assert_eq!(reset["op"], "reset", "{reset}");
    assert!(
        reset["last_event_id"].as_u64() >= frame["id"].as_u64(),
        "{reset}"
    );

    ws.close(None).await.expect("close");
    app.stop().await;
}

async fn an_alarm_reaches_both_clients(app: TestApp) {
    let addr = app.server().local_addr();
    register(&app, "pump-1").await;
    let rule = json!({"severity": "high",
        "kind": {"type": "sensor_limit", "sensor": "temp", "above": 50.0, "deadband": 1.0}});
    let (st, _, body) = app
        .request(
            "PUT",
            "/api/v1/machines/pump-1/alarm-rules/hot",
            Some(&rule.to_string()),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let mut sse = SseClient::open(addr, "?kinds=alarm", &[]).await;
    let mut ws = ws_open(addr, false).await;
    let answer = ws_command(
        &mut ws,
        r#"{"op": "subscribe", "kinds": ["alarm"], "machines": ["pump-1"]}"#,
    )
    .await;
    assert_eq!(answer["op"], "subscribed");

    send_temp(&app, "pump-1", 0, 20.0).await;
    send_temp(&app, "pump-1", 1, 60.0).await;

    let event = sse.next_event().await;
    assert_eq!(event.event, "alarm");
    let data = event.json();
    assert_eq!(
        (
            data["machine"].as_str(),
            data["rule"].as_str(),
            data["kind"].as_str()
        ),
        (Some("pump-1"), Some("hot"), Some("raised")),
        "{data}"
    );
    let frame = ws_json(&mut ws).await;
    assert_eq!(frame["kind"], "alarm");
    assert_eq!(frame["id"].as_u64(), event.id, "the same bus event");
    assert_eq!(frame["data"], data);

    // Acknowledged by a person, then back below the limit: cleared, on both.
    let id = data["alarm_id"].as_i64().expect("alarm id");
    let (st, body) = app
        .post(&format!("/api/v1/alarms/{id}/ack"), r#"{"by": "ann"}"#)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    send_temp(&app, "pump-1", 2, 20.0).await;
    for kind in ["acknowledged", "cleared"] {
        let e = sse.next_event().await.json();
        assert_eq!(
            (e["kind"].as_str(), e["alarm_id"].as_i64()),
            (Some(kind), Some(id)),
            "{e}"
        );
        assert_eq!(ws_json(&mut ws).await["data"], e);
    }

    let text = metrics_text(addr).await;
    assert!(
        text.contains("pdm_push_clients{transport=\"websocket\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pdm_push_events_sent_total{transport=\"websocket\"} 3"),
        "{text}"
    );
    app.stop().await;
    // The server says goodbye to the WebSocket.
    match ws_next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

on_both_backends!(
    sse_filters_ids_and_resume,
    bad_requests_name_the_field,
    websocket_commands,
    an_alarm_reaches_both_clients,
);

/// Heartbeats every 50 ms: SSE comments, WebSocket pings; a WebSocket that answers none is
/// dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_unresponsive_websockets() {
    let app = TestApp::sqlite_with(|c| c.push.heartbeat_ms = 50).await;
    let addr = app.server().local_addr();

    let mut sse = SseClient::open(addr, "?kinds=job", &[]).await;
    let item = sse.next_item().await.expect("open");
    assert_eq!(item.event, ":", "a heartbeat comment: {item:?}");

    let mut ws = ws_open(addr, false).await;
    let ping = match guard("a ping", ws.next())
        .await
        .expect("open")
        .expect("message")
    {
        Message::Ping(p) => p,
        other => panic!("only pings are sent unasked: {other:?}"),
    };
    assert!(!ping.is_empty());
    // This client answers (tungstenite pongs as it reads): still subscribed a while later.
    for _ in 0..10 {
        assert!(matches!(ws.next().await, Some(Ok(Message::Ping(_)))));
    }
    let answer = ws_command(&mut ws, r#"{"op": "subscribe"}"#).await;
    assert_eq!(answer["op"], "subscribed");
    // Closed by the client: not counted as dropped.
    ws.close(None).await.expect("close");
    while let Some(Ok(_)) = guard("the close", ws.next()).await {}

    // A raw client that never answers: pings, then a close frame 4001, then the end.
    let token = common::admin_token(&addr.to_string()).await.expect("token");
    let mut raw = connect(addr, false).await;
    raw.write_all(
        format!(
            "GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Authorization: Bearer {token}\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("handshake");
    let mut got = Vec::new();
    guard("the unresponsive client's end", raw.read_to_end(&mut got))
        .await
        .expect("read");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    let close = [0x88u8, 9, 0x0f, 0xa1];
    assert!(
        got.windows(4).any(|w| w == close),
        "a close frame with code 4001: {got:?}"
    );
    let text = metrics_text(addr).await;
    assert!(
        text.contains(
            "pdm_push_clients_dropped_total{transport=\"websocket\",reason=\"unresponsive\"} 1"
        ),
        "{text}"
    );
    app.stop().await;
}

/// Clients that stop reading lag, are told so and are dropped; publishing never waits for them
/// and a client that keeps up gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_clients_are_dropped_while_publishing_goes_on() {
    let app = TestApp::sqlite_with(|c| {
        c.push.channel = 8;
        c.push.replay = 8;
    })
    .await;
    let addr = app.server().local_addr();
    let bus = app.server().state().bus.clone();

    let mut slow_sse = SseClient::open_with(addr, "?kinds=job", &[], true).await;
    let mut slow_ws = ws_open(addr, true).await;
    let answer = ws_command(&mut slow_ws, r#"{"op": "subscribe", "kinds": ["job"]}"#).await;
    assert_eq!(answer["op"], "subscribed");

    // The fast client reads in its own task and reports each id; the publisher waits for it
    // (so that it, and only it, keeps up), never for the slow ones.
    let mut fast = SseClient::open(addr, "?kinds=job", &[]).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let e = fast.next_event().await;
            let lagged = e.event == "lagged";
            let _ = seen_tx.send((e.event, e.id));
            if lagged {
                break;
            }
        }
    });
    let big = "x".repeat(64 * 1024);
    let n = 400;
    for i in 0..n {
        let id = bus.publish(PushKind::Job, None, &json!({ "n": i, "pad": big }));
        let (event, got) = guard("the fast client", seen.recv()).await.expect("reader");
        assert_eq!((event.as_str(), got), ("job", Some(id)), "event {i}");
    }
    reader.abort();

    // Now the slow ones read: what was buffered, then the lag notice, then the end.
    let mut events = 0;
    let lagged = loop {
        let item = slow_sse
            .next_item()
            .await
            .expect("a lag notice before the end");
        match item.event.as_str() {
            "job" => events += 1,
            "lagged" => break item,
            other => panic!("{other}"),
        }
    };
    assert!(events < n, "{events}");
    assert!(lagged.json()["missed"].as_u64() > Some(0), "{lagged:?}");
    assert!(slow_sse.next_item().await.is_none(), "the stream ends");

    let mut frames = 0;
    let notice = loop {
        match ws_next(&mut slow_ws).await {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).expect("json");
                if v["op"] == "lagged" {
                    break v;
                }
                assert_eq!(v["kind"], "job");
                frames += 1;
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(
        frames < n && notice["missed"].as_u64() > Some(0),
        "{notice}"
    );
    match ws_next(&mut slow_ws).await {
        Message::Close(Some(frame)) => {
            assert_eq!(
                (u16::from(frame.code), frame.reason.as_str()),
                (4000, "lagged")
            )
        }
        other => panic!("expected the close frame, got {other:?}"),
    }

    let text = metrics_text(addr).await;
    for transport in ["sse", "websocket"] {
        let line = format!(
            "pdm_push_clients_dropped_total{{transport=\"{transport}\",reason=\"lagged\"}} 1"
        );
        assert!(text.contains(&line), "{line}\n{text}");
    }
    app.stop().await;
}

/// A training's progress and its end reach a client filtered to the machine's jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_progress_is_pushed() {
    let app = TestApp::sqlite().await;
    let addr = app.server().local_addr();
    let (st, body) = app.post("/api/v1/machines", r#"{"key": "press-1"}"#).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    for s in ["a", "b"] {
        let (st, body) = app
            .post(
                "/api/v1/machines/press-1/sensors",
                &json!({ "key": s }).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{body}");
    }
    let base = (common::now_ms() / 1000) * 1000 - 3_000_000;
    for chunk in 0..4 {
        let rows: Vec<Value> = (chunk * 500..(chunk + 1) * 500)
            .map(|i| {
                let x = i as f64 / 10.0;
                json!({ "ts": base + i * 1000, "values": { "a": x.sin(), "b": x.cos() } })
            })
            .collect();
        let (st, body) = app
            .post(
                "/api/v1/machines/press-1/telemetry",
                &Value::Array(rows).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::ACCEPTED, "{body}");
    }
    let mut sse = SseClient::open(addr, "?kinds=job&machines=press-1", &[]).await;
    let (st, job) = app
        .post(
            "/api/v1/machines/press-1/models",
            &json!({ "from": base, "to": base + 2_000_000 }).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().expect("job id");
    let mut running = 0;
    let end = loop {
        let e = sse.next_event().await;
        assert_eq!(e.event, "job");
        let data = e.json();
        assert_eq!(
            (data["job"].as_i64(), data["machine"].as_str()),
            (Some(id), Some("press-1")),
            "{data}"
        );
        assert_eq!(data["kind"], "train");
        match data["status"].as_str() {
            Some("running") => running += 1,
            _ => break data,
        }
    };
    assert!(running >= 1, "progress before the end");
    assert_eq!(
        (end["status"].as_str(), end["progress"].as_f64()),
        (Some("succeeded"), Some(1.0)),
        "{end}"
    );
    app.stop().await;
}

/// A browser cannot send headers on an EventSource or a WebSocket: a signed-in user gets a
/// short-lived push ticket and puts it in the query; the route sees only its own parameters.
/// Without credentials, or with an access token in the query, the push routes answer 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_routes_take_a_ticket_in_the_query_and_nothing_long_lived() {
    let app = TestApp::sqlite().await;
    let addr = app.server().local_addr();
    let none = [("authorization", "")];
    let (st, v) = refused(addr, "/api/v1/events?kinds=alarm", &none).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    // A user's ticket (an API token has no session to tie one to).
    let (st, _, pair) = app
        .request(
            "POST",
            "/api/v1/auth/login",
            Some(&common::admin_login()),
            &none,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let bearer = format!("Bearer {access}");
    let (st, _, t) = app
        .request(
            "POST",
            "/api/v1/auth/ticket",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["expires_in"], 30);
    let ticket = t["ticket"].as_str().expect("ticket").to_owned();

    // Opened (200, an event stream) with the ticket alone.
    let _sse = SseClient::open(addr, &format!("?kinds=alarm&ticket={ticket}"), &none).await;
    let (st, v) = refused(addr, &format!("/api/v1/events?ticket={access}"), &none).await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "an access token is no ticket: {v}"
    );
    let (st, v) = refused(addr, "/api/v1/events?ticket=forged", &none).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    // A ticket is for the push routes only.
    let (st, _, v) = app
        .request(
            "GET",
            &format!("/api/v1/machines?ticket={ticket}"),
            None,
            &none,
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");

    // The WebSocket takes it too.
    let stream = connect(addr, false).await;
    let (mut ws, resp) = guard(
        "the WebSocket handshake",
        tokio_tungstenite::client_async(format!("ws://{addr}/api/v1/ws?ticket={ticket}"), stream),
    )
    .await
    .expect("handshake");
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    ws.close(None).await.expect("close");
    // The session ends: its tickets stop too.
    let (st, _, _) = app
        .request(
            "POST",
            "/api/v1/auth/logout",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = refused(addr, &format!("/api/v1/events?ticket={ticket}"), &none).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    app.stop().await;
}
