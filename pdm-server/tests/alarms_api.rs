//! The alarm API through `app()`, on SQLite and on PostgreSQL: listing and paging, reading with
//! events, acknowledge / shelve / unshelve and their refusals, rules CRUD with fleet defaults,
//! machines out of service, and the EEMUA 191 performance figures on a known set of events.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{now_ms, TestApp};
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Input, Monitor, Rule, Severity, StateName};
use pdm_core::store::ModelId;
use pdm_core::{AlarmTransition, MachineKey, Prediction, StoredAlarm, Timestamp};
use serde_json::{json, Value};

on_both_backends!(
    alarms_are_listed_read_and_commanded,
    alarm_rules_round_trip,
    machines_go_out_of_service_and_back,
    performance_gives_the_hand_computed_figures,
);

const MIN: i64 = 60_000;

fn key(s: &str) -> MachineKey {
    MachineKey::new(s).expect("key")
}

fn rule(id: &str, severity: &str) -> Rule {
    serde_json::from_value(json!({"id": id, "severity": severity,
        "kind": {"type": "anomaly", "k": 1, "n": 1}}))
    .expect("rule")
}

fn prediction(machine: &str, ts: i64, anomalous: bool) -> Prediction {
    Prediction {
        machine: key(machine),
        ts: Timestamp::from_millis(ts),
        model: ModelId(1),
        score: if anomalous { 2.0 } else { 0.5 },
        threshold: 1.0,
        anomalous,
        contributions: vec![],
        health: None,
        rul_s: None,
    }
}

