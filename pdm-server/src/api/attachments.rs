//! Attachments on work orders, alarms and comments: streaming multipart upload under the
//! `uploads.max_bytes` setting (413 over it), the type told by the bytes against an allowlist
//! (415 otherwise, and when the name or declared type claims another), stored under a generated
//! name, downloaded as `Content-Disposition: attachment` with `nosniff`.
//!
//! A comment's attachment belongs to what the comment is on (and names the comment): it is
//! listed, downloaded and deleted there, and deleting the comment deletes it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pdm_core::attachment::{
    self, Attachment, AttachmentId, AttachmentOwner, NewAttachment, Refusal,
};
use pdm_core::comment::{self, CommentId};
use pdm_core::store::Permission;
use pdm_core::workorder::WorkOrderId;
use pdm_core::{AlarmId, Store, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::ToSchema;

use crate::api::auth::path_id;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::files::FileDir;
use crate::openapi::params::Id;
use crate::state::{AppState, AttachmentState};

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    work_order_attachments,
    attach_to_work_order,
    work_order_attachment,
    delete_work_order_attachment,
    alarm_attachments,
    attach_to_alarm,
    alarm_attachment,
    delete_alarm_attachment,
    attach_to_comment,
    usage
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    // Uploads: the limit is the `uploads.max_bytes` setting, counted as the file streams in,
    // not the default body limit.
    Router::new()
        .route(
            "/work-orders/{id}/attachments",
            get(work_order_attachments)
                .merge(post(attach_to_work_order).layer(DefaultBodyLimit::disable())),
        )
        .route(
            "/work-orders/{id}/attachments/{attachment}",
            get(work_order_attachment).delete(delete_work_order_attachment),
        )
        .route(
            "/alarms/{id}/attachments",
            get(alarm_attachments).merge(post(attach_to_alarm).layer(DefaultBodyLimit::disable())),
        )
        .route(
            "/alarms/{id}/attachments/{attachment}",
            get(alarm_attachment).delete(delete_alarm_attachment),
        )
        .route(
            "/comments/{id}/attachments",
            post(attach_to_comment).layer(DefaultBodyLimit::disable()),
        )
        .route("/attachments/usage", get(usage))
}

/// An attachment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttachmentView {
    /// Its id.
    pub id: i64,
    /// The work order it belongs to.
    pub work_order: Option<i64>,
    /// The alarm it belongs to.
    pub alarm: Option<i64>,
    /// The comment (on that work order or alarm) it was attached to.
    pub comment: Option<i64>,
    /// The name it is shown and downloaded under (the client's, without any path).
    pub name: String,
    /// Its type, from its bytes.
    pub media_type: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Who uploaded it.
    pub uploader: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Where to download it.
    pub url: String,
}

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        let (work_order, alarm, url) = match a.owner {
            AttachmentOwner::WorkOrder(w) => (
                Some(w.0),
                None,
                format!("/api/v1/work-orders/{w}/attachments/{}", a.id),
            ),
            AttachmentOwner::Alarm(al) => (
                None,
                Some(al.0),
                format!("/api/v1/alarms/{al}/attachments/{}", a.id),
            ),
        };
        Self {
            id: a.id.0,
            work_order,
            alarm,
            comment: a.comment.map(|c| c.0),
            name: a.name,
            media_type: a.kind.media_type().to_owned(),
            size: a.size,
            sha256: a.sha256,
            uploader: a.uploader,
            created_at: a.created_at.as_millis(),
            url,
        }
    }
}

/// The upload form: one part named `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file (PNG, JPEG, GIF, WebP or TIFF image, PDF, UTF-8 text or CSV), at most
    /// `uploads.max_bytes`; its file name is shown, never used as a path.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// How much the attachments hold.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsageView {
    /// Files.
    pub files: u64,
    /// Bytes, summed.
    pub bytes: u64,
    /// The upload limit in force (`uploads.max_bytes`).
    pub max_bytes: u64,
}

fn dir(state: &AttachmentState) -> ApiResult<&FileDir> {
    state.dir.as_ref().ok_or_else(|| {
        ApiError::unavailable(
            "attachments need a data directory: this server was built without one",
        )
    })
}

fn form_error(e: MultipartError) -> ApiError {
    let (status, code) = match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
        // A body that stops short or cannot be read: the client's.
        _ => (StatusCode::BAD_REQUEST, ErrorCode::BadRequest),
    };
    ApiError::new(
        status,
        code,
        format!("file: the form cannot be read: {}", e.body_text()),
    )
}

