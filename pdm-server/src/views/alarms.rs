//! Views of alarms, their events, rules, out-of-service notes and the performance figures.

use pdm_core::alarm::performance::{Chattering, Performance, Rating, Standing};
use pdm_core::alarm::{AlarmEvent, AlarmState, Rule};
use pdm_core::{AlarmRuleRecord, ServiceNote, StoredAlarm, StoredAlarmEvent};
use serde::Serialize;
use utoipa::ToSchema;

use super::json_of;

/// The shelf of a shelved alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ShelfView {
    /// When the shelf expires, epoch milliseconds.
    pub until: i64,
    /// Why it was shelved.
    pub reason: String,
    /// Who shelved it.
    pub by: String,
}

/// An alarm: one episode of one machine and rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmView {
    /// Its id.
    pub id: i64,
    /// The machine.
    pub machine: String,
    /// The rule's id.
    pub rule: String,
    /// `normal`, `active_unacknowledged`, `active_acknowledged`, `returned_unacknowledged`,
    /// `shelved` or `out_of_service`.
    pub state: &'static str,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    /// When it was raised, epoch milliseconds.
    pub opened_at: i64,
    /// When the episode ended (`null` while open).
    pub closed_at: Option<i64>,
    /// The shelf, while shelved.
    pub shelf: Option<ShelfView>,
    /// Grows by one per transition.
    pub version: i64,
    /// When its last event happened, epoch milliseconds.
    pub last_event_at: i64,
}

/// The shelf in a stored state: read from the state JSON (a monitor, or an alarm), `None` when
/// the state is not shelved or cannot be read (the columns still say `shelved`).
fn shelf_of(state_json: &str) -> Option<ShelfView> {
    let v: serde_json::Value = serde_json::from_str(state_json).ok()?;
    // A monitor keeps its alarm under `alarm`, an alarm its state under `state`.
    let alarm = v.get("alarm").unwrap_or(&v);
    let state: AlarmState = serde_json::from_value(alarm.get("state")?.clone()).ok()?;
    match state {
        AlarmState::Shelved { until, reason, by } => Some(ShelfView {
            until: until.as_millis(),
            reason,
            by,
        }),
        _ => None,
    }
}

impl From<StoredAlarm> for AlarmView {
    fn from(a: StoredAlarm) -> Self {
        Self {
            id: a.id.0,
            machine: a.machine.as_str().to_owned(),
            rule: a.rule_id,
            state: a.state.as_str(),
            severity: a.severity.as_str(),
            opened_at: a.opened_at.as_millis(),
            closed_at: a.closed_at.map(|t| t.as_millis()),
            shelf: if a.state == pdm_core::alarm::StateName::Shelved {
                shelf_of(&a.state_json)
            } else {
                None
            },
            version: a.version,
            last_event_at: a.last_event_at.as_millis(),
        }
    }
}

/// One event of an alarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmEventView {
    /// `raised`, `acknowledged`, `cleared`, ... (docs/alarms.md, "Events").
    pub kind: &'static str,
    /// When, epoch milliseconds.
    pub at: i64,
    /// `system` or the person who acted.
    pub actor: String,
    /// Why, in words.
    pub reason: String,
    /// The alarm's severity after it.
    pub severity: &'static str,
}

impl From<AlarmEvent> for AlarmEventView {
    fn from(e: AlarmEvent) -> Self {
        Self {
            kind: e.kind.as_str(),
            at: e.at.as_millis(),
            actor: e.actor,
            reason: e.reason,
            severity: e.severity.as_str(),
        }
    }
}

impl From<StoredAlarmEvent> for AlarmEventView {
    fn from(e: StoredAlarmEvent) -> Self {
        e.event.into()
    }
}

/// An alarm with its events, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmDetailView {
    /// The alarm.
    #[serde(flatten)]
    pub alarm: AlarmView,
    /// Its events.
    pub events: Vec<AlarmEventView>,
}

/// One page of alarms, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmPageView {
    /// The alarms.
    pub alarms: Vec<AlarmView>,
    /// The `cursor` of the next page (`null`: this is the last).
    pub next: Option<String>,
}

/// The answer to a command: the alarm after it and the events it caused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AlarmUpdateView {
    /// The alarm.
    pub alarm: AlarmView,
    /// The events the command caused (none when it changed nothing).
    pub events: Vec<AlarmEventView>,
}

/// A stored alarm rule.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AlarmRuleView {
    /// The rule's id.
    pub id: String,
    /// `machine` (a machine's own rule) or `fleet` (a fleet-wide default).
    pub scope: &'static str,
    /// The machine, for a machine's rule.
    pub machine: Option<String>,
    /// A machine's rule that replaces the fleet default of the same id (only in a machine's
    /// list; `false` elsewhere).
    pub overrides_default: bool,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// The rule (as `PUT` takes it, without `enabled`).
    pub rule: serde_json::Value,
    /// When it was first stored, epoch milliseconds.
    pub created_at: i64,
    /// When it was last changed, epoch milliseconds.
    pub updated_at: i64,
}

