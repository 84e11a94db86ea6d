//! The MQTT source against a real broker (`PDM_TEST_MQTT_URL`, e.g. `mqtt://127.0.0.1:1883`).
//!
//! Each test uses its own machine key, topic and client ids, so tests run in parallel on one
//! broker; persistent sessions are removed at the end.

#![cfg(feature = "mqtt")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::store::TestStore;
use pdm_core::{Catalog, Engine, EngineConfig, Metrics, RejectKind, TelemetryStore, Timestamp};
use pdm_ingest::mqtt::{
    MqttConnectionConfig, MqttPublisherConfig, MqttSourceConfig, MqttState, MqttStatus,
};
use pdm_ingest::{CodecConfig, Intake};
use pdm_testkit::{eventually, init_tracing, mqtt_url, unique};

const WAIT: Duration = Duration::from_secs(20);

/// An engine with an MQTT source, writing into a shared SQLite store.
struct Running {
    engine: Engine,
    metrics: Arc<Metrics>,
    status: MqttStatus,
}

async fn start(store: &Arc<TestStore>, config: MqttSourceConfig, codec: CodecConfig) -> Running {
    init_tracing();
    let catalog = Arc::new(
        Catalog::load(store.clone(), true)
            .await
            .expect("catalog loads"),
    );
    let metrics = Arc::new(Metrics::default());
    let telemetry: Arc<dyn TelemetryStore> = store.clone();
    let mut engine = Engine::start(
        telemetry,
        catalog.clone(),
        metrics.clone(),
        EngineConfig {
            max_retry_delay_ms: 100,
            shutdown_timeout_ms: 10_000,
            ..EngineConfig::default()
        },
    );
    let intake = Arc::new(Intake::new(catalog, codec));
    let source = config.build(intake).expect("valid MQTT settings");
    let mut status = source.status();
    engine.add_source(Box::new(source));
    assert!(
        status.wait_for(MqttState::Subscribed, WAIT).await,
        "source did not subscribe (state {:?})",
        status.state()
    );
    Running {
        engine,
        metrics,
        status,
    }
}

fn source_config(url: &str, client_id: &str, topic: &str) -> MqttSourceConfig {
    MqttSourceConfig {
        connection: MqttConnectionConfig {
            reconnect_backoff_min_ms: 100,
            reconnect_backoff_max_ms: 1_000,
            ..MqttConnectionConfig::new(url)
        },
        client_id: client_id.to_owned(),
        topic: topic.to_owned(),
        ..MqttSourceConfig::default()
    }
}

async fn publish_all(url: &str, messages: &[(String, Vec<u8>)]) {
    let publisher = MqttPublisherConfig {
        client_id: unique("pdm-test-pub"),
        ..MqttPublisherConfig::new(url)
    }
    .connect()
    .expect("publisher settings");
    for (topic, payload) in messages {
        publisher
            .publish(topic, payload.clone())
            .await
            .expect("queued");
    }
    publisher
        .disconnect(WAIT)
        .await
        .expect("every message acknowledged by the broker");
}

/// Ends the broker's persistent session of `client_id` (a clean-session connection does).
async fn purge_session(url: &str, client_id: &str) {
    let p = MqttPublisherConfig {
        client_id: client_id.to_owned(),
        ..MqttPublisherConfig::new(url)
    }
    .connect()
    .expect("settings");
    p.wait_connected(WAIT).await.expect("connects");
    p.disconnect(WAIT).await.expect("disconnects");
}

