//! Alarm rules: what condition raises an alarm, how bad it is, and how it escalates.

use serde::{Deserialize, Serialize};

use super::types::Severity;
use crate::config::{ConfigError, ConfigResult};
use crate::ids::SensorKey;

/// The longest window of predictions a k-of-n rule keeps.
pub const MAX_WINDOW: u32 = 10_000;
/// The longest delay or duration a rule takes, in milliseconds (30 days).
pub const MAX_DURATION_MS: u64 = 30 * 24 * 3_600 * 1_000;
/// The longest identifier of a rule.
pub const MAX_ID_LEN: usize = 64;

/// What condition a rule watches. Serialized with a `type` tag:
/// `{"type": "anomaly", "k": 3, "n": 5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RuleKind {
    /// At least `k` of the machine's last `n` predictions are anomalous.
    Anomaly {
        /// Anomalous predictions needed, 1 to `n`.
        k: u32,
        /// Predictions in the window, 1 to [`MAX_WINDOW`].
        n: u32,
    },
    /// A sensor's value is above `above` or below `below` (at least one of them).
    SensorLimit {
        /// The sensor.
        sensor: SensorKey,
        /// Active when the value is above this.
        #[serde(default)]
        above: Option<f64>,
        /// Active when the value is below this.
        #[serde(default)]
        below: Option<f64>,
        /// The value must come back past the limit by this much to clear (`above - deadband`,
        /// `below + deadband`); in the sensor's unit, at least 0.
        #[serde(default)]
        deadband: f64,
        /// The value must stay beyond the limit this long (input time) before the condition is
        /// active.
        #[serde(default)]
        on_delay_ms: u64,
        /// The value must stay back inside this long (input time) before the condition clears.
        #[serde(default)]
        off_delay_ms: u64,
    },
    /// Some of the machine's channels have had no value for `after_ms` past the live path's own
    /// gap limit (counted from the first instant without a row).
    Stale {
        /// How long the data must be missing.
        after_ms: u64,
    },
    /// A sensor's value has not moved by more than `epsilon` for `after_ms` (input time) while
    /// readings keep arriving: a frozen value (a stuck transmitter, an input card or gateway
    /// holding its last value). Measured from the first reading of the run to the newest one;
    /// a value that moves past `epsilon` from the run's first value ends the run. A sensor that
    /// stops sending is the `stale` rule's case, not this one.
    Flatline {
        /// The sensor; every sensor of the machine when absent (active when any is frozen).
        #[serde(default)]
        sensor: Option<SensorKey>,
        /// How far values may stray from the run's first value and still count as frozen, in
        /// the sensor's unit, at least 0 (0: the very same value).
        #[serde(default)]
        epsilon: f64,
        /// How long the value must stay frozen, at least 1 ms.
        after_ms: u64,
    },
    /// The model's health index (1 healthy, 0 failed) is below `level`.
    HealthBelow {
        /// The level, in (0, 1].
        level: f64,
        /// Health must come back to `level + deadband` to clear; at least 0.
        #[serde(default)]
        deadband: f64,
    },
    /// The estimated remaining useful life is at most `horizon_s` seconds.
    RulWithin {
        /// The horizon in seconds, more than 0.
        horizon_s: f64,
        /// The estimate must stay beyond the horizon (or absent) this long (input time) before
        /// the condition clears: a model gives an estimate only while the machine is degraded,
        /// so near that level it comes and goes.
        #[serde(default)]
        off_delay_ms: u64,
    },
}

/// A step of escalation: while the alarm is active and the criterion holds, its severity is at
/// least `severity`. Serialized with a `by` tag: `{"by": "duration", "after_ms": 600000,
/// "severity": "high"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "by", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Escalation {
    /// The alarm has been active (raised, not returned) for at least `after_ms`.
    Duration {
        /// How long, at least 1 ms.
        after_ms: u64,
        /// The severity it escalates to.
        severity: Severity,
    },
    /// The condition's magnitude is at least `at_least` (see [`Condition::magnitude`] for
    /// what the magnitude is per rule kind); falls back when the magnitude does.
    ///
    /// [`Condition::magnitude`]: super::Condition::magnitude
    Magnitude {
        /// The magnitude needed.
        at_least: f64,
        /// The severity it escalates to.
        severity: Severity,
    },
}

