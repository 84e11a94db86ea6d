//! What the API answers: response types of their own, built from the core types.
//!
//! Core types are never serialised straight to the wire: a field added to a core type (a
//! password hash on a user, an internal flag) reaches no client until a view shows it, and the
//! wire format does not move when a core type is refactored. The tests below pin each view to
//! the JSON the API has always answered.

use pdm_core::{Bucket, Latest, Machine, Point, Sensor, StoredDeadLetter};
use pdm_ingest::{IngestReport, Rejection};
use serde::Serialize;

/// A machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineView {
    /// Its key.
    pub key: String,
    /// Display name.
    pub name: String,
    /// Free-form kind (`pump`, `motor`, ...).
    pub kind: Option<String>,
    /// Free-form description.
    pub description: Option<String>,
    /// When it was registered, epoch milliseconds.
    pub created_at: i64,
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        Self {
            key: m.key.as_str().to_owned(),
            name: m.name,
            kind: m.kind,
            description: m.description,
            created_at: m.created_at.as_millis(),
        }
    }
}

/// A sensor of a machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensorView {
    /// The machine's key.
    pub machine: String,
    /// The sensor's key.
    pub key: String,
    /// Unit of its values.
    pub unit: Option<String>,
    /// Lowest plausible value.
    pub min: Option<f64>,
    /// Highest plausible value.
    pub max: Option<f64>,
    /// When it was registered, epoch milliseconds.
    pub created_at: i64,
}

impl From<Sensor> for SensorView {
    fn from(s: Sensor) -> Self {
        Self {
            machine: s.machine.as_str().to_owned(),
            key: s.key.as_str().to_owned(),
            unit: s.unit,
            min: s.min,
            max: s.max,
            created_at: s.created_at.as_millis(),
        }
    }
}

/// One raw reading of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PointView {
    /// Epoch milliseconds.
    pub ts: i64,
    /// The value.
    pub value: f64,
}

impl From<Point> for PointView {
    fn from(p: Point) -> Self {
        Self {
            ts: p.ts.as_millis(),
            value: p.value,
        }
    }
}

/// One bucket of an aggregated series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BucketView {
    /// Start of the bucket, epoch milliseconds.
    pub start: i64,
    /// Mean of its values.
    pub avg: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub count: u64,
}

impl From<Bucket> for BucketView {
    fn from(b: Bucket) -> Self {
        Self {
            start: b.start.as_millis(),
            avg: b.avg,
            min: b.min,
            max: b.max,
            count: b.count,
        }
    }
}

/// The latest value of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestView {
    /// The sensor's key.
    pub sensor: String,
    /// Epoch milliseconds.
    pub ts: i64,
    /// The value.
    pub value: f64,
}

impl From<Latest> for LatestView {
    fn from(l: Latest) -> Self {
        Self {
            sensor: l.sensor.as_str().to_owned(),
            ts: l.ts.as_millis(),
            value: l.value,
        }
    }
}

/// One rejected part of a telemetry payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionView {
    /// The rejection kind (`bad_value`, ...).
    pub kind: &'static str,
    /// What was wrong, for a person.
    pub reason: String,
}

impl From<Rejection> for RejectionView {
    fn from(r: Rejection) -> Self {
        Self {
            kind: r.kind.as_str(),
            reason: r.reason,
        }
    }
}

/// The answer to a telemetry payload: what was taken and what was not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngestReportView {
    /// Readings accepted (stored, or already stored).
    pub accepted: usize,
    /// All rejections, counted.
    pub rejected_total: usize,
    /// The first rejections, with their reasons.
    pub rejected: Vec<RejectionView>,
    /// The kind that refused the payload whole, if one did.
    pub fatal: Option<&'static str>,
}

