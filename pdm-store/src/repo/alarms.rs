//! [`AlarmStore`] on both backends.
//!
//! A transition is one write transaction: the alarm row (inserted, or updated where its
//! version is the expected one), its events and one outbox row per event. The unique partial
//! index `alarms_one_open` decides between concurrent openings for one machine and rule: the
//! loser's insert is a unique violation, reported as `Conflict`, and its transaction rolls back
//! with nothing written. Updates are optimistic (`WHERE version = $n`), so a transition
//! computed from a stale state is refused instead of overwriting a newer one.
//!
//! Rules of a machine and fleet-wide defaults (`machine_id` NULL) have a partial unique index
//! each: a unique constraint over a nullable column would let NULLs repeat on both databases.
//! Rules are ordered in Rust (bytewise by rule id), not by the database's collation.

use async_trait::async_trait;
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
use pdm_core::{
    AlarmEventRecord, AlarmId, AlarmQuery, AlarmRuleRecord, AlarmStore, AlarmTransition,
    MachineKey, NewAlarmRule, OutboxEntry, ServiceNote, StoreError, StoreResult, StoredAlarm,
    StoredAlarmEvent, Timestamp,
};

use crate::common;
use crate::error::{db, is_unique_violation};
use crate::sql::{end_tx, Arg, Backend, Cols, ListQuery, On, SqlStore};

/// The columns [`alarm`] decodes, of [`FROM`].
fn columns<B: Backend>() -> String {
    format!(
        "a.id, m.key, a.rule_id, a.state, a.severity, {}, {}, a.state_json, {}, a.version",
        B::millis("a.opened_at"),
        B::millis("a.closed_at"),
        B::millis("a.last_event_at"),
    )
}

/// The tables [`columns`] reads.
const FROM: &str = "alarms a JOIN machines m ON m.id = a.machine_id";

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("invalid alarm data in database: {what}").into())
}

/// An alarm from [`columns`].
fn alarm(row: &impl Cols) -> StoreResult<StoredAlarm> {
    Ok(StoredAlarm {
        id: AlarmId(row.int(0)?),
        machine: common::key(row.text(1)?)?,
        rule_id: row.text(2)?,
        state: StateName::parse(&row.text(3)?).map_err(corrupt)?,
        severity: Severity::parse(&row.text(4)?).map_err(corrupt)?,
        opened_at: Timestamp::from_millis(row.int(5)?),
        closed_at: row.opt_int(6)?.map(Timestamp::from_millis),
        state_json: row.text(7)?,
        last_event_at: Timestamp::from_millis(row.int(8)?),
        version: row.int(9)?,
    })
}

/// The columns [`event`] decodes, of `alarm_events e`, starting at `e.id`.
fn event_columns<B: Backend>() -> String {
    format!(
        "e.id, e.alarm_id, e.kind, {}, e.actor, e.reason, e.severity",
        B::millis("e.at")
    )
}

/// An event from [`event_columns`], starting at column `i`.
fn event(row: &impl Cols, i: usize) -> StoreResult<StoredAlarmEvent> {
    Ok(StoredAlarmEvent {
        id: row.int(i)?,
        alarm: AlarmId(row.int(i + 1)?),
        event: AlarmEvent {
            kind: AlarmEventKind::parse(&row.text(i + 2)?).map_err(corrupt)?,
            at: Timestamp::from_millis(row.int(i + 3)?),
            actor: row.text(i + 4)?,
            reason: row.text(i + 5)?,
            severity: Severity::parse(&row.text(i + 6)?).map_err(corrupt)?,
        },
    })
}

/// The columns [`rule`] decodes, of `alarm_rules r LEFT JOIN machines m`.
fn rule_columns<B: Backend>() -> String {
    format!(
        "r.id, m.key, r.rule_id, r.definition, \
         CAST(CASE WHEN r.enabled THEN 1 ELSE 0 END AS BIGINT), {}, {}",
        B::millis("r.created_at"),
        B::millis("r.updated_at"),
    )
}

