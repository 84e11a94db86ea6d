//! [`AttachmentStore`] on both backends.

use async_trait::async_trait;
use pdm_core::attachment::{Attachment, AttachmentId, AttachmentOwner, Kind, NewAttachment, Usage};
use pdm_core::comment::CommentId;
use pdm_core::store::{AlarmId, AttachmentStore, UserId};
use pdm_core::workorder::WorkOrderId;
use pdm_core::{MachineKey, StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::{db, is_foreign_key_violation};
use crate::sql::{Arg, Backend, Cols, On, SqlStore};

fn not_found(id: AttachmentId) -> StoreError {
    StoreError::NotFound(format!("attachment {id}"))
}

fn owner_not_found(o: AttachmentOwner) -> StoreError {
    match o {
        AttachmentOwner::WorkOrder(w) => StoreError::NotFound(format!("work order {w}")),
        AttachmentOwner::Alarm(a) => StoreError::NotFound(format!("alarm {a}")),
    }
}

fn columns<B: Backend>() -> String {
    format!(
        "id, work_order_id, alarm_id, comment_id, name, media_type, size, sha256, stored_as, \
         uploader, uploader_user_id, {}",
        B::millis("created_at")
    )
}

fn attachment(r: &impl Cols) -> StoreResult<Attachment> {
    let owner = match (r.opt_int(1)?, r.opt_int(2)?) {
        (Some(w), None) => AttachmentOwner::WorkOrder(WorkOrderId(w)),
        (None, Some(a)) => AttachmentOwner::Alarm(AlarmId(a)),
        _ => {
            return Err(StoreError::Backend(
                "an attachment without exactly one owner".into(),
            ))
        }
    };
    let media = r.text(5)?;
    let kind = Kind::from_media_type(&media).ok_or_else(|| {
        StoreError::Backend(format!("an attachment of unknown type {media}").into())
    })?;
    Ok(Attachment {
        id: AttachmentId(r.int(0)?),
        owner,
        comment: r.opt_int(3)?.map(CommentId),
        name: r.text(4)?,
        kind,
        size: u64::try_from(r.int(6)?)
            .map_err(|_| StoreError::Backend("an attachment of negative size".into()))?,
        sha256: r.text(7)?,
        stored_as: r.text(8)?,
        uploader: r.text(9)?,
        uploader_user: r.opt_int(10)?.map(UserId),
        created_at: Timestamp::from_millis(r.int(11)?),
    })
}

fn owner_columns(o: AttachmentOwner) -> (Option<i64>, Option<i64>) {
    match o {
        AttachmentOwner::WorkOrder(w) => (Some(w.0), None),
        AttachmentOwner::Alarm(a) => (None, Some(a.0)),
    }
}

/// Whether the comment `id` is on `owner`: `NotFound` for no such comment.
async fn comment_is_on<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: CommentId,
    owner: AttachmentOwner,
) -> StoreResult<bool> {
    let row = on
        .fetch_optional(
            "SELECT work_order_id, alarm_id FROM comments WHERE id = $1",
            &[Arg::Int(id.0)],
        )
        .await
        .map_err(db)?
        .ok_or_else(|| StoreError::NotFound(format!("comment {id}")))?;
    Ok((row.opt_int(0)?, row.opt_int(1)?) == owner_columns(owner))
}