impl From<AlarmRuleRecord> for AlarmRuleView {
    fn from(r: AlarmRuleRecord) -> Self {
        Self {
            id: r.rule_id,
            scope: if r.machine.is_some() {
                "machine"
            } else {
                "fleet"
            },
            machine: r.machine.map(|m| m.as_str().to_owned()),
            overrides_default: false,
            enabled: r.enabled,
            rule: json_of(&r.definition),
            created_at: r.created_at.as_millis(),
            updated_at: r.updated_at.as_millis(),
        }
    }
}

/// The canonical JSON of a rule, as stored.
pub fn rule_definition(rule: &Rule) -> Result<String, serde_json::Error> {
    serde_json::to_string(rule)
}

/// A machine out of service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServiceNoteView {
    /// The machine.
    pub machine: String,
    /// Since when, epoch milliseconds.
    pub since: i64,
    /// Who took it out of service.
    pub by: String,
    /// Why.
    pub reason: String,
}

impl From<ServiceNote> for ServiceNoteView {
    fn from(n: ServiceNote) -> Self {
        Self {
            machine: n.machine.as_str().to_owned(),
            since: n.since.as_millis(),
            by: n.by,
            reason: n.reason,
        }
    }
}

/// The busiest 10-minute interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct PeakView {
    /// Its start, epoch milliseconds.
    pub start: i64,
    /// Alarms in it.
    pub count: u64,
}

/// Time in flood.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct FloodView {
    /// 10-minute intervals with more than 10 alarms.
    pub intervals: u64,
    /// Their length within the range, milliseconds.
    pub duration_ms: i64,
    /// That length as a share of the range, 0 to 1.
    pub share: f64,
}

/// An alarm that chattered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChatteringView {
    /// The machine.
    pub machine: String,
    /// The rule.
    pub rule: String,
    /// Bursts of 3 raise/clear cycles within 60 s.
    pub bursts: u64,
    /// Episodes the policy latched for chattering.
    pub latched: u64,
    /// Its alarms in the range.
    pub raised: u64,
}

impl From<Chattering> for ChatteringView {
    fn from(c: Chattering) -> Self {
        Self {
            machine: c.machine.as_str().to_owned(),
            rule: c.rule_id,
            bursts: c.bursts,
            latched: c.latched,
            raised: c.raised,
        }
    }
}

/// An alarm standing at the end of the range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StandingView {
    /// The alarm's id.
    pub alarm: i64,
    /// The machine.
    pub machine: String,
    /// The rule.
    pub rule: String,
    /// When it was raised, epoch milliseconds.
    pub opened_at: i64,
    /// How long it had been open at `to`, milliseconds.
    pub open_for_ms: i64,
}

impl From<Standing> for StandingView {
    fn from(s: Standing) -> Self {
        Self {
            alarm: s.alarm.0,
            machine: s.machine.as_str().to_owned(),
            rule: s.rule_id,
            opened_at: s.opened_at.as_millis(),
            open_for_ms: s.open_for_ms,
        }
    }
}

/// A figure's EEMUA 191 benchmark.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RatingView {
    /// The verdict (`very_likely_acceptable`, `manageable`, ...).
    pub level: &'static str,
    /// The benchmark, in words.
    pub target: &'static str,
    /// Whether the figure meets it.
    pub met: bool,
}

impl From<Rating> for RatingView {
    fn from(r: Rating) -> Self {
        Self {
            level: r.level,
            target: r.target,
            met: r.met,
        }
    }
}

/// The benchmarks of each figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BenchmarksView {
    /// Of the average rate.
    pub average: RatingView,
    /// Of the peak rate.
    pub peak: RatingView,
    /// Of the time in flood.
    pub flood: RatingView,
    /// Of the chattering alarms.
    pub chattering: RatingView,
    /// Of the standing alarms.
    pub standing: RatingView,
}

/// The EEMUA 191 figures of a range.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PerformanceView {
    /// Start of the range, epoch milliseconds.
    pub from: i64,
    /// End of the range (exclusive), epoch milliseconds.
    pub to: i64,
    /// The counting interval: 600000 (10 minutes).
    pub interval_ms: i64,
    /// Alarms (`raised` events) in the range.
    pub alarms: u64,
    /// Alarms per 10 minutes, on average over the range.
    pub average_per_interval: f64,
    /// The busiest interval (`null` without alarms).
    pub peak: Option<PeakView>,
    /// Time in flood.
    pub flood: FloodView,
    /// Alarms that chattered, most bursts first.
    pub chattering: Vec<ChatteringView>,
    /// Alarms standing at `to`, oldest first.
    pub standing: Vec<StandingView>,
    /// The benchmarks beside the figures.
    pub benchmarks: BenchmarksView,
}

