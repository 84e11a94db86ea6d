//! Settings of the MQTT source and publisher, the broker URL, and TLS.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pdm_core::{ConfigError, ConfigResult};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::publisher::MqttPublisher;
use super::source::MqttSource;
use crate::codec::DEFAULT_TOPIC_FILTER;
use crate::error::IngestError;
use crate::Intake;

/// How to reach the broker and authenticate: the settings the [`MqttSourceConfig`] and the
/// [`MqttPublisherConfig`] share. In a configuration file its keys sit at the top level of
/// `[mqtt]` (`url`, `username`, ...), next to the settings of the source or publisher itself.
///
/// ```
/// use pdm_ingest::mqtt::MqttConnectionConfig;
/// let connection: MqttConnectionConfig =
///     serde_json::from_str(r#"{"url": "mqtts://broker:8883", "password": "s3cret"}"#)?;
/// assert_eq!(connection.keep_alive_secs, 30);
/// // Debug output never shows the password, in the URL or on its own.
/// assert!(!format!("{connection:?}").contains("s3cret"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConnectionConfig {
    /// The broker: `mqtt://[user[:password]@]host[:port]` (port 1883 by default), or
    /// `mqtts://...` for TLS (port 8883 by default). Percent-encode `@`, `:` and `%` in the
    /// user name and password.
    pub url: String,
    /// User name, when not in the URL.
    pub username: Option<String>,
    /// Password, when not in the URL. Never logged.
    pub password: Option<String>,
    /// PEM file of the certificate authorities to trust for `mqtts://`; the system's bundle
    /// when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM file of a client certificate, for brokers that authenticate clients by certificate.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key_file: Option<PathBuf>,
    /// Seconds between keep-alive pings; the broker drops the connection after 1.5 times this
    /// without traffic.
    pub keep_alive_secs: u64,
    /// Seconds allowed to connect (TCP, TLS and the MQTT handshake).
    pub connect_timeout_secs: u64,
    /// First pause before reconnecting after a failure, in milliseconds; doubles on each
    /// failure in a row.
    pub reconnect_backoff_min_ms: u64,
    /// Longest pause between reconnection attempts, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
}

impl Default for MqttConnectionConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            reconnect_backoff_min_ms: 500,
            reconnect_backoff_max_ms: 30_000,
        }
    }
}

impl fmt::Debug for MqttConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConnectionConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("reconnect_backoff_min_ms", &self.reconnect_backoff_min_ms)
            .field("reconnect_backoff_max_ms", &self.reconnect_backoff_max_ms)
            .finish()
    }
}

impl MqttConnectionConfig {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Settings of the MQTT source (`[mqtt]` in the server's configuration file).
///
/// ```
/// use pdm_ingest::mqtt::MqttSourceConfig;
/// let config: MqttSourceConfig =
///     serde_json::from_str(r#"{"url": "mqtt://pdm:s3cret@broker:1883", "shared_group": "pdm"}"#)?;
/// assert_eq!(config.client_id, "pdm-server");
/// assert_eq!(config.connection.url, "mqtt://pdm:s3cret@broker:1883");
/// assert_eq!(config.subscription(), "$share/pdm/pdm/+/telemetry");
/// // Debug output never shows the password.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "MqttSourceFile")]
pub struct MqttSourceConfig {
    /// The broker and how to authenticate to it (`url`, `username`, `password`, TLS files,
    /// keep-alive, connect timeout, reconnection backoff), at the top level of `[mqtt]`.
    pub connection: MqttConnectionConfig,
    /// Client id. Keep it stable: the broker keeps the session (the subscription and the
    /// messages that arrive while pdm is down) under it. Each server needs its own.
    pub client_id: String,
    /// Topic filter to subscribe to.
    pub topic: String,
    /// When set, subscribe as a member of this shared-subscription group
    /// (`$share/<group>/<topic>`), so several servers split the messages between them.
    pub shared_group: Option<String>,
    /// Places in the MQTT client's request queue (acknowledgements, subscriptions); raised to
    /// `max_inflight + 16` when lower, so acknowledgements never wait for room.
    pub request_channel_capacity: usize,
    /// Most messages received and not yet acknowledged (being decoded, queued for the store,
    /// or waiting for the commit). When reached, the source stops reading from the broker.
    /// Set the broker's in-flight limit for this client at or below it.
    pub max_inflight: usize,
    /// Largest MQTT packet read from the broker, in bytes. Payloads above
    /// `codec.max_payload_bytes` but within this become `oversized` dead letters; a larger
    /// packet breaks the connection, so set the broker's `max_packet_size` to at most this.
    pub max_packet_bytes: usize,
    /// How long shutdown waits for the acknowledgements of messages already taken, in ms.
    pub shutdown_timeout_ms: u64,
}

impl Default for MqttSourceConfig {
    fn default() -> Self {
        Self {
            connection: MqttConnectionConfig::default(),
            client_id: "pdm-server".to_owned(),
            topic: DEFAULT_TOPIC_FILTER.to_owned(),
            shared_group: None,
            request_channel_capacity: 128,
            max_inflight: 1000,
            max_packet_bytes: 2 << 20,
            shutdown_timeout_ms: 10_000,
        }
    }
}

impl MqttSourceConfig {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            connection: MqttConnectionConfig::new(url),
            ..Self::default()
        }
    }