/// A form that cannot be opened: 415 when the body is not declared multipart/form-data, 400
/// when it is but its boundary is missing or unusable.
fn not_multipart(multipart: bool, e: MultipartRejection) -> ApiError {
    if multipart {
        return ApiError::bad_request(format!(
            "the multipart/form-data body has no usable boundary ({})",
            e.body_text()
        ));
    }
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedType,
        format!(
            "send the file as multipart/form-data with one part named file ({})",
            e.body_text()
        ),
    )
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::TooLarge,
        format!("file: over the upload limit of {limit} bytes (setting uploads.max_bytes)"),
    )
}

/// What streamed in: its length, hash and sniffed type.
struct Received {
    sniffer: attachment::Sniffer,
    sha256: String,
}

/// Streams the part into `<name>.part`, counting against `limit`.
async fn receive(
    field: &mut axum::extract::multipart::Field<'_>,
    out: &mut tokio::fs::File,
    limit: u64,
) -> ApiResult<Received> {
    let mut sniffer = attachment::Sniffer::new();
    let mut hash = Sha256::new();
    while let Some(chunk) = field.chunk().await.map_err(form_error)? {
        if sniffer.len() + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        sniffer.feed(&chunk);
        hash.update(&chunk);
        out.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    out.flush().await.map_err(ApiError::internal)?;
    out.sync_all().await.map_err(ApiError::internal)?;
    let sha256 = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(Received { sniffer, sha256 })
}

/// What a form may hold beyond its file (boundaries, part headers), in bytes.
const FORM_OVERHEAD: u64 = 64 * 1024;

/// Removes an upload's file (`.part` or committed) unless disarmed once it has its record:
/// a request cut short (the client gone, the time limit) leaves nothing behind.
struct Upload {
    dir: std::path::PathBuf,
    name: String,
    keep: bool,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.keep {
            let file = self.dir.join(&self.name);
            let _ = std::fs::remove_file(file.with_extension("part"));
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Receives the upload in `req` for `owner` (and `comment`, checked by the caller). An unknown
/// owner is a 404 before the body is read; the whole body is held to `uploads.max_bytes` plus
/// [`FORM_OVERHEAD`], the file to `uploads.max_bytes` exactly.
async fn receive_upload(
    store: &dyn Store,
    state: &AttachmentState,
    p: &Principal,
    owner: AttachmentOwner,
    comment: Option<CommentId>,
    req: Request,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let files = dir(state)?;
    let need = crate::auth::policy::read_of(owner);
    if !p.may(need) {
        return Err(ApiError::forbidden(format!(
            "attaching a file here needs {need} too (your role does not grant it)"
        )));
    }
    if comment.is_none() {
        // 404 for an unknown owner, with one row read (not its attachments).
        match owner {
            AttachmentOwner::WorkOrder(w) => drop(store.get_work_order(w).await?),
            AttachmentOwner::Alarm(a) => drop(store.get_alarm(a).await?),
        }
    }
    let limit = state.settings.current().uploads.max_bytes;
    let whole = usize::try_from(limit.saturating_add(FORM_OVERHEAD)).unwrap_or(usize::MAX);
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        });
    let req = req.map(|b| Body::new(http_body_util::Limited::new(b, whole)));
    let mut form = Multipart::from_request(req, &())
        .await
        .map_err(|e| not_multipart(multipart, e))?;
    let mut field = match form.next_field().await.map_err(form_error)? {
        None => {
            return Err(ApiError::bad_request(
                "file: the form has no part named file",
            ))
        }
        Some(f) if f.name() == Some("file") => f,
        Some(f) => {
            return Err(ApiError::bad_request(format!(
                "the form has a part named '{}': send one part named file",
                f.name().unwrap_or("")
            )))
        }
    };
    // What is shown is what is checked: the extension is read from the shown name.
    let shown = attachment::display_name(field.file_name().unwrap_or(""));
    let declared = field.content_type().map(str::to_owned);
    let mut upload = Upload {
        dir: files.path().to_path_buf(),
        name: FileDir::new_name(),
        keep: false,
    };
    let mut out = files
        .create_part(&upload.name)
        .await
        .map_err(ApiError::internal)?;
    let received = receive(&mut field, &mut out, limit).await?;
    drop(out);
    drop(field);
    let kind = attachment::check_claim(
        received.sniffer.kind(),
        received.sniffer.len(),
        &shown,
        declared.as_deref(),
    )
    .map_err(|e| match e {
        Refusal::Empty => ApiError::unprocessable("file: the file is empty"),
        Refusal::Type(m) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::UnsupportedType,
            format!("file: {m}"),
        ),
    })?;
    // One file per request: a second part is refused, the first not kept.
    if form.next_field().await.map_err(form_error)?.is_some() {
        return Err(ApiError::bad_request(
            "the form has more than one part: send one part named file per request",
        ));
    }
    files
        .commit(&upload.name)
        .await
        .map_err(ApiError::internal)?;
    let a = store
        .add_attachment(&NewAttachment {
            owner,
            comment,
            name: shown,
            kind,
            size: received.sniffer.len(),
            sha256: received.sha256,
            stored_as: upload.name.clone(),
            uploader: p.actor_name(),
            uploader_user: p.user().map(|(u, _)| u.id),
            at: Timestamp::now(),
        })
        .await?;
    upload.keep = true;
    Ok((StatusCode::CREATED, Json(a.into())))
}

