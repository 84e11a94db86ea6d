//! The alarm vocabulary: severities, ISA-18.2 states, events and the errors of impossible
//! transitions.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// A name that is not one of a closed set (a severity, a state, an event kind), with the names
/// that would do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{got}` (expected one of {})", .expected.join(", "))]
pub struct UnknownName {
    /// What was being parsed (`severity`, `alarm state`, `alarm event kind`).
    pub what: &'static str,
    /// The name given.
    pub got: String,
    /// The allowed names.
    pub expected: &'static [&'static str],
}

/// Defines a fieldless enum's stable snake_case names (`as_str`, `parse`, `ALL`).
macro_rules! names {
    ($ty:ident, $what:literal, $($variant:ident => $name:literal),+ $(,)?) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable name (API, storage, webhooks).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The value named `s` (exactly as [`as_str`](Self::as_str) writes it).
            pub fn parse(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        got: s.to_owned(),
                        expected: &[$($name),+],
                    }),
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                Self::parse(s)
            }
        }
    };
}
pub(crate) use names;

/// How bad an alarm is; ordered from `Low` to `Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look when convenient.
    Low,
    /// Needs attention within the shift.
    Medium,
    /// Needs attention soon.
    High,
    /// Needs attention now.
    Critical,
}

names!(Severity, "severity", Low => "low", Medium => "medium", High => "high", Critical => "critical");

/// The state of one alarm (one machine and rule), after ISA-18.2.
///
/// The table of transitions is in `docs/alarms.md`; [`Alarm::apply`](super::Alarm::apply)
/// implements it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum AlarmState {
    /// The condition is absent and nothing awaits acknowledgement.
    Normal,
    /// The condition is present and nobody has acknowledged it yet.
    #[serde(rename = "active_unacknowledged")]
    ActiveUnacked,
    /// The condition is present and somebody acknowledged it.
    #[serde(rename = "active_acknowledged")]
    ActiveAcked,
    /// The condition ended before anybody acknowledged it.
    #[serde(rename = "returned_unacknowledged")]
    ReturnedUnacked,
    /// Suppressed by a person until `until` (a nuisance alarm being dealt with).
    Shelved {
        /// When the shelf expires (the alarm is then re-evaluated).
        until: Timestamp,
        /// Why it was shelved.
        reason: String,
        /// Who shelved it.
        by: String,
    },
    /// Suppressed while the machine is out of service (in maintenance).
    OutOfService,
}

impl AlarmState {
    /// The state's name, without the shelf's details.
    pub fn name(&self) -> StateName {
        match self {
            AlarmState::Normal => StateName::Normal,
            AlarmState::ActiveUnacked => StateName::ActiveUnacked,
            AlarmState::ActiveAcked => StateName::ActiveAcked,
            AlarmState::ReturnedUnacked => StateName::ReturnedUnacked,
            AlarmState::Shelved { .. } => StateName::Shelved,
            AlarmState::OutOfService => StateName::OutOfService,
        }
    }

    /// The stable name (`normal`, `active_unacknowledged`, ...).
    pub fn as_str(&self) -> &'static str {
        self.name().as_str()
    }

    /// The state named `name`; `shelf` (until, reason, by) is required for `shelved` and
    /// refused for the others, so a stored row always gives back the state it was written from.
    pub fn from_parts(
        name: &str,
        shelf: Option<(Timestamp, String, String)>,
    ) -> Result<Self, UnknownName> {
        let parsed = StateName::parse(name)?;
        let unknown = || UnknownName {
            what: "alarm state",
            got: name.to_owned(),
            expected: if parsed == StateName::Shelved {
                &["shelved with its until, reason and by"]
            } else {
                &["a state without shelf details"]
            },
        };
        Ok(match (parsed, shelf) {
            (StateName::Shelved, Some((until, reason, by))) => {
                AlarmState::Shelved { until, reason, by }
            }
            (StateName::Shelved, None) | (_, Some(_)) => return Err(unknown()),
            (StateName::Normal, None) => AlarmState::Normal,
            (StateName::ActiveUnacked, None) => AlarmState::ActiveUnacked,
            (StateName::ActiveAcked, None) => AlarmState::ActiveAcked,
            (StateName::ReturnedUnacked, None) => AlarmState::ReturnedUnacked,
            (StateName::OutOfService, None) => AlarmState::OutOfService,
        })
    }

    /// Active: the alarm annunciates a present condition.
    pub fn is_active(&self) -> bool {
        matches!(self, AlarmState::ActiveUnacked | AlarmState::ActiveAcked)
    }

    /// Suppressed: shelved or out of service.
    pub fn is_suppressed(&self) -> bool {
        matches!(self, AlarmState::Shelved { .. } | AlarmState::OutOfService)
    }
}

/// The name of an [`AlarmState`] (for filters such as `?state=`, and the store's column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// [`AlarmState::Normal`].
    Normal,
    /// [`AlarmState::ActiveUnacked`].
    #[serde(rename = "active_unacknowledged")]
    ActiveUnacked,
    /// [`AlarmState::ActiveAcked`].
    #[serde(rename = "active_acknowledged")]
    ActiveAcked,
    /// [`AlarmState::ReturnedUnacked`].
    #[serde(rename = "returned_unacknowledged")]
    ReturnedUnacked,
    /// [`AlarmState::Shelved`].
    Shelved,
    /// [`AlarmState::OutOfService`].
    OutOfService,
}

