//! An SSE client for the tests: `GET /api/v1/events` over a fresh TCP connection, the body
//! read frame by frame as it streams (hyper), parsed into events and comments.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream};

/// How long a client waits for the next thing before the test fails as hung.
pub const HANG: Duration = Duration::from_secs(30);

pub async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG, fut)
        .await
        .unwrap_or_else(|_| panic!("nothing within {HANG:?}: {what}"))
}

/// A TCP connection; `small`: with a tiny receive buffer, so that a client that does not read
/// stalls the server's writes quickly.
pub async fn connect(addr: SocketAddr, small: bool) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if small {
        socket.set_recv_buffer_size(4096).expect("buffer size");
    }
    socket.connect(addr).await.expect("connect")
}

/// One item of an SSE stream: an event, or a comment (`event` is `":"`).
#[derive(Debug, Clone)]
pub struct SseItem {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

impl SseItem {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

/// An SSE client reading the response body frame by frame.
pub struct SseClient {
    body: hyper::body::Incoming,
    buf: String,
}

/// `GET` over a fresh connection; the status and the body (streaming).
pub async fn get(
    addr: SocketAddr,
    uri: &str,
    headers: &[(&str, &str)],
    small: bool,
) -> hyper::Response<hyper::body::Incoming> {
    let stream = connect(addr, small).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::get(uri).header("host", addr.to_string());
    // Signed in as the test admin unless the caller sends its own (empty: none).
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        let token = super::admin_token(&addr.to_string())
            .await
            .expect("a token");
        req = req.header("authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        if !v.is_empty() {
            req = req.header(*k, *v);
        }
    }
    let req = req
        .body(http_body_util::Empty::<axum::body::Bytes>::new())
        .expect("request");
    guard("the answer's head", sender.send_request(req))
        .await
        .expect("answer")
}

/// The JSON body of a refused request.
pub async fn refused(addr: SocketAddr, uri: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = get(addr, uri, headers, false).await;
    let status = resp.status();
    let bytes = guard("the body", resp.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

impl SseClient {
    pub async fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> SseClient {
        Self::open_with(addr, query, headers, false).await
    }

    pub async fn open_with(
        addr: SocketAddr,
        query: &str,
        headers: &[(&str, &str)],
        small: bool,
    ) -> SseClient {
        let resp = get(addr, &format!("/api/v1/events{query}"), headers, small).await;
        assert_eq!(resp.status(), StatusCode::OK, "{query}");
        assert_eq!(
            resp.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        SseClient {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next item, comments included; `None` when the stream ended.
    pub async fn next_item(&mut self) -> Option<SseItem> {
        loop {
            if let Some(at) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..at + 2).collect();
                let mut item = SseItem {
                    id: None,
                    event: String::new(),
                    data: String::new(),
                };
                for line in block.lines().filter(|l| !l.is_empty()) {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "" => item.event = ":".into(),
                        "id" => item.id = Some(value.parse().expect("numeric id")),
                        "event" => item.event = value.into(),
                        "data" => item.data.push_str(value),
                        other => panic!("unexpected SSE field {other:?}"),
                    }
                }
                return Some(item);
            }
            let frame = guard("an SSE frame", self.body.frame()).await?;
            let frame = frame.ok()?;
            if let Ok(data) = frame.into_data() {
                self.buf
                    .push_str(std::str::from_utf8(&data).expect("utf-8"));
            }
        }
    }

    /// The next event, skipping heartbeats.
    pub async fn next_event(&mut self) -> SseItem {
        guard("an SSE event", async {
            loop {
                let item = self.next_item().await.expect("the stream goes on");
                if item.event != ":" {
                    return item;
                }
            }
        })
        .await
    }
}
