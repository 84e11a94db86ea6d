//! Alarm system performance after EEMUA 191 (and ISA-18.2): how many alarms an operator gets
//! per 10 minutes, how long the plant spent in an alarm flood, which alarms chatter and which
//! stand.
//!
//! Pure: [`performance`] takes the events and episodes the store returns
//! ([`AlarmStore::alarm_events_between`](crate::AlarmStore::alarm_events_between),
//! [`AlarmStore::alarms_open_at`](crate::AlarmStore::alarms_open_at)) and computes the figures;
//! [`crate::store::alarms::alarm_performance`] reads them from a store. `docs/alarms.md` ("Performance") is the contract.
//!
//! Choices, where EEMUA leaves room:
//!
//! - **Fixed 10-minute intervals aligned to the epoch** (multiples of 600 000 ms, as the API's
//!   buckets), clipped to `[from, to)`: the same alarm falls in the same interval whatever range
//!   is asked, and a flood is counted once. A sliding window would find a few more floods that
//!   straddle two intervals; EEMUA's own figures are per 10 minutes.
//! - An **alarm** is a `raised` event (an episode starts); `reactivated` (the same episode) is
//!   not a new alarm.
//! - **Standing** is judged **at `to`**: episodes open at `to`, not shelved or out of service
//!   then, raised more than 24 h before `to`.

use std::collections::{BTreeMap, HashMap};

use super::types::AlarmEventKind;
use crate::ids::MachineKey;
use crate::model::Timestamp;
use crate::store::AlarmId;

/// The interval EEMUA 191 counts alarms in: 10 minutes.
pub const INTERVAL_MS: i64 = 600_000;
/// More than this many alarms in one interval is a flood.
pub const FLOOD_ABOVE: u64 = 10;
/// An episode open (and not suppressed) for longer than this is a standing alarm: 24 h.
pub const STANDING_AFTER_MS: i64 = 86_400_000;
/// Raise/clear cycles within [`CHATTER_CYCLE_WINDOW_MS`] that make an alarm chatter (the
/// policy's own latch, [`super::CHATTER_CYCLES`]).
pub const CHATTER_CYCLES: usize = super::CHATTER_CYCLES;
/// The window of those cycles (the policy's [`super::CHATTER_WINDOW_MS`]).
pub const CHATTER_CYCLE_WINDOW_MS: i64 = super::CHATTER_WINDOW_MS;

/// The event kinds [`performance`] reads from the range (give these to
/// [`AlarmStore::alarm_events_between`](crate::AlarmStore::alarm_events_between)).
pub const PERFORMANCE_KINDS: &[AlarmEventKind] = &[
    AlarmEventKind::Raised,
    AlarmEventKind::Reactivated,
    AlarmEventKind::Returned,
    AlarmEventKind::Cleared,
    AlarmEventKind::Latched,
    AlarmEventKind::Shelved,
    AlarmEventKind::OutOfService,
];

/// One event of the range, with the alarm it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeEvent {
    /// The alarm (episode).
    pub alarm: AlarmId,
    /// Its machine.
    pub machine: MachineKey,
    /// Its rule.
    pub rule_id: String,
    /// What happened.
    pub kind: AlarmEventKind,
    /// When.
    pub at: Timestamp,
}

/// An episode open at the end of the range, with its events up to then (for suppression).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenEpisode {
    /// The alarm.
    pub alarm: AlarmId,
    /// Its machine.
    pub machine: MachineKey,
    /// Its rule.
    pub rule_id: String,
    /// When it was raised.
    pub opened_at: Timestamp,
    /// Its events (kind and time), in the order written; those after `to` are ignored.
    pub events: Vec<(AlarmEventKind, Timestamp)>,
}

/// The busiest interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// Its start (a multiple of [`INTERVAL_MS`]; the range's start when it is clipped).
    pub start: Timestamp,
    /// Alarms in it.
    pub count: u64,
}

/// Time in flood: intervals with more than [`FLOOD_ABOVE`] alarms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flood {
    /// How many intervals.
    pub intervals: u64,
    /// Their total length within the range, in milliseconds.
    pub duration_ms: i64,
    /// That length as a share of the range, 0 to 1.
    pub share: f64,
}

