//! The telemetry payload format shared by MQTT and HTTP, and its syntactic validation.
//!
//! A payload is one JSON object, or a JSON array of such objects:
//!
//! ```json
//! {"ts": 1767225600000, "values": {"temperature": 61.5, "vibration_rms": 2.1}}
//! ```
//!
//! `ts` is epoch milliseconds (an integer) or an RFC 3339 string; `values` maps sensor keys to
//! numbers. MQTT messages arrive on `pdm/{machine}/telemetry`, HTTP requests on
//! `/api/v1/machines/{machine}/telemetry`.
//!
//! Decoding is lenient where it can be: a bad item or value is reported as a [`Problem`] and the
//! rest of the message still goes through. Only a payload that is too large, not JSON, or not an
//! object or array fails whole ([`DecodeError`]).
//!
//! Values are kept as borrowed raw JSON text until checked, so a number too large for `f64`
//! (`1e999`) becomes a per-value problem instead of failing the whole message, and decoding
//! allocates little besides the readings themselves.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use pdm_core::{ConfigError, ConfigResult, MachineKey, Reading, RejectKind, SensorKey, Timestamp};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Topics of telemetry start with this.
pub const TOPIC_PREFIX: &str = "pdm/";
/// Topics of telemetry end with this.
pub const TOPIC_SUFFIX: &str = "/telemetry";
/// The MQTT topic filter matching every machine's telemetry.
pub const DEFAULT_TOPIC_FILTER: &str = "pdm/+/telemetry";

/// The MQTT topic a machine publishes its telemetry on: `pdm/{machine}/telemetry`.
pub fn topic(machine: &MachineKey) -> String {
    format!("{TOPIC_PREFIX}{machine}{TOPIC_SUFFIX}")
}

/// A topic that is not of the form `pdm/{machine}/telemetry`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("topic does not match pdm/{{machine}}/telemetry")]
pub struct BadTopic;

/// The machine segment of a telemetry topic, not yet checked as a key.
///
/// ```
/// use pdm_ingest::codec::parse_topic;
/// assert_eq!(parse_topic("pdm/pump-1/telemetry"), Ok("pump-1"));
/// assert!(parse_topic("pdm/pump-1/status").is_err());
/// assert!(parse_topic("pdm/a/b/telemetry").is_err());
/// ```
pub fn parse_topic(topic: &str) -> Result<&str, BadTopic> {
    let machine = topic
        .strip_prefix(TOPIC_PREFIX)
        .and_then(|rest| rest.strip_suffix(TOPIC_SUFFIX))
        .ok_or(BadTopic)?;
    if machine.is_empty() || machine.contains('/') {
        return Err(BadTopic);
    }
    Ok(machine)
}

/// Limits of the codec. Shared by the MQTT source and the HTTP handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CodecConfig {
    /// Largest payload accepted, in bytes; larger ones are rejected whole (`oversized`).
    pub max_payload_bytes: usize,
    /// Most items in one array payload; more are rejected whole (`oversized`).
    pub max_items: usize,
    /// Oldest accepted timestamp, in seconds before the server time; `0` accepts any age.
    pub max_past_secs: u64,
    /// Latest accepted timestamp, in seconds after the server time (device clocks drift);
    /// `0` accepts any.
    pub max_future_secs: u64,
    /// Most dead letters kept for one message; further problems of the same message are
    /// summed up in one more dead letter, so a single bad message cannot flood the store.
    pub max_dead_letters_per_message: usize,
}

/// Default of [`CodecConfig::max_payload_bytes`]: 1 MiB.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 1 << 20;

impl Default for CodecConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            max_items: 10_000,
            max_past_secs: 365 * 24 * 3600,
            max_future_secs: 600,
            max_dead_letters_per_message: 100,
        }
    }
}

/// The largest MQTT packet the protocol allows; no payload can be larger.
const MQTT_MAX_PACKET: usize = 268_435_455;