impl Escalation {
    /// The severity this step escalates to.
    pub fn severity(&self) -> Severity {
        match self {
            Escalation::Duration { severity, .. } | Escalation::Magnitude { severity, .. } => {
                *severity
            }
        }
    }
}

/// A rule: one condition of one machine (or of every machine, as a fleet-wide default), its
/// severity and its escalation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The rule's identifier, unique per machine: 1 to [`MAX_ID_LEN`] of `a-z`, `0-9`, `-`,
    /// `_`.
    pub id: String,
    /// The condition.
    pub kind: RuleKind,
    /// The severity when raised.
    pub severity: Severity,
    /// Escalation steps, each to a severity above `severity`.
    #[serde(default)]
    pub escalation: Vec<Escalation>,
}

impl Rule {
    /// Checks the rule, naming the first bad field as `rule.<field>` (e.g. `rule.kind.k`).
    pub fn check(&self) -> ConfigResult {
        self.check_at("rule")
    }

    /// Checks the rule, naming the first bad field under `prefix` (e.g. `rules[2]`).
    pub fn check_at(&self, prefix: &str) -> ConfigResult {
        let bad = |field: &str, problem: String| {
            Err(ConfigError::new(format!("{prefix}.{field}"), problem))
        };
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_ID_LEN
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !id_ok {
            return bad(
                "id",
                format!(
                    "must be 1 to {MAX_ID_LEN} characters of a-z, 0-9, - and _ (got {:?})",
                    self.id
                ),
            );
        }
        self.kind.check_at(&format!("{prefix}.kind"))?;
        for (i, step) in self.escalation.iter().enumerate() {
            let at = |field: &str| format!("escalation[{i}].{field}");
            match step {
                Escalation::Duration { after_ms, .. } => {
                    if !(1..=MAX_DURATION_MS).contains(after_ms) {
                        return bad(
                            &at("after_ms"),
                            format!("must be between 1 and {MAX_DURATION_MS} (30 days) (got {after_ms})"),
                        );
                    }
                }
                Escalation::Magnitude { at_least, .. } => {
                    if !at_least.is_finite() {
                        return bad(
                            &at("at_least"),
                            format!("must be a finite number (got {at_least})"),
                        );
                    }
                }
            }
            if step.severity() <= self.severity {
                return bad(
                    &at("severity"),
                    format!(
                        "must be above the rule's severity {} (got {})",
                        self.severity,
                        step.severity()
                    ),
                );
            }
        }
        Ok(())
    }
}