async fn create_machine(app: &TestApp, machine: &str) {
    let (st, body) = app
        .post("/api/v1/machines", &json!({ "key": machine }).to_string())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// A monitor of `machine` and `rule` with its stored alarm, driven by predictions: what the live
/// path would have written (the monitor's own events and state JSON).
struct Driven {
    machine: String,
    rule_id: String,
    monitor: Monitor,
    stored: Option<StoredAlarm>,
}

impl Driven {
    /// Feeds one prediction and stores the transition it causes.
    async fn feed(&mut self, app: &TestApp, ts: i64, anomalous: bool) -> StoredAlarm {
        let p = prediction(&self.machine, ts, anomalous);
        let events = self.monitor.observe(&Input::Prediction(&p));
        assert!(!events.is_empty(), "the prediction at {ts} changed nothing");
        let alarm = self.monitor.alarm();
        let t = AlarmTransition {
            machine: key(&self.machine),
            rule_id: self.rule_id.clone(),
            alarm: self.stored.as_ref().map(|a| a.id),
            expected_version: self.stored.as_ref().map_or(0, |a| a.version),
            state: alarm.state().name(),
            severity: alarm.severity(),
            state_json: serde_json::to_string(&self.monitor).expect("monitor json"),
            closes: events.iter().any(|e| e.kind == AlarmEventKind::Cleared),
            events,
        };
        let stored = app
            .server()
            .state()
            .store
            .record_transition(&t)
            .await
            .expect("transition");
        self.stored = Some(stored.clone());
        stored
    }

    fn id(&self) -> i64 {
        self.stored.as_ref().map_or(0, |a| a.id.0)
    }
}

/// Raises an alarm of `machine` and `rule` at `ts` (an anomalous prediction).
async fn raise(app: &TestApp, machine: &str, r: &Rule, ts: i64) -> Driven {
    let mut d = Driven {
        machine: machine.into(),
        rule_id: r.id.clone(),
        monitor: Monitor::new(r),
        stored: None,
    };
    let a = d.feed(app, ts, true).await;
    assert_eq!(a.state, StateName::ActiveUnacked);
    d
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn ids(body: &Value) -> Vec<i64> {
    body["alarms"]
        .as_array()
        .expect("alarms")
        .iter()
        .map(|a| a["id"].as_i64().expect("id"))
        .collect()
}

async fn alarms_are_listed_read_and_commanded(app: TestApp) {
    create_machine(&app, "pump-1").await;
    create_machine(&app, "pump-2").await;
    let t0 = now_ms() - 60 * MIN;
    let hot = rule("hot", "high");
    let cold = rule("cold", "low");
    // pump-2/cold: raised, returned (unacknowledged), then acknowledged through the API:
    // acknowledged and cleared, closed.
    let mut c = raise(&app, "pump-2", &cold, t0).await;
    let returned = c.feed(&app, t0 + 1_000, false).await;
    assert_eq!(returned.state, StateName::ReturnedUnacked);
    let a1 = raise(&app, "pump-1", &hot, t0 + MIN).await;
    let a2 = raise(&app, "pump-1", &cold, t0 + 2 * MIN).await;
    let a3 = raise(&app, "pump-2", &hot, t0 + 3 * MIN).await;
    let [c_id, a1_id, a2_id, a3_id] = [&c, &a1, &a2, &a3].map(Driven::id);

    let (st, body) = app.post(&format!("/api/v1/alarms/{c_id}/ack"), "").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["acknowledged", "cleared"], "{body}");
    assert_eq!(body["alarm"]["state"], "normal");
    assert!(body["alarm"]["closed_at"].is_i64(), "{body}");
    assert_eq!(body["events"][0]["actor"], common::ADMIN_EMAIL);
    // A cleared alarm awaits no acknowledgement.
    let (st, body) = app.post(&format!("/api/v1/alarms/{c_id}/ack"), "").await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        message(&body).starts_with("cannot acknowledge an alarm that is normal"),
        "{body}"
    );

    // Lists: newest first, each filter.
    let list = |q: &'static str| {
        let app = &app;
        async move {
            let (st, body) = app.get(&format!("/api/v1/alarms{q}")).await;
            assert_eq!(st, StatusCode::OK, "{q}: {body}");
            body
        }
    };
    assert_eq!(ids(&list("").await), [a3_id, a2_id, a1_id, c_id]);
    assert_eq!(list("").await["next"], Value::Null);
    assert_eq!(ids(&list("?machine=pump-1").await), [a2_id, a1_id]);
    assert_eq!(ids(&list("?severity=high").await), [a3_id, a1_id]);
    assert_eq!(ids(&list("?rule=cold").await), [a2_id, c_id]);
    assert_eq!(ids(&list("?open=false").await), [c_id]);
    assert_eq!(ids(&list("?open=true&machine=pump-2").await), [a3_id]);
    assert_eq!(ids(&list("?state=normal").await), [c_id]);
    assert_eq!(
        ids(&list("?state=active_unacknowledged&severity=low").await),
        [a2_id]
    );
    let (st, body) = app
        .get(&format!(
            "/api/v1/alarms?from={}&to={}",
            t0 + MIN,
            t0 + 3 * MIN
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(ids(&body), [a2_id, a1_id]);
    // Paging: two per page, then the rest; `before` is the same as `cursor`.
    let page = list("?limit=2").await;
    assert_eq!(ids(&page), [a3_id, a2_id]);
    assert_eq!(page["next"], json!(a2_id.to_string()));
    let (_, page2) = app
        .get(&format!("/api/v1/alarms?limit=2&cursor={a2_id}"))
        .await;
    assert_eq!(ids(&page2), [a1_id, c_id]);
    assert_eq!(page2["next"], Value::Null, "a full last page has no next");
    let (_, page2) = app
        .get(&format!("/api/v1/alarms?limit=2&before={a2_id}"))
        .await;
    assert_eq!(ids(&page2), [a1_id, c_id]);
    for (q, named) in [
        ("?state=active", "state"),
        ("?severity=urgent", "severity"),
        ("?open=yes", "open"),
        ("?from=yesterday", "from"),
        ("?limit=0", "limit"),
        ("?cursor=x", "cursor"),
        ("?colour=red", "colour"),
        ("?to=yesterday", "to"),
        ("?from=2000&to=1000", "from must be earlier than to"),
        ("?before=x", "before"),
        ("?cursor=5&before=5", "cursor and before"),
    ] {
        let (st, body) = app.get(&format!("/api/v1/alarms{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(message(&body).contains(named), "{q}: {body}");
    }
    let (st, body) = app.get("/api/v1/alarms?machine=Pump%201").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).starts_with("machine: "), "{body}");
    let (_, body) = app.get("/api/v1/alarms?state=active").await;
    assert!(
        message(&body).contains("active_unacknowledged, active_acknowledged"),
        "the allowed names are listed: {body}"
    );
    let (_, body) = app.get("/api/v1/alarms?severity=urgent").await;
    assert!(
        message(&body).contains("low, medium, high, critical"),
        "{body}"
    );

    // One alarm with its events.
    let (st, body) = app.get(&format!("/api/v1/alarms/{c_id}")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["machine"], "pump-2");
    assert_eq!(body["rule"], "cold");
    assert_eq!(body["severity"], "low");
    assert_eq!(body["opened_at"], t0);
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["raised", "returned", "acknowledged", "cleared"]);
    assert_eq!(body["events"][0]["actor"], "system");
    assert_eq!(body["events"][0]["at"], t0);
    let (st, _) = app.get("/api/v1/alarms/999999").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get("/api/v1/alarms/abc").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Acknowledge with an actor; again is refused with the policy's message.
    let (st, body) = app
        .post(
            &format!("/api/v1/alarms/{a1_id}/ack"),
            r#"{"by": "ann", "reason": "on it"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["alarm"]["state"], "active_acknowledged");
    assert_eq!(
        body["events"][0]["actor"],
        format!("{} (for ann)", common::ADMIN_EMAIL)
    );
    let (st, body) = app.post(&format!("/api/v1/alarms/{a1_id}/ack"), "").await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(
        message(&body).starts_with("cannot acknowledge an alarm that is active_acknowledged"),
        "{body}"
    );
    for (bad, named) in [
        (r#"{"by": ""}"#, "by:"),
        (r#"{"by": "a\u0007b"}"#, "by:"),
        (r#"{"reason": 5}"#, "reason"),
        (r#"{"who": "ann"}"#, "who"),
    ] {
        let (st, body) = app.post(&format!("/api/v1/alarms/{a2_id}/ack"), bad).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(message(&body).contains(named), "{bad}: {body}");
    }
    let (st, body) = app.post("/api/v1/alarms/999999/ack", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

    // Shelve: bad bodies name the field.
    let until_past = now_ms() - 1_000;
    let until_far = now_ms() + 31 * 24 * 60 * MIN;
    for (bad, named) in [
        (json!({"for_s": 60}), "reason:"),
        (json!({"for_s": 60, "reason": " "}), "reason:"),
        (json!({"for_s": 60, "reason": "x".repeat(501)}), "reason:"),
        (json!({"reason": "noisy"}), "until, for_s:"),
        (
            json!({"reason": "noisy", "for_s": 60, "until": now_ms() + 60_000}),
            "until, for_s:",
        ),
        (json!({"reason": "noisy", "until": until_past}), "until:"),
        (json!({"reason": "noisy", "until": until_far}), "until:"),
        (json!({"reason": "noisy", "until": "soon"}), "until:"),
        (json!({"reason": "noisy", "for_s": 2_592_001}), "for_s:"),
        (json!({"reason": "noisy", "for_s": -5}), "for_s:"),
        (json!({"reason": "noisy", "for_s": 60, "by": ""}), "by:"),
        (
            json!({"reason": "noisy", "for_s": 60, "colour": "red"}),
            "colour",
        ),
    ] {
        let (st, body) = app
            .post(&format!("/api/v1/alarms/{a3_id}/shelve"), &bad.to_string())
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(message(&body).contains(named), "{bad}: {body}");
    }
    let (st, body) = app
        .post(&format!("/api/v1/alarms/{a3_id}/shelve"), "")
        .await;
    assert!(st.is_client_error(), "an empty body: {body}");
    let (st, body) = app
        .post(
            &format!("/api/v1/alarms/{a3_id}/shelve"),
            r#"{"for_s": 3600, "reason": "noisy sensor", "by": "bob"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["alarm"]["state"], "shelved");
    assert_eq!(body["alarm"]["shelf"]["reason"], "noisy sensor");
    assert_eq!(
        body["alarm"]["shelf"]["by"],
        format!("{} (for bob)", common::ADMIN_EMAIL)
    );
    let until = body["alarm"]["shelf"]["until"].as_i64().expect("until");
    assert!((until - now_ms() - 3_600_000).abs() < 60_000, "{body}");
    let (_, got) = app.get(&format!("/api/v1/alarms/{a3_id}")).await;
    assert_eq!(got["shelf"]["until"], until);
    assert_eq!(got["events"][1]["kind"], "shelved");
    assert_eq!(got["events"][1]["reason"], "noisy sensor");
    let (st, _) = app
        .post(
            "/api/v1/alarms/999999/shelve",
            r#"{"for_s": 60, "reason": "x"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Unshelve: a shelved one, then one that is not shelved.
    let (st, body) = app
        .post(&format!("/api/v1/alarms/{a3_id}/unshelve"), "")
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["kind"], "unshelved");
    assert_ne!(body["alarm"]["state"], "shelved");
    for id in [a3_id, a1_id] {
        let (st, body) = app
            .post(&format!("/api/v1/alarms/{id}/unshelve"), r#"{"by": "bob"}"#)
            .await;
        assert_eq!(st, StatusCode::CONFLICT, "{body}");
        assert!(
            message(&body).starts_with("cannot unshelve an alarm that is"),
            "{body}"
        );
    }
    let (st, _) = app.post("/api/v1/alarms/999999/unshelve", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn alarm_rules_round_trip(app: TestApp) {
    create_machine(&app, "pump-1").await;
    let bearing = json!({"severity": "medium", "kind": {"type": "anomaly", "k": 2, "n": 3}});
    let (st, body) = app
        .request(
            "PUT",
            "/api/v1/alarm-rules/bearing",
            Some(&bearing.to_string()),
            &[],
        )
        .await
        .into_status_body();
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "bearing");
    assert_eq!(body["scope"], "fleet");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["rule"]["id"], "bearing");
    assert_eq!(
        body["rule"]["kind"],
        json!({"type": "anomaly", "k": 2, "n": 3})
    );
    let stale = json!({"id": "stale-data", "severity": "low",
        "kind": {"type": "stale", "after_ms": 60000}, "enabled": false});
    let (st, body) = app
        .request(
            "PUT",
            "/api/v1/alarm-rules/stale-data",
            Some(&stale.to_string()),
            &[],
        )
        .await
        .into_status_body();
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["enabled"], false);
    let (st, body) = app.get("/api/v1/alarm-rules").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let listed: Vec<&str> = body
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(listed, ["bearing", "stale-data"]);
    let (st, body) = app.get("/api/v1/alarm-rules/bearing").await;
    assert_eq!(
        (st, body["rule"]["severity"].clone()),
        (StatusCode::OK, json!("medium"))
    );

    // The machine overrides `bearing`.
    let own = json!({"id": "bearing", "severity": "high",
        "kind": {"type": "anomaly", "k": 1, "n": 2}, "enabled": true});
    let (st, body) = app
        .request(
            "PUT",
            "/api/v1/machines/pump-1/alarm-rules/bearing",
            Some(&own.to_string()),
            &[],
        )
        .await
        .into_status_body();
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "machine");
    assert_eq!(body["machine"], "pump-1");
    let (st, body) = app.get("/api/v1/machines/pump-1/alarm-rules").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let effective: Vec<(String, String, bool)> = body
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_owned(),
                r["scope"].as_str().unwrap_or_default().to_owned(),
                r["overrides_default"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        effective,
        [
            ("bearing".into(), "machine".into(), true),
            ("stale-data".into(), "fleet".into(), false)
        ]
    );
    let (st, body) = app.get("/api/v1/machines/pump-1/alarm-rules/bearing").await;
    assert_eq!(
        (st, body["rule"]["severity"].clone()),
        (StatusCode::OK, json!("high"))
    );
    let (st, body) = app
        .get("/api/v1/machines/pump-1/alarm-rules/stale-data")
        .await;
    assert_eq!(
        (st, body["scope"].clone()),
        (StatusCode::OK, json!("fleet"))
    );

    // A frozen-value rule on one sensor, stored canonically (its defaults filled in).
    let (st, body) = app
        .request(
            "PUT",
            "/api/v1/machines/pump-1/alarm-rules/frozen-temp",
            Some(
                &json!({"severity": "low", "kind": {"type": "flatline", "sensor": "temperature", "after_ms": 600000}})
                    .to_string(),
            ),
            &[],
        )
        .await
        .into_status_body();
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(
        body["rule"]["kind"],
        json!({"type": "flatline", "sensor": "temperature", "epsilon": 0.0, "after_ms": 600000})
    );

    // Bad rules: 422 naming the field.
    for (path, bad, named) in [
        (
            "/api/v1/machines/pump-1/alarm-rules/frozen-temp",
            json!({"severity": "low", "kind": {"type": "flatline", "epsilon": -1.0, "after_ms": 1000}}),
            "rule.kind.epsilon",
        ),
        (
            "/api/v1/alarm-rules/frozen",
            json!({"severity": "low", "kind": {"type": "flatline", "after_ms": 0}}),
            "rule.kind.after_ms",
        ),
        (
            "/api/v1/alarm-rules/frozen",
            json!({"severity": "low", "kind": {"type": "flatline"}}),
            "after_ms",
        ),
        (
            "/api/v1/alarm-rules/bearing",
            json!({"severity": "low", "kind": {"type": "anomaly", "k": 6, "n": 5}}),
            "rule.kind.k",
        ),
        (
            "/api/v1/machines/pump-1/alarm-rules/bearing",
            json!({"severity": "low", "kind": {"type": "anomaly", "k": 1, "n": 1, "m": 2}}),
            "unknown field `m`",
        ),
        (
            "/api/v1/alarm-rules/bearing",
            json!({"id": "other", "severity": "low", "kind": {"type": "anomaly", "k": 1, "n": 1}}),
            "rule.id",
        ),
        (
            "/api/v1/alarm-rules/bearing",
            json!({"severity": "low", "kind": {"type": "anomaly", "k": 1, "n": 1}, "enabled": "yes"}),
            "enabled",
        ),
        (
            "/api/v1/alarm-rules/bearing",
            json!({"severity": "urgent", "kind": {"type": "anomaly", "k": 1, "n": 1}}),
            "urgent",
        ),
        (
            "/api/v1/alarm-rules/Bad%20Id",
            json!({"severity": "low", "kind": {"type": "anomaly", "k": 1, "n": 1}}),
            "rule id",
        ),
    ] {
        let (st, body) = app
            .request("PUT", path, Some(&bad.to_string()), &[])
            .await
            .into_status_body();
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(message(&body).contains(named), "{bad}: {body}");
    }
    // The bad PUTs changed nothing.
    let (_, body) = app.get("/api/v1/alarm-rules/bearing").await;
    assert_eq!(
        body["rule"]["kind"],
        json!({"type": "anomaly", "k": 2, "n": 3})
    );

    // Unknown machine and unknown rules: 404.
    let (st, _) = app.get("/api/v1/machines/nope/alarm-rules").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .request(
            "PUT",
            "/api/v1/machines/nope/alarm-rules/bearing",
            Some(&own.to_string()),
            &[],
        )
        .await
        .into_status_body();
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .delete("/api/v1/machines/nope/alarm-rules/bearing")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get("/api/v1/alarm-rules/nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get("/api/v1/machines/pump-1/alarm-rules/nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.delete("/api/v1/alarm-rules/nothing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Deleting the machine's rule brings the default back; deleting twice is 404.
    let (st, _) = app
        .delete("/api/v1/machines/pump-1/alarm-rules/bearing")
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app
        .delete("/api/v1/machines/pump-1/alarm-rules/bearing")
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, body) = app.get("/api/v1/machines/pump-1/alarm-rules/bearing").await;
    assert_eq!(body["scope"], "fleet");
    let (st, _) = app.delete("/api/v1/alarm-rules/bearing").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.get("/api/v1/alarm-rules/bearing").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    app.stop().await;
}

async fn machines_go_out_of_service_and_back(app: TestApp) {
    create_machine(&app, "pump-1").await;
    create_machine(&app, "pump-2").await;
    let (st, body) = app
        .post("/api/v1/machines/pump-1/out-of-service", "{}")
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).starts_with("reason:"), "{body}");
    let (st, body) = app
        .post(
            "/api/v1/machines/pump-1/out-of-service",
            r#"{"reason": "bearing swap", "by": "bob"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["machine"], "pump-1");
    assert_eq!(body["by"], format!("{} (for bob)", common::ADMIN_EMAIL));
    assert_eq!(body["reason"], "bearing swap");
    let (st, body) = app
        .post(
            "/api/v1/machines/pump-1/out-of-service",
            r#"{"reason": "again"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("already out of service"), "{body}");
    let (st, body) = app.get("/api/v1/out-of-service").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body[0]["machine"], "pump-1");
    let (_, body) = app.get("/api/v1/out-of-service?machine=pump-2").await;
    assert_eq!(body, json!([]));
    let (st, _) = app.get("/api/v1/out-of-service?machine=nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = app.delete("/api/v1/machines/pump-1/out-of-service").await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["reason"], "bearing swap");
    let (st, body) = app.delete("/api/v1/machines/pump-1/out-of-service").await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(message(&body).contains("not out of service"), "{body}");
    let (_, body) = app.get("/api/v1/out-of-service").await;
    assert_eq!(body, json!([]));
    let (st, _) = app
        .post("/api/v1/machines/nope/out-of-service", r#"{"reason": "x"}"#)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.delete("/api/v1/machines/nope/out-of-service").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Stores one episode of `machine` and `rule`: `events` (kind, at), closed when the last is
/// `cleared`.
async fn episode(app: &TestApp, machine: &str, rule_id: &str, events: &[(AlarmEventKind, i64)]) {
    let evs: Vec<AlarmEvent> = events
        .iter()
        .map(|&(kind, at)| AlarmEvent {
            kind,
            at: Timestamp::from_millis(at),
            actor: "system".into(),
            reason: kind.to_string(),
            severity: Severity::High,
        })
        .collect();
    let closes = events
        .last()
        .is_some_and(|(k, _)| *k == AlarmEventKind::Cleared);
    let monitor = Monitor::new(&rule(rule_id, "high"));
    let t = AlarmTransition {
        machine: key(machine),
        rule_id: rule_id.into(),
        alarm: None,
        expected_version: 0,
        state: if closes {
            StateName::Normal
        } else {
            StateName::ActiveUnacked
        },
        severity: Severity::High,
        state_json: serde_json::to_string(&monitor).expect("json"),
        events: evs,
        closes,
    };
    app.server()
        .state()
        .store
        .record_transition(&t)
        .await
        .expect("episode");
}

async fn performance_gives_the_hand_computed_figures(app: TestApp) {
    use AlarmEventKind::{Cleared, Raised};
    create_machine(&app, "pump-1").await;
    create_machine(&app, "pump-2").await;
    // One hour starting on a 10-minute boundary, three days ago.
    let t0 = (now_ms() - 3 * 24 * 60 * MIN) / (10 * MIN) * (10 * MIN);
    let to = t0 + 60 * MIN;
    // Interval 0: one alarm, still open (raised 59 minutes before `to`: not standing).
    episode(&app, "pump-1", "a", &[(Raised, t0 + MIN)]).await;
    // Interval 2: 12 alarms, each cleared a second later (a flood).
    for i in 0..12 {
        let at = t0 + 20 * MIN + i * 2_000;
        episode(
            &app,
            "pump-1",
            &format!("r{i}"),
            &[(Raised, at), (Cleared, at + 1_000)],
        )
        .await;
    }
    // Interval 4: pump-2/chat raised and cleared three times within 45 s (chattering).
    for s in [0, 20_000, 40_000] {
        let at = t0 + 40 * MIN + s;
        episode(
            &app,
            "pump-2",
            "chat",
            &[(Raised, at), (Cleared, at + 5_000)],
        )
        .await;
    }
    // Raised 30 h before `to` and still open: standing.
    episode(&app, "pump-2", "old", &[(Raised, to - 30 * 60 * MIN)]).await;
    // Outside the range: not counted.
    episode(&app, "pump-1", "late", &[(Raised, to), (Cleared, to + 1)]).await;

    let (st, p) = app
        .get(&format!("/api/v1/alarms/performance?from={t0}&to={to}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["from"], t0);
    assert_eq!(p["to"], to);
    assert_eq!(p["interval_ms"], 600_000);
    assert_eq!(p["alarms"], 16, "{p}");
    let avg = p["average_per_interval"].as_f64().expect("average");
    assert!((avg - 16.0 / 6.0).abs() < 1e-9, "{p}");
    assert_eq!(p["peak"], json!({"start": t0 + 20 * MIN, "count": 12}));
    assert_eq!(p["flood"]["intervals"], 1);
    assert_eq!(p["flood"]["duration_ms"], 600_000);
    let share = p["flood"]["share"].as_f64().expect("share");
    assert!((share - 1.0 / 6.0).abs() < 1e-9, "{p}");
    assert_eq!(
        p["chattering"],
        json!([{"machine": "pump-2", "rule": "chat", "bursts": 1, "latched": 0, "raised": 3}])
    );
    let standing = p["standing"].as_array().expect("standing");
    assert_eq!(standing.len(), 1, "{p}");
    assert_eq!(standing[0]["rule"], "old");
    assert_eq!(standing[0]["open_for_ms"], 30 * 60 * MIN);
    assert_eq!(p["benchmarks"]["average"]["level"], "likely_over_demanding");
    assert_eq!(p["benchmarks"]["peak"]["level"], "hard_to_cope_with");
    assert_eq!(p["benchmarks"]["flood"]["met"], false);
    assert_eq!(p["benchmarks"]["chattering"]["met"], false);
    assert_eq!(p["benchmarks"]["standing"]["met"], true);

    // The default range (the last 24 h) holds none of these alarms; the standing one has been
    // open for more than 3 days.
    let (st, p) = app.get("/api/v1/alarms/performance").await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["alarms"], 0);
    assert_eq!(p["peak"], Value::Null);
    assert_eq!(
        p["to"].as_i64().unwrap_or_default() - p["from"].as_i64().unwrap_or_default(),
        86_400_000
    );
    let open: Vec<&str> = p["standing"]
        .as_array()
        .expect("standing")
        .iter()
        .map(|s| s["rule"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(open, ["old", "a"], "{p}");

    for (q, named) in [
        (format!("?from={to}&to={t0}"), "from"),
        (
            format!("?from={}&to={to}", to - 91 * 24 * 60 * MIN),
            "90 days",
        ),
        ("?from=yesterday".to_owned(), "from"),
        ("?since=1".to_owned(), "since"),
    ] {
        let (st, body) = app.get(&format!("/api/v1/alarms/performance{q}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{q}: {body}");
        assert!(message(&body).contains(named), "{q}: {body}");
    }
    app.stop().await;
}

/// `TestApp::request` answers headers too; these tests only look at the status and body.
trait StatusBody {
    fn into_status_body(self) -> (StatusCode, Value);
}

impl StatusBody for (StatusCode, axum::http::HeaderMap, Value) {
    fn into_status_body(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}