impl CodecConfig {
    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> ConfigResult {
        if self.max_payload_bytes < 2 {
            return Err(ConfigError::new(
                "codec.max_payload_bytes",
                format!(
                    "must be at least 2 (the smallest payload is `{{}}`) (got {})",
                    self.max_payload_bytes
                ),
            ));
        }
        if self.max_payload_bytes > MQTT_MAX_PACKET {
            return Err(ConfigError::new(
                "codec.max_payload_bytes",
                format!(
                    "must be at most {MQTT_MAX_PACKET} (the MQTT packet limit) (got {})",
                    self.max_payload_bytes
                ),
            ));
        }
        if self.max_items == 0 {
            return Err(ConfigError::new(
                "codec.max_items",
                "must be at least 1 (got 0)",
            ));
        }
        if self.max_dead_letters_per_message == 0 {
            return Err(ConfigError::new(
                "codec.max_dead_letters_per_message",
                "must be at least 1 (got 0)",
            ));
        }
        // Windows beyond a few thousand years overflow millisecond arithmetic for nothing.
        const MAX_WINDOW: u64 = 100 * 365 * 24 * 3600;
        for (name, v) in [
            ("codec.max_past_secs", self.max_past_secs),
            ("codec.max_future_secs", self.max_future_secs),
        ] {
            if v > MAX_WINDOW {
                return Err(ConfigError::new(
                    name,
                    format!(
                        "must be at most {MAX_WINDOW} (100 years), or 0 for no limit (got {v})"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A payload rejected whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// [`RejectKind::Oversized`] or [`RejectKind::Malformed`].
    pub kind: RejectKind,
    /// What is wrong, with the JSON parser's line and column when it is a syntax error.
    pub reason: String,
}

/// One rejected item or value of a payload whose other items went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Index of the item in an array payload; `None` for a single-object payload.
    pub item: Option<usize>,
    /// Category.
    pub kind: RejectKind,
    /// What is wrong, naming the item, the sensor and the value.
    pub reason: String,
}

/// What a payload decoded to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Readings that passed the syntactic checks (the catalog has not seen them yet).
    pub readings: Vec<Reading>,
    /// For each reading, the index of the item it came from.
    pub reading_items: Vec<u32>,
    /// Problems found, at most [`CodecConfig::max_dead_letters_per_message`] of them.
    pub problems: Vec<Problem>,
    /// Problems found beyond those kept in `problems`, by kind.
    pub unrecorded: Vec<(RejectKind, usize)>,
    /// Number of items (1 for a single object).
    pub items: usize,
    /// True when the payload was an array.
    pub array: bool,
}

impl Decoded {
    /// All problems found, recorded or not.
    pub fn problems_total(&self) -> usize {
        self.problems.len() + self.unrecorded.iter().map(|(_, n)| n).sum::<usize>()
    }
}

/// Decodes and checks a payload sent for `machine`, with `now` as the server time the
/// timestamp window is measured from.
///
/// ```
/// use pdm_core::{MachineKey, RejectKind, Timestamp};
/// use pdm_ingest::codec::{decode, CodecConfig};
///
/// let machine = MachineKey::new("pump-1")?;
/// let now = Timestamp::from_millis(1_767_225_600_000);
/// let payload = br#"[{"ts": 1767225600000, "values": {"temperature": 61.5, "flow": "high"}},
///                     {"ts": "2026-01-01T00:00:01Z", "values": {"temperature": 61.6}}]"#;
/// let decoded = decode(&machine, payload, now, &CodecConfig::default())?;
/// assert_eq!(decoded.readings.len(), 2);
/// assert_eq!(decoded.problems[0].kind, RejectKind::BadValue);
/// assert!(decoded.problems[0].reason.contains("item 0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn decode(
    machine: &MachineKey,
    payload: &[u8],
    now: Timestamp,
    config: &CodecConfig,
) -> Result<Decoded, DecodeError> {
    if payload.len() > config.max_payload_bytes {
        return Err(DecodeError {
            kind: RejectKind::Oversized,
            reason: format!(
                "payload of {} bytes exceeds the limit of {} bytes (codec.max_payload_bytes)",
                payload.len(),
                config.max_payload_bytes
            ),
        });
    }
    let mut st = State {
        machine,
        config,
        now,
        out: Decoded::default(),
        scratch: Vec::new(),
        sensors: Vec::new(),
        too_many: false,
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    let parsed = de::Deserializer::deserialize_any(&mut de, Top(&mut st)).and_then(|()| de.end());
    match parsed {
        Ok(()) => Ok(st.out),
        Err(_) if st.too_many => Err(DecodeError {
            kind: RejectKind::Oversized,
            reason: format!(
                "payload holds more than {} items (codec.max_items)",
                config.max_items
            ),
        }),
        Err(e) => Err(DecodeError {
            kind: RejectKind::Malformed,
            reason: format!("payload is not valid telemetry JSON: {e}"),
        }),
    }
}

/// Encodes one item in the payload format, with `ts` in epoch milliseconds.
/// Non-finite values are written as `null` (JSON has no NaN).
///
/// ```
/// use pdm_core::{SensorKey, Timestamp};
/// let t = SensorKey::new("temperature")?;
/// let json = pdm_ingest::codec::encode(Timestamp::from_millis(5), &[(t, 61.5)]);
/// assert_eq!(json, br#"{"ts":5,"values":{"temperature":61.5}}"#);
/// # Ok::<(), pdm_core::KeyError>(())
/// ```
pub fn encode(ts: Timestamp, values: &[(SensorKey, f64)]) -> Vec<u8> {
    use std::io::Write as _;
    let mut out = Vec::with_capacity(32 + values.len() * 24);
    // Writing into a Vec cannot fail; sensor keys are slugs and need no escaping.
    let _ = write!(out, "{{\"ts\":{},\"values\":{{", ts.as_millis());
    for (i, (k, v)) in values.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = if v.is_finite() {
            write!(out, "{sep}\"{k}\":{v}")
        } else {
            write!(out, "{sep}\"{k}\":null")
        };
    }
    out.extend_from_slice(b"}}");
    out
}

/// Renders a timestamp as RFC 3339 (UTC), or as plain milliseconds when out of its range.
pub fn format_ts(ts: Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts.as_millis()) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{} ms", ts.as_millis()))
}

/// Parses an RFC 3339 timestamp with [`Timestamp::parse_rfc3339`] (sub-millisecond digits
/// round towards the past).
///
/// ```
/// use pdm_ingest::codec::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z").map(|t| t.as_millis()), Ok(1500));
/// assert!(parse_rfc3339("yesterday").is_err());
/// ```
pub fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(s).map_err(|e| e.to_string())
}

/// Decoding state, threaded through the serde visitors.
struct State<'c, 'de> {
    machine: &'c MachineKey,
    config: &'c CodecConfig,
    now: Timestamp,
    out: Decoded,
    /// The current item's values, as borrowed raw JSON, until its timestamp is known (the
    /// fields of an object come in any order).
    scratch: Vec<(Key<'de>, &'de RawValue)>,
    /// Sensor keys already validated in this message: an array of items usually repeats the
    /// same few sensors, and reusing the key saves validating and allocating it again.
    sensors: Vec<SensorKey>,
    too_many: bool,
}

const SENSOR_CACHE: usize = 64;
/// Above this many values in one item, duplicates are found with a set instead of a scan.
const LINEAR_DUP_SCAN: usize = 32;

impl State<'_, '_> {
    fn at(&self, item: usize) -> String {
        if self.out.array {
            format!("item {item}: ")
        } else {
            String::new()
        }
    }

