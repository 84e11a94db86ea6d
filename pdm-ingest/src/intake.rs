//! The one path every payload takes, whatever carried it: codec, then catalog.
//!
//! [`Intake::prepare`] turns the bytes of one MQTT message or HTTP request into a [`Batch`]
//! (valid readings plus a dead letter for each problem) and an [`IngestReport`] to answer
//! the sender with. It stores nothing: the caller sends the batch into the engine's
//! [`pdm_core::BatchSink`] and acknowledges upstream once it is committed.

use std::collections::HashMap;
use std::sync::Arc;

use pdm_core::{
    Batch, Catalog, DeadLetter, InputContext, MachineKey, Origin, Reading, RejectKind, StoreError,
    Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecConfig};

/// One rejected input or item, as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Category, a stable snake_case name (`bad_value`, `bad_timestamp`, ...).
    pub kind: RejectKind,
    /// What is wrong, naming the item, the sensor and the value.
    pub reason: String,
}

/// What became of one payload, for the sender (the HTTP handler returns it as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Readings that passed every check and go to the store.
    pub accepted: usize,
    /// Number of problems found (an item with a bad timestamp counts once, a bad value once).
    pub rejected_total: usize,
    /// The problems, one per dead letter (at most
    /// [`CodecConfig::max_dead_letters_per_message`], plus one summing up the rest).
    pub rejected: Vec<Rejection>,
    /// Set when the payload was refused whole: `oversized`, `malformed` (not JSON, or neither
    /// an object nor an array), `bad_key` or `bad_topic` (the machine named by the channel),
    /// or `unknown_machine` (not registered, and auto-registration is off).
    pub fatal: Option<RejectKind>,
}

/// A payload made ready for the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prepared {
    /// Valid readings and the dead letters of everything rejected; send it to the sink even
    /// when it holds no readings, so the dead letters are kept.
    pub batch: Batch,
    /// The outcome, for the sender.
    pub report: IngestReport,
}

/// Decodes and validates payloads: the codec's syntactic checks, then the catalog's semantic
/// ones (registered machine and sensor, plausible range, auto-registration).
#[derive(Debug)]
pub struct Intake {
    catalog: Arc<Catalog>,
    codec: CodecConfig,
}

impl Intake {
    /// An intake validating against `catalog` with the limits of `codec` (check those first
    /// with [`CodecConfig::check`]).
    pub fn new(catalog: Arc<Catalog>, codec: CodecConfig) -> Self {
        Self { catalog, codec }
    }

    /// The catalog readings are checked against.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The codec limits in force.
    pub fn codec(&self) -> &CodecConfig {
        &self.codec
    }