fn item(ts: i64, values: &str) -> String {
    format!(r#"{{"ts":{ts},"values":{{{values}}}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_stored_then_acknowledged() {
    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let topic = format!("pdm/{machine}/telemetry");
    let client_id = unique("pdm-test-src");
    let store = TestStore::new().await;
    let run = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;

    let now = Timestamp::now().as_millis();
    let messages: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| {
            let body = item(now - i, &format!(r#""temperature":{i}.5,"flow":{i}"#));
            (topic.clone(), body.into_bytes())
        })
        .collect();
    publish_all(&url, &messages).await;
    eventually(WAIT, "100 readings stored", || async {
        store.readings_of(&machine).await.len() == 100
    })
    .await;
    assert_eq!(run.metrics.snapshot().messages_mqtt, 50);
    run.engine.shutdown().await;

    // While the source is down, the broker queues for its persistent session.
    let offline: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            let body = item(now - 100 - i, r#""temperature":-1"#);
            (topic.clone(), body.into_bytes())
        })
        .collect();
    publish_all(&url, &offline).await;

    // Same client id again: the queued messages arrive, and none of the first 50, which were
    // all acknowledged.
    let again = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;
    eventually(WAIT, "the 5 queued messages", || async {
        store.readings_of(&machine).await.len() == 105
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        again.metrics.snapshot().messages_mqtt,
        5,
        "nothing redelivered"
    );
    assert_eq!(again.metrics.snapshot().readings_duplicate, 0);
    again.engine.shutdown().await;
    assert_eq!(again.status.state(), MqttState::Stopped);
    purge_session(&url, &client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unstored_messages_are_not_acknowledged_and_come_back_after_restart() {
    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let topic = format!("pdm/{machine}/telemetry");
    let client_id = unique("pdm-test-src");
    let store = TestStore::new().await;
    store.fail_writes(true);
    let run = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;
    let now = Timestamp::now().as_millis();
    let messages: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            (
                topic.clone(),
                item(now - i, r#""temperature":1"#).into_bytes(),
            )
        })
        .collect();
    publish_all(&url, &messages).await;
    // The engine gives up on a failing write after 3 attempts; the source then leaves the
    // messages unacknowledged.
    eventually(WAIT, "failed write attempts", || async {
        store.write_attempts() >= 3
    })
    .await;
    run.engine.shutdown().await;
    assert_eq!(store.total_readings().await, 0);

    store.fail_writes(false);
    let again = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;
    eventually(WAIT, "redelivered readings stored", || async {
        store.readings_of(&machine).await.len() == 3
    })
    .await;
    assert!(again.metrics.snapshot().messages_mqtt >= 3);
    again.engine.shutdown().await;
    purge_session(&url, &client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reconnects_by_itself_to_get_unstored_messages_again() {
    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let topic = format!("pdm/{machine}/telemetry");
    let client_id = unique("pdm-test-src");
    let store = TestStore::new().await;
    store.fail_writes(true);
    let run = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;
    let now = Timestamp::now().as_millis();
    publish_all(
        &url,
        &[(topic.clone(), item(now, r#""temperature":7"#).into_bytes())],
    )
    .await;
    eventually(WAIT, "a failed write", || async {
        store.write_attempts() >= 3
    })
    .await;
    store.fail_writes(false);
    eventually(WAIT, "the reading stored after redelivery", || async {
        store.readings_of(&machine).await.len() == 1
    })
    .await;
    let snapshot = run.metrics.snapshot();
    assert!(
        snapshot.messages_mqtt >= 2,
        "the message was delivered again: {snapshot:?}"
    );
    run.engine.shutdown().await;
    purge_session(&url, &client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_become_dead_letters_and_valid_items_still_arrive() {
    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let telemetry = format!("pdm/{machine}/telemetry");
    let client_id = unique("pdm-test-src");
    let store = TestStore::new().await;
    let codec = CodecConfig {
        max_payload_bytes: 4096,
        ..CodecConfig::default()
    };
    let config = MqttSourceConfig {
        max_packet_bytes: 64 * 1024,
        ..source_config(&url, &client_id, &format!("pdm/{machine}/#"))
    };
    let run = start(&store, config, codec).await;

    let now = Timestamp::now().as_millis();
    let mixed = format!(
        "[{},{},{}]",
        item(now, r#""temperature":61.5,"flow":"high""#),
        r#"{"values":{"temperature":1}}"#,
        item(now - 1000, r#""temperature":62"#),
    );
    let big = format!("[{}]", vec![item(now, r#""a":1"#); 300].join(","));
    assert!(big.len() > 4096);
    let messages = vec![
        (telemetry.clone(), mixed.into_bytes()),
        (telemetry.clone(), b"{not json".to_vec()),
        (format!("pdm/{machine}/status"), b"{}".to_vec()),
        (telemetry.clone(), big.into_bytes()),
    ];
    publish_all(&url, &messages).await;
    eventually(WAIT, "5 dead letters", || async {
        store.all_dead_letters().await.len() == 5
    })
    .await;
    assert_eq!(
        store.readings_of(&machine).await,
        vec![
            ("temperature".to_owned(), now - 1000, 62.0),
            ("temperature".to_owned(), now, 61.5)
        ]
    );
    let letters = store.all_dead_letters().await;
    let mut kinds: Vec<&str> = letters.iter().map(|d| d.kind.as_str()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "bad_timestamp",
            "bad_topic",
            "bad_value",
            "malformed",
            "oversized"
        ]
    );
    let bad_value = letters
        .iter()
        .find(|d| d.kind == RejectKind::BadValue)
        .expect("bad value letter");
    assert!(bad_value.reason.contains("item 0") && bad_value.reason.contains("'flow'"));
    assert_eq!(bad_value.channel, telemetry);
    assert_eq!(bad_value.machine.as_deref(), Some(machine.as_str()));
    assert_eq!(run.metrics.snapshot().dead_letters_total(), 5);
    run.engine.shutdown().await;
    purge_session(&url, &client_id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_splits_the_messages() {
    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let topic = format!("pdm/{machine}/telemetry");
    let group = unique("g");
    let ids = [unique("pdm-test-a"), unique("pdm-test-b")];
    let store = TestStore::new().await;
    let mut running = Vec::new();
    for id in &ids {
        let config = MqttSourceConfig {
            shared_group: Some(group.clone()),
            ..source_config(&url, id, &topic)
        };
        assert_eq!(config.subscription(), format!("$share/{group}/{topic}"));
        running.push(start(&store, config, CodecConfig::default()).await);
    }
    let now = Timestamp::now().as_millis();
    let messages: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            (
                topic.clone(),
                item(now - i, r#""temperature":3"#).into_bytes(),
            )
        })
        .collect();
    publish_all(&url, &messages).await;
    eventually(WAIT, "40 readings", || async {
        store.readings_of(&machine).await.len() == 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let counts: Vec<u64> = running
        .iter()
        .map(|r| r.metrics.snapshot().messages_mqtt)
        .collect();
    assert_eq!(
        counts.iter().sum::<u64>(),
        40,
        "each message to one member: {counts:?}"
    );
    assert!(
        counts.iter().all(|n| *n > 0),
        "both members got some: {counts:?}"
    );
    for r in running {
        r.engine.shutdown().await;
    }
    for id in &ids {
        purge_session(&url, id).await;
    }
}

/// Needs no broker: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_retried_and_shutdown_is_prompt() {
    let store = TestStore::new().await;
    let catalog = Arc::new(Catalog::load(store.clone(), true).await.expect("loads"));
    let telemetry: Arc<dyn TelemetryStore> = store.clone();
    let mut engine = Engine::start(
        telemetry,
        catalog.clone(),
        Arc::new(Metrics::default()),
        EngineConfig::default(),
    );
    let config = MqttSourceConfig {
        connection: MqttConnectionConfig {
            connect_timeout_secs: 1,
            reconnect_backoff_min_ms: 50,
            reconnect_backoff_max_ms: 200,
            ..MqttConnectionConfig::new("mqtt://user:hunter2@127.0.0.1:1")
        },
        ..MqttSourceConfig::default()
    };
    assert!(!format!("{config:?}").contains("hunter2"));
    let source = config
        .build(Arc::new(Intake::new(catalog, CodecConfig::default())))
        .expect("valid settings");
    let mut status = source.status();
    engine.add_source(Box::new(source));
    assert!(status.wait_for(MqttState::Disconnected, WAIT).await);
    let started = std::time::Instant::now();
    engine.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status.state(), MqttState::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_publishes_through_the_broker_into_the_store() {
    use pdm_core::{MachineKey, ShutdownTrigger};
    use pdm_ingest::sim::{self, MachineKind, SimConfig, SimMachineConfig, Simulator};

    let Some(url) = mqtt_url() else { return };
    let machine = unique("m");
    let topic = format!("pdm/{machine}/telemetry");
    let client_id = unique("pdm-test-src");
    let store = TestStore::new().await;
    let run = start(
        &store,
        source_config(&url, &client_id, &topic),
        CodecConfig::default(),
    )
    .await;

    let config = SimConfig {
        interval_ms: 1_000,
        speed: 1_000.0,
        duration_secs: Some(30),
        start: Some(Timestamp::from_millis(
            Timestamp::now().as_millis() - 60_000,
        )),
        machines: vec![SimMachineConfig {
            key: MachineKey::new(&machine).expect("valid key"),
            kind: MachineKind::Compressor,
            fault: None,
        }],
        ..SimConfig::default()
    };
    let simulator = Simulator::new(&config).expect("valid simulation");
    let (_trigger, shutdown) = ShutdownTrigger::new();
    let publisher = MqttPublisherConfig {
        client_id: unique("pdm-test-sim"),
        ..MqttPublisherConfig::new(&url)
    };
    let summary = sim::publish_to_mqtt(&publisher, simulator, shutdown)
        .await
        .expect("published");
    assert_eq!(summary.messages, 30);
    assert_eq!(summary.readings, 150);
    eventually(WAIT, "150 readings stored", || async {
        store.readings_of(&machine).await.len() == 150
    })
    .await;
    run.engine.shutdown().await;
    purge_session(&url, &client_id).await;
}