    fn problem(&mut self, item: usize, kind: RejectKind, reason: String) {
        if self.out.problems.len() < self.config.max_dead_letters_per_message {
            let item = self.out.array.then_some(item);
            self.out.problems.push(Problem { item, kind, reason });
        } else if let Some(slot) = self.out.unrecorded.iter_mut().find(|(k, _)| *k == kind) {
            slot.1 += 1;
        } else {
            self.out.unrecorded.push((kind, 1));
        }
    }

    fn sensor_key(&mut self, s: &str) -> Result<SensorKey, pdm_core::KeyError> {
        if let Some(k) = self.sensors.iter().find(|k| k.as_str() == s) {
            return Ok(k.clone());
        }
        let k = SensorKey::new(s)?;
        if self.sensors.len() < SENSOR_CACHE {
            self.sensors.push(k.clone());
        }
        Ok(k)
    }

    fn finish_item(&mut self, item: usize, fields: ItemFields<'_>) {
        let scratch = std::mem::take(&mut self.scratch);
        self.check_item(item, fields, &scratch);
        self.scratch = scratch;
        self.scratch.clear();
    }

    fn check_item(&mut self, item: usize, fields: ItemFields<'_>, values: &[(Key<'_>, &RawValue)]) {
        if let Some(field) = fields.duplicate {
            let reason = format!("{}field \"{field}\" appears more than once", self.at(item));
            return self.problem(item, RejectKind::Malformed, reason);
        }
        match fields.values {
            None => {
                let reason = format!(
                    "{}\"values\" is missing; expected an object of sensor keys to numbers",
                    self.at(item)
                );
                return self.problem(item, RejectKind::Malformed, reason);
            }
            Some(Err(found)) => {
                let reason = format!(
                    "{}\"values\" is {found}; expected an object of sensor keys to numbers",
                    self.at(item)
                );
                return self.problem(item, RejectKind::Malformed, reason);
            }
            Some(Ok(())) => {}
        }
        let ts = match fields.ts {
            None => Err(
                "\"ts\" is missing; expected epoch milliseconds or an RFC 3339 string".to_owned(),
            ),
            Some(raw) => parse_ts(raw.get()).and_then(|ts| self.check_window(raw.get(), ts)),
        };
        let ts = match ts {
            Ok(ts) => ts,
            Err(why) => {
                let reason = format!("{}{why}", self.at(item));
                return self.problem(item, RejectKind::BadTimestamp, reason);
            }
        };
        let dups: Option<HashSet<&str>> = (values.len() > LINEAR_DUP_SCAN).then(HashSet::new);
        let mut dups = dups;
        for (i, (key, raw)) in values.iter().enumerate() {
            let name = key.as_str();
            let sensor = match self.sensor_key(name) {
                Ok(k) => k,
                Err(e) => {
                    let reason = format!("{}{e}", self.at(item));
                    self.problem(item, RejectKind::BadKey, reason);
                    continue;
                }
            };
            let repeated = match dups.as_mut() {
                Some(set) => !set.insert(name),
                None => values[..i].iter().any(|(k, _)| k.as_str() == name),
            };
            if repeated {
                let reason = format!(
                    "{}sensor '{name}' appears more than once in \"values\"",
                    self.at(item)
                );
                self.problem(item, RejectKind::Malformed, reason);
                continue;
            }
            let value = match parse_value(raw.get()) {
                Ok(v) => v,
                Err(what) => {
                    let reason = format!(
                        "{}value of sensor '{name}' is {what}; expected a finite number",
                        self.at(item)
                    );
                    self.problem(item, RejectKind::BadValue, reason);
                    continue;
                }
            };
            self.out.readings.push(Reading {
                machine: self.machine.clone(),
                sensor,
                ts,
                value,
            });
            // Item indices fit: an item takes at least 2 bytes and payloads are bounded.
            self.out.reading_items.push(item as u32);
        }
    }

    fn check_window(&self, raw: &str, ts: Timestamp) -> Result<Timestamp, String> {
        let now = self.now.as_millis();
        let ms = ts.as_millis();
        let past = self.config.max_past_secs;
        let future = self.config.max_future_secs;
        let too_old = past > 0 && ms < now.saturating_sub((past as i64).saturating_mul(1000));
        let too_new = future > 0 && ms > now.saturating_add((future as i64).saturating_mul(1000));
        if !too_old && !too_new {
            return Ok(ts);
        }
        let shown = if raw.starts_with('"') {
            clip(raw, 64)
        } else {
            format!("{} ({})", clip(raw, 32), format_ts(ts))
        };
        let (limit, side, setting) = if too_old {
            (past, "before", "codec.max_past_secs")
        } else {
            (future, "after", "codec.max_future_secs")
        };
        // Epoch seconds read as milliseconds land in January 1970: say so, it is the usual
        // cause.
        let hint = if !raw.starts_with('"') && (0..100_000_000_000).contains(&ms) {
            "; it looks like epoch seconds, but ts is in milliseconds"
        } else {
            ""
        };
        Err(format!(
            "ts {shown} is more than {} {side} the server time {} ({setting}){hint}",
            fmt_secs(limit),
            format_ts(self.now),
        ))
    }
}

