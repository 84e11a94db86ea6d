//! Alarms: their rules, their state, their history and the notifier's outbox (issue 10).
//!
//! The policy ([`crate::alarm`]) is pure logic; this trait only keeps what it decided. The
//! state of an alarm and the definition of a rule are JSON text whose format the core owns: the
//! store keeps the bytes and never reads them.
//!
//! An alarm row is one *episode*, from its `raised` event to its `cleared` event. At most one
//! alarm is open (not closed) per machine and rule, which the database guarantees (a unique
//! partial index): opening a second one is [`StoreError::Conflict`](super::StoreError::Conflict).
//! Every change of an alarm is one [`AlarmTransition`], written in one transaction with its
//! events and one outbox row per event, so the notifier never misses an event that was stored
//! and never sees one that was not. Deleting a machine deletes its alarms, their events and
//! outbox rows, and its rules.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::alarm::performance::{self, OpenEpisode, Performance, RangeEvent};
use crate::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
use crate::ids::MachineKey;
use crate::model::Timestamp;

/// The id of a stored alarm (one episode), never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlarmId(pub i64);

impl fmt::Display for AlarmId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stored alarm: one episode of one machine and rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlarm {
    /// Its id.
    pub id: AlarmId,
    /// The machine.
    pub machine: MachineKey,
    /// The rule's id.
    pub rule_id: String,
    /// The name of its state after the last transition.
    pub state: StateName,
    /// Its severity after the last transition.
    pub severity: Severity,
    /// The instant of its `raised` event.
    pub opened_at: Timestamp,
    /// The instant of the event that ended the episode; `None` while open.
    pub closed_at: Option<Timestamp>,
    /// The serialized state (the core's JSON, as it was given).
    pub state_json: String,
    /// The instant of its last event.
    pub last_event_at: Timestamp,
    /// Starts at 1 and grows by one per transition: the `expected_version` of the next one.
    pub version: i64,
}

/// One change of an alarm, written atomically by [`AlarmStore::record_transition`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmTransition {
    /// The machine.
    pub machine: MachineKey,
    /// The rule's id.
    pub rule_id: String,
    /// The open alarm changed; `None` opens a new one.
    pub alarm: Option<AlarmId>,
    /// The version the change was computed from (ignored when opening): another transition
    /// written meanwhile makes this one a conflict.
    pub expected_version: i64,
    /// The state after the transition.
    pub state: StateName,
    /// The severity after the transition.
    pub severity: Severity,
    /// The serialized state after the transition.
    pub state_json: String,
    /// The events, in order; at least one.
    pub events: Vec<AlarmEvent>,
    /// True when the events end the episode: the alarm is closed at the last event's instant.
    pub closes: bool,
}

/// A stored event of an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlarmEvent {
    /// The event's id, increasing in the order events were written.
    pub id: i64,
    /// The alarm it belongs to.
    pub alarm: AlarmId,
    /// The event.
    pub event: AlarmEvent,
}

/// A stored event with its alarm's machine and rule (what
/// [`AlarmStore::alarm_events_between`] returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmEventRecord {
    /// The machine of the alarm.
    pub machine: MachineKey,
    /// The rule of the alarm.
    pub rule_id: String,
    /// The event.
    pub event: StoredAlarmEvent,
}

/// Which alarms [`AlarmStore::list_alarms`] returns, newest first (by id).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlarmQuery {
    /// Only alarms in this state.
    pub state: Option<StateName>,
    /// Only open (`Some(true)`) or closed (`Some(false)`) alarms.
    pub open: Option<bool>,
    /// Only alarms of this machine.
    pub machine: Option<MachineKey>,
    /// Only alarms of this rule.
    pub rule_id: Option<String>,
    /// Only alarms of this severity.
    pub severity: Option<Severity>,
    /// Only alarms opened at or after this instant.
    pub from: Option<Timestamp>,
    /// Only alarms opened before this instant.
    pub to: Option<Timestamp>,
    /// Only alarms with a smaller id (the next page after the last one seen).
    pub before: Option<AlarmId>,
    /// At most this many.
    pub limit: u32,
}

/// A rule as stored: of one machine, or the fleet-wide default (`machine` `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmRuleRecord {
    /// The row's id.
    pub id: i64,
    /// The machine; `None` for the fleet-wide default.
    pub machine: Option<MachineKey>,
    /// The rule's id, unique per machine (and among the fleet defaults).
    pub rule_id: String,
    /// The rule's definition (the core's JSON, as it was given).
    pub definition: String,
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// A rule to store with [`AlarmStore::put_rule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlarmRule {
    /// The machine; `None` for the fleet-wide default.
    pub machine: Option<MachineKey>,
    /// The rule's id.
    pub rule_id: String,
    /// The definition (JSON text).
    pub definition: String,
    /// Whether the rule is evaluated.
    pub enabled: bool,
}

/// A machine taken out of service (in maintenance): its alarms are suppressed until it is put
/// back in service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNote {
    /// The machine.
    pub machine: MachineKey,
    /// Since when.
    pub since: Timestamp,
    /// Who took it out of service.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// An event the notifier has not delivered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The outbox row's id (for [`AlarmStore::mark_delivered`]).
    pub id: i64,
    /// The machine of the alarm.
    pub machine: MachineKey,
    /// The rule of the alarm.
    pub rule_id: String,
    /// The event.
    pub event: StoredAlarmEvent,
    /// When the row was written.
    pub created_at: Timestamp,
}