/// The attachment `id` when it belongs to `owner` (404 otherwise).
async fn of_owner(store: &dyn Store, owner: AttachmentOwner, id: &str) -> ApiResult<Attachment> {
    let id = AttachmentId(path_id(id, "attachment")?);
    let a = store.get_attachment(id).await?;
    if a.owner != owner {
        return Err(ApiError::not_found(format!(
            "attachment {id} not found here"
        )));
    }
    Ok(a)
}

/// `filename="..."` in ASCII (anything else `_`) and `filename*=UTF-8''...` percent-encoded.
fn disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() || c == ' ') && !matches!(c, '"' | '\\' | '%' | ';') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

async fn download(files: &FileDir, a: Attachment) -> ApiResult<Response> {
    let file = files.open_file(&a.stored_as).await.map_err(|e| {
        ApiError::internal(format!(
            "attachment {}: its file {} cannot be read: {e}",
            a.id, a.stored_as
        ))
    })?;
    let stream = futures_util::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    let media = if matches!(a.kind, attachment::Kind::Text | attachment::Kind::Csv) {
        format!("{}; charset=utf-8", a.kind.media_type())
    } else {
        a.kind.media_type().to_owned()
    };
    let value = |s: String| HeaderValue::from_str(&s).map_err(ApiError::internal);
    let mut resp = Body::from_stream(stream).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, value(media)?);
    h.insert(header::CONTENT_LENGTH, value(a.size.to_string())?);
    h.insert(header::CONTENT_DISPOSITION, value(disposition(&a.name))?);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(resp)
}

async fn remove(
    store: &dyn Store,
    files: &FileDir,
    p: &Principal,
    a: Attachment,
) -> ApiResult<StatusCode> {
    let caller = p.user().map(|(u, _)| u.id);
    if !attachment::may_delete(&a, caller, p.may(Permission::AttachmentsModerate)) {
        return Err(ApiError::forbidden(format!(
            "attachment {} was uploaded by someone else: only its uploader, or someone with \
             attachments:moderate, may delete it",
            a.id
        )));
    }
    store.delete_attachment(a.id).await?;
    if let Err(e) = files.remove(&a.stored_as).await {
        tracing::warn!(attachment = %a.id, error = %e, "cannot remove an attachment's file: the next sweep will");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the files of `gone` (attachments whose records went with their owner).
pub(crate) async fn remove_files(files: &AttachmentState, gone: &[Attachment]) {
    let names: Vec<String> = gone.iter().map(|a| a.stored_as.clone()).collect();
    remove_stored(files, &names).await;
}

/// Removes the files named `stored` (generated names whose records are gone).
pub(crate) async fn remove_stored(files: &AttachmentState, stored: &[String]) {
    let Some(dir) = &files.dir else { return };
    for name in stored {
        if let Err(e) = dir.remove(name).await {
            tracing::warn!(file = %name, error = %e, "cannot remove an attachment's file: the next sweep will");
        }
    }
}

async fn list(store: &dyn Store, owner: AttachmentOwner) -> ApiResult<Json<Vec<AttachmentView>>> {
    let all = store.list_attachments(owner).await?;
    Ok(Json(all.into_iter().map(AttachmentView::from).collect()))
}

fn work_order(id: &str) -> ApiResult<AttachmentOwner> {
    Ok(AttachmentOwner::WorkOrder(WorkOrderId(path_id(
        id,
        "work order",
    )?)))
}

fn alarm(id: &str) -> ApiResult<AttachmentOwner> {
    Ok(AttachmentOwner::Alarm(AlarmId(path_id(id, "alarm")?)))
}

/// A work order's attachments (its comments' included), oldest first.
#[utoipa::path(get, path = "/work-orders/{id}/attachments", tag = "attachments", params(Id),
    responses((status = 200, description = "The attachments", body = [AttachmentView])))]
async fn work_order_attachments(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AttachmentView>>> {
    list(&*store, work_order(&id)?).await
}

/// Attach a file to a work order (multipart/form-data, one part named `file`).
#[utoipa::path(post, path = "/work-orders/{id}/attachments", tag = "attachments", params(Id),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored (413 over `uploads.max_bytes`; 415 when \
        not of an accepted type, or not what its name or declared type claims)", body = AttachmentView)))]
