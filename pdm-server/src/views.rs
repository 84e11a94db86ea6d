//! What the API answers: response types of their own, built from the core types.
//!
//! Core types are never serialised straight to the wire: a field added to a core type (a
//! password hash on a user, an internal flag) reaches no client until a view shows it, and the
//! wire format does not move when a core type is refactored. The tests below pin each view to
//! the JSON the API has always answered.

use pdm_core::live::{LiveState, MachineStatus};
use pdm_core::{
    Bucket, Job, Latest, Machine, ModelRecord, Point, Prediction, PredictionBucket, Sensor,
    StoredDeadLetter,
};
use pdm_ingest::{IngestReport, Rejection};
use serde::Serialize;
use utoipa::ToSchema;

pub mod access;
pub mod alarms;
pub mod workorders;

pub use access::{
    AcceptedView, EndedView, MeView, NewTokenView, RoleView, SessionView, SignInView, TicketView,
    TokenView, UserView,
};
pub use alarms::{
    AlarmDetailView, AlarmEventView, AlarmPageView, AlarmRuleView, AlarmUpdateView, AlarmView,
    PerformanceView, ServiceNoteView,
};
pub use workorders::{
    CodeView, FleetPrecisionView, MachinePrecisionView, PrecisionView, WorkOrderEventView,
    WorkOrderPageView, WorkOrderView,
};

/// A machine.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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

/// A registered model, without its file.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ModelView {
    /// Its id.
    pub id: i64,
    /// Its machine.
    pub machine: String,
    /// Its kind (`pipeline`, `isolation_forest`, ...).
    pub kind: String,
    /// 1, 2, ... per machine.
    pub version: i64,
    /// `candidate`, `active` or `retired`.
    pub status: &'static str,
    /// When it was registered, epoch milliseconds.
    pub created_at: i64,
    /// Start of the training range, epoch milliseconds.
    pub trained_from: i64,
    /// End of the training range (exclusive), epoch milliseconds.
    pub trained_to: i64,
    /// How rows are formed for it and what it was fitted with.
    pub parameters: serde_json::Value,
    /// Training metrics.
    pub metrics: serde_json::Value,
    /// Size of its model file in bytes.
    pub size_bytes: u64,
    /// Who activated it last.
    pub activated_by: Option<String>,
    /// When it was activated last, epoch milliseconds.
    pub activated_at: Option<i64>,
}

/// A JSON document stored as text; a string of the text if it does not parse.
fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

impl From<ModelRecord> for ModelView {
    fn from(m: ModelRecord) -> Self {
        Self {
            id: m.id.0,
            machine: m.machine.as_str().to_owned(),
            kind: m.kind,
            version: m.version,
            status: m.status.as_str(),
            created_at: m.created_at.as_millis(),
            trained_from: m.trained_from.as_millis(),
            trained_to: m.trained_to.as_millis(),
            parameters: json_of(&m.parameters),
            metrics: json_of(&m.metrics),
            size_bytes: m.size_bytes,
            activated_by: m.activated_by,
            activated_at: m.activated_at.map(|t| t.as_millis()),
        }
    }
}

/// A background job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobView {
    /// Its id.
    pub id: i64,
    /// What it does (`train`).
    pub kind: String,
    /// The machine it concerns.
    pub machine: Option<String>,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: &'static str,
    /// How far it got, 0 to 1.
    pub progress: f64,
    /// What it is doing, or why it failed or was cancelled.
    pub message: Option<String>,
    /// Its input.
    pub params: serde_json::Value,
    /// What it produced, once succeeded (a training: the model's id and version).
    pub result: Option<serde_json::Value>,
    /// When it was queued, epoch milliseconds.
    pub created_at: i64,
    /// When a worker started it.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id.0,
            kind: j.kind,
            machine: j.machine.map(|m| m.as_str().to_owned()),
            status: j.status.as_str(),
            progress: j.progress,
            message: j.message,
            params: json_of(&j.params),
            result: j.result.as_deref().map(json_of),
            created_at: j.created_at.as_millis(),
            started_at: j.started_at.map(|t| t.as_millis()),
            finished_at: j.finished_at.map(|t| t.as_millis()),
        }
    }
}

/// One sensor's share of a score.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ContributionView {
    /// The sensor.
    pub sensor: String,
    /// Its share, 0 to 1.
    pub share: f64,
}

