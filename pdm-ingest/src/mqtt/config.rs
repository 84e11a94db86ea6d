//! Settings of the MQTT source and publisher, the broker URL, and TLS.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::publisher::MqttPublisher;
use super::source::MqttSource;
use crate::codec::DEFAULT_TOPIC_FILTER;
use crate::error::IngestError;
use crate::Intake;

/// Settings of the MQTT source (`[mqtt]` in the server's configuration file).
///
/// ```
/// use pdm_ingest::mqtt::MqttSourceConfig;
/// let config: MqttSourceConfig =
///     serde_json::from_str(r#"{"url": "mqtt://pdm:s3cret@broker:1883", "shared_group": "pdm"}"#)?;
/// assert_eq!(config.client_id, "pdm-server");
/// assert_eq!(config.subscription(), "$share/pdm/pdm/+/telemetry");
/// // Debug output never shows the password.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// The broker: `mqtt://[user[:password]@]host[:port]` (port 1883 by default), or
    /// `mqtts://...` for TLS (port 8883 by default). Percent-encode `@`, `:` and `%` in the
    /// user name and password.
    pub url: String,
    /// Client id. Keep it stable: the broker keeps the session (the subscription and the
    /// messages that arrive while pdm is down) under it. Each server needs its own.
    pub client_id: String,
    /// Topic filter to subscribe to.
    pub topic: String,
    /// When set, subscribe as a member of this shared-subscription group
    /// (`$share/<group>/<topic>`), so several servers split the messages between them.
    pub shared_group: Option<String>,
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
            url: "mqtt://127.0.0.1:1883".to_owned(),
            client_id: "pdm-server".to_owned(),
            topic: DEFAULT_TOPIC_FILTER.to_owned(),
            shared_group: None,
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            reconnect_backoff_min_ms: 500,
            reconnect_backoff_max_ms: 30_000,
            request_channel_capacity: 128,
            max_inflight: 1000,
            max_packet_bytes: 2 << 20,
            shutdown_timeout_ms: 10_000,
        }
    }
}

impl fmt::Debug for MqttSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSourceConfig")
            .field("url", &redact_url(&self.url))
            .field("client_id", &self.client_id)
            .field("topic", &self.topic)
            .field("shared_group", &self.shared_group)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("reconnect_backoff_min_ms", &self.reconnect_backoff_min_ms)
            .field("reconnect_backoff_max_ms", &self.reconnect_backoff_max_ms)
            .field("request_channel_capacity", &self.request_channel_capacity)
            .field("max_inflight", &self.max_inflight)
            .field("max_packet_bytes", &self.max_packet_bytes)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .finish()
    }
}