impl RuleKind {
    /// Checks the condition's parameters, naming the first bad one under `prefix`.
    pub fn check_at(&self, prefix: &str) -> ConfigResult {
        let bad = |field: &str, problem: String| {
            Err(ConfigError::new(format!("{prefix}.{field}"), problem))
        };
        let duration = |field: &str, ms: u64| {
            if ms > MAX_DURATION_MS {
                bad(
                    field,
                    format!("must be at most {MAX_DURATION_MS} (30 days) (got {ms})"),
                )
            } else {
                Ok(())
            }
        };
        let deadband = |d: f64| {
            if d.is_finite() && d >= 0.0 {
                Ok(())
            } else {
                bad(
                    "deadband",
                    format!("must be a finite number at least 0 (got {d})"),
                )
            }
        };
        match self {
            RuleKind::Anomaly { k, n } => {
                if !(1..=MAX_WINDOW).contains(n) {
                    return bad("n", format!("must be between 1 and {MAX_WINDOW} (got {n})"));
                }
                if !(1..=*n).contains(k) {
                    return bad("k", format!("must be between 1 and n = {n} (got {k})"));
                }
            }
            RuleKind::SensorLimit {
                above,
                below,
                deadband: d,
                on_delay_ms,
                off_delay_ms,
                ..
            } => {
                if above.is_none() && below.is_none() {
                    return bad(
                        "above",
                        "a sensor limit needs above, below or both".to_owned(),
                    );
                }
                for (field, v) in [("above", above), ("below", below)] {
                    if let Some(v) = v {
                        if !v.is_finite() {
                            return bad(field, format!("must be a finite number (got {v})"));
                        }
                    }
                }
                if let (Some(a), Some(b)) = (above, below) {
                    if b >= a {
                        return bad("below", format!("must be less than above = {a} (got {b})"));
                    }
                }
                deadband(*d)?;
                duration("on_delay_ms", *on_delay_ms)?;
                duration("off_delay_ms", *off_delay_ms)?;
            }
            RuleKind::Stale { after_ms } => duration("after_ms", *after_ms)?,
            RuleKind::Flatline {
                epsilon, after_ms, ..
            } => {
                if !(epsilon.is_finite() && *epsilon >= 0.0) {
                    return bad(
                        "epsilon",
                        format!("must be a finite number at least 0 (got {epsilon})"),
                    );
                }
                if !(1..=MAX_DURATION_MS).contains(after_ms) {
                    return bad(
                        "after_ms",
                        format!(
                            "must be between 1 and {MAX_DURATION_MS} (30 days) (got {after_ms})"
                        ),
                    );
                }
            }
            RuleKind::HealthBelow { level, deadband: d } => {
                if !(level.is_finite() && *level > 0.0 && *level <= 1.0) {
                    return bad(
                        "level",
                        format!("must be more than 0 and at most 1 (got {level})"),
                    );
                }
                deadband(*d)?;
            }
            RuleKind::RulWithin {
                horizon_s,
                off_delay_ms,
            } => {
                if !(horizon_s.is_finite() && *horizon_s > 0.0) {
                    return bad(
                        "horizon_s",
                        format!("must be a finite number more than 0 (got {horizon_s})"),
                    );
                }
                if *off_delay_ms > MAX_DURATION_MS {
                    return bad(
                        "off_delay_ms",
                        format!("must be at most {MAX_DURATION_MS} (30 days) (got {off_delay_ms})"),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: RuleKind) -> Rule {
        Rule {
            id: "r-1".into(),
            kind,
            severity: Severity::Medium,
            escalation: vec![],
        }
    }

    fn setting(r: &Rule) -> String {
        r.check().expect_err("invalid").setting
    }

    #[test]
    fn a_valid_rule_parses_and_checks() {
        let r: Rule = serde_json::from_str(
            r#"{"id": "bearing", "kind": {"type": "anomaly", "k": 3, "n": 5}, "severity": "high",
                "escalation": [{"by": "duration", "after_ms": 600000, "severity": "critical"}]}"#,
        )
        .expect("parses");
        assert_eq!(r.kind, RuleKind::Anomaly { k: 3, n: 5 });
        assert_eq!(r.check(), Ok(()));
        let back: Rule =
            serde_json::from_str(&serde_json::to_string(&r).expect("ser")).expect("de");
        assert_eq!(back, r);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Rule>(
            r#"{"id": "a", "kind": {"type": "anomaly", "k": 1, "n": 1, "m": 2}, "severity": "low"}"#,
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `m`"), "{err}");
        assert!(serde_json::from_str::<Rule>(
            r#"{"id": "a", "kind": {"type": "stale", "after_ms": 1}, "severity": "low", "x": 1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Rule>(
            r#"{"id": "a", "kind": {"type": "stale", "after_ms": 1}, "severity": "urgent"}"#
        )
        .is_err());
    }

    #[test]
    fn flatline_rules_parse_and_bad_fields_are_named() {
        let r: Rule = serde_json::from_str(
            r#"{"id": "frozen", "kind": {"type": "flatline", "after_ms": 600000}, "severity": "low"}"#,
        )
        .expect("parses");
        assert_eq!(
            r.kind,
            RuleKind::Flatline {
                sensor: None,
                epsilon: 0.0,
                after_ms: 600_000
            }
        );
        assert_eq!(r.check(), Ok(()));
        let kind = |epsilon, after_ms| RuleKind::Flatline {
            sensor: Some(SensorKey::new("temp").expect("key")),
            epsilon,
            after_ms,
        };
        assert_eq!(setting(&rule(kind(-0.1, 1_000))), "rule.kind.epsilon");
        assert_eq!(
            setting(&rule(kind(f64::INFINITY, 1_000))),
            "rule.kind.epsilon"
        );
        assert_eq!(setting(&rule(kind(0.0, 0))), "rule.kind.after_ms");
        assert_eq!(
            setting(&rule(kind(0.0, MAX_DURATION_MS + 1))),
            "rule.kind.after_ms"
        );
        assert!(serde_json::from_str::<Rule>(
            r#"{"id": "a", "kind": {"type": "flatline"}, "severity": "low"}"#
        )
        .is_err());
    }

    #[test]
    fn bad_fields_are_named() {
        assert_eq!(
            setting(&rule(RuleKind::Anomaly { k: 0, n: 5 })),
            "rule.kind.k"
        );
        assert_eq!(
            setting(&rule(RuleKind::Anomaly { k: 6, n: 5 })),
            "rule.kind.k"
        );
        assert_eq!(
            setting(&rule(RuleKind::Anomaly { k: 1, n: 0 })),
            "rule.kind.n"
        );
        let limit = |above, below, deadband, on| RuleKind::SensorLimit {
            sensor: SensorKey::new("temp").expect("key"),
            above,
            below,
            deadband,
            on_delay_ms: on,
            off_delay_ms: 0,
        };
        assert_eq!(setting(&rule(limit(None, None, 0.0, 0))), "rule.kind.above");
        assert_eq!(
            setting(&rule(limit(Some(f64::NAN), None, 0.0, 0))),
            "rule.kind.above"
        );
        assert_eq!(
            setting(&rule(limit(Some(1.0), Some(2.0), 0.0, 0))),
            "rule.kind.below"
        );
        assert_eq!(
            setting(&rule(limit(Some(1.0), None, -1.0, 0))),
            "rule.kind.deadband"
        );
        assert_eq!(
            setting(&rule(limit(Some(1.0), None, 0.0, MAX_DURATION_MS + 1))),
            "rule.kind.on_delay_ms"
        );
        assert_eq!(
            setting(&rule(RuleKind::Stale { after_ms: u64::MAX })),
            "rule.kind.after_ms"
        );
        assert_eq!(
            setting(&rule(RuleKind::HealthBelow {
                level: 0.0,
                deadband: 0.0
            })),
            "rule.kind.level"
        );
        assert_eq!(
            setting(&rule(RuleKind::RulWithin {
                horizon_s: -1.0,
                off_delay_ms: 0
            })),
            "rule.kind.horizon_s"
        );
        let mut r = rule(RuleKind::Stale { after_ms: 0 });
        r.id = "Bad Id".into();
        assert_eq!(setting(&r), "rule.id");
        let mut r = rule(RuleKind::Stale { after_ms: 0 });
        r.escalation = vec![Escalation::Magnitude {
            at_least: 2.0,
            severity: Severity::Low,
        }];
        let err = r.check().expect_err("lower severity");
        assert_eq!(err.setting, "rule.escalation[0].severity");
        assert_eq!(
            err.to_string(),
            "rule.escalation[0].severity: must be above the rule's severity medium (got low)"
        );
        r.escalation = vec![Escalation::Duration {
            after_ms: 0,
            severity: Severity::High,
        }];
        assert_eq!(setting(&r), "rule.escalation[0].after_ms");
        let err = rule(RuleKind::Anomaly { k: 1, n: 0 })
            .check_at("rules[2]")
            .expect_err("n");
        assert_eq!(err.setting, "rules[2].kind.n");
    }
}