/// A prediction: what the active model said about one row.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PredictionView {
    /// The row's instant, epoch milliseconds.
    pub ts: i64,
    /// The model that scored it.
    pub model: i64,
    /// Anomaly score; higher is more anomalous.
    pub score: f64,
    /// Scores above this are anomalous.
    pub threshold: f64,
    /// `score > threshold`.
    pub anomalous: bool,
    /// The sensors that explain the score most, largest first (anomalous rows).
    pub contributions: Vec<ContributionView>,
    /// Health index, 1 (healthy) to 0 (failure level).
    pub health: Option<f64>,
    /// Remaining useful life estimate, seconds.
    pub rul_s: Option<f64>,
}

impl From<Prediction> for PredictionView {
    fn from(p: Prediction) -> Self {
        Self {
            ts: p.ts.as_millis(),
            model: p.model.0,
            score: p.score,
            threshold: p.threshold,
            anomalous: p.anomalous,
            contributions: p
                .contributions
                .into_iter()
                .map(|c| ContributionView {
                    sensor: c.sensor.as_str().to_owned(),
                    share: c.share,
                })
                .collect(),
            health: p.health,
            rul_s: p.rul_s,
        }
    }
}

/// Predictions of one bucket of time.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PredictionBucketView {
    /// Start of the bucket, epoch milliseconds.
    pub start: i64,
    /// Predictions in it.
    pub count: u64,
    /// How many were anomalous.
    pub anomalous: u64,
    /// Mean score.
    pub avg_score: f64,
    /// Highest score.
    pub max_score: f64,
    /// Lowest health index.
    pub min_health: Option<f64>,
    /// Lowest remaining useful life, seconds.
    pub min_rul_s: Option<f64>,
}

impl From<PredictionBucket> for PredictionBucketView {
    fn from(b: PredictionBucket) -> Self {
        Self {
            start: b.start.as_millis(),
            count: b.count,
            anomalous: b.anomalous,
            avg_score: b.avg_score,
            max_score: b.max_score,
            min_health: b.min_health,
            min_rul_s: b.min_rul_s,
        }
    }
}

/// A machine on the live path.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LiveStatusView {
    /// The machine.
    pub machine: String,
    /// `no_model`, `model_error`, `warming`, `scoring`, `stale`, or `not_seen` (this worker
    /// has not had a reading of it since it started) or `other_worker` (another shard's).
    pub state: &'static str,
    /// The model scoring it.
    pub model: Option<i64>,
    /// The stale channels, while stale.
    pub stale_channels: Vec<String>,
    /// The newest row scored, epoch milliseconds.
    pub last_scored: Option<i64>,
    /// Rows scored since this worker started.
    pub rows_scored: u64,
    /// Readings that came too late to be scored, since this worker started.
    pub readings_late: u64,
}

impl From<MachineStatus> for LiveStatusView {
    fn from(s: MachineStatus) -> Self {
        Self {
            machine: s.machine.as_str().to_owned(),
            state: match s.state {
                LiveState::NoModel => "no_model",
                LiveState::ModelError => "model_error",
                LiveState::Warming => "warming",
                LiveState::Scoring => "scoring",
                LiveState::Stale => "stale",
            },
            model: s.model.map(|m| m.0),
            stale_channels: s
                .stale_channels
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
            last_scored: s.last_scored.map(|t| t.as_millis()),
            rows_scored: s.rows_scored,
            readings_late: s.readings_late,
        }
    }
}

/// Converts a list of core values into views.
pub fn views<T, V: From<T>>(items: Vec<T>) -> Vec<V> {
    items.into_iter().map(V::from).collect()
}

/// A webhook endpoint (its secret only where [`WebhookSecretView`] shows it).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: i64,
    /// Where deliveries go.
    pub url: String,
    /// What it is for.
    pub description: Option<String>,
    /// Only events of these machines (empty: all).
    pub machines: Vec<String>,
    /// Only events of these severities (empty: all).
    pub severities: Vec<&'static str>,
    /// Only events of these kinds (empty: all).
    pub event_kinds: Vec<&'static str>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why the dispatcher disabled it.
    pub disabled_reason: Option<String>,
    /// Since when its attempts fail, epoch milliseconds.
    pub failing_since: Option<i64>,
    /// Until when the previous secret still signs, epoch milliseconds.
    pub previous_secret_expires_at: Option<i64>,
    /// When it was created, epoch milliseconds.
    pub created_at: i64,
    /// When it was last changed, epoch milliseconds.
    pub updated_at: i64,
}

