//! `GET /api/v1/dashboard` on SQLite and PostgreSQL: machines by health band from their latest
//! predictions, the machines scoring highest, open alarms by severity and state, work orders by
//! status and overdue, dead letters of the last 24 hours, alarm performance and precision; a
//! caller without `alarms:read` or `work_orders:read` gets those sections as `null`.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{as_user, raise_alarm, signed_in, TestApp};
use pdm_core::alarm::Severity;
use pdm_core::prediction::Prediction;
use pdm_core::store::NewModel;
use pdm_core::{MachineKey, Timestamp};
use serde_json::json;

on_both_backends!(the_dashboard_counts_the_fleet);

async fn predict(app: &TestApp, machine: &str, score: f64, health: Option<f64>, age_ms: i64) {
    let store = &app.server().state().store;
    let key = MachineKey::new(machine).expect("key");
    let now = Timestamp::now();
    let model = store
        .create_model(&NewModel {
            machine: key.clone(),
            kind: "pipeline".into(),
            trained_from: now.add_millis(-7_200_000),
            trained_to: now.add_millis(-3_600_000),
            parameters: "{}".into(),
            metrics: "{}".into(),
            bytes: b"model".to_vec(),
        })
        .await
        .expect("model");
    let at = |ms: i64| Timestamp::from_millis(now.as_millis() - ms);
    let p = |ts, score| Prediction {
        machine: key.clone(),
        ts,
        model: model.id,
        score,
        threshold: 1.0,
        anomalous: score >= 1.0,
        contributions: vec![],
        health,
        rul_s: None,
    };
    // An older, higher one first: only the latest counts.
    store
        .write_predictions(&[p(at(age_ms + 60_000), 9.0), p(at(age_ms), score)])
        .await
        .expect("predictions");
}

async fn the_dashboard_counts_the_fleet(app: TestApp) {
    for m in ["a", "b", "c", "d", "e"] {
        let (st, _) = app
            .post("/api/v1/machines", &json!({ "key": m }).to_string())
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    predict(&app, "a", 0.2, None, 1_000).await; // good
    predict(&app, "b", 1.2, None, 1_000).await; // poor
    predict(&app, "c", 0.1, Some(0.1), 1_000).await; // critical by health
    predict(&app, "d", 3.0, None, 2 * 3_600_000).await; // stale: unknown
                                                        // e: no prediction, unknown
    raise_alarm(&app, "b", "hot", Severity::High).await;
    raise_alarm(&app, "c", "vib", Severity::Critical).await;
    raise_alarm(&app, "c", "hot", Severity::High).await;
    for (title, due) in [
        ("late", "2020-01-01T00:00:00Z"),
        ("later", "2999-01-01T00:00:00Z"),
    ] {
        let (st, v) = app
            .post(
                "/api/v1/work-orders",
                &json!({"title": title, "machine": "b", "due_at": due}).to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let (st, _) = app
        .post("/api/v1/machines/a/telemetry", "not json at all")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, d) = app.get("/api/v1/dashboard").await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["machines"], 5);
    assert_eq!(
        d["machines_by_health"],
        json!({"good": 1, "fair": 0, "poor": 1, "critical": 1, "unknown": 2}),
        "{d}"
    );
    let top: Vec<&str> = d["top_anomalies"]
        .as_array()
        .expect("top")
        .iter()
        .filter_map(|t| t["machine"].as_str())
        .collect();
    assert_eq!(
        top,
        ["b", "a", "c"],
        "by score over threshold, fresh only: {d}"
    );
    assert_eq!(d["alarms"]["open"], 3);
    assert_eq!(
        d["alarms"]["by_severity"],
        json!({"critical": 1, "high": 2})
    );
    assert_eq!(
        d["alarms"]["by_state"],
        json!({"active_unacknowledged": 3}),
        "{d}"
    );
    assert!(d["alarms"]["performance"].is_object(), "{d}");
    assert_eq!(d["work_orders"]["by_status"], json!({"open": 2}));
    assert_eq!(d["work_orders"]["overdue"], 1);
    assert!(d["work_orders"]["alarm_precision"].is_object(), "{d}");
    assert_eq!(d["dead_letters_24h"], 1);

    // A role that reads machines only sees no alarms or work orders.
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/watcher",
            Some(r#"{"description": "machines only", "permissions": ["machines:read"]}"#),
            &[],
        )
        .await;
    assert!(st.is_success(), "{v}");
    let who = signed_in(&app, "w@test.pdm", "watcher").await;
    let (st, d) = as_user(&app, &who, "GET", "/api/v1/dashboard", None).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert!(d["alarms"].is_null() && d["work_orders"].is_null(), "{d}");
    assert_eq!(d["machines"], 5);
    app.stop().await;
}
