//! [`DeadLetterStore`] on both backends. Dead letters are written with their batch on the
//! telemetry path (per backend) and pruned there; this module reads them.

use async_trait::async_trait;
use pdm_core::{
    DeadLetter, DeadLetterQuery, DeadLetterStore, Origin, RejectKind, StoreError, StoreResult,
    StoredDeadLetter, Timestamp,
};

use crate::error::db;
use crate::sql::{Arg, Backend, Cols, ListQuery, SqlStore};

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

#[async_trait]
impl<B: Backend> DeadLetterStore for SqlStore<B> {
    async fn dead_letters(&self, q: &DeadLetterQuery) -> StoreResult<Vec<StoredDeadLetter>> {
        // A condition only for the filters that are set, so that the `(machine, id)` index
        // serves the machine filter.
        let (sql, args) = ListQuery::new(format!(
            "SELECT id, {}, origin, channel, machine, kind, reason, payload_head FROM dead_letters",
            B::millis("received_at")
        ))
        .filter(
            "machine =",
            q.machine.as_ref().map(|m| Arg::Text(m.as_str())),
        )
        .filter("kind =", q.kind.map(|k| Arg::Text(k.as_str())))
        .filter("id <", q.before.map(Arg::Int))
        .newest_first("id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter().map(dead_letter).collect()
    }
}
