//! End to end over a real MQTT broker: publish, store, query back over HTTP; bad input over MQTT.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use common::{call, eventually_some, forget_session, mqtt_url, now_ms, publish_all, unique};
use pdm_ingest::mqtt::MqttSourceConfig;
use pdm_server::run::Server;
use serde_json::json;

async fn count(server: &Server, machine: &str, sensor: &str, from: i64, to: i64) -> usize {
    let q = format!(
        "/api/v1/machines/{machine}/readings?sensor={sensor}&from={from}&to={to}&limit=100000"
    );
    let (st, r) = call(server, "GET", &q, None).await;
    assert_eq!(st, StatusCode::OK, "{r}");
    r["points"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_readings_come_back_exactly_and_bad_messages_become_dead_letters() {
    let Some(url) = mqtt_url() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let client_id = unique("pdm-e2e");
    let mut cfg = common::config(dir.path(), None, false);
    cfg.codec.max_payload_bytes = 8 * 1024;
    cfg.mqtt = Some(MqttSourceConfig {
        client_id: client_id.clone(),
        ..MqttSourceConfig::new(url.clone())
    });
    let server = Server::start(cfg).await.expect("start");
    let machine = unique("e2e");
    let (st, _) = call(
        &server,
        "POST",
        "/api/v1/machines",
        Some(&json!({ "key": machine }).to_string()),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    for j in 0..10 {
        let body = json!({ "key": format!("s{j}"), "min": -1.0, "max": 1.0e9 }).to_string();
        let (st, _) = call(
            &server,
            "POST",
            &format!("/api/v1/machines/{machine}/sensors"),
            Some(&body),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
    }

    // Wait until the source's subscription is in place: a probe message must arrive.
    let topic = format!("pdm/{machine}/telemetry");
    let probe_ts = now_ms() - 3_600_000;
    eventually_some(Duration::from_secs(20), "the MQTT subscription", || {
        let (url, topic, server) = (url.clone(), topic.clone(), &server);
        let m = machine.clone();
        async move {
            let probe = json!({ "ts": probe_ts, "values": { "s0": -1.0 } }).to_string();
            publish_all(&url, &unique("probe"), vec![(topic, probe.into_bytes())]).await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            (count(server, &m, "s0", probe_ts, probe_ts + 1).await == 1).then_some(())
        }
    })
    .await;

    // 500 messages of 10 readings, then every kind of bad input.
    let t0 = now_ms() - 60_000;
    let mut messages: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| {
            let values: serde_json::Map<String, serde_json::Value> = (0..10)
                .map(|j| (format!("s{j}"), json!(i * 10 + j)))
                .collect();
            (
                topic.clone(),
                json!({ "ts": t0 + i, "values": values })
                    .to_string()
                    .into_bytes(),
            )
        })
        .collect();
    let later = t0 + 10_000;
    let bad: Vec<(String, String)> = vec![
        (topic.clone(), "{\"ts\": oops".into()),
        (
            topic.clone(),
            format!(
                r#"{{"ts":{later},"values":{{"s0":1}},"pad":"{}"}}"#,
                "x".repeat(9000)
            ),
        ),
        (
            "pdm/Bad Machine/telemetry".into(),
            format!(r#"{{"ts":{later},"values":{{"s0":1}}}}"#),
        ),
        (
            format!("pdm/{}/telemetry", unique("ghost")),
            format!(r#"{{"ts":{later},"values":{{"s0":1}}}}"#),
        ),
        (
            topic.clone(),
            format!(
                r#"[{{"ts":{later},"values":{{"s0":"NaN","s1":true,"s2":null}}}},{{"ts":"soon","values":{{"s0":1}}}},{{"ts":{},"values":{{"s0":1}}}},{{"ts":{},"values":{{"s4":1e999}}}},{{"ts":{},"values":{{"s0":-5,"nope":1,"Bad Key":1,"s3":7}}}}]"#,
                later + 50 * 365 * 86_400_000i64,
                later + 2,
                later + 1
            ),
        ),
    ];
    messages.extend(bad.into_iter().map(|(t, p)| (t, p.into_bytes())));
    publish_all(&url, &unique("pub"), messages).await;

    let to = t0 + 100_000;
    eventually_some(
        Duration::from_secs(60),
        "5000 readings of s0..s9 plus the valid one of the mixed message",
        || async {
            let mut n = 0;
            for j in 0..10 {
                n += count(&server, &machine, &format!("s{j}"), t0, to).await;
            }
            (n == 5001).then_some(())
        },
    )
    .await;
    // Exact: every value stored once, with its value.
    let q = format!("/api/v1/machines/{machine}/readings?sensor=s3&from={t0}&to={to}&limit=100000");
    let (_, r) = call(&server, "GET", &q, None).await;
    let points = r["points"].as_array().expect("points");
    assert_eq!(points.len(), 501);
    assert_eq!(points[0], json!({ "ts": t0, "value": 3.0 }));
    assert_eq!(points[499], json!({ "ts": t0 + 499, "value": 4993.0 }));
    assert_eq!(points[500], json!({ "ts": later + 1, "value": 7.0 }));

    let kinds = eventually_some(Duration::from_secs(20), "the dead letters", || async {
        let (_, list) = call(&server, "GET", "/api/v1/dead-letters?limit=10000", None).await;
        let mine: Vec<String> = list
            .as_array()
            .expect("list")
            .iter()
            .filter(|d| d["origin"] == "mqtt")
            .filter(|d| {
                let ch = d["channel"].as_str().unwrap_or("");
                ch == topic || ch == "pdm/Bad Machine/telemetry" || ch.starts_with("pdm/ghost-")
            })
            .map(|d| d["kind"].as_str().unwrap_or("").to_owned())
            .collect();
        (mine.len() >= 10).then_some(mine)
    })
    .await;
    for kind in [
        "malformed",
        "oversized",
        "bad_key",
        "unknown_machine",
        "bad_value",
        "bad_timestamp",
        "out_of_range",
        "unknown_sensor",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} dead letter from MQTT in {kinds:?}"
        );
    }
    let (st, _) = call(&server, "GET", "/health/ready", None).await;
    assert_eq!(st, StatusCode::OK);
    server.shutdown().await.expect("shutdown");
    forget_session(&url, &client_id).await;
}