/// An alarm (machine and rule) that chattered in the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chattering {
    /// The machine.
    pub machine: MachineKey,
    /// The rule.
    pub rule_id: String,
    /// How many times it completed [`CHATTER_CYCLES`] raise/clear cycles within
    /// [`CHATTER_CYCLE_WINDOW_MS`] (each burst counted once; the count starts again after one).
    pub bursts: u64,
    /// How many of its episodes the policy latched for chattering (`latched` events).
    pub latched: u64,
    /// Its alarms (`raised` events) in the range.
    pub raised: u64,
}

/// An episode standing at the end of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The alarm.
    pub alarm: AlarmId,
    /// The machine.
    pub machine: MachineKey,
    /// The rule.
    pub rule_id: String,
    /// When it was raised.
    pub opened_at: Timestamp,
    /// How long it had been open at `to`, in milliseconds.
    pub open_for_ms: i64,
}

/// A figure set beside its EEMUA 191 benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rating {
    /// The verdict's name (`very_likely_acceptable`, `manageable`, ...).
    pub level: &'static str,
    /// The benchmark, in words.
    pub target: &'static str,
    /// Whether the figure meets the benchmark.
    pub met: bool,
}

/// The figures beside their benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Benchmarks {
    /// The average rate (EEMUA 191 table of long-term average rates).
    pub average: Rating,
    /// The peak rate (EEMUA 191 table of rates after an upset).
    pub peak: Rating,
    /// Time in flood (ISA-18.2: under 1 % of the time).
    pub flood: Rating,
    /// Chattering alarms (target: none).
    pub chattering: Rating,
    /// Standing alarms (target: fewer than 5 at any time, each with a plan).
    pub standing: Rating,
}

/// The EEMUA 191 figures of one range.
#[derive(Debug, Clone, PartialEq)]
pub struct Performance {
    /// The range's start.
    pub from: Timestamp,
    /// The range's end (exclusive).
    pub to: Timestamp,
    /// The interval the rates count in ([`INTERVAL_MS`]).
    pub interval_ms: i64,
    /// Alarms (`raised` events) in the range.
    pub alarms: u64,
    /// Alarms per 10 minutes of the range (`alarms * 600 000 / (to - from)`).
    pub average_per_interval: f64,
    /// The busiest interval (the earliest of equals); `None` without alarms.
    pub peak: Option<Peak>,
    /// Time in flood.
    pub flood: Flood,
    /// Alarms that chattered, most bursts first (then by machine and rule).
    pub chattering: Vec<Chattering>,
    /// Episodes standing at `to`, oldest first.
    pub standing: Vec<Standing>,
    /// The figures beside EEMUA 191's benchmarks.
    pub benchmarks: Benchmarks,
}

/// The interval containing `t`: its start (a multiple of [`INTERVAL_MS`]).
fn interval_of(t: i64) -> i64 {
    t.div_euclid(INTERVAL_MS) * INTERVAL_MS
}

