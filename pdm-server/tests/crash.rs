//! Crash safety: SIGKILL the server binary mid-stream, restart it, and find every reading
//! published at QoS 1 stored exactly once; SIGKILL it while it trains and scores, and find the
//! training marked failed, every reading stored once, and every row scored.
//!
//! Runs its own Mosquitto (from `PDM_MOSQUITTO_BIN`, `mosquitto` on PATH or /usr/sbin) with
//! unbounded queues: with Mosquitto's default `max_queued_messages 1000` the *broker* would drop
//! messages for the subscriber while the server is down, which is a broker setting documented in
//! docs/operations.md, not what this test examines.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{forget_session, free_port, http, poll_json, publish_all, Killed};
use sqlx::{Connection, Row, SqliteConnection};

const MESSAGES: i64 = 10_000;
const PER_MESSAGE: i64 = 10;
const TOTAL: i64 = MESSAGES * PER_MESSAGE;

/// True (after a loud SKIPPED line) when no mosquitto binary can be run; a failure instead
/// when the services are required.
fn skip_without_mosquitto() -> bool {
    common::skip_without_binary("mosquitto", "crash test")
}

fn start_broker(dir: &Path) -> (Killed, String) {
    let bin = common::sbin("mosquitto").expect("mosquitto binary");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\n"
        ),
    )
    .expect("write mosquitto.conf");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), format!("mqtt://127.0.0.1:{port}"))
}

fn start_server(data_dir: &Path, mqtt: &str) -> Killed {
    start_server_on(data_dir, mqtt, "127.0.0.1:0", "pdm-crash-test")
}