impl MqttSourceConfig {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
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
    pub fn build(&self, intake: Arc<Intake>) -> Result<MqttSource, IngestError> {
        let conn = Connection::resolve(&Common {
            section: "mqtt",
            url: &self.url,
            client_id: &self.client_id,
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            ca_file: self.ca_file.as_deref(),
            client_cert_file: self.client_cert_file.as_deref(),
            client_key_file: self.client_key_file.as_deref(),
            keep_alive_secs: self.keep_alive_secs,
            connect_timeout_secs: self.connect_timeout_secs,
            backoff_min_ms: self.reconnect_backoff_min_ms,
            backoff_max_ms: self.reconnect_backoff_max_ms,
        })?;
        if !rumqttc::valid_filter(&self.topic) || self.topic.starts_with('$') {
            return Err(IngestError::config(
                "mqtt.topic",
                format!("{:?} is not a valid MQTT topic filter", self.topic),
            ));
        }
        if let Some(group) = &self.shared_group {
            if group.is_empty() || group.contains(['/', '+', '#']) {
                return Err(IngestError::config(
                    "mqtt.shared_group",
                    format!("{group:?} must be non-empty and hold no '/', '+' or '#'"),
                ));
            }
        }
        if self.max_inflight == 0 || self.max_inflight > usize::from(u16::MAX) {
            return Err(IngestError::config(
                "mqtt.max_inflight",
                "must be between 1 and 65535 (MQTT packet ids are 16 bits)",
            ));
        }
        let min_packet = intake.codec().max_payload_bytes;
        if self.max_packet_bytes < min_packet {
            return Err(IngestError::config(
                "mqtt.max_packet_bytes",
                format!(
                    "must be at least codec.max_payload_bytes ({min_packet}), so that oversized \
                     payloads become dead letters instead of breaking the connection"
                ),
            ));
        }
        if self.shutdown_timeout_ms == 0 {
            return Err(IngestError::config(
                "mqtt.shutdown_timeout_ms",
                "must be at least 1",
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
        connect_timeout_secs: c.connect_timeout_secs,
        backoff_min: conn.backoff_min,
        backoff_max: conn.backoff_max,
        request_capacity: c.request_channel_capacity.max(c.max_inflight + 16),
        max_inflight: c.max_inflight,
        shutdown_timeout: Duration::from_millis(c.shutdown_timeout_ms),
    }
}

/// Settings of the [`MqttPublisher`] (used by `pdm-server simulate`, tests and benchmarks).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttPublisherConfig {
    /// The broker, as in [`MqttSourceConfig::url`].
    pub url: String,
    /// Client id.
    pub client_id: String,
    /// Keep a persistent session, so that messages not yet acknowledged when the connection
    /// drops are sent again after reconnecting (needs a stable, unique `client_id`). Off by
    /// default: the broker then keeps nothing for the publisher, and messages in flight when
    /// the connection drops are lost (and reported by [`MqttPublisher::wait_acked`]).
    pub persistent_session: bool,
    /// User name, when not in the URL.
    pub username: Option<String>,
    /// Password, when not in the URL. Never logged.
    pub password: Option<String>,
    /// PEM file of the certificate authorities to trust for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// PEM file of a client certificate.
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub client_key_file: Option<PathBuf>,
    /// Seconds between keep-alive pings.
    pub keep_alive_secs: u64,
    /// Seconds allowed to connect.
    pub connect_timeout_secs: u64,
    /// First pause before reconnecting, in milliseconds.
    pub reconnect_backoff_min_ms: u64,
    /// Longest pause between reconnection attempts, in milliseconds.
    pub reconnect_backoff_max_ms: u64,
    /// Most messages published and not yet acknowledged by the broker; publishing waits
    /// while this many are in flight.
    pub max_inflight: u16,
    /// Largest message published, in bytes.
    pub max_packet_bytes: usize,
}

impl Default for MqttPublisherConfig {
    fn default() -> Self {
        Self {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            client_id: "pdm-publisher".to_owned(),
            persistent_session: false,
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_secs: 30,
            connect_timeout_secs: 10,
            reconnect_backoff_min_ms: 500,
            reconnect_backoff_max_ms: 30_000,
            max_inflight: 100,
            max_packet_bytes: 2 << 20,
        }
    }
}

impl fmt::Debug for MqttPublisherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttPublisherConfig")
            .field("url", &redact_url(&self.url))
            .field("client_id", &self.client_id)
            .field("persistent_session", &self.persistent_session)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("reconnect_backoff_min_ms", &self.reconnect_backoff_min_ms)
            .field("reconnect_backoff_max_ms", &self.reconnect_backoff_max_ms)
            .field("max_inflight", &self.max_inflight)
            .field("max_packet_bytes", &self.max_packet_bytes)
            .finish()
    }
}

