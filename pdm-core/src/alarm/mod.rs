//! The alarm policy: rules, condition evaluation and the ISA-18.2 alarm state machine.
//!
//! Pure, deterministic logic: no I/O, no clock (every input carries its time), no async. The
//! store persists [`Alarm`]s and their [`AlarmEvent`]s in the same transaction (at most one open
//! alarm per machine and rule); the server turns a [`TransitionError`] into 409 Conflict.
//! `docs/alarms.md` is the contract: states, the transition table, rules, delays, deadband,
//! chattering and escalation.
//!
//! ```
//! use pdm_core::alarm::{AlarmEventKind, Command, Input, Monitor, Rule};
//! # use pdm_core::{MachineKey, Prediction, Timestamp};
//! # use pdm_core::store::ModelId;
//! # fn prediction(ts: i64, score: f64) -> Prediction {
//! #     Prediction { machine: MachineKey::new("pump-1").unwrap(), ts: Timestamp::from_millis(ts),
//! #         model: ModelId(1), score, threshold: 1.0, anomalous: score > 1.0,
//! #         contributions: vec![], health: None, rul_s: None }
//! # }
//!
//! // 2 of the last 3 predictions anomalous raise a medium alarm, high at twice the threshold.
//! let rule: Rule = serde_json::from_str(r#"{
//!     "id": "bearing", "severity": "medium",
//!     "kind": {"type": "anomaly", "k": 2, "n": 3},
//!     "escalation": [{"by": "magnitude", "at_least": 2.0, "severity": "high"}]
//! }"#)?;
//! rule.check()?;
//!
//! let mut monitor = Monitor::new(&rule);
//! let mut kinds = vec![];
//! for (ts, score) in [(0, 0.5), (1_000, 1.5), (2_000, 1.2), (3_000, 2.5), (4_000, 0.4), (5_000, 0.3)] {
//!     for e in monitor.observe(&Input::Prediction(&prediction(ts, score))) {
//!         kinds.push((e.kind, e.severity.as_str()));
//!     }
//! }
//! assert_eq!(kinds, [
//!     (AlarmEventKind::Raised, "medium"),
//!     (AlarmEventKind::Escalated, "high"),
//!     (AlarmEventKind::DeEscalated, "medium"),
//!     (AlarmEventKind::Returned, "medium"),
//! ]);
//! // A person acknowledges the returned alarm: it is normal again.
//! let events = monitor.command(Command::Acknowledge { by: "ann".into() }, Timestamp::from_millis(6_000))?;
//! assert_eq!(events.last().map(|e| e.kind), Some(AlarmEventKind::Cleared));
//! // Acknowledging it again is refused (409 on the server).
//! assert!(monitor.command(Command::Acknowledge { by: "ann".into() }, Timestamp::from_millis(7_000)).is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod condition;
mod defaults;
pub mod performance;
mod rule;
mod state;
pub(crate) mod types;

#[cfg(test)]
mod tests;

pub use condition::{Condition, ConditionState, Input};
pub use defaults::{default_rules, ANOMALY_RULE, FLATLINE_RULE, HEALTH_RULE, RUL_RULE, STALE_RULE};
pub use performance::{performance, Performance};
pub use rule::{Escalation, Rule, RuleKind, MAX_DURATION_MS, MAX_ID_LEN, MAX_WINDOW};
pub use state::{Alarm, Command, Monitor, CHATTER_CYCLES, CHATTER_WINDOW_MS, ESCALATION_DEADBAND};
pub use types::{
    AlarmEvent, AlarmEventKind, AlarmState, Severity, StateName, TransitionError, UnknownName,
    SYSTEM,
};
