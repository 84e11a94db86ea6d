//! Shared helpers of the server tests: databases, brokers, requests through `app()` and over
//! TCP, child processes, the [`TestApp`] fixture, and a webhook receiver ([`receiver`]).
#![allow(dead_code)]

pub mod receiver;
pub mod sse;

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use pdm_server::config::ServerConfig;
use pdm_server::run::Server;
use serde_json::Value;
use tower::ServiceExt;

// Each test binary uses some of them.
#[allow(unused_imports)]
pub use pdm_testkit::{eventually_some, mqtt_url, services_required, unique};

/// Runs a scenario on SQLite, and on PostgreSQL when one is configured. The scenario is an
/// `async fn(TestApp)` of the test binary's root; use it with `#[macro_use] mod common;`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario(super::common::TestApp::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = super::common::TestApp::postgres().await {
                    super::$scenario(app).await;
                }
            }
        }
    )*};
}

/// Fresh PostgreSQL databases for this test binary's tests, on `PDM_TEST_DATABASE_URL`, or
/// `None` after a loud SKIPPED line.
fn pg_databases() -> Option<pdm_testkit::pg::TestDatabases> {
    pdm_testkit::pg::TestDatabases::from_env()
}

/// The admin every test server is started with (`auth.admin`, or `PDM_ADMIN_EMAIL` and
/// `PDM_ADMIN_PASSWORD` for a child process); the helpers below sign in as it.
pub const ADMIN_EMAIL: &str = "admin@test.pdm";
/// The test admin's password.
pub const ADMIN_PASSWORD: &str = "the test admin's password";

/// Access tokens of the test admin, by server address.
static TOKENS: std::sync::Mutex<Option<std::collections::HashMap<String, String>>> =
    std::sync::Mutex::new(None);

fn cached_token(addr: &str) -> Option<String> {
    TOKENS
        .lock()
        .expect("tokens")
        .as_ref()
        .and_then(|m| m.get(addr).cloned())
}

fn cache_token(addr: &str, token: &str) {
    TOKENS
        .lock()
        .expect("tokens")
        .get_or_insert_with(Default::default)
        .insert(addr.to_owned(), token.to_owned());
}

/// The login body of the test admin.
pub fn admin_login() -> String {
    serde_json::json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }).to_string()
}

/// Sets the test admin on a child process's command.
pub fn with_admin(cmd: &mut std::process::Command) -> &mut std::process::Command {
    cmd.env("PDM_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("PDM_ADMIN_PASSWORD", ADMIN_PASSWORD)
}

/// An access token of the test admin on the server at `addr` (over TCP), signed in once.
pub async fn admin_token(addr: &str) -> Option<String> {
    if let Some(t) = cached_token(addr) {
        return Some(t);
    }
    let (status, body) = raw_http_text(
        addr,
        "POST",
        "/api/v1/auth/login",
        Some(&admin_login()),
        None,
    )
    .await?;
    assert_eq!(status, 200, "the test admin cannot sign in: {body}");
    let v: Value = serde_json::from_str(&body[body.find('{')?..=body.rfind('}')?]).ok()?;
    let token = v["access_token"].as_str()?.to_owned();
    cache_token(addr, &token);
    Some(token)
}

/// A server config on a data dir, listening on a free port.
pub fn config(data_dir: &Path, database_url: Option<String>, auto_register: bool) -> ServerConfig {
    ServerConfig {
        auth: pdm_server::auth::AuthConfig {
            admin: Some(pdm_server::auth::AdminBootstrap {
                email: ADMIN_EMAIL.into(),
                password: ADMIN_PASSWORD.into(),
            }),
            ..Default::default()
        },
        data_dir: data_dir.to_path_buf(),
        database_url,
        http: "127.0.0.1:0".parse().expect("addr"),
        auto_register,
        // Tests put the rules they examine; the seeded fleet defaults would alarm on them too.
        live: pdm_core::live::LiveConfig {
            seed_alarm_defaults: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    }
}

/// Sends one request through the app and returns the status and JSON body.
pub async fn call(
    server: &Server,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let (status, _, json) = exchange(server, method, uri, body, &[]).await;
    (status, json)
}

/// Sends one request (with extra headers) through the app; returns status, headers and the body
/// as JSON (a body that is not JSON as a JSON string, an empty one as `null`).
pub async fn exchange(
    server: &Server,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut builder = Request::builder().method(method).uri(uri);
    // Signed in as the test admin unless the caller says otherwise (an `authorization` header
    // of its own; an empty one sends none).
    let own = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
    if !own && uri.starts_with("/api/v1") {
        builder = builder.header(
            "authorization",
            format!("Bearer {}", app_token(server).await),
        );
    }
    for (name, value) in headers {
        if !value.is_empty() {
            builder = builder.header(*name, *value);
        }
    }
    let req = match body {
        Some(b) => builder
            .header("content-type", "application/json")
            .body(Body::from(b.to_owned()))
            .expect("request"),
        None => builder.body(Body::empty()).expect("request"),
    };
    let app = pdm_server::app(server.state().clone());
    let resp = app.oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, json)
}

/// An access token of the test admin on `server`, signed in once through `app()`.
pub async fn app_token(server: &Server) -> String {
    let key = format!("app:{}", server.local_addr());
    if let Some(t) = cached_token(&key) {
        return t;
    }
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(admin_login()))
        .expect("request");
    let resp = pdm_server::app(server.state().clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "the test admin cannot sign in: {v}");
    let token = v["access_token"].as_str().expect("access_token").to_owned();
    cache_token(&key, &token);
    token
}

