//! Core of pdm, the predictive-maintenance engine: domain types, the trait seams every backend
//! implements, the catalog that validates readings, the engine that runs sources into a store
//! with acknowledgement after durable write, and the live path that scores what it stored.
//!
//! pdm-core holds no SQL, MQTT or HTTP: backends (`pdm-store`), sources (`pdm-ingest`) and
//! frontends (`pdm-server`) plug into the seams defined here.
//!
//! ```
//! use pdm_core::{MachineKey, SensorKey, Reading, Timestamp, Batch};
//!
//! let machine = MachineKey::new("pump-1")?;
//! let sensor = SensorKey::new("temperature")?;
//! let reading = Reading { machine, sensor, ts: Timestamp::from_millis(1_700_000_000_000), value: 61.5 };
//! let batch = Batch { readings: vec![reading], dead_letters: vec![] };
//! assert!(!batch.is_empty());
//!
//! // Keys are slugs: they appear in MQTT topics and URLs.
//! assert!(MachineKey::new("Pump 1").is_err());
//! # Ok::<(), pdm_core::KeyError>(())
//! ```
//!
//! The seams:
//! - [`source::Source`] pushes [`Batch`]es with an [`source::Ack`] into a [`source::BatchSink`];
//! - [`store::TelemetryStore`] stores them, and one trait per relational aggregate
//!   ([`store::MachineStore`], [`store::SensorStore`], [`store::ModelStore`],
//!   [`store::JobStore`], ...; together [`store::CatalogStore`]) keeps the rest;
//! - [`detector::Detector`] and [`detector::StreamingDetector`] score feature rows;
//! - [`notify::Notifier`] delivers alarm events;
//! - [`bus::Bus`] carries readings, predictions, alarm events and job progress to push clients
//!   (SSE, WebSocket), with ids and a bounded replay buffer.
//! - [`webhook::WebhookSender`] sends the webhook deliveries of the [`webhook::Dispatcher`],
//!   which delivers the alarm outbox durably ([`store::WebhookStore`] keeps its state).
//!
//! The alarm policy ([`alarm`]) is pure logic: rules, condition evaluation (k of n, deadband,
//! on/off delays) and the ISA-18.2 state machine with shelving, out of service, chattering and
//! escalation; the store persists its state.
//!
//! Row alignment ([`align`](mod@align)) turns a machine's readings into the rows its model
//! scores, by one rule shared by the live path and training.
//!
//! The live path ([`live`]) scores every machine's rows with its active model as the engine
//! stores them: owners sharded by machine key, fed after each durable write
//! ([`Engine::start_with_live`]), a [`live::ModelFactory`] seam that pdm-detect implements,
//! predictions stored in batches ([`store::PredictionStore`]), the model registry's rules and
//! the background training jobs.

pub mod alarm;
pub mod align;
pub mod attachment;
pub mod bus;
pub mod catalog;
pub mod comment;
pub mod config;
pub mod detector;
pub mod engine;
pub mod ids;
pub mod live;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod overview;
pub mod prediction;
pub mod redact;
pub mod retention;
pub mod rfc3339;
pub mod source;
pub mod store;
pub mod webhook;
pub mod workorder;

pub use align::{AlignConfig, Aligned, Aligner, AlignerStats, Row, Stale};
pub use catalog::{Catalog, InputContext};
pub use config::{ConfigError, ConfigResult};
pub use engine::{Engine, EngineConfig};
pub use ids::{KeyError, MachineKey, SensorKey};
pub use metrics::{Metrics, MetricsSnapshot};
pub use model::{
    Batch, Bucket, DeadLetter, DeadLetterPrune, DeadLetterQuery, Latest, Machine,
    MachineRangeQuery, MachineUpdate, NewMachine, NewSensor, Origin, Point, RangeQuery, Reading,
    RejectKind, Sensor, SensorUpdate, StoredDeadLetter, Timestamp,
};
pub use prediction::{Contribution, Prediction, PredictionBucket, PredictionQuery};
pub use redact::redact_url;
pub use retention::Retention;
pub use rfc3339::TimestampError;
pub use source::{Ack, BatchSink, Committed, Shutdown, ShutdownTrigger, Source, SourceContext};
pub use store::{
    AccessStore, Activation, AlarmEventRecord, AlarmId, AlarmQuery, AlarmRuleRecord, AlarmStore,
    AlarmTransition, CatalogStore, DeadLetterStore, Job, JobId, JobOutcome, JobQuery, JobStatus,
    JobStore, MachineStore, ModelId, ModelQuery, ModelRecord, ModelStatus, ModelStore,
    NewAlarmRule, NewJob, NewModel, OutboxEntry, PredictionStore, SensorStore, ServiceNote, Store,
    StoreError, StoreResult, StoredAlarm, StoredAlarmEvent, TelemetryStore, Webhook, WebhookId,
    WebhookStore, WriteOutcome,
};
