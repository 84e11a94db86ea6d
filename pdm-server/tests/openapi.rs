//! The API description: `/api/v1/openapi.json` is OpenAPI 3.1, public, and says for every
//! operation what it needs and how it fails; `/api/docs` serves Swagger UI from the binary; and
//! what the description promises about methods and bodies holds (405 with `Allow` for a method a
//! route lacks, a JSON body that is not an object refused). The fuzzer (`scripts/test`, with
//! schemathesis) checks the rest against a live server. Also the rest of the HTTP surface every
//! route shares: the security headers, and CORS only for configured origins.

mod common;

use axum::http::StatusCode;
use common::TestApp;
use pdm_server::auth::policy::{Access, POLICY};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_every_operation_with_its_security_and_errors() {
    let app = TestApp::sqlite().await;
    let (st, headers, doc) = app
        .request(
            "GET",
            "/api/v1/openapi.json",
            None,
            &[("authorization", "")],
        )
        .await;
    assert_eq!(st, StatusCode::OK, "public, like sign-in: {doc}");
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut seen = 0;
    for (method, path, access) in POLICY {
        let op = &doc["paths"][format!("/api/v1{path}")][method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} is not described");
        seen += 1;
        let security = op["security"].as_array().expect("security");
        let responses = op["responses"].as_object().expect("responses");
        for status in ["400", "422", "500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        let success = responses
            .keys()
            .filter(|s| s.starts_with('2') || s == &"101")
            .count();
        assert!(success >= 1, "{method} {path}: no success answer");
        let description = op["description"].as_str().unwrap_or("");
        match access {
            Access::Public => {
                // An explicit empty requirement: no credentials needed.
                assert_eq!(
                    security,
                    &[Value::Object(Default::default())],
                    "{method} {path}"
                );
            }
            Access::Signed => {
                assert_eq!(
                    security[0]["bearer"],
                    Value::Array(vec![]),
                    "{method} {path}"
                );
                assert!(responses.contains_key("401"), "{method} {path}");
            }
            Access::Need(p) => {
                assert_eq!(
                    security[0]["bearer"],
                    Value::Array(vec![]),
                    "{method} {path}"
                );
                assert!(responses.contains_key("401") && responses.contains_key("403"));
                assert!(
                    description.contains(&format!("`{}`", p.as_str())),
                    "{method} {path} does not name {p}: {description}"
                );
            }
        }
        // Every error answer has the one error shape.
        for (status, r) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
        }
    }
    assert_eq!(seen, POLICY.len());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_from_the_binary() {
    let app = TestApp::sqlite().await;
    let (st, headers, _) = app.request("GET", "/api/docs", None, &[]).await;
    assert!(st.is_redirection(), "{st}");
    assert_eq!(headers["location"], "/api/docs/");
    let (st, headers, page) = app.request("GET", "/api/docs/", None, &[]).await;
    assert_eq!(st, StatusCode::OK);
    let page = page.as_str().expect("html");
    assert!(page.contains("swagger-ui"), "{page}");
    // No CDN: every script and style is one of its own files.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    let csp = headers["content-security-policy"].to_str().expect("csp");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let (st, _, init) = app
        .request("GET", "/api/docs/swagger-initializer.js", None, &[])
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        init.as_str().unwrap_or("").contains("/api/v1/openapi.json"),
        "{init}"
    );
    let (st, _, _) = app
        .request("GET", "/api/docs/swagger-ui-bundle.js", None, &[])
        .await;
    assert_eq!(st, StatusCode::OK);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_route_lacks_is_405_with_allow() {
    let app = TestApp::sqlite().await;
    for method in ["TRACE", "PUT", "OPTIONS"] {
        let (st, headers, body) = app.request(method, "/api/v1/machines", None, &[]).await;
        assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED, "{method}: {body}");
        assert_eq!(body["error"]["code"], "method_not_allowed");
        assert_eq!(headers["allow"], "GET, POST, HEAD");
    }
    // Without credentials too: the method is wrong whoever asks.
    let (st, _, _) = app
        .request("TRACE", "/api/v1/users/1", None, &[("authorization", "")])
        .await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_body_must_be_an_object() {
    let app = TestApp::sqlite().await;
    let (st, body) = app.post("/api/v1/machines", r#"{"key": "pump-1"}"#).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    // serde reads a struct from an array too; the API does not.
    for bad in [r#"[null, null]"#, r#"["pump-2"]"#, "[]", "null", "3"] {
        let (st, body) = app.patch("/api/v1/machines/pump-1", bad).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    // Trailing data after the object is unreadable JSON.
    let (st, body) = app
        .patch("/api/v1/machines/pump-1", r#"{"name": "a"} x"#)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let (st, _, body) = app
        .request(
            "POST",
            "/api/v1/machines",
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    let (st, body) = app.get("/api/v1/machines/pump-1").await;
    assert_eq!(
        (st, &body["name"]),
        (StatusCode::OK, &Value::from("pump-1"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::sqlite().await;
    for (uri, auth) in [
        ("/api/v1/machines", None),
        ("/api/v1/machines", Some("")),
        ("/api/v1/nowhere", None),
        ("/health/live", None),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        let (st, h, _) = app.request("GET", uri, None, &headers).await;
        for (name, value) in pdm_server::layers::SECURITY_HEADERS {
            assert_eq!(h[name], value, "{uri} ({st}): {name}");
        }
        assert!(
            h.get("access-control-allow-origin").is_none(),
            "no CORS unless configured"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_only_the_configured_origins() {
    let app =
        TestApp::sqlite_with(|c| c.cors_origins = vec!["https://dash.plant.example".into()]).await;
    let preflight = |origin: &'static str| {
        [
            ("origin", origin),
            ("access-control-request-method", "PATCH"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
            ("authorization", ""),
        ]
    };
    let (st, h, _) = app
        .request(
            "OPTIONS",
            "/api/v1/machines/pump-1",
            None,
            &preflight("https://dash.plant.example"),
        )
        .await;
    assert!(st.is_success(), "{st}");
    assert_eq!(
        h["access-control-allow-origin"],
        "https://dash.plant.example"
    );
    let methods = h["access-control-allow-methods"].to_str().expect("methods");
    assert!(methods.contains("PATCH"), "{methods}");
    assert!(
        h.get("access-control-allow-credentials").is_none(),
        "bearer tokens, no cookies"
    );
    let (_, h, _) = app
        .request(
            "OPTIONS",
            "/api/v1/machines/pump-1",
            None,
            &preflight("https://evil.example"),
        )
        .await;
    assert!(h.get("access-control-allow-origin").is_none());
    let (st, h, _) = app
        .request(
            "GET",
            "/api/v1/machines",
            None,
            &[("origin", "https://dash.plant.example")],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        h["access-control-allow-origin"],
        "https://dash.plant.example"
    );
    let exposed = h["access-control-expose-headers"]
        .to_str()
        .expect("exposed");
    assert!(exposed.contains("x-request-id"), "{exposed}");
    app.stop().await;
    // Anything but scheme://host[:port] is refused when the server starts.
    for bad in [
        "*",
        "https://dash.example/",
        "dash.example",
        "https://dash.example/app",
    ] {
        let config = pdm_server::config::ServerConfig {
            cors_origins: vec![bad.into()],
            ..Default::default()
        };
        let e = config.check().expect_err(bad);
        assert!(e.to_string().contains("cors_origins[0]"), "{bad}: {e}");
    }
}
