//! [`WorkOrderStore`] on both backends.
//!
//! An update is one transaction: the row is replaced only `WHERE version = <read version>`, so
//! of two writers that read the same version the second changes no row and gets `Stale`
//! (on PostgreSQL it waits for the first's commit, then finds the version moved; on SQLite
//! writers take turns). Its event and its new alarm links are written in the same transaction.

use async_trait::async_trait;
use pdm_core::store::{
    AlarmId, LabelledAlarm, UserId, WorkOrderEvent, WorkOrderQuery, WorkOrderSort, WorkOrderStore,
};
use pdm_core::workorder::{
    Code, CodeKind, Label, NewWorkOrder, Priority, Status, WorkOrder, WorkOrderId,
};
use pdm_core::{MachineKey, StoreError, StoreResult, Timestamp};

use crate::common;
use crate::error::{db, is_foreign_key_violation};
use crate::sql::{end_tx, Arg, Backend, Cols, On, SqlStore};

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid work order data in database: {what}").into())
}

fn not_found(id: WorkOrderId) -> StoreError {
    StoreError::NotFound(format!("work order {id}"))
}

fn opt_time<B: Backend>(name: &str, t: Option<Timestamp>) -> StoreResult<Option<i64>> {
    t.map(|t| common::check_time::<B>(name, t)).transpose()
}

