//! The alarm state machine against the ISA-18.2 table, escalation, shelving, out of service,
//! chattering, determinism, and fixed-seed random sequences.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::condition::tests::prediction;
use super::*;
use crate::model::Timestamp;

use AlarmEventKind as K;

fn t(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn rule(escalation: Vec<Escalation>) -> Rule {
    Rule {
        id: "r".into(),
        kind: RuleKind::Anomaly { k: 1, n: 1 },
        severity: Severity::Medium,
        escalation,
    }
}

fn on(magnitude: f64) -> Command {
    Command::Condition(Condition {
        active: true,
        magnitude,
    })
}

fn off() -> Command {
    Command::Condition(Condition::default())
}

fn ack() -> Command {
    Command::Acknowledge { by: "ann".into() }
}

fn shelve(until: i64) -> Command {
    Command::Shelve {
        until: t(until),
        reason: "nuisance".into(),
        by: "bob".into(),
    }
}

fn kinds(events: &[AlarmEvent]) -> Vec<AlarmEventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// Applies `cmd` at `ms`, expecting success; returns the event kinds.
fn go(a: &mut Alarm, cmd: Command, ms: i64) -> Vec<AlarmEventKind> {
    kinds(&a.apply(cmd, t(ms)).expect("allowed"))
}

/// An alarm brought into `state` (by the inputs a plant would give it).
fn alarm_in(state: StateName) -> Alarm {
    let mut a = Alarm::new(&rule(vec![]));
    match state {
        StateName::Normal => {}
        StateName::ActiveUnacked => {
            go(&mut a, on(1.0), 0);
        }
        StateName::ActiveAcked => {
            go(&mut a, on(1.0), 0);
            go(&mut a, ack(), 1);
        }
        StateName::ReturnedUnacked => {
            go(&mut a, on(1.0), 0);
            go(&mut a, off(), 1);
        }
        StateName::Shelved => {
            go(&mut a, shelve(1_000_000), 0);
        }
        StateName::OutOfService => {
            go(
                &mut a,
                Command::OutOfService {
                    by: "bob".into(),
                    reason: "overhaul".into(),
                },
                0,
            );
        }
    }
    assert_eq!(a.state().name(), state);
    a
}

#[test]
fn isa_18_2_table() {
    use StateName as S;
    // (from, command, events, to)
    let cases: Vec<(S, Command, Vec<K>, S)> = vec![
        (S::Normal, on(1.0), vec![K::Raised], S::ActiveUnacked),
        (S::Normal, off(), vec![], S::Normal),
        (
            S::ActiveUnacked,
            ack(),
            vec![K::Acknowledged],
            S::ActiveAcked,
        ),
        (
            S::ActiveUnacked,
            off(),
            vec![K::Returned],
            S::ReturnedUnacked,
        ),
        (S::ActiveUnacked, on(1.0), vec![], S::ActiveUnacked),
        (S::ActiveAcked, off(), vec![K::Cleared], S::Normal),
        (S::ActiveAcked, on(1.0), vec![], S::ActiveAcked),
        (
            S::ReturnedUnacked,
            ack(),
            vec![K::Acknowledged, K::Cleared],
            S::Normal,
        ),
        (
            S::ReturnedUnacked,
            on(1.0),
            vec![K::Reactivated],
            S::ActiveUnacked,
        ),
        (S::Normal, shelve(10_000), vec![K::Shelved], S::Shelved),
        (
            S::ActiveUnacked,
            shelve(10_000),
            vec![K::Shelved],
            S::Shelved,
        ),
        (S::ActiveAcked, shelve(10_000), vec![K::Shelved], S::Shelved),
        (
            S::ReturnedUnacked,
            shelve(10_000),
            vec![K::Shelved],
            S::Shelved,
        ),
        (S::Shelved, shelve(20_000), vec![K::Shelved], S::Shelved),
        (S::Shelved, on(1.0), vec![], S::Shelved),
        (
            S::Shelved,
            Command::Unshelve { by: "bob".into() },
            vec![K::Unshelved],
            S::Normal,
        ),
        (S::OutOfService, on(1.0), vec![], S::OutOfService),
        (
            S::OutOfService,
            Command::InService { by: "bob".into() },
            vec![K::InService],
            S::Normal,
        ),
    ];
    for from in StateName::ALL.iter().filter(|s| **s != S::OutOfService) {
        let mut a = alarm_in(*from);
        let to = go(
            &mut a,
            Command::OutOfService {
                by: "bob".into(),
                reason: "overhaul".into(),
            },
            5,
        );
        assert_eq!(to, [K::OutOfService], "{from} -> out of service");
        assert_eq!(a.state(), &AlarmState::OutOfService);
    }
    for (from, cmd, events, to) in cases {
        let mut a = alarm_in(from);
        let what = format!("{from} + {cmd:?}");
        assert_eq!(go(&mut a, cmd, 5), events, "{what}");
        assert_eq!(a.state().name(), to, "{what}");
    }
}

#[test]
fn impossible_transitions_are_refused_and_change_nothing() {
    use StateName as S;
    let cases: Vec<(S, Command, &str)> = vec![
        (
            S::Normal,
            ack(),
            "cannot acknowledge an alarm that is normal",
        ),
        (
            S::ActiveAcked,
            ack(),
            "cannot acknowledge an alarm that is active_acknowledged",
        ),
        (
            S::Shelved,
            ack(),
            "cannot acknowledge an alarm that is shelved",
        ),
        (
            S::OutOfService,
            ack(),
            "cannot acknowledge an alarm that is out_of_service",
        ),
        (
            S::Normal,
            Command::Unshelve { by: "b".into() },
            "cannot unshelve an alarm that is normal",
        ),
        (
            S::ActiveUnacked,
            Command::Unshelve { by: "b".into() },
            "cannot unshelve an alarm that is active_unacknowledged",
        ),
        (
            S::OutOfService,
            shelve(10_000),
            "cannot shelve an alarm that is out_of_service",
        ),
        (
            S::Normal,
            shelve(5),
            "shelve until 5 must be after the time of the request (5)",
        ),
        (
            S::OutOfService,
            Command::OutOfService {
                by: "b".into(),
                reason: "again".into(),
            },
            "the alarm is already out_of_service",
        ),
        (
            S::Shelved,
            Command::InService { by: "b".into() },
            "cannot put back in service an alarm that is shelved",
        ),
    ];
    for (from, cmd, message) in cases {
        let mut a = alarm_in(from);
        let before = a.clone();
        let err = a.apply(cmd.clone(), t(5)).expect_err("refused");
        assert!(
            err.to_string().starts_with(message),
            "{from} + {cmd:?}: {err}"
        );
        assert_eq!(a, before, "{from} + {cmd:?} changed the alarm");
    }
}

#[test]
fn raised_carries_the_rule_and_the_actor() {
    let mut a = Alarm::new(&rule(vec![]));
    let events = a.apply(on(1.0), t(10)).expect("ok");
    assert_eq!(
        events,
        [AlarmEvent {
            kind: K::Raised,
            at: t(10),
            actor: SYSTEM.into(),
            reason: "condition active".into(),
            severity: Severity::Medium,
        }]
    );
    let events = a.apply(ack(), t(20)).expect("ok");
    assert_eq!(events[0].actor, "ann");
    assert!(a.is_open());
    go(&mut a, off(), 30);
    assert!(!a.is_open());
}

#[test]
fn escalation_by_magnitude_rises_and_falls() {
    let mut a = Alarm::new(&rule(vec![
        Escalation::Magnitude {
            at_least: 2.0,
            severity: Severity::High,
        },
        Escalation::Magnitude {
            at_least: 4.0,
            severity: Severity::Critical,
        },
    ]));
    let e = a.apply(on(5.0), t(0)).expect("ok");
    assert_eq!(
        (e[0].kind, e[0].severity),
        (K::Raised, Severity::Critical),
        "raised at once at the magnitude's severity"
    );
    let e = a.apply(on(3.0), t(1)).expect("ok");
    assert_eq!((e[0].kind, e[0].severity), (K::DeEscalated, Severity::High));
    assert!(go(&mut a, on(3.5), 2).is_empty());
    let e = a.apply(on(1.0), t(3)).expect("ok");
    assert_eq!(
        (e[0].kind, e[0].severity),
        (K::DeEscalated, Severity::Medium)
    );
    let e = a.apply(on(4.0), t(4)).expect("ok");
    assert_eq!(
        (e[0].kind, e[0].severity),
        (K::Escalated, Severity::Critical)
    );
    // Returned: no escalation while the condition is gone; the event keeps the severity.
    let e = a.apply(off(), t(5)).expect("ok");
    assert_eq!(
        (e[0].kind, e[0].severity),
        (K::Returned, Severity::Critical)
    );
}

#[test]
fn a_magnitude_hovering_at_a_step_does_not_flap() {
    let mut a = Alarm::new(&rule(vec![Escalation::Magnitude {
        at_least: 3.0,
        severity: Severity::High,
    }]));
    assert_eq!(go(&mut a, on(1.0), 0), [K::Raised]);
    assert_eq!(go(&mut a, on(3.05), 1), [K::Escalated]);
    // Within the deadband (10 % below 3.0): it stays high.
    assert!(go(&mut a, on(2.8), 2).is_empty());
    assert!(go(&mut a, on(3.1), 3).is_empty());
    assert!(go(&mut a, on(2.71), 4).is_empty());
    assert_eq!(a.severity(), Severity::High);
    // Below it: back to the rule's severity; rising to 2.9 does not escalate again.
    assert_eq!(go(&mut a, on(2.69), 5), [K::DeEscalated]);
    assert!(go(&mut a, on(2.9), 6).is_empty());
    assert_eq!(a.severity(), Severity::Medium);
}

#[test]
fn escalation_by_duration_on_ticks() {
    let mut a = Alarm::new(&rule(vec![
        Escalation::Duration {
            after_ms: 60_000,
            severity: Severity::High,
        },
        Escalation::Duration {
            after_ms: 600_000,
            severity: Severity::Critical,
        },
    ]));
    go(&mut a, on(1.0), 0);
    assert!(go(&mut a, Command::Tick, 59_999).is_empty());
    let e = a.apply(Command::Tick, t(60_000)).expect("ok");
    assert_eq!((e[0].kind, e[0].severity), (K::Escalated, Severity::High));
    // Acknowledged alarms still escalate (the state stays acknowledged).
    go(&mut a, ack(), 100_000);
    let e = a.apply(Command::Tick, t(600_000)).expect("ok");
    assert_eq!(
        (e[0].kind, e[0].severity),
        (K::Escalated, Severity::Critical)
    );
    assert_eq!(a.state(), &AlarmState::ActiveAcked);
    let e = a.apply(off(), t(700_000)).expect("ok");
    assert_eq!((e[0].kind, e[0].severity), (K::Cleared, Severity::Critical));
    // The next episode starts at the rule's severity again.
    let e = a.apply(on(1.0), t(800_000)).expect("ok");
    assert_eq!((e[0].kind, e[0].severity), (K::Raised, Severity::Medium));
}

#[test]
fn shelving_suppresses_until_expiry() {
    let mut a = Alarm::new(&rule(vec![]));
    assert_eq!(go(&mut a, shelve(10_000), 0), [K::Shelved]);
    assert_eq!(
        a.state(),
        &AlarmState::Shelved {
            until: t(10_000),
            reason: "nuisance".into(),
            by: "bob".into()
        }
    );
    assert!(
        go(&mut a, on(1.0), 1_000).is_empty(),
        "no raise while shelved"
    );
    assert!(go(&mut a, Command::Tick, 9_999).is_empty());
    let e = a.apply(Command::Tick, t(10_000)).expect("ok");
    assert_eq!(
        kinds(&e),
        [K::Unshelved, K::Raised],
        "expiry re-evaluates the condition"
    );
    assert_eq!(e[0].actor, SYSTEM);
    assert_eq!(e[0].reason, "shelf expired");
    assert_eq!(a.state(), &AlarmState::ActiveUnacked);

    // Shelving an open alarm keeps its episode: unshelving with the condition gone clears it.
    assert_eq!(go(&mut a, shelve(50_000), 11_000), [K::Shelved]);
    assert!(go(&mut a, off(), 12_000).is_empty());
    assert_eq!(
        go(&mut a, Command::Unshelve { by: "bob".into() }, 13_000),
        [K::Unshelved, K::Cleared]
    );
    assert_eq!(a.state(), &AlarmState::Normal);

    // Shelved open and still active: back to active unacknowledged, no second raise.
    go(&mut a, on(1.0), 14_000);
    go(&mut a, ack(), 14_500);
    go(&mut a, shelve(20_000), 15_000);
    assert_eq!(
        go(&mut a, Command::Unshelve { by: "bob".into() }, 16_000),
        [K::Unshelved]
    );
    assert_eq!(a.state(), &AlarmState::ActiveUnacked);

    // A command after the expiry sees the expired shelf first.
    go(&mut a, shelve(30_000), 17_000);
    let err = a
        .apply(Command::Unshelve { by: "bob".into() }, t(30_000))
        .expect_err("expired");
    assert_eq!(
        err,
        TransitionError::NotShelved {
            state: StateName::ActiveUnacked
        }
    );
}

#[test]
fn out_of_service_raises_nothing_and_re_evaluates() {
    let mut a = Alarm::new(&rule(vec![]));
    let oos = || Command::OutOfService {
        by: "bob".into(),
        reason: "bearing swap".into(),
    };
    let back = || Command::InService { by: "bob".into() };
    assert_eq!(go(&mut a, oos(), 0), [K::OutOfService]);
    assert!(go(&mut a, on(1.0), 1).is_empty());
    assert!(go(&mut a, off(), 2).is_empty());
    assert!(go(&mut a, on(1.0), 3).is_empty());
    assert_eq!(go(&mut a, back(), 4), [K::InService, K::Raised]);
    assert_eq!(a.state(), &AlarmState::ActiveUnacked);
    // Out of service ends a shelf; back in service with the condition gone clears.
    go(&mut a, shelve(1_000), 5);
    assert_eq!(go(&mut a, oos(), 6), [K::OutOfService]);
    go(&mut a, off(), 7);
    assert_eq!(
        go(&mut a, Command::Tick, 2_000),
        Vec::<K>::new(),
        "the shelf is gone"
    );
    assert_eq!(go(&mut a, back(), 2_001), [K::InService, K::Cleared]);
    assert_eq!(a.state(), &AlarmState::Normal);
}

#[test]
fn chattering_latches_and_unlatches_after_ack_and_quiet() {
    let mut a = Alarm::new(&rule(vec![]));
    assert_eq!(go(&mut a, on(1.0), 0), [K::Raised]);
    assert_eq!(go(&mut a, off(), 1_000), [K::Returned]);
    assert_eq!(go(&mut a, on(1.0), 2_000), [K::Reactivated]);
    assert_eq!(go(&mut a, off(), 3_000), [K::Returned]);
    assert_eq!(go(&mut a, on(1.0), 4_000), [K::Reactivated]);
    // The third clear within a minute latches: the alarm stays active.
    assert_eq!(go(&mut a, off(), 5_000), [K::Latched]);
    assert!(a.is_latched());
    assert_eq!(a.state(), &AlarmState::ActiveUnacked);
    for i in 0..10 {
        assert!(
            go(&mut a, on(1.0), 6_000 + 2 * i * 1_000).is_empty(),
            "latched: silent"
        );
        assert!(go(&mut a, off(), 7_000 + 2 * i * 1_000).is_empty());
    }
    // Inactive since 25 000 but not acknowledged: still latched.
    assert!(go(&mut a, Command::Tick, 200_000).is_empty());
    // Acknowledged and inactive for a minute already: clears at once.
    assert_eq!(go(&mut a, ack(), 200_001), [K::Acknowledged, K::Cleared]);
    assert!(!a.is_latched());
    assert_eq!(a.state(), &AlarmState::Normal);
    // Fresh start: raises again.
    assert_eq!(go(&mut a, on(1.0), 300_000), [K::Raised]);
}

#[test]
fn a_latched_acknowledged_alarm_waits_for_a_quiet_minute() {
    let mut a = Alarm::new(&rule(vec![]));
    for i in 0..3 {
        go(&mut a, on(1.0), i * 10_000);
        go(&mut a, off(), i * 10_000 + 5_000);
    }
    assert!(a.is_latched());
    go(&mut a, ack(), 26_000);
    assert_eq!(a.state(), &AlarmState::ActiveAcked);
    assert!(
        go(&mut a, Command::Tick, 84_999).is_empty(),
        "inactive since 25 000"
    );
    assert_eq!(go(&mut a, Command::Tick, 85_000), [K::Cleared]);
    // Cycles spread over more than a minute do not latch.
    let mut b = Alarm::new(&rule(vec![]));
    for i in 0..5 {
        go(&mut b, on(1.0), i * 40_000);
        go(&mut b, off(), i * 40_000 + 1_000);
        go(&mut b, ack(), i * 40_000 + 2_000);
    }
    assert!(!b.is_latched());
}

#[test]
fn monitor_drives_a_sensor_limit_end_to_end() {
    let sensor = crate::SensorKey::new("temp").expect("key");
    let rule = Rule {
        id: "overheat".into(),
        kind: RuleKind::SensorLimit {
            sensor: sensor.clone(),
            above: Some(80.0),
            below: None,
            deadband: 2.0,
            on_delay_ms: 5_000,
            off_delay_ms: 5_000,
        },
        severity: Severity::High,
        escalation: vec![Escalation::Magnitude {
            at_least: 10.0,
            severity: Severity::Critical,
        }],
    };
    rule.check().expect("valid");
    let mut m = Monitor::new(&rule);
    let mut events = vec![];
    for (ts, value) in [
        (0, 70.0),
        (1_000, 85.0),
        (3_000, 86.0),
        (6_000, 92.0),
        (8_000, 79.0),
        (9_000, 77.0),
        (15_000, 76.0),
    ] {
        events.extend(m.observe(&Input::Reading {
            sensor: &sensor,
            ts: t(ts),
            value,
        }));
    }
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.at.as_millis(), e.severity))
        .collect();
    assert_eq!(
        got,
        [
            // Beyond for on_delay (from 1 000); 12 over the limit: critical at once.
            (K::Raised, 6_000, Severity::Critical),
            // Inside the deadband: still active, but no longer beyond the limit.
            (K::DeEscalated, 8_000, Severity::High),
            // Past the deadband at 9 000, gone for off_delay at the next input.
            (K::Returned, 15_000, Severity::High),
        ]
    );
}

