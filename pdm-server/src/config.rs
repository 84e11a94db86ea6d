//! Server configuration: defaults, then an optional TOML file, then `PDM_*` environment
//! variables, then command-line flags (each later one wins).
//!
//! ```toml
//! data_dir = "/var/lib/pdm"
//! database_url = "postgres://pdm@db.example/pdm"
//! http = "0.0.0.0:8080"
//! auto_register = false
//!
//! [mqtt]
//! url = "mqtt://broker.example:1883"
//! client_id = "pdm-server-1"
//!
//! [codec]
//! max_payload_bytes = 1048576
//!
//! [engine]
//! max_batch_readings = 20000
//!
//! [engine.retention]
//! dead_letters_max_age_days = 30
//! readings_max_age_days = 365
//!
//! [live]
//! shard = "0/1"              # this worker's share of the machines: "index/count"
//! sample_period_ms = 1000    # rows of models trained or imported without a period
//! auto_train_after_s = 3600  # a machine without a model trains on its first hour
//!
//! [webhooks]
//! allow_private_destinations = false  # PDM_WEBHOOKS_ALLOW_PRIVATE
//!
//! [push]
//! replay = 10000        # events kept for clients that resume (Last-Event-ID)
//! channel = 4096        # events a client may fall behind before it is dropped
//! heartbeat_ms = 15000  # SSE comment / WebSocket ping interval
//!
//! [auth]
//! access_ttl_s = 900                # access tokens (JWT) live 15 minutes
//! refresh_ttl_s = 604800            # a refresh token unused for 7 days stops working
//! session_max_s = 2592000           # sign in again after 30 days at most
//! # signing_key = "base64..."       # PDM_AUTH_SIGNING_KEY; else generated into data_dir
//! max_failures_per_account = 100    # failed sign-ins an hour before 429
//! max_failures_per_address = 300
//!
//! [uploads]
//! max_bytes = 20971520              # largest attachment (20 MiB)
//! ```
//!
//! Some of these are also system settings (`crate::settings`): an admin changes them through
//! `PATCH /api/v1/settings`, and what is stored there wins over the file.
//!
//! The first admin comes from `PDM_ADMIN_EMAIL` and `PDM_ADMIN_PASSWORD` (created at start
//! when no user has that email), or from `pdm-server users create --role admin`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pdm_core::live::LiveConfig;
use pdm_core::EngineConfig;
#[cfg(feature = "mqtt")]
use pdm_ingest::mqtt::MqttSourceConfig;
use pdm_ingest::CodecConfig;
use pdm_store::{redact_url, StoreOptions};
use serde::Deserialize;

/// A setting that cannot be used, named so the operator knows what to fix: the engine crates'
/// [`pdm_core::ConfigError`] (one shape for every setting), shown as `configuration: ...`.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub pdm_core::ConfigError);

/// The checks of the engine crates name their settings the same way.
impl From<pdm_core::ConfigError> for ConfigError {
    fn from(e: pdm_core::ConfigError) -> Self {
        Self(e)
    }
}

impl ConfigError {
    /// An error naming `setting`.
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self(pdm_core::ConfigError::new(setting, problem))
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Directory for the embedded database and other local state.
    pub data_dir: PathBuf,
    /// Database URL (`sqlite://...` or `postgres://...`); SQLite in `data_dir` when absent.
    pub database_url: Option<String>,
    /// Address the HTTP server listens on.
    pub http: SocketAddr,
    /// Register unknown machines and sensors on first sight instead of rejecting their readings.
    pub auto_register: bool,
    /// MQTT ingestion; off when absent.
    #[cfg(feature = "mqtt")]
    pub mqtt: Option<MqttSourceConfig>,
    /// Payload limits and the accepted time window.
    pub codec: CodecConfig,
    /// Queue and batching of the ingestion engine.
    pub engine: EngineConfig,
    /// Connection pool and migration settings of the database.
    pub store: StoreOptions,
    /// Milliseconds an HTTP request may take before it is answered 503 `timeout`.
    pub request_timeout_ms: u64,
    /// Live detection: owners, shard of this worker, defaults of training, auto-training.
    pub live: LiveConfig,
    /// The webhook dispatcher and its HTTP client.
    pub webhooks: WebhooksConfig,
    /// Live push (SSE and WebSocket): the bus and the heartbeats.
    pub push: PushConfig,
    /// Sign-in sessions, access tokens and their keys, sign-in throttling.
    pub auth: crate::auth::AuthConfig,
    /// The mail server for password resets; without it the reset token is logged.
    pub smtp: Option<crate::mail::SmtpConfig>,
    /// The audit log's retention.
    pub audit: crate::audit::AuditConfig,
    /// Attachments: the upload limit.
    pub uploads: UploadsConfig,
    /// Origins (`https://dashboard.example`) whose pages may call the API from a browser
    /// (CORS). Empty: none; the server's own pages need no entry.
    pub cors_origins: Vec<String>,
}

