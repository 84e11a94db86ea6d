//! Domain types: timestamps, readings, batches, machines, sensors and dead letters.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::{MachineKey, SensorKey};

/// A point in time, in whole milliseconds since the Unix epoch (UTC).
///
/// Milliseconds are the resolution of the wire format and of storage; sensor clocks rarely
/// justify more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self(ms)
    }

    /// This timestamp moved by `ms` milliseconds (saturating).
    pub const fn add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }
}

/// One measured value of one sensor of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// The machine that sent it.
    pub machine: MachineKey,
    /// The sensor within that machine.
    pub sensor: SensorKey,
    /// When it was measured (device time).
    pub ts: Timestamp,
    /// The value, always finite.
    pub value: f64,
}

/// Where an input came from, kept with dead letters and in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Origin {
    /// An MQTT message.
    Mqtt,
    /// An HTTP request.
    Http,
    /// The in-process simulator.
    Simulator,
    /// Anything else an embedding application feeds in.
    Other,
}

impl Origin {
    /// Lowercase name, as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Mqtt => "mqtt",
            Origin::Http => "http",
            Origin::Simulator => "simulator",
            Origin::Other => "other",
        }
    }

    /// Parses the lowercase name back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mqtt" => Origin::Mqtt,
            "http" => Origin::Http,
            "simulator" => Origin::Simulator,
            "other" => Origin::Other,
            _ => return None,
        })
    }
}

/// How many bytes of a rejected payload a dead letter keeps.
pub const DEAD_LETTER_PAYLOAD_BYTES: usize = 256;

/// Why an input, or one item of it, was rejected. Stable names, used as metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RejectKind {
    /// Not JSON, or JSON of the wrong shape.
    Malformed,
    /// Larger than the configured limit.
    Oversized,
    /// A machine or sensor key that is not a valid slug.
    BadKey,
    /// The machine is not registered and auto-registration is off.
    UnknownMachine,
    /// The sensor is not registered and auto-registration is off.
    UnknownSensor,
    /// A value that is missing, not a number, NaN or infinite.
    BadValue,
    /// A value outside the sensor's plausible range.
    OutOfRange,
    /// A timestamp that is missing, unparseable, or outside the accepted window around now.
    BadTimestamp,
    /// A topic that does not match `pdm/{machine}/telemetry`.
    BadTopic,
}

impl RejectKind {
    /// All kinds, for metrics.
    pub const ALL: [RejectKind; 9] = [
        RejectKind::Malformed,
        RejectKind::Oversized,
        RejectKind::BadKey,
        RejectKind::UnknownMachine,
        RejectKind::UnknownSensor,
        RejectKind::BadValue,
        RejectKind::OutOfRange,
        RejectKind::BadTimestamp,
        RejectKind::BadTopic,
    ];

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Malformed => "malformed",
            RejectKind::Oversized => "oversized",
            RejectKind::BadKey => "bad_key",
            RejectKind::UnknownMachine => "unknown_machine",
            RejectKind::UnknownSensor => "unknown_sensor",
            RejectKind::BadValue => "bad_value",
            RejectKind::OutOfRange => "out_of_range",
            RejectKind::BadTimestamp => "bad_timestamp",
            RejectKind::BadTopic => "bad_topic",
        }
    }

    /// Parses a stable name back.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A rejected input (or one rejected item of an input), kept for operators to inspect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// When it was received (server time).
    pub received_at: Timestamp,
    /// Where it came from.
    pub origin: Origin,
    /// MQTT topic or HTTP path.
    pub channel: String,
    /// The machine named by the topic or path, when it could be read.
    pub machine: Option<String>,
    /// Category of the problem.
    pub kind: RejectKind,
    /// Human-readable reason naming the problem.
    pub reason: String,
    /// The first [`DEAD_LETTER_PAYLOAD_BYTES`] bytes of the payload.
    pub payload_head: Vec<u8>,
}

impl DeadLetter {
    /// A dead letter keeping at most [`DEAD_LETTER_PAYLOAD_BYTES`] bytes of `payload`.
    pub fn new(
        origin: Origin,
        channel: impl Into<String>,
        machine: Option<String>,
        kind: RejectKind,
        reason: impl Into<String>,
        payload: &[u8],
    ) -> Self {
        let head = &payload[..payload.len().min(DEAD_LETTER_PAYLOAD_BYTES)];
        Self {
            received_at: Timestamp::now(),
            origin,
            channel: channel.into(),
            machine,
            kind,
            reason: reason.into(),
            payload_head: head.to_vec(),
        }
    }
}

/// What one write to the store carries: valid readings and the dead letters found beside them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Valid readings.
    pub readings: Vec<Reading>,
    /// Rejected inputs.
    pub dead_letters: Vec<DeadLetter>,
}

impl Batch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.readings.is_empty() && self.dead_letters.is_empty()
    }

    /// Moves everything of `other` into `self`.
    pub fn append(&mut self, other: &mut Batch) {
        self.readings.append(&mut other.readings);
        self.dead_letters.append(&mut other.dead_letters);
    }
}