    /// The filter actually subscribed to: the topic, inside `$share/<group>/` when
    /// [`shared_group`](Self::shared_group) is set.
    pub fn subscription(&self) -> String {
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{}", self.topic),
            None => self.topic.clone(),
        }
    }

    /// Checks the settings (reading the TLS files) and builds the source, which decodes
    /// through `intake`. Needs no runtime; connecting happens when the source runs.
    pub fn build(&self, intake: Arc<Intake>) -> ConfigResult<MqttSource> {
        let conn = Connection::resolve("mqtt", &self.client_id, &self.connection)?;
        if !rumqttc::valid_filter(&self.topic) || self.topic.starts_with('$') {
            return Err(ConfigError::new(
                "mqtt.topic",
                format!("{:?} is not a valid MQTT topic filter", self.topic),
            ));
        }
        if let Some(group) = &self.shared_group {
            if group.is_empty() || group.contains(['/', '+', '#']) {
                return Err(ConfigError::new(
                    "mqtt.shared_group",
                    format!("{group:?} must be non-empty and hold no '/', '+' or '#'"),
                ));
            }
        }
        if self.max_inflight == 0 || self.max_inflight > usize::from(u16::MAX) {
            return Err(ConfigError::new(
                "mqtt.max_inflight",
                format!(
                    "must be between 1 and 65535 (MQTT packet ids are 16 bits) (got {})",
                    self.max_inflight
                ),
            ));
        }
        let min_packet = intake.codec().max_payload_bytes;
        if self.max_packet_bytes < min_packet {
            return Err(ConfigError::new(
                "mqtt.max_packet_bytes",
                format!(
                    "must be at least codec.max_payload_bytes ({min_packet}), so that oversized \
                     payloads become dead letters instead of breaking the connection (got {})",
                    self.max_packet_bytes
                ),
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return Err(ConfigError::new(
                "mqtt.shutdown_timeout_ms",
                "must be at least 1 (got 0)",
            ));
        }
        // Headroom over the payload for the fixed header, topic and packet id.
        let packet = self.max_packet_bytes.saturating_add(64 * 1024);
        // Persistent session: the broker keeps the subscription and queues messages while pdm is
        // down, and redelivers unacknowledged ones on reconnect.
        let mut options = conn.options(&self.client_id, true);
        options
            .set_manual_acks(true)
            .set_max_packet_size(packet, 64 * 1024);
        Ok(MqttSource::new(
            source_settings(self, conn, options),
            intake,
        ))
    }
}

/// The connection's keys sit at the top level of `[mqtt]`, beside the source's or publisher's
/// own. `#[serde(flatten)]` would say so in one line, but it buffers the table and so loses
/// what serde reports on a bad value: the key's line and, for a wrong type, the key's name
/// (and flatten does not honour `deny_unknown_fields` reliably). So each config reads through a
/// flat file struct generated here from the connection's field list, written once.
macro_rules! flat_file {
    ($file:ident => $config:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct $file {
            url: String,
            username: Option<String>,
            password: Option<String>,
            ca_file: Option<PathBuf>,
            client_cert_file: Option<PathBuf>,
            client_key_file: Option<PathBuf>,
            keep_alive_secs: u64,
            connect_timeout_secs: u64,
            reconnect_backoff_min_ms: u64,
            reconnect_backoff_max_ms: u64,
            $($field: $ty),*
        }

        impl Default for $file {
            fn default() -> Self {
                let c = $config::default();
                let MqttConnectionConfig {
                    url,
                    username,
                    password,
                    ca_file,
                    client_cert_file,
                    client_key_file,
                    keep_alive_secs,
                    connect_timeout_secs,
                    reconnect_backoff_min_ms,
                    reconnect_backoff_max_ms,
                } = c.connection;
                Self {
                    url,
                    username,
                    password,
                    ca_file,
                    client_cert_file,
                    client_key_file,
                    keep_alive_secs,
                    connect_timeout_secs,
                    reconnect_backoff_min_ms,
                    reconnect_backoff_max_ms,
                    $($field: c.$field),*
                }
            }
        }

        impl From<$file> for $config {
            fn from(f: $file) -> Self {
                Self {
                    connection: MqttConnectionConfig {
                        url: f.url,
                        username: f.username,
                        password: f.password,
                        ca_file: f.ca_file,
                        client_cert_file: f.client_cert_file,
                        client_key_file: f.client_key_file,
                        keep_alive_secs: f.keep_alive_secs,
                        connect_timeout_secs: f.connect_timeout_secs,
                        reconnect_backoff_min_ms: f.reconnect_backoff_min_ms,
                        reconnect_backoff_max_ms: f.reconnect_backoff_max_ms,
                    },
                    $($field: f.$field),*
                }
            }
        }
    };
}

flat_file!(MqttSourceFile => MqttSourceConfig {
    client_id: String,
    topic: String,
    shared_group: Option<String>,
    request_channel_capacity: usize,
    max_inflight: usize,
    max_packet_bytes: usize,
    shutdown_timeout_ms: u64,
});

flat_file!(MqttPublisherFile => MqttPublisherConfig {
    client_id: String,
    persistent_session: bool,
    max_inflight: u16,
    max_packet_bytes: usize,
});

pub(super) struct SourceSettings {
    pub options: MqttOptions,
    pub subscription: String,
    pub broker: String,
    pub connect_timeout_secs: u64,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub request_capacity: usize,
    pub max_inflight: usize,
    pub shutdown_timeout: Duration,
}

fn source_settings(c: &MqttSourceConfig, conn: Connection, options: MqttOptions) -> SourceSettings {
    SourceSettings {
        options,
        subscription: c.subscription(),
        broker: conn.display,
        connect_timeout_secs: c.connection.connect_timeout_secs,
        backoff_min: conn.backoff_min,
        backoff_max: conn.backoff_max,
        request_capacity: c.request_channel_capacity.max(c.max_inflight + 16),
        max_inflight: c.max_inflight,
        shutdown_timeout: Duration::from_millis(c.shutdown_timeout_ms),
    }
}

/// Settings of the [`MqttPublisher`] (used by `pdm-server simulate`, tests and benchmarks).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "MqttPublisherFile")]
pub struct MqttPublisherConfig {
    /// The broker and how to authenticate to it, as for the source, at the top level.
    pub connection: MqttConnectionConfig,
    /// Client id.
    pub client_id: String,
    /// Keep a persistent session, so that messages not yet acknowledged when the connection
    /// drops are sent again after reconnecting (needs a stable, unique `client_id`). Off by
    /// default: the broker then keeps nothing for the publisher, and messages in flight when
    /// the connection drops are lost (and reported by [`MqttPublisher::wait_acked`]).
    pub persistent_session: bool,
    /// Most messages published and not yet acknowledged by the broker; publishing waits
    /// while this many are in flight.
    pub max_inflight: u16,
    /// Largest message published, in bytes.
    pub max_packet_bytes: usize,
}

impl Default for MqttPublisherConfig {
    fn default() -> Self {
        Self {
            connection: MqttConnectionConfig::default(),
            client_id: "pdm-publisher".to_owned(),
            persistent_session: false,
            max_inflight: 100,
            max_packet_bytes: 2 << 20,
        }
    }
}

impl MqttPublisherConfig {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            connection: MqttConnectionConfig::new(url),
            ..Self::default()
        }
    }

    /// Checks the settings and starts the publisher's connection task. Must be called inside
    /// a Tokio runtime.
    pub fn connect(&self) -> Result<MqttPublisher, IngestError> {
        let conn = Connection::resolve("publisher", &self.client_id, &self.connection)?;
        if self.max_inflight == 0 {
            return Err(
                ConfigError::new("publisher.max_inflight", "must be at least 1 (got 0)").into(),
            );
        }
        let mut options = conn.options(&self.client_id, self.persistent_session);
        options
            .set_inflight(self.max_inflight)
            .set_max_packet_size(64 * 1024, self.max_packet_bytes.saturating_add(64 * 1024));
        Ok(MqttPublisher::start(
            options,
            conn.display,
            usize::from(self.max_inflight),
            self.connection.connect_timeout_secs,
            conn.backoff_min,
            conn.backoff_max,
        ))
    }
}