#[test]
fn stale_rule_through_the_monitor() {
    let rule = Rule {
        id: "stale".into(),
        kind: RuleKind::Stale { after_ms: 30_000 },
        severity: Severity::Low,
        escalation: vec![Escalation::Duration {
            after_ms: 60_000,
            severity: Severity::Medium,
        }],
    };
    let mut m = Monitor::new(&rule);
    let ch = [crate::SensorKey::new("temp").expect("key")];
    assert!(m
        .observe(&Input::Stale {
            ts: t(0),
            channels: &ch
        })
        .is_empty());
    assert_eq!(kinds(&m.observe(&Input::Tick(t(30_000)))), [K::Raised]);
    assert_eq!(kinds(&m.observe(&Input::Tick(t(90_000)))), [K::Escalated]);
    assert_eq!(
        kinds(&m.observe(&Input::Fresh { ts: t(95_000) })),
        [K::Returned]
    );
}

/// A random plant: inputs and commands at increasing (sometimes equal or earlier) times.
fn random_run(seed: u64, steps: usize) -> Vec<AlarmEvent> {
    random_run_of(RuleKind::Anomaly { k: 2, n: 3 }, seed, steps, None)
}

/// The sensor limit of the random runs: deadband and both delays.
fn random_limit() -> RuleKind {
    RuleKind::SensorLimit {
        sensor: crate::SensorKey::new("temp").expect("key"),
        above: Some(90.0),
        below: Some(65.0),
        deadband: 3.0,
        on_delay_ms: 4_000,
        off_delay_ms: 8_000,
    }
}

