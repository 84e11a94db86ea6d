//! System settings through the API, on SQLite and PostgreSQL: admin-only, validated by name,
//! versioned (a stale `If-Match` is 412), audited with values, applied at once where they can
//! be (the sign-in failure limit), the others reported as waiting for a restart, and kept
//! across one.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{as_user, signed_in, TestApp};
use pdm_server::run::Server;
use serde_json::{json, Value};

on_both_backends!(settings_are_validated_versioned_audited_and_applied);

async fn patch(app: &TestApp, body: Value, if_match: Option<&str>) -> (StatusCode, Value) {
    let text = body.to_string();
    let mut headers = vec![("content-type", "application/json")];
    if let Some(m) = if_match {
        headers.push(("if-match", m));
    }
    let (st, _, v) = app
        .request("PATCH", "/api/v1/settings", Some(&text), &headers)
        .await;
    (st, v)
}

async fn failed_login(app: &TestApp, email: &str) -> StatusCode {
    let (st, _, _) = app
        .request(
            "POST",
            "/api/v1/auth/login",
            Some(&json!({"email": email, "password": "not the password at all"}).to_string()),
            &[("authorization", "")],
        )
        .await;
    st
}

async fn settings_are_validated_versioned_audited_and_applied(app: TestApp) {
    let (st, s) = app.get("/api/v1/settings").await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["version"], 0);
    assert_eq!(s["overridden"], json!([]));
    assert_eq!(
        s["settings"]["uploads"]["max_bytes"],
        json!(20 * 1024 * 1024)
    );
    assert_eq!(s["settings"]["auth"]["max_failures_per_account"], 100);
    assert!(s["live"]
        .as_array()
        .expect("live")
        .contains(&json!("auth.max_failures_per_account")));

    // Bad input by name; nothing stored.
    for (body, names) in [
        (json!({"uploads": {"max_bytes": 10}}), "uploads.max_bytes"),
        (json!({"uploads": {"max_size": 4096}}), "max_size"),
        (
            json!({"auth": {"access_ttl_s": "soon"}}),
            "auth.access_ttl_s",
        ),
        (json!({"auth": {"refresh_ttl_s": 1}}), "auth.refresh_ttl_s"),
        (json!({"smtp": {"host": "mail", "from": "nobody"}}), "smtp"),
        (
            json!({"audit": {"retention_days": 0}}),
            "audit.retention_days",
        ),
    ] {
        let (st, v) = patch(&app, body.clone(), None).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        let m = v["error"]["message"].as_str().unwrap_or("");
        assert!(m.contains(names), "{body}: {m}");
    }
    let (st, _) = patch(&app, json!([1]), None).await;
    assert!(st.is_client_error(), "{st}");

    // Admin-only.
    let eng = signed_in(&app, "eng@test.pdm", "engineer").await;
    let (st, _) = as_user(&app, &eng, "GET", "/api/v1/settings", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = as_user(
        &app,
        &eng,
        "PATCH",
        "/api/v1/settings",
        Some(json!({"auth": {"max_failures_per_account": 1}})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // A live setting: the failure limit holds from the next sign-in.
    let (st, s) = patch(
        &app,
        json!({"auth": {"max_failures_per_account": 2}, "live": {"label_lead_ms": 60000}}),
        Some("\"0\""),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["version"], 1);
    assert_eq!(
        s["overridden"],
        json!(["auth.max_failures_per_account", "live.label_lead_ms"])
    );
    assert_eq!(s["restart_required"], json!(["live.label_lead_ms"]));
    assert_eq!(
        failed_login(&app, "eng@test.pdm").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        failed_login(&app, "eng@test.pdm").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        failed_login(&app, "eng@test.pdm").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the new limit of 2 applies without a restart"
    );

    // Versions: a stale write is refused and changes nothing.
    let (st, v) = patch(
        &app,
        json!({"audit": {"retention_days": 30}}),
        Some("\"0\""),
    )
    .await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED, "{v}");
    let (st, v) = patch(&app, json!({"audit": {"retention_days": 30}}), Some("W/1")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (_, s) = app.get("/api/v1/settings").await;
    assert_eq!(s["settings"]["audit"]["retention_days"], 365);

    // A patch that changes nothing keeps the version.
    let (st, s) = patch(&app, json!({"audit": {}}), None).await;
    assert_eq!(
        (st, s["version"].clone()),
        (StatusCode::OK, json!(1)),
        "{s}"
    );

    // `null` gives a setting back to the file.
    let (st, s) = patch(
        &app,
        json!({"live": {"label_lead_ms": null}}),
        Some("\"1\""),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    assert_eq!(s["overridden"], json!(["auth.max_failures_per_account"]));
    assert_eq!(s["restart_required"], json!([]));
    assert_eq!(s["updated_by"], "admin@test.pdm");

    // Kept across a restart: a second server on the same database starts with them.
    let again = Server::start(app.config().clone()).await.expect("start");
    let (st, s) = common::call(&again, "GET", "/api/v1/settings", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s["settings"]["auth"]["max_failures_per_account"], 2);
    assert_eq!(s["version"], 2);
    again.shutdown().await.expect("shutdown");

    // On record, with the values.
    let (_, log) = app.get("/api/v1/audit?action=PATCH%20%2Fsettings").await;
    let fields: Vec<Value> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["status"] == 200)
        .map(|e| e["fields"].clone())
        .collect();
    assert!(
        fields.contains(&json!([
            "auth.max_failures_per_account: 100 -> 2",
            "live.label_lead_ms: 300000 -> 60000"
        ])),
        "{log}"
    );
    assert!(
        fields.contains(&json!(["live.label_lead_ms: 60000 -> 300000"])),
        "{log}"
    );
    app.stop().await;
}