const RULES_FROM: &str = "alarm_rules r LEFT JOIN machines m ON m.id = r.machine_id";

/// A rule from [`rule_columns`].
fn rule(row: &impl Cols) -> StoreResult<AlarmRuleRecord> {
    Ok(AlarmRuleRecord {
        id: row.int(0)?,
        machine: row.opt_text(1)?.map(common::key).transpose()?,
        rule_id: row.text(2)?,
        definition: row.text(3)?,
        enabled: row.int(4)? != 0,
        created_at: Timestamp::from_millis(row.int(5)?),
        updated_at: Timestamp::from_millis(row.int(6)?),
    })
}

fn alarm_not_found(id: AlarmId) -> StoreError {
    StoreError::NotFound(format!("alarm {id}"))
}

/// `Invalid` unless `t` is a time every backend stores exactly.
fn check_time<B: Backend>(name: &str, t: Timestamp) -> StoreResult<()> {
    let ms = t.as_millis();
    if B::clamp_millis(ms) == ms {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{name} ({ms} ms) is outside the range this database can store"
        )))
    }
}

fn check_rule_id(rule_id: &str) -> StoreResult<()> {
    if rule_id.trim().is_empty() {
        Err(StoreError::Invalid("alarm rule id is empty".into()))
    } else {
        Ok(())
    }
}

/// The id of `machine`, read on `on`; `NotFound` when unknown.
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

/// The alarm `id` read on `on`.
async fn read_on<B: Backend>(on: &mut On<'_, B::Db>, id: i64) -> StoreResult<Option<StoredAlarm>> {
    let sql = format!("SELECT {} FROM {FROM} WHERE a.id = $1", columns::<B>());
    let row = on.fetch_optional(&sql, &[Arg::Int(id)]).await.map_err(db)?;
    row.as_ref().map(alarm).transpose()
}