impl MqttPublisherConfig {
    /// Default settings for the broker at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Checks the settings and starts the publisher's connection task. Must be called inside
    /// a Tokio runtime.
    pub fn connect(&self) -> Result<MqttPublisher, IngestError> {
        let conn = Connection::resolve(&Common {
            section: "publisher",
            url: &self.url,
            client_id: &self.client_id,
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            ca_file: self.ca_file.as_deref(),
            client_cert_file: self.client_cert_file.as_deref(),
            client_key_file: self.client_key_file.as_deref(),
            keep_alive_secs: self.keep_alive_secs,
            connect_timeout_secs: self.connect_timeout_secs,
            backoff_min_ms: self.reconnect_backoff_min_ms,
            backoff_max_ms: self.reconnect_backoff_max_ms,
        })?;
        if self.max_inflight == 0 {
            return Err(IngestError::config(
                "publisher.max_inflight",
                "must be at least 1",
            ));
        }
        let mut options = conn.options(&self.client_id, self.persistent_session);
        options
            .set_inflight(self.max_inflight)
            .set_max_packet_size(64 * 1024, self.max_packet_bytes.saturating_add(64 * 1024));
        Ok(MqttPublisher::start(
            options,
            conn.display,
            usize::from(self.max_inflight),
            self.connect_timeout_secs,
            conn.backoff_min,
            conn.backoff_max,
        ))
    }
}

