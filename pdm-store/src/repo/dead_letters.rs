//! [`DeadLetterStore`] on both backends. Dead letters are written with their batch on the
//! telemetry path (per backend) and pruned there; this module reads them.

use async_trait::async_trait;
use pdm_core::{
    DeadLetter, DeadLetterQuery, DeadLetterStore, Origin, RejectKind, StoreError, StoreResult,
    StoredDeadLetter, Timestamp,
};

use crate::common;
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, SqlStore};

/// A dead letter from
/// `id, received_at, origin, channel, machine, kind, reason, payload_head`.
fn dead_letter(row: &impl Cols) -> StoreResult<StoredDeadLetter> {
    let id = row.int(0)?;
    let origin = row.text(2)?;
    let kind = row.text(5)?;
    let unknown = |what: &str, v: &str| {
        StoreError::Backend(format!("dead letter {id} has unknown {what} '{v}'").into())
    };
    Ok(StoredDeadLetter {
        id,
        letter: DeadLetter {
            received_at: Timestamp::from_millis(row.int(1)?),
            origin: Origin::parse(&origin).ok_or_else(|| unknown("origin", &origin))?,
            channel: row.text(3)?,
            machine: row.opt_text(4)?,
            kind: RejectKind::parse(&kind).ok_or_else(|| unknown("kind", &kind))?,
            reason: row.text(6)?,
            payload_head: row.bytes(7)?,
        },
    })
}

/// The query listing dead letters, newest first, with a condition only for the filters that
/// are set (so that the `(machine, id)` index serves the machine filter), parameters in the
/// order machine, kind, limit.
fn list_sql<B: Backend>(q: &DeadLetterQuery) -> String {
    let mut sql = format!(
        "SELECT id, {}, origin, channel, machine, kind, reason, payload_head FROM dead_letters",
        B::millis("received_at")
    );
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    if q.machine.is_some() {
        sql.push_str(&format!(" WHERE machine = ${}", next()));
    }
    if q.kind.is_some() {
        let glue = if q.machine.is_some() { "AND" } else { "WHERE" };
        sql.push_str(&format!(" {glue} kind = ${}", next()));
    }
    sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", next()));
    sql
}

#[async_trait]
impl<B: Backend> DeadLetterStore for SqlStore<B> {
    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>> {
        let sql = list_sql::<B>(q);
        let mut args = Vec::with_capacity(3);
        if let Some(machine) = &q.machine {
            args.push(Arg::Text(machine.as_str()));
        }
        if let Some(kind) = q.kind {
            args.push(Arg::Text(kind.as_str()));
        }
        args.push(Arg::Int(common::limit(q.limit)));
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter().map(dead_letter).collect()
    }
}