/// Computes the figures of `[from, to)` (`from < to`; otherwise the rates are 0) from the
/// range's events (any order; kinds other than [`PERFORMANCE_KINDS`] and events outside the
/// range are ignored) and the episodes open at `to`.
pub fn performance(
    from: Timestamp,
    to: Timestamp,
    events: &[RangeEvent],
    open: &[OpenEpisode],
) -> Performance {
    let (f, t) = (from.as_millis(), to.as_millis());
    let span = t.saturating_sub(f).max(0);
    let mut in_range: Vec<&RangeEvent> = events
        .iter()
        .filter(|e| (f..t).contains(&e.at.as_millis()))
        .collect();
    // Time order; the input order (the order written) among equal instants.
    in_range.sort_by_key(|e| e.at);

    let mut per_interval: BTreeMap<i64, u64> = BTreeMap::new();
    let mut alarms = 0u64;
    for e in in_range.iter().filter(|e| e.kind == AlarmEventKind::Raised) {
        alarms += 1;
        *per_interval
            .entry(interval_of(e.at.as_millis()))
            .or_default() += 1;
    }
    let average_per_interval = if span > 0 {
        alarms as f64 * INTERVAL_MS as f64 / span as f64
    } else {
        0.0
    };
    let peak = per_interval
        .iter()
        // max_by_key keeps the last of equals; the earliest is wanted.
        .fold(None::<(i64, u64)>, |best, (&start, &count)| match best {
            Some((_, c)) if c >= count => best,
            _ => Some((start, count)),
        })
        .map(|(start, count)| Peak {
            start: Timestamp::from_millis(start.max(f)),
            count,
        });
    let (mut flood_intervals, mut flood_ms) = (0u64, 0i64);
    for (&start, &count) in &per_interval {
        if count > FLOOD_ABOVE {
            flood_intervals += 1;
            flood_ms += (start + INTERVAL_MS).min(t) - start.max(f);
        }
    }
    let flood = Flood {
        intervals: flood_intervals,
        duration_ms: flood_ms,
        share: if span > 0 {
            flood_ms as f64 / span as f64
        } else {
            0.0
        },
    };

    let chattering = chattering(&in_range);
    let standing = standing(to, open);
    let benchmarks = Benchmarks {
        average: rate_rating(average_per_interval),
        peak: peak_rating(peak.map_or(0, |p| p.count)),
        flood: Rating {
            level: if flood.share < 0.01 {
                "acceptable"
            } else {
                "excessive"
            },
            target: "less than 1 % of the time in flood (more than 10 alarms in 10 minutes)",
            met: flood.share < 0.01,
        },
        chattering: Rating {
            level: if chattering.is_empty() {
                "acceptable"
            } else {
                "action_needed"
            },
            target: "no chattering alarms",
            met: chattering.is_empty(),
        },
        standing: Rating {
            level: if standing.len() < 5 {
                "acceptable"
            } else {
                "excessive"
            },
            target: "fewer than 5 standing alarms (active for more than 24 h)",
            met: standing.len() < 5,
        },
    };
    Performance {
        from,
        to,
        interval_ms: INTERVAL_MS,
        alarms,
        average_per_interval,
        peak,
        flood,
        chattering,
        standing,
        benchmarks,
    }
}

/// EEMUA 191's long-term average rates, per 10 minutes: under 1 very likely acceptable, up to
/// 2 (one per 5 minutes) manageable, up to 10 (one per minute) likely over-demanding, more
/// very likely unacceptable.
fn rate_rating(per_10_min: f64) -> Rating {
    let level = if per_10_min < 1.0 {
        "very_likely_acceptable"
    } else if per_10_min <= 2.0 {
        "manageable"
    } else if per_10_min <= 10.0 {
        "likely_over_demanding"
    } else {
        "very_likely_unacceptable"
    };
    Rating {
        level,
        target: "less than 1 alarm per 10 minutes on average",
        met: per_10_min < 1.0,
    }
}

/// EEMUA 191's rates in the 10 minutes after an upset: at most 10 manageable, up to 100 hard
/// to cope with, more excessive.
fn peak_rating(count: u64) -> Rating {
    let level = if count <= FLOOD_ABOVE {
        "manageable"
    } else if count <= 100 {
        "hard_to_cope_with"
    } else {
        "excessive"
    };
    Rating {
        level,
        target: "at most 10 alarms in any 10 minutes",
        met: count <= FLOOD_ABOVE,
    }
}

