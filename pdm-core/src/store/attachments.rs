//! The attachments aggregate: what is known of each file on a work order, an alarm or one of
//! their comments (the bytes themselves live in files named by `stored_as`).

use async_trait::async_trait;

use super::StoreResult;
use crate::attachment::{Attachment, AttachmentId, AttachmentOwner, NewAttachment, Usage};
use crate::MachineKey;

/// Stores attachments.
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Stores an attachment; `NotFound` when its work order, alarm or comment does not exist,
    /// `Invalid` when the comment is not on that owner.
    async fn add_attachment(&self, a: &NewAttachment) -> StoreResult<Attachment>;
    /// One attachment.
    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Attachment>;
    /// The attachments of `owner` (its comments' included), oldest first; `NotFound` for an
    /// unknown owner.
    async fn list_attachments(&self, owner: AttachmentOwner) -> StoreResult<Vec<Attachment>>;
    /// Deletes an attachment's record; false when there was none.
    async fn delete_attachment(&self, id: AttachmentId) -> StoreResult<bool>;
    /// Files and bytes held, over every owner.
    async fn attachment_usage(&self) -> StoreResult<Usage>;
    /// The generated file name of every attachment (to find files no record names).
    async fn attachment_files(&self) -> StoreResult<Vec<String>>;
    /// The generated file names of the attachments of `machine`'s work orders and alarms (their
    /// records go with the machine; the files are removed after).
    async fn machine_attachment_files(&self, machine: &MachineKey) -> StoreResult<Vec<String>>;
}
