//! The fleet-wide default rules: what a fresh installation evaluates on every machine.
//!
//! They are written for the live path's default rows (one prediction per second,
//! `live.sample_period_ms = 1000`): the anomaly rule counts predictions, so on a machine scored
//! at another period its window spans another time. `docs/alarms.md` ("Fleet defaults") gives
//! each rule's reasoning; `docs/evaluation.md` ("Fleet scenario") how they were tuned (on
//! simulator seeds that are not the reported one) and what they achieve.

use super::rule::{Escalation, Rule, RuleKind};
use super::types::Severity;

/// The identifier of the default model-anomaly rule.
pub const ANOMALY_RULE: &str = "model-anomaly";
/// The identifier of the default health rule.
pub const HEALTH_RULE: &str = "health-low";
/// The identifier of the default remaining-useful-life rule.
pub const RUL_RULE: &str = "rul-short";
/// The identifier of the default stale-data rule.
pub const STALE_RULE: &str = "data-stale";
/// The identifier of the default frozen-value rule.
pub const FLATLINE_RULE: &str = "sensor-flatline";

/// The rules a fresh installation evaluates on every machine (the server seeds them as the
/// fleet defaults); each passes [`Rule::check`].
///
/// - `model-anomaly` (medium): 45 of the last 60 predictions anomalous, i.e. most of a
///   minute at one row per second. A single anomalous row is noise; a machine that stays
///   beyond its limit for three quarters of a minute is not. High when the score is three
///   times the threshold or the alarm has lasted an hour; critical at ten times the threshold.
/// - `health-low` (high): the health index below 0.3 (the smoothed score 1.4 times the
///   threshold), clearing at 0.4; critical below 0.1.
/// - `rul-short` (high): the estimated remaining useful life within 24 hours; critical within
///   4 hours. The live models give an estimate only while health is degraded, so a healthy
///   machine never raises it.
/// - `data-stale` (low): channels without a value for 10 minutes past the live path's own
///   gap limit; medium after an hour.
/// - `sensor-flatline` (low): any sensor repeating the very same value for 10 minutes while
///   readings keep coming (`epsilon` 0); medium after an hour. A live analog measurement
///   carries noise of many steps of its resolution, so the same value for ten minutes means
///   the transmitter, its input card or a gateway holds a last value: the data is missing as
///   surely as when nothing arrives, hence the stale rule's ten minutes. A channel that is
///   constant by nature (a stopped machine's zero, a setpoint) takes a machine rule of the same
///   id, disabled.
pub fn default_rules() -> Vec<Rule> {
    vec![
        Rule {
            id: ANOMALY_RULE.to_owned(),
            kind: RuleKind::Anomaly { k: 45, n: 60 },
            severity: Severity::Medium,
            escalation: vec![
                Escalation::Magnitude {
                    at_least: 3.0,
                    severity: Severity::High,
                },
                Escalation::Duration {
                    after_ms: 3_600_000,
                    severity: Severity::High,
                },
                Escalation::Magnitude {
                    at_least: 10.0,
                    severity: Severity::Critical,
                },
            ],
        },
        Rule {
            id: HEALTH_RULE.to_owned(),
            kind: RuleKind::HealthBelow {
                level: 0.3,
                deadband: 0.1,
            },
            severity: Severity::High,
            // Magnitude is `level - health`: 0.2 is health below 0.1.
            escalation: vec![Escalation::Magnitude {
                at_least: 0.2,
                severity: Severity::Critical,
            }],
        },
        Rule {
            id: RUL_RULE.to_owned(),
            // Estimates exist only while the machine is degraded: near that level they come
            // and go, so the alarm clears after ten minutes without one within the horizon.
            kind: RuleKind::RulWithin {
                horizon_s: 86_400.0,
                off_delay_ms: 600_000,
            },
            severity: Severity::High,
            // Magnitude is `horizon_s - rul_s`: 20 hours into the 24 is 4 hours left.
            escalation: vec![Escalation::Magnitude {
                at_least: 72_000.0,
                severity: Severity::Critical,
            }],
        },
        Rule {
            id: STALE_RULE.to_owned(),
            kind: RuleKind::Stale { after_ms: 600_000 },
            severity: Severity::Low,
            escalation: vec![Escalation::Duration {
                after_ms: 3_600_000,
                severity: Severity::Medium,
            }],
        },
        Rule {
            id: FLATLINE_RULE.to_owned(),
            kind: RuleKind::Flatline {
                sensor: None,
                epsilon: 0.0,
                after_ms: 600_000,
            },
            severity: Severity::Low,
            escalation: vec![Escalation::Duration {
                after_ms: 3_600_000,
                severity: Severity::Medium,
            }],
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_distinct_and_serialize() {
        let rules = default_rules();
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        for (i, r) in rules.iter().enumerate() {
            assert_eq!(r.check_at(&format!("defaults[{i}]")), Ok(()), "{r:?}");
            let json = serde_json::to_string(r).expect("ser");
            let back: Rule = serde_json::from_str(&json).expect("de");
            assert_eq!(&back, r);
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids,
            [
                STALE_RULE,
                HEALTH_RULE,
                ANOMALY_RULE,
                RUL_RULE,
                FLATLINE_RULE
            ]
        );
    }

    #[test]
    fn one_rule_of_each_kind_but_sensor_limits() {
        let rules = default_rules();
        let has = |f: fn(&RuleKind) -> bool| rules.iter().filter(|r| f(&r.kind)).count();
        assert_eq!(has(|k| matches!(k, RuleKind::Anomaly { .. })), 1);
        assert_eq!(has(|k| matches!(k, RuleKind::HealthBelow { .. })), 1);
        assert_eq!(has(|k| matches!(k, RuleKind::RulWithin { .. })), 1);
        assert_eq!(has(|k| matches!(k, RuleKind::Stale { .. })), 1);
        assert_eq!(has(|k| matches!(k, RuleKind::Flatline { .. })), 1);
        // A sensor limit needs a sensor and a limit that only the plant knows.
        assert_eq!(has(|k| matches!(k, RuleKind::SensorLimit { .. })), 0);
    }
}
