//! The Prometheus registry behind `/metrics`, with the `prometheus-client` crate.
//!
//! pdm-core's [`Metrics`] stay plain atomic counters (embedders read them without Prometheus);
//! a [`Collector`] reads them at each scrape and writes them under the series names they have
//! always had. The server's own series (HTTP requests) are `prometheus-client` metrics in the
//! same registry. Why this crate: see docs/operations.md, "Metrics".

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use pdm_core::live::LiveMetrics;
use pdm_core::webhook::WebhookMetrics;
use pdm_core::{BatchSink, Metrics};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

/// The `Content-Type` of `/metrics`: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Upper bounds of the HTTP latency buckets, in seconds: 1 ms to 120 s. A request cut by the
/// default 30 s timeout takes a little over 30 s, so it falls in the 60 s bucket, apart from
/// the requests that finished in time; only timeouts configured above 120 s reach `+Inf`.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Labels of the HTTP series: few values each, so the number of series stays bounded.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// `GET`, `POST`, ... or `other` for extension methods.
    pub method: &'static str,
    /// The matched route template (`/api/v1/machines/{machine}`), or `unmatched`.
    pub route: Cow<'static, str>,
    /// The status class: `2xx`, `4xx`, ...
    pub status: &'static str,
}

type LatencyFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// HTTP request count and latency per method, matched route and status class.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: LatencyFamily,
}

impl HttpMetrics {
    /// Counts one answered request.
    pub fn record(&self, method: &Method, route: Option<&str>, status: StatusCode, took: Duration) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.map_or(Cow::Borrowed("unmatched"), |r| Cow::Owned(r.to_owned())),
            status: status_class(status),
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The push transport a series is about.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum Transport {
    /// `GET /api/v1/events`.
    Sse,
    /// `GET /api/v1/ws`.
    WebSocket,
}

impl Transport {
    /// The label value: `sse` or `websocket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Why the server dropped a push client.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum DropReason {
    /// It fell further behind than `push.channel` events.
    Lagged,
    /// A WebSocket that answered no ping for several heartbeats, or took too long to take a
    /// frame.
    Unresponsive,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    transport: &'static str,
    reason: &'static str,
}

/// The push series: clients connected, events sent, clients dropped.
#[derive(Clone, Debug, Default)]
pub struct PushMetrics {
    clients: Family<TransportLabels, Gauge>,
    sent: Family<TransportLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
}

impl PushMetrics {
    /// Counts a client in until the returned guard is dropped.
    pub fn connected(&self, transport: Transport) -> ClientGuard {
        let gauge = self
            .clients
            .get_or_create(&TransportLabels {
                transport: transport.as_str(),
            })
            .clone();
        gauge.inc();
        ClientGuard(gauge)
    }

    /// Counts one event (or reset) sent to a client.
    pub fn sent(&self, transport: Transport) {
        self.sent
            .get_or_create(&TransportLabels {
                transport: transport.as_str(),
            })
            .inc();
    }

    /// Counts a client dropped by the server.
    pub fn dropped(&self, transport: Transport, reason: DropReason) {
        let reason = match reason {
            DropReason::Lagged => "lagged",
            DropReason::Unresponsive => "unresponsive",
        };
        self.dropped
            .get_or_create(&DropLabels {
                transport: transport.as_str(),
                reason,
            })
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "pdm_push_clients",
            "Push clients connected, by transport (sse, websocket)",
            self.clients.clone(),
        );
        registry.register(
            "pdm_push_events_sent",
            "Events sent to push clients, by transport",
            self.sent.clone(),
        );
        registry.register(
            "pdm_push_clients_dropped",
            "Push clients dropped by the server, by transport and reason (lagged, unresponsive)",
            self.dropped.clone(),
        );
    }
}