async fn attach_to_work_order(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let owner = work_order(&id)?;
    receive_upload(&*store, &files, &p, owner, None, req).await
}

/// Download a work order's attachment (`Content-Disposition: attachment`).
#[utoipa::path(get, path = "/work-orders/{id}/attachments/{attachment}", tag = "attachments",
    params(Id, ("attachment" = i64, Path, description = "The attachment's id")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>)))]
async fn work_order_attachment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    Path((id, attachment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let a = of_owner(&*store, work_order(&id)?, &attachment).await?;
    download(dir(&files)?, a).await
}

/// Delete a work order's attachment (one's own, or any with `attachments:moderate`).
#[utoipa::path(delete, path = "/work-orders/{id}/attachments/{attachment}", tag = "attachments",
    params(Id, ("attachment" = i64, Path, description = "The attachment's id")),
    responses((status = 204, description = "Deleted, with its file")))]
async fn delete_work_order_attachment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path((id, attachment)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let a = of_owner(&*store, work_order(&id)?, &attachment).await?;
    remove(&*store, dir(&files)?, &p, a).await
}

/// An alarm's attachments (its comments' included), oldest first.
#[utoipa::path(get, path = "/alarms/{id}/attachments", tag = "attachments", params(Id),
    responses((status = 200, description = "The attachments", body = [AttachmentView])))]
async fn alarm_attachments(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<AttachmentView>>> {
    list(&*store, alarm(&id)?).await
}

/// Attach a file to an alarm (multipart/form-data, one part named `file`).
#[utoipa::path(post, path = "/alarms/{id}/attachments", tag = "attachments", params(Id),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored (413 over `uploads.max_bytes`; 415 when \
        not of an accepted type, or not what its name or declared type claims)", body = AttachmentView)))]
async fn attach_to_alarm(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let owner = alarm(&id)?;
    receive_upload(&*store, &files, &p, owner, None, req).await
}

/// Download an alarm's attachment (`Content-Disposition: attachment`).
#[utoipa::path(get, path = "/alarms/{id}/attachments/{attachment}", tag = "attachments",
    params(Id, ("attachment" = i64, Path, description = "The attachment's id")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream", body = Vec<u8>)))]
async fn alarm_attachment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    Path((id, attachment)): Path<(String, String)>,
) -> ApiResult<Response> {
    let a = of_owner(&*store, alarm(&id)?, &attachment).await?;
    download(dir(&files)?, a).await
}

/// Delete an alarm's attachment (one's own, or any with `attachments:moderate`).
#[utoipa::path(delete, path = "/alarms/{id}/attachments/{attachment}", tag = "attachments",
    params(Id, ("attachment" = i64, Path, description = "The attachment's id")),
    responses((status = 204, description = "Deleted, with its file")))]
async fn delete_alarm_attachment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path((id, attachment)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let a = of_owner(&*store, alarm(&id)?, &attachment).await?;
    remove(&*store, dir(&files)?, &p, a).await
}

/// Attach a file to one's own comment (or any, with `comments:moderate`); it belongs to what
/// the comment is on, and goes with the comment.
#[utoipa::path(post, path = "/comments/{id}/attachments", tag = "attachments", params(Id),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Stored (413 over `uploads.max_bytes`; 415 when \
        not of an accepted type, or not what its name or declared type claims)", body = AttachmentView)))]
async fn attach_to_comment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<(StatusCode, Json<AttachmentView>)> {
    let id = CommentId(path_id(&id, "comment")?);
    let c = store.get_comment(id).await?;
    let caller = p.user().map(|(u, _)| u.id);
    if !comment::may_change(&c, caller, p.may(Permission::CommentsModerate)) {
        return Err(ApiError::forbidden(format!(
            "comment {id} is someone else's: only its author, or someone with comments:moderate, \
             may attach files to it"
        )));
    }
    receive_upload(&*store, &files, &p, c.target.into(), Some(id), req).await
}

/// Files and bytes the attachments hold, and the upload limit in force.
#[utoipa::path(get, path = "/attachments/usage", tag = "attachments",
    responses((status = 200, description = "The usage", body = UsageView)))]
async fn usage(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
) -> ApiResult<Json<UsageView>> {
    let u = store.attachment_usage().await?;
    Ok(Json(UsageView {
        files: u.files,
        bytes: u.bytes,
        max_bytes: files.settings.current().uploads.max_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_download_name_is_quoted_safely() {
        assert_eq!(
            disposition("report \"v2\".pdf"),
            "attachment; filename=\"report _v2_.pdf\"; filename*=UTF-8''report%20%22v2%22.pdf"
        );
        assert_eq!(
            disposition("naïve.txt"),
            "attachment; filename=\"na_ve.txt\"; filename*=UTF-8''na%C3%AFve.txt"
        );
    }
}
