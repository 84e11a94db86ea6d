//! Attachments through the API, on SQLite and PostgreSQL: uploads at the limit and one byte
//! over it (the default limit and one changed live through the settings), the type told by the
//! bytes (a PDF renamed `.png` is refused), a client's path never used (`../../etc/passwd`),
//! downloads as attachments with `nosniff`, deletion by uploader or moderator, a comment's files
//! gone with it, the storage reported, and the audit entries each action leaves.

#[macro_use]
mod common;

use axum::http::StatusCode;
use common::{as_user, multipart, raise_alarm, send_bytes, signed_in, TestApp};
use pdm_core::alarm::Severity;
use serde_json::{json, Value};

on_both_backends!(attachments_are_checked_stored_and_deleted_with_their_owner);

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n";

/// Uploads `bytes` as `name` to `uri` as `who` (`""`: the test admin).
async fn upload(
    app: &TestApp,
    who: &str,
    uri: &str,
    name: &str,
    declared: Option<&str>,
    bytes: &[u8],
) -> (StatusCode, Value) {
    let (ct, body) = multipart(name, declared, bytes);
    let mut headers = vec![("content-type", ct.as_str())];
    if !who.is_empty() {
        headers.push(("authorization", who));
    }
    let (st, _, raw) = send_bytes(app.server(), "POST", uri, &headers, body).await;
    let v = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    (st, v)
}

/// The files of the attachments directory.
fn stored_files(app: &TestApp) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(app.config().data_dir.join("attachments"))
        .expect("attachments dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn text(n: usize) -> Vec<u8> {
    (0..n).map(|i| b"abcdefghij\n"[i % 11]).collect()
}

