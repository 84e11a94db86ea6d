//! No secret in a log line: the server binary runs with `PDM_LOG=debug` (every request's span
//! and answer logged) through sign-in, refresh (and a reused refresh token), token making and
//! use, user creation, password changes, wrong and throttled sign-ins and bad tokens; then its
//! whole log is searched for every secret it saw: passwords, their hashes, access, refresh, API
//! and ingest tokens, and the signing key. The one secret logged by design, a password-reset
//! token while no mail server is configured, is checked to appear only in its own line.

mod common;

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, raw_http_text, Killed, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

async fn call(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let body = (!body.is_null()).then(|| body.to_string());
    let (st, text) = raw_http_text(addr, method, path, body.as_deref(), token)
        .await
        .expect("the server answers");
    let json = text
        .find(['{', '['])
        .and_then(|i| serde_json::from_str(&text[i..=text.rfind(['}', ']'])?]).ok())
        .unwrap_or(Value::Null);
    (st, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log).expect("log file");
    let child = common::with_admin(&mut Command::new(env!("CARGO_BIN_EXE_pdm-server")))
        .args(["serve", "--http", &addr, "--auto-register", "true"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("PDM_LOG", "debug")
        .env_remove("PDM_DATABASE_URL")
        .env_remove("PDM_MQTT_URL")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .expect("start pdm-server");
    let mut server = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while raw_http_text(&addr, "GET", "/health/ready", None, None)
        .await
        .map(|r| r.0)
        != Some(200)
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut secrets: Vec<String> = vec![ADMIN_PASSWORD.into()];
    let login = json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD});
    let (st, pair) = call(&addr, "POST", "/api/v1/auth/login", None, login.clone()).await;
    assert_eq!(st, 200, "{pair}");
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();
    secrets.extend([access.clone(), refresh.clone()]);
    let (st, next) = call(
        &addr,
        "POST",
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(st, 200);
    let access = next["access_token"].as_str().expect("access").to_owned();
    secrets.extend([
        access.clone(),
        next["refresh_token"].as_str().expect("r").to_owned(),
    ]);
    // A reused refresh token (logged as a warning: which session, not the token).
    let (st, _) = call(
        &addr,
        "POST",
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    assert_eq!(st, 401);
    let (_, pair) = call(&addr, "POST", "/api/v1/auth/login", None, login.clone()).await;
    let access = pair["access_token"].as_str().expect("access").to_owned();
    secrets.extend([
        access.clone(),
        pair["refresh_token"].as_str().expect("r").to_owned(),
    ]);
    let auth = Some(access.as_str());

    let user_password = "the user's secret password";
    let (st, user) = call(&addr, "POST", "/api/v1/users", auth,
        json!({"email": "ann@test.pdm", "name": "Ann", "password": user_password, "role": "engineer"})).await;
    assert_eq!(st, 201, "{user}");
    secrets.push(user_password.into());
    let (st, _) = call(
        &addr,
        "POST",
        "/api/v1/machines",
        auth,
        json!({"key": "m1"}),
    )
    .await;
    assert_eq!(st, 201);
    for body in [
        json!({"name": "script", "role": "viewer"}),
        json!({"name": "gw", "machine": "m1"}),
    ] {
        let (st, made) = call(&addr, "POST", "/api/v1/tokens", auth, body).await;
        assert_eq!(st, 201, "{made}");
        let secret = made["secret"].as_str().expect("secret").to_owned();
        let (st, _) = call(&addr, "GET", "/api/v1/machines", Some(&secret), Value::Null).await;
        assert!(st == 200 || st == 403, "{st}");
        secrets.push(secret);
    }
    let (_, ann) = call(
        &addr,
        "POST",
        "/api/v1/auth/login",
        None,
        json!({"email": "ann@test.pdm", "password": user_password}),
    )
    .await;
    let ann_token = ann["access_token"].as_str().expect("ann").to_owned();
    secrets.extend([
        ann_token.clone(),
        ann["refresh_token"].as_str().expect("r").to_owned(),
    ]);
    let new_password = "ann's next secret password";
    let (st, v) = call(
        &addr,
        "POST",
        "/api/v1/auth/password",
        Some(&ann_token),
        json!({"current_password": user_password, "new_password": new_password}),
    )
    .await;
    assert_eq!(st, 204, "{v}");
    secrets.push(new_password.into());
    // Wrong passwords, a bad token, an unknown email.
    for _ in 0..3 {
        let (st, _) = call(
            &addr,
            "POST",
            "/api/v1/auth/login",
            None,
            json!({"email": "ann@test.pdm", "password": "a wrong secret guess"}),
        )
        .await;
        assert_eq!(st, 401);
    }
    secrets.push("a wrong secret guess".into());
    let (st, _) = call(
        &addr,
        "GET",
        "/api/v1/machines",
        Some("pdm_at_notarealtokenbutsecret"),
        Value::Null,
    )
    .await;
    assert_eq!(st, 401);
    secrets.push("pdm_at_notarealtokenbutsecret".into());
    let (st, _) = call(
        &addr,
        "POST",
        "/api/v1/auth/password-reset",
        None,
        json!({"email": "ann@test.pdm"}),
    )
    .await;
    assert_eq!(st, 202);

    server.kill9();
    let keys: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("data/auth-keys.json")).expect("keys"),
    )
    .expect("keys json");
    for k in keys["keys"].as_array().expect("keys") {
        secrets.push(k["secret"].as_str().expect("secret").to_owned());
    }
    let mut text = String::new();
    std::fs::File::open(&log)
        .expect("log")
        .read_to_string(&mut text)
        .expect("read log");
    assert!(
        text.contains("signed in") && text.contains("answered"),
        "a debug log was written:\n{text}"
    );
    assert!(!text.contains("$argon2"), "a password hash is in the log");
    for s in &secrets {
        assert!(
            !text.contains(s.as_str()),
            "a secret is in the log: {}…",
            &s[..6.min(s.len())]
        );
        // Nor any long part of one (a token cut in a message).
        if s.len() > 24 {
            assert!(
                !text.contains(&s[s.len() - 20..]),
                "part of a secret is in the log"
            );
        }
    }
    // The reset token: only in the line that hands it to the operator.
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("pdm_pr_")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("password reset requested"),
        "{}",
        lines[0]
    );
}
