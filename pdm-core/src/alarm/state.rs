//! The alarm state machine (ISA-18.2) of one machine and rule.

use serde::{Deserialize, Serialize};

use super::condition::{Condition, ConditionState, Input};
use super::rule::{Escalation, Rule};
use super::types::{AlarmEvent, AlarmEventKind, AlarmState, Severity, TransitionError, SYSTEM};
use crate::model::Timestamp;

/// How far (as a share of its level) the magnitude must fall below a magnitude step that was
/// reached before the alarm de-escalates from it.
pub const ESCALATION_DEADBAND: f64 = 0.1;

/// Raise/clear cycles that latch a chattering alarm.
pub const CHATTER_CYCLES: usize = 3;
/// The window of those cycles, and how long a latched alarm's condition must stay inactive
/// (after acknowledgement) to unlatch, in milliseconds.
pub const CHATTER_WINDOW_MS: i64 = 60_000;

/// What an alarm is told: an observation of its condition, the passing of time, or a person's
/// command.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// The condition's current verdict (from [`ConditionState::evaluate`]).
    Condition(Condition),
    /// Time passed: shelf expiry, escalation by duration, unlatching.
    Tick,
    /// A person acknowledges the alarm.
    Acknowledge {
        /// Who.
        by: String,
    },
    /// A person shelves the alarm until `until`.
    Shelve {
        /// When the shelf expires; after the command's time.
        until: Timestamp,
        /// Why.
        reason: String,
        /// Who.
        by: String,
    },
    /// A person ends the shelf early.
    Unshelve {
        /// Who.
        by: String,
    },
    /// The machine goes out of service (maintenance): the alarm is suppressed.
    OutOfService {
        /// Who.
        by: String,
        /// Why.
        reason: String,
    },
    /// The machine is back in service: the alarm is re-evaluated on its condition.
    InService {
        /// Who.
        by: String,
    },
}

/// The alarm of one machine and rule: its ISA-18.2 state and what the policy needs to move it
/// (the last condition, the episode, escalation, chattering). The store persists it whole
/// (it is `serde`) beside its state's columns.
///
/// An *episode* runs from a `raised` event to a `cleared` event; they alternate, so the store
/// opens one alarm row on `raised` and closes it on `cleared` (at most one open per machine and
/// rule).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    base: Severity,
    escalation: Vec<Escalation>,
    state: AlarmState,
    severity: Severity,
    condition: Condition,
    /// When the condition last changed (for unlatching).
    condition_since: Option<Timestamp>,
    /// When the alarm last became active (for escalation by duration).
    active_since: Option<Timestamp>,
    open: bool,
    latched: bool,
    /// The start of the running raise/clear cycle.
    cycle_start: Option<Timestamp>,
    /// The starts of the recent complete cycles.
    cycles: Vec<Timestamp>,
    /// The latest time applied: events never go back in time.
    last: Option<Timestamp>,
}

impl Alarm {
    /// A normal alarm for `rule`.
    pub fn new(rule: &Rule) -> Self {
        Self {
            base: rule.severity,
            escalation: rule.escalation.clone(),
            state: AlarmState::Normal,
            severity: rule.severity,
            condition: Condition::default(),
            condition_since: None,
            active_since: None,
            open: false,
            latched: false,
            cycle_start: None,
            cycles: Vec::new(),
            last: None,
        }
    }

    /// Takes times before `at` as `at` from now on, as [`Self::apply`] does with its own
    /// inputs: for an alarm whose previous episode (of the same machine and rule) ended at
    /// `at`, so the next episode never opens before the last one closed, even when a late
    /// reading or a person's command on the wall clock wrote that close.
    pub fn not_before(&mut self, at: Timestamp) {
        self.last = Some(self.last.map_or(at, |last| last.max(at)));
    }

    /// Takes an edited rule's severity and escalation; they apply from the next input.
    pub fn set_rule(&mut self, rule: &Rule) {
        self.base = rule.severity;
        self.escalation = rule.escalation.clone();
    }

    /// The ISA-18.2 state.
    pub fn state(&self) -> &AlarmState {
        &self.state
    }