/// A running server for one test, on a temporary data directory with SQLite or on a fresh
/// PostgreSQL database, driven through `app()` (no network).
pub struct TestApp {
    server: Server,
    config: ServerConfig,
    databases: Option<pdm_testkit::pg::TestDatabases>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// A server on SQLite in a temporary directory.
    pub async fn sqlite() -> TestApp {
        Self::sqlite_with(|_| {}).await
    }

    /// A server on SQLite, with `tweak` applied to its configuration first.
    pub async fn sqlite_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path(), None, false);
        tweak(&mut cfg);
        Self::start(cfg, None, dir).await
    }

    /// A server on a fresh PostgreSQL database, or `None` (after a loud SKIPPED line) without
    /// `PDM_TEST_DATABASE_URL`.
    pub async fn postgres() -> Option<TestApp> {
        Self::postgres_with(|_| {}).await
    }

    /// A server on a fresh PostgreSQL database with `tweak` applied to its configuration, or
    /// `None` (after a loud SKIPPED line) without `PDM_TEST_DATABASE_URL`.
    pub async fn postgres_with(tweak: impl FnOnce(&mut ServerConfig)) -> Option<TestApp> {
        let databases = pg_databases()?;
        let url = databases
            .create("pdm_server_test")
            .await
            .expect("a fresh PostgreSQL database");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(dir.path(), Some(url), false);
        tweak(&mut cfg);
        Some(Self::start(cfg, Some(databases), dir).await)
    }

    async fn start(
        cfg: ServerConfig,
        databases: Option<pdm_testkit::pg::TestDatabases>,
        dir: tempfile::TempDir,
    ) -> TestApp {
        let server = Server::start(cfg.clone()).await.expect("start");
        TestApp {
            server,
            config: cfg,
            databases,
            _dir: dir,
        }
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The live path of the server (panics when it is off).
    pub fn live(&self) -> &std::sync::Arc<pdm_core::live::Live> {
        self.server.live().expect("the live path runs")
    }

    /// The server.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// `GET uri`: status and JSON body.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        call(&self.server, "GET", uri, None).await
    }

    /// `POST uri` with a JSON body.
    pub async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        call(&self.server, "POST", uri, Some(body)).await
    }

    /// `PATCH uri` with a JSON body.
    pub async fn patch(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        call(&self.server, "PATCH", uri, Some(body)).await
    }

    /// `DELETE uri`.
    pub async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        call(&self.server, "DELETE", uri, None).await
    }

    /// Any request, with extra headers; the answer's headers too.
    pub async fn request(
        &self,
        method: &str,
        uri: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        exchange(&self.server, method, uri, body, headers).await
    }

    /// Shuts the server down gracefully and drops its PostgreSQL database.
    pub async fn stop(self) {
        self.server.shutdown().await.expect("shutdown");
        if let Some(databases) = &self.databases {
            databases.drop_all().await;
        }
    }
}