/// `[uploads]`: attachments on work orders, alarms and comments (stored under
/// `<data_dir>/attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadsConfig {
    /// Largest file, in bytes (a setting: `PATCH /api/v1/settings` changes it at once).
    pub max_bytes: u64,
}

impl Default for UploadsConfig {
    fn default() -> Self {
        Self {
            max_bytes: pdm_core::attachment::DEFAULT_MAX_BYTES,
        }
    }
}

/// `[push]`: the event bus behind `/api/v1/events` (SSE) and `/api/v1/ws` (WebSocket).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Events kept for clients that reconnect with the last id they saw; one that missed more
    /// is told to reload (`reset`).
    pub replay: usize,
    /// Events a client may fall behind before it is told it lagged and is dropped.
    pub channel: usize,
    /// Milliseconds between heartbeats (an SSE comment, a WebSocket ping); a WebSocket that
    /// answers no ping for [`PushConfig::MISSED_PINGS`] heartbeats is dropped.
    pub heartbeat_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            replay: 10_000,
            channel: 4_096,
            heartbeat_ms: 15_000,
        }
    }
}

impl PushConfig {
    /// Heartbeats a WebSocket may leave unanswered before it is dropped.
    pub const MISSED_PINGS: u32 = 3;

    /// Most events kept for replay: each holds its JSON, so the buffer is bounded in memory.
    pub const MAX_REPLAY: usize = 1_000_000;

    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.replay == 0 || self.replay > Self::MAX_REPLAY {
            return Err(ConfigError::new(
                "push.replay",
                format!(
                    "must be between 1 and {} (got {})",
                    Self::MAX_REPLAY,
                    self.replay
                ),
            ));
        }
        // tokio's broadcast channel refuses more than half of usize::MAX; far less is sane.
        if self.channel == 0 || self.channel > Self::MAX_REPLAY {
            return Err(ConfigError::new(
                "push.channel",
                format!(
                    "must be between 1 and {} (got {})",
                    Self::MAX_REPLAY,
                    self.channel
                ),
            ));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms > 3_600_000 {
            return Err(ConfigError::new(
                "push.heartbeat_ms",
                format!(
                    "must be between 1 and 3600000 milliseconds (got {})",
                    self.heartbeat_ms
                ),
            ));
        }
        Ok(())
    }

    /// The bus these settings describe.
    pub fn bus(&self) -> std::sync::Arc<pdm_core::bus::Bus> {
        pdm_core::bus::Bus::new(self.replay, self.channel)
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.heartbeat_ms)
    }
}

/// `[webhooks]`: the dispatcher that delivers alarm events to webhook endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Run the dispatcher on this worker (several workers may: claims are leased).
    pub enabled: bool,
    /// Let endpoints on private, loopback, link-local and other non-public addresses be
    /// created and reached (`PDM_WEBHOOKS_ALLOW_PRIVATE`). Off: a receiver inside the network
    /// cannot be probed through pdm.
    pub allow_private_destinations: bool,
    /// Milliseconds one attempt may take.
    pub timeout_ms: u64,
    /// Attempts in flight at most.
    pub concurrency: usize,
    /// The delays between attempts, in milliseconds; absent: immediately, 5 s, 5 min, 30 min,
    /// 2 h, 5 h, 10 h, 10 h (the Standard Webhooks schedule). Tests shorten it.
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Days delivered and failed deliveries are kept.
    pub retention_days: u32,
    /// Milliseconds between probes of a failing endpoint (its oldest waiting event, tried
    /// ahead of the schedule, for the first hour of the failure), so a receiver back from an
    /// outage gets its backlog at once; 0: no probes.
    pub probe_interval_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_private_destinations: false,
            timeout_ms: 15_000,
            concurrency: 32,
            retry_schedule_ms: None,
            retention_days: 30,
            probe_interval_ms: 15_000,
        }
    }
}

impl WebhooksConfig {
    /// The dispatcher's settings.
    pub fn dispatcher(&self) -> pdm_core::webhook::DispatcherConfig {
        use std::time::Duration;
        let mut c = pdm_core::webhook::DispatcherConfig::default();
        if let Some(delays) = &self.retry_schedule_ms {
            let delays = delays.iter().map(|&ms| Duration::from_millis(ms)).collect();
            c.schedule = pdm_core::webhook::RetrySchedule::new(delays, 0.1);
        }
        c.timeout = Duration::from_millis(self.timeout_ms);
        c.lease = c.timeout.max(Duration::from_secs(15)) * 4;
        c.concurrency = self.concurrency;
        c.retention = Duration::from_secs(u64::from(self.retention_days) * 86_400);
        c.probe_every = Duration::from_millis(self.probe_interval_ms);
        c
    }