/// The machines out of service (only `machine`, when given), read on `on`, by key.
async fn service_on<B: Backend>(
    on: &mut On<'_, B::Db>,
    machine: Option<&MachineKey>,
) -> StoreResult<Vec<ServiceNote>> {
    let sql = format!(
        "SELECT m.key, {}, s.by_actor, s.reason FROM machine_service s \
         JOIN machines m ON m.id = s.machine_id WHERE $1 IS NULL OR m.key = $1",
        B::millis("s.since")
    );
    let rows = on
        .fetch_all(&sql, &[Arg::OptText(machine.map(MachineKey::as_str))])
        .await
        .map_err(db)?;
    let mut notes = rows
        .iter()
        .map(|r| {
            Ok(ServiceNote {
                machine: common::key(r.text(0)?)?,
                since: Timestamp::from_millis(r.int(1)?),
                by: r.text(2)?,
                reason: r.text(3)?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    notes.sort_by(|a, b| {
        a.machine
            .as_str()
            .as_bytes()
            .cmp(b.machine.as_str().as_bytes())
    });
    Ok(notes)
}

impl<B: Backend> SqlStore<B> {
    /// [`AlarmStore::record_transition`] on `on`, a write transaction.
    async fn record_transition_on(
        on: &mut On<'_, B::Db>,
        t: &AlarmTransition,
    ) -> StoreResult<StoredAlarm> {
        let machine = machine_id::<B>(on, &t.machine).await?;
        let (Some(first), Some(last)) = (t.events.first(), t.events.last()) else {
            return Err(StoreError::Invalid(
                "an alarm transition without events".into(),
            ));
        };
        let closed = t.closes.then_some(last.at.as_millis());
        let id = match t.alarm {
            None => {
                let sql = format!(
                    "INSERT INTO alarms (machine_id, rule_id, state, severity, opened_at, \
                     closed_at, state_json, last_event_at, version) \
                     VALUES ($1, $2, $3, $4, {}, {}, $7, {}, 1) RETURNING id",
                    B::at_millis("$5"),
                    B::at_millis("$6"),
                    B::at_millis("$8"),
                );
                let args = [
                    Arg::Int(machine),
                    Arg::Text(&t.rule_id),
                    Arg::Text(t.state.as_str()),
                    Arg::Text(t.severity.as_str()),
                    Arg::Int(first.at.as_millis()),
                    Arg::OptInt(closed),
                    Arg::Text(&t.state_json),
                    Arg::Int(last.at.as_millis()),
                ];
                on.fetch_optional(&sql, &args)
                    .await
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict(format!(
                                "an alarm of machine '{}' and rule '{}' is open already",
                                t.machine, t.rule_id
                            ))
                        } else {
                            db(e)
                        }
                    })?
                    .ok_or_else(|| {
                        StoreError::Backend("INSERT ... RETURNING returned no row".into())
                    })?
                    .int(0)?
            }
            Some(id) => {
                let sql = format!(
                    "UPDATE alarms SET state = $3, severity = $4, closed_at = {}, \
                     state_json = $6, last_event_at = {}, version = version + 1 \
                     WHERE id = $1 AND version = $2 AND closed_at IS NULL \
                     AND machine_id = $8 AND rule_id = $9",
                    B::at_millis("$5"),
                    B::at_millis("$7"),
                );
                let args = [
                    Arg::Int(id.0),
                    Arg::Int(t.expected_version),
                    Arg::Text(t.state.as_str()),
                    Arg::Text(t.severity.as_str()),
                    Arg::OptInt(closed),
                    Arg::Text(&t.state_json),
                    Arg::Int(last.at.as_millis()),
                    Arg::Int(machine),
                    Arg::Text(&t.rule_id),
                ];
                if on.execute(&sql, &args).await.map_err(db)? == 0 {
                    let current = read_on::<B>(on, id.0)
                        .await?
                        .ok_or_else(|| alarm_not_found(id))?;
                    return Err(
                        if current.machine != t.machine || current.rule_id != t.rule_id {
                            StoreError::Invalid(format!(
                                "alarm {id} is of machine '{}' and rule '{}', not '{}' and '{}'",
                                current.machine, current.rule_id, t.machine, t.rule_id
                            ))
                        } else if current.closed_at.is_some() {
                            StoreError::Conflict(format!("alarm {id} is closed"))
                        } else {
                            StoreError::Conflict(format!(
                                "alarm {id} is at version {}, not {}",
                                current.version, t.expected_version
                            ))
                        },
                    );
                }
                id.0
            }
        };
        let insert_event = format!(
            "INSERT INTO alarm_events (alarm_id, kind, at, actor, reason, severity) \
             VALUES ($1, $2, {}, $4, $5, $6) RETURNING id",
            B::at_millis("$3")
        );
        let insert_outbox = format!(
            "INSERT INTO outbox (event_id, created_at) VALUES ($1, {})",
            B::at_millis("$2")
        );
        let now = Timestamp::now().as_millis();
        for e in &t.events {
            let args = [
                Arg::Int(id),
                Arg::Text(e.kind.as_str()),
                Arg::Int(e.at.as_millis()),
                Arg::Text(&e.actor),
                Arg::Text(&e.reason),
                Arg::Text(e.severity.as_str()),
            ];
            let event_id = on
                .fetch_optional(&insert_event, &args)
                .await
                .map_err(db)?
                .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?
                .int(0)?;
            on.execute(&insert_outbox, &[Arg::Int(event_id), Arg::Int(now)])
                .await
                .map_err(db)?;
        }
        read_on::<B>(on, id)
            .await?
            .ok_or_else(|| alarm_not_found(AlarmId(id)))
    }

    /// [`AlarmStore::put_rule`] on `on`, a write transaction.
    async fn put_rule_on(on: &mut On<'_, B::Db>, r: &NewAlarmRule) -> StoreResult<i64> {
        let machine = match &r.machine {
            Some(m) => Some(machine_id::<B>(on, m).await?),
            None => None,
        };
        let now = Timestamp::now().as_millis();
        let of_machine = if machine.is_some() {
            "machine_id = $5"
        } else {
            "machine_id IS NULL AND $5 IS NULL"
        };
        let update = format!(
            "UPDATE alarm_rules SET definition = $2, enabled = $3, updated_at = {} \
             WHERE rule_id = $1 AND {of_machine} RETURNING id",
            B::at_millis("$4")
        );
        let args = [
            Arg::Text(&r.rule_id),
            Arg::Text(&r.definition),
            Arg::Flag(r.enabled),
            Arg::Int(now),
            Arg::OptInt(machine),
        ];
        if let Some(row) = on.fetch_optional(&update, &args).await.map_err(db)? {
            return row.int(0);
        }
        let insert = format!(
            "INSERT INTO alarm_rules (rule_id, definition, enabled, created_at, updated_at, \
             machine_id) VALUES ($1, $2, $3, {at}, {at}, $5) RETURNING id",
            at = B::at_millis("$4")
        );
        on.fetch_optional(&insert, &args)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "alarm rule '{}' was stored concurrently",
                        r.rule_id
                    ))
                } else {
                    db(e)
                }
            })?
            .ok_or_else(|| StoreError::Backend("INSERT ... RETURNING returned no row".into()))?
            .int(0)
    }
}

