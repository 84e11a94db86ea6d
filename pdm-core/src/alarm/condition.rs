//! Condition evaluation: a rule's inputs (predictions, readings, stale and fresh events, ticks)
//! to whether its condition is active and by how much.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rule::RuleKind;
use crate::ids::SensorKey;
use crate::model::Timestamp;
use crate::prediction::Prediction;

/// What a condition is fed. Every input carries its own time: delays are measured on input
/// timestamps, never on a clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input<'a> {
    /// A prediction of the machine's active model.
    Prediction(&'a Prediction),
    /// A reading of one of the machine's sensors.
    Reading {
        /// The sensor.
        sensor: &'a SensorKey,
        /// The reading's instant.
        ts: Timestamp,
        /// Its value.
        value: f64,
    },
    /// Channels of the machine went stale (the live path's `LiveEvent::Stale`).
    Stale {
        /// The first instant without a row.
        ts: Timestamp,
        /// The stale channels.
        channels: &'a [SensorKey],
    },
    /// The machine's rows are scored again (`LiveEvent::Fresh`).
    Fresh {
        /// The first row scored again.
        ts: Timestamp,
    },
    /// Time passed: delays, stale durations, escalation by duration and shelf expiry are
    /// evaluated at this instant.
    Tick(Timestamp),
}

impl Input<'_> {
    /// The input's instant.
    pub fn ts(&self) -> Timestamp {
        match self {
            Input::Prediction(p) => p.ts,
            Input::Reading { ts, .. }
            | Input::Stale { ts, .. }
            | Input::Fresh { ts }
            | Input::Tick(ts) => *ts,
        }
    }
}

/// A condition's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Condition {
    /// The condition holds (after k-of-n, deadband and delays).
    pub active: bool,
    /// How far the condition is beyond its limit, for escalation by magnitude; 0 when it is
    /// not. Per rule kind:
    ///
    /// - anomaly: the latest prediction's `score / threshold` (when the threshold is above 0;
    ///   otherwise 1 for an anomalous prediction, 0 for a normal one);
    /// - sensor limit: how far the latest value is beyond the limit, in the sensor's unit;
    /// - stale: the number of stale channels;
    /// - flatline: the number of frozen sensors;
    /// - health below: `level - health`;
    /// - RUL within: `horizon_s - rul_s`, in seconds.
    pub magnitude: f64,
}

/// The evaluation state of one rule on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConditionState {
    kind: RuleKind,
    now: Condition,
    /// Anomaly: the last `n` predictions' verdicts, oldest first.
    window: VecDeque<bool>,
    /// Sensor limit: beyond the limit, deadband applied, before delays.
    raw: bool,
    /// Sensor limit: since when `raw` differs from `now.active` (the running delay).
    pending: Option<Timestamp>,
    /// Stale: since when data is missing, and how many channels.
    stale_since: Option<Timestamp>,
    /// Flatline: the current run of each sensor watched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    runs: Vec<FlatRun>,
    /// Sensor limit: the time of the newest reading judged. An older one (late, or read back
    /// after a newer one) is history: stored, but it does not change the current condition,
    /// which is the newest value's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest: Option<Timestamp>,
}

/// A sensor's current run of values within `epsilon` of its first one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FlatRun {
    sensor: SensorKey,
    /// The run's first value.
    value: f64,
    /// The run's first and newest reading times.
    since: Timestamp,
    last: Timestamp,
}

impl ConditionState {
    /// A condition that is not active, for a rule of this kind.
    pub fn new(kind: RuleKind) -> Self {
        Self {
            kind,
            now: Condition::default(),
            window: VecDeque::new(),
            raw: false,
            pending: None,
            stale_since: None,
            runs: Vec::new(),
            newest: None,
        }
    }

    /// The rule kind evaluated.
    pub fn kind(&self) -> &RuleKind {
        &self.kind
    }

    /// The current verdict.
    pub fn condition(&self) -> Condition {
        self.now
    }