names!(StateName, "alarm state",
    Normal => "normal",
    ActiveUnacked => "active_unacknowledged",
    ActiveAcked => "active_acknowledged",
    ReturnedUnacked => "returned_unacknowledged",
    Shelved => "shelved",
    OutOfService => "out_of_service",
);

/// What happened to an alarm. `raised` opens an episode and `cleared` closes it, alternately
/// (the store opens and closes its alarm row on them); the other kinds happen in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlarmEventKind {
    /// The condition appeared: a new episode opened.
    Raised,
    /// The severity rose (duration or magnitude escalation).
    Escalated,
    /// The severity fell back (the magnitude went down).
    DeEscalated,
    /// Somebody acknowledged the alarm.
    Acknowledged,
    /// The condition ended before acknowledgement (active unacknowledged to returned
    /// unacknowledged).
    Returned,
    /// The condition came back before acknowledgement (returned unacknowledged to active
    /// unacknowledged): the same episode.
    Reactivated,
    /// Back to normal: the episode closed.
    Cleared,
    /// Somebody shelved the alarm.
    Shelved,
    /// The shelf ended: by a person, or at its expiry (actor `system`).
    Unshelved,
    /// The machine went out of service (maintenance).
    OutOfService,
    /// The machine came back in service.
    InService,
    /// The alarm chattered (3 raise/clear cycles within a minute) and is latched active.
    Latched,
}

names!(AlarmEventKind, "alarm event kind",
    Raised => "raised",
    Escalated => "escalated",
    DeEscalated => "de_escalated",
    Acknowledged => "acknowledged",
    Returned => "returned",
    Reactivated => "reactivated",
    Cleared => "cleared",
    Shelved => "shelved",
    Unshelved => "unshelved",
    OutOfService => "out_of_service",
    InService => "in_service",
    Latched => "latched",
);

/// The actor of the transitions the policy makes by itself.
pub const SYSTEM: &str = "system";

/// One transition of an alarm: what, when, who and why, and the severity after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEvent {
    /// What happened.
    pub kind: AlarmEventKind,
    /// When (the input's timestamp, never a clock read by the policy).
    pub at: Timestamp,
    /// [`SYSTEM`] or the user who acted.
    pub actor: String,
    /// Why, in words.
    pub reason: String,
    /// The alarm's severity after the transition.
    pub severity: Severity,
}

/// A command that the alarm's state does not allow (the server answers 409 Conflict).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// Acknowledge of an alarm with nothing to acknowledge.
    #[error("cannot acknowledge an alarm that is {state}: only active_unacknowledged and returned_unacknowledged alarms await acknowledgement")]
    NothingToAcknowledge {
        /// The alarm's state.
        state: StateName,
    },
    /// Unshelve of an alarm that is not shelved.
    #[error("cannot unshelve an alarm that is {state}: it is not shelved")]
    NotShelved {
        /// The alarm's state.
        state: StateName,
    },
    /// Shelve of an alarm out of service.
    #[error(
        "cannot shelve an alarm that is out_of_service: put the machine back in service first"
    )]
    ShelveOutOfService,
    /// A shelf that would end before it starts.
    #[error("shelve until {until} must be after the time of the request ({at})")]
    ShelfInPast {
        /// The requested expiry (ms since the epoch).
        until: i64,
        /// The time of the request (ms since the epoch).
        at: i64,
    },
    /// Out of service on an alarm already out of service.
    #[error("the alarm is already out_of_service")]
    AlreadyOutOfService,
    /// In service on an alarm that is not out of service.
    #[error("cannot put back in service an alarm that is {state}: it is not out_of_service")]
    NotOutOfService {
        /// The alarm's state.
        state: StateName,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_and_named() {
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Ok(*s));
            let json = serde_json::to_string(s).expect("ser");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        let err = Severity::parse("urgent").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown severity `urgent` (expected one of low, medium, high, critical)"
        );
    }

    #[test]
    fn state_and_kind_names_round_trip() {
        for n in StateName::ALL {
            assert_eq!(StateName::parse(n.as_str()), Ok(*n));
            assert_eq!(
                serde_json::to_string(n).expect("ser"),
                format!("\"{}\"", n.as_str())
            );
        }
        for k in AlarmEventKind::ALL {
            assert_eq!(AlarmEventKind::parse(k.as_str()), Ok(*k));
            assert_eq!(
                serde_json::to_string(k).expect("ser"),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(AlarmState::ActiveUnacked.as_str(), "active_unacknowledged");
        assert!(StateName::parse("active").is_err());
    }

    #[test]
    fn states_rebuild_from_their_parts() {
        let shelf = (
            Timestamp::from_millis(5),
            "noisy".to_owned(),
            "ann".to_owned(),
        );
        assert_eq!(
            AlarmState::from_parts("shelved", Some(shelf.clone())),
            Ok(AlarmState::Shelved {
                until: Timestamp::from_millis(5),
                reason: "noisy".into(),
                by: "ann".into()
            })
        );
        assert!(AlarmState::from_parts("shelved", None).is_err());
        assert!(AlarmState::from_parts("normal", Some(shelf)).is_err());
        assert_eq!(
            AlarmState::from_parts("out_of_service", None),
            Ok(AlarmState::OutOfService)
        );
        let json = serde_json::to_string(&AlarmState::ReturnedUnacked).expect("ser");
        assert_eq!(json, r#"{"state":"returned_unacknowledged"}"#);
    }
}