/// Checked connection settings.
struct Connection {
    host: String,
    port: u16,
    /// `host:port`, with the scheme, for logs (never the credentials).
    display: String,
    credentials: Option<(String, String)>,
    tls: Option<Arc<rustls::ClientConfig>>,
    keep_alive: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Connection {
    /// Checks the connection settings of the `section` (`mqtt` or `publisher`, for the names
    /// in errors) for a client named `client_id`.
    fn resolve(section: &str, client_id: &str, c: &MqttConnectionConfig) -> ConfigResult<Self> {
        let setting = |name: &str| format!("{section}.{name}");
        let url = BrokerUrl::parse(&c.url).map_err(|e| ConfigError::new(setting("url"), e))?;
        if client_id.is_empty() || client_id.len() > 65_535 {
            return Err(ConfigError::new(
                setting("client_id"),
                "must be between 1 and 65535 bytes",
            ));
        }
        let username = match (url.username, c.username.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    setting("username"),
                    "the URL holds a user name already; give it in one place only",
                ))
            }
            (u, None) => u,
            (None, Some(u)) => Some(u.to_owned()),
        };
        let password = match (url.password, c.password.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    setting("password"),
                    "the URL holds a password already; give it in one place only",
                ))
            }
            (p, None) => p,
            (None, Some(p)) => Some(p.to_owned()),
        };
        let credentials = match (username, password) {
            (Some(u), p) => Some((u, p.unwrap_or_default())),
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    setting("password"),
                    "a password needs a user name",
                ))
            }
            (None, None) => None,
        };
        if !(1..=65_535).contains(&c.keep_alive_secs) {
            return Err(ConfigError::new(
                setting("keep_alive_secs"),
                "must be between 1 and 65535",
            ));
        }
        if c.connect_timeout_secs == 0 {
            return Err(ConfigError::new(
                setting("connect_timeout_secs"),
                "must be at least 1",
            ));
        }
        if c.reconnect_backoff_min_ms == 0
            || c.reconnect_backoff_max_ms < c.reconnect_backoff_min_ms
        {
            return Err(ConfigError::new(
                setting("reconnect_backoff_min_ms"),
                "must be at least 1 and at most reconnect_backoff_max_ms",
            ));
        }
        let tls = if url.tls {
            Some(tls_config(c, &setting)?)
        } else {
            if c.ca_file.is_some() || c.client_cert_file.is_some() {
                return Err(ConfigError::new(
                    setting("ca_file"),
                    "TLS files are given but the URL is not mqtts://",
                ));
            }
            None
        };
        let scheme = if url.tls { "mqtts" } else { "mqtt" };
        Ok(Connection {
            display: format!("{scheme}://{}:{}", url.host, url.port),
            host: url.host,
            port: url.port,
            credentials,
            tls,
            keep_alive: Duration::from_secs(c.keep_alive_secs),
            backoff_min: Duration::from_millis(c.reconnect_backoff_min_ms),
            backoff_max: Duration::from_millis(c.reconnect_backoff_max_ms),
        })
    }

    fn options(&self, client_id: &str, persistent: bool) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, self.host.clone(), self.port);
        // Checked in `resolve`: the client id is not empty, and the keep-alive is whole seconds.
        options
            .set_keep_alive(self.keep_alive)
            .set_clean_session(!persistent);
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user.clone(), password.clone());
        }
        if let Some(tls) = &self.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                tls.clone(),
            )));
        }
        options
    }
}

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, PartialEq, Eq)]
struct BrokerUrl {
    tls: bool,
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
}

