//! Who may do what, through `app()` on SQLite and PostgreSQL: sign-in, refresh rotation and a
//! reused refresh token ending its session, logout, deactivation and role changes taking effect
//! at once, throttled sign-ins answered alike for unknown users, API and ingest tokens, forged
//! and tampered access tokens; and the RBAC matrix: every route of the policy called with no
//! credentials and as each built-in role.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::path::Path;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{TestApp, ADMIN_EMAIL, ADMIN_PASSWORD};
use pdm_core::store::Permission;
use pdm_server::auth::policy::{Access, POLICY};
use serde_json::{json, Value};
use tower::ServiceExt;

on_both_backends!(
    sign_in_refresh_rotation_and_reuse,
    people_changes_take_effect_at_once,
    tokens_of_every_kind,
    the_rbac_matrix_holds_for_every_route,
    managers_cannot_grant_more_than_they_hold,
);

/// `method uri` with `bearer` (none: no credentials); the status and JSON body.
async fn call_as(
    app: &TestApp,
    bearer: Option<&str>,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let auth = bearer.map(|t| format!("Bearer {t}")).unwrap_or_default();
    let body = body.map(|b| b.to_string());
    let (st, _, v) = app
        .request(method, uri, body.as_deref(), &[("authorization", &auth)])
        .await;
    (st, v)
}

async fn login(app: &TestApp, email: &str, password: &str) -> (StatusCode, Value) {
    call_as(
        app,
        None,
        "POST",
        "/api/v1/auth/login",
        Some(json!({"email": email, "password": password})),
    )
    .await
}

fn reason(v: &Value) -> &str {
    v["error"]["details"]["reason"].as_str().unwrap_or("")
}

async fn create_user(app: &TestApp, email: &str, role: &str) -> i64 {
    let (st, v) = app
        .post(
            "/api/v1/users",
            &json!({"email": email, "name": "Someone", "password": "a long password 1", "role": role})
                .to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert!(
        v.get("password_hash").is_none() && !v.to_string().contains("argon2"),
        "{v}"
    );
    v["id"].as_i64().expect("id")
}

async fn sign_in_refresh_rotation_and_reuse(app: TestApp) {
    // Wrong password and unknown user: the same answer.
    let (st, wrong) = login(&app, ADMIN_EMAIL, "not the password at all").await;
    let (st2, unknown) = login(&app, "nobody@test.pdm", "not the password at all").await;
    assert_eq!(
        (st, st2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    assert_eq!(wrong, unknown);
    assert_eq!(reason(&wrong), "invalid_credentials");

    let (st, pair) = login(&app, &ADMIN_EMAIL.to_uppercase(), ADMIN_PASSWORD).await;
    assert_eq!(st, StatusCode::OK, "{pair}");
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    let access = pair["access_token"].as_str().expect("access");
    let refresh = pair["refresh_token"].as_str().expect("refresh");
    assert!(refresh.starts_with("pdm_rt_"));
    let (st, me) = call_as(&app, Some(access), "GET", "/api/v1/auth/me", None).await;
    assert_eq!(st, StatusCode::OK, "{me}");
    assert_eq!(me["user"]["email"], ADMIN_EMAIL);
    assert_eq!(me["role"], "admin");
    assert!(me["user"]["last_sign_in"].is_i64(), "{me}");

    // Rotation: the refresh token is single use.
    let (st, next) = call_as(
        &app,
        None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{next}");
    let next_access = next["access_token"].as_str().expect("access");
    let next_refresh = next["refresh_token"].as_str().expect("refresh");
    assert_ne!(next_refresh, refresh);
    let (st, _) = call_as(&app, Some(next_access), "GET", "/api/v1/auth/me", None).await;
    assert_eq!(st, StatusCode::OK);
    // The old one again: someone copied it. The session ends, with every token in it.
    let (st, reused) = call_as(
        &app,
        None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": refresh})),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&reused), "refresh_reused");
    let (st, v) = call_as(
        &app,
        None,
        "POST",
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": next_refresh})),
    )
    .await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "refresh_expired"),
        "{v}"
    );
    let (st, v) = call_as(&app, Some(next_access), "GET", "/api/v1/auth/me", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "session_ended"),
        "{v}"
    );

    // Logout ends the session at once.
    let (_, pair) = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let access = pair["access_token"].as_str().expect("access").to_owned();
    let (st, sessions) = call_as(&app, Some(&access), "GET", "/api/v1/auth/sessions", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        sessions
            .as_array()
            .expect("list")
            .iter()
            .any(|s| s["current"] == true),
        "{sessions}"
    );
    let (st, _) = call_as(&app, Some(&access), "POST", "/api/v1/auth/logout", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, v) = call_as(&app, Some(&access), "GET", "/api/v1/machines", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "session_ended")
    );

    // Forged and tampered access tokens.
    let (_, pair) = login(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let good = pair["access_token"].as_str().expect("access");
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap_or(0) + 86_400);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(longer.to_string()),
        parts[2]
    );
    for (token, why) in [
        (none.as_str(), "token_algorithm"),
        (tampered.as_str(), "token_signature"),
        ("not-a-token", "token_malformed"),
        ("pdm_rt_abc", "token_kind"),
        ("pdm_at_nope", "token_unknown"),
    ] {
        let (st, v) = call_as(&app, Some(token), "GET", "/api/v1/machines", None).await;
        assert_eq!(
            (st, reason(&v)),
            (StatusCode::UNAUTHORIZED, why),
            "{token}: {v}"
        );
    }
    let (st, _, v) = app
        .request(
            "GET",
            "/api/v1/machines",
            None,
            &[("authorization", "Basic eA==")],
        )
        .await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "credentials_malformed")
    );
    let (st, v) = call_as(&app, None, "GET", "/api/v1/machines", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "credentials_missing")
    );
    app.stop().await;
}