/// Keeps a push client counted in `pdm_push_clients` while it lives.
#[derive(Debug)]
pub struct ClientGuard(Gauge);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A registry with the engine's counters (read from `metrics` and `sink` at each scrape) and
/// the HTTP and push series, which the returned [`HttpMetrics`] and [`PushMetrics`] record.
pub fn registry(
    metrics: Arc<Metrics>,
    sink: BatchSink,
    live: Option<Arc<LiveMetrics>>,
    webhooks: Option<Arc<WebhookMetrics>>,
) -> (Registry, HttpMetrics, PushMetrics) {
    let queue_depth = move || sink.max_capacity().saturating_sub(sink.capacity());
    let (mut registry, http) = registry_with(metrics, Box::new(queue_depth));
    let push = PushMetrics::default();
    push.register(&mut registry);
    if let Some(live) = live {
        registry.register_collector(Box::new(LiveCollector(live)));
    }
    if let Some(webhooks) = webhooks {
        registry.register_collector(Box::new(WebhookCollector(webhooks)));
    }
    (registry, http, push)
}

/// Writes the webhook dispatcher's counters (`pdm_webhooks_*`), read at scrape time.
#[derive(Debug)]
struct WebhookCollector(Arc<WebhookMetrics>);

impl Collector for WebhookCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        for (name, help, v) in self.0.snapshot().fields() {
            counter(&mut enc, &format!("pdm_webhooks_{name}"), help, v)?;
        }
        Ok(())
    }
}

/// Writes the live path's counters (`pdm_live_*`), read at scrape time.
#[derive(Debug)]
struct LiveCollector(Arc<LiveMetrics>);

impl Collector for LiveCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        for (name, help, v) in self.0.snapshot().fields() {
            // `scoring_micros_total` is exported in whole seconds, like the store's write time;
            // the encoder appends `_total` to counters, so names are given without it.
            let (name, v) = match name {
                "scoring_micros_total" => ("scoring_seconds".to_owned(), v / 1_000_000),
                n => (n.to_owned(), v),
            };
            counter(&mut enc, &format!("pdm_live_{name}"), help, v)?;
        }
        Ok(())
    }
}

fn registry_with(metrics: Arc<Metrics>, queue_depth: QueueDepth) -> (Registry, HttpMetrics) {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(EngineCollector {
        metrics,
        queue_depth,
    }));
    let http = HttpMetrics {
        requests: Family::default(),
        latency: Family::new_with_constructor(latency_histogram),
    };
    registry.register(
        "pdm_http_requests",
        "HTTP requests answered, by method, matched route and status class",
        http.requests.clone(),
    );
    registry.register_with_unit(
        "pdm_http_request_duration",
        "Time from receiving a request to answering it, by method, matched route and status class",
        Unit::Seconds,
        http.latency.clone(),
    );
    (registry, http)
}

/// A registry on fresh counters, for tests of the layers.
#[cfg(test)]
pub(crate) fn test_registry() -> (Registry, HttpMetrics) {
    registry_with(Arc::new(Metrics::default()), Box::new(|| 0))
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> Result<String, fmt::Error> {
    let mut out = String::with_capacity(4096);
    prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    Ok(out)
}

type QueueDepth = Box<dyn Fn() -> usize + Send + Sync>;

/// Writes pdm-core's counters, read at scrape time.
struct EngineCollector {
    metrics: Arc<Metrics>,
    queue_depth: QueueDepth,
}

impl fmt::Debug for EngineCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineCollector").finish_non_exhaustive()
    }
}