/// Stores alarms, their events, their rules and the notifier's outbox.
#[async_trait]
pub trait AlarmStore: Send + Sync + 'static {
    /// The open alarm of `machine` and `rule_id`, if any. `NotFound` when the machine is
    /// unknown.
    async fn open_alarm(
        &self,
        machine: &MachineKey,
        rule_id: &str,
    ) -> StoreResult<Option<StoredAlarm>>;

    /// Writes `t` in one transaction: opens the alarm (`t.alarm` `None`) or updates it, inserts
    /// its events and one outbox row per event, and closes the alarm when `t.closes`; returns
    /// the alarm as written. `Conflict` when opening while an alarm of the machine and rule is
    /// open, or when updating an alarm that is closed or whose version is not
    /// `t.expected_version`; then nothing is written. `NotFound` for an unknown machine or
    /// alarm, `Invalid` without events or when `t.alarm` names another machine or rule.
    async fn record_transition(&self, t: &AlarmTransition) -> StoreResult<StoredAlarm>;

    /// The alarm `id` (open or closed).
    async fn get_alarm(&self, id: AlarmId) -> StoreResult<StoredAlarm>;

    /// The events of alarm `id`, in the order written. `NotFound` when the alarm is unknown.
    async fn alarm_events(&self, id: AlarmId) -> StoreResult<Vec<StoredAlarmEvent>>;

    /// Alarms matching `q`, newest first.
    async fn list_alarms(&self, q: &AlarmQuery) -> StoreResult<Vec<StoredAlarm>>;

    /// Every event of every alarm with `from <= at < to` whose kind is one of `kinds` (empty:
    /// none), by time, then in the order written. For the performance figures
    /// ([`crate::alarm::performance`]), which need all of them: there is no limit, so callers
    /// bound the range.
    async fn alarm_events_between(
        &self,
        from: Timestamp,
        to: Timestamp,
        kinds: &[AlarmEventKind],
    ) -> StoreResult<Vec<AlarmEventRecord>>;

    /// The alarms whose episode was open at `at`: raised at or before it and not closed by then
    /// (closed later, or still open), oldest first (by id).
    async fn alarms_open_at(&self, at: Timestamp) -> StoreResult<Vec<StoredAlarm>>;

    /// Stores `rule`, replacing the rule of the same machine (or fleet default) and id.
    /// `NotFound` when the machine is unknown.
    async fn put_rule(&self, rule: &NewAlarmRule) -> StoreResult<AlarmRuleRecord>;

    /// Deletes the rule of `machine` (`None`: the fleet default) and `rule_id`; false when there
    /// was none. Its alarms stay (they are history).
    async fn delete_rule(&self, machine: Option<&MachineKey>, rule_id: &str) -> StoreResult<bool>;

    /// The rules of `machine` plus the fleet defaults (`machine` `None`: only the defaults),
    /// by rule id, the machine's rule before the default of the same id.
    async fn list_rules(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<AlarmRuleRecord>>;

    /// Marks `note.machine` out of service, replacing an earlier note; returns that one.
    /// `NotFound` when the machine is unknown.
    async fn put_out_of_service(&self, note: &ServiceNote) -> StoreResult<Option<ServiceNote>>;

    /// Puts `machine` back in service; returns the note it had (`None`: it was in service).
    /// `NotFound` when the machine is unknown.
    async fn clear_out_of_service(&self, machine: &MachineKey) -> StoreResult<Option<ServiceNote>>;

    /// The machines out of service, by machine key (`machine` `Some`: only that one).
    async fn out_of_service(&self, machine: Option<&MachineKey>) -> StoreResult<Vec<ServiceNote>>;

    /// At most `limit` undelivered outbox rows, oldest first.
    async fn pending_outbox(&self, limit: u32) -> StoreResult<Vec<OutboxEntry>>;

    /// Marks the outbox rows `ids` delivered at `at`; returns how many were pending.
    async fn mark_delivered(&self, ids: &[i64], at: Timestamp) -> StoreResult<u64>;
}

/// Reads the inputs of [`performance`](crate::alarm::performance()) for `[from, to)` from `store` and computes the figures.
///
/// One query for the range's events, one for the episodes open at `to`, and one per episode
/// old enough to stand (for its suppressions).
pub async fn alarm_performance<S: AlarmStore + ?Sized>(
    store: &S,
    from: Timestamp,
    to: Timestamp,
) -> StoreResult<Performance> {
    let events: Vec<RangeEvent> = store
        .alarm_events_between(from, to, performance::PERFORMANCE_KINDS)
        .await?
        .into_iter()
        .map(|e| RangeEvent {
            alarm: e.event.alarm,
            machine: e.machine,
            rule_id: e.rule_id,
            kind: e.event.event.kind,
            at: e.event.event.at,
        })
        .collect();
    let mut open = Vec::new();
    for a in store.alarms_open_at(to).await? {
        if to.as_millis() - a.opened_at.as_millis() <= performance::STANDING_AFTER_MS {
            continue;
        }
        let events = store
            .alarm_events(a.id)
            .await?
            .into_iter()
            .map(|e| (e.event.kind, e.event.at))
            .collect();
        open.push(OpenEpisode {
            alarm: a.id,
            machine: a.machine,
            rule_id: a.rule_id,
            opened_at: a.opened_at,
            events,
        });
    }
    Ok(performance::performance(from, to, &events, &open))
}