/// Per machine and rule: raise/clear cycles (an on edge, `raised` or `reactivated`, then an off
/// edge, `returned`, `cleared` or `latched`), bursts of [`CHATTER_CYCLES`] cycles starting within
/// [`CHATTER_CYCLE_WINDOW_MS`] of the last one's end, and `latched` events. A shelf or out of
/// service starts the count again, as in the policy. `events` are in time order.
fn chattering(events: &[&RangeEvent]) -> Vec<Chattering> {
    #[derive(Default)]
    struct Track {
        on: Option<i64>,
        cycles: Vec<i64>,
        bursts: u64,
        latched: u64,
        raised: u64,
    }
    let mut tracks: HashMap<(&MachineKey, &str), Track> = HashMap::new();
    for e in events {
        let tr = tracks.entry((&e.machine, e.rule_id.as_str())).or_default();
        let at = e.at.as_millis();
        match e.kind {
            AlarmEventKind::Raised | AlarmEventKind::Reactivated => {
                if e.kind == AlarmEventKind::Raised {
                    tr.raised += 1;
                }
                tr.on.get_or_insert(at);
            }
            AlarmEventKind::Returned | AlarmEventKind::Cleared | AlarmEventKind::Latched => {
                if e.kind == AlarmEventKind::Latched {
                    tr.latched += 1;
                }
                // A clear after `returned` (an acknowledgement) ends no cycle: the off edge was
                // the `returned`.
                if let Some(start) = tr.on.take() {
                    tr.cycles.push(start);
                    tr.cycles.retain(|&s| s >= at - CHATTER_CYCLE_WINDOW_MS);
                    if tr.cycles.len() >= CHATTER_CYCLES {
                        tr.bursts += 1;
                        tr.cycles.clear();
                    }
                }
            }
            AlarmEventKind::Shelved | AlarmEventKind::OutOfService => {
                tr.on = None;
                tr.cycles.clear();
            }
            _ => {}
        }
    }
    let mut out: Vec<Chattering> = tracks
        .into_iter()
        .filter(|(_, tr)| tr.bursts > 0 || tr.latched > 0)
        .map(|((machine, rule), tr)| Chattering {
            machine: machine.clone(),
            rule_id: rule.to_owned(),
            bursts: tr.bursts,
            latched: tr.latched,
            raised: tr.raised,
        })
        .collect();
    out.sort_by(|a, b| {
        (b.bursts, b.latched)
            .cmp(&(a.bursts, a.latched))
            .then_with(|| a.machine.as_str().cmp(b.machine.as_str()))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    out
}

/// Episodes open at `to`, raised more than [`STANDING_AFTER_MS`] before it, and not suppressed
/// then: the last of their `shelved` / `out_of_service` / `unshelved` / `in_service` events
/// before `to` is not a suppression.
fn standing(to: Timestamp, open: &[OpenEpisode]) -> Vec<Standing> {
    let t = to.as_millis();
    let mut out: Vec<Standing> = open
        .iter()
        .filter(|ep| ep.opened_at.as_millis() < t)
        .filter(|ep| t - ep.opened_at.as_millis() > STANDING_AFTER_MS)
        .filter(|ep| {
            let mut suppressed = false;
            for (kind, at) in &ep.events {
                if at.as_millis() >= t {
                    continue;
                }
                match kind {
                    AlarmEventKind::Shelved | AlarmEventKind::OutOfService => suppressed = true,
                    AlarmEventKind::Unshelved | AlarmEventKind::InService => suppressed = false,
                    AlarmEventKind::Cleared => return false,
                    _ => {}
                }
            }
            !suppressed
        })
        .map(|ep| Standing {
            alarm: ep.alarm,
            machine: ep.machine.clone(),
            rule_id: ep.rule_id.clone(),
            opened_at: ep.opened_at,
            open_for_ms: t - ep.opened_at.as_millis(),
        })
        .collect();
    out.sort_by_key(|s| (s.opened_at, s.alarm));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_700_000_400_000; // a multiple of 10 minutes

    fn ev(alarm: i64, machine: &str, rule: &str, kind: AlarmEventKind, at: i64) -> RangeEvent {
        RangeEvent {
            alarm: AlarmId(alarm),
            machine: MachineKey::new(machine).expect("key"),
            rule_id: rule.into(),
            kind,
            at: Timestamp::from_millis(at),
        }
    }

    fn raised(alarm: i64, at: i64) -> RangeEvent {
        ev(alarm, "pump-1", "hot", AlarmEventKind::Raised, at)
    }

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    #[test]
    fn the_interval_grid_is_aligned_to_the_epoch() {
        assert_eq!(T0 % INTERVAL_MS, 0);
        assert_eq!(interval_of(T0 + 599_999), T0);
        assert_eq!(interval_of(T0 + 600_000), T0 + INTERVAL_MS);
        assert_eq!(interval_of(-1), -INTERVAL_MS);
    }

    #[test]
    fn rates_peak_and_flood_by_hand() {
        // One hour, six intervals. Interval 0: 2 alarms; interval 2: 12 (a flood); interval
        // 5: 11 (a flood, the last interval); one alarm before the range, one at `to`.
        let mut events = vec![raised(1, T0 + MIN), raised(2, T0 + 9 * MIN)];
        for i in 0..12 {
            events.push(raised(10 + i, T0 + 20 * MIN + i * 1_000));
        }
        for i in 0..11 {
            events.push(raised(30 + i, T0 + 50 * MIN + i * 1_000));
        }
        events.push(raised(99, T0 - 1));
        events.push(raised(100, T0 + 60 * MIN));
        // Not alarms: a reactivation, a clear.
        events.push(ev(
            2,
            "pump-1",
            "hot",
            AlarmEventKind::Reactivated,
            T0 + 2 * MIN,
        ));
        events.push(ev(
            1,
            "pump-1",
            "hot",
            AlarmEventKind::Cleared,
            T0 + 3 * MIN,
        ));
        let p = performance(ts(T0), ts(T0 + 60 * MIN), &events, &[]);
        assert_eq!(p.alarms, 25);
        // 25 alarms in 6 intervals.
        assert!((p.average_per_interval - 25.0 / 6.0).abs() < 1e-12);
        assert_eq!(
            p.peak,
            Some(Peak {
                start: ts(T0 + 20 * MIN),
                count: 12
            })
        );
        assert_eq!(p.flood.intervals, 2);
        assert_eq!(p.flood.duration_ms, 20 * MIN);
        assert!((p.flood.share - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(p.benchmarks.average.level, "likely_over_demanding");
        assert!(!p.benchmarks.average.met);
        assert_eq!(p.benchmarks.peak.level, "hard_to_cope_with");
        assert!(!p.benchmarks.flood.met);
    }

    #[test]
    fn intervals_are_clipped_to_the_range() {
        // From 5 minutes into an interval, 25 minutes long: the first interval has 5 minutes
        // of the range. 11 alarms in it are a flood of 5 minutes.
        let from = T0 + 5 * MIN;
        let events: Vec<_> = (0..11).map(|i| raised(i, from + i * 1_000)).collect();
        let p = performance(ts(from), ts(from + 25 * MIN), &events, &[]);
        assert_eq!(p.peak.map(|p| (p.start, p.count)), Some((ts(from), 11)));
        assert_eq!(p.flood.duration_ms, 5 * MIN);
        assert!((p.flood.share - 0.2).abs() < 1e-12);
        // 11 alarms in 2.5 intervals.
        assert!((p.average_per_interval - 4.4).abs() < 1e-12);
    }

    #[test]
    fn a_quiet_range_meets_every_benchmark() {
        let events = vec![raised(1, T0 + MIN), raised(2, T0 + 25 * MIN)];
        let p = performance(ts(T0), ts(T0 + 60 * MIN), &events, &[]);
        assert!((p.average_per_interval - 2.0 / 6.0).abs() < 1e-12);
        // Two intervals with one alarm each: the earlier is the peak.
        assert_eq!(p.peak.map(|p| (p.start, p.count)), Some((ts(T0), 1)));
        assert_eq!(p.flood.intervals, 0);
        assert_eq!(p.benchmarks.average.level, "very_likely_acceptable");
        for r in [
            &p.benchmarks.average,
            &p.benchmarks.peak,
            &p.benchmarks.flood,
            &p.benchmarks.chattering,
            &p.benchmarks.standing,
        ] {
            assert!(r.met, "{r:?}");
        }
        let empty = performance(ts(T0), ts(T0 + 60 * MIN), &[], &[]);
        assert_eq!((empty.alarms, empty.peak), (0, None));
        assert_eq!(empty.average_per_interval, 0.0);
    }

    #[test]
    fn chattering_counts_cycles_within_a_minute_and_latches() {
        use AlarmEventKind::*;
        let e = |kind, at| ev(1, "pump-1", "hot", kind, T0 + at);
        let mut events = vec![
            // Three episodes within 50 s: one burst.
            e(Raised, 0),
            e(Cleared, 5_000),
            e(Raised, 20_000),
            e(Cleared, 25_000),
            e(Raised, 40_000),
            e(Cleared, 50_000),
            // An unacknowledged alarm whose condition comes and goes (returned/reactivated),
            // the third cycle latched by the policy: a second burst and one latch.
            e(Raised, 100_000),
            e(Returned, 101_000),
            e(Reactivated, 102_000),
            e(Returned, 103_000),
            e(Reactivated, 104_000),
            e(Latched, 105_000),
            e(Cleared, 300_000), // unlatched later: no open cycle, nothing counted
        ];
        // Another rule with three cycles spread over 3 minutes: not chattering.
        for (i, at) in [0, 90_000, 180_000].into_iter().enumerate() {
            let id = 10 + i as i64;
            events.push(ev(id, "pump-1", "cold", Raised, T0 + at));
            events.push(ev(id, "pump-1", "cold", Cleared, T0 + at + 1_000));
        }
        // A shelf in the middle of a third rule's cycles starts the count again.
        for (kind, at) in [
            (Raised, 0),
            (Cleared, 1_000),
            (Raised, 2_000),
            (Cleared, 3_000),
            (Shelved, 4_000),
            (Raised, 5_000),
            (Cleared, 6_000),
        ] {
            events.push(ev(20, "pump-2", "hot", kind, T0 + at));
        }
        let p = performance(ts(T0), ts(T0 + 60 * MIN), &events, &[]);
        assert_eq!(
            p.chattering,
            vec![Chattering {
                machine: MachineKey::new("pump-1").expect("key"),
                rule_id: "hot".into(),
                bursts: 2,
                latched: 1,
                raised: 4,
            }]
        );
        assert!(!p.benchmarks.chattering.met);
    }

    #[test]
    fn standing_is_judged_at_the_end_of_the_range() {
        use AlarmEventKind::*;
        let to = T0 + 48 * 60 * MIN;
        let ep = |alarm: i64, opened: i64, events: Vec<(AlarmEventKind, i64)>| OpenEpisode {
            alarm: AlarmId(alarm),
            machine: MachineKey::new("pump-1").expect("key"),
            rule_id: format!("r{alarm}"),
            opened_at: ts(opened),
            events: events.into_iter().map(|(k, at)| (k, ts(at))).collect(),
        };
        let day = STANDING_AFTER_MS;
        let open = vec![
            // Open 30 h: standing.
            ep(1, to - 30 * 60 * MIN, vec![(Raised, to - 30 * 60 * MIN)]),
            // Exactly 24 h: not yet.
            ep(2, to - day, vec![(Raised, to - day)]),
            // Shelved and still shelved at `to`: not standing.
            ep(
                3,
                to - 2 * day,
                vec![(Raised, to - 2 * day), (Shelved, to - day)],
            ),
            // Shelved, then unshelved: standing.
            ep(
                4,
                to - 2 * day + 1,
                vec![
                    (Raised, to - 2 * day + 1),
                    (Shelved, to - day),
                    (Unshelved, to - 1),
                ],
            ),
            // Out of service, back in service only after `to`: not standing.
            ep(
                5,
                to - 2 * day,
                vec![
                    (Raised, to - 2 * day),
                    (OutOfService, to - 5),
                    (InService, to),
                ],
            ),
        ];
        let p = performance(ts(to - MIN), ts(to), &[], &open);
        let got: Vec<(i64, i64)> = p
            .standing
            .iter()
            .map(|s| (s.alarm.0, s.open_for_ms))
            .collect();
        assert_eq!(got, [(4, 2 * day - 1), (1, 30 * 60 * MIN)]);
        assert!(p.benchmarks.standing.met);
    }
}
