//! MQTT stays the broker's job: a private Mosquitto with a password file and the ACL of
//! docs/operations.md (each device writes its own topic, pdm reads them all). The server
//! ingests through it with its own credentials; a device's readings on its own topic are
//! stored, the same device writing another machine's topic stores nothing, and a client without
//! credentials is refused by the broker.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{call, free_port, now_ms, Killed};
use pdm_ingest::mqtt::MqttSourceConfig;
use pdm_server::run::Server;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
use serde_json::json;

const DEVICES: [&str; 2] = ["pump-1", "pump-2"];

fn passwd(file: &Path, user: &str, password: &str) {
    let bin = common::sbin("mosquitto_passwd").expect("mosquitto_passwd");
    let mut cmd = Command::new(bin);
    if !file.exists() {
        cmd.arg("-c");
    }
    let status = cmd
        .arg("-b")
        .arg(file)
        .arg(user)
        .arg(password)
        .stdout(Stdio::null())
        .status()
        .expect("run mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed for {user}");
}

fn start_broker(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let passwords = dir.join("passwd");
    passwd(&passwords, "pdm-server", "server-secret");
    for d in DEVICES {
        passwd(&passwords, d, &format!("{d}-secret"));
    }
    let acl = dir.join("acl");
    std::fs::write(
        &acl,
        "user pdm-server\ntopic read pdm/+/telemetry\n\npattern write pdm/%u/telemetry\n",
    )
    .expect("acl");
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npersistence false\n\
             password_file {}\nacl_file {}\nlog_dest stderr\nlog_type error\n",
            passwords.display(),
            acl.display()
        ),
    )
    .expect("mosquitto.conf");
    let child = Command::new(common::sbin("mosquitto").expect("mosquitto"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()
        .expect("start mosquitto");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Killed(child), port)
}

/// Connects as `user` (no credentials for `None`): the broker's answer to the connection, and
/// when accepted, publishes `payload` on `topic` at QoS 1 and waits for the acknowledgement.
async fn publish_as(
    port: u16,
    user: Option<(&str, &str)>,
    topic: &str,
    payload: String,
) -> ConnectReturnCode {
    let mut opts = MqttOptions::new(common::unique("acl"), "127.0.0.1", port);
    if let Some((u, p)) = user {
        opts.set_credentials(u, p);
    }
    let (client, mut events) = AsyncClient::new(opts, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        assert!(Instant::now() < deadline, "no answer from the broker");
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => break ack.code,
            Ok(Ok(_)) => {}
            Ok(Err(rumqttc::ConnectionError::ConnectionRefused(code))) => return code,
            Ok(Err(e)) => panic!("MQTT connection: {e}"),
            Err(_) => panic!("no ConnAck"),
        }
    };
    if code != ConnectReturnCode::Success {
        return code;
    }
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) => {}
            other => panic!("no PubAck: {other:?}"),
        }
    }
    let _ = client.disconnect().await;
    code
}

async fn readings(server: &Server, machine: &str) -> usize {
    let (st, r) = call(
        server,
        "GET",
        &format!("/api/v1/machines/{machine}/readings?sensor=temp&from=0&to=4000000000000"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    r["points"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_device_writes_its_own_topic_only() {
    if common::skip_without_binary("mosquitto", "MQTT ACL test")
        || common::skip_without_binary("mosquitto_passwd", "MQTT ACL test")
    {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_broker, port) = start_broker(dir.path());
    let mut cfg = common::config(&dir.path().join("data"), None, false);
    cfg.mqtt = Some(MqttSourceConfig {
        client_id: common::unique("pdm-acl"),
        ..MqttSourceConfig::new(format!("mqtt://pdm-server:server-secret@127.0.0.1:{port}"))
    });
    let server = Server::start(cfg).await.expect("start");
    for d in DEVICES {
        let (st, _) = call(
            &server,
            "POST",
            "/api/v1/machines",
            Some(&json!({"key": d}).to_string()),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
        let (st, _) = call(
            &server,
            "POST",
            &format!("/api/v1/machines/{d}/sensors"),
            Some(r#"{"key": "temp"}"#),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let reading = |v: f64| json!({"ts": now_ms(), "values": {"temp": v}}).to_string();

    // pump-1 on its own topic: stored (the server's subscription may still be on its way).
    let deadline = Instant::now() + Duration::from_secs(20);
    while readings(&server, "pump-1").await == 0 {
        assert!(Instant::now() < deadline, "pump-1's reading never arrived");
        let code = publish_as(
            port,
            Some(("pump-1", "pump-1-secret")),
            "pdm/pump-1/telemetry",
            reading(20.0),
        )
        .await;
        assert_eq!(code, ConnectReturnCode::Success);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // pump-1 on pump-2's topic: the broker drops it.
    let code = publish_as(
        port,
        Some(("pump-1", "pump-1-secret")),
        "pdm/pump-2/telemetry",
        reading(99.0),
    )
    .await;
    assert_eq!(code, ConnectReturnCode::Success);
    // pump-2 on its own: stored; once it is, pump-1's earlier message would have been too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let code = publish_as(
            port,
            Some(("pump-2", "pump-2-secret")),
            "pdm/pump-2/telemetry",
            reading(21.0),
        )
        .await;
        assert_eq!(code, ConnectReturnCode::Success);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if readings(&server, "pump-2").await > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "pump-2's reading never arrived");
    }
    let (st, stored) = call(
        &server,
        "GET",
        "/api/v1/machines/pump-2/readings?sensor=temp&from=0&to=4000000000000",
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let points = stored["points"].as_array().expect("points");
    assert!(!points.is_empty());
    assert!(
        points.iter().all(|p| p.to_string().contains("21")),
        "pump-1 wrote pump-2's readings: {stored}"
    );

    // No credentials, wrong password: refused by the broker.
    for user in [None, Some(("pump-1", "wrong"))] {
        let code = publish_as(port, user, "pdm/pump-1/telemetry", reading(1.0)).await;
        assert_ne!(code, ConnectReturnCode::Success, "{user:?}");
    }
    server.shutdown().await.expect("shutdown");
}