impl From<pdm_core::Webhook> for WebhookView {
    fn from(w: pdm_core::Webhook) -> Self {
        Self {
            id: w.id.0,
            url: w.url,
            description: w.description,
            machines: w
                .filter
                .machines
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            severities: w.filter.severities.iter().map(|s| s.as_str()).collect(),
            event_kinds: w.filter.event_kinds.iter().map(|k| k.as_str()).collect(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since.map(|t| t.as_millis()),
            previous_secret_expires_at: w.previous_secret_expires_at.map(|t| t.as_millis()),
            created_at: w.created_at.as_millis(),
            updated_at: w.updated_at.as_millis(),
        }
    }
}

/// A webhook endpoint with its signing secret: the answer of create and rotate only.
#[derive(Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookSecretView {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The current secret (`whsec_...`).
    pub secret: String,
}

/// The secret never reaches a log line.
impl std::fmt::Debug for WebhookSecretView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecretView")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

impl From<pdm_core::Webhook> for WebhookSecretView {
    fn from(w: pdm_core::Webhook) -> Self {
        let secret = w.secret.clone();
        Self {
            webhook: w.into(),
            secret,
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttemptView {
    /// When it started, epoch milliseconds.
    pub at: i64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// How long it took.
    pub duration_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
}

impl From<pdm_core::store::DeliveryAttempt> for AttemptView {
    fn from(a: pdm_core::store::DeliveryAttempt) -> Self {
        Self {
            at: a.at.as_millis(),
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            error: a.error,
        }
    }
}

/// A delivery of one event to one endpoint, with its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id.
    pub id: i64,
    /// The endpoint.
    pub webhook_id: i64,
    /// The `webhook-id` header of every attempt.
    pub message_id: String,
    /// The event type.
    pub event_type: String,
    /// The alarm the event belongs to.
    pub alarm_id: Option<i64>,
    /// `pending`, `delivered` or `failed`.
    pub status: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due, epoch milliseconds.
    pub next_attempt_at: Option<i64>,
    /// The HTTP status of the last attempt.
    pub last_status: Option<u16>,
    /// The error of the last attempt.
    pub last_error: Option<String>,
    /// When it was created, epoch milliseconds.
    pub created_at: i64,
    /// The body sent (JSON).
    pub payload: serde_json::Value,
    /// The attempts, oldest first.
    pub attempt_log: Vec<AttemptView>,
}

impl DeliveryView {
    /// The view of `d` with its `attempts`.
    pub fn new(
        d: pdm_core::store::Delivery,
        attempts: Vec<pdm_core::store::DeliveryAttempt>,
    ) -> Self {
        let next = (d.status == pdm_core::store::DeliveryStatus::Pending)
            .then_some(d.next_attempt_at)
            .flatten();
        Self {
            id: d.id,
            webhook_id: d.webhook.0,
            payload: serde_json::from_str(&d.payload)
                .unwrap_or(serde_json::Value::String(d.payload)),
            message_id: d.message_id,
            event_type: d.event_type,
            alarm_id: d.alarm_id,
            status: d.status.as_str(),
            attempts: d.attempts,
            next_attempt_at: next.map(|t| t.as_millis()),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at.as_millis(),
            attempt_log: views(attempts),
        }
    }
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

    #[test]
    fn webhook_views_never_show_the_secret_unless_asked() {
        use pdm_core::alarm::Severity;
        let w = pdm_core::Webhook {
            id: pdm_core::WebhookId(7),
            url: "https://example.com/hook".into(),
            description: None,
            secret: "whsec_abc".into(),
            previous_secret: Some("whsec_old".into()),
            previous_secret_expires_at: Some(Timestamp::from_millis(5)),
            filter: pdm_core::store::WebhookFilter {
                machines: vec![MachineKey::new("pump-1").expect("key")],
                severities: vec![Severity::High],
                event_kinds: vec![],
            },
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
        };
        let plain = to_value(WebhookView::from(w.clone())).expect("json");
        assert_eq!(
            plain,
            serde_json::json!({"id": 7, "url": "https://example.com/hook", "description": null,
                "machines": ["pump-1"], "severities": ["high"], "event_kinds": [],
                "enabled": true, "disabled_reason": null, "failing_since": null,
                "previous_secret_expires_at": 5, "created_at": 1, "updated_at": 2})
        );
        let shown = to_value(WebhookSecretView::from(w)).expect("json");
        assert_eq!(shown["secret"], "whsec_abc");
        assert!(!shown.to_string().contains("whsec_old"));
    }
}