/// The connection settings source and publisher share, before checking.
struct Common<'a> {
    section: &'static str,
    url: &'a str,
    client_id: &'a str,
    username: Option<&'a str>,
    password: Option<&'a str>,
    ca_file: Option<&'a Path>,
    client_cert_file: Option<&'a Path>,
    client_key_file: Option<&'a Path>,
    keep_alive_secs: u64,
    connect_timeout_secs: u64,
    backoff_min_ms: u64,
    backoff_max_ms: u64,
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
    fn resolve(c: &Common<'_>) -> Result<Self, IngestError> {
        let setting = |name: &str| format!("{}.{name}", c.section);
        let url = BrokerUrl::parse(c.url).map_err(|e| IngestError::config(setting("url"), e))?;
        if c.client_id.is_empty() || c.client_id.len() > 65_535 {
            return Err(IngestError::config(
                setting("client_id"),
                "must be between 1 and 65535 bytes",
            ));
        }
        let username = match (url.username, c.username) {
            (Some(_), Some(_)) => {
                return Err(IngestError::config(
                    setting("username"),
                    "the URL holds a user name already; give it in one place only",
                ))
            }
            (u, None) => u,
            (None, Some(u)) => Some(u.to_owned()),
        };
        let password = match (url.password, c.password) {
            (Some(_), Some(_)) => {
                return Err(IngestError::config(
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
                return Err(IngestError::config(
                    setting("password"),
                    "a password needs a user name",
                ))
            }
            (None, None) => None,
        };
        if !(1..=65_535).contains(&c.keep_alive_secs) {
            return Err(IngestError::config(
                setting("keep_alive_secs"),
                "must be between 1 and 65535",
            ));
        }
        if c.connect_timeout_secs == 0 {
            return Err(IngestError::config(
                setting("connect_timeout_secs"),
                "must be at least 1",
            ));
        }
        if c.backoff_min_ms == 0 || c.backoff_max_ms < c.backoff_min_ms {
            return Err(IngestError::config(
                setting("reconnect_backoff_min_ms"),
                "must be at least 1 and at most reconnect_backoff_max_ms",
            ));
        }
        let tls = if url.tls {
            Some(tls_config(c, &setting)?)
        } else {
            if c.ca_file.is_some() || c.client_cert_file.is_some() {
                return Err(IngestError::config(
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
            backoff_min: Duration::from_millis(c.backoff_min_ms),
            backoff_max: Duration::from_millis(c.backoff_max_ms),
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
    c: &Common<'_>,
    setting: &dyn Fn(&str) -> String,
) -> Result<Arc<rustls::ClientConfig>, IngestError> {
    install_ring_provider();
    let (ca_path, ca_setting) = match c.ca_file {
        Some(p) => (p.to_path_buf(), setting("ca_file")),
        None => {
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let found = from_env
                .into_iter()
                .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    IngestError::config(
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
            IngestError::config(
                &ca_setting,
                format!("cannot read {}: {e}", ca_path.display()),
            )
        })?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(IngestError::config(
            &ca_setting,
            format!("{} holds no usable certificate", ca_path.display()),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IngestError::config(setting("url"), format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots);
    let config = match (c.client_cert_file, c.client_key_file) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<_, _>>())
                .map_err(|e| {
                    IngestError::config(
                        setting("client_cert_file"),
                        format!("cannot read {}: {e}", cert.display()),
                    )
                })?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                IngestError::config(
                    setting("client_key_file"),
                    format!("cannot read a private key from {}: {e}", key.display()),
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                IngestError::config(setting("client_cert_file"), format!("unusable: {e}"))
            })?
        }
        (Some(_), None) => {
            return Err(IngestError::config(
                setting("client_key_file"),
                "needed with client_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(IngestError::config(
                setting("client_cert_file"),
                "needed with client_key_file",
            ))
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn build_names_the_bad_setting() {
        let base = MqttSourceConfig::new("mqtt://h");
        assert!(base.build(intake()).is_ok());
        let cases: Vec<(MqttSourceConfig, &str)> = vec![
            (MqttSourceConfig::new("tcp://h"), "mqtt.url"),
            (
                MqttSourceConfig {
                    client_id: String::new(),
                    ..base.clone()
                },
                "mqtt.client_id",
            ),
            (
                MqttSourceConfig {
                    topic: "pdm/#/x".into(),
                    ..base.clone()
                },
                "mqtt.topic",
            ),
            (
                MqttSourceConfig {
                    shared_group: Some("a/b".into()),
                    ..base.clone()
                },
                "mqtt.shared_group",
            ),
            (
                MqttSourceConfig {
                    username: Some("x".into()),
                    ..MqttSourceConfig::new("mqtt://u:secret@h")
                },
                "mqtt.username",
            ),
            (
                MqttSourceConfig {
                    password: Some("secret".into()),
                    ..base.clone()
                },
                "mqtt.password",
            ),
            (
                MqttSourceConfig {
                    keep_alive_secs: 0,
                    ..base.clone()
                },
                "mqtt.keep_alive_secs",
            ),
            (
                MqttSourceConfig {
                    max_inflight: 0,
                    ..base.clone()
                },
                "mqtt.max_inflight",
            ),
            (
                MqttSourceConfig {
                    max_packet_bytes: 1000,
                    ..base.clone()
                },
                "mqtt.max_packet_bytes",
            ),
            (
                MqttSourceConfig {
                    reconnect_backoff_min_ms: 10,
                    reconnect_backoff_max_ms: 5,
                    ..base.clone()
                },
                "mqtt.reconnect_backoff_min_ms",
            ),
            (
                MqttSourceConfig {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..MqttSourceConfig::new("mqtts://h")
                },
                "mqtt.ca_file",
            ),
            (
                MqttSourceConfig {
                    ca_file: Some("/nonexistent/ca.pem".into()),
                    ..base.clone()
                },
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
        let config = MqttSourceConfig {
            ca_file: Some(PathBuf::from(bundle)),
            ..MqttSourceConfig::new("mqtts://broker.example")
        };
        assert!(config.build(intake()).is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        let empty = std::env::temp_dir().join(format!("pdm-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate").expect("write temp file");
        let e = build_err(MqttSourceConfig {
            ca_file: Some(empty.clone()),
            ..MqttSourceConfig::new("mqtts://broker.example")
        });
        let _ = std::fs::remove_file(&empty);
        assert!(e.contains("no usable certificate"), "{e}");
    }

    #[test]
    fn config_from_toml_like_json_refuses_unknown_keys() {
        let e = serde_json::from_str::<MqttSourceConfig>(r#"{"urll": "mqtt://h"}"#)
            .expect_err("unknown key");
        assert!(e.to_string().contains("urll"));
    }
}