    /// The current severity (in normal: the last episode's).
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// The last condition observed (also while suppressed).
    pub fn condition(&self) -> Condition {
        self.condition
    }

    /// An episode is open: raised and not yet cleared (it may be shelved or out of service).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Latched by chattering.
    pub fn is_latched(&self) -> bool {
        self.latched
    }

    /// Applies `cmd` at `at`; returns the events of the transitions, in order (none when
    /// nothing changed). An impossible command returns a [`TransitionError`] and changes
    /// nothing.
    ///
    /// `at` earlier than a previous input's is taken as that time, so an alarm's events are
    /// always in time order (a late reading after a person's command, say).
    pub fn apply(
        &mut self,
        cmd: Command,
        at: Timestamp,
    ) -> Result<Vec<AlarmEvent>, TransitionError> {
        let at = self.last.map_or(at, |last| at.max(last));
        let before = self.clone();
        let mut out = Vec::new();
        match self.step(cmd, at, &mut out) {
            Ok(()) => {
                self.last = Some(at);
                Ok(out)
            }
            Err(e) => {
                *self = before;
                Err(e)
            }
        }
    }

    fn step(
        &mut self,
        cmd: Command,
        at: Timestamp,
        out: &mut Vec<AlarmEvent>,
    ) -> Result<(), TransitionError> {
        // A shelf that expired is gone before anything else is judged.
        self.expire(at, out);
        match cmd {
            Command::Condition(c) => self.observe(c, at, out),
            Command::Tick => {}
            Command::Acknowledge { by } => match self.state {
                AlarmState::ActiveUnacked => {
                    self.state = AlarmState::ActiveAcked;
                    self.emit(out, AlarmEventKind::Acknowledged, at, &by, "acknowledged");
                }
                AlarmState::ReturnedUnacked => {
                    self.state = AlarmState::Normal;
                    self.emit(out, AlarmEventKind::Acknowledged, at, &by, "acknowledged");
                    self.close(out, at, &by, "acknowledged after the condition ended");
                }
                _ => {
                    return Err(TransitionError::NothingToAcknowledge {
                        state: self.state.name(),
                    })
                }
            },
            Command::Shelve { until, reason, by } => {
                if self.state == AlarmState::OutOfService {
                    return Err(TransitionError::ShelveOutOfService);
                }
                if until <= at {
                    return Err(TransitionError::ShelfInPast {
                        until: until.as_millis(),
                        at: at.as_millis(),
                    });
                }
                self.state = AlarmState::Shelved {
                    until,
                    reason: reason.clone(),
                    by: by.clone(),
                };
                self.reset_chatter();
                self.emit(out, AlarmEventKind::Shelved, at, &by, &reason);
            }
            Command::Unshelve { by } => {
                if !matches!(self.state, AlarmState::Shelved { .. }) {
                    return Err(TransitionError::NotShelved {
                        state: self.state.name(),
                    });
                }
                self.emit(out, AlarmEventKind::Unshelved, at, &by, "unshelved");
                self.reevaluate(at, out);
            }
            Command::OutOfService { by, reason } => {
                if self.state == AlarmState::OutOfService {
                    return Err(TransitionError::AlreadyOutOfService);
                }
                self.state = AlarmState::OutOfService;
                self.reset_chatter();
                self.emit(out, AlarmEventKind::OutOfService, at, &by, &reason);
            }
            Command::InService { by } => {
                if self.state != AlarmState::OutOfService {
                    return Err(TransitionError::NotOutOfService {
                        state: self.state.name(),
                    });
                }
                self.emit(out, AlarmEventKind::InService, at, &by, "back in service");
                self.reevaluate(at, out);
            }
        }
        self.escalate(at, out);
        self.unlatch(at, out);
        Ok(())
    }

    fn emit(
        &self,
        out: &mut Vec<AlarmEvent>,
        kind: AlarmEventKind,
        at: Timestamp,
        actor: &str,
        reason: &str,
    ) {
        out.push(AlarmEvent {
            kind,
            at,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            severity: self.severity,
        });
    }