/// Current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    pdm_core::Timestamp::now().as_millis()
}

/// Host and port of an `mqtt://host:port` URL.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url.trim_start_matches("mqtt://");
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.trim_end_matches('/').parse().expect("port")),
        None => (rest.trim_end_matches('/').to_owned(), 1883),
    }
}

/// Publishes `(topic, payload)` pairs at QoS 1 and returns once the broker acknowledged all.
pub async fn publish_all(url: &str, client_id: &str, messages: Vec<(String, Vec<u8>)>) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
    let (host, port) = host_port(url);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_keep_alive(std::time::Duration::from_secs(30));
    opts.set_max_packet_size(4 * 1024 * 1024, 4 * 1024 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let total = messages.len();
    let publisher = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .expect("publish");
        }
        client
    });
    let mut acked = 0;
    while acked < total {
        match tokio::time::timeout(std::time::Duration::from_secs(30), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("publisher connection failed: {e}"),
            Err(_) => panic!("publisher: no progress for 30 s ({acked}/{total} acknowledged)"),
        }
    }
    let client = publisher.await.expect("publisher task");
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), eventloop.poll()).await;
}

/// Removes a persistent MQTT session from the broker (connect with a clean session, leave).
pub async fn forget_session(url: &str, client_id: &str) {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet};
    let (host, port) = host_port(url);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    for _ in 0..20 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), eventloop.poll()).await;
}

/// Simulator ticks as MQTT messages: `per_message` samples (a JSON array) per machine and
/// message, in tick order per machine; samples without values (a dropout) are left out.
pub fn sim_messages(ticks: &[pdm_ingest::sim::Tick], per_message: usize) -> Vec<(String, Vec<u8>)> {
    let mut by_topic: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    let mut out = Vec::new();
    for tick in ticks {
        for s in &tick.samples {
            if s.values.is_empty() {
                continue;
            }
            let item: Value = serde_json::from_slice(&s.payload()).expect("sample payload");
            let list = by_topic.entry(s.topic()).or_default();
            list.push(item);
            if list.len() == per_message {
                out.push((
                    s.topic(),
                    Value::Array(std::mem::take(list)).to_string().into_bytes(),
                ));
            }
        }
    }
    for (topic, list) in by_topic {
        if !list.is_empty() {
            out.push((topic, Value::Array(list).to_string().into_bytes()));
        }
    }
    out
}

