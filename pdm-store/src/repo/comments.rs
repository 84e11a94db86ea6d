//! [`CommentStore`] on both backends.

use async_trait::async_trait;
use pdm_core::comment::{Comment, CommentEdit, CommentId, CommentTarget, NewComment};
use pdm_core::store::{AlarmId, CommentStore, UserId};
use pdm_core::workorder::WorkOrderId;
use pdm_core::{StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::{db, is_foreign_key_violation};
use crate::sql::{end_tx, Arg, Backend, Cols, On, SqlStore};

fn not_found(id: CommentId) -> StoreError {
    StoreError::NotFound(format!("comment {id}"))
}

fn target_not_found(t: CommentTarget) -> StoreError {
    match t {
        CommentTarget::WorkOrder(w) => StoreError::NotFound(format!("work order {w}")),
        CommentTarget::Alarm(a) => StoreError::NotFound(format!("alarm {a}")),
    }
}

fn columns<B: Backend>() -> String {
    format!(
        "id, work_order_id, alarm_id, author, author_user_id, body, {}, {}",
        B::millis("created_at"),
        B::millis("edited_at")
    )
}

fn comment(r: &impl Cols) -> StoreResult<Comment> {
    let target = match (r.opt_int(1)?, r.opt_int(2)?) {
        (Some(w), None) => CommentTarget::WorkOrder(WorkOrderId(w)),
        (None, Some(a)) => CommentTarget::Alarm(AlarmId(a)),
        _ => {
            return Err(StoreError::Backend(
                "a comment without exactly one target".into(),
            ))
        }
    };
    Ok(Comment {
        id: CommentId(r.int(0)?),
        target,
        author: r.text(3)?,
        author_user: r.opt_int(4)?.map(UserId),
        body: r.text(5)?,
        created_at: Timestamp::from_millis(r.int(6)?),
        edited_at: r.opt_int(7)?.map(Timestamp::from_millis),
        edits: Vec::new(),
    })
}

async fn with_edits<B: Backend>(
    on: &mut On<'_, B::Db>,
    mut comments: Vec<Comment>,
) -> StoreResult<Vec<Comment>> {
    if comments.is_empty() {
        return Ok(comments);
    }
    // Ids are integers formatted here, never caller text.
    let ids: Vec<String> = comments.iter().map(|c| c.id.0.to_string()).collect();
    let sql = format!(
        "SELECT comment_id, {}, previous FROM comment_edits WHERE comment_id IN ({}) \
         ORDER BY comment_id, id",
        B::millis("at"),
        ids.join(", ")
    );
    for r in on.fetch_all(&sql, &[]).await.map_err(db)? {
        let id = r.int(0)?;
        if let Some(c) = comments.iter_mut().find(|c| c.id.0 == id) {
            c.edits.push(CommentEdit {
                at: Timestamp::from_millis(r.int(1)?),
                previous: r.text(2)?,
            });
        }
    }
    Ok(comments)
}

async fn read_on<B: Backend>(on: &mut On<'_, B::Db>, id: CommentId) -> StoreResult<Comment> {
    let sql = format!("SELECT {} FROM comments WHERE id = $1", columns::<B>());
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id.0)])
        .await
        .map_err(db)?
        .ok_or_else(|| not_found(id))?;
    let c = comment(&row)?;
    Ok(with_edits::<B>(on, vec![c]).await?.remove(0))
}

#[async_trait]
impl<B: Backend> CommentStore for SqlStore<B> {
    async fn add_comment(&self, c: &NewComment) -> StoreResult<Comment> {
        let at = common::check_time::<B>("comment time", c.at)?;
        let (work_order, alarm) = match c.target {
            CommentTarget::WorkOrder(w) => (Some(w.0), None),
            CommentTarget::Alarm(a) => (None, Some(a.0)),
        };
        let sql = format!(
            "INSERT INTO comments (work_order_id, alarm_id, author, author_user_id, body, \
             created_at) VALUES ($1, $2, $3, $4, $5, {}) RETURNING {}",
            B::at_millis("$6"),
            columns::<B>()
        );
        let row = self
            .writer()
            .fetch_optional(
                &sql,
                &[
                    Arg::OptInt(work_order),
                    Arg::OptInt(alarm),
                    Arg::Text(&c.author),
                    Arg::OptInt(c.author_user.map(|u| u.0)),
                    Arg::Text(&c.body),
                    Arg::Int(at),
                ],
            )
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    target_not_found(c.target)
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        comment(&row)
    }

    async fn get_comment(&self, id: CommentId) -> StoreResult<Comment> {
        read_on::<B>(&mut self.reader(), id).await
    }

    async fn list_comments(&self, target: CommentTarget) -> StoreResult<Vec<Comment>> {
        let mut on = self.reader();
        let (column, exists, id) = match target {
            CommentTarget::WorkOrder(w) => (
                "work_order_id",
                "SELECT 1 FROM work_orders WHERE id = $1",
                w.0,
            ),
            CommentTarget::Alarm(a) => ("alarm_id", "SELECT 1 FROM alarms WHERE id = $1", a.0),
        };
        if on
            .fetch_optional(exists, &[Arg::Int(id)])
            .await
            .map_err(db)?
            .is_none()
        {
            return Err(target_not_found(target));
        }
        let sql = format!(
            "SELECT {} FROM comments WHERE {column} = $1 ORDER BY id",
            columns::<B>()
        );
        let rows = on.fetch_all(&sql, &[Arg::Int(id)]).await.map_err(db)?;
        let comments = rows.iter().map(comment).collect::<StoreResult<Vec<_>>>()?;
        with_edits::<B>(&mut on, comments).await
    }

    async fn edit_comment(&self, id: CommentId, body: &str, at: Timestamp) -> StoreResult<Comment> {
        let at = common::check_time::<B>("edit time", at)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = async {
            let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
            let current = read_on::<B>(&mut on, id).await?;
            let sql = format!(
                "INSERT INTO comment_edits (comment_id, at, previous) VALUES ($1, {}, $3)",
                B::at_millis("$2")
            );
            on.execute(
                &sql,
                &[Arg::Int(id.0), Arg::Int(at), Arg::Text(&current.body)],
            )
            .await
            .map_err(db)?;
            let sql = format!(
                "UPDATE comments SET body = $2, edited_at = {} WHERE id = $1",
                B::at_millis("$3")
            );
            on.execute(&sql, &[Arg::Int(id.0), Arg::Text(body), Arg::Int(at)])
                .await
                .map_err(db)?;
            read_on::<B>(&mut on, id).await
        }
        .await;
        end_tx(tx, done).await
    }

    async fn delete_comment(&self, id: CommentId) -> StoreResult<bool> {
        let n = self
            .writer()
            .execute("DELETE FROM comments WHERE id = $1", &[Arg::Int(id.0)])
            .await
            .map_err(db)?;
        Ok(n > 0)
    }
}