/// A random run of a rule of `kind`; with `restart_at`, the monitor is serialized and read back
/// before that step (as the store would after a restart).
fn random_run_of(
    kind: RuleKind,
    seed: u64,
    steps: usize,
    restart_at: Option<usize>,
) -> Vec<AlarmEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let sensor = crate::SensorKey::new("temp").expect("key");
    let rule = Rule {
        id: "r".into(),
        kind,
        severity: Severity::Low,
        escalation: vec![
            Escalation::Magnitude {
                at_least: 2.0,
                severity: Severity::High,
            },
            Escalation::Duration {
                after_ms: 30_000,
                severity: Severity::Medium,
            },
        ],
    };
    let mut m = Monitor::new(&rule);
    let mut ts: i64 = 0;
    let mut all = vec![];
    for step in 0..steps {
        if restart_at == Some(step) {
            let json = serde_json::to_string(&m).expect("ser");
            m = serde_json::from_str(&json).expect("de");
        }
        ts += rng.random_range(-2_000..10_000);
        let at = t(ts);
        let r: u32 = rng.random_range(0..100);
        let before = m.alarm().clone();
        let result = match r {
            0..=29 => Ok(m.observe(&Input::Prediction(&prediction(
                ts,
                rng.random_range(0.0..3.0),
            )))),
            30..=59 => Ok(m.observe(&Input::Reading {
                sensor: &sensor,
                ts: at,
                value: rng.random_range(55.0..100.0),
            })),
            60..=69 => Ok(m.observe(&Input::Tick(at))),
            70..=79 => m.command(ack(), at),
            80..=84 => m.command(shelve(ts + rng.random_range(-5_000..60_000)), at),
            85..=88 => m.command(Command::Unshelve { by: "bob".into() }, at),
            89..=93 => m.command(
                Command::OutOfService {
                    by: "bob".into(),
                    reason: "x".into(),
                },
                at,
            ),
            _ => m.command(Command::InService { by: "bob".into() }, at),
        };
        match result {
            Ok(events) => all.extend(events),
            Err(e) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(m.alarm(), &before);
            }
        }
        check_invariants(m.alarm());
    }
    all
}