#[async_trait]
impl<B: Backend> AlarmStore for SqlStore<B> {
    async fn open_alarm(
        &self,
        machine: &MachineKey,
        rule_id: &str,
    ) -> StoreResult<Option<StoredAlarm>> {
        let sql = format!(
            "SELECT {} FROM {FROM} WHERE m.key = $1 AND a.rule_id = $2 AND a.closed_at IS NULL",
            columns::<B>()
        );
        let row = self
            .reader()
            .fetch_optional(&sql, &[Arg::Text(machine.as_str()), Arg::Text(rule_id)])
            .await
            .map_err(db)?;
        match row {
            Some(row) => alarm(&row).map(Some),
            None if self.machine_exists(machine).await? => Ok(None),
            None => Err(common::machine_not_found(machine)),
        }
    }

    async fn record_transition(&self, t: &AlarmTransition) -> StoreResult<StoredAlarm> {
        check_rule_id(&t.rule_id)?;
        if t.events.is_empty() {
            return Err(StoreError::Invalid(
                "an alarm transition without events".into(),
            ));
        }
        for e in &t.events {
            check_time::<B>("alarm event time", e.at)?;
        }
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let done = Self::record_transition_on(&mut On::Conn(&mut *tx), t).await;
        end_tx(tx, done).await
    }

    async fn get_alarm(&self, id: AlarmId) -> StoreResult<StoredAlarm> {
        read_on::<B>(&mut self.reader(), id.0)
            .await?
            .ok_or_else(|| alarm_not_found(id))
    }

