//! Comments on work orders and alarms: list, write, edit and delete (one's own; anyone's with
//! `comments:moderate`). The text is stored and answered as written: clients render it as text
//! or sanitised Markdown, never as HTML.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use pdm_core::comment::{self, Comment, CommentId, CommentTarget, NewComment};
use pdm_core::store::Permission;
use pdm_core::workorder::WorkOrderId;
use pdm_core::{AlarmId, Store, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::auth::path_id;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::openapi::params::Id;
use crate::state::{AppState, AttachmentState};

/// This resource's part of the API description.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    work_order_comments,
    comment_on_work_order,
    alarm_comments,
    comment_on_alarm,
    edit_comment,
    delete_comment
))]
pub struct Doc;

/// Routes of this resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/work-orders/{id}/comments",
            get(work_order_comments).post(comment_on_work_order),
        )
        .route(
            "/alarms/{id}/comments",
            get(alarm_comments).post(comment_on_alarm),
        )
        .route("/comments/{id}", patch(edit_comment).delete(delete_comment))
}

/// One edit of a comment: the text it replaced.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CommentEditView {
    /// Epoch milliseconds of the edit.
    pub at: i64,
    /// The text before it.
    pub previous: String,
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CommentView {
    /// Its id.
    pub id: i64,
    /// The work order it is on.
    pub work_order: Option<i64>,
    /// The alarm it is on.
    pub alarm: Option<i64>,
    /// Who wrote it.
    pub author: String,
    /// The text as written (text or Markdown; render it as text or sanitised Markdown).
    pub body: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds of the last edit.
    pub edited_at: Option<i64>,
    /// The texts it had before each edit, oldest first.
    pub edits: Vec<CommentEditView>,
}

impl From<Comment> for CommentView {
    fn from(c: Comment) -> Self {
        let (work_order, alarm) = match c.target {
            CommentTarget::WorkOrder(w) => (Some(w.0), None),
            CommentTarget::Alarm(a) => (None, Some(a.0)),
        };
        Self {
            id: c.id.0,
            work_order,
            alarm,
            author: c.author,
            body: c.body,
            created_at: c.created_at.as_millis(),
            edited_at: c.edited_at.map(|t| t.as_millis()),
            edits: c
                .edits
                .into_iter()
                .map(|e| CommentEditView {
                    at: e.at.as_millis(),
                    previous: e.previous,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    /// The text (text or Markdown), stored as written.
    #[schema(min_length = 1, max_length = 20000)]
    body: String,
}

async fn list(store: &dyn Store, target: CommentTarget) -> ApiResult<Json<Vec<CommentView>>> {
    let comments = store.list_comments(target).await?;
    Ok(Json(comments.into_iter().map(CommentView::from).collect()))
}

async fn add(
    store: &dyn Store,
    p: &Principal,
    target: CommentTarget,
    body: String,
) -> ApiResult<(StatusCode, Json<CommentView>)> {
    let need = crate::auth::policy::read_of(target.into());
    if !p.may(need) {
        return Err(ApiError::forbidden(format!(
            "commenting here needs {need} too (your role does not grant it)"
        )));
    }
    comment::check_body(&body).map_err(ApiError::unprocessable)?;
    let c = store
        .add_comment(&NewComment {
            target,
            author: p.actor_name(),
            author_user: p.user().map(|(u, _)| u.id),
            body,
            at: Timestamp::now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// A work order's comments, oldest first, each with its edits.
#[utoipa::path(get, path = "/work-orders/{id}/comments", tag = "comments", params(Id),
    responses((status = 200, description = "The comments", body = [CommentView])))]
async fn work_order_comments(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CommentView>>> {
    let id = WorkOrderId(path_id(&id, "work order")?);
    list(&*store, CommentTarget::WorkOrder(id)).await
}

/// Comment on a work order.
#[utoipa::path(post, path = "/work-orders/{id}/comments", tag = "comments", params(Id),
    request_body = CommentBody,
    responses((status = 201, description = "Written", body = CommentView)))]
async fn comment_on_work_order(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CommentBody>,
) -> ApiResult<(StatusCode, Json<CommentView>)> {
    let id = WorkOrderId(path_id(&id, "work order")?);
    add(&*store, &p, CommentTarget::WorkOrder(id), b.body).await
}

/// An alarm's comments, oldest first, each with its edits.
#[utoipa::path(get, path = "/alarms/{id}/comments", tag = "comments", params(Id),
    responses((status = 200, description = "The comments", body = [CommentView])))]
async fn alarm_comments(
    State(store): State<Arc<dyn Store>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<CommentView>>> {
    let id = AlarmId(path_id(&id, "alarm")?);
    list(&*store, CommentTarget::Alarm(id)).await
}

/// Comment on an alarm.
#[utoipa::path(post, path = "/alarms/{id}/comments", tag = "comments", params(Id),
    request_body = CommentBody,
    responses((status = 201, description = "Written", body = CommentView)))]
async fn comment_on_alarm(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CommentBody>,
) -> ApiResult<(StatusCode, Json<CommentView>)> {
    let id = AlarmId(path_id(&id, "alarm")?);
    add(&*store, &p, CommentTarget::Alarm(id), b.body).await
}

/// The comment `id` when the caller may change it: 404 unknown, 403 someone else's.
async fn changeable(store: &dyn Store, p: &Principal, id: CommentId) -> ApiResult<Comment> {
    let c = store.get_comment(id).await?;
    let caller = p.user().map(|(u, _)| u.id);
    if !comment::may_change(&c, caller, p.may(Permission::CommentsModerate)) {
        return Err(ApiError::forbidden(format!(
            "comment {id} is {}'s: only its author, or someone with comments:moderate, may change it",
            c.author
        )));
    }
    Ok(c)
}

/// Edit a comment (one's own, or any with `comments:moderate`); the previous text is kept.
#[utoipa::path(patch, path = "/comments/{id}", tag = "comments", params(Id),
    request_body = CommentBody,
    responses((status = 200, description = "Edited, with its edits", body = CommentView)))]
async fn edit_comment(
    State(store): State<Arc<dyn Store>>,
    p: Principal,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CommentBody>,
) -> ApiResult<Json<CommentView>> {
    let id = CommentId(path_id(&id, "comment")?);
    comment::check_body(&b.body).map_err(ApiError::unprocessable)?;
    changeable(&*store, &p, id).await?;
    Ok(Json(
        store
            .edit_comment(id, &b.body, Timestamp::now())
            .await?
            .into(),
    ))
}

/// Delete a comment (one's own, or any with `comments:moderate`), with its edits and its
/// attachments' files.
#[utoipa::path(delete, path = "/comments/{id}", tag = "comments", params(Id),
    responses((status = 204, description = "Deleted, with its edits and attachments")))]
async fn delete_comment(
    State(store): State<Arc<dyn Store>>,
    State(files): State<AttachmentState>,
    p: Principal,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = CommentId(path_id(&id, "comment")?);
    let c = changeable(&*store, &p, id).await?;
    let gone: Vec<_> = store
        .list_attachments(c.target.into())
        .await?
        .into_iter()
        .filter(|a| a.comment == Some(id))
        .collect();
    // The records go with the comment (cascade); then the files.
    store.delete_comment(id).await?;
    crate::api::attachments::remove_files(&files, &gone).await;
    Ok(StatusCode::NO_CONTENT)
}
