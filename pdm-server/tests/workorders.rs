//! Work orders through the API, on SQLite and PostgreSQL: from an alarm, the lifecycle and
//! what resolving requires, `ETag`/`If-Match` (428 without, 412 stale, two concurrent edits:
//! one wins), the history, filters, sorting and paging, the code lists, and bad input.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{raise_alarm, TestApp, ADMIN_EMAIL};
use pdm_core::alarm::Severity;
use serde_json::{json, Value};

on_both_backends!(
    work_orders_end_to_end,
    bad_work_order_input_is_refused_by_name
);

async fn create_machine(app: &TestApp, machine: &str) {
    let (st, body) = app
        .post("/api/v1/machines", &json!({ "key": machine }).to_string())
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

/// `PATCH /work-orders/{id}` with `If-Match: "<version>"` (`None`: no header).
async fn patch(
    app: &TestApp,
    id: i64,
    version: Option<i64>,
    body: Value,
) -> (StatusCode, Option<String>, Value) {
    let tag = version.map(|v| format!("\"{v}\""));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(t) = &tag {
        headers.push(("if-match", t.as_str()));
    }
    let (st, h, v) = app
        .request(
            "PATCH",
            &format!("/api/v1/work-orders/{id}"),
            Some(&body.to_string()),
            &headers,
        )
        .await;
    let etag = h
        .get("etag")
        .and_then(|e| e.to_str().ok())
        .map(str::to_owned);
    (st, etag, v)
}

async fn work_orders_end_to_end(app: TestApp) {
    create_machine(&app, "pump-1").await;
    let alarm = raise_alarm(&app, "pump-1", "bearing", Severity::High).await;

    // One call makes a work order of an alarm, linking it.
    let (st, h, w) = app
        .request(
            "POST",
            &format!("/api/v1/alarms/{alarm}/work-order"),
            None,
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    assert_eq!(h["etag"], "\"1\"");
    let id = w["id"].as_i64().expect("id");
    assert_eq!(w["alarms"], json!([alarm]));
    assert_eq!(
        (w["priority"].as_str(), w["status"].as_str()),
        (Some("high"), Some("open"))
    );
    assert!(w["title"].as_str().unwrap_or("").contains("bearing"), "{w}");
    assert_eq!(w["created_by"], ADMIN_EMAIL);
    assert_eq!(
        w["next_statuses"],
        json!(["in_progress", "on_hold", "resolved"])
    );

    // A change needs the version read.
    let (st, _, v) = patch(&app, id, None, json!({"status": "in_progress"})).await;
    assert_eq!(st, StatusCode::PRECONDITION_REQUIRED, "{v}");
    let (st, etag, w) = patch(
        &app,
        id,
        Some(1),
        json!({"status": "in_progress", "add_time_min": 30}),
    )
    .await;
    assert_eq!(
        (st, etag.as_deref()),
        (StatusCode::OK, Some("\"2\"")),
        "{w}"
    );
    assert_eq!(w["time_spent_min"], 30);
    let (st, _, v) = patch(&app, id, Some(1), json!({"title": "overwrite"})).await;
    assert_eq!(st, StatusCode::PRECONDITION_FAILED, "stale: {v}");

    // Two concurrent edits of version 2: one is stored, the other told to read again.
    let (a, b) = tokio::join!(
        patch(&app, id, Some(2), json!({"title": "Edited by A"})),
        patch(&app, id, Some(2), json!({"priority": "urgent"})),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
        "{a:?} {b:?}"
    );
    let (st, h, w) = app
        .request("GET", &format!("/api/v1/work-orders/{id}"), None, &[])
        .await;
    assert_eq!(
        (st, h["etag"].to_str().expect("etag")),
        (StatusCode::OK, "\"3\"")
    );
    let title_won = a.0 == StatusCode::OK;
    assert_eq!(w["title"] == "Edited by A", title_won, "{w}");
    assert_eq!(
        w["priority"] == "urgent",
        !title_won,
        "the loser changed nothing: {w}"
    );

    // The lifecycle: no jump from in progress to closed; resolving needs its findings.
    let (st, _, v) = patch(&app, id, Some(3), json!({"status": "closed"})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    let (st, _, v) = patch(
        &app,
        id,
        Some(3),
        json!({"status": "resolved", "remedy": "replaced"}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("label"), "{v}");
    let (st, _, v) = patch(
        &app,
        id,
        Some(3),
        json!({"status": "resolved", "remedy": "replaced", "label": "true_fault"}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("failure_mode, cause"), "{v}");
    let (st, _, v) = patch(
        &app,
        id,
        Some(3),
        json!({"status": "resolved", "remedy": "teleported", "label": "false_alarm"}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v.to_string().contains("not in the remedy list"), "{v}");
    let (st, _, w) = patch(
        &app,
        id,
        Some(3),
        json!({"status": "resolved", "remedy": "replaced", "failure_mode": "vibration",
               "cause": "wear", "label": "true_fault"}),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{w}");
    assert_eq!(
        (w["status"].as_str(), w["label"].as_str()),
        (Some("resolved"), Some("true_fault"))
    );
    assert!(w["resolved_at"].is_i64());

    // Every change is on record, with who made it.
    let (st, history) = app.get(&format!("/api/v1/work-orders/{id}/history")).await;
    assert_eq!(st, StatusCode::OK);
    let events = history.as_array().expect("events");
    let actions: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or(""),
                e["version"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("created", 1),
            ("updated", 2),
            ("updated", 3),
            ("updated", 4)
        ],
        "{history}"
    );
    assert_eq!(
        events[1]["changes"]["status"],
        json!({"from": "open", "to": "in_progress"})
    );
    assert!(
        events.iter().all(|e| e["actor"] == ADMIN_EMAIL),
        "{history}"
    );

    // Lists: filters, sorting, paging.
    for (title, priority) in [
        ("Grease", "low"),
        ("Replace seal", "high"),
        ("Inspect", "medium"),
    ] {
        let (st, v) = app
            .post(
                "/api/v1/work-orders",
                &json!({"title": title, "machine": "pump-1", "priority": priority,
                        "due_at": "2020-01-01T00:00:00Z"})
                .to_string(),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let titles = |v: &Value| -> Vec<String> {
        v["work_orders"]
            .as_array()
            .expect("list")
            .iter()
            .map(|w| w["title"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let (_, v) = app.get("/api/v1/work-orders").await;
    assert_eq!(titles(&v).len(), 4);
    let (_, v) = app.get("/api/v1/work-orders?status=resolved").await;
    assert_eq!(titles(&v).len(), 1);
    let (_, v) = app
        .get("/api/v1/work-orders?status=open,in_progress&sort=priority")
        .await;
    assert_eq!(titles(&v), ["Replace seal", "Inspect", "Grease"]);
    let (_, v) = app.get("/api/v1/work-orders?overdue=true").await;
    assert_eq!(titles(&v).len(), 3, "the three due in 2020: {v}");
    let (_, first) = app.get("/api/v1/work-orders?limit=2").await;
    assert_eq!(titles(&first), ["Inspect", "Replace seal"]);
    let next = first["next"].as_str().expect("a next page").to_owned();
    let (_, rest) = app
        .get(&format!("/api/v1/work-orders?limit=2&cursor={next}"))
        .await;
    assert_eq!(titles(&rest).len(), 2);
    assert!(rest["next"].is_null(), "{rest}");
    let (_, page2) = app
        .get("/api/v1/work-orders?sort=priority&limit=2&cursor=2")
        .await;
    assert_eq!(titles(&page2).len(), 2, "{page2}");

    // Code lists: read, add, retire.
    let (st, codes) = app.get("/api/v1/work-order-codes?kind=remedy").await;
    assert_eq!(st, StatusCode::OK);
    assert!(codes
        .as_array()
        .expect("codes")
        .iter()
        .any(|c| c["code"] == "replaced"));
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/work-order-codes/remedy/rewound",
            Some(r#"{"description": "Motor rewound"}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let (st, _, _) = app
        .request(
            "PUT",
            "/api/v1/work-order-codes/remedy/rewound",
            Some(r#"{"description": "Motor rewound", "active": false}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (_, v) = app.get("/api/v1/work-orders?sort=priority&limit=1").await;
    let open = v["work_orders"][0].clone();
    let (st, _, v) = patch(
        &app,
        open["id"].as_i64().expect("id"),
        open["version"].as_i64(),
        json!({"remedy": "rewound"}),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "retired: {v}");
    app.stop().await;
}

async fn bad_work_order_input_is_refused_by_name(app: TestApp) {
    create_machine(&app, "pump-1").await;
    create_machine(&app, "pump-2").await;
    let other = raise_alarm(&app, "pump-2", "hot", Severity::Low).await;
    for (body, status, field) in [
        (
            json!({"title": "", "machine": "pump-1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "title",
        ),
        (
            json!({"title": "x", "machine": "Pump 1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "machine",
        ),
        (
            json!({"title": "x", "machine": "pump-9"}),
            StatusCode::NOT_FOUND,
            "pump-9",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "priority": "asap"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "priority",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "alarms": [other]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "another machine",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "alarms": [999999]}),
            StatusCode::NOT_FOUND,
            "alarm",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "assignee": 999999}),
            StatusCode::NOT_FOUND,
            "user",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "due_at": "soon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "due_at",
        ),
        (
            json!({"title": "x", "machine": "pump-1", "colour": "red"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
    ] {
        let (st, v) = app.post("/api/v1/work-orders", &body.to_string()).await;
        assert_eq!(st, status, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }
    let (st, _) = app.get("/api/v1/work-orders/999999").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.get("/api/v1/work-orders/abc").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = app.post("/api/v1/alarms/999999/work-order", "").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, v) = app
        .post(
            "/api/v1/work-orders",
            &json!({"title": "Real", "machine": "pump-1"}).to_string(),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["id"].as_i64().expect("id");
    for (version, body, status) in [
        (
            Some(1),
            json!({"status": "sideways"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(1),
            json!({"label": "false_alarm"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(1),
            json!({"add_time_min": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(1),
            json!({"link_alarms": [other]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            Some(1),
            json!({"remedy": "Not A Code"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (st, _, v) = patch(&app, id, version, body.clone()).await;
        assert_eq!(st, status, "{body}: {v}");
    }
    // If-Match as RFC 9110 reads it: a weak tag never matches (412), `*` matches any version,
    // anything else is not an entity tag (400); a change of nothing makes no new version.
    let (_, h, _) = app
        .request("GET", &format!("/api/v1/work-orders/{id}"), None, &[])
        .await;
    let etag = h["etag"].to_str().expect("etag").to_owned();
    for (tag, body, status) in [
        (format!("W/{etag}"), "{}", StatusCode::PRECONDITION_FAILED),
        ("nonsense".to_owned(), "{}", StatusCode::BAD_REQUEST),
        ("*".to_owned(), "{}", StatusCode::OK),
        (format!("\"999\", {etag}"), "{}", StatusCode::OK),
    ] {
        let (st, h, v) = app
            .request(
                "PATCH",
                &format!("/api/v1/work-orders/{id}"),
                Some(body),
                &[("if-match", &tag), ("content-type", "application/json")],
            )
            .await;
        assert_eq!(st, status, "If-Match: {tag}: {v}");
        if st == StatusCode::OK {
            assert_eq!(h["etag"].to_str().expect("etag"), etag, "no new version");
        }
    }
    let (st, _) = app.get("/api/v1/work-orders?sort=random").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = app.get("/api/v1/work-orders?status=done").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _, _) = app
        .request(
            "PUT",
            "/api/v1/work-order-codes/colour/red",
            Some(r#"{"description": "x"}"#),
            &[],
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}