/// A duration for people: `10 minutes`, `365 days`.
fn fmt_secs(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => plural(s / 86_400, "day"),
        s if s % 3600 == 0 => plural(s / 3600, "hour"),
        s if s % 60 == 0 => plural(s / 60, "minute"),
        s => plural(s, "second"),
    }
}

fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// At most `max` characters of `s`, marked when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// What a non-number JSON value is, for reasons.
fn describe(raw: &str) -> String {
    match raw.as_bytes().first() {
        Some(b'"') => format!("a string ({})", clip(raw, 40)),
        Some(b't' | b'f') => format!("a boolean ({raw})"),
        Some(b'n') => "null".to_owned(),
        Some(b'{') => "an object".to_owned(),
        Some(b'[') => "an array".to_owned(),
        _ => clip(raw, 40),
    }
}

fn is_json_number(raw: &str) -> bool {
    matches!(raw.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
}

/// A finite number, or a description of what the value is instead.
fn parse_value(raw: &str) -> Result<f64, String> {
    if !is_json_number(raw) {
        return Err(describe(raw));
    }
    // The JSON parser has checked the syntax; Rust's float parser rounds overflow to infinity.
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!(
            "{}, beyond the range of a 64-bit float",
            clip(raw, 40)
        )),
    }
}

/// Epoch milliseconds or an RFC 3339 string.
fn parse_ts(raw: &str) -> Result<Timestamp, String> {
    if raw.starts_with('"') {
        let text: Cow<'_, str> = if raw.contains('\\') {
            match serde_json::from_str::<String>(raw) {
                Ok(s) => Cow::Owned(s),
                Err(e) => return Err(format!("ts {} cannot be read: {e}", clip(raw, 64))),
            }
        } else {
            Cow::Borrowed(raw.get(1..raw.len().saturating_sub(1)).unwrap_or_default())
        };
        return parse_rfc3339(&text)
            .map_err(|e| format!("ts {} is not an RFC 3339 timestamp: {e}", clip(raw, 64)));
    }
    if !is_json_number(raw) {
        return Err(format!(
            "ts is {}; expected epoch milliseconds or an RFC 3339 string",
            describe(raw)
        ));
    }
    if raw.bytes().all(|b| b == b'-' || b.is_ascii_digit()) {
        return raw
            .parse::<i64>()
            .map(Timestamp::from_millis)
            .map_err(|_| format!("ts {} is out of range", clip(raw, 40)));
    }
    // `1.7e12` is a whole number of milliseconds written with an exponent: accept it.
    match raw.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e18 => {
            Ok(Timestamp::from_millis(v as i64))
        }
        _ => Err(format!(
            "ts {} is not a whole number of epoch milliseconds",
            clip(raw, 40)
        )),
    }
}