fn rank(p: Priority) -> i64 {
    match p {
        Priority::Low => 0,
        Priority::Medium => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

/// The columns [`work_order`] decodes (without the alarms), of `work_orders w JOIN machines m`.
fn columns<B: Backend>() -> String {
    format!(
        "w.id, m.key, w.title, w.description, w.priority, w.status, w.assignee_id, {}, \
         w.created_by, w.failure_mode, w.cause, w.remedy, w.label, w.time_spent_min, {}, {}, \
         {}, {}, w.version",
        B::millis("w.due_at"),
        B::millis("w.created_at"),
        B::millis("w.updated_at"),
        B::millis("w.resolved_at"),
        B::millis("w.closed_at"),
    )
}

const FROM: &str = "work_orders w JOIN machines m ON m.id = w.machine_id";

fn work_order(row: &impl Cols) -> StoreResult<WorkOrder> {
    let time = |i: usize| -> StoreResult<Option<Timestamp>> {
        Ok(row.opt_int(i)?.map(Timestamp::from_millis))
    };
    Ok(WorkOrder {
        id: WorkOrderId(row.int(0)?),
        machine: MachineKey::new(&row.text(1)?).map_err(corrupt)?,
        title: row.text(2)?,
        description: row.text(3)?,
        priority: Priority::parse(&row.text(4)?).map_err(corrupt)?,
        status: Status::parse(&row.text(5)?).map_err(corrupt)?,
        assignee: row.opt_int(6)?.map(UserId),
        due_at: time(7)?,
        created_by: row.text(8)?,
        failure_mode: row.opt_text(9)?,
        cause: row.opt_text(10)?,
        remedy: row.opt_text(11)?,
        label: row
            .opt_text(12)?
            .map(|l| Label::parse(&l).map_err(corrupt))
            .transpose()?,
        time_spent_min: u32::try_from(row.int(13)?).map_err(corrupt)?,
        created_at: Timestamp::from_millis(row.int(14)?),
        updated_at: Timestamp::from_millis(row.int(15)?),
        resolved_at: time(16)?,
        closed_at: time(17)?,
        version: row.int(18)?,
        alarms: Vec::new(),
    })
}

/// The alarms linked to each of `orders`, filled in.
async fn with_alarms<B: Backend>(
    on: &mut On<'_, B::Db>,
    mut orders: Vec<WorkOrder>,
) -> StoreResult<Vec<WorkOrder>> {
    if orders.is_empty() {
        return Ok(orders);
    }
    let ids: Vec<String> = orders.iter().map(|w| w.id.0.to_string()).collect();
    // Ids are integers formatted here, never caller text.
    let sql = format!(
        "SELECT work_order_id, alarm_id FROM work_order_alarms WHERE work_order_id IN ({}) \
         ORDER BY work_order_id, alarm_id",
        ids.join(", ")
    );
    let rows = on.fetch_all(&sql, &[]).await.map_err(db)?;
    for row in &rows {
        let (w, a) = (row.int(0)?, row.int(1)?);
        if let Some(order) = orders.iter_mut().find(|o| o.id.0 == w) {
            order.alarms.push(AlarmId(a));
        }
    }
    Ok(orders)
}

async fn read_on<B: Backend>(on: &mut On<'_, B::Db>, id: WorkOrderId) -> StoreResult<WorkOrder> {
    let sql = format!("SELECT {} FROM {FROM} WHERE w.id = $1", columns::<B>());
    let row = on
        .fetch_optional(&sql, &[Arg::Int(id.0)])
        .await
        .map_err(db)?
        .ok_or_else(|| not_found(id))?;
    let one = work_order(&row)?;
    Ok(with_alarms::<B>(on, vec![one]).await?.remove(0))
}

/// The machine's row id; `NotFound` for an unknown machine.
async fn machine_id<B: Backend>(on: &mut On<'_, B::Db>, machine: &MachineKey) -> StoreResult<i64> {
    on.fetch_optional(
        "SELECT id FROM machines WHERE key = $1",
        &[Arg::Text(machine.as_str())],
    )
    .await
    .map_err(db)?
    .ok_or_else(|| common::machine_not_found(machine))?
    .int(0)
}

/// Refuses alarms that do not exist (`NotFound`) or are another machine's (`Invalid`).
async fn check_alarms<B: Backend>(
    on: &mut On<'_, B::Db>,
    machine_row: i64,
    alarms: &[AlarmId],
) -> StoreResult<()> {
    for (i, a) in alarms.iter().enumerate() {
        let row = on
            .fetch_optional(
                "SELECT machine_id FROM alarms WHERE id = $1",
                &[Arg::Int(a.0)],
            )
            .await
            .map_err(db)?
            .ok_or_else(|| StoreError::NotFound(format!("alarm {a}")))?;
        if row.int(0)? != machine_row {
            return Err(StoreError::Invalid(format!(
                "alarms[{i}]: alarm {a} is another machine's"
            )));
        }
    }
    Ok(())
}

async fn link_alarms<B: Backend>(
    on: &mut On<'_, B::Db>,
    id: WorkOrderId,
    alarms: &[AlarmId],
) -> StoreResult<()> {
    for a in alarms {
        on.execute(
            "INSERT INTO work_order_alarms (work_order_id, alarm_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
            &[Arg::Int(id.0), Arg::Int(a.0)],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Refuses a code that is not an active code of its list.
async fn check_code<B: Backend>(
    on: &mut On<'_, B::Db>,
    kind: CodeKind,
    code: &str,
) -> StoreResult<()> {
    let row = on
        .fetch_optional(
            "SELECT CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) FROM work_order_codes \
             WHERE kind = $1 AND code = $2",
            &[Arg::Text(kind.as_str()), Arg::Text(code)],
        )
        .await
        .map_err(db)?;
    match row {
        Some(r) if r.int(0)? == 1 => Ok(()),
        Some(_) => Err(StoreError::Invalid(format!(
            "{kind}: '{code}' is retired from the {kind} list"
        ))),
        None => Err(StoreError::Invalid(format!(
            "{kind}: '{code}' is not in the {kind} list"
        ))),
    }
}

async fn record_event<B: Backend>(
    on: &mut On<'_, B::Db>,
    w: &WorkOrder,
    actor: &str,
    action: &str,
    changes: &serde_json::Value,
) -> StoreResult<()> {
    let at = common::check_time::<B>("updated_at", w.updated_at)?;
    let sql = format!(
        "INSERT INTO work_order_events (work_order_id, at, actor, action, changes, version) \
         VALUES ($1, {}, $3, $4, $5, $6)",
        B::at_millis("$2")
    );
    let changes = changes.to_string();
    on.execute(
        &sql,
        &[
            Arg::Int(w.id.0),
            Arg::Int(at),
            Arg::Text(actor),
            Arg::Text(action),
            Arg::Text(&changes),
            Arg::Int(w.version),
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

fn assignee_error(e: sqlx::Error, assignee: Option<UserId>) -> StoreError {
    match assignee {
        Some(u) if is_foreign_key_violation(&e) => StoreError::NotFound(format!("user {u}")),
        _ => db(e),
    }
}

impl<B: Backend> SqlStore<B> {
    async fn create_on(on: &mut On<'_, B::Db>, w: &NewWorkOrder) -> StoreResult<WorkOrder> {
        let at = common::check_time::<B>("created_at", w.at)?;
        let due = opt_time::<B>("due_at", w.due_at)?;
        let machine = machine_id::<B>(on, &w.machine).await?;
        check_alarms::<B>(on, machine, &w.alarms).await?;
        let sql = format!(
            "INSERT INTO work_orders (machine_id, title, description, priority, priority_rank, \
             status, assignee_id, due_at, created_by, time_spent_min, created_at, updated_at, \
             version) VALUES ($1, $2, $3, $4, $5, $6, $7, {due}, $9, 0, {at}, {at}, 1) \
             RETURNING id",
            due = B::at_millis("$8"),
            at = B::at_millis("$10"),
        );
        let row = on
            .fetch_optional(
                &sql,
                &[
                    Arg::Int(machine),
                    Arg::Text(&w.title),
                    Arg::Text(&w.description),
                    Arg::Text(w.priority.as_str()),
                    Arg::Int(rank(w.priority)),
                    Arg::Text(Status::Open.as_str()),
                    Arg::OptInt(w.assignee.map(|u| u.0)),
                    Arg::OptInt(due),
                    Arg::Text(&w.created_by),
                    Arg::Int(at),
                ],
            )
            .await
            .map_err(|e| assignee_error(e, w.assignee))?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?;
        let id = WorkOrderId(row.int(0)?);
        link_alarms::<B>(on, id, &w.alarms).await?;
        let created = read_on::<B>(on, id).await?;
        let fields = serde_json::to_value(&created).map_err(corrupt)?;
        record_event::<B>(on, &created, &w.created_by, "created", &fields).await?;
        Ok(created)
    }

    async fn update_on(
        on: &mut On<'_, B::Db>,
        next: &WorkOrder,
        actor: &str,
        changes: &serde_json::Value,
    ) -> StoreResult<WorkOrder> {
        let current = read_on::<B>(on, next.id).await?;
        let read = next.version - 1;
        if current.version != read {
            return Err(StoreError::Stale(format!(
                "work order {} is at version {}, not {read}: read it again and redo the change",
                next.id, current.version
            )));
        }
        if next.machine != current.machine {
            return Err(StoreError::Invalid(
                "machine: a work order stays with its machine".into(),
            ));
        }
        for (kind, new, old) in [
            (
                CodeKind::FailureMode,
                &next.failure_mode,
                &current.failure_mode,
            ),
            (CodeKind::Cause, &next.cause, &current.cause),
            (CodeKind::Remedy, &next.remedy, &current.remedy),
        ] {
            if let Some(code) = new.as_ref().filter(|c| Some(*c) != old.as_ref()) {
                check_code::<B>(on, kind, code).await?;
            }
        }
        let added: Vec<AlarmId> = next
            .alarms
            .iter()
            .filter(|a| !current.alarms.contains(a))
            .copied()
            .collect();
        if !added.is_empty() {
            let machine = machine_id::<B>(on, &current.machine).await?;
            check_alarms::<B>(on, machine, &added).await?;
        }
        let due = opt_time::<B>("due_at", next.due_at)?;
        let updated = common::check_time::<B>("updated_at", next.updated_at)?;
        let resolved = opt_time::<B>("resolved_at", next.resolved_at)?;
        let closed = opt_time::<B>("closed_at", next.closed_at)?;
        let sql = format!(
            "UPDATE work_orders SET title = $2, description = $3, priority = $4, \
             priority_rank = $5, status = $6, assignee_id = $7, due_at = {due}, \
             failure_mode = $9, cause = $10, remedy = $11, label = $12, time_spent_min = $13, \
             updated_at = {updated}, resolved_at = {resolved}, closed_at = {closed}, \
             version = $17 WHERE id = $1 AND version = $18",
            due = B::at_millis("$8"),
            updated = B::at_millis("$14"),
            resolved = B::at_millis("$15"),
            closed = B::at_millis("$16"),
        );
        let n = on
            .execute(
                &sql,
                &[
                    Arg::Int(next.id.0),
                    Arg::Text(&next.title),
                    Arg::Text(&next.description),
                    Arg::Text(next.priority.as_str()),
                    Arg::Int(rank(next.priority)),
                    Arg::Text(next.status.as_str()),
                    Arg::OptInt(next.assignee.map(|u| u.0)),
                    Arg::OptInt(due),
                    Arg::OptText(next.failure_mode.as_deref()),
                    Arg::OptText(next.cause.as_deref()),
                    Arg::OptText(next.remedy.as_deref()),
                    Arg::OptText(next.label.map(Label::as_str)),
                    Arg::Int(i64::from(next.time_spent_min)),
                    Arg::Int(updated),
                    Arg::OptInt(resolved),
                    Arg::OptInt(closed),
                    Arg::Int(next.version),
                    Arg::Int(read),
                ],
            )
            .await
            .map_err(|e| assignee_error(e, next.assignee))?;
        if n == 0 {
            return Err(StoreError::Stale(format!(
                "work order {} changed while this change was written: read it again",
                next.id
            )));
        }
        link_alarms::<B>(on, next.id, &added).await?;
        let stored = read_on::<B>(on, next.id).await?;
        record_event::<B>(on, &stored, actor, "updated", changes).await?;
        Ok(stored)
    }
}

#[async_trait]
impl<B: Backend> WorkOrderStore for SqlStore<B> {
    async fn create_work_order(&self, w: &NewWorkOrder) -> StoreResult<WorkOrder> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = Self::create_on(&mut On::Conn(&mut *tx), w).await;
        end_tx(tx, done).await
    }

    async fn get_work_order(&self, id: WorkOrderId) -> StoreResult<WorkOrder> {
        read_on::<B>(&mut self.reader(), id).await
    }

    async fn list_work_orders(&self, q: &WorkOrderQuery) -> StoreResult<Vec<WorkOrder>> {
        let mut sql = format!("SELECT {} FROM {FROM} WHERE 1 = 1", columns::<B>());
        let mut args: Vec<Arg<'_>> = Vec::new();
        let next = |args: &mut Vec<Arg<'_>>| format!("${}", args.len());
        if !q.status.is_empty() {
            let mut marks = Vec::new();
            for s in &q.status {
                args.push(Arg::Text(s.as_str()));
                marks.push(next(&mut args));
            }
            sql.push_str(&format!(" AND w.status IN ({})", marks.join(", ")));
        }
        if let Some(m) = &q.machine {
            args.push(Arg::Text(m.as_str()));
            sql.push_str(&format!(" AND m.key = {}", next(&mut args)));
        }
        if let Some(u) = q.assignee {
            args.push(Arg::Int(u.0));
            sql.push_str(&format!(" AND w.assignee_id = {}", next(&mut args)));
        }
        if let Some(p) = q.priority {
            args.push(Arg::Text(p.as_str()));
            sql.push_str(&format!(" AND w.priority = {}", next(&mut args)));
        }
        if let Some(t) = q.overdue_at {
            args.push(Arg::Int(B::clamp_millis(t.as_millis())));
            sql.push_str(&format!(
                " AND w.status IN ('open', 'in_progress', 'on_hold') AND w.due_at < {}",
                B::at_millis(&next(&mut args))
            ));
        }
        if let Some(b) = q.before {
            args.push(Arg::Int(b.0));
            sql.push_str(&format!(" AND w.id < {}", next(&mut args)));
        }
        sql.push_str(match q.sort {
            WorkOrderSort::Newest => " ORDER BY w.id DESC",
            WorkOrderSort::Due => {
                " ORDER BY CASE WHEN w.due_at IS NULL THEN 1 ELSE 0 END, w.due_at, w.id DESC"
            }
            WorkOrderSort::Priority => " ORDER BY w.priority_rank DESC, w.id DESC",
        });
        args.push(Arg::Int(common::limit(q.limit)));
        let limit = next(&mut args);
        args.push(Arg::Int(i64::from(q.offset)));
        sql.push_str(&format!(" LIMIT {limit} OFFSET {}", next(&mut args)));
        let mut on = self.reader();
        let rows = on.fetch_all(&sql, &args).await.map_err(db)?;
        let orders = rows
            .iter()
            .map(work_order)
            .collect::<StoreResult<Vec<_>>>()?;
        with_alarms::<B>(&mut on, orders).await
    }

    async fn update_work_order(
        &self,
        next: &WorkOrder,
        actor: &str,
        changes: &serde_json::Value,
    ) -> StoreResult<WorkOrder> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = Self::update_on(&mut On::Conn(&mut *tx), next, actor, changes).await;
        end_tx(tx, done).await
    }

    async fn work_order_history(&self, id: WorkOrderId) -> StoreResult<Vec<WorkOrderEvent>> {
        let mut on = self.reader();
        read_on::<B>(&mut on, id).await?;
        let sql = format!(
            "SELECT id, work_order_id, {}, actor, action, changes, version \
             FROM work_order_events WHERE work_order_id = $1 ORDER BY id",
            B::millis("at")
        );
        let rows = on.fetch_all(&sql, &[Arg::Int(id.0)]).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(WorkOrderEvent {
                    id: r.int(0)?,
                    work_order: WorkOrderId(r.int(1)?),
                    at: Timestamp::from_millis(r.int(2)?),
                    actor: r.text(3)?,
                    action: r.text(4)?,
                    changes: serde_json::from_str(&r.text(5)?).map_err(corrupt)?,
                    version: r.int(6)?,
                })
            })
            .collect()
    }

    async fn alarm_work_orders(&self, alarm: AlarmId) -> StoreResult<Vec<WorkOrderId>> {
        let rows = self
            .reader()
            .fetch_all(
                "SELECT work_order_id FROM work_order_alarms WHERE alarm_id = $1 \
                 ORDER BY work_order_id",
                &[Arg::Int(alarm.0)],
            )
            .await
            .map_err(db)?;
        rows.iter().map(|r| Ok(WorkOrderId(r.int(0)?))).collect()
    }

    async fn labelled_alarms(
        &self,
        machine: Option<&MachineKey>,
    ) -> StoreResult<Vec<(MachineKey, LabelledAlarm)>> {
        // Each judged alarm once: the label of its last resolved work order (by resolution
        // time, then id), read newest first and the first kept.
        let mut sql = format!(
            "SELECT m.key, a.id, w.label, {}, {} FROM work_order_alarms wa \
             JOIN work_orders w ON w.id = wa.work_order_id \
             JOIN alarms a ON a.id = wa.alarm_id \
             JOIN machines m ON m.id = a.machine_id \
             WHERE w.label IS NOT NULL AND w.status IN ('resolved', 'closed')",
            B::millis("a.opened_at"),
            // The end of the condition: its last event driven by the data (raised, escalated,
            // returned, and the system's own clearing or latching of an alarm acknowledged
            // while active), not an operator's acknowledgement or shelving afterwards.
            B::millis(
                "coalesce((SELECT max(e.at) FROM alarm_events e WHERE e.alarm_id = a.id AND \
                 (e.kind IN ('raised', 'escalated', 'de_escalated', 'returned', 'reactivated') \
                 OR (e.kind IN ('cleared', 'latched') AND e.actor = 'system'))), \
                 a.last_event_at)"
            ),
        );
        let mut args = Vec::new();
        if let Some(m) = machine {
            sql.push_str(" AND m.key = $1");
            args.push(Arg::Text(m.as_str()));
        }
        sql.push_str(" ORDER BY a.id, w.resolved_at DESC, w.id DESC");
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        let mut out: Vec<(MachineKey, LabelledAlarm)> = Vec::new();
        for r in &rows {
            let alarm = AlarmId(r.int(1)?);
            if out.last().is_some_and(|(_, l)| l.alarm == alarm) {
                continue;
            }
            out.push((
                MachineKey::new(&r.text(0)?).map_err(corrupt)?,
                LabelledAlarm {
                    alarm,
                    label: Label::parse(&r.text(2)?).map_err(corrupt)?,
                    opened_at: Timestamp::from_millis(r.int(3)?),
                    ended_at: Timestamp::from_millis(r.int(4)?),
                },
            ));
        }
        Ok(out)
    }

    async fn list_codes(&self, kind: Option<CodeKind>) -> StoreResult<Vec<Code>> {
        let mut sql = String::from(
            "SELECT kind, code, description, CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) \
             FROM work_order_codes",
        );
        let mut args = Vec::new();
        if let Some(k) = kind {
            sql.push_str(" WHERE kind = $1");
            args.push(Arg::Text(k.as_str()));
        }
        sql.push_str(" ORDER BY kind, code");
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(Code {
                    kind: CodeKind::parse(&r.text(0)?).map_err(corrupt)?,
                    code: r.text(1)?,
                    description: r.text(2)?,
                    active: r.int(3)? == 1,
                })
            })
            .collect()
    }

    async fn put_code(&self, code: &Code) -> StoreResult<bool> {
        pdm_core::workorder::check_code("code", &code.code)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = async {
            let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
            let existed = on
                .fetch_optional(
                    "SELECT 1 FROM work_order_codes WHERE kind = $1 AND code = $2",
                    &[Arg::Text(code.kind.as_str()), Arg::Text(&code.code)],
                )
                .await
                .map_err(db)?
                .is_some();
            on.execute(
                "INSERT INTO work_order_codes (kind, code, description, active) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (kind, code) DO UPDATE SET \
                 description = excluded.description, active = excluded.active",
                &[
                    Arg::Text(code.kind.as_str()),
                    Arg::Text(&code.code),
                    Arg::Text(&code.description),
                    Arg::Flag(code.active),
                ],
            )
            .await
            .map_err(db)?;
            Ok(!existed)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn seed_codes(&self, codes: &[Code]) -> StoreResult<bool> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = async {
            let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
            let any = on
                .fetch_optional("SELECT 1 FROM work_order_codes LIMIT 1", &[])
                .await
                .map_err(db)?
                .is_some();
            if any {
                return Ok(false);
            }
            for c in codes {
                on.execute(
                    "INSERT INTO work_order_codes (kind, code, description, active) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        Arg::Text(c.kind.as_str()),
                        Arg::Text(&c.code),
                        Arg::Text(&c.description),
                        Arg::Flag(c.active),
                    ],
                )
                .await
                .map_err(db)?;
            }
            Ok(true)
        }
        .await;
        end_tx(tx, done).await
    }
}