impl BrokerUrl {
    fn parse(url: &str) -> Result<Self, String> {
        let shown = redact_url(url);
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(format!(
                "{shown:?} must start with mqtt:// or mqtts:// (TLS)"
            ));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        if hostport.contains(['/', '?', '#']) {
            return Err(format!(
                "{shown:?}: paths and query parameters are not supported; give only \
                 [user[:password]@]host[:port]"
            ));
        }
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = percent_decode(user).map_err(|e| format!("{shown:?}: user name {e}"))?;
                if user.is_empty() {
                    return Err(format!("{shown:?}: the user name is empty"));
                }
                let pass = pass
                    .map(percent_decode)
                    .transpose()
                    .map_err(|e| format!("{shown:?}: password {e}"))?;
                (Some(user), pass)
            }
        };
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{shown:?}: unclosed '[' in the host"))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("{shown:?}: expected ':port' after ']'"))?,
                ),
            };
            // Kept in brackets: the client joins host and port with ':' to resolve them.
            (format!("[{addr}]"), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (hostport.to_owned(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(format!("{shown:?}: the host is missing"));
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(format!(
                        "{shown:?}: port {p:?} is not a number from 1 to 65535"
                    ))
                }
            },
        };
        Ok(BrokerUrl {
            tls,
            host,
            port,
            username,
            password,
        })
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("has a '%' not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "is not UTF-8 once decoded".to_owned())
}