/// A map key, borrowed from the payload unless it holds escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// The fields of an item the codec knows; others are ignored (devices may add metadata).
enum Field {
    Ts,
    Values,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "ts" => Field::Ts,
                    "values" => Field::Values,
                    _ => Field::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// What an item object held.
struct ItemFields<'de> {
    ts: Option<&'de RawValue>,
    /// `Ok` when `values` was an object (its entries are in the scratch), `Err` naming what it
    /// was otherwise.
    values: Option<Result<(), String>>,
    duplicate: Option<&'static str>,
}

/// The whole payload: an object or an array of objects.
struct Top<'s, 'c, 'de>(&'s mut State<'c, 'de>);

impl<'de> Visitor<'de> for Top<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(r#"an object {"ts": ..., "values": {...}} or an array of such objects"#)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.out.items = 1;
        visit_item(self.0, 0, map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.0;
        st.out.array = true;
        let mut index = 0;
        loop {
            if index == st.config.max_items {
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    st.too_many = true;
                    return Err(de::Error::custom("too many items"));
                }
                break;
            }
            match seq.next_element_seed(ItemSeed { st, index })? {
                Some(()) => index += 1,
                None => break,
            }
        }
        st.out.items = index;
        Ok(())
    }
}

fn visit_item<'de, A: MapAccess<'de>>(
    st: &mut State<'_, 'de>,
    index: usize,
    mut map: A,
) -> Result<(), A::Error> {
    let mut fields = ItemFields {
        ts: None,
        values: None,
        duplicate: None,
    };
    while let Some(field) = map.next_key::<Field>()? {
        match field {
            Field::Ts => {
                let raw: &'de RawValue = map.next_value()?;
                if fields.ts.replace(raw).is_some() {
                    fields.duplicate = Some("ts");
                }
            }
            Field::Values => {
                let outcome = map.next_value_seed(ValuesSeed { st: &mut *st })?;
                if fields.values.replace(outcome).is_some() {
                    fields.duplicate = Some("values");
                }
            }
            Field::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    st.finish_item(index, fields);
    Ok(())
}

/// Visits an item in any JSON type: objects are items, anything else is a per-item problem.
struct ItemSeed<'s, 'c, 'de> {
    st: &'s mut State<'c, 'de>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl ItemSeed<'_, '_, '_> {
    fn not_an_object<E>(self, found: &str) -> Result<(), E> {
        let reason = format!(
            "item {} is {found}; expected an object with \"ts\" and \"values\"",
            self.index
        );
        self.st.problem(self.index, RejectKind::Malformed, reason);
        Ok(())
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        visit_item(self.st, self.index, map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_an_object("an array")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.not_an_object(&format!("a boolean ({v})"))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.not_an_object(&format!("a number ({v})"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.not_an_object(&format!("a number ({v})"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.not_an_object(&format!("a number ({v})"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.not_an_object(&format!("a string ({:?})", clip(v, 40)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_an_object("null")
    }
}

/// Visits `values` in any JSON type: an object's entries go to the scratch, anything else is
/// reported by name.
struct ValuesSeed<'s, 'c, 'de> {
    st: &'s mut State<'c, 'de>,
}

impl<'de> DeserializeSeed<'de> for ValuesSeed<'_, '_, 'de> {
    type Value = Result<(), String>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValuesSeed<'_, '_, 'de> {
    type Value = Result<(), String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let raw: &'de RawValue = map.next_value()?;
            self.st.scratch.push((key, raw));
        }
        Ok(Ok(()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array".to_owned()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Err(format!("a boolean ({v})")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Err(format!("a number ({v})")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Err(format!("a number ({v})")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Err(format!("a number ({v})")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Err(format!("a string ({:?})", clip(v, 40))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err("null".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    fn machine() -> MachineKey {
        MachineKey::new("pump-1").expect("valid key")
    }

    fn run(payload: &str) -> Result<Decoded, DecodeError> {
        decode(
            &machine(),
            payload.as_bytes(),
            Timestamp::from_millis(NOW),
            &CodecConfig::default(),
        )
    }

    fn ok(payload: &str) -> Decoded {
        run(payload).expect("decodes")
    }

    fn values(d: &Decoded) -> Vec<(String, i64, f64)> {
        d.readings
            .iter()
            .map(|r| (r.sensor.to_string(), r.ts.as_millis(), r.value))
            .collect()
    }

    #[test]
    fn decodes_an_object() {
        let d = ok(r#"{"ts": 1767225600000, "values": {"temperature": 61.5, "current": 12}}"#);
        assert_eq!(
            values(&d),
            vec![
                ("temperature".into(), NOW, 61.5),
                ("current".into(), NOW, 12.0)
            ]
        );
        assert!(d.problems.is_empty());
        assert!(!d.array);
        assert_eq!(d.items, 1);
        assert!(d.readings.iter().all(|r| r.machine == machine()));
    }

    #[test]
    fn decodes_an_array_with_rfc3339_and_fields_in_any_order() {
        let d = ok(r#"[
            {"values": {"a": 1}, "ts": "2026-01-01T00:00:00.123Z", "seq": [1, 2]},
            {"ts": "2026-01-01T01:00:00+01:00", "values": {"b": -2.5e-3}}
        ]"#);
        assert_eq!(
            values(&d),
            vec![("a".into(), NOW + 123, 1.0), ("b".into(), NOW, -0.0025)]
        );
        assert_eq!(d.reading_items, vec![0, 1]);
        assert!(d.array);
        assert_eq!(d.items, 2);
    }

    #[test]
    fn whole_number_timestamps_with_exponent_are_accepted() {
        let d = ok(r#"{"ts": 1.7672256e12, "values": {"a": 1}}"#);
        assert_eq!(d.readings[0].ts.as_millis(), 1_767_225_600_000);
    }

    #[test]
    fn empty_array_and_empty_values_are_fine() {
        assert_eq!(ok("[]").readings.len(), 0);
        let d = ok(r#"{"ts": 1767225600000, "values": {}}"#);
        assert!(d.readings.is_empty() && d.problems.is_empty());
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let d = ok(r#"{"ts": 1767225600000, "values": {"temp\u0065rature": 1}}"#);
        assert_eq!(d.readings[0].sensor.as_str(), "temperature");
    }

    #[test]
    fn malformed_json_fails_whole_with_position() {
        for bad in ["", "{", r#"{"ts": 1,}"#, "[1 2]", "nul", r#"{"ts":1}x"#] {
            let e = run(bad).expect_err(bad);
            assert_eq!(e.kind, RejectKind::Malformed, "{bad}");
            assert!(e.reason.contains("line 1 column"), "{bad}: {}", e.reason);
        }
    }

    #[test]
    fn wrong_top_level_shape_fails_whole() {
        for bad in ["42", "\"x\"", "null", "true"] {
            let e = run(bad).expect_err(bad);
            assert_eq!(e.kind, RejectKind::Malformed);
            assert!(e.reason.contains("expected an object"), "{}", e.reason);
        }
    }

    #[test]
    fn oversized_payload_fails_whole() {
        let cfg = CodecConfig {
            max_payload_bytes: 10,
            ..CodecConfig::default()
        };
        let e = decode(&machine(), &[b' '; 11], Timestamp::from_millis(NOW), &cfg)
            .expect_err("too big");
        assert_eq!(e.kind, RejectKind::Oversized);
        assert!(e.reason.contains("11 bytes") && e.reason.contains("max_payload_bytes"));
    }

    #[test]
    fn too_many_items_fail_whole() {
        let cfg = CodecConfig {
            max_items: 2,
            ..CodecConfig::default()
        };
        let now = Timestamp::from_millis(NOW);
        let two = br#"[{"ts":1767225600000,"values":{}},{"ts":1767225600000,"values":{}}]"#;
        assert!(decode(&machine(), two, now, &cfg).is_ok());
        let three = br#"[{"ts":1,"values":{}},{"ts":1,"values":{}},{"ts":1,"values":{}}]"#;
        let e = decode(&machine(), three, now, &cfg).expect_err("3 > 2");
        assert_eq!(e.kind, RejectKind::Oversized);
        assert!(e.reason.contains("max_items"), "{}", e.reason);
    }

    #[test]
    fn bad_values_are_rejected_one_by_one() {
        let d = ok(r#"{"ts": 1767225600000, "values": {
            "a": 1, "b": "2", "c": null, "d": true, "e": 1e999, "f": -1e999, "g": [1],
            "h": {"x": 1}, "i": 2}}"#);
        assert_eq!(
            values(&d),
            vec![("a".into(), NOW, 1.0), ("i".into(), NOW, 2.0)]
        );
        assert_eq!(d.problems.len(), 7);
        assert!(d.problems.iter().all(|p| p.kind == RejectKind::BadValue));
        let reasons: Vec<&str> = d.problems.iter().map(|p| p.reason.as_str()).collect();
        assert!(reasons[0].contains("sensor 'b'") && reasons[0].contains("a string (\"2\")"));
        assert!(reasons[1].contains("null"));
        assert!(reasons[2].contains("a boolean (true)"));
        assert!(
            reasons[3].contains("1e999, beyond the range of a 64-bit float"),
            "{}",
            reasons[3]
        );
        assert!(reasons[4].contains("-1e999"));
        assert!(reasons[5].contains("an array"));
        assert!(reasons[6].contains("an object"));
        assert!(d.problems.iter().all(|p| p.item.is_none()));
    }

    #[test]
    fn bad_sensor_keys_are_rejected() {
        let d = ok(r#"{"ts": 1767225600000, "values": {"Temp": 1, "ok": 2, "a b": 3}}"#);
        assert_eq!(values(&d), vec![("ok".into(), NOW, 2.0)]);
        assert_eq!(d.problems.len(), 2);
        assert!(d.problems.iter().all(|p| p.kind == RejectKind::BadKey));
        assert!(
            d.problems[0].reason.contains("\"Temp\""),
            "{}",
            d.problems[0].reason
        );
    }

    #[test]
    fn duplicate_sensors_are_rejected() {
        let d = ok(r#"{"ts": 1767225600000, "values": {"a": 1, "a": 2}}"#);
        assert_eq!(values(&d), vec![("a".into(), NOW, 1.0)]);
        assert_eq!(d.problems[0].kind, RejectKind::Malformed);
        assert!(d.problems[0].reason.contains("'a' appears more than once"));
        let many: Vec<String> = (0..40).map(|i| format!("\"s{i}\": {i}")).collect();
        let payload = format!(
            r#"{{"ts": 1767225600000, "values": {{{}, "s3": 0}}}}"#,
            many.join(",")
        );
        let d = ok(&payload);
        assert_eq!(d.readings.len(), 40);
        assert_eq!(d.problems.len(), 1);
    }

    #[test]
    fn bad_items_are_rejected_and_the_rest_goes_through() {
        let d = ok(r#"[
            {"ts": 1767225600000, "values": {"a": 1}},
            {"values": {"a": 2}},
            {"ts": "yesterday", "values": {"a": 3}},
            {"ts": true, "values": {"a": 4}},
            {"ts": 1767225600000},
            {"ts": 1767225600000, "values": [1]},
            {"ts": 1767225600000, "values": 5},
            7,
            "x",
            null,
            [1, 2],
            {"ts": 1767225600000, "ts": 1767225600001, "values": {}},
            {"ts": 1767225600.5, "values": {"a": 5}},
            {"ts": 99999999999999999999, "values": {"a": 6}},
            {"ts": 1767225601000, "values": {"a": 9}}
        ]"#);
        assert_eq!(
            values(&d),
            vec![("a".into(), NOW, 1.0), ("a".into(), NOW + 1000, 9.0)]
        );
        assert_eq!(d.reading_items, vec![0, 14]);
        let got: Vec<(Option<usize>, RejectKind)> =
            d.problems.iter().map(|p| (p.item, p.kind)).collect();
        use RejectKind::*;
        assert_eq!(
            got,
            vec![
                (Some(1), BadTimestamp),
                (Some(2), BadTimestamp),
                (Some(3), BadTimestamp),
                (Some(4), Malformed),
                (Some(5), Malformed),
                (Some(6), Malformed),
                (Some(7), Malformed),
                (Some(8), Malformed),
                (Some(9), Malformed),
                (Some(10), Malformed),
                (Some(11), Malformed),
                (Some(12), BadTimestamp),
                (Some(13), BadTimestamp),
            ]
        );
        for p in &d.problems {
            let item = p.item.unwrap_or(usize::MAX);
            assert!(
                p.reason.starts_with(&format!("item {item}")),
                "{}",
                p.reason
            );
        }
        assert!(d.problems[0].reason.contains("\"ts\" is missing"));
        assert!(d.problems[1].reason.contains("\"yesterday\""));
        assert!(d.problems[2].reason.contains("a boolean"));
        assert!(d.problems[3].reason.contains("\"values\" is missing"));
        assert!(d.problems[4].reason.contains("\"values\" is an array"));
        assert!(d.problems[6].reason.contains("item 7 is a number (7)"));
        assert!(d.problems[10]
            .reason
            .contains("\"ts\" appears more than once"));
        assert!(d.problems[11].reason.contains("whole number"));
        assert!(d.problems[12].reason.contains("out of range"));
    }

    #[test]
    fn timestamps_outside_the_window_are_rejected_with_a_hint() {
        let d = ok(r#"[
            {"ts": 1767225600, "values": {"a": 1}},
            {"ts": "2026-01-01T00:11:00Z", "values": {"a": 2}},
            {"ts": "2026-01-01T00:09:00Z", "values": {"a": 3}},
            {"ts": "2025-01-01T00:00:01Z", "values": {"a": 4}}
        ]"#);
        assert_eq!(values(&d).len(), 2);
        let r0 = &d.problems[0].reason;
        assert!(r0.contains("1767225600 (1970-01-21T10:53:45.6Z)"), "{r0}");
        assert!(
            r0.contains("365 days before") && r0.contains("epoch seconds"),
            "{r0}"
        );
        let r1 = &d.problems[1].reason;
        assert!(
            r1.contains("10 minutes after the server time 2026-01-01T00:00:00Z"),
            "{r1}"
        );
        assert!(
            r1.contains("codec.max_future_secs") && !r1.contains("seconds"),
            "{r1}"
        );
    }

    #[test]
    fn zero_window_means_unlimited() {
        let cfg = CodecConfig {
            max_past_secs: 0,
            max_future_secs: 0,
            ..CodecConfig::default()
        };
        let p =
            br#"[{"ts": -5, "values": {"a": 1}}, {"ts": 9000000000000000, "values": {"a": 2}}]"#;
        let d = decode(&machine(), p, Timestamp::from_millis(NOW), &cfg).expect("decodes");
        assert_eq!(d.readings.len(), 2);
    }

    #[test]
    fn problems_beyond_the_cap_are_tallied() {
        let cfg = CodecConfig {
            max_dead_letters_per_message: 2,
            ..CodecConfig::default()
        };
        let p = br#"{"ts": 1767225600000, "values": {"a": "x", "b": "x", "c": null, "D": 1}}"#;
        let d = decode(&machine(), p, Timestamp::from_millis(NOW), &cfg).expect("decodes");
        assert_eq!(d.problems.len(), 2);
        assert_eq!(
            d.unrecorded,
            vec![(RejectKind::BadValue, 1), (RejectKind::BadKey, 1)]
        );
        assert_eq!(d.problems_total(), 4);
    }

    #[test]
    fn topics() {
        assert_eq!(parse_topic("pdm/x/telemetry"), Ok("x"));
        assert_eq!(parse_topic("pdm/Bad Key/telemetry"), Ok("Bad Key"));
        for bad in [
            "pdm//telemetry",
            "pdm/telemetry",
            "x/pdm/a/telemetry",
            "pdm/a/telemetry/",
        ] {
            assert_eq!(parse_topic(bad), Err(BadTopic), "{bad}");
        }
        assert_eq!(topic(&machine()), "pdm/pump-1/telemetry");
    }

    #[test]
    fn encode_round_trips() {
        let keys: Vec<(SensorKey, f64)> = [("a", 1.25), ("b", -3.0), ("c", 1e-7), ("d", f64::NAN)]
            .iter()
            .map(|(k, v)| (SensorKey::new(k).expect("key"), *v))
            .collect();
        let json = encode(Timestamp::from_millis(NOW), &keys);
        let d = decode(
            &machine(),
            &json,
            Timestamp::from_millis(NOW),
            &CodecConfig::default(),
        )
        .expect("decodes");
        assert_eq!(
            values(&d),
            vec![
                ("a".into(), NOW, 1.25),
                ("b".into(), NOW, -3.0),
                ("c".into(), NOW, 1e-7)
            ]
        );
        assert_eq!(d.problems[0].kind, RejectKind::BadValue);
    }

    #[test]
    fn config_check_names_the_setting() {
        assert!(CodecConfig::default().check().is_ok());
        let bad = CodecConfig {
            max_items: 0,
            ..CodecConfig::default()
        };
        assert!(bad
            .check()
            .expect_err("0")
            .to_string()
            .contains("codec.max_items"));
        let bad = CodecConfig {
            max_payload_bytes: 1,
            ..CodecConfig::default()
        };
        assert!(bad
            .check()
            .expect_err("1")
            .to_string()
            .contains("codec.max_payload_bytes"));
        let parsed: Result<CodecConfig, _> = serde_json::from_str(r#"{"max_payload": 5}"#);
        assert!(parsed.is_err(), "unknown fields are refused");
        let parsed: CodecConfig =
            serde_json::from_str(r#"{"max_items": 5}"#).expect("partial config");
        assert_eq!(parsed.max_items, 5);
        assert_eq!(parsed.max_payload_bytes, DEFAULT_MAX_PAYLOAD_BYTES);
    }

    #[test]
    fn fuzzish_inputs_never_panic() {
        // Every prefix of a valid payload, and a few byte flips: errors, never panics.
        let valid = r#"[{"ts":"2026-01-01T00:00:00Z","values":{"a":1.5,"b\u00e9":2}},{"ts":1,"values":{}}]"#;
        for end in 0..=valid.len() {
            if let Some(prefix) = valid.get(..end) {
                let _ = run(prefix);
            }
        }
        let mut bytes = valid.as_bytes().to_vec();
        for i in 0..bytes.len() {
            let saved = bytes[i];
            for b in [b'"', b'\\', b'{', b']', 0xff, b'e', b'-'] {
                bytes[i] = b;
                let _ = decode(
                    &machine(),
                    &bytes,
                    Timestamp::from_millis(NOW),
                    &CodecConfig::default(),
                );
            }
            bytes[i] = saved;
        }
    }
}