/// A registered machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Its key.
    pub key: MachineKey,
    /// Display name.
    pub name: String,
    /// Kind of machine (`pump`, `motor`, ...), free text.
    pub kind: Option<String>,
    /// Free-text description (location, asset number, ...).
    pub description: Option<String>,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// Fields to register a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewMachine {
    /// Its key.
    pub key: MachineKey,
    /// Display name; the key when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Kind of machine.
    #[serde(default)]
    pub kind: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A partial update of a machine: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MachineUpdate {
    /// New display name.
    #[serde(default)]
    pub name: Option<String>,
    /// New kind.
    #[serde(default, deserialize_with = "present")]
    pub kind: Option<Option<String>>,
    /// New description.
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Option<String>>,
}

/// A registered sensor of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// Its machine.
    pub machine: MachineKey,
    /// Its key within the machine.
    pub key: SensorKey,
    /// Unit of measurement (`degC`, `mm/s`, `A`, `bar`, `m3/h`).
    pub unit: Option<String>,
    /// Lowest plausible value; readings below are dead letters.
    pub min: Option<f64>,
    /// Highest plausible value; readings above are dead letters.
    pub max: Option<f64>,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// Fields to register a sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSensor {
    /// Its key within the machine.
    pub key: SensorKey,
    /// Unit of measurement.
    #[serde(default)]
    pub unit: Option<String>,
    /// Lowest plausible value.
    #[serde(default)]
    pub min: Option<f64>,
    /// Highest plausible value.
    #[serde(default)]
    pub max: Option<f64>,
}

/// A partial update of a sensor: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SensorUpdate {
    /// New unit.
    #[serde(default, deserialize_with = "present")]
    pub unit: Option<Option<String>>,
    /// New lowest plausible value.
    #[serde(default, deserialize_with = "present")]
    pub min: Option<Option<f64>>,
    /// New highest plausible value.
    #[serde(default, deserialize_with = "present")]
    pub max: Option<Option<f64>>,
}

/// Tells a field given as `null` (`Some(None)`: clear it) from a field left out (`None`: keep it).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Checks that a plausible range is well formed.
pub fn check_range(min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    for (name, v) in [("min", min), ("max", max)] {
        if let Some(v) = v {
            if !v.is_finite() {
                return Err(format!("{name} must be a finite number"));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(format!("min ({lo}) is greater than max ({hi})"));
        }
    }
    Ok(())
}

/// One stored value returned by a raw range query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// When it was measured.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
}

/// Aggregates of one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket (aligned to the bucket width since the epoch).
    pub start: Timestamp,
    /// Mean of the values.
    pub avg: f64,
    /// Lowest value.
    pub min: f64,
    /// Highest value.
    pub max: f64,
    /// Number of values.
    pub count: u64,
}

/// The latest stored value of one sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    /// The sensor.
    pub sensor: SensorKey,
    /// When it was measured.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
}

/// A time range query for one sensor of one machine; `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeQuery {
    /// The machine.
    pub machine: MachineKey,
    /// The sensor.
    pub sensor: SensorKey,
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    /// At most this many points (raw) or buckets (bucketed), oldest first.
    pub limit: u32,
}

/// A time range of every sensor of one machine; `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, PartialEq)]
pub struct MachineRangeQuery {
    /// The machine.
    pub machine: MachineKey,
    /// Inclusive start.
    pub from: Timestamp,
    /// Exclusive end.
    pub to: Timestamp,
    /// At most this many readings, oldest first (by timestamp, then sensor key); at least 1.
    pub limit: u32,
}

/// Which dead letters [`TelemetryStore::prune_dead_letters`](crate::TelemetryStore::prune_dead_letters)
/// deletes: those received before `received_before`, then all but the newest `keep_newest`.
/// Each limit is off when `None`; with both off nothing is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterPrune {
    /// Delete letters received (server time) strictly before this.
    pub received_before: Option<Timestamp>,
    /// Then keep at most this many, the newest (highest id); `Some(0)` deletes them all.
    pub keep_newest: Option<u64>,
}

/// Filter for listing dead letters, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterQuery {
    /// Only those naming this machine.
    pub machine: Option<String>,
    /// Only those of this kind.
    pub kind: Option<RejectKind>,
    /// Only those older than this id (the last id of the previous page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A stored dead letter with its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredDeadLetter {
    /// Row id, increasing.
    pub id: i64,
    /// The dead letter.
    #[serde(flatten)]
    pub letter: DeadLetter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_tell_null_from_absent() {
        let u: SensorUpdate = serde_json::from_str(r#"{"unit": null, "max": 5}"#).expect("json");
        assert_eq!(u.unit, Some(None));
        assert_eq!(u.min, None);
        assert_eq!(u.max, Some(Some(5.0)));
        assert!(serde_json::from_str::<SensorUpdate>(r#"{"units": "A"}"#).is_err());
    }

    #[test]
    fn ranges_are_checked() {
        assert!(check_range(Some(1.0), Some(2.0)).is_ok());
        assert!(check_range(None, None).is_ok());
        assert!(check_range(Some(3.0), Some(2.0)).is_err());
        assert!(check_range(Some(f64::NAN), None).is_err());
    }

    #[test]
    fn dead_letters_keep_only_the_head() {
        let payload = vec![b'x'; 1000];
        let d = DeadLetter::new(
            Origin::Mqtt,
            "t",
            None,
            RejectKind::Malformed,
            "r",
            &payload,
        );
        assert_eq!(d.payload_head.len(), DEAD_LETTER_PAYLOAD_BYTES);
    }
}