// One implementation for every URL pdm logs (database and broker alike) lives in pdm-core.
pub use pdm_core::redact_url;

/// Where distributions keep the bundle of trusted certificate authorities.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Makes ring the process's rustls provider unless one is installed: rumqttc builds parts of
/// its TLS setup with the process default, and this crate enables only ring.
fn install_ring_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race against another installer is fine: a provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn tls_config(
    c: &MqttConnectionConfig,
    setting: &dyn Fn(&str) -> String,
) -> ConfigResult<Arc<rustls::ClientConfig>> {
    install_ring_provider();
    let (ca_path, ca_setting) = match &c.ca_file {
        Some(p) => (p.clone(), setting("ca_file")),
        None => {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let found = from_env
                .into_iter()
                .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    ConfigError::new(
                        setting("ca_file"),
                        "not set, and no system certificate bundle was found (looked at \
                         SSL_CERT_FILE and the usual paths); give the broker's CA file",
                    )
                })?;
            (found, setting("ca_file"))
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&ca_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            ConfigError::new(
                &ca_setting,
                format!("cannot read {}: {e}", ca_path.display()),
            )
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(ConfigError::new(
            &ca_setting,
            format!("{} holds no usable certificate", ca_path.display()),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(setting("url"), format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let config = match (&c.client_cert_file, &c.client_key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    ConfigError::new(
                        setting("client_cert_file"),
                        format!("cannot read {}: {e}", cert.display()),
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                ConfigError::new(
                    setting("client_key_file"),
                    format!("cannot read a private key from {}: {e}", key.display()),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                ConfigError::new(setting("client_cert_file"), format!("unusable: {e}"))
            })?
        }
        (Some(_), None) => {
            return Err(ConfigError::new(
                setting("client_key_file"),
                "needed with client_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                setting("client_cert_file"),
                "needed with client_key_file",
            ))
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(url: &str) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(url)
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            parse("mqtt://broker").expect("valid"),
            BrokerUrl {
                tls: false,
                host: "broker".into(),
                port: 1883,
                username: None,
                password: None
            }
        );
        assert_eq!(
            parse("mqtts://u:p%40ss%3Aw@10.0.0.1:1884/").expect("valid"),
            BrokerUrl {
                tls: true,
                host: "10.0.0.1".into(),
                port: 1884,
                username: Some("u".into()),
                password: Some("p@ss:w".into())
            }
        );
        let v6 = parse("mqtt://[::1]:1999").expect("valid");
        assert_eq!((v6.host.as_str(), v6.port), ("[::1]", 1999));
        assert_eq!(parse("mqtts://[::1]").expect("valid").port, 8883);
        assert_eq!(
            parse("mqtt://only-user@h")
                .expect("valid")
                .username
                .as_deref(),
            Some("only-user")
        );
    }

    #[test]
    fn rejects_bad_urls_without_leaking_the_password() {
        for bad in [
            "http://h",
            "h:1883",
            "mqtt://",
            "mqtt://u:secret@",
            "mqtt://h:0",
            "mqtt://h:99999",
            "mqtt://h:port",
            "mqtt://h/path",
            "mqtt://h?client_id=x",
            "mqtt://u:secret@h/x",
            "mqtt://[::1",
            "mqtt://u:se%zzcret@h",
            "mqtt://:secret@h",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(!e.contains("secret"), "{bad}: {e}");
        }
    }

    #[test]
    fn redacts() {
        assert_eq!(redact_url("mqtt://u:p@h"), "mqtt://u:***@h");
        assert_eq!(redact_url("mqtt://u@h"), "mqtt://u@h");
        assert_eq!(redact_url("mqtt://h:1883"), "mqtt://h:1883");
        assert_eq!(redact_url("mqtt://u:p:q@h/x"), "mqtt://u:***@h/x");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }

    fn intake() -> Arc<Intake> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let store = rt.block_on(crate::test_store::TestStore::new());
        let catalog = rt
            .block_on(pdm_core::Catalog::load(store, false))
            .expect("loads");
        Arc::new(Intake::new(
            Arc::new(catalog),
            crate::CodecConfig::default(),
        ))
    }

    fn build_err(config: MqttSourceConfig) -> String {
        match config.build(intake()) {
            Ok(_) => panic!("{config:?} should be refused"),
            Err(e) => e.to_string(),
        }
    }

    /// `base` changed by `f`.
    fn with(base: &MqttSourceConfig, f: impl FnOnce(&mut MqttSourceConfig)) -> MqttSourceConfig {
        let mut c = base.clone();
        f(&mut c);
        c
    }

    #[test]
    fn build_names_the_bad_setting() {
        let base = MqttSourceConfig::new("mqtt://h");
        assert!(base.build(intake()).is_ok());
        let tls = MqttSourceConfig::new("mqtts://h");
        let cases: Vec<(MqttSourceConfig, &str)> = vec![
            (MqttSourceConfig::new("tcp://h"), "mqtt.url"),
            (with(&base, |c| c.client_id.clear()), "mqtt.client_id"),
            (with(&base, |c| c.topic = "pdm/#/x".into()), "mqtt.topic"),
            (
                with(&base, |c| c.shared_group = Some("a/b".into())),
                "mqtt.shared_group",
            ),
            (
                with(&MqttSourceConfig::new("mqtt://u:secret@h"), |c| {
                    c.connection.username = Some("x".into())
                }),
                "mqtt.username",
            ),
            (
                with(&base, |c| c.connection.password = Some("secret".into())),
                "mqtt.password",
            ),
            (
                with(&base, |c| c.connection.keep_alive_secs = 0),
                "mqtt.keep_alive_secs",
            ),
            (with(&base, |c| c.max_inflight = 0), "mqtt.max_inflight"),
            (
                with(&base, |c| c.max_packet_bytes = 1000),
                "mqtt.max_packet_bytes",
            ),
            (
                with(&base, |c| {
                    c.connection.reconnect_backoff_min_ms = 10;
                    c.connection.reconnect_backoff_max_ms = 5;
                }),
                "mqtt.reconnect_backoff_min_ms",
            ),
            (
                with(&tls, |c| {
                    c.connection.ca_file = Some("/nonexistent/ca.pem".into())
                }),
                "mqtt.ca_file",
            ),
            (
                with(&base, |c| {
                    c.connection.ca_file = Some("/nonexistent/ca.pem".into())
                }),
                "mqtt.ca_file",
            ),
        ];
        for (config, setting) in cases {
            let e = build_err(config);
            assert!(e.starts_with(setting), "{setting}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn the_source_uses_a_persistent_session_and_manual_acks() {
        let source = MqttSourceConfig::new("mqtt://h")
            .build(intake())
            .expect("valid");
        let options = &source.settings().options;
        assert!(!options.clean_session());
        assert!(options.manual_acks());
        assert_eq!(options.client_id(), "pdm-server");
        assert_eq!(source.subscription(), DEFAULT_TOPIC_FILTER);
    }

    #[test]
    fn tls_with_a_ca_file_builds() {
        // Any PEM certificate will do to build (it is only used when connecting); the
        // system bundle is a convenient one when present.
        let Some(bundle) = SYSTEM_CA_BUNDLES.iter().find(|p| Path::new(p).is_file()) else {
            eprintln!("no system CA bundle on this machine; TLS build check skipped");
            return;
        };
        let mut config = MqttSourceConfig::new("mqtts://broker.example");
        config.connection.ca_file = Some(PathBuf::from(bundle));
        assert!(config.build(intake()).is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let empty = std::env::temp_dir().join(format!("pdm-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate").expect("write temp file");
        let e = build_err(with(&config, |c| {
            c.connection.ca_file = Some(empty.clone())
        }));
        let _ = std::fs::remove_file(&empty);
        assert!(e.contains("no usable certificate"), "{e}");
    }

    #[test]
    fn config_from_toml_like_json_refuses_unknown_keys() {
        let e = serde_json::from_str::<MqttSourceConfig>(r#"{"urll": "mqtt://h"}"#)
            .expect_err("unknown key");
        assert!(e.to_string().contains("urll"));
        let e = serde_json::from_str::<MqttPublisherConfig>(r#"{"topic": "pdm/#"}"#)
            .expect_err("a source key");
        assert!(e.to_string().contains("topic"), "{e}");
        let e = serde_json::from_str::<MqttConnectionConfig>(r#"{"client_id": "x"}"#)
            .expect_err("not a connection key");
        assert!(e.to_string().contains("client_id"), "{e}");
    }

    /// The `[mqtt]` section as written before the connection settings were factored out:
    /// every key at the top level, still read into the same values.
    #[test]
    fn the_flat_format_is_unchanged() {
        let source: MqttSourceConfig = serde_json::from_str(
            r#"{"url": "mqtts://pdm@broker:8883", "client_id": "pdm-1", "topic": "pdm/+/telemetry",
                "shared_group": "g", "username": null, "password": "pw", "ca_file": "/ca.pem",
                "client_cert_file": "/c.pem", "client_key_file": "/k.pem", "keep_alive_secs": 5,
                "connect_timeout_secs": 6, "reconnect_backoff_min_ms": 7,
                "reconnect_backoff_max_ms": 8, "request_channel_capacity": 9, "max_inflight": 10,
                "max_packet_bytes": 11, "shutdown_timeout_ms": 12}"#,
        )
        .expect("every key of the old format");
        assert_eq!(
            source,
            MqttSourceConfig {
                connection: MqttConnectionConfig {
                    url: "mqtts://pdm@broker:8883".into(),
                    username: None,
                    password: Some("pw".into()),
                    ca_file: Some("/ca.pem".into()),
                    client_cert_file: Some("/c.pem".into()),
                    client_key_file: Some("/k.pem".into()),
                    keep_alive_secs: 5,
                    connect_timeout_secs: 6,
                    reconnect_backoff_min_ms: 7,
                    reconnect_backoff_max_ms: 8,
                },
                client_id: "pdm-1".into(),
                topic: "pdm/+/telemetry".into(),
                shared_group: Some("g".into()),
                request_channel_capacity: 9,
                max_inflight: 10,
                max_packet_bytes: 11,
                shutdown_timeout_ms: 12,
            }
        );
        let partial: MqttSourceConfig =
            serde_json::from_str(r#"{"url": "mqtt://h", "keep_alive_secs": 3}"#).expect("partial");
        assert_eq!(
            partial,
            MqttSourceConfig {
                connection: MqttConnectionConfig {
                    keep_alive_secs: 3,
                    ..MqttConnectionConfig::new("mqtt://h")
                },
                ..MqttSourceConfig::default()
            },
            "the rest keep their defaults"
        );
        let publisher: MqttPublisherConfig = serde_json::from_str(
            r#"{"url": "mqtt://h", "client_id": "p", "persistent_session": true,
                "reconnect_backoff_max_ms": 1000, "max_inflight": 5, "max_packet_bytes": 100}"#,
        )
        .expect("publisher keys");
        assert_eq!(
            publisher,
            MqttPublisherConfig {
                connection: MqttConnectionConfig {
                    reconnect_backoff_max_ms: 1000,
                    ..MqttConnectionConfig::new("mqtt://h")
                },
                client_id: "p".into(),
                persistent_session: true,
                max_inflight: 5,
                max_packet_bytes: 100,
            }
        );
        assert_eq!(
            MqttPublisherConfig::default().client_id,
            "pdm-publisher",
            "each keeps its own client id default"
        );
    }

    /// A bad key or value in the file is reported at its own line and by its own name, for
    /// connection keys as for the others (what `#[serde(flatten)]` would lose).
    #[test]
    fn file_errors_name_the_key_and_its_line() {
        let wrong_type = "[mqtt]\nurl = \"mqtt://h\"\nkeep_alive_secs = \"x\"\n";
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct File {
            mqtt: MqttSourceConfig,
        }
        let e = toml::from_str::<File>(wrong_type).expect_err("a string for a number");
        let shown = e.to_string();
        assert!(shown.contains("line 3"), "{shown}");
        assert!(shown.contains("keep_alive_secs"), "{shown}");
        let unknown = "[mqtt]\nurll = \"mqtt://h\"\n";
        let e = toml::from_str::<File>(unknown).expect_err("a misspelt key");
        let shown = e.to_string();
        assert!(
            shown.contains("line 2") && shown.contains("urll"),
            "{shown}"
        );
        assert!(
            shown.contains("`url`") && shown.contains("`client_id`"),
            "{shown}"
        );
        let e = toml::from_str::<MqttPublisherConfig>("url = 5\n").expect_err("a number for a URL");
        let shown = e.to_string();
        assert!(shown.contains("line 1") && shown.contains("url"), "{shown}");
    }

    #[test]
    fn debug_redacts_the_connection_secrets_once_for_both() {
        let mut source = MqttSourceConfig::new("mqtt://u:hunter2@h");
        source.connection.password = None;
        let mut publisher = MqttPublisherConfig::new("mqtt://u@h");
        publisher.connection.password = Some("hunter2".into());
        for shown in [format!("{source:?}"), format!("{publisher:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
    }
}
