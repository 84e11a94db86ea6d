//! The webhook sender: pdm-core's [`WebhookSender`] over hyper, with a connector that vets
//! the destination.
//!
//! The host is resolved once (`tokio::net::lookup_host`); unless private destinations are
//! allowed, every address that is loopback, private (RFC 1918, ULA), link-local, CGNAT,
//! unspecified, multicast, broadcast, documentation or otherwise reserved is refused, and the
//! connection goes to the vetted address itself, so a second lookup cannot rebind the name to
//! an internal address. Redirects are never followed (a 3xx is an answer like any other); at
//! most [`MAX_BODY`] bytes of a response are read. https uses rustls (ring) with the system's
//! roots.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use axum::http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pdm_core::webhook::{SendError, WebhookRequest, WebhookResponse, WebhookSender};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// The most bytes of a response body read (for the delivery log).
pub const MAX_BODY: usize = 4 * 1024;

/// Why a URL cannot be a webhook destination.
pub fn check_url(url: &str) -> Result<(String, u16, bool), String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        Some(other) => return Err(format!("scheme {other:?} is not http or https")),
        None => return Err("must be an absolute http:// or https:// URL".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "must name a host".to_owned())?;
    if authority.as_str().contains('@') {
        return Err("must not carry a user name or password".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("must name a host".into());
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((host.to_owned(), port, https))
}

/// Whether `ip` is not a public unicast address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] == 0x0064 && s[1] == 0xff9b) // NAT64 64:ff9b::/96 reaches IPv4
                || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 // discard 100::/64
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking 198.18.0.0/15
        || a >= 240 // reserved
}

/// Resolves `host:port` and keeps the addresses allowed; `Refused` when none is.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, SendError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| SendError::Connect(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if allow_private {
        return Ok(addrs);
    }
    let allowed: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !is_private(a.ip()))
        .collect();
    match (allowed.is_empty(), addrs.first()) {
        (false, _) => Ok(allowed),
        (true, Some(a)) => Err(SendError::Refused(format!(
            "{host} resolves to {}, a private, loopback or reserved address \
             (webhooks.allow_private_destinations is off)",
            a.ip()
        ))),
        (true, None) => Err(SendError::Connect(format!("{host} has no address"))),
    }
}

/// The HTTP client of the webhook dispatcher.
#[derive(Clone)]
pub struct HttpSender {
    allow_private: bool,
    /// When set, `webhooks.allow_private_destinations` is read from it at each delivery.
    settings: Option<crate::settings::SettingsHandle>,
    tls: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSender")
            .field("allow_private", &self.allow_private)
            .finish_non_exhaustive()
    }
}

impl HttpSender {
    /// The same sender, following the `webhooks.allow_private_destinations` setting of
    /// `settings` from now on.
    pub fn with_settings(mut self, settings: crate::settings::SettingsHandle) -> Self {
        self.settings = Some(settings);
        self
    }

    /// A sender trusting the system's root certificates; `allow_private` lets it reach
    /// private and loopback addresses.
    pub fn new(allow_private: bool) -> anyhow::Result<Self> {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::warn!(error = %e, "a system root certificate cannot be loaded");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                ignored,
                "no system root certificates: https webhooks will fail"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            allow_private,
            settings: None,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn connect_and_send(&self, req: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        let (host, port, https) = check_url(&req.url).map_err(SendError::Refused)?;
        let allow_private = match &self.settings {
            Some(s) => s.current().webhooks.allow_private_destinations,
            None => self.allow_private,
        };
        let addrs = resolve(&host, port, allow_private).await?;
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(format!("{addr}: {e}")),
            }
        }
        let stream = stream.ok_or_else(|| {
            SendError::Connect(last.unwrap_or_else(|| format!("{host} has no address")))
        })?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| SendError::Refused(format!("{host} is not a TLS server name: {e}")))?;
            let tls = self
                .tls
                .connect(name, stream)
                .await
                .map_err(|e| SendError::Connect(format!("TLS with {host}: {e}")))?;
            exchange(tls, req, &host, port, https).await
        } else {
            exchange(stream, req, &host, port, https).await
        }
    }
}

/// One request and its response on `io`.
async fn exchange<S>(
    io: S,
    req: &WebhookRequest,
    host: &str,
    port: u16,
    https: bool,
) -> Result<WebhookResponse, SendError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| SendError::Connect(e.to_string()))?;
    // The connection ends with this one exchange (dropping `send` closes it).
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "webhook connection ended with an error");
        }
    });
    let uri: Uri = req
        .url
        .parse()
        .map_err(|e| SendError::Refused(format!("not a URL: {e}")))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let default_port = if https { 443 } else { 80 };
    let host_header = match (host.contains(':'), port == default_port) {
        (true, true) => format!("[{host}]"),
        (true, false) => format!("[{host}]:{port}"),
        (false, true) => host.to_owned(),
        (false, false) => format!("{host}:{port}"),
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", host_header)
        .header(
            "user-agent",
            concat!("pdm-webhooks/", env!("CARGO_PKG_VERSION")),
        )
        .header("connection", "close");
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body.clone())))
        .map_err(|e| SendError::Refused(format!("cannot build the request: {e}")))?;
    let result = async {
        let response = send
            .send_request(request)
            .await
            .map_err(|e| SendError::Protocol(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = response.into_body();
        let mut excerpt = Vec::new();
        // A body that breaks off or never ends does not change the answer: its status stands.
        while excerpt.len() < MAX_BODY {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = MAX_BODY - excerpt.len();
                        excerpt.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                _ => break,
            }
        }
        Ok(WebhookResponse {
            status,
            retry_after,
            body_excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}

#[async_trait]
impl WebhookSender for HttpSender {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        match tokio::time::timeout(request.timeout, self.connect_and_send(request)).await {
            Ok(r) => r,
            Err(_) => Err(SendError::Timeout(request.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.9",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "ff02::1",
        ] {
            assert!(is_private(ip.parse().expect(ip)), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "100.128.0.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().expect(ip)), "{ip}");
        }
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert_eq!(
            check_url("https://example.com/hook"),
            Ok(("example.com".into(), 443, true))
        );
        assert_eq!(
            check_url("http://[::1]:8080/x"),
            Ok(("::1".into(), 8080, false))
        );
        for bad in [
            "ftp://example.com",
            "example.com/hook",
            "http://u:p@example.com/",
            "nonsense",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