    async fn alarm_events(&self, id: AlarmId) -> StoreResult<Vec<StoredAlarmEvent>> {
        let sql = format!(
            "SELECT {} FROM alarm_events e WHERE e.alarm_id = $1 ORDER BY e.id",
            event_columns::<B>()
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(id.0)])
            .await
            .map_err(db)?;
        if rows.is_empty() {
            self.get_alarm(id).await?;
        }
        rows.iter().map(|r| event(r, 0)).collect()
    }

    async fn list_alarms(&self, q: &AlarmQuery) -> StoreResult<Vec<StoredAlarm>> {
        let opened = B::millis("a.opened_at");
        let (from, to) = (format!("{opened} >="), format!("{opened} <"));
        let (sql, args) = ListQuery::new(format!("SELECT {} FROM {FROM}", columns::<B>()))
            .filter("a.state =", q.state.map(|s| Arg::Text(s.as_str())))
            .filter(
                "CASE WHEN a.closed_at IS NULL THEN 1 ELSE 0 END =",
                q.open.map(|o| Arg::Int(i64::from(o))),
            )
            .filter("m.key =", q.machine.as_ref().map(|m| Arg::Text(m.as_str())))
            .filter("a.rule_id =", q.rule_id.as_deref().map(Arg::Text))
            .filter("a.severity =", q.severity.map(|s| Arg::Text(s.as_str())))
            .filter(&from, q.from.map(|t| Arg::Int(t.as_millis())))
            .filter(&to, q.to.map(|t| Arg::Int(t.as_millis())))
            .filter("a.id <", q.before.map(|b| Arg::Int(b.0)))
            .newest_first("a.id", q.limit);
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter().map(alarm).collect()
    }

    async fn alarm_events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        kinds: &[AlarmEventKind],
    ) -> StoreResult<Vec<AlarmEventRecord>> {
        if kinds.is_empty() || from >= to {
            return Ok(vec![]);
        }
        // The kinds are a closed set of names, but they are still bound, never spliced in.
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT m.key, a.rule_id, {} FROM alarm_events e \
             JOIN alarms a ON a.id = e.alarm_id JOIN machines m ON m.id = a.machine_id \
             WHERE e.at >= {} AND e.at < {} AND e.kind IN ({}) ORDER BY e.at, e.id",
            event_columns::<B>(),
            B::at_millis("$1"),
            B::at_millis("$2"),
            marks.join(", "),
        );
        let mut args = vec![
            Arg::Int(B::clamp_millis(from.as_millis())),
            Arg::Int(B::clamp_millis(to.as_millis())),
        ];
        args.extend(kinds.iter().map(|k| Arg::Text(k.as_str())));
        let rows = self.reader().fetch_all(&sql, &args).await.map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(AlarmEventRecord {
                    machine: common::key(r.text(0)?)?,
                    rule_id: r.text(1)?,
                    event: event(r, 2)?,
                })
            })
            .collect()
    }

    async fn alarms_open_at(&self, at: Timestamp) -> StoreResult<Vec<StoredAlarm>> {
        let sql = format!(
            "SELECT {} FROM {FROM} WHERE a.opened_at <= {at} \
             AND (a.closed_at IS NULL OR a.closed_at > {at}) ORDER BY a.id",
            columns::<B>(),
            at = B::at_millis("$1"),
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(B::clamp_millis(at.as_millis()))])
            .await
            .map_err(db)?;
        rows.iter().map(alarm).collect()
    }

    async fn put_rule(&self, r: &NewAlarmRule) -> StoreResult<AlarmRuleRecord> {
        check_rule_id(&r.rule_id)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = match Self::put_rule_on(&mut on, r).await {
            Ok(id) => {
                let sql = format!(
                    "SELECT {} FROM {RULES_FROM} WHERE r.id = $1",
                    rule_columns::<B>()
                );
                match on.fetch_optional(&sql, &[Arg::Int(id)]).await.map_err(db) {
                    Ok(Some(row)) => rule(&row),
                    Ok(None) => Err(StoreError::NotFound(format!("alarm rule '{}'", r.rule_id))),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        end_tx(tx, done).await
    }

    async fn delete_rule(&self, machine: Option<&MachineKey>, rule_id: &str) -> StoreResult<bool> {
        let sql = match machine {
            Some(_) => {
                "DELETE FROM alarm_rules WHERE rule_id = $1 \
                 AND machine_id = (SELECT id FROM machines WHERE key = $2)"
            }
            None => {
                "DELETE FROM alarm_rules WHERE rule_id = $1 AND machine_id IS NULL AND $2 IS NULL"
            }
        };
        let n = self
            .writer()
            .execute(
                sql,
                &[
                    Arg::Text(rule_id),
                    Arg::OptText(machine.map(MachineKey::as_str)),
                ],
            )
            .await
            .map_err(db)?;
        Ok(n > 0)
    }

    async fn list_rules(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<AlarmRuleRecord>> {
        let sql = format!(
            "SELECT {} FROM {RULES_FROM} WHERE r.machine_id IS NULL OR m.key = $1",
            rule_columns::<B>()
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::OptText(machine.map(MachineKey::as_str))])
            .await
            .map_err(db)?;
        let mut rules = rows.iter().map(rule).collect::<StoreResult<Vec<_>>>()?;
        rules.sort_by(|a, b| {
            (a.rule_id.as_bytes(), a.machine.is_none())
                .cmp(&(b.rule_id.as_bytes(), b.machine.is_none()))
        });
        Ok(rules)
    }

    async fn put_out_of_service(&self, note: &ServiceNote) -> StoreResult<Option<ServiceNote>> {
        check_time::<B>("out of service since", note.since)?;
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let machine = machine_id::<B>(&mut on, &note.machine).await?;
            let before = service_on::<B>(&mut on, Some(&note.machine)).await?.pop();
            on.execute(
                "DELETE FROM machine_service WHERE machine_id = $1",
                &[Arg::Int(machine)],
            )
            .await
            .map_err(db)?;
            let insert = format!(
                "INSERT INTO machine_service (machine_id, since, by_actor, reason) \
                 VALUES ($1, {}, $3, $4)",
                B::at_millis("$2")
            );
            on.execute(
                &insert,
                &[
                    Arg::Int(machine),
                    Arg::Int(note.since.as_millis()),
                    Arg::Text(&note.by),
                    Arg::Text(&note.reason),
                ],
            )
            .await
            .map_err(db)?;
            Ok(before)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn clear_out_of_service(&self, machine: &MachineKey) -> StoreResult<Option<ServiceNote>> {
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let done = async {
            let id = machine_id::<B>(&mut on, machine).await?;
            let before = service_on::<B>(&mut on, Some(machine)).await?.pop();
            on.execute(
                "DELETE FROM machine_service WHERE machine_id = $1",
                &[Arg::Int(id)],
            )
            .await
            .map_err(db)?;
            Ok(before)
        }
        .await;
        end_tx(tx, done).await
    }

    async fn out_of_service(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ServiceNote>> {
        service_on::<B>(&mut self.reader(), machine).await
    }

    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxEntry>> {
        let sql = format!(
            "SELECT o.id, m.key, a.rule_id, {}, {} FROM outbox o \
             JOIN alarm_events e ON e.id = o.event_id JOIN alarms a ON a.id = e.alarm_id \
             JOIN machines m ON m.id = a.machine_id \
             WHERE o.delivered_at IS NULL ORDER BY o.id LIMIT $1",
            B::millis("o.created_at"),
            event_columns::<B>(),
        );
        let rows = self
            .reader()
            .fetch_all(&sql, &[Arg::Int(common::limit(limit))])
            .await
            .map_err(db)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxEntry {
                    id: r.int(0)?,
                    machine: common::key(r.text(1)?)?,
                    rule_id: r.text(2)?,
                    created_at: Timestamp::from_millis(r.int(3)?),
                    event: event(r, 4)?,
                })
            })
            .collect()
    }

    async fn mark_delivered(&self, ids: &[i64], at: Timestamp) -> StoreResult<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        check_time::<B>("delivery time", at)?;
        let sql = format!(
            "UPDATE outbox SET delivered_at = {} WHERE id = $1 AND delivered_at IS NULL",
            B::at_millis("$2")
        );
        let mut tx = self.db.begin_write().await.map_err(db)?;
        let mut on: On<'_, B::Db> = On::Conn(&mut *tx);
        let mut done = Ok(0);
        for &id in ids {
            match on
                .execute(&sql, &[Arg::Int(id), Arg::Int(at.as_millis())])
                .await
            {
                Ok(n) => done = done.map(|d| d + n),
                Err(e) => {
                    done = Err(db(e));
                    break;
                }
            }
        }
        end_tx(tx, done).await
    }
}
