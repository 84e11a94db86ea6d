//! Alarms end to end, on SQLite and PostgreSQL: a real server (HTTP on TCP, MQTT ingestion from
//! the real broker, the live path on) is fed a simulated fleet over MQTT, one machine of which
//! overheats. Its sensor-limit rule (set through the alarm-rules API) raises exactly one alarm;
//! a real HTTP receiver in the test gets the alarm's events, each signed as the Standard
//! Webhooks specification says (checked here with hmac/sha2/base64, not with pdm-core's code);
//! an SSE client (`GET /api/v1/events?kinds=alarm`, connected before the first reading) gets
//! the same events, and nothing else; the alarm is acknowledged through the API and clears when
//! the temperature is back to normal; the healthy machines raise nothing.
//!
//! Why a sensor limit and not the trained model's `model-anomaly` rule (45 anomalous rows of
//! 60, the fleet default), though the model path runs in seconds too: tried on this fleet
//! (three compressors, 40 minutes of training as in tests/live.rs, a 30-minute overheating,
//! seeds 23 and 1 to 7, 12 runs), it passed 5 times. A healthy compressor raised a false alarm
//! 1.3 to 2.5 hours into its data in 4 runs (the model's known drift, docs/testing.md); the
//! faulty one raised a second alarm in 3 (the acknowledged alarm clears at the first dip below
//! 45 of 60 while the temperature cools down, and the next rise raises again: the anomaly rule
//! has no off delay), and in 1 it had not cleared by the end of the data. That is the model's
//! and the rule's tuning to settle, not something this test should hide by choosing seeds. The
//! limit is what a plant sets for this fault, and the path its alarm takes (MQTT, storage, the
//! live owner's monitors, the store's transition with its outbox, the dispatcher) is the one
//! the model's alarms take.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::receiver::{verify_signature, Delivery, Receiver};
use common::sse::SseClient;
use common::{
    forget_session, http, mqtt_url, now_ms, poll_json, publish_all, sim_messages, unique, TestApp,
};
use pdm_core::{MachineKey, Timestamp};
use pdm_ingest::mqtt::MqttSourceConfig;
use pdm_ingest::sim::{
    FaultConfig, FaultKind, MachineKind, SimConfig, SimMachineConfig, Simulator, Tick,
};
use pdm_server::config::ServerConfig;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;
const SENSOR: &str = "temperature";
const DEADBAND: f64 = 2.0;
const RULE: &str = "overheat";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overheating_machine_raises_one_alarm_delivered_signed_acknowledged_and_cleared_sqlite()
{
    end_to_end(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overheating_machine_raises_one_alarm_delivered_signed_acknowledged_and_cleared_postgres(
) {
    end_to_end(true).await;
}

/// `method path` over TCP to the server; the status and the JSON answer.
async fn call(addr: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    http(addr, method, path, body.as_deref())
        .await
        .unwrap_or_else(|| panic!("{method} {path}: no answer from {addr}"))
}

/// The alarms of `machine` (every one, open or closed), newest first.
async fn alarms_of(addr: &str, machine: &str) -> Vec<Value> {
    let (st, body) = call(
        addr,
        "GET",
        &format!("/api/v1/alarms?machine={machine}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body["next"].is_null(), "one page: {body}");
    body["alarms"].as_array().expect("alarms").clone()
}

/// The deliveries of `alarm` received so far, grouped by `webhook-id` (arrival order kept).
fn by_id(received: &[Delivery], alarm: i64) -> BTreeMap<String, Vec<Delivery>> {
    let mut out: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
    for d in received {
        if d.json()["data"]["alarm_id"].as_i64() == Some(alarm) {
            out.entry(d.id.clone()).or_default().push(d.clone());
        }
    }
    out
}

/// Waits until the receiver has a delivery of event kind `kind` of `alarm`.
async fn wait_delivered(r: &Receiver, alarm: i64, kind: &str) {
    common::eventually_some(
        Duration::from_secs(30),
        &format!("the {kind} event of alarm {alarm} at the receiver"),
        || async move {
            r.received()
                .iter()
                .any(|d| {
                    let j = d.json();
                    j["data"]["alarm_id"].as_i64() == Some(alarm) && j["data"]["kind"] == kind
                })
                .then_some(())
        },
    )
    .await;
}

/// The SSE client, connected before any reading was published and listening to every
/// machine's alarm events, got exactly the alarm's events (`raised`, `acknowledged`,
/// `cleared`), in order, with growing ids, and nothing of the healthy machines.
async fn sse_client_got_the_alarm_events(sse: &mut SseClient, alarm: i64, events: &[Value]) {
    let mut last_id = 0;
    for event in events {
        let item = sse.next_event().await;
        assert_eq!(item.event, "alarm", "{item:?}");
        let id = item.id.expect("an SSE id");
        assert!(id > last_id, "ids grow: {id} after {last_id}");
        last_id = id;
        let data = item.json();
        assert_eq!(
            data["alarm_id"], alarm,
            "only the faulty machine's alarm: {data}"
        );
        let got = if data["event"].is_object() {
            &data["event"]
        } else {
            &data
        };
        assert_eq!(got["kind"], event["kind"], "{data} for {event}");
        assert_eq!(got["at"], event["at"], "{data} for {event}");
    }
}

/// `(ts, value)` of `machine`'s `SENSOR` in `ticks`.
fn temperatures<'a>(ticks: &'a [Tick], machine: &'a str) -> impl Iterator<Item = (i64, f64)> + 'a {
    ticks.iter().filter_map(move |t| {
        let s = t.samples.iter().find(|s| s.machine.as_str() == machine)?;
        Some((s.ts.as_millis(), s.value(SENSOR)?))
    })
}

async fn end_to_end(pg: bool) {
    let Some(url) = mqtt_url() else { return };
    let started = Instant::now();
    let client_id = unique("pdm-alarm-e2e");
    let tweak = |cfg: &mut ServerConfig| {
        cfg.mqtt = Some(MqttSourceConfig {
            client_id: client_id.clone(),
            ..MqttSourceConfig::new(url.clone())
        });
        // No model is needed: the limit is on the readings.
        cfg.live.auto_train_after_s = 0;
        cfg.webhooks.allow_private_destinations = true;
        cfg.webhooks.retry_schedule_ms = Some(vec![300; 7]);
        cfg.webhooks.timeout_ms = 2_000;
    };
    let app = if pg {
        match TestApp::postgres_with(tweak).await {
            Some(app) => app,
            None => return,
        }
    } else {
        TestApp::sqlite_with(tweak).await
    };
    assert!(app.config().live.enabled, "the live path runs");
    let addr = app.server().local_addr().to_string();
    // Listening to every machine's alarms before the first reading.
    let mut sse = SseClient::open(app.server().local_addr(), "?kinds=alarm", &[]).await;

    // A fleet of three compressors; one loses its cooling for an hour. Fixed keys per backend
    // (the simulator draws each machine's noise from the seed and its key).
    let backend = if pg { "pg" } else { "sqlite" };
    let faulty = format!("e2e-{backend}-hot");
    let healthy = [format!("e2e-{backend}-ok-1"), format!("e2e-{backend}-ok-2")];
    // From yesterday 08:00 UTC (the day shift, in the past: the simulator need not wait).
    let start = (now_ms() / DAY_MS - 1) * DAY_MS + 8 * 3_600_000;
    let (fault_start_s, fault_s, duration_s) = (900, 3_600, 9_000);
    let machine = |key: &str, fault: Option<FaultConfig>| SimMachineConfig {
        key: MachineKey::new(key).expect("key"),
        kind: MachineKind::Compressor,
        fault,
    };
    let sim_cfg = SimConfig {
        seed: 23,
        interval_ms: 5_000,
        start: Some(Timestamp::from_millis(start)),
        speed: 1.0e6,
        clamp_to_now: true,
        duration_secs: Some(duration_s),
        register: false,
        machines: vec![
            machine(&healthy[0], None),
            machine(
                &faulty,
                Some(FaultConfig::new(
                    FaultKind::Overheating,
                    fault_start_s,
                    Some(fault_s),
                )),
            ),
            machine(&healthy[1], None),
        ],
    };
    let mut sim = Simulator::new(&sim_cfg).expect("simulator");
    let windows = sim.fault_windows();
    assert_eq!(windows.len(), 1);
    let fault_from = windows[0].start.as_millis();
    let fault_to = windows[0].end.expect("the fault ends").as_millis();
    let mut ticks = Vec::new();
    while let Some(t) = sim.next_tick() {
        ticks.push(t);
    }

    // The limit: 5 °C above anything a healthy compressor showed (the faulty one before its
    // fault included). The test's premises, from the data: the fault goes well beyond it, and
    // the temperature is back below the limit less the deadband long before the end.
    let healthy_max = ticks
        .iter()
        .flat_map(|t| &t.samples)
        .filter(|s| s.machine.as_str() != faulty || s.ts.as_millis() < fault_from)
        .filter_map(|s| s.value(SENSOR))
        .fold(f64::MIN, f64::max);
    let limit = (healthy_max + 5.0).ceil();
    let peak = temperatures(&ticks, &faulty)
        .filter(|(ts, _)| *ts < fault_to)
        .map(|(_, v)| v)
        .fold(f64::MIN, f64::max);
    assert!(
        peak > limit + 10.0,
        "the fault peaks at {peak:.1}, limit {limit}"
    );
    let end = start + duration_s as i64 * 1000;
    let tail_max = temperatures(&ticks, &faulty)
        .filter(|(ts, _)| *ts >= end - 1_200_000)
        .map(|(_, v)| v)
        .fold(f64::MIN, f64::max);
    assert!(
        tail_max < limit - DEADBAND - 1.0,
        "the last 20 minutes reach {tail_max:.1}, limit {limit}"
    );

    // The machines, the rule (fleet-wide, through the API), the webhook at a real receiver.
    for key in healthy.iter().chain([&faulty]) {
        let (st, body) = call(
            &addr,
            "POST",
            "/api/v1/machines",
            Some(json!({"key": key, "kind": "compressor"})),
        )
        .await;
        assert_eq!(st, 201, "{body}");
        for spec in MachineKind::Compressor.sensors() {
            let (st, body) = call(
                &addr,
                "POST",
                &format!("/api/v1/machines/{key}/sensors"),
                Some(json!({"key": spec.key, "min": spec.min, "max": spec.max})),
            )
            .await;
            assert_eq!(st, 201, "{body}");
        }
    }
    let (st, body) = call(
        &addr,
        "PUT",
        &format!("/api/v1/alarm-rules/{RULE}"),
        Some(
            json!({"severity": "high", "kind": {"type": "sensor_limit", "sensor": SENSOR,
            "above": limit, "deadband": DEADBAND, "on_delay_ms": 30_000, "off_delay_ms": 30_000}}),
        ),
    )
    .await;
    assert!((200..300).contains(&st), "{st}: {body}");
    let (receiver_url, receiver) = Receiver::start(|_| false, Duration::ZERO).await;
    let (st, hook) = call(
        &addr,
        "POST",
        "/api/v1/webhooks",
        Some(json!({"url": receiver_url})),
    )
    .await;
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"]
        .as_str()
        .expect("the secret, shown on create")
        .to_owned();
    let hook_id = hook["id"].as_i64().expect("id");

    // The subscription is up once a first message is stored.
    let first = sim_messages(&ticks[..1], 1);
    common::eventually_some(Duration::from_secs(20), "the MQTT subscription", || {
        let (url, first, addr, probe) =
            (url.clone(), first.clone(), addr.clone(), healthy[0].clone());
        async move {
            publish_all(&url, &unique("probe"), first).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (_, r) = call(
                &addr,
                "GET",
                &format!("/api/v1/machines/{probe}/latest"),
                None,
            )
            .await;
            (r["values"].as_array().map_or(0, Vec::len) > 0).then_some(())
        }
    })
    .await;

    // Up to the end of the fault: the faulty machine raises its alarm, delivered at once.
    let phase1 = ticks
        .iter()
        .position(|t| t.ts.as_millis() >= fault_to)
        .expect("after the fault");
    publish_all(&url, &unique("pub"), sim_messages(&ticks[..phase1], 60)).await;
    let raised = poll_json(
        &addr,
        &format!("/api/v1/alarms?machine={faulty}"),
        60,
        |v| v["alarms"].as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let alarms = raised["alarms"].as_array().expect("alarms");
    assert_eq!(alarms.len(), 1, "one alarm: {raised}");
    let alarm = &alarms[0];
    let id = alarm["id"].as_i64().expect("id");
    assert_eq!(alarm["rule"], RULE);
    assert_eq!(alarm["state"], "active_unacknowledged", "{alarm}");
    assert_eq!(alarm["severity"], "high");
    let opened = alarm["opened_at"].as_i64().expect("opened_at");
    assert!(
        (fault_from..fault_to).contains(&opened),
        "raised inside the fault window: {opened} not in [{fault_from}, {fault_to})"
    );
    wait_delivered(&receiver, id, "raised").await;

    // Acknowledged through the API: a person's event, delivered too.
    let (st, acked) = call(
        &addr,
        "POST",
        &format!("/api/v1/alarms/{id}/ack"),
        Some(json!({"by": "ann", "reason": "cooling fan checked"})),
    )
    .await;
    assert_eq!(st, 200, "{acked}");
    assert_eq!(acked["alarm"]["state"], "active_acknowledged", "{acked}");
    assert_eq!(acked["events"][0]["kind"], "acknowledged", "{acked}");
    wait_delivered(&receiver, id, "acknowledged").await;
    let (st, again) = call(&addr, "POST", &format!("/api/v1/alarms/{id}/ack"), None).await;
    assert_eq!(st, 409, "a second acknowledgement is refused: {again}");

    // Still open: it is the readings of the cooled-down machine that clear it.
    let (_, still) = call(&addr, "GET", &format!("/api/v1/alarms/{id}"), None).await;
    assert!(still["closed_at"].is_null(), "{still}");
    assert_eq!(still["state"], "active_acknowledged", "{still}");

    // The rest: the temperature comes back down and the acknowledged alarm clears.
    publish_all(&url, &unique("pub"), sim_messages(&ticks[phase1..], 60)).await;
    let closed = poll_json(&addr, &format!("/api/v1/alarms/{id}"), 60, |v| {
        !v["closed_at"].is_null()
    })
    .await;
    assert_eq!(closed["state"], "normal", "{closed}");
    let events = closed["events"].as_array().expect("events").clone();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds, ["raised", "acknowledged", "cleared"], "{closed}");
    assert_eq!(
        events[1]["actor"],
        format!("{} (for ann)", common::ADMIN_EMAIL)
    );
    // The readings are a replay of yesterday: their clear is stamped no earlier than the
    // acknowledgement before it (events never go back in time, docs/alarms.md).
    let acked_at = events[1]["at"].as_i64().expect("at");
    assert_eq!(events[2]["at"].as_i64(), Some(acked_at), "{closed}");
    assert_eq!(
        events[2]["actor"], "system",
        "cleared by the condition: {closed}"
    );
    wait_delivered(&receiver, id, "cleared").await;

    // Everything stored and evaluated: the last reading of every machine, then the live path
    // drained. Only then does "no alarm" on the healthy machines mean something.
    let last_ts = ticks.last().expect("ticks").ts.as_millis();
    for key in healthy.iter().chain([&faulty]) {
        poll_json(&addr, &format!("/api/v1/machines/{key}/latest"), 60, |v| {
            v["values"]
                .as_array()
                .is_some_and(|vals| vals.iter().all(|x| x["ts"].as_i64() == Some(last_ts)))
        })
        .await;
    }
    app.live().flush().await;
    for key in &healthy {
        let alarms = alarms_of(&addr, key).await;
        assert!(alarms.is_empty(), "the healthy {key} raised: {alarms:?}");
    }
    let alarms = alarms_of(&addr, &faulty).await;
    assert_eq!(
        alarms.len(),
        1,
        "exactly one alarm for the fault: {alarms:?}"
    );

    // Each event reached the receiver under one webhook-id of its own, signed with the secret.
    let received = receiver.received();
    for d in &received {
        verify_signature(&secret, d).unwrap_or_else(|e| panic!("delivery {}: {e}", d.id));
        let j = d.json();
        assert_eq!(
            j["data"]["machine"],
            faulty.as_str(),
            "only the faulty machine: {j}"
        );
        assert_eq!(
            j["type"],
            format!("alarm.{}", j["data"]["kind"].as_str().unwrap_or("?"))
        );
    }
    let delivered = by_id(&received, id);
    assert_eq!(
        delivered.len(),
        events.len(),
        "one webhook-id per event: {delivered:?}"
    );
    for event in &events {
        let matching: Vec<&String> = delivered
            .iter()
            .filter(|(_, ds)| {
                let data = &ds[0].json()["data"];
                data["kind"] == event["kind"]
                    && data["at"] == event["at"]
                    && data["actor"] == event["actor"]
                    && data["severity"] == event["severity"]
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "event {event} delivered under {matching:?}"
        );
        let attempts = &delivered[matching[0]];
        assert!(
            attempts.iter().all(|d| d.body == attempts[0].body),
            "every attempt of {} carries the same body",
            matching[0]
        );
    }
    let (st, log) = call(
        &addr,
        "GET",
        &format!("/api/v1/webhooks/{hook_id}/deliveries"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{log}");
    let log = log.as_array().expect("deliveries");
    assert_eq!(log.len(), events.len(), "{log:?}");
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:?}");

    sse_client_got_the_alarm_events(&mut sse, id, &events).await;

    eprintln!(
        "alarm end to end ({}): limit {limit} (healthy max {healthy_max:.2}, fault peak {peak:.1}), \
         alarm {id} raised {} s (simulated) after the fault began, {} deliveries, {:.1} s",
        if pg { "PostgreSQL" } else { "SQLite" },
        (opened - fault_from) / 1000,
        received.len(),
        started.elapsed().as_secs_f64()
    );
    app.stop().await;
    forget_session(&url, &client_id).await;
}
