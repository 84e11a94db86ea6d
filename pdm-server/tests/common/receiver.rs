//! A real webhook receiver for the tests: an HTTP server on 127.0.0.1 (axum) that records
//! every request it gets, and a Standard Webhooks signature check written from the
//! specification (HMAC-SHA256 with the hmac, sha2 and base64 crates), independent of pdm-core's
//! own signing code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `webhook-id` header.
    pub id: String,
    /// The `webhook-timestamp` header.
    pub timestamp: String,
    /// The `webhook-signature` header.
    pub signature: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// 1 for the first request with this `webhook-id`, 2 for the next, ...
    pub attempt: usize,
    /// What the receiver answered.
    pub status: u16,
}

impl Delivery {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a webhook body is JSON")
    }
}

type FailFirst = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The receiver's record and behaviour.
pub struct Receiver {
    got: Mutex<Vec<Delivery>>,
    fail_first: FailFirst,
    delay: Duration,
}

impl Receiver {
    /// Starts a receiver on a free loopback port and returns its URL (`http://127.0.0.1:P/hook`).
    /// It answers 500 to the first request of every `webhook-id` for which `fail_first` holds,
    /// 204 to every other, each after `delay`.
    pub async fn start(
        fail_first: impl Fn(&str) -> bool + Send + Sync + 'static,
        delay: Duration,
    ) -> (String, Arc<Receiver>) {
        let r = Arc::new(Receiver {
            got: Mutex::new(Vec::new()),
            fail_first: Box::new(fail_first),
            delay,
        });
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        let addr = super::serve_on_loopback(app).await;
        (format!("http://{addr}/hook"), r)
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Delivery> {
        self.got.lock().expect("lock").clone()
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.got.lock().expect("lock").len()
    }
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = h("webhook-id");
    let status = {
        let mut got = r.got.lock().expect("lock");
        let attempt = got.iter().filter(|d| d.id == id).count() + 1;
        let status = if attempt == 1 && (r.fail_first)(&id) {
            500
        } else {
            204
        };
        got.push(Delivery {
            id,
            timestamp: h("webhook-timestamp"),
            signature: h("webhook-signature"),
            body: body.to_vec(),
            attempt,
            status,
        });
        status
    };
    if !r.delay.is_zero() {
        tokio::time::sleep(r.delay).await;
    }
    if status == 500 {
        (StatusCode::INTERNAL_SERVER_ERROR, "try again").into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

/// Checks a delivery's signature as the Standard Webhooks specification says: the header holds
/// space-separated `v1,<base64>` signatures, one of which must be the base64 of HMAC-SHA256,
/// keyed with the base64-decoded part of `secret` after `whsec_`, of
/// `{webhook-id}.{webhook-timestamp}.{body}`; the timestamp must be within 5 minutes of now.
pub fn verify_signature(secret: &str, d: &Delivery) -> Result<(), String> {
    let key = secret
        .strip_prefix("whsec_")
        .ok_or_else(|| format!("the secret does not start with whsec_: {secret:.6}..."))?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| format!("the secret is not base64: {e}"))?;
    let ts: i64 = d
        .timestamp
        .parse()
        .map_err(|e| format!("webhook-timestamp {:?}: {e}", d.timestamp))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    if (now - ts).abs() > 300 {
        return Err(format!("webhook-timestamp {ts} is {} s from now", now - ts));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(format!("{}.{}.", d.id, d.timestamp).as_bytes());
    mac.update(&d.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if d.signature
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
    {
        Ok(())
    } else {
        Err(format!(
            "no signature of {:?} verifies (header {:?})",
            d.id, d.signature
        ))
    }
}