async fn attachments_are_checked_stored_and_deleted_with_their_owner(app: TestApp) {
    let (st, _) = app.post("/api/v1/machines", r#"{"key": "pump-1"}"#).await;
    assert_eq!(st, StatusCode::CREATED);
    let alarm = raise_alarm(&app, "pump-1", "hot", Severity::High).await;
    let (st, w) = app
        .post(&format!("/api/v1/alarms/{alarm}/work-order"), "")
        .await;
    assert_eq!(st, StatusCode::CREATED, "{w}");
    let wo = w["id"].as_i64().expect("id");
    let on_wo = format!("/api/v1/work-orders/{wo}/attachments");

    // The default limit, 20 MiB: at it stored, one byte over it refused, nothing left behind.
    let limit = 20 * 1024 * 1024;
    let (st, v) = upload(&app, "", &on_wo, "at-limit.txt", None, &text(limit)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["size"], json!(limit));
    let big = v["id"].as_i64().expect("id");
    let (st, v) = upload(&app, "", &on_wo, "over.txt", None, &text(limit + 1)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "too_large");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("uploads.max_bytes"),
        "{v}"
    );
    assert_eq!(
        stored_files(&app).len(),
        1,
        "the refused upload left no file"
    );
    let (st, _) = app.delete(&format!("{on_wo}/{big}")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(stored_files(&app).is_empty(), "deleted with its file");

    // The limit is a setting, applied at once.
    let (st, s) = app
        .patch("/api/v1/settings", r#"{"uploads": {"max_bytes": 4096}}"#)
        .await;
    assert_eq!(st, StatusCode::OK, "{s}");
    let (st, v) = upload(&app, "", &on_wo, "notes.txt", None, &text(4096)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["media_type"], "text/plain");
    let (st, v) = upload(&app, "", &on_wo, "notes.txt", None, &text(4097)).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");

    // The bytes decide: a PDF renamed .png is refused, and so is what is not on the list.
    let (st, v) = upload(&app, "", &on_wo, "photo.png", Some("image/png"), PDF).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_eq!(v["error"]["code"], "unsupported_type");
    assert_eq!(
        v["error"]["message"],
        "file: the file is named as a PNG image but its content is a PDF document"
    );
    let (st, v) = upload(&app, "", &on_wo, "tool", None, b"MZ\x90\0\x03\0\0\0\x04\0").await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (st, v) = upload(&app, "", &on_wo, "page.html", None, b"<script>1</script>").await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (st, v) = upload(&app, "", &on_wo, "empty.txt", None, b"").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (st, pdf) = upload(&app, "", &on_wo, "report.pdf", None, PDF).await;
    assert_eq!(st, StatusCode::CREATED, "{pdf}");
    assert_eq!(pdf["media_type"], "application/pdf");
    let (st, csv) = upload(&app, "", &on_wo, "readings.csv", None, b"t,v\n1,2\n").await;
    assert_eq!(st, StatusCode::CREATED, "{csv}");
    assert_eq!(csv["media_type"], "text/csv");

    // A client's path is never used: shown as its last component, stored by a generated name.
    let (st, pw) = upload(&app, "", &on_wo, "../../etc/passwd", None, b"root:x:0:0\n").await;
    assert_eq!(st, StatusCode::CREATED, "{pw}");
    assert_eq!(pw["name"], "passwd");
    let files = stored_files(&app);
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.len() == 32 && f.bytes().all(|b| b.is_ascii_hexdigit())),
        "{files:?}"
    );
    assert!(!app.config().data_dir.join("etc").exists());
    assert!(!app.config().data_dir.join("passwd").exists());

    // Downloaded as an attachment, byte for byte, never sniffed.
    let url = pw["url"].as_str().expect("url").to_owned();
    let (st, h, body) = send_bytes(app.server(), "GET", &url, &[], Vec::new()).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body, b"root:x:0:0\n");
    assert_eq!(h["content-type"], "text/plain; charset=utf-8");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    let (_, h, body) = send_bytes(
        app.server(),
        "GET",
        pdf["url"].as_str().expect("url"),
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(body.as_slice(), PDF);
    assert_eq!(h["content-type"], "application/pdf");

    // On an alarm; not reachable through another owner's path.
    let on_alarm = format!("/api/v1/alarms/{alarm}/attachments");
    let (st, shot) = upload(
        &app,
        "",
        &on_alarm,
        "gauge.gif",
        None,
        b"GIF89a\x01\0\x01\0",
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{shot}");
    let (st, _) = app.get(&format!("{on_wo}/{}", shot["id"])).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, list) = app.get(&on_alarm).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    // Bad input by name; unknown owners 404 before the body is read.
    let (st, v) = upload(
        &app,
        "",
        "/api/v1/work-orders/999999/attachments",
        "a.txt",
        None,
        b"x",
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st, v) = app.post(&on_wo, r#"{"file": "x"}"#).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let boundary = "multipart/form-data; boundary=b";
    let (st, _, _) = send_bytes(
        app.server(),
        "POST",
        &on_wo,
        &[("content-type", boundary)],
        b"--b\r\ncontent-disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--b--\r\n".to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // Two files in one form: refused, neither kept.
    let before = stored_files(&app);
    let two =
        b"--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\r\none\r\n\
--b\r\ncontent-disposition: form-data; name=\"file\"; filename=\"b.txt\"\r\n\r\ntwo\r\n--b--\r\n";
    let (st, _, _) = send_bytes(
        app.server(),
        "POST",
        &on_wo,
        &[("content-type", boundary)],
        two.to_vec(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    // A body that never reaches its first boundary is held to the limit too (plus 64 KiB).
    let mut junk = vec![b'x'; 4096 + 70 * 1024];
    junk.extend_from_slice(b"\r\n--b--\r\n");
    let (st, _, raw) = send_bytes(
        app.server(),
        "POST",
        &on_wo,
        &[("content-type", boundary)],
        junk,
    )
    .await;
    assert_eq!(
        st,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&raw)
    );
    // A body cut off mid-file (the client gone) leaves nothing behind.
    let (ct, mut cut) = multipart("cut.txt", None, &text(3000));
    cut.truncate(1500);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(cut),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "gone",
        )),
    ];
    let req = axum::http::Request::builder()
        .method("POST")
        .uri(&on_wo)
        .header("content-type", ct)
        .header(
            "authorization",
            format!("Bearer {}", common::app_token(app.server()).await),
        )
        .body(axum::body::Body::from_stream(futures_util::stream::iter(
            chunks,
        )))
        .expect("request");
    let resp = tower::ServiceExt::oneshot(pdm_server::app(app.server().state().clone()), req)
        .await
        .expect("infallible");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        stored_files(&app),
        before,
        "nothing left of the refused and cut uploads"
    );
    // What is shown is what is checked: trailing dots go, a long name keeps its extension.
    let (st, v) = upload(&app, "", &on_wo, "evil.html.", None, b"<b>x</b>").await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let long = format!("{}.html.txt", "a".repeat(195));
    let (st, v) = upload(&app, "", &on_wo, &long, None, b"just text").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let shown = v["name"].as_str().expect("name").to_owned();
    assert!(
        shown.ends_with(".txt") && shown.chars().count() <= 200,
        "{shown}"
    );
    let (st, _) = app.delete(&format!("{on_wo}/{}", v["id"])).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // People: engineers upload and delete their own, a moderator anyone's, a viewer neither.
    let ana = signed_in(&app, "ana@test.pdm", "engineer").await;
    let bob = signed_in(&app, "bob@test.pdm", "engineer").await;
    let vic = signed_in(&app, "vic@test.pdm", "viewer").await;
    let (st, _) = upload(&app, &vic, &on_wo, "v.txt", None, b"viewer").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Uploading needs what reading the owner needs.
    let (st, _, v) = app
        .request(
            "PUT",
            "/api/v1/roles/uploader",
            Some(r#"{"description": "uploads only", "permissions": ["attachments:write"]}"#),
            &[],
        )
        .await;
    assert!(st.is_success(), "{v}");
    let up = signed_in(&app, "up@test.pdm", "uploader").await;
    let (st, v) = upload(&app, &up, &on_wo, "u.txt", None, b"blind").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("work_orders:read"),
        "{v}"
    );
    let (st, mine) = upload(&app, &ana, &on_wo, "ana.txt", None, b"ana's notes").await;
    assert_eq!(st, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["uploader"], "ana@test.pdm");
    let ana_url = format!("{on_wo}/{}", mine["id"]);
    let (st, v) = as_user(&app, &bob, "DELETE", &ana_url, None).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = as_user(&app, &vic, "GET", &ana_url, None).await;
    assert_eq!(st, StatusCode::OK, "a viewer downloads");
    let (st, _) = as_user(&app, &ana, "DELETE", &ana_url, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // A comment's attachment belongs to its work order and goes with the comment.
    let (st, c) = as_user(
        &app,
        &ana,
        "POST",
        &format!("/api/v1/work-orders/{wo}/comments"),
        Some(json!({"body": "photo of the seal"})),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    let on_comment = format!("/api/v1/comments/{}/attachments", c["id"]);
    let (st, _) = upload(&app, &bob, &on_comment, "b.txt", None, b"not bob's comment").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let seal = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01";
    let (st, att) = upload(&app, &ana, &on_comment, "seal.png", Some("image/png"), seal).await;
    assert_eq!(st, StatusCode::CREATED, "{att}");
    assert_eq!(att["work_order"], json!(wo));
    assert_eq!(att["comment"], c["id"]);
    let before = stored_files(&app).len();
    let (_, usage) = app.get("/api/v1/attachments/usage").await;
    assert_eq!(usage["files"], json!(before), "{usage}");
    assert_eq!(usage["max_bytes"], json!(4096));
    let (st, _) = as_user(
        &app,
        &ana,
        "DELETE",
        &format!("/api/v1/comments/{}", c["id"]),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(
        stored_files(&app).len(),
        before - 1,
        "the comment's file is gone"
    );
    let (_, list) = app.get(&on_wo).await;
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["notes.txt", "report.pdf", "readings.csv", "passwd"]);
    let (_, usage) = app.get("/api/v1/attachments/usage").await;
    let bytes = 4096 + PDF.len() + 8 + 11 + 10;
    assert_eq!(usage["files"], json!(5), "{usage}");
    assert_eq!(usage["bytes"], json!(bytes), "{usage}");

    // Each action is on record, the settings change with its values.
    let (_, log) = app.get("/api/v1/audit?limit=200").await;
    let entries = log["entries"].as_array().expect("entries");
    let count = |action: &str, status: u16| {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["status"] == status)
            .count()
    };
    assert_eq!(count("POST /work-orders/{id}/attachments", 201), 7, "{log}");
    assert_eq!(count("POST /work-orders/{id}/attachments", 413), 3);
    assert_eq!(count("POST /work-orders/{id}/attachments", 415), 5);
    assert_eq!(count("POST /work-orders/{id}/attachments", 403), 2);
    assert_eq!(
        count("DELETE /work-orders/{id}/attachments/{attachment}", 204),
        3
    );
    assert_eq!(
        count("DELETE /work-orders/{id}/attachments/{attachment}", 403),
        1
    );
    assert_eq!(count("POST /comments/{id}/attachments", 201), 1);
    let setting = entries
        .iter()
        .find(|e| e["action"] == "PATCH /settings")
        .expect("the settings change is audited");
    assert_eq!(
        setting["fields"],
        json!(["uploads.max_bytes: 20971520 -> 4096"]),
        "{setting}"
    );

    // Deleting the machine takes its work orders' and alarms' attachments, files included.
    assert!(!stored_files(&app).is_empty());
    let (st, _) = app.delete("/api/v1/machines/pump-1").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    let (_, usage) = app.get("/api/v1/attachments/usage").await;
    assert_eq!(usage["files"], json!(0), "{usage}");
    app.stop().await;
}
