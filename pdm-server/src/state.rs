//! What handlers can reach, as sub-states.
//!
//! [`AppState`] is the router's state; a handler asks only for the part it needs
//! (`State<Arc<Catalog>>`, `State<IngestState>`, ...) through [`FromRef`]. A new resource adds
//! its own sub-state (a field here and one `FromRef` impl) instead of growing a shared struct
//! that every handler sees.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use pdm_core::bus::Bus;
use pdm_core::live::{Alarms, AlignDefaults, JobWaker, Live, LiveMetrics, ModelFactory, Registry};
use pdm_core::webhook::{DispatcherHandle, WebhookMetrics};
use pdm_core::{BatchSink, Catalog, Metrics, Shutdown, Store};
use pdm_ingest::Intake;

use crate::auth::{AuthConfig, AuthState};
use crate::config::PushConfig;
use crate::metrics::{HttpMetrics, PushMetrics};

/// Shared state of the HTTP app: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The whole store: readings, and the relational state behind the catalog.
    pub store: Arc<dyn Store>,
    /// Machines and sensors (registration goes through it so validation stays current).
    pub catalog: Arc<Catalog>,
    /// Telemetry ingestion over HTTP.
    pub ingest: IngestState,
    /// What `/metrics` exposes, and the HTTP request series the middleware records.
    pub metrics: MetricsState,
    /// How long a request may take before it is answered 503 `timeout`.
    pub request_timeout: Duration,
    /// The origins allowed to call the API from a browser (`cors_origins`).
    pub cors_origins: Arc<Vec<String>>,
    /// Live detection, the model registry and the jobs.
    pub detection: DetectionState,
    /// Alarm commands (acknowledge, shelve, out of service) and their notification.
    pub alarms: Arc<Alarms>,
    /// What push clients (SSE, WebSocket) receive.
    pub bus: Arc<Bus>,
    /// The push routes' heartbeat and the server's stop signal.
    pub push: PushSettings,
    /// The webhook routes' dispatcher handle and destination rule.
    pub webhooks: WebhookState,
    /// Who may do what: the credentials of every request.
    pub auth: AuthState,
    /// The attachments directory and the settings in force.
    pub attachments: AttachmentState,
}

impl AppState {
    /// Assembles the state of a running engine: its store, catalog, sink, intake and counters.
    /// The alarms and the bus are the live path's (a server without one gets its own, so
    /// alarms can still be acknowledged).
    pub fn new(
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        sink: BatchSink,
        intake: Arc<Intake>,
        metrics: Arc<Metrics>,
        detection: DetectionState,
    ) -> Self {
        let live = detection.live.as_ref().map(|l| l.metrics_handle());
        let exposed = MetricsState::new(metrics.clone(), sink.clone(), live);
        let alarms = match &detection.live {
            Some(l) => l.alarms().clone(),
            None => Alarms::new(
                store.clone(),
                PushConfig::default().bus(),
                Arc::new(tokio::sync::Notify::new()),
            ),
        };
        let bus = alarms.bus().clone();
        // Until `with_auth` gives it the server's keys: a key of its own, in memory.
        let auth = AuthState::new(
            store.clone(),
            crate::auth::jwt::KeyRing::new(
                crate::auth::keys::ephemeral(),
                &AuthConfig::default().issuer,
                &AuthConfig::default().audience,
            ),
            AuthConfig::default(),
        );
        Self {
            auth,
            alarms,
            bus,
            push: PushSettings::default(),
            store,
            catalog,
            ingest: IngestState {
                sink,
                intake,
                metrics,
                rate: Arc::default(),
            },
            metrics: exposed,
            request_timeout: crate::layers::DEFAULT_REQUEST_TIMEOUT,
            cors_origins: Arc::default(),
            detection,
            webhooks: WebhookState::default(),
            attachments: AttachmentState::default(),
        }
    }

    /// The same state with this attachments directory and these settings.
    pub fn with_attachments(mut self, attachments: AttachmentState) -> Self {
        self.attachments = attachments;
        self
    }

