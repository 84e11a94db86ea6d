//! Comments on work orders and alarms: text or Markdown stored as written; their authors edit
//! and delete their own, moderators any; every edit keeps the text it replaced.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;
use crate::store::{AlarmId, UserId};
use crate::workorder::WorkOrderId;

/// Longest comment, in characters.
pub const MAX_BODY: usize = 20_000;

/// A comment's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CommentId(pub i64);

impl std::fmt::Display for CommentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a comment is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommentTarget {
    /// A work order.
    WorkOrder(WorkOrderId),
    /// An alarm.
    Alarm(AlarmId),
}

/// A comment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    /// Its id.
    pub id: CommentId,
    /// What it is on.
    pub target: CommentTarget,
    /// Who wrote it (actor name).
    pub author: String,
    /// The user who wrote it (`None` for an API token).
    pub author_user: Option<UserId>,
    /// The text, as written.
    pub body: String,
    /// When written.
    pub created_at: Timestamp,
    /// When last edited (`None`: never).
    pub edited_at: Option<Timestamp>,
    /// The texts it had before each edit, oldest first.
    pub edits: Vec<CommentEdit>,
}

/// One edit of a comment: the text it replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommentEdit {
    /// When the edit was made.
    pub at: Timestamp,
    /// The text before it.
    pub previous: String,
}

/// A new comment.
#[derive(Debug, Clone, PartialEq)]
pub struct NewComment {
    /// What it is on.
    pub target: CommentTarget,
    /// Who writes it.
    pub author: String,
    /// Their user id.
    pub author_user: Option<UserId>,
    /// The text.
    pub body: String,
    /// When.
    pub at: Timestamp,
}

/// A comment's text: 1 to [`MAX_BODY`] characters, not only whitespace; kept as written.
pub fn check_body(body: &str) -> Result<(), String> {
    let n = body.chars().count();
    if body.trim().is_empty() || n > MAX_BODY {
        return Err(format!(
            "body: 1 to {MAX_BODY} characters, not only spaces (got {n})"
        ));
    }
    Ok(())
}

/// Whether `caller` (a user, or `None` for a token) may edit or delete `comment`: its author
/// may, and a moderator may any.
pub fn may_change(comment: &Comment, caller: Option<UserId>, moderator: bool) -> bool {
    moderator || (caller.is_some() && caller == comment.author_user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authors_change_their_own_and_moderators_any() {
        let c = Comment {
            id: CommentId(1),
            target: CommentTarget::Alarm(AlarmId(3)),
            author: "ana@x".into(),
            author_user: Some(UserId(7)),
            body: "<img src=x onerror=alert(1)>".into(),
            created_at: Timestamp::from_millis(0),
            edited_at: None,
            edits: vec![],
        };
        assert!(may_change(&c, Some(UserId(7)), false));
        assert!(!may_change(&c, Some(UserId(8)), false));
        assert!(!may_change(&c, None, false), "a token is no author");
        assert!(may_change(&c, None, true));
        assert!(check_body(&c.body).is_ok(), "stored as written");
        assert!(check_body("  \n").is_err());
        assert!(check_body(&"x".repeat(MAX_BODY + 1)).is_err());
    }
}