    fn expire(&mut self, at: Timestamp, out: &mut Vec<AlarmEvent>) {
        if let AlarmState::Shelved { until, .. } = self.state {
            if at >= until {
                self.emit(out, AlarmEventKind::Unshelved, at, SYSTEM, "shelf expired");
                self.reevaluate(at, out);
            }
        }
    }

    fn reset_chatter(&mut self) {
        self.latched = false;
        self.cycles.clear();
        self.cycle_start = None;
    }

    /// Opens an episode (normal to active unacknowledged).
    fn raise(&mut self, at: Timestamp, out: &mut Vec<AlarmEvent>, reason: &str) {
        self.state = AlarmState::ActiveUnacked;
        self.active_since = Some(at);
        self.severity = self.target(at);
        self.open = true;
        self.emit(out, AlarmEventKind::Raised, at, SYSTEM, reason);
    }

    /// Closes the episode (the state is already normal).
    fn close(&mut self, out: &mut Vec<AlarmEvent>, at: Timestamp, actor: &str, reason: &str) {
        self.state = AlarmState::Normal;
        self.active_since = None;
        if self.open {
            self.open = false;
            self.emit(out, AlarmEventKind::Cleared, at, actor, reason);
        }
    }

    /// After a suppression ends: the state the condition calls for.
    fn reevaluate(&mut self, at: Timestamp, out: &mut Vec<AlarmEvent>) {
        if self.condition.active {
            self.cycle_start = Some(at);
            if self.open {
                self.state = AlarmState::ActiveUnacked;
                self.active_since = Some(at);
            } else {
                self.raise(at, out, "condition present when the alarm came back");
            }
        } else {
            self.close(out, at, SYSTEM, "condition absent when the alarm came back");
        }
    }

    fn observe(&mut self, c: Condition, at: Timestamp, out: &mut Vec<AlarmEvent>) {
        let was = self.condition.active;
        self.condition = c;
        if was != c.active {
            self.condition_since = Some(at);
        }
        if self.state.is_suppressed() || was == c.active {
            return;
        }
        if c.active {
            self.cycle_start = Some(at);
            if self.latched {
                return;
            }
            match self.state {
                AlarmState::Normal => self.raise(at, out, "condition active"),
                AlarmState::ReturnedUnacked => {
                    self.state = AlarmState::ActiveUnacked;
                    self.active_since = Some(at);
                    self.severity = self.target(at);
                    self.emit(
                        out,
                        AlarmEventKind::Reactivated,
                        at,
                        SYSTEM,
                        "condition active again before acknowledgement",
                    );
                }
                _ => {}
            }
        } else {
            if let Some(start) = self.cycle_start.take() {
                self.cycles.push(start);
            }
            let window_start = at.as_millis().saturating_sub(CHATTER_WINDOW_MS);
            self.cycles.retain(|s| s.as_millis() >= window_start);
            if self.latched {
                return;
            }
            if self.cycles.len() >= CHATTER_CYCLES && self.state.is_active() {
                self.latched = true;
                let reason = format!(
                    "chattering: {} raise/clear cycles within {} s; latched until acknowledged and inactive for {} s",
                    self.cycles.len(),
                    CHATTER_WINDOW_MS / 1_000,
                    CHATTER_WINDOW_MS / 1_000
                );
                self.emit(out, AlarmEventKind::Latched, at, SYSTEM, &reason);
                return;
            }
            match self.state {
                AlarmState::ActiveUnacked => {
                    self.state = AlarmState::ReturnedUnacked;
                    self.active_since = None;
                    self.emit(
                        out,
                        AlarmEventKind::Returned,
                        at,
                        SYSTEM,
                        "condition ended before acknowledgement",
                    );
                }
                AlarmState::ActiveAcked => self.close(out, at, SYSTEM, "condition ended"),
                _ => {}
            }
        }
    }