impl From<IngestReport> for IngestReportView {
    fn from(r: IngestReport) -> Self {
        Self {
            accepted: r.accepted,
            rejected_total: r.rejected_total,
            rejected: r.rejected.into_iter().map(Into::into).collect(),
            fatal: r.fatal.map(|k| k.as_str()),
        }
    }
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterView {
    /// Its id (newest is highest).
    pub id: i64,
    /// When it was received, epoch milliseconds.
    pub received_at: i64,
    /// `mqtt`, `http` or `simulator`.
    pub origin: &'static str,
    /// The topic or path it came on.
    pub channel: String,
    /// The machine it named, if it could be read.
    pub machine: Option<String>,
    /// The rejection kind.
    pub kind: &'static str,
    /// What was wrong.
    pub reason: String,
    /// The payload's first bytes, as text (invalid UTF-8 replaced).
    pub payload_head: String,
}

impl From<StoredDeadLetter> for DeadLetterView {
    fn from(r: StoredDeadLetter) -> Self {
        Self {
            id: r.id,
            received_at: r.letter.received_at.as_millis(),
            origin: r.letter.origin.as_str(),
            channel: r.letter.channel,
            machine: r.letter.machine,
            kind: r.letter.kind.as_str(),
            reason: r.letter.reason,
            payload_head: String::from_utf8_lossy(&r.letter.payload_head).into_owned(),
        }
    }
}

/// Converts a list of core values into views.
pub fn views<T, V: From<T>>(items: Vec<T>) -> Vec<V> {
    items.into_iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdm_core::{DeadLetter, MachineKey, Origin, RejectKind, SensorKey, Timestamp};
    use serde_json::to_value;

    fn same<C: Serialize, V: Serialize + From<C>>(core: C) {
        let before = to_value(&core).expect("core");
        let after = to_value(V::from(core)).expect("view");
        assert_eq!(before, after, "the view must answer what the core type did");
    }

    #[test]
    fn views_answer_what_the_core_types_did() {
        let m = |s: &str| MachineKey::new(s).expect("key");
        let k = |s: &str| SensorKey::new(s).expect("key");
        let ts = Timestamp::from_millis(-1_700_000_000_123);
        same::<_, MachineView>(Machine {
            key: m("pump-1"),
            name: "Feed pump".into(),
            kind: Some("pump".into()),
            description: None,
            created_at: ts,
        });
        same::<_, SensorView>(Sensor {
            machine: m("pump-1"),
            key: k("temperature"),
            unit: None,
            min: Some(-20.5),
            max: None,
            created_at: ts,
        });
        same::<_, PointView>(Point { ts, value: 1.25 });
        same::<_, BucketView>(Bucket {
            start: ts,
            avg: 2.5,
            min: 1.0,
            max: 4.0,
            count: 7,
        });
        same::<_, LatestView>(Latest {
            sensor: k("current"),
            ts,
            value: -3.0,
        });
        for kind in &RejectKind::ALL {
            same::<_, RejectionView>(Rejection {
                kind: *kind,
                reason: "why".into(),
            });
            same::<_, IngestReportView>(IngestReport {
                accepted: 2,
                rejected_total: 3,
                rejected: vec![Rejection {
                    kind: *kind,
                    reason: "why".into(),
                }],
                fatal: Some(*kind),
            });
        }
        same::<_, IngestReportView>(IngestReport::default());
    }

    #[test]
    fn dead_letter_view_names_kinds_and_origins_as_serde_does() {
        for origin in [Origin::Mqtt, Origin::Http, Origin::Simulator, Origin::Other] {
            for kind in &RejectKind::ALL {
                let letter = DeadLetter::new(origin, "t", None, *kind, "why", b"x");
                let view = DeadLetterView::from(StoredDeadLetter {
                    id: 1,
                    letter: letter.clone(),
                });
                assert_eq!(to_value(view.kind).ok(), to_value(kind).ok());
                assert_eq!(to_value(view.origin).ok(), to_value(origin).ok());
                assert_eq!(view.received_at, letter.received_at.as_millis());
            }
        }
    }
}