fn check_invariants(a: &Alarm) {
    let state = a.state();
    if !state.is_suppressed() {
        assert_eq!(a.is_open(), *state != AlarmState::Normal, "{a:?}");
    }
    if state.is_active() {
        assert!(a.condition().active || a.is_latched(), "{a:?}");
    }
    if *state == AlarmState::Normal {
        assert!(!a.condition().active && !a.is_latched(), "{a:?}");
    }
    if *state == AlarmState::ReturnedUnacked {
        assert!(!a.condition().active && !a.is_latched(), "{a:?}");
    }
    if a.is_latched() {
        assert!(state.is_active(), "{a:?}");
    }
}

#[test]
fn random_sequences_keep_the_invariants() {
    let mut raised = 0;
    for seed in 0..200 {
        let kind = if seed % 2 == 0 {
            RuleKind::Anomaly { k: 2, n: 3 }
        } else {
            random_limit()
        };
        let events = random_run_of(kind, seed, 400, None);
        raised += events.iter().filter(|e| e.kind == K::Raised).count();
        // Time never goes back.
        assert!(events.windows(2).all(|w| w[0].at <= w[1].at), "seed {seed}");
        // Episodes alternate: raised, cleared, raised, ...; one open at most.
        let mut open = false;
        for e in &events {
            match e.kind {
                K::Raised => {
                    assert!(!open, "seed {seed}: raised twice");
                    open = true;
                }
                K::Cleared => {
                    assert!(open, "seed {seed}: cleared while closed");
                    open = false;
                }
                K::Returned | K::Reactivated | K::Latched | K::Escalated | K::DeEscalated => {
                    assert!(open, "seed {seed}: {} outside an episode", e.kind);
                }
                _ => {}
            }
        }
    }
    assert!(
        raised > 1_000,
        "the random runs exercise the alarm ({raised} raised)"
    );
}