    /// The same state with these alarms (and their bus).
    pub fn with_alarms(mut self, alarms: Arc<Alarms>) -> Self {
        self.bus = alarms.bus().clone();
        self.alarms = alarms;
        self
    }

    /// The same state with the webhook dispatcher's handle and destination rule.
    pub fn with_webhooks(mut self, webhooks: WebhookState) -> Self {
        if let Some(d) = &webhooks.dispatcher {
            // `/metrics` exposes the dispatcher's counters too.
            self.metrics = MetricsState::with_webhooks(
                self.ingest.metrics.clone(),
                self.ingest.sink.clone(),
                self.detection.live.as_ref().map(|l| l.metrics_handle()),
                Some(d.metrics()),
            );
        }
        self.webhooks = webhooks;
        self
    }

    /// The same state with this authentication (the server's keys and settings).
    pub fn with_auth(mut self, auth: AuthState) -> Self {
        self.auth = auth;
        self
    }

    /// The same state with these push settings.
    pub fn with_push(mut self, push: PushSettings) -> Self {
        self.push = push;
        self
    }

    /// The same state with another request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The same state allowing browsers on `origins` (CORS).
    pub fn with_cors_origins(mut self, origins: Vec<String>) -> Self {
        self.cors_origins = Arc::new(origins);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("catalog", &self.catalog)
            .finish_non_exhaustive()
    }
}

/// What HTTP ingestion needs.
#[derive(Clone)]
pub struct IngestState {
    /// Where ingested batches go; answers only after the durable write.
    pub sink: BatchSink,
    /// Decoding and validation of telemetry payloads.
    pub intake: Arc<Intake>,
    /// Ingestion counters (pdm-core's plain counters, read by embedders and `/metrics`).
    pub metrics: Arc<Metrics>,
    /// Readings stored per second over the last minute (sampled while the server runs).
    pub rate: Arc<crate::api::dashboard::IngestRate>,
}

impl std::fmt::Debug for IngestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestState").finish_non_exhaustive()
    }
}

/// How the push routes behave, beyond the bus.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Between heartbeats (SSE comments, WebSocket pings).
    pub heartbeat: Duration,
    /// Resolves when the server stops: the streams end, so that the graceful shutdown does
    /// not wait for clients that never leave. `None`: they end with their clients.
    pub closing: Option<Shutdown>,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            heartbeat: PushConfig::default().heartbeat(),
            closing: None,
        }
    }
}

/// What the push routes need: the bus, their settings and their series.
#[derive(Debug, Clone)]
pub struct PushState {
    /// Where the events come from.
    pub bus: Arc<Bus>,
    /// Heartbeat and stop signal.
    pub settings: PushSettings,
    /// Clients, events sent, clients dropped.
    pub metrics: PushMetrics,
}

impl FromRef<AppState> for AuthState {
    fn from_ref(s: &AppState) -> Self {
        s.auth.clone()
    }
}

impl FromRef<AppState> for PushState {
    fn from_ref(s: &AppState) -> Self {
        Self {
            bus: s.bus.clone(),
            settings: s.push.clone(),
            // From the registry `/metrics` exposes now (`with_webhooks` makes another).
            metrics: s.metrics.push.clone(),
        }
    }
}

/// What the attachment and settings routes need.
#[derive(Debug, Clone, Default)]
pub struct AttachmentState {
    /// `<data_dir>/attachments` (`None`: an app without a data directory; uploads answer 503).
    pub dir: Option<crate::files::FileDir>,
    /// The settings in force (`uploads.max_bytes` among them).
    pub settings: crate::settings::SettingsHandle,
}

impl FromRef<AppState> for AttachmentState {
    fn from_ref(s: &AppState) -> Self {
        s.attachments.clone()
    }
}

/// What the webhook routes need.
#[derive(Clone, Default)]
pub struct WebhookState {
    /// The running dispatcher (`None` when `webhooks.enabled` is off on this worker: deliveries
    /// then wait for a worker that runs one).
    pub dispatcher: Option<DispatcherHandle>,
    /// Whether endpoints may be on private and loopback addresses (when `settings` is absent).
    pub allow_private: bool,
    /// When set, `webhooks.allow_private_destinations` is read from it at each use.
    pub settings: Option<crate::settings::SettingsHandle>,
}