    /// Prepares one payload sent for `machine` (the key from the topic or URL path, not yet
    /// validated) over `channel` (the MQTT topic or HTTP path, kept in dead letters). `now` is
    /// the server time the timestamp window is measured from.
    ///
    /// Fails only when the catalog store fails while auto-registering a machine or sensor;
    /// every problem of the payload itself is in the result.
    pub async fn prepare(
        &self,
        origin: Origin,
        channel: &str,
        machine: &str,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<Prepared, StoreError> {
        let ctx = InputContext {
            origin,
            channel,
            payload,
        };
        let named = clip_key(machine);
        if payload.len() > self.codec.max_payload_bytes {
            let reason = format!(
                "payload of {} bytes exceeds the limit of {} bytes (codec.max_payload_bytes)",
                payload.len(),
                self.codec.max_payload_bytes
            );
            return Ok(whole(&ctx, Some(named), RejectKind::Oversized, reason));
        }
        let key = match MachineKey::new(machine) {
            Ok(k) => k,
            Err(e) => return Ok(whole(&ctx, Some(named), RejectKind::BadKey, e.to_string())),
        };
        if !self.catalog.auto_register() && !self.catalog.knows_machine(&key).await? {
            let reason = format!(
                "machine '{key}' is not registered (register it first, or enable \
                 auto-registration)"
            );
            return Ok(whole(&ctx, Some(named), RejectKind::UnknownMachine, reason));
        }
        let decoded = match codec::decode(&key, payload, now, &self.codec) {
            Ok(d) => d,
            Err(e) => return Ok(whole(&ctx, Some(named), e.kind, e.reason)),
        };
        let mut out = Letters::new(self.codec.max_dead_letters_per_message);
        for p in decoded.problems {
            out.push(ctx.dead_letter(Some(named), p.kind, p.reason));
        }
        for (kind, n) in decoded.unrecorded {
            out.tally(kind, n);
        }

        let offered = decoded.readings.len();
        if offered == 0 {
            return Ok(out.finish(&ctx, Some(named), Vec::new(), false));
        }
        // Catalog reasons name the sensor and the value but not the item; to add it, the
        // readings are kept for matching when they come from several items.
        let several_items = decoded.reading_items.first() != decoded.reading_items.last();
        let originals = several_items.then(|| decoded.readings.clone());
        let (kept, rejected) = self.catalog.admit(decoded.readings, ctx).await?;
        let all_unknown = kept.is_empty()
            && rejected.len() == offered
            && rejected
                .iter()
                .all(|d| d.kind == RejectKind::UnknownMachine);
        let items = match &originals {
            Some(originals) => items_of_rejected(originals, &decoded.reading_items, &kept),
            None => vec![decoded.reading_items.first().copied().unwrap_or(0); rejected.len()],
        };
        for (mut letter, item) in rejected.into_iter().zip(items) {
            if decoded.array {
                letter.reason = format!("item {item}: {}", letter.reason);
            }
            out.push(letter);
        }
        Ok(out.finish(&ctx, Some(named), kept, all_unknown))
    }

    /// Prepares one payload that arrived on an MQTT-style `topic` (`pdm/{machine}/telemetry`);
    /// any other topic is refused whole as `bad_topic`.
    pub async fn prepare_topic(
        &self,
        origin: Origin,
        topic: &str,
        payload: &[u8],
        now: Timestamp,
    ) -> Result<Prepared, StoreError> {
        match codec::parse_topic(topic) {
            Ok(machine) => self.prepare(origin, topic, machine, payload, now).await,
            Err(_) => {
                let ctx = InputContext {
                    origin,
                    channel: topic,
                    payload,
                };
                let reason = format!(
                    "topic '{}' does not match pdm/{{machine}}/telemetry",
                    clip_topic(topic)
                );
                Ok(whole(&ctx, None, RejectKind::BadTopic, reason))
            }
        }
    }
}

/// The machine as named by the channel, cut so a hostile topic cannot bloat dead letters.
fn clip_key(s: &str) -> &str {
    let max = pdm_core::ids::MAX_KEY_LEN * 2;
    match s.char_indices().nth(max) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

fn clip_topic(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// A payload refused whole: one dead letter.
fn whole(
    ctx: &InputContext<'_>,
    machine: Option<&str>,
    kind: RejectKind,
    reason: String,
) -> Prepared {
    let letter = ctx.dead_letter(machine, kind, reason.clone());
    Prepared {
        batch: Batch {
            readings: Vec::new(),
            dead_letters: vec![letter],
        },
        report: IngestReport {
            accepted: 0,
            rejected_total: 1,
            rejected: vec![Rejection { kind, reason }],
            fatal: Some(kind),
        },
    }
}

/// For each reading the catalog rejected, the item it came from. `kept` is what remains of
/// `originals` in order, so walking both finds the rejected ones; readings equal in every field
/// get the same verdict, so equal neighbours cannot be mismatched.
fn items_of_rejected(originals: &[Reading], items: &[u32], kept: &[Reading]) -> Vec<u32> {
    let mut out = Vec::with_capacity(originals.len() - kept.len().min(originals.len()));
    let mut k = 0;
    for (r, item) in originals.iter().zip(items) {
        if kept.get(k) == Some(r) {
            k += 1;
        } else {
            out.push(*item);
        }
    }
    out
}

/// Dead letters of one message, capped.
struct Letters {
    max: usize,
    letters: Vec<DeadLetter>,
    unrecorded: Vec<(RejectKind, usize)>,
}

impl Letters {
    fn new(max: usize) -> Self {
        Self {
            max,
            letters: Vec::new(),
            unrecorded: Vec::new(),
        }
    }

    fn push(&mut self, letter: DeadLetter) {
        if self.letters.len() < self.max {
            self.letters.push(letter);
        } else {
            self.tally(letter.kind, 1);
        }
    }

    fn tally(&mut self, kind: RejectKind, n: usize) {
        match self.unrecorded.iter_mut().find(|(k, _)| *k == kind) {
            Some(slot) => slot.1 += n,
            None => self.unrecorded.push((kind, n)),
        }
    }

    fn finish(
        mut self,
        ctx: &InputContext<'_>,
        machine: Option<&str>,
        kept: Vec<Reading>,
        all_unknown: bool,
    ) -> Prepared {
        let unrecorded: usize = self.unrecorded.iter().map(|(_, n)| n).sum();
        let total = self.letters.len() + unrecorded;
        if unrecorded > 0 {
            let mut by_kind: HashMap<RejectKind, usize> = HashMap::new();
            for (k, n) in &self.unrecorded {
                *by_kind.entry(*k).or_default() += n;
            }
            let mut kinds: Vec<(RejectKind, usize)> = by_kind.into_iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
            let listed: Vec<String> = kinds
                .iter()
                .map(|(k, n)| format!("{}: {n}", k.as_str()))
                .collect();
            let reason = format!(
                "{unrecorded} more problems in this message were not recorded one by one \
                 (codec.max_dead_letters_per_message = {}): {}",
                self.max,
                listed.join(", ")
            );
            // The summary takes the kind of most of what it sums up.
            let kind = kinds.first().map_or(RejectKind::Malformed, |(k, _)| *k);
            self.letters.push(ctx.dead_letter(machine, kind, reason));
        }
        let rejected = self
            .letters
            .iter()
            .map(|d| Rejection {
                kind: d.kind,
                reason: d.reason.clone(),
            })
            .collect();
        Prepared {
            report: IngestReport {
                accepted: kept.len(),
                rejected_total: total,
                rejected,
                fatal: all_unknown.then_some(RejectKind::UnknownMachine),
            },
            batch: Batch {
                readings: kept,
                dead_letters: self.letters,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_store::TestStore;
    use pdm_core::{MachineStore, SensorStore};

    const NOW: i64 = 1_767_225_600_000;

    async fn intake(auto_register: bool, codec: CodecConfig) -> (Intake, Arc<TestStore>) {
        let store = TestStore::new().await;
        store
            .seed_machine(
                "pump-1",
                &[
                    ("temperature", Some(-20.0), Some(150.0)),
                    ("flow", None, None),
                ],
            )
            .await;
        let catalog = Catalog::load(store.clone(), auto_register)
            .await
            .expect("catalog loads");
        (Intake::new(Arc::new(catalog), codec), store)
    }

    async fn http(i: &Intake, machine: &str, payload: &str) -> Prepared {
        i.prepare(
            Origin::Http,
            "/api/v1/machines/x/telemetry",
            machine,
            payload.as_bytes(),
            Timestamp::from_millis(NOW),
        )
        .await
        .expect("catalog store works")
    }

    fn kinds(p: &Prepared) -> Vec<RejectKind> {
        p.batch.dead_letters.iter().map(|d| d.kind).collect()
    }

    #[tokio::test]
    async fn valid_payload_is_accepted_whole() {
        let (i, _) = intake(false, CodecConfig::default()).await;
        let p = http(
            &i,
            "pump-1",
            r#"{"ts":"2026-01-01T00:00:00Z","values":{"temperature":61.5,"flow":40}}"#,
        )
        .await;
        assert_eq!(p.report.accepted, 2);
        assert_eq!(p.report.fatal, None);
        assert_eq!(p.report.rejected_total, 0);
        assert!(p.batch.dead_letters.is_empty());
        assert_eq!(p.batch.readings.len(), 2);
    }

    #[tokio::test]
    async fn catalog_rejections_name_the_item() {
        let (i, _) = intake(false, CodecConfig::default()).await;
        let p = http(
            &i,
            "pump-1",
            r#"[{"ts":1767225600000,"values":{"temperature":61.5,"speed":3}},
                {"ts":1767225601000,"values":{"temperature":999,"flow":"x"}},
                {"ts":1767225602000,"values":{"temperature":62}}]"#,
        )
        .await;
        assert_eq!(p.report.accepted, 2);
        assert_eq!(p.report.fatal, None);
        assert_eq!(
            kinds(&p),
            vec![
                RejectKind::BadValue,
                RejectKind::UnknownSensor,
                RejectKind::OutOfRange
            ]
        );
        let reasons: Vec<&str> = p
            .report
            .rejected
            .iter()
            .map(|r| r.reason.as_str())
            .collect();
        assert!(
            reasons[0].starts_with("item 1: value of sensor 'flow'"),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[1].starts_with("item 0: sensor 'speed'"),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].starts_with("item 1: value 999"),
            "{}",
            reasons[2]
        );
        let d = &p.batch.dead_letters[0];
        assert_eq!(d.origin, Origin::Http);
        assert_eq!(d.channel, "/api/v1/machines/x/telemetry");
        assert_eq!(d.machine.as_deref(), Some("pump-1"));
        assert!(d.payload_head.starts_with(b"[{\"ts\""));
    }

    #[tokio::test]
    async fn whole_message_failures_are_fatal() {
        let (i, _) = intake(false, CodecConfig::default()).await;
        let cases = [
            ("pump-1", "{oops", RejectKind::Malformed),
            ("Pump 1", "{}", RejectKind::BadKey),
            (
                "pump-9",
                r#"{"ts":1767225600000,"values":{"a":1}}"#,
                RejectKind::UnknownMachine,
            ),
        ];
        for (machine, payload, kind) in cases {
            let p = http(&i, machine, payload).await;
            assert_eq!(p.report.fatal, Some(kind), "{machine} {payload}");
            assert_eq!(kinds(&p), vec![kind]);
            assert_eq!(p.report.rejected_total, 1);
            assert!(p.batch.readings.is_empty());
        }
        let small = CodecConfig {
            max_payload_bytes: 8,
            ..CodecConfig::default()
        };
        let (i, _) = intake(false, small).await;
        let p = http(&i, "pump-1", "[        ]").await;
        assert_eq!(p.report.fatal, Some(RejectKind::Oversized));
        assert!(p.report.rejected[0].reason.contains("10 bytes"));
    }

    #[tokio::test]
    async fn bad_topic_is_fatal_and_names_the_topic() {
        let (i, _) = intake(false, CodecConfig::default()).await;
        let p = i
            .prepare_topic(
                Origin::Mqtt,
                "pdm/pump-1/status",
                b"{}",
                Timestamp::from_millis(NOW),
            )
            .await
            .expect("ok");
        assert_eq!(p.report.fatal, Some(RejectKind::BadTopic));
        let d = &p.batch.dead_letters[0];
        assert_eq!(d.channel, "pdm/pump-1/status");
        assert_eq!(d.machine, None);
        assert!(d.reason.contains("'pdm/pump-1/status'"));
        let p = i
            .prepare_topic(
                Origin::Mqtt,
                "pdm/pump-1/telemetry",
                br#"{"ts":1767225600000,"values":{"flow":1}}"#,
                Timestamp::from_millis(NOW),
            )
            .await
            .expect("ok");
        assert_eq!(p.report.accepted, 1);
    }

    #[tokio::test]
    async fn auto_registration_admits_new_machines() {
        let (i, store) = intake(true, CodecConfig::default()).await;
        let p = http(&i, "fan-3", r#"{"ts":1767225600000,"values":{"rpm":900}}"#).await;
        assert_eq!(p.report.accepted, 1);
        assert!(i
            .catalog()
            .has_machine(&MachineKey::new("fan-3").expect("key")));
        let sensors = store
            .list_sensors(&MachineKey::new("fan-3").expect("key"))
            .await
            .expect("listed");
        assert_eq!(sensors.len(), 1);
    }

    #[tokio::test]
    async fn all_readings_of_an_unknown_machine_is_fatal_even_if_it_vanished_midway() {
        let (i, store) = intake(false, CodecConfig::default()).await;
        let key = MachineKey::new("pump-1").expect("key");
        // Registered when checked, deleted before the catalog saw the readings: simulated by
        // deleting from the store only, then refreshing after the early check would pass.
        store.delete_machine(&key).await.expect("deleted");
        i.catalog().refresh().await.expect("refreshed");
        let p = http(&i, "pump-1", r#"{"ts":1767225600000,"values":{"flow":1}}"#).await;
        assert_eq!(p.report.fatal, Some(RejectKind::UnknownMachine));
    }

    #[tokio::test]
    async fn dead_letters_are_capped_with_a_summary() {
        let codec = CodecConfig {
            max_dead_letters_per_message: 3,
            ..CodecConfig::default()
        };
        let (i, _) = intake(false, codec).await;
        let items: Vec<String> = (0..10)
            .map(|k| {
                format!(r#"{{"ts":1767225600{k:03},"values":{{"flow":"bad","temperature":500}}}}"#)
            })
            .collect();
        let p = http(&i, "pump-1", &format!("[{}]", items.join(","))).await;
        assert_eq!(p.report.accepted, 0);
        assert_eq!(p.report.fatal, None);
        assert_eq!(p.report.rejected_total, 20);
        assert_eq!(p.batch.dead_letters.len(), 4);
        let summary = &p.report.rejected[3].reason;
        assert!(summary.starts_with("17 more problems"), "{summary}");
        assert!(
            summary.contains("bad_value: 7") && summary.contains("out_of_range: 10"),
            "{summary}"
        );
        assert_eq!(p.report.rejected[3].kind, RejectKind::OutOfRange);
    }

    #[test]
    fn report_serializes_with_stable_names() {
        let r = IngestReport {
            accepted: 1,
            rejected_total: 1,
            rejected: vec![Rejection {
                kind: RejectKind::BadValue,
                reason: "x".into(),
            }],
            fatal: None,
        };
        let json = serde_json::to_string(&r).expect("serializes");
        assert_eq!(
            json,
            r#"{"accepted":1,"rejected_total":1,"rejected":[{"kind":"bad_value","reason":"x"}],"fatal":null}"#
        );
    }
}