impl From<Performance> for PerformanceView {
    fn from(p: Performance) -> Self {
        Self {
            from: p.from.as_millis(),
            to: p.to.as_millis(),
            interval_ms: p.interval_ms,
            alarms: p.alarms,
            average_per_interval: p.average_per_interval,
            peak: p.peak.map(|k| PeakView {
                start: k.start.as_millis(),
                count: k.count,
            }),
            flood: FloodView {
                intervals: p.flood.intervals,
                duration_ms: p.flood.duration_ms,
                share: p.flood.share,
            },
            chattering: super::views(p.chattering),
            standing: super::views(p.standing),
            benchmarks: BenchmarksView {
                average: p.benchmarks.average.into(),
                peak: p.benchmarks.peak.into(),
                flood: p.benchmarks.flood.into(),
                chattering: p.benchmarks.chattering.into(),
                standing: p.benchmarks.standing.into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdm_core::alarm::{AlarmEventKind, Monitor, Severity, StateName};
    use pdm_core::{AlarmId, MachineKey, Timestamp};
    use serde_json::{json, to_value};

    fn rule() -> Rule {
        serde_json::from_value(json!({"id": "hot", "severity": "high",
            "kind": {"type": "anomaly", "k": 1, "n": 1}}))
        .expect("rule")
    }

    fn stored(state: StateName, state_json: String) -> StoredAlarm {
        StoredAlarm {
            id: AlarmId(7),
            machine: MachineKey::new("pump-1").expect("key"),
            rule_id: "hot".into(),
            state,
            severity: Severity::High,
            opened_at: Timestamp::from_millis(1_000),
            closed_at: None,
            state_json,
            last_event_at: Timestamp::from_millis(2_000),
            version: 3,
        }
    }

    #[test]
    fn alarm_view_json_is_pinned() {
        let mut monitor = Monitor::new(&rule());
        monitor
            .command(
                pdm_core::alarm::Command::Shelve {
                    until: Timestamp::from_millis(9_000),
                    reason: "noisy".into(),
                    by: "ann".into(),
                },
                Timestamp::from_millis(2_000),
            )
            .expect("shelve");
        let json = serde_json::to_string(&monitor).expect("ser");
        let view = AlarmView::from(stored(StateName::Shelved, json));
        assert_eq!(
            to_value(&view).expect("json"),
            json!({"id": 7, "machine": "pump-1", "rule": "hot", "state": "shelved",
                "severity": "high", "opened_at": 1000, "closed_at": null,
                "shelf": {"until": 9000, "reason": "noisy", "by": "ann"},
                "version": 3, "last_event_at": 2000})
        );
        // Not shelved: no shelf, whatever the JSON.
        let view = AlarmView::from(stored(StateName::ActiveUnacked, "{}".into()));
        assert_eq!(view.shelf, None);
        let e = AlarmEventView::from(AlarmEvent {
            kind: AlarmEventKind::Acknowledged,
            at: Timestamp::from_millis(5),
            actor: "ann".into(),
            reason: "seen".into(),
            severity: Severity::Low,
        });
        assert_eq!(
            to_value(e).expect("json"),
            json!({"kind": "acknowledged", "at": 5, "actor": "ann", "reason": "seen",
                "severity": "low"})
        );
    }

    #[test]
    fn rule_and_note_views_are_pinned() {
        let r = AlarmRuleView::from(AlarmRuleRecord {
            id: 1,
            machine: None,
            rule_id: "hot".into(),
            definition: rule_definition(&rule()).expect("ser"),
            enabled: true,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
        });
        assert_eq!(
            to_value(r).expect("json"),
            json!({"id": "hot", "scope": "fleet", "machine": null, "overrides_default": false,
                "enabled": true,
                "rule": {"id": "hot", "kind": {"type": "anomaly", "k": 1, "n": 1},
                    "severity": "high", "escalation": []},
                "created_at": 1, "updated_at": 2})
        );
        let n = ServiceNoteView::from(ServiceNote {
            machine: MachineKey::new("pump-1").expect("key"),
            since: Timestamp::from_millis(3),
            by: "bob".into(),
            reason: "bearing swap".into(),
        });
        assert_eq!(
            to_value(n).expect("json"),
            json!({"machine": "pump-1", "since": 3, "by": "bob", "reason": "bearing swap"})
        );
    }
}