async fn people_changes_take_effect_at_once(app: TestApp) {
    let id = create_user(&app, "Vera@Test.pdm", "viewer").await;
    let (st, v) = app
        .post(
            "/api/v1/users",
            &json!({"email": "vera@test.PDM", "name": "V", "password": "a long password 2", "role": "viewer"})
                .to_string(),
        )
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "emails are unique in any case: {v}"
    );
    for (body, field) in [
        (
            json!({"email": "x", "name": "X", "password": "a long password 3", "role": "viewer"}),
            "email",
        ),
        (
            json!({"email": "x@y.z", "name": "X", "password": "short", "role": "viewer"}),
            "password",
        ),
        (
            json!({"email": "x@y.z", "name": "X", "password": "a long password 3", "role": "boss"}),
            "role",
        ),
    ] {
        let (st, v) = app.post("/api/v1/users", &body.to_string()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with(field),
            "{v}"
        );
    }

    let (st, pair) = login(&app, "vera@test.pdm", "a long password 1").await;
    assert_eq!(st, StatusCode::OK, "{pair}");
    let vera = pair["access_token"].as_str().expect("access").to_owned();
    let rule = json!({"severity": "low", "kind": {"type": "stale", "after_ms": 60000}});
    let (st, v) = call_as(
        &app,
        Some(&vera),
        "PUT",
        "/api/v1/alarm-rules/r1",
        Some(rule.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("alarm_rules:write"),
        "{v}"
    );

    // Promoted: the same token may now.
    let (st, _) = app
        .patch(&format!("/api/v1/users/{id}"), r#"{"role": "engineer"}"#)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = call_as(
        &app,
        Some(&vera),
        "PUT",
        "/api/v1/alarm-rules/r1",
        Some(rule),
    )
    .await;
    assert!(st.is_success(), "{st} {v}");

    // Deactivated: the same token stops at once, and she cannot sign in.
    let (st, _) = app
        .patch(&format!("/api/v1/users/{id}"), r#"{"active": false}"#)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = call_as(&app, Some(&vera), "GET", "/api/v1/machines", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "user_inactive")
    );
    let (st, v) = login(&app, "vera@test.pdm", "a long password 1").await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    // Changing one's password needs the current one; other sessions end.
    let admin_id = {
        let (_, me) = app.get("/api/v1/auth/me").await;
        me["user"]["id"].as_i64().expect("admin id")
    };
    let (st, _) = app
        .patch(&format!("/api/v1/users/{admin_id}"), r#"{"active": false}"#)
        .await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "an admin cannot lock themselves out"
    );

    // A token made by a user stops when the user is deactivated.
    let maker = create_user(&app, "maker@test.pdm", "admin").await;
    let (_, pair) = login(&app, "maker@test.pdm", "a long password 1").await;
    let maker_access = pair["access_token"].as_str().expect("access").to_owned();
    let (st, made) = call_as(
        &app,
        Some(&maker_access),
        "POST",
        "/api/v1/tokens",
        Some(json!({"name": "maker's script", "role": "viewer"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let script = made["secret"].as_str().expect("secret").to_owned();
    let (st, _) = call_as(&app, Some(&script), "GET", "/api/v1/machines", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = app
        .patch(&format!("/api/v1/users/{maker}"), r#"{"active": false}"#)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = call_as(&app, Some(&script), "GET", "/api/v1/machines", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "token_owner_inactive")
    );
    app.stop().await;
}

async fn tokens_of_every_kind(app: TestApp) {
    let (st, _) = app.post("/api/v1/machines", r#"{"key": "press-1"}"#).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app.post("/api/v1/machines", r#"{"key": "press-2"}"#).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .post("/api/v1/machines/press-1/sensors", r#"{"key": "temp"}"#)
        .await;
    assert_eq!(st, StatusCode::CREATED);

    // A device's token: its own machine's readings, nothing else.
    let (st, made) = app
        .post(
            "/api/v1/tokens",
            r#"{"name": "press-1 gateway", "machine": "press-1"}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let device = made["secret"].as_str().expect("secret").to_owned();
    assert!(device.starts_with("pdm_it_"));
    let reading = json!([{"ts": common::now_ms(), "values": {"temp": 41.5}}]);
    let (st, v) = call_as(
        &app,
        Some(&device),
        "POST",
        "/api/v1/machines/press-1/telemetry",
        Some(reading.clone()),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{v}");
    for (method, uri) in [
        ("POST", "/api/v1/machines/press-2/telemetry"),
        ("GET", "/api/v1/machines/press-1/latest"),
        ("GET", "/api/v1/machines"),
    ] {
        let body = (method == "POST").then(|| reading.clone());
        let (st, v) = call_as(&app, Some(&device), method, uri, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}: {v}");
    }

    // A script's token: its role.
    let (st, made) = app
        .post(
            "/api/v1/tokens",
            r#"{"name": "report script", "role": "viewer", "expires_in_days": 30}"#,
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    let script = made["secret"].as_str().expect("secret").to_owned();
    let id = made["id"].as_i64().expect("id");
    let (st, _) = call_as(&app, Some(&script), "GET", "/api/v1/machines", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = call_as(
        &app,
        Some(&script),
        "POST",
        "/api/v1/machines",
        Some(json!({"key": "x"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, me) = call_as(&app, Some(&script), "GET", "/api/v1/auth/me", None).await;
    assert_eq!(
        (st, me["actor"].as_str()),
        (StatusCode::OK, Some("token:report script"))
    );

    // Listed without secrets; revoked, it stops.
    let (st, list) = app.get("/api/v1/tokens").await;
    assert_eq!(st, StatusCode::OK);
    assert!(!list.to_string().contains(&script[8..]) && !list.to_string().contains(&device[8..]));
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let (st, _) = app.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.delete(&format!("/api/v1/tokens/{id}")).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, v) = call_as(&app, Some(&script), "GET", "/api/v1/machines", None).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::UNAUTHORIZED, "token_revoked")
    );

    for (body, field) in [
        (r#"{"name": "x"}"#, "role, machine"),
        (
            r#"{"name": "x", "role": "viewer", "machine": "press-1"}"#,
            "role, machine",
        ),
        (r#"{"name": "x", "role": "nope"}"#, "role"),
        (r#"{"name": "x", "machine": "nope-machine"}"#, "machine"),
        (
            r#"{"name": "x", "role": "viewer", "expires_in_days": 0}"#,
            "expires_in_days",
        ),
    ] {
        let (st, v) = app.post("/api/v1/tokens", body).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with(field),
            "{v}"
        );
    }

    // A custom role from the permission set.
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/shift-lead",
            Some(r#"{"description": "acts on alarms", "permissions": ["alarms:read", "alarms:act", "machines:read"]}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/admin",
            Some(r#"{"description": "x", "permissions": []}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/odd",
            Some(r#"{"description": "x", "permissions": ["root"]}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("permissions[0]"),
        "{v}"
    );
    create_user(&app, "lead@test.pdm", "shift-lead").await;
    let (st, _) = app.delete("/api/v1/roles/shift-lead").await;
    assert_eq!(st, StatusCode::CONFLICT, "a role still held");
    app.stop().await;
}

/// A concrete URI for a policy path: parameters filled with things that may not exist (an
/// allowed call then answers 404 or 4xx, never 401 or 403).
fn concrete(path: &str) -> String {
    let mut out = String::from("/api/v1");
    out.push_str(
        &path
            .replace("{machine}", "rbac-m")
            .replace("{sensor}", "s")
            .replace("{rule}", "rbac-rule")
            .replace("{name}", "rbac-role")
            .replace("{delivery}", "1")
            .replace("{id}", "999999"),
    );
    out
}

/// Just the status (a stream's body is never read).
async fn status_of(app: &TestApp, bearer: Option<&str>, method: &str, uri: &str) -> StatusCode {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = bearer {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = if method == "GET" || method == "DELETE" {
        Body::empty()
    } else {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    };
    let resp = pdm_server::app(app.server().state().clone())
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("infallible");
    resp.status()
}

async fn role_token(app: &TestApp, role: &str) -> String {
    let (st, made) = app
        .post(
            "/api/v1/tokens",
            &json!({"name": format!("rbac {role}"), "role": role}).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    made["secret"].as_str().expect("secret").to_owned()
}

async fn the_rbac_matrix_holds_for_every_route(app: TestApp) {
    let roles = pdm_core::store::Role::builtin();
    let mut tokens = Vec::new();
    for r in &roles {
        tokens.push((r.clone(), role_token(&app, &r.name).await));
    }
    let mut checked = 0;
    for (method, path, access) in POLICY {
        let uri = concrete(path);
        let anonymous = status_of(&app, None, method, &uri).await;
        match access {
            Access::Public => assert_ne!(anonymous, StatusCode::UNAUTHORIZED, "{method} {uri}"),
            _ => assert_eq!(
                anonymous,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} without credentials"
            ),
        }
        for (role, token) in &tokens {
            let st = status_of(&app, Some(token), method, &uri).await;
            let allowed = match access {
                Access::Public | Access::Signed => true,
                Access::Need(p) => role.grants(*p),
            };
            assert!(
                !st.is_server_error(),
                "{method} {uri} as {}: {st}",
                role.name
            );
            if allowed {
                assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                    "{method} {uri} as {}: {st}, but the role grants it",
                    role.name
                );
            } else {
                assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri} as {}", role.name);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * POLICY.len());
    // Every permission is granted to someone and needed somewhere.
    for p in Permission::ALL {
        assert!(
            POLICY.iter().any(|(_, _, a)| *a == Access::Need(p))
                || pdm_server::auth::policy::WIDENING.contains(&p),
            "{p} guards no route and widens none"
        );
    }
    app.stop().await;
}

/// `.route("/path", get(a).post(b))` of the API's sources, as (METHOD, path) pairs.
fn declared_routes(dir: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("src/api") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|x| x != "rs") || path.ends_with("ops.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source");
        for piece in text.split(".route(").skip(1) {
            let Some(rest) = piece.trim_start().strip_prefix('"') else {
                continue;
            };
            let Some((route, handlers)) = rest.split_once('"') else {
                continue;
            };
            // The handlers, up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = handlers
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(handlers.len(), |(i, _)| i);
            let handlers = &handlers[..end];
            for (verb, method) in [
                ("get(", "GET"),
                ("post(", "POST"),
                ("put(", "PUT"),
                ("patch(", "PATCH"),
                ("delete(", "DELETE"),
            ] {
                let found = handlers.match_indices(verb).any(|(i, _)| {
                    i == 0
                        || !handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[i - 1] != b'_'
                });
                if found {
                    out.insert((method.to_owned(), route.to_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn every_route_declares_its_access() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut routes = declared_routes(&root.join("src/api"));
    // ops.rs: the API's dead letters (the probes and metrics are at the root, open).
    routes.insert(("GET".into(), "/dead-letters".into()));
    // openapi.rs: the API's description.
    routes.insert(("GET".into(), "/openapi.json".into()));
    assert!(routes.len() >= 70, "the routers were not found: {routes:?}");
    let policy: BTreeSet<(String, String)> = POLICY
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let undeclared: Vec<_> = routes.difference(&policy).collect();
    assert!(
        undeclared.is_empty(),
        "routes without a declared access: {undeclared:?}"
    );
    let stale: Vec<_> = policy.difference(&routes).collect();
    assert!(stale.is_empty(), "policy rows without a route: {stale:?}");
    // The OpenAPI document describes exactly these routes.
    let described: BTreeSet<(String, String)> =
        pdm_server::openapi::described().into_iter().collect();
    let undescribed: Vec<_> = policy.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "routes missing from the OpenAPI document: {undescribed:?}"
    );
    let unrouted: Vec<_> = described.difference(&policy).collect();
    assert!(
        unrouted.is_empty(),
        "described but not routed: {unrouted:?}"
    );
}

/// Past the failures an account may have, sign-ins are refused (429) without checking the
/// password, the right one included; an unknown account is throttled alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_are_throttled_per_account() {
    let app = TestApp::sqlite_with(|c| c.auth.max_failures_per_account = 3).await;
    // The helpers' own admin token, before the admin's account is throttled.
    let (st, _) = app.get("/api/v1/auth/me").await;
    assert_eq!(st, StatusCode::OK);
    for email in [ADMIN_EMAIL, "nobody@test.pdm"] {
        for _ in 0..3 {
            let (st, v) = login(&app, email, "a wrong password here").await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        }
        let (st, _, v) = app
            .request(
                "POST",
                "/api/v1/auth/login",
                Some(&json!({"email": email, "password": ADMIN_PASSWORD}).to_string()),
                &[("authorization", "")],
            )
            .await;
        assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{email}: {v}");
        assert_eq!(reason(&v), "throttled");
    }
    // Another account is not locked by them.
    let id = create_user(&app, "other@test.pdm", "viewer").await;
    assert!(id > 0);
    let (st, _) = login(&app, "other@test.pdm", "a long password 1").await;
    assert_eq!(st, StatusCode::OK);
    app.stop().await;
}

/// `users:manage` and `tokens:manage` lead no further than the caller's own permissions: a
/// help desk that manages people cannot make itself, another user, a role or a token an admin.
async fn managers_cannot_grant_more_than_they_hold(app: TestApp) {
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/helpdesk",
            Some(r#"{"description": "people", "permissions": ["users:manage", "tokens:manage", "machines:read"]}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = create_user(&app, "desk@test.pdm", "helpdesk").await;
    let (_, pair) = login(&app, "desk@test.pdm", "a long password 1").await;
    let desk = pair["access_token"].as_str().expect("access").to_owned();
    let admin_id = {
        let (_, me) = app.get("/api/v1/auth/me").await;
        me["user"]["id"].as_i64().expect("admin id")
    };
    for (method, uri, body) in [
        (
            "PATCH",
            format!("/api/v1/users/{id}"),
            json!({"role": "admin"}),
        ),
        (
            "POST",
            "/api/v1/users".to_owned(),
            json!({"email": "boss@test.pdm", "name": "B", "password": "a long password 9", "role": "admin"}),
        ),
        (
            "PATCH",
            format!("/api/v1/users/{admin_id}"),
            json!({"password": "taken over now!"}),
        ),
        (
            "POST",
            format!("/api/v1/users/{admin_id}/sessions/revoke"),
            Value::Null,
        ),
        (
            "PUT",
            "/api/v1/roles/everything".to_owned(),
            json!({"description": "x", "permissions": ["users:manage", "alarms:act"]}),
        ),
        (
            "POST",
            "/api/v1/tokens".to_owned(),
            json!({"name": "t", "role": "admin"}),
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (st, v) = call_as(&app, Some(&desk), method, &uri, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{method} {uri}: {v}");
    }
    // Within its own permissions it may.
    let (st, v) = call_as(
        &app,
        Some(&desk),
        "POST",
        "/api/v1/users",
        Some(json!({"email": "new@test.pdm", "name": "N", "password": "a long password 9", "role": "helpdesk"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    app.stop().await;
}

/// A sign-in through a trusted reverse proxy: `(status, body)` of `POST /auth/login` from the
/// proxy's connection, with the client the proxy forwarded.
async fn login_via(
    app: &TestApp,
    peer: &str,
    forwarded: &str,
    password: &str,
) -> (StatusCode, Value) {
    use axum::extract::ConnectInfo;
    let body = json!({"email": ADMIN_EMAIL, "password": password}).to_string();
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/v1/auth/login")
        .header("content-type", "application/json")
        .header("x-forwarded-for", forwarded)
        .body(Body::from(body))
        .expect("request");
    let peer: std::net::SocketAddr = format!("{peer}:40000").parse().expect("peer");
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = pdm_server::app(app.server().state().clone())
        .oneshot(req)
        .await
        .expect("infallible");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Behind a trusted proxy the client is the address it forwarded: sign-ins are throttled per
/// client, not all together as the proxy's, and the session records the client. A peer that is
/// not a trusted proxy is the client whatever it forwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_throttled_and_recorded() {
    let app = TestApp::sqlite_with(|c| {
        c.auth.trusted_proxies = vec!["10.0.0.0/8".into()];
        c.auth.max_failures_per_address = 2;
    })
    .await;
    for _ in 0..2 {
        let (st, v) = login_via(&app, "10.0.0.2", "198.51.100.1", "a wrong password here").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    }
    let (st, v) = login_via(&app, "10.0.0.2", "198.51.100.1", ADMIN_PASSWORD).await;
    assert_eq!(
        (st, reason(&v)),
        (StatusCode::TOO_MANY_REQUESTS, "throttled"),
        "{v}"
    );
    // Another client through the same proxy is not locked out with it; a forged entry on the
    // left of the header changes nothing.
    let (st, v) = login_via(
        &app,
        "10.0.0.2",
        "198.51.100.1, 198.51.100.2",
        ADMIN_PASSWORD,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let access = v["access_token"].as_str().expect("token").to_owned();
    let (st, sessions) = call_as(&app, Some(&access), "GET", "/api/v1/auth/sessions", None).await;
    assert_eq!(st, StatusCode::OK);
    let current: Vec<_> = sessions
        .as_array()
        .expect("sessions")
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current[0]["client_addr"], "198.51.100.2", "{sessions}");
    let (st, v) = login_via(&app, "10.0.0.2", "6.6.6.6, 198.51.100.1", ADMIN_PASSWORD).await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "the right-most untrusted hop counts: {v}"
    );
    // Not a trusted proxy: its own address, whatever it forwards.
    for _ in 0..2 {
        let (st, _) = login_via(&app, "203.0.113.5", "198.51.100.9", "a wrong password here").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _) = login_via(&app, "203.0.113.5", "198.51.100.3", ADMIN_PASSWORD).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}

/// Nobody can leave the server without an active user who may manage users: the last one can
/// be neither deactivated nor given a role without `users:manage`; with another, both work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_user_manager_stays() {
    let app = TestApp::sqlite().await;
    let (_, me) = app.get("/api/v1/auth/me").await;
    let admin = me["user"]["id"].as_i64().expect("the test admin is a user");
    let demote = json!({"role": "viewer"}).to_string();
    let (st, v) = app.patch(&format!("/api/v1/users/{admin}"), &demote).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(v.to_string().contains("last active user"), "{v}");
    let other = create_user(&app, "second@test.pdm", "admin").await;
    let (st, v) = app
        .patch(&format!("/api/v1/users/{other}"), r#"{"active": false}"#)
        .await;
    assert_eq!(st, StatusCode::OK, "another admin remains: {v}");
    let (st, v) = app.patch(&format!("/api/v1/users/{admin}"), &demote).await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "the other one is inactive now: {v}"
    );
    let (st, v) = app
        .patch(&format!("/api/v1/users/{other}"), r#"{"active": true}"#)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A user who manages nothing is changed freely.
    let viewer = create_user(&app, "viewer@test.pdm", "viewer").await;
    let (st, _) = app
        .patch(&format!("/api/v1/users/{viewer}"), r#"{"active": false}"#)
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = app.patch(&format!("/api/v1/users/{admin}"), &demote).await;
    assert_eq!(st, StatusCode::OK, "the second admin manages now: {v}");
    app.stop().await;
}