fn counter(enc: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

impl Collector for EngineCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> fmt::Result {
        let m = self.metrics.snapshot();
        // Names without `_total`: the encoder appends it to counters.
        for (name, help, v) in [
            (
                "pdm_readings_received",
                "Valid readings handed to the engine.",
                m.readings_received,
            ),
            (
                "pdm_readings_stored",
                "Readings newly stored.",
                m.readings_stored,
            ),
            (
                "pdm_readings_duplicate",
                "Readings skipped as already stored.",
                m.readings_duplicate,
            ),
            (
                "pdm_store_batches",
                "Store transactions committed.",
                m.batches_written,
            ),
            (
                "pdm_store_write_errors",
                "Store writes that failed and were retried.",
                m.write_errors,
            ),
            (
                "pdm_store_write_seconds",
                "Time spent in committed store writes, in whole seconds.",
                m.write_micros_total / 1_000_000,
            ),
            (
                "pdm_dead_letters_pruned",
                "Dead letters deleted by retention.",
                m.dead_letters_pruned,
            ),
            (
                "pdm_readings_pruned",
                "Readings deleted by retention.",
                m.readings_pruned,
            ),
            (
                "pdm_predictions_pruned",
                "Predictions deleted by retention.",
                m.predictions_pruned,
            ),
            (
                "pdm_retention_errors",
                "Retention deletes that failed (tried again at the next pass).",
                m.retention_errors,
            ),
        ] {
            counter(&mut enc, name, help, v)?;
        }
        let mut family = enc.encode_descriptor(
            "pdm_messages",
            "Input messages by origin.",
            None,
            MetricType::Counter,
        )?;
        for (origin, n) in [
            ("mqtt", m.messages_mqtt),
            ("http", m.messages_http),
            ("other", m.messages_other),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&[("origin", origin)])?)?;
        }
        let mut family = enc.encode_descriptor(
            "pdm_dead_letters",
            "Rejected inputs by reason.",
            None,
            MetricType::Counter,
        )?;
        for (kind, n) in &m.dead_letters {
            ConstCounter::new(*n).encode(family.encode_family(&[("reason", kind.as_str())])?)?;
        }
        let depth = i64::try_from((self.queue_depth)()).unwrap_or(i64::MAX);
        let gauge = ConstGauge::new(depth);
        gauge.encode(enc.encode_descriptor(
            "pdm_ingest_queue_depth",
            "Batches waiting for the writer.",
            None,
            gauge.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdm_core::{MetricsSnapshot, Origin, RejectKind};
    use std::collections::BTreeSet;
    use std::fmt::Write as _;

    /// The exposition `/metrics` wrote by hand before this registry (kept verbatim as the
    /// reference: the series must not move).
    fn hand_written(m: &MetricsSnapshot, queued: usize) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "pdm_readings_received_total",
            "Valid readings handed to the engine.",
            m.readings_received,
        );
        counter(
            "pdm_readings_stored_total",
            "Readings newly stored.",
            m.readings_stored,
        );
        counter(
            "pdm_readings_duplicate_total",
            "Readings skipped as already stored.",
            m.readings_duplicate,
        );
        counter(
            "pdm_store_batches_total",
            "Store transactions committed.",
            m.batches_written,
        );
        counter(
            "pdm_store_write_errors_total",
            "Store writes that failed and were retried.",
            m.write_errors,
        );
        counter(
            "pdm_store_write_seconds_total",
            "Time spent in committed store writes, in whole seconds.",
            m.write_micros_total / 1_000_000,
        );
        counter(
            "pdm_dead_letters_pruned_total",
            "Dead letters deleted by retention.",
            m.dead_letters_pruned,
        );
        counter(
            "pdm_readings_pruned_total",
            "Readings deleted by retention.",
            m.readings_pruned,
        );
        // Added with predictions (issue 9); the series above stay as they were.
        counter(
            "pdm_predictions_pruned_total",
            "Predictions deleted by retention.",
            m.predictions_pruned,
        );
        counter(
            "pdm_retention_errors_total",
            "Retention deletes that failed (tried again at the next pass).",
            m.retention_errors,
        );
        let _ = writeln!(out, "# HELP pdm_messages_total Input messages by origin.\n# TYPE pdm_messages_total counter");
        for (origin, n) in [
            ("mqtt", m.messages_mqtt),
            ("http", m.messages_http),
            ("other", m.messages_other),
        ] {
            let _ = writeln!(out, "pdm_messages_total{{origin=\"{origin}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP pdm_dead_letters_total Rejected inputs by reason.\n# TYPE pdm_dead_letters_total counter");
        for (kind, n) in &m.dead_letters {
            let _ = writeln!(
                out,
                "pdm_dead_letters_total{{reason=\"{}\"}} {n}",
                kind.as_str()
            );
        }
        let _ = writeln!(out, "# HELP pdm_ingest_queue_depth Batches waiting for the writer.\n# TYPE pdm_ingest_queue_depth gauge\npdm_ingest_queue_depth {queued}");
        out
    }

    fn families(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(str::to_owned)
            .collect()
    }

    fn busy_metrics() -> Arc<Metrics> {
        let m = Arc::new(Metrics::default());
        m.message(Origin::Mqtt);
        m.message(Origin::Http);
        m.message(Origin::Http);
        m.received(7);
        m.written(5, 2, 2_500_000);
        m.write_error();
        m.dead_letter(RejectKind::BadValue);
        m.dead_letter(RejectKind::OutOfRange);
        m.dead_letter(RejectKind::OutOfRange);
        m.dead_letters_pruned(3);
        m.readings_pruned(4);
        m.retention_error();
        m
    }

    #[test]
    fn engine_series_are_written_as_before() {
        let metrics = busy_metrics();
        let (registry, _http) = registry_with(metrics.clone(), Box::new(|| 3));
        let text = encode(&registry).expect("encode");
        let before = hand_written(&metrics.snapshot(), 3);
        assert!(text.contains(&before), "old:\n{before}\nnew:\n{text}");
    }

    #[test]
    fn the_set_of_series_only_grows_by_the_http_ones() {
        let metrics = busy_metrics();
        let (registry, http) = registry_with(metrics.clone(), Box::new(|| 0));
        http.record(
            &Method::GET,
            Some("/api/v1/machines/{machine}"),
            StatusCode::NOT_FOUND,
            Duration::from_millis(3),
        );
        let text = encode(&registry).expect("encode");
        let before = families(&hand_written(&metrics.snapshot(), 0));
        let after = families(&text);
        let added: BTreeSet<String> = after.difference(&before).cloned().collect();
        assert!(
            before.is_subset(&after),
            "lost: {:?}",
            before.difference(&after)
        );
        assert_eq!(
            added,
            BTreeSet::from([
                "pdm_http_requests_total counter".to_owned(),
                "pdm_http_request_duration_seconds histogram".to_owned(),
            ])
        );
        assert!(
            text.contains(
                "pdm_http_requests_total{method=\"GET\",route=\"/api/v1/machines/{machine}\",status=\"4xx\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "pdm_http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/v1/machines/{machine}\",status=\"4xx\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn push_series_count_clients_while_they_live() {
        let mut registry = Registry::default();
        let push = PushMetrics::default();
        push.register(&mut registry);
        let a = push.connected(Transport::Sse);
        let b = push.connected(Transport::WebSocket);
        let _c = push.connected(Transport::WebSocket);
        drop(b);
        push.sent(Transport::Sse);
        push.dropped(Transport::Sse, DropReason::Lagged);
        let text = encode(&registry).expect("encode");
        for line in [
            "pdm_push_clients{transport=\"sse\"} 1",
            "pdm_push_clients{transport=\"websocket\"} 1",
            "pdm_push_events_sent_total{transport=\"sse\"} 1",
            "pdm_push_clients_dropped_total{transport=\"sse\",reason=\"lagged\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        drop(a);
        let text = encode(&registry).expect("encode");
        assert!(
            text.contains("pdm_push_clients{transport=\"sse\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn labels_stay_bounded() {
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("method")),
            "other"
        );
        assert_eq!(status_class(StatusCode::SERVICE_UNAVAILABLE), "5xx");
        assert_eq!(status_class(StatusCode::CREATED), "2xx");
    }
}