    /// The severity the escalation steps call for at `at` (for an active alarm).
    fn target(&self, at: Timestamp) -> Severity {
        let active_for = self
            .active_since
            .map(|s| at.as_millis().saturating_sub(s.as_millis()));
        self.escalation
            .iter()
            .filter(|step| match step {
                Escalation::Duration { after_ms, .. } => {
                    active_for.is_some_and(|d| d >= i64::try_from(*after_ms).unwrap_or(i64::MAX))
                }
                Escalation::Magnitude { at_least, severity } => {
                    // A step already reached holds down to ESCALATION_DEADBAND below its
                    // level, so a magnitude hovering at the level does not flap.
                    let level = if self.severity >= *severity {
                        at_least * (1.0 - ESCALATION_DEADBAND)
                    } else {
                        *at_least
                    };
                    self.condition.active && self.condition.magnitude >= level
                }
            })
            .map(Escalation::severity)
            .fold(self.base, Severity::max)
    }

    fn escalate(&mut self, at: Timestamp, out: &mut Vec<AlarmEvent>) {
        if !self.state.is_active() {
            return;
        }
        let target = self.target(at);
        if target == self.severity {
            return;
        }
        let kind = if target > self.severity {
            AlarmEventKind::Escalated
        } else {
            AlarmEventKind::DeEscalated
        };
        let reason = format!(
            "{} to {target} (magnitude {}, active for {} ms)",
            if target > self.severity {
                "escalated"
            } else {
                "de-escalated"
            },
            self.condition.magnitude,
            self.active_since
                .map_or(0, |s| at.as_millis().saturating_sub(s.as_millis()))
        );
        self.severity = target;
        self.emit(out, kind, at, SYSTEM, &reason);
    }

    /// A latched alarm unlatches (and clears) once acknowledged and its condition has been
    /// inactive for [`CHATTER_WINDOW_MS`].
    fn unlatch(&mut self, at: Timestamp, out: &mut Vec<AlarmEvent>) {
        if !self.latched || self.state != AlarmState::ActiveAcked || self.condition.active {
            return;
        }
        let quiet = self
            .condition_since
            .map_or(0, |s| at.as_millis().saturating_sub(s.as_millis()));
        if quiet >= CHATTER_WINDOW_MS {
            self.reset_chatter();
            self.close(
                out,
                at,
                SYSTEM,
                "chattering ended: acknowledged and inactive for 60 s",
            );
        }
    }
}

/// A rule's condition and alarm together, for one machine: inputs in, alarm events out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    condition: ConditionState,
    alarm: Alarm,
}

impl Monitor {
    /// A monitor of `rule`, its alarm normal.
    pub fn new(rule: &Rule) -> Self {
        Self {
            condition: ConditionState::new(rule.kind.clone()),
            alarm: Alarm::new(rule),
        }
    }

    /// Takes an edited rule: its severity and escalation apply from the next input; a changed
    /// condition kind (or parameters) restarts the condition's evaluation, as if no input had
    /// been seen, and the alarm follows from the next input.
    pub fn set_rule(&mut self, rule: &Rule) {
        self.alarm.set_rule(rule);
        if self.condition.kind() != &rule.kind {
            self.condition = ConditionState::new(rule.kind.clone());
        }
    }

    /// The alarm.
    pub fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    /// The condition's evaluation state.
    pub fn condition(&self) -> &ConditionState {
        &self.condition
    }

    /// Takes the alarm of another copy of this monitor (the store's, after someone else
    /// changed it), keeping this one's condition evaluation (its k-of-n window and delays are
    /// newer than the stored copy's).
    pub fn replace_alarm(&mut self, alarm: Alarm) {
        self.alarm = alarm;
    }

    /// Feeds one input to the condition and its verdict to the alarm (a tick also runs the
    /// alarm's timers); returns the alarm's events.
    pub fn observe(&mut self, input: &Input<'_>) -> Vec<AlarmEvent> {
        let c = self.condition.evaluate(input);
        // Observations and ticks are never refused; an error here would be a bug.
        self.alarm
            .apply(Command::Condition(c), input.ts())
            .unwrap_or_default()
    }

    /// Applies a person's command (or any [`Command`]) to the alarm.
    pub fn command(
        &mut self,
        cmd: Command,
        at: Timestamp,
    ) -> Result<Vec<AlarmEvent>, TransitionError> {
        self.alarm.apply(cmd, at)
    }
}
