//! The audit log through the API, on SQLite and PostgreSQL: every change with who, role, what,
//! on what, which fields (never their values) and the status; refusals for want of a
//! permission; sign-ins and failed sign-ins; filters and paging; append-only; nothing of a
//! secret in it.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use serde_json::{json, Value};

on_both_backends!(the_audit_log_records_changes_refusals_and_sign_ins);

fn entries(v: &Value) -> Vec<Value> {
    v["entries"].as_array().expect("entries").clone()
}

async fn the_audit_log_records_changes_refusals_and_sign_ins(app: TestApp) {
    // A change, a failed change, sign-ins that fail and one that works.
    let (st, _) = app
        .post(
            "/api/v1/machines",
            &json!({"key": "pump-1", "name": "Pump"}).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .post("/api/v1/machines", &json!({"key": "pump-1"}).to_string())
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let password = "a long password 1";
    let (st, v) = app
        .post(
            "/api/v1/users",
            &json!({"email": "vic@test.pdm", "name": "Vic", "password": password, "role": "viewer"})
                .to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    for (email, pw) in [
        ("vic@test.pdm", "not the password"),
        ("nobody@test.pdm", "whatever it is"),
    ] {
        let (st, _, _) = app
            .request(
                "POST",
                "/api/v1/auth/login",
                Some(&json!({"email": email, "password": pw}).to_string()),
                &[("authorization", "")],
            )
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _, signed) = app
        .request(
            "POST",
            "/api/v1/auth/login",
            Some(&json!({"email": "VIC@test.pdm", "password": password}).to_string()),
            &[("authorization", "")],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let viewer = signed["access_token"].as_str().expect("token").to_owned();
    // A viewer may neither change a machine nor read the log.
    let bearer = format!("Bearer {viewer}");
    let (st, _, _) = app
        .request(
            "DELETE",
            "/api/v1/machines/pump-1",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _, _) = app
        .request("GET", "/api/v1/audit", None, &[("authorization", &bearer)])
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, log) = app.get("/api/v1/audit").await;
    assert_eq!(st, StatusCode::OK, "{log}");
    let all = entries(&log);
    let find = |action: &str, status: u16| {
        all.iter()
            .find(|e| e["action"] == action && e["status"] == status)
            .unwrap_or_else(|| panic!("no {action} {status} in {log}"))
            .clone()
    };
    let created = find("POST /machines", 201);
    assert_eq!(created["actor"], ADMIN_EMAIL);
    assert_eq!(created["role"], "admin");
    assert_eq!(created["target"], "machines");
    assert_eq!(created["fields"], json!(["key", "name"]));
    assert_eq!(created["outcome"], "success");
    assert_eq!(find("POST /machines", 409)["outcome"], "failure");
    assert_eq!(
        find("POST /users", 201)["fields"],
        json!(["email", "name", "password", "role"])
    );
    let denied = find("DELETE /machines/{machine}", 403);
    assert_eq!(
        (&denied["actor"], &denied["role"]),
        (&json!("vic@test.pdm"), &json!("viewer"))
    );
    assert_eq!(denied["target"], "machines/pump-1");
    assert_eq!(find("GET /audit", 403)["actor"], "vic@test.pdm");
    let failed: Vec<_> = all
        .iter()
        .filter(|e| e["action"] == "sign_in_failed")
        .collect();
    let tried: Vec<_> = failed
        .iter()
        .map(|e| e["actor"].as_str().unwrap_or(""))
        .collect();
    assert!(
        tried.contains(&"vic@test.pdm") && tried.contains(&"nobody@test.pdm"),
        "{tried:?}"
    );
    assert_eq!(find("sign_in", 200)["actor"], "vic@test.pdm");
    // Reads are not changes: not in the log.
    assert!(!all.iter().any(|e| e["action"] == "GET /machines"), "{log}");
    // Nothing of a secret: no password, no token.
    let text = log.to_string();
    for secret in [
        password,
        ADMIN_PASSWORD,
        viewer.as_str(),
        "not the password",
    ] {
        assert!(!text.contains(secret), "a secret is in the audit log");
    }

    // Filters and paging, newest first.
    let (_, v) = app.get("/api/v1/audit?action=sign_in_failed").await;
    assert_eq!(entries(&v).len(), 2);
    let (_, v) = app
        .get("/api/v1/audit?outcome=failure&actor=vic%40test.pdm")
        .await;
    assert!(entries(&v)
        .iter()
        .all(|e| e["actor"] == "vic@test.pdm" && e["outcome"] == "failure"));
    assert_eq!(entries(&v).len(), 3, "{v}");
    let (_, v) = app.get("/api/v1/audit?target=machines%2Fpump-1").await;
    assert_eq!(entries(&v).len(), 1);
    let (_, first) = app.get("/api/v1/audit?limit=2").await;
    let ids: Vec<i64> = entries(&first)
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    assert!(ids[0] > ids[1], "newest first: {ids:?}");
    let next = first["next"].as_str().expect("more").to_owned();
    let (_, rest) = app
        .get(&format!("/api/v1/audit?limit=1000&cursor={next}"))
        .await;
    assert_eq!(
        entries(&rest).len() + 2,
        all.len(),
        "two pages hold the whole log"
    );
    for bad in [
        "/api/v1/audit?outcome=maybe",
        "/api/v1/audit?from=yesterday",
    ] {
        let (st, _) = app.get(bad).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    }
    // Append-only.
    for method in ["POST", "DELETE", "PATCH"] {
        let (st, _, _) = app.request(method, "/api/v1/audit", Some("{}"), &[]).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{method}");
    }
    app.stop().await;
}