impl WebhookState {
    /// Whether endpoints may be on private and loopback addresses now.
    pub fn allow_private(&self) -> bool {
        match &self.settings {
            Some(s) => s.current().webhooks.allow_private_destinations,
            None => self.allow_private,
        }
    }
}

impl WebhookState {
    /// Wakes the dispatcher, if this worker runs one: call it after storing an alarm
    /// transition, so that its events go out now rather than at the next poll.
    pub fn wake(&self) {
        if let Some(d) = &self.dispatcher {
            d.wake();
        }
    }

    /// The dispatcher's wake-up handle (`notify_one` it), for code that keeps a handle
    /// instead of the state; `None` when this worker runs no dispatcher.
    pub fn waker(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.dispatcher.as_ref().map(DispatcherHandle::waker)
    }
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("dispatcher", &self.dispatcher.is_some())
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl FromRef<AppState> for WebhookState {
    fn from_ref(s: &AppState) -> Self {
        s.webhooks.clone()
    }
}

/// What the model, job and prediction routes need.
#[derive(Clone)]
pub struct DetectionState {
    /// The model registry's operations (import, activate, training requests).
    pub registry: Registry,
    /// The live path of this worker, when it scores.
    pub live: Option<Arc<Live>>,
    /// Wakes the job runner when a job is queued.
    pub jobs: JobWaker,
}

impl DetectionState {
    /// The registry over `store` with `factory`, with `live` told of activations.
    pub fn new(
        store: Arc<dyn Store>,
        factory: Arc<dyn ModelFactory>,
        live: Option<Arc<Live>>,
        defaults: AlignDefaults,
        jobs: JobWaker,
    ) -> Self {
        Self {
            registry: Registry::new(store, factory, live.clone(), defaults),
            live,
            jobs,
        }
    }
}

impl std::fmt::Debug for DetectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectionState")
            .field("live", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for DetectionState {
    fn from_ref(s: &AppState) -> Self {
        s.detection.clone()
    }
}

/// The Prometheus registry behind `/metrics` and the HTTP series recorded into it.
#[derive(Clone, Debug)]
pub struct MetricsState {
    /// The registry `/metrics` encodes.
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// HTTP request count and latency, recorded by the middleware.
    pub http: HttpMetrics,
    /// The push routes' series.
    pub push: PushMetrics,
}

impl MetricsState {
    /// A registry exposing `metrics`, the queue depth of `sink` and the live path's counters,
    /// plus the HTTP series.
    pub fn new(metrics: Arc<Metrics>, sink: BatchSink, live: Option<Arc<LiveMetrics>>) -> Self {
        Self::with_webhooks(metrics, sink, live, None)
    }

    /// As [`MetricsState::new`], plus the webhook dispatcher's counters.
    pub fn with_webhooks(
        metrics: Arc<Metrics>,
        sink: BatchSink,
        live: Option<Arc<LiveMetrics>>,
        webhooks: Option<Arc<WebhookMetrics>>,
    ) -> Self {
        let (registry, http, push) = crate::metrics::registry(metrics, sink, live, webhooks);
        Self {
            registry: Arc::new(registry),
            http,
            push,
        }
    }
}

impl FromRef<AppState> for Arc<Alarms> {
    fn from_ref(s: &AppState) -> Self {
        s.alarms.clone()
    }
}

impl FromRef<AppState> for Arc<Bus> {
    fn from_ref(s: &AppState) -> Self {
        s.bus.clone()
    }
}

impl FromRef<AppState> for Arc<dyn Store> {
    fn from_ref(s: &AppState) -> Self {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Catalog> {
    fn from_ref(s: &AppState) -> Self {
        s.catalog.clone()
    }
}

impl FromRef<AppState> for IngestState {
    fn from_ref(s: &AppState) -> Self {
        s.ingest.clone()
    }
}

impl FromRef<AppState> for MetricsState {
    fn from_ref(s: &AppState) -> Self {
        s.metrics.clone()
    }
}
