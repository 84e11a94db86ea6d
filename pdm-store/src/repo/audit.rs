//! [`AuditStore`] on both backends: appends, newest-first queries, retention.

use async_trait::async_trait;
use pdm_core::store::{AuditEntry, AuditQuery, AuditStore, NewAuditEntry};
use pdm_core::{StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::db;
use crate::sql::{Arg, Backend, Cols, ListQuery, SqlStore};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid audit data in database: {what}").into())
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn record_audit(&self, e: &NewAuditEntry) -> StoreResult<i64> {
        let at = common::check_time::<B>("audit time", e.at)?;
        let fields = serde_json::to_string(&e.fields).map_err(corrupt)?;
        let sql = format!(
            "INSERT INTO audit_log (at, actor, role, action, target, fields, client_addr, status) \
             VALUES ({}, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            B::at_millis("$1")
        );
        let row = self
            .writer()
            .fetch_optional(
                &sql,
                &[
                    Arg::Int(at),
                    Arg::Text(&e.actor),
                    Arg::OptText(e.role.as_deref()),
                    Arg::Text(&e.action),
                    Arg::OptText(e.target.as_deref()),
                    Arg::Text(&fields),
                    Arg::OptText(e.client_addr.as_deref()),
                    Arg::Int(i64::from(e.status)),
                ],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        row.int(0)
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut list = ListQuery::new(format!(
            "SELECT id, {}, actor, role, action, target, fields, client_addr, CAST(status AS BIGINT) \
             FROM audit_log",
            B::millis("at")
        ))
        .filter("actor =", q.actor.as_deref().map(Arg::Text))
        .filter("action =", q.action.as_deref().map(Arg::Text))
        .filter("target =", q.target.as_deref().map(Arg::Text))
        .filter("id <", q.before.map(Arg::Int));
        match q.success {
            Some(true) => list = list.condition("status >= 200 AND status < 300"),
            Some(false) => list = list.condition("(status < 200 OR status >= 300)"),
            None => {}
        }
        let from = q.from.map(|t| B::clamp_millis(t.as_millis()));
        let to = q.to.map(|t| B::clamp_millis(t.as_millis()));
        let list = list
            .filter_time::<B>("at >=", from)
            .filter_time::<B>("at <", to);
        let (sql, args) = list.newest_first("id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.int(0)?,
                    at: Timestamp::from_millis(r.int(1)?),
                    actor: r.text(2)?,
                    role: r.opt_text(3)?,
                    action: r.text(4)?,
                    target: r.opt_text(5)?,
                    fields: serde_json::from_str(&r.text(6)?).map_err(corrupt)?,
                    client_addr: r.opt_text(7)?,
                    status: u16::try_from(r.int(8)?).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn prune_audit(&self, before: Timestamp) -> StoreResult<u64> {
        let sql = format!("DELETE FROM audit_log WHERE at < {}", B::at_millis("$1"));
        self.writer()
            .execute(&sql, &[Arg::Int(B::clamp_millis(before.as_millis()))])
            .await
            .map_err(db)
    }
}
