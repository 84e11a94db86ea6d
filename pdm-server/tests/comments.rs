//! Comments on work orders and alarms through the API, on SQLite and PostgreSQL: stored and
//! answered as written (markup included), edits kept, authors change their own, moderators
//! any, viewers read only; bad input by name.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{as_user, raise_alarm, signed_in, TestApp};
use pdm_core::alarm::Severity;
use serde_json::json;

on_both_backends!(comments_are_kept_as_written_and_changed_by_their_authors);

async fn comments_are_kept_as_written_and_changed_by_their_authors(app: TestApp) {
    let (st, _) = app.post("/api/v1/machines", r#"{"key": "pump-1"}"#).await;
    assert_eq!(st, StatusCode::CREATED);
    let alarm = raise_alarm(&app, "pump-1", "hot", Severity::High).await;
    let (st, w) = app
        .post(&format!("/api/v1/alarms/{alarm}/work-order"), "")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let wo = w["id"].as_i64().expect("id");
    let ana = signed_in(&app, "ana@test.pdm", "engineer").await;
    let bob = signed_in(&app, "bob@test.pdm", "engineer").await;
    let vic = signed_in(&app, "vic@test.pdm", "viewer").await;

    // Markup is kept as written: rendering it safely is the client's business.
    let hostile = "Bearing hot <img src=x onerror=alert(1)> <script>alert(2)</script> **bold**";
    let (st, c) = as_user(
        &app,
        &ana,
        "POST",
        &format!("/api/v1/work-orders/{wo}/comments"),
        Some(json!({"body": hostile})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert_eq!(
        (c["body"].as_str(), c["author"].as_str()),
        (Some(hostile), Some("ana@test.pdm"))
    );
    assert_eq!(c["work_order"], wo);
    let cid = c["id"].as_i64().expect("id");
    let (st, _) = as_user(
        &app,
        &bob,
        "POST",
        &format!("/api/v1/alarms/{alarm}/comments"),
        Some(json!({"body": "Seen it too"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    // Everyone who reads the work order or the alarm reads its comments; a viewer writes none.
    let (st, list) = as_user(
        &app,
        &vic,
        "GET",
        &format!("/api/v1/work-orders/{wo}/comments"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().expect("list").len(), 1);
    let (_, list) = as_user(
        &app,
        &vic,
        "GET",
        &format!("/api/v1/alarms/{alarm}/comments"),
        None,
    )
    .await;
    assert_eq!(list[0]["body"], "Seen it too");
    let (st, _) = as_user(
        &app,
        &vic,
        "POST",
        &format!("/api/v1/alarms/{alarm}/comments"),
        Some(json!({"body": "x"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // The author edits; the previous text is kept.
    let (st, c) = as_user(
        &app,
        &ana,
        "PATCH",
        &format!("/api/v1/comments/{cid}"),
        Some(json!({"body": "Bearing hot; replaced"})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["body"], "Bearing hot; replaced");
    assert_eq!(c["edits"][0]["previous"], hostile);
    assert!(c["edited_at"].is_i64());
    // Someone else may neither edit nor delete it; a moderator (admin) may.
    let (st, v) = as_user(
        &app,
        &bob,
        "PATCH",
        &format!("/api/v1/comments/{cid}"),
        Some(json!({"body": "mine now"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = as_user(
        &app,
        &bob,
        "DELETE",
        &format!("/api/v1/comments/{cid}"),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = app.delete(&format!("/api/v1/comments/{cid}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&format!("/api/v1/work-orders/{wo}/comments")).await;
    assert_eq!(list, json!([]));

    // Bad input.
    for (uri, body, status) in [
        (
            format!("/api/v1/work-orders/{wo}/comments"),
            json!({"body": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/api/v1/work-orders/{wo}/comments"),
            json!({"body": "x".repeat(20_001)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            format!("/api/v1/work-orders/{wo}/comments"),
            json!({"text": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/work-orders/999999/comments".to_owned(),
            json!({"body": "x"}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/alarms/999999/comments".to_owned(),
            json!({"body": "x"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (st, v) = app.post(&uri, &body.to_string()).await;
        assert_eq!(st, status, "{uri} {v}");
    }
    let (st, _) = app.get("/api/v1/work-orders/999999/comments").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .patch("/api/v1/comments/999999", r#"{"body": "x"}"#)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    // Every comment written is on record.
    let (_, log) = app
        .get("/api/v1/audit?action=POST%20%2Fwork-orders%2F%7Bid%7D%2Fcomments")
        .await;
    assert!(
        log["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["actor"] == "ana@test.pdm" && e["status"] == 201),
        "{log}"
    );
    // Commenting needs what reading the work order needs.
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/scribe",
            Some(r#"{"description": "comments only", "permissions": ["comments:write"]}"#),
            &[],
        )
        .await;
    assert!(st.is_success(), "{v}");
    let scribe = signed_in(&app, "scribe@test.pdm", "scribe").await;
    let (st, v) = as_user(
        &app,
        &scribe,
        "POST",
        &format!("/api/v1/work-orders/{wo}/comments"),
        Some(json!({"body": "blind"})),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("work_orders:read"),
        "{v}"
    );
    app.stop().await;
}