/// Serves `app` on a free loopback port in a background task; its address.
pub async fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A Mosquitto program (`mosquitto`, `mosquitto_passwd`): from `PDM_MOSQUITTO_BIN`'s directory
/// (for `mosquitto`, that file itself), on `PATH`, or in /usr/sbin and /usr/local/sbin.
pub fn sbin(name: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Ok(p) = std::env::var("PDM_MOSQUITTO_BIN") {
        let p = PathBuf::from(p);
        if name == "mosquitto" {
            return Some(p);
        }
        if let Some(sibling) = p.parent().map(|d| d.join(name)).filter(|s| s.is_file()) {
            return Some(sibling);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True (after a loud SKIPPED line) when program `name` ([`sbin`]) cannot be found; a failure
/// instead when the services are required.
pub fn skip_without_binary(name: &str, what: &str) -> bool {
    if sbin(name).is_some() {
        return false;
    }
    assert!(
        !services_required(),
        "{what}: no {name} binary (set PDM_MOSQUITTO_BIN)"
    );
    eprintln!("SKIPPED {what}: no {name} binary (set PDM_MOSQUITTO_BIN)");
    true
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Killed(pub std::process::Child);

impl Killed {
    /// Kills the process with SIGKILL (`kill -9`) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One HTTP/1.1 request over TCP (no client library: a request, `Connection: close`, the whole
/// answer); the status and the JSON body (`null` when it is not JSON), or `None` while nothing
/// answers on `addr`.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, Value)> {
    let (status, rest) = http_text(addr, method, path, body).await?;
    // Answers are small and not chunked, except where axum chunks: take the JSON part.
    let json = rest.find(['{', '[']).and_then(|i| {
        let end = rest.rfind(['}', ']'])?;
        serde_json::from_str(&rest[i..=end]).ok()
    });
    Some((status, json.unwrap_or(Value::Null)))
}

/// [`http`], with the body as text. Requests to `/api/v1` are signed in as the test admin
/// ([`admin_token`]).
pub async fn http_text(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let token = if path.starts_with("/api/v1") && !path.starts_with("/api/v1/auth/") {
        Some(admin_token(addr).await?)
    } else {
        None
    };
    raw_http_text(addr, method, path, body, token.as_deref()).await
}

/// [`http_text`] with the bearer token given (`None`: no credentials).
pub async fn raw_http_text(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n{auth}\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, rest.to_owned()))
}

/// Polls `GET path` over TCP until it answers 200 and `done` holds for the answer, for at most
/// `secs`.
pub async fn poll_json(
    addr: &str,
    path: &str,
    secs: u64,
    mut done: impl FnMut(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some((200, v)) = http(addr, "GET", path, None).await {
            if done(&v) {
                return v;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path}: not done in {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An open alarm of `machine` and `rule`, stored as the live path would have stored it (a
/// `raised` event now); its id.
#[allow(dead_code)]
pub async fn raise_alarm(
    app: &TestApp,
    machine: &str,
    rule: &str,
    severity: pdm_core::alarm::Severity,
) -> i64 {
    use pdm_core::alarm::{AlarmEvent, AlarmEventKind, StateName};
    let at = pdm_core::Timestamp::now();
    app.server()
        .state()
        .store
        .record_transition(&pdm_core::AlarmTransition {
            machine: pdm_core::MachineKey::new(machine).expect("key"),
            rule_id: rule.into(),
            alarm: None,
            expected_version: 0,
            state: StateName::ActiveUnacked,
            severity,
            state_json: format!(
                r#"{{"state":"active_unacknowledged","at":{}}}"#,
                at.as_millis()
            ),
            events: vec![AlarmEvent {
                kind: AlarmEventKind::Raised,
                at,
                actor: "system".into(),
                reason: "test".into(),
                severity,
            }],
            closes: false,
        })
        .await
        .expect("alarm")
        .id
        .0
}

/// A user of `role` signed in: their bearer header value.
pub async fn signed_in(app: &TestApp, email: &str, role: &str) -> String {
    let password = "a long password 1";
    let (st, v) = app
        .post(
            "/api/v1/users",
            &serde_json::json!({"email": email, "name": email, "password": password, "role": role})
                .to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _, v) = app
        .request(
            "POST",
            "/api/v1/auth/login",
            Some(&serde_json::json!({"email": email, "password": password}).to_string()),
            &[("authorization", "")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    format!("Bearer {}", v["access_token"].as_str().expect("token"))
}

pub async fn as_user(
    app: &TestApp,
    who: &str,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let text = body.map(|b| b.to_string());
    let mut headers = vec![("authorization", who)];
    if text.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let (st, _, v) = app.request(method, uri, text.as_deref(), &headers).await;
    (st, v)
}

/// A multipart/form-data body of one part named `file`: its `Content-Type` header and bytes.
pub fn multipart(filename: &str, content_type: Option<&str>, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "pdm-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
    )
    .into_bytes();
    if let Some(ct) = content_type {
        body.extend_from_slice(format!("content-type: {ct}\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Any request with a raw body through `app()`, signed in as the test admin unless `headers`
/// holds an `authorization`; the status, headers and the body's bytes.
pub async fn send_bytes(
    server: &Server,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut builder = Request::builder().method(method).uri(uri);
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"))
    {
        builder = builder.header(
            "authorization",
            format!("Bearer {}", app_token(server).await),
        );
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder.body(Body::from(body)).expect("request");
    let resp = pdm_server::app(server.state().clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, headers, bytes.to_vec())
}