    /// Checks the settings, naming the first bad one.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.timeout_ms == 0 {
            return Err(ConfigError::new(
                "webhooks.timeout_ms",
                "must be at least 1",
            ));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::new(
                "webhooks.concurrency",
                "must be at least 1",
            ));
        }
        if self.retention_days == 0 {
            return Err(ConfigError::new(
                "webhooks.retention_days",
                "must be at least 1",
            ));
        }
        Ok(self.dispatcher().check()?)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./pdm-data"),
            database_url: None,
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            auto_register: false,
            #[cfg(feature = "mqtt")]
            mqtt: None,
            codec: CodecConfig::default(),
            engine: EngineConfig::default(),
            store: StoreOptions::default(),
            request_timeout_ms: 30_000,
            live: LiveConfig::default(),
            webhooks: WebhooksConfig::default(),
            push: PushConfig::default(),
            auth: crate::auth::AuthConfig::default(),
            smtp: None,
            cors_origins: Vec::new(),
            audit: crate::audit::AuditConfig::default(),
            uploads: UploadsConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let setting = format!("config file {}", path.display());
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&setting, format!("cannot read it: {e}")))?;
        toml::from_str(&text).map_err(|e| ConfigError::new(&setting, e.to_string()))
    }

    /// The database URL in force: the configured one, or SQLite in the data directory.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("pdm.db").display()),
        }
    }

    /// Checks the settings together, naming the first bad one.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.engine.check()?;
        self.codec.check()?;
        self.live.check()?;
        self.webhooks.check()?;
        self.push.check()?;
        self.auth.check()?;
        if let Some(smtp) = &self.smtp {
            smtp.check()?;
        }
        self.audit.check()?;
        for (i, origin) in self.cors_origins.iter().enumerate() {
            crate::layers::cors_origin(origin)
                .map_err(|e| ConfigError::new(format!("cors_origins[{i}]"), e))?;
        }
        let keep_days = self.engine.retention.readings_max_age_days;
        if keep_days > 0 {
            let keep_secs = u64::from(keep_days) * 86_400;
            let past = self.codec.max_past_secs;
            if past == 0 || past > keep_secs {
                let accepts = if past == 0 {
                    "readings of any age".to_owned()
                } else {
                    format!("readings up to {past} s old")
                };
                return Err(ConfigError::new(
                    "codec.max_past_secs",
                    format!(
                        "accepts {accepts}, older than engine.retention.readings_max_age_days \
                         ({keep_days} days): they would be stored and acknowledged, then deleted \
                         at the next retention pass; set codec.max_past_secs to at most \
                         {keep_secs} so that they become bad_timestamp dead letters instead"
                    ),
                ));
            }
        }
        const MIB: u64 = 1024 * 1024;
        if !(1024..=1024 * MIB).contains(&self.uploads.max_bytes) {
            return Err(ConfigError::new(
                "uploads.max_bytes",
                format!(
                    "must be between 1024 and {} (1 GiB), got {}",
                    1024 * MIB,
                    self.uploads.max_bytes
                ),
            ));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::new(
                "request_timeout_ms",
                "must be at least 1 (milliseconds)",
            ));
        }
        if let Some(url) = &self.database_url {
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if !known.iter().any(|p| url.starts_with(p)) {
                return Err(ConfigError::new(
                    "database_url (PDM_DATABASE_URL, --database-url)",
                    format!("{} is not a sqlite:// or postgres:// URL", redact_url(url)),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_errors_name_the_setting() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pdm.toml");
        std::fs::write(&path, "htp = \"1.2.3.4:5\"\n").expect("write");
        let err = ServerConfig::from_file(&path)
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("htp"), "{err}");
        std::fs::write(&path, "http = \"nonsense\"\n").expect("write");
        let err = ServerConfig::from_file(&path)
            .expect_err("bad addr")
            .to_string();
        assert!(err.contains("http"), "{err}");
        std::fs::write(
            &path,
            "http = \"0.0.0.0:9000\"\n[engine]\nlinger_ms = 5\n\
             [engine.retention]\nreadings_max_age_days = 7\n",
        )
        .expect("write");
        let cfg = ServerConfig::from_file(&path).expect("valid");
        assert_eq!(cfg.http.port(), 9000);
        assert_eq!(cfg.engine.linger_ms, 5);
        assert_eq!(cfg.engine.retention.readings_max_age_days, 7);
        assert_eq!(
            cfg.engine.retention.dead_letters_max_count, 100_000,
            "the rest keep defaults"
        );
        std::fs::write(&path, "[engine.retention]\ninterval_s = 0\n").expect("write");
        let err = ServerConfig::from_file(&path)
            .expect("parses")
            .check()
            .expect_err("zero interval")
            .to_string();
        assert!(err.contains("engine.retention.interval_s"), "{err}");
    }

    /// `[mqtt]` keeps its connection keys (`url`, `username`, ...) at the top level, as before
    /// they moved into `MqttConnectionConfig`.
    #[cfg(feature = "mqtt")]
    #[test]
    fn the_mqtt_section_is_read_flat_from_toml() {
        let cfg: ServerConfig = toml::from_str(
            "[mqtt]\nurl = \"mqtt://broker:1884\"\nclient_id = \"pdm-7\"\n\
             keep_alive_secs = 15\nreconnect_backoff_max_ms = 2000\nmax_inflight = 50\n",
        )
        .expect("flat [mqtt]");
        let mqtt = cfg.mqtt.expect("mqtt on");
        assert_eq!(mqtt.connection.url, "mqtt://broker:1884");
        assert_eq!(mqtt.connection.keep_alive_secs, 15);
        assert_eq!(mqtt.connection.reconnect_backoff_max_ms, 2000);
        assert_eq!(mqtt.connection.connect_timeout_secs, 10, "default kept");
        assert_eq!((mqtt.client_id.as_str(), mqtt.max_inflight), ("pdm-7", 50));
        let err = toml::from_str::<ServerConfig>("[mqtt]\nurll = \"mqtt://h\"\n")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("urll"), "{err}");
    }

    #[test]
    fn engine_and_codec_errors_have_the_server_shape() {
        let mut cfg = ServerConfig::default();
        cfg.engine.queue_capacity = 0;
        let err = cfg.check().expect_err("zero queue");
        assert_eq!(err.0.setting, "engine.queue_capacity");
        assert_eq!(
            err.to_string(),
            "configuration: engine.queue_capacity: must be at least 1 (got 0)"
        );
        let mut cfg = ServerConfig::default();
        cfg.codec.max_items = 0;
        let err = cfg.check().expect_err("zero items").to_string();
        assert!(err.starts_with("configuration: codec.max_items: "), "{err}");
    }

    #[test]
    fn push_settings_are_checked() {
        let cfg: ServerConfig =
            toml::from_str("[push]\nreplay = 16\nheartbeat_ms = 250\n").expect("parses");
        assert_eq!(
            cfg.push,
            PushConfig {
                replay: 16,
                heartbeat_ms: 250,
                ..PushConfig::default()
            }
        );
        cfg.check().expect("valid");
        for (toml, setting) in [
            ("[push]\nreplay = 0\n", "push.replay"),
            ("[push]\nchannel = 0\n", "push.channel"),
            ("[push]\nheartbeat_ms = 0\n", "push.heartbeat_ms"),
        ] {
            let cfg: ServerConfig = toml::from_str(toml).expect("parses");
            let err = cfg.check().expect_err("zero");
            assert_eq!(err.0.setting, setting);
            assert!(err.to_string().contains("(got 0)"), "{err}");
        }
        let err = toml::from_str::<ServerConfig>("[push]\nheartbeat = 5\n")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("heartbeat"), "{err}");
    }

    #[test]
    fn readings_retention_must_not_be_shorter_than_the_accepted_past() {
        let mut cfg = ServerConfig::default();
        cfg.engine.retention.readings_max_age_days = 30;
        let err = cfg
            .check()
            .expect_err("a year accepted, 30 days kept")
            .to_string();
        assert!(
            err.contains("codec.max_past_secs") && err.contains("2592000"),
            "{err}"
        );
        cfg.codec.max_past_secs = 0;
        let err = cfg.check().expect_err("any age accepted").to_string();
        assert!(err.contains("any age"), "{err}");
        cfg.codec.max_past_secs = 30 * 86_400;
        cfg.check().expect("consistent");
        cfg.engine.retention.readings_max_age_days = 0;
        cfg.codec.max_past_secs = 0;
        cfg.check()
            .expect("readings kept forever: any past is fine");
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let cfg = ServerConfig {
            data_dir: "/tmp/x".into(),
            ..ServerConfig::default()
        };
        assert_eq!(cfg.effective_database_url(), "sqlite:///tmp/x/pdm.db");
        let bad = ServerConfig {
            database_url: Some("mysql://u:pw@h".into()),
            ..cfg
        };
        let err = bad.check().expect_err("mysql").to_string();
        assert!(
            err.contains("PDM_DATABASE_URL") && !err.contains("pw"),
            "{err}"
        );
    }
}