fn start_server_on(data_dir: &Path, mqtt: &str, http: &str, client_id: &str) -> Killed {
    let child = common::with_admin(&mut Command::new(env!("CARGO_BIN_EXE_pdm-server")))
        .args([
            "serve",
            "--http",
            http,
            "--auto-register",
            "true",
            "--mqtt-client-id",
            client_id,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--mqtt-url")
        .arg(mqtt)
        .env(
            "PDM_LOG",
            std::env::var("PDM_CRASH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start pdm-server");
    Killed(child)
}

/// Waits (at most `secs`) until `total` readings are stored after a restart, never more.
async fn wait_all_stored(db: &Path, total: i64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (n, _) = stored(db).await;
        assert!(n <= total, "{n} readings stored: more than published");
        if n == total {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after restart only {n} of {total} readings stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (count, sum of values) of the stored readings, read from the database file directly.
async fn stored(db: &Path) -> (i64, f64) {
    if !db.exists() {
        return (0, 0.0);
    }
    let url = format!("sqlite://{}?mode=ro", db.display());
    let Ok(mut conn) = SqliteConnection::connect(&url).await else {
        return (0, 0.0);
    };
    let row = sqlx::query("SELECT count(*), coalesce(sum(value), 0.0) FROM readings")
        .fetch_one(&mut conn)
        .await;
    let _ = conn.close().await;
    match row {
        Ok(r) => (r.get::<i64, _>(0), r.get::<f64, _>(1)),
        // The schema may not exist yet while the server starts.
        Err(_) => (0, 0.0),
    }
}

/// Creates the server's persistent session before anything is published, so that the broker
/// keeps every message for it from the first one on.
async fn pre_subscribe(url: &str, client_id: &str) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let (host, port) = common::host_port(url);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_clean_session(false);
    let (client, mut el) = AsyncClient::new(opts, 10);
    client
        .subscribe("pdm/+/telemetry", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), el.poll()).await {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("pre-subscribe failed: {other:?}"),
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing_and_stores_nothing_twice() {
    if skip_without_mosquitto() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, url) = start_broker(dir.path());
    let data_dir = dir.path().join("data");
    let db = data_dir.join("pdm.db");

    // Create the server's persistent session before anything is published, so the broker keeps
    // every message for it from the first one on.
    pre_subscribe(&url, "pdm-crash-test").await;

    let mut server = start_server(&data_dir, &url);
    let base_ts = pdm_core::Timestamp::now().as_millis() - 3_600_000;
    let messages: Vec<(String, Vec<u8>)> = (0..MESSAGES)
        .map(|i| {
            let values: Vec<String> = (0..PER_MESSAGE)
                .map(|j| format!("\"s{j}\":{}", i * PER_MESSAGE + j))
                .collect();
            let body = format!(
                "{{\"ts\":{},\"values\":{{{}}}}}",
                base_ts + i,
                values.join(",")
            );
            ("pdm/crash-m/telemetry".to_owned(), body.into_bytes())
        })
        .collect();
    let publisher = tokio::spawn({
        let url = url.clone();
        async move { publish_all(&url, "crash-publisher", messages).await }
    });

    // Kill as soon as a part (not all) of the stream is stored.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let (n, _) = stored(&db).await;
        if n >= TOTAL / 10 {
            let _ = server.0.kill();
            let _ = server.0.wait();
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "server stored only {n} readings in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (after_kill, _) = stored(&db).await;
    eprintln!("killed the server with {at_kill} readings stored ({after_kill} after the kill)");
    assert!(
        after_kill < TOTAL,
        "the kill came after everything was stored; the test proves nothing"
    );
    publisher.await.expect("publisher");

    // Restart: the broker redelivers everything not acknowledged; replays are skipped.
    server = start_server(&data_dir, &url);
    wait_all_stored(&db, TOTAL, 180).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (n, sum) = stored(&db).await;
    assert_eq!(n, TOTAL, "exactly once");
    let expected: f64 = (0..TOTAL).map(|v| v as f64).sum();
    assert_eq!(sum, expected, "every reading with its own value");

    // Graceful stop on SIGTERM.
    let pid = server.0.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = server.0.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful shutdown exit status {exit:?}");
    forget_session(&url, "pdm-crash-test").await;
}

/// Requests a training of `crash-live` (202) and returns its job's path.
async fn train(addr: &str, body: &str) -> String {
    let (status, job) = http(
        addr,
        "POST",
        "/api/v1/machines/crash-live/models",
        Some(body),
    )
    .await
    .expect("train request");
    assert_eq!(status, 202, "{job}");
    format!("/api/v1/jobs/{}", job["id"])
}

/// Readings of four sensors, one row per second from `base` (row `i` at `base + i` s).
fn rows(base: i64, range: std::ops::Range<i64>) -> Vec<(String, Vec<u8>)> {
    range
        .map(|i| {
            let t = i as f64;
            let body = format!(
                "{{\"ts\":{},\"values\":{{\"temp\":{},\"flow\":{},\"current\":{},\"vibration\":{}}}}}",
                base + i * 1000,
                60.0 + (t / 97.0).sin() + ((i * 7919) % 101) as f64 / 200.0,
                4.0 + (t / 53.0).cos() * 0.2 + ((i * 104_729) % 89) as f64 / 400.0,
                12.0 + (t / 71.0).sin() * 0.5 + ((i * 1_299_709) % 97) as f64 / 300.0,
                1.5 + ((i * 15_485_863) % 83) as f64 / 500.0,
            );
            ("pdm/crash-live/telemetry".to_owned(), body.into_bytes())
        })
        .collect()
}

/// SIGKILL while a training job runs and the stream is scored; after the restart the job is
/// failed with the reason, every reading is stored once, and the predictions have no gap: the
/// rows whose predictions were lost with the process are scored again from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_training_and_scoring_fails_the_job_and_scores_every_row() {
    if skip_without_mosquitto() {
        return;
    }
    const HISTORY: i64 = 1_800;
    const STREAM: i64 = 4_000;
    const SENSORS: i64 = 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, url) = start_broker(dir.path());
    let data_dir = dir.path().join("data");
    let db = data_dir.join("pdm.db");
    let addr = format!("127.0.0.1:{}", free_port());
    let client = "pdm-crash-live";
    pre_subscribe(&url, client).await;
    let mut server = start_server_on(&data_dir, &url, &addr, client);
    poll_json(&addr, "/health/ready", 60, |_| true).await;

    // A healthy half hour, then a model trained on it and activated.
    let base = (pdm_core::Timestamp::now().as_millis() / 1000 - 3 * 3600) * 1000;
    publish_all(&url, "crash-live-history", rows(base, 0..HISTORY)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db).await.0 < HISTORY * SENSORS {
        assert!(Instant::now() < deadline, "history not stored in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = format!(
        "{{\"from\":{base},\"to\":{},\"activate\":true}}",
        base + HISTORY * 1000
    );
    let job_path = train(&addr, &first).await;
    let done = poll_json(&addr, &job_path, 60, |j| {
        j["status"] != "queued" && j["status"] != "running"
    })
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // The stream goes on while a long training runs; kill the server during both.
    let publisher = tokio::spawn({
        let url = url.clone();
        async move {
            publish_all(
                &url,
                "crash-live-stream",
                rows(base, HISTORY..HISTORY + STREAM),
            )
            .await
        }
    });
    let slow = format!(
        "{{\"from\":{base},\"to\":{},\"kind\":\"isolation_forest\",\"params\":{{\"n_estimators\":20000}}}}",
        base + HISTORY * 1000
    );
    let slow_path = train(&addr, &slow).await;
    poll_json(&addr, &slow_path, 60, |j| j["status"] == "running").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored(&db).await.0 < (HISTORY + STREAM / 4) * SENSORS {
        assert!(Instant::now() < deadline, "stream not stored in 60 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let running = http(&addr, "GET", &slow_path, None).await.expect("job").1;
    let _ = server.0.kill();
    let _ = server.0.wait();
    assert_eq!(
        running["status"], "running",
        "the training ended before the kill; the test proves nothing: {running}"
    );
    let (at_kill, _) = stored(&db).await;
    eprintln!("killed during training with {at_kill} readings stored");
    assert!(
        at_kill < (HISTORY + STREAM) * SENSORS,
        "the stream ended before the kill"
    );
    publisher.await.expect("publisher");

    // Restart: the job is failed with the reason; the stream completes exactly once.
    server = start_server_on(&data_dir, &url, &addr, client);
    let failed = poll_json(&addr, &slow_path, 60, |j| j["status"] != "running").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let message = failed["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("stopped"),
        "the reason is given: {message}"
    );
    wait_all_stored(&db, (HISTORY + STREAM) * SENSORS, 120).await;

    // Every row after the model's first prediction is scored, the last one excepted (it stays
    // open until a later reading arrives).
    let last_row = base + (HISTORY + STREAM - 2) * 1000;
    let path = format!(
        "/api/v1/machines/crash-live/predictions?from={base}&to={}&limit=100000",
        last_row + 1
    );
    let answer = poll_json(&addr, &path, 60, |v| {
        v["predictions"]
            .as_array()
            .and_then(|p| p.last())
            .is_some_and(|p| p["ts"].as_i64() == Some(last_row))
    })
    .await;
    let ts: Vec<i64> = answer["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .filter_map(|p| p["ts"].as_i64())
        .collect();
    let first = ts[0];
    assert!(
        first <= base + (HISTORY + 10) * 1000,
        "scoring started late: row {} ({} predictions)",
        (first - base) / 1000,
        ts.len()
    );
    let gaps: Vec<(i64, i64)> = ts
        .windows(2)
        .filter(|w| w[1] - w[0] != 1000)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(gaps.is_empty(), "rows not scored across the kill: {gaps:?}");
    assert_eq!(ts.len() as i64, (last_row - first) / 1000 + 1);

    let _ = server.0.kill();
    let _ = server.0.wait();
    forget_session(&url, client).await;
}