#[async_trait]
impl<B: Backend> AttachmentStore for SqlStore<B> {
    async fn add_attachment(&self, a: &NewAttachment) -> StoreResult<Attachment> {
        let at = common::check_time::<B>("upload time", a.at)?;
        let size = i64::try_from(a.size)
            .map_err(|_| StoreError::Invalid(format!("size: {} bytes is too large", a.size)))?;
        if let Some(c) = a.comment {
            if !comment_is_on::<B>(&mut self.reader(), c, a.owner).await? {
                return Err(StoreError::Invalid(format!(
                    "comment {c} is not on this {}",
                    match a.owner {
                        AttachmentOwner::WorkOrder(_) => "work order",
                        AttachmentOwner::Alarm(_) => "alarm",
                    }
                )));
            }
        }
        let (work_order, alarm) = owner_columns(a.owner);
        let sql = format!(
            "INSERT INTO attachments (work_order_id, alarm_id, comment_id, name, media_type, \
             size, sha256, stored_as, uploader, uploader_user_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {}) RETURNING {}",
            B::at_millis("$11"),
            columns::<B>()
        );
        let row = self
            .writer()
            .fetch_optional(
                &sql,
                &[
                    Arg::OptInt(work_order),
                    Arg::OptInt(alarm),
                    Arg::OptInt(a.comment.map(|c| c.0)),
                    Arg::Text(&a.name),
                    Arg::Text(a.kind.media_type()),
                    Arg::Int(size),
                    Arg::Text(&a.sha256),
                    Arg::Text(&a.stored_as),
                    Arg::Text(&a.uploader),
                    Arg::OptInt(a.uploader_user.map(|u| u.0)),
                    Arg::Int(at),
                ],
            )
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    owner_not_found(a.owner)
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        attachment(&row)
    }

    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Attachment> {
        let sql = format!("SELECT {} FROM attachments WHERE id = $1", columns::<B>());
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Int(id.0)])
            .await
            .map_err(db)?
            .ok_or_else(|| not_found(id))?;
        attachment(&row)
    }

    async fn list_attachments(&self, owner: AttachmentOwner) -> StoreResult<Vec<Attachment>> {
        let mut on = self.reader();
        let (column, exists, id) = match owner {
            AttachmentOwner::WorkOrder(w) => (
                "work_order_id",
                "SELECT 1 FROM work_orders WHERE id = $1",
                w.0,
            ),
            AttachmentOwner::Alarm(a) => ("alarm_id", "SELECT 1 FROM alarms WHERE id = $1", a.0),
        };
        if on
            .fetch_optional(exists, &[Arg::Int(id)])
            .await
            .map_err(db)?
            .is_none()
        {
            return Err(owner_not_found(owner));
        }
        let sql = format!(
            "SELECT {} FROM attachments WHERE {column} = $1 ORDER BY id",
            columns::<B>()
        );
        let rows = on.fetch_all(&sql, &[Arg::Int(id)]).await.map_err(db)?;
        rows.iter().map(attachment).collect()
    }

    async fn delete_attachment(&self, id: AttachmentId) -> StoreResult<bool> {
        let n = self
            .writer()
            .execute("DELETE FROM attachments WHERE id = $1", &[Arg::Int(id.0)])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn attachment_usage(&self) -> StoreResult<Usage> {
        let row = self
            .reader()
            .fetch_optional(
                "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM attachments",
                &[],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Backend("COUNT returned no row".into()))?;
        let n = |i| {
            row.int(i).and_then(|v| {
                u64::try_from(v).map_err(|e| StoreError::Backend(e.to_string().into()))
            })
        };
        Ok(Usage {
            files: n(0)?,
            bytes: n(1)?,
        })
    }

    async fn attachment_files(&self) -> StoreResult<Vec<String>> {
        let rows = self
            .reader()
            .fetch_all("SELECT stored_as FROM attachments", &[])
            .await
            .map_err(db)?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    async fn machine_attachment_files(&self, machine: &MachineKey) -> StoreResult<Vec<String>> {
        let rows = self
            .reader()
            .fetch_all(
                "SELECT a.stored_as FROM attachments a \
                 LEFT JOIN work_orders w ON w.id = a.work_order_id \
                 LEFT JOIN alarms al ON al.id = a.alarm_id \
                 JOIN machines m ON m.id = COALESCE(w.machine_id, al.machine_id) \
                 WHERE m.key = $1",
                &[Arg::Text(machine.as_str())],
            )
            .await
            .map_err(db)?;
        rows.iter().map(|r| r.text(0)).collect()
    }
}