    /// Feeds one input; returns the verdict after it. Inputs that do not concern the rule
    /// (another sensor's reading, a prediction for a sensor limit) leave it unchanged, except
    /// that their time still runs delays out.
    pub fn evaluate(&mut self, input: &Input<'_>) -> Condition {
        let at = input.ts();
        match &self.kind {
            RuleKind::Anomaly { k, n } => {
                if let Input::Prediction(p) = input {
                    self.window.push_back(p.anomalous);
                    while self.window.len() > *n as usize {
                        self.window.pop_front();
                    }
                    let count = self.window.iter().filter(|a| **a).count();
                    let magnitude = if p.threshold > 0.0 && p.score.is_finite() {
                        (p.score / p.threshold).max(0.0)
                    } else if p.anomalous {
                        1.0
                    } else {
                        0.0
                    };
                    self.now = Condition {
                        active: count >= *k as usize,
                        magnitude,
                    };
                }
            }
            RuleKind::SensorLimit {
                sensor: watched,
                above,
                below,
                deadband,
                on_delay_ms,
                off_delay_ms,
            } => {
                if let Input::Reading { sensor, value, ts } = input {
                    let current = self.newest.is_none_or(|n| *ts >= n);
                    if *sensor == watched && value.is_finite() && current {
                        self.newest = Some(*ts);
                        let over = above.is_some_and(|a| {
                            if self.raw {
                                *value > a - deadband
                            } else {
                                *value > a
                            }
                        });
                        let under = below.is_some_and(|b| {
                            if self.raw {
                                *value < b + deadband
                            } else {
                                *value < b
                            }
                        });
                        let raw = over || under;
                        if raw != self.raw {
                            self.raw = raw;
                            self.pending = (raw != self.now.active).then_some(at);
                        }
                        let beyond_above = above.map_or(0.0, |a| value - a);
                        let beyond_below = below.map_or(0.0, |b| b - value);
                        self.now.magnitude = beyond_above.max(beyond_below).max(0.0);
                    }
                }
                // Delays run on every input's time, ticks included.
                if self.raw != self.now.active {
                    let since = *self.pending.get_or_insert(at);
                    let delay = if self.raw {
                        *on_delay_ms
                    } else {
                        *off_delay_ms
                    };
                    let delay = i64::try_from(delay).unwrap_or(i64::MAX);
                    if at.as_millis().saturating_sub(since.as_millis()) >= delay {
                        self.now.active = self.raw;
                        self.pending = None;
                    }
                } else {
                    self.pending = None;
                }
            }
            RuleKind::Stale { after_ms } => {
                match input {
                    Input::Stale { ts, channels } if !channels.is_empty() => {
                        // A later stale event of the same gap keeps the gap's start.
                        let since = *self.stale_since.get_or_insert(*ts);
                        self.stale_since = Some(since.min(*ts));
                        self.now.magnitude = channels.len() as f64;
                    }
                    Input::Fresh { .. } => {
                        self.stale_since = None;
                        self.now = Condition::default();
                    }
                    _ => {}
                }
                if let Some(since) = self.stale_since {
                    let after = i64::try_from(*after_ms).unwrap_or(i64::MAX);
                    if at.as_millis().saturating_sub(since.as_millis()) >= after {
                        self.now.active = true;
                    }
                }
            }
            RuleKind::Flatline {
                sensor: watched,
                epsilon,
                after_ms,
            } => {
                if let Input::Reading { sensor, ts, value } = input {
                    let ours = watched.as_ref().is_none_or(|w| w == *sensor);
                    if ours && value.is_finite() {
                        match self.runs.iter_mut().find(|r| r.sensor == **sensor) {
                            // A reading older than the run's newest (late) cannot end it.
                            Some(r) if (*value - r.value).abs() <= *epsilon || *ts < r.last => {
                                r.last = r.last.max(*ts);
                            }
                            Some(r) => {
                                r.value = *value;
                                r.since = *ts;
                                r.last = *ts;
                            }
                            None => self.runs.push(FlatRun {
                                sensor: (*sensor).clone(),
                                value: *value,
                                since: *ts,
                                last: *ts,
                            }),
                        }
                        let after = i64::try_from(*after_ms).unwrap_or(i64::MAX);
                        let frozen = self
                            .runs
                            .iter()
                            .filter(|r| {
                                r.last.as_millis().saturating_sub(r.since.as_millis()) >= after
                            })
                            .count();
                        self.now = Condition {
                            active: frozen > 0,
                            magnitude: frozen as f64,
                        };
                    }
                }
            }
            RuleKind::HealthBelow { level, deadband } => {
                if let Input::Prediction(Prediction {
                    health: Some(h), ..
                }) = input
                {
                    if h.is_finite() {
                        let active = if self.now.active {
                            *h < level + deadband
                        } else {
                            h < level
                        };
                        self.now = Condition {
                            active,
                            magnitude: (level - h).max(0.0),
                        };
                    }
                }
            }
            RuleKind::RulWithin {
                horizon_s,
                off_delay_ms,
            } => {
                let off = i64::try_from(*off_delay_ms).unwrap_or(i64::MAX);
                if let Input::Prediction(p) = input {
                    match p.rul_s {
                        Some(r) if r.is_finite() && r <= *horizon_s => {
                            self.pending = None;
                            self.now = Condition {
                                active: true,
                                magnitude: (horizon_s - r).max(0.0),
                            };
                        }
                        // Beyond the horizon, or no estimate (the health trend shows no
                        // degradation to extrapolate): clears after the off delay.
                        _ if self.now.active => {
                            self.pending.get_or_insert(at);
                        }
                        _ => {}
                    }
                }
                if let Some(since) = self.pending {
                    if at.as_millis().saturating_sub(since.as_millis()) >= off {
                        self.pending = None;
                        self.now = Condition::default();
                    }
                }
            }
        }
        self.now
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ids::MachineKey;
    use crate::store::ModelId;

    pub(crate) fn prediction(ts: i64, score: f64) -> Prediction {
        Prediction {
            machine: MachineKey::new("m-1").expect("key"),
            ts: Timestamp::from_millis(ts),
            model: ModelId(1),
            score,
            threshold: 1.0,
            anomalous: score > 1.0,
            contributions: vec![],
            health: None,
            rul_s: None,
        }
    }

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn k_of_n() {
        let mut c = ConditionState::new(RuleKind::Anomaly { k: 3, n: 5 });
        let scores = [2.0, 0.5, 2.0, 0.5, 0.5, 3.0, 2.0, 0.5, 0.5, 0.5];
        let active: Vec<bool> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                c.evaluate(&Input::Prediction(&prediction(i as i64, *s)))
                    .active
            })
            .collect();
        // Windows: [2] [2,.5] [2,.5,2] [..,.5] [2,.5,2,.5,.5] (2 of 5) then +3.0: [.5,2,.5,.5,3] (2),
        // +2.0: [2,.5,.5,3,2] (3) active, +.5 [.5,.5,3,2,.5] (2) ...
        assert_eq!(
            active,
            [false, false, false, false, false, false, true, false, false, false]
        );
        assert_eq!(c.condition().magnitude, 0.5);
        let mut one = ConditionState::new(RuleKind::Anomaly { k: 1, n: 1 });
        assert!(one.evaluate(&Input::Prediction(&prediction(0, 4.0))).active);
        assert_eq!(one.condition().magnitude, 4.0);
        // Other inputs do not move an anomaly rule.
        assert!(one.evaluate(&Input::Tick(t(99))).active);
    }

    fn limit(
        above: Option<f64>,
        below: Option<f64>,
        deadband: f64,
        on: u64,
        off: u64,
    ) -> ConditionState {
        ConditionState::new(RuleKind::SensorLimit {
            sensor: SensorKey::new("temp").expect("key"),
            above,
            below,
            deadband,
            on_delay_ms: on,
            off_delay_ms: off,
        })
    }

    fn read(c: &mut ConditionState, ts: i64, value: f64) -> bool {
        let sensor = SensorKey::new("temp").expect("key");
        c.evaluate(&Input::Reading {
            sensor: &sensor,
            ts: t(ts),
            value,
        })
        .active
    }

    #[test]
    fn deadband_holds_until_the_value_is_back_past_it() {
        let mut c = limit(Some(80.0), None, 5.0, 0, 0);
        assert!(!read(&mut c, 0, 79.0));
        assert!(read(&mut c, 1, 81.0));
        assert_eq!(c.condition().magnitude, 1.0);
        assert!(read(&mut c, 2, 78.0), "inside the deadband: still active");
        assert!(read(&mut c, 3, 75.5));
        assert!(!read(&mut c, 4, 74.9), "past limit - deadband: clears");
        assert!(!read(&mut c, 5, 79.0), "below the limit: stays clear");
        let mut low = limit(None, Some(10.0), 2.0, 0, 0);
        assert!(read(&mut low, 0, 9.0));
        assert!(read(&mut low, 1, 11.0));
        assert!(!read(&mut low, 2, 12.5));
        // Another sensor's reading changes nothing.
        let other = SensorKey::new("pressure").expect("key");
        assert!(
            !low.evaluate(&Input::Reading {
                sensor: &other,
                ts: t(3),
                value: 0.0
            })
            .active
        );
        // NaN is ignored.
        assert!(!read(&mut low, 4, f64::NAN));
    }

    #[test]
    fn on_and_off_delays_run_on_input_time() {
        let mut c = limit(Some(80.0), None, 0.0, 1_000, 500);
        assert!(!read(&mut c, 0, 90.0));
        assert!(!read(&mut c, 999, 90.0));
        assert!(
            c.evaluate(&Input::Tick(t(1_000))).active,
            "held for on_delay"
        );
        // A blip back inside shorter than off_delay does not clear.
        assert!(read(&mut c, 1_100, 70.0));
        assert!(read(&mut c, 1_400, 90.0));
        assert!(c.evaluate(&Input::Tick(t(5_000))).active);
        assert!(read(&mut c, 6_000, 70.0));
        assert!(c.evaluate(&Input::Tick(t(6_499))).active);
        assert!(
            !c.evaluate(&Input::Tick(t(6_500))).active,
            "gone for off_delay"
        );
        // A blip beyond shorter than on_delay does not raise.
        assert!(!read(&mut c, 7_000, 90.0));
        assert!(!read(&mut c, 7_500, 70.0));
        assert!(!c.evaluate(&Input::Tick(t(9_000))).active);
    }

    fn flat(c: &mut ConditionState, sensor: &SensorKey, ts: i64, value: f64) -> bool {
        c.evaluate(&Input::Reading {
            sensor,
            ts: t(ts),
            value,
        })
        .active
    }

    #[test]
    fn flatline_after_a_frozen_run_until_the_value_moves() {
        let temp = SensorKey::new("temp").expect("key");
        let vib = SensorKey::new("vib").expect("key");
        let mut c = ConditionState::new(RuleKind::Flatline {
            sensor: None,
            epsilon: 0.0,
            after_ms: 10_000,
        });
        // A noisy sensor never freezes.
        for i in 0..30 {
            assert!(!flat(&mut c, &vib, i * 1_000, 1.0 + 0.01 * (i % 3) as f64));
        }
        // The same value from 30 s on: frozen once the run spans 10 s of readings.
        for i in 30..40 {
            assert!(!flat(&mut c, &temp, i * 1_000, 55.5), "{i}");
        }
        assert!(flat(&mut c, &temp, 40_000, 55.5));
        assert_eq!(c.condition().magnitude, 1.0);
        // Time alone does not change it: a sensor that stops sending is stale, not frozen.
        assert!(c.evaluate(&Input::Tick(t(100_000))).active);
        // A late reading of another value does not end the run; a new one does.
        assert!(flat(&mut c, &temp, 35_500, 60.0));
        assert!(!flat(&mut c, &temp, 41_000, 55.6));
        // The new value starts a run of its own.
        assert!(!flat(&mut c, &temp, 50_999, 55.6));
        assert!(flat(&mut c, &temp, 51_000, 55.6));
        // The runs are part of the stored state: read back, the condition goes on the same.
        let json = serde_json::to_string(&c).expect("ser");
        let mut back: ConditionState = serde_json::from_str(&json).expect("de");
        assert_eq!(back, c);
        assert!(!flat(&mut back, &temp, 52_000, 56.0));
        // A state stored before flatline rules existed (no runs) still reads.
        let old = r#"{"kind":{"type":"stale","after_ms":1},"now":{"active":false,"magnitude":0.0},
            "window":[],"raw":false,"pending":null,"stale_since":null}"#;
        assert!(serde_json::from_str::<ConditionState>(old).is_ok());
    }

    #[test]
    fn flatline_epsilon_and_one_sensor() {
        let temp = SensorKey::new("temp").expect("key");
        let vib = SensorKey::new("vib").expect("key");
        let mut c = ConditionState::new(RuleKind::Flatline {
            sensor: Some(temp.clone()),
            epsilon: 0.05,
            after_ms: 5_000,
        });
        // Another sensor's frozen value is not watched.
        for i in 0..10 {
            assert!(!flat(&mut c, &vib, i * 1_000, 2.0));
        }
        // Within epsilon of the run's first value is frozen: a creeping value is not (it
        // leaves the band around the first value and starts a new run).
        for i in 0..5 {
            assert!(!flat(
                &mut c,
                &temp,
                i * 1_000,
                20.0 + 0.01 * (i % 2) as f64
            ));
        }
        assert!(flat(&mut c, &temp, 5_000, 20.04));
        let mut creeping = ConditionState::new(RuleKind::Flatline {
            sensor: Some(temp.clone()),
            epsilon: 0.05,
            after_ms: 5_000,
        });
        for i in 0..60 {
            assert!(!flat(
                &mut creeping,
                &temp,
                i * 1_000,
                20.0 + 0.02 * i as f64
            ));
        }
        // Not a number is no reading.
        assert!(flat(&mut c, &temp, 6_000, f64::NAN));
    }

    #[test]
    fn stale_after_a_duration_until_fresh() {
        let mut c = ConditionState::new(RuleKind::Stale { after_ms: 10_000 });
        let ch = [SensorKey::new("temp").expect("key")];
        assert!(
            !c.evaluate(&Input::Stale {
                ts: t(1_000),
                channels: &ch
            })
            .active
        );
        assert!(!c.evaluate(&Input::Tick(t(10_999))).active);
        assert!(c.evaluate(&Input::Tick(t(11_000))).active);
        assert_eq!(c.condition().magnitude, 1.0);
        assert!(!c.evaluate(&Input::Fresh { ts: t(12_000) }).active);
        assert!(!c.evaluate(&Input::Tick(t(50_000))).active);
        // A new gap counts from its own start.
        assert!(
            !c.evaluate(&Input::Stale {
                ts: t(60_000),
                channels: &ch
            })
            .active
        );
        assert!(c.evaluate(&Input::Tick(t(70_000))).active);
        let mut zero = ConditionState::new(RuleKind::Stale { after_ms: 0 });
        assert!(
            !zero
                .evaluate(&Input::Stale {
                    ts: t(0),
                    channels: &[]
                })
                .active,
            "no channel"
        );
        assert!(
            zero.evaluate(&Input::Stale {
                ts: t(0),
                channels: &ch
            })
            .active
        );
    }

    #[test]
    fn health_below_with_deadband() {
        let mut c = ConditionState::new(RuleKind::HealthBelow {
            level: 0.5,
            deadband: 0.1,
        });
        let mut at = |ts, health: Option<f64>| {
            let mut p = prediction(ts, 0.0);
            p.health = health;
            c.evaluate(&Input::Prediction(&p))
        };
        assert!(!at(0, Some(0.6)).active);
        let low = at(1, Some(0.4));
        assert!(low.active);
        assert!((low.magnitude - 0.1).abs() < 1e-12);
        assert!(at(2, None).active, "no health: unchanged");
        assert!(at(3, Some(0.55)).active, "inside the deadband");
        assert!(!at(4, Some(0.6)).active);
    }

    #[test]
    fn rul_within_a_horizon() {
        let mut c = ConditionState::new(RuleKind::RulWithin {
            horizon_s: 3_600.0,
            off_delay_ms: 0,
        });
        let mut at = |ts, rul: Option<f64>| {
            let mut p = prediction(ts, 0.0);
            p.rul_s = rul;
            c.evaluate(&Input::Prediction(&p))
        };
        assert!(!at(0, Some(7_200.0)).active);
        let soon = at(1, Some(600.0));
        assert!(soon.active);
        assert_eq!(soon.magnitude, 3_000.0);
        assert!(at(2, Some(3_600.0)).active);
        assert!(!at(3, None).active, "no estimate: not within the horizon");

        // With an off delay, an estimate that comes and goes keeps the condition.
        let mut c = ConditionState::new(RuleKind::RulWithin {
            horizon_s: 3_600.0,
            off_delay_ms: 10_000,
        });
        let mut at = |ts, rul: Option<f64>| {
            let mut p = prediction(ts, 0.0);
            p.rul_s = rul;
            c.evaluate(&Input::Prediction(&p)).active
        };
        assert!(at(0, Some(600.0)));
        assert!(at(1_000, None), "gone for 1 s");
        assert!(at(5_000, Some(9_000.0)), "beyond for 5 s");
        assert!(at(6_000, Some(500.0)), "back: the delay restarts");
        assert!(at(15_000, None));
        assert!(at(24_999, None));
        assert!(!at(25_000, None), "gone for 10 s: cleared");
        assert!(!at(26_000, Some(7_200.0)));
        // Ticks run the delay out without predictions.
        let mut c = ConditionState::new(RuleKind::RulWithin {
            horizon_s: 3_600.0,
            off_delay_ms: 10_000,
        });
        let mut p = prediction(0, 0.0);
        p.rul_s = Some(10.0);
        assert!(c.evaluate(&Input::Prediction(&p)).active);
        p.ts = Timestamp::from_millis(1_000);
        p.rul_s = None;
        assert!(c.evaluate(&Input::Prediction(&p)).active);
        assert!(
            c.evaluate(&Input::Tick(Timestamp::from_millis(10_999)))
                .active
        );
        assert!(
            !c.evaluate(&Input::Tick(Timestamp::from_millis(11_000)))
                .active
        );
    }
}