#[test]
fn same_inputs_same_events() {
    for seed in [1, 7, 42] {
        let a = random_run(seed, 500);
        assert!(!a.is_empty());
        assert_eq!(a, random_run(seed, 500));
    }
    assert_ne!(random_run(1, 500), random_run(2, 500));
}

#[test]
fn a_restart_from_the_stored_state_changes_nothing() {
    for seed in 0..20 {
        for kind in [RuleKind::Anomaly { k: 2, n: 3 }, random_limit()] {
            let straight = random_run_of(kind.clone(), seed, 300, None);
            let restarted = random_run_of(kind, seed, 300, Some(150));
            assert_eq!(straight, restarted, "seed {seed}");
        }
    }
}

#[test]
fn an_edited_rule_applies_from_the_next_input() {
    let mut m = Monitor::new(&rule(vec![]));
    assert_eq!(
        kinds(&m.observe(&Input::Prediction(&prediction(0, 3.0)))),
        [K::Raised]
    );
    // A new escalation step takes effect at once; the condition keeps its window.
    m.set_rule(&rule(vec![Escalation::Magnitude {
        at_least: 2.0,
        severity: Severity::High,
    }]));
    let e = m.observe(&Input::Prediction(&prediction(1, 3.0)));
    assert_eq!((e[0].kind, e[0].severity), (K::Escalated, Severity::High));
    // A new kind restarts the condition's evaluation; the alarm sees it inactive.
    let mut edited = rule(vec![]);
    edited.kind = RuleKind::Anomaly { k: 2, n: 2 };
    m.set_rule(&edited);
    assert_eq!(
        kinds(&m.observe(&Input::Prediction(&prediction(2, 3.0)))),
        [K::Returned]
    );
    assert_eq!(
        kinds(&m.observe(&Input::Prediction(&prediction(3, 3.0)))),
        [K::Reactivated]
    );
}

#[test]
fn an_alarm_survives_serialization() {
    let mut a = Alarm::new(&rule(vec![]));
    go(&mut a, on(1.0), 0);
    go(&mut a, shelve(10_000), 1);
    let json = serde_json::to_string(&a).expect("ser");
    let mut back: Alarm = serde_json::from_str(&json).expect("de");
    assert_eq!(back, a);
    assert_eq!(go(&mut back, Command::Tick, 10_000), [K::Unshelved]);
}
