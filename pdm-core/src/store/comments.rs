//! The comments aggregate: comments on work orders and alarms with their edits.

use async_trait::async_trait;

use super::StoreResult;
use crate::comment::{Comment, CommentId, CommentTarget, NewComment};
use crate::model::Timestamp;

/// Stores comments.
#[async_trait]
pub trait CommentStore: Send + Sync + 'static {
    /// Stores a comment; `NotFound` when its work order or alarm does not exist.
    async fn add_comment(&self, c: &NewComment) -> StoreResult<Comment>;
    /// One comment with its edits.
    async fn get_comment(&self, id: CommentId) -> StoreResult<Comment>;
    /// The comments on `target`, oldest first, with their edits; `NotFound` for an unknown
    /// target.
    async fn list_comments(&self, target: CommentTarget) -> StoreResult<Vec<Comment>>;
    /// Replaces the text, keeping the previous one as an edit.
    async fn edit_comment(&self, id: CommentId, body: &str, at: Timestamp) -> StoreResult<Comment>;
    /// Deletes a comment with its edits; false when there was none.
    async fn delete_comment(&self, id: CommentId) -> StoreResult<bool>;
}
