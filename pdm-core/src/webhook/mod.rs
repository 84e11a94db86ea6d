//! Webhooks (issue 10): the durable dispatcher that delivers the alarm outbox to webhook
//! endpoints, signed as the [Standard Webhooks](https://www.standardwebhooks.com/)
//! specification says, retried on a schedule with jitter, logged per attempt.
//!
//! No SQL and no HTTP here: the store keeps endpoints, deliveries and attempts
//! ([`crate::store::WebhookStore`]); the HTTP client is a [`WebhookSender`] the frontend
//! implements (pdm-server's refuses private destinations and never follows redirects).
//!
//! ```
//! use pdm_core::webhook::signing;
//!
//! let secret = signing::generate_secret();
//! let header = signing::signature_header(&[&secret], "msg_1", 1_700_000_000, b"{}")?;
//! signing::verify(&secret, "msg_1", "1700000000", &header, b"{}", 1_700_000_000)?;
//! # Ok::<(), signing::SignatureError>(())
//! ```

mod dispatcher;
pub mod signing;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng as _;
use serde::Serialize;

use crate::model::Timestamp;
use crate::notify::AlarmNotification;
use crate::store::OutboxEntry;

pub use dispatcher::{Dispatcher, DispatcherConfig, DispatcherHandle, TestSend};

/// The time the dispatcher goes by: the wall clock in production, a controlled one in tests.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// One HTTP POST of a delivery attempt.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// The endpoint's URL.
    pub url: String,
    /// The headers (`content-type`, `webhook-id`, `webhook-timestamp`, `webhook-signature`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long the whole exchange may take.
    pub timeout: Duration,
}

/// Signatures are credentials of a kind: `Debug` shows the URL and the size only.
impl std::fmt::Debug for WebhookRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRequest")
            .field("url", &self.url)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// The HTTP status.
    pub status: u16,
    /// The `Retry-After` header, as sent.
    pub retry_after: Option<String>,
    /// The start of the body (a few KiB at most), for the delivery log.
    pub body_excerpt: String,
}

/// Why an attempt got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The destination is not allowed (a private or loopback address, a bad URL).
    #[error("destination refused: {0}")]
    Refused(String),
    /// No connection (DNS, TCP, TLS).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The receiver answered something that is not HTTP, or broke off.
    #[error("bad response: {0}")]
    Protocol(String),
    /// No complete answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The HTTP client seam: sends one attempt. Implementations never follow redirects and read at
/// most a few KiB of the body.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    /// POSTs `request`.
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError>;
}

/// When retries happen: the delays after each failed attempt (the first attempt is
/// immediate), with a jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: f64,
}

impl Default for RetrySchedule {
    /// Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about
    /// 28 hours, each delay within ±10 %.
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            delays: vec![
                s(5),
                s(300),
                s(1_800),
                s(7_200),
                s(18_000),
                s(36_000),
                s(36_000),
            ],
            jitter: 0.1,
        }
    }
}

impl RetrySchedule {
    /// Retries after `delays` (one per retry), each moved by up to `jitter` (a fraction, e.g.
    /// 0.1) of itself, either way.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Self {
        Self {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// How many attempts a delivery gets: the first and one per retry.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.delays.len() + 1).unwrap_or(u32::MAX)
    }

    /// The delay before the next attempt once `attempts_made` attempts failed, with its jitter;
    /// `None` when the schedule is exhausted.
    pub fn delay_after(&self, attempts_made: u32) -> Option<Duration> {
        let i = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
        let base = *self.delays.get(i)?;
        if self.jitter == 0.0 || base.is_zero() {
            return Some(base);
        }
        // Spreads retries of many deliveries that failed together (an endpoint that was down).
        let factor = rand::rng().random_range(1.0 - self.jitter..=1.0 + self.jitter);
        Some(base.mul_f64(factor))
    }
}

/// The seconds or the instant of a `Retry-After` header (RFC 9110: delay-seconds or an
/// HTTP-date), from `now`; `None` when it is neither.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Timestamp> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        let ms = i64::try_from(secs.saturating_mul(1_000)).unwrap_or(i64::MAX);
        return Some(now.add_millis(ms));
    }
    let format = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    let at = time::PrimitiveDateTime::parse(value, &format)
        .ok()?
        .assume_utc();
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(Timestamp::from_millis(ms))
}

/// `t` as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(t: Timestamp) -> String {
    let nanos = i128::from(t.as_millis()) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.as_millis().to_string())
}

/// The Standard Webhooks envelope: `{"type", "timestamp", "data"}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a, T: Serialize> {
    /// `alarm.<event kind>` or `webhook.test`.
    #[serde(rename = "type")]
    pub event_type: &'a str,
    /// When the event happened, RFC 3339.
    pub timestamp: String,
    /// The event.
    pub data: &'a T,
}

/// The event type of an alarm event: `alarm.<kind>` (`alarm.raised`, `alarm.cleared`, ...).
pub fn alarm_event_type(entry: &OutboxEntry) -> String {
    format!("alarm.{}", entry.event.event.kind.as_str())
}

/// The `webhook-id` of the deliveries of an outbox row: the same for every endpoint and every
/// attempt, so receivers deduplicate by it.
pub fn message_id(outbox_id: i64) -> String {
    format!("msg_{outbox_id}")
}

/// The body delivered for an outbox row.
pub fn alarm_payload(entry: &OutboxEntry) -> Result<String, serde_json::Error> {
    let data = AlarmNotification {
        alarm_id: entry.event.alarm.0,
        machine: entry.machine.clone(),
        rule: entry.rule_id.clone(),
        event: entry.event.event.clone(),
    };
    let event_type = alarm_event_type(entry);
    serde_json::to_string(&Envelope {
        event_type: &event_type,
        timestamp: rfc3339(entry.event.event.at),
        data: &data,
    })
}

macro_rules! webhook_counters {
    ($($name:ident => $help:literal,)*) => {
        /// Counters of the dispatcher: relaxed atomics, read by embedders and `/metrics`.
        #[derive(Debug, Default)]
        pub struct WebhookMetrics {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A point-in-time copy of [`WebhookMetrics`].
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct WebhookSnapshot {
            $(#[doc = $help] pub $name: u64,)*
        }

        impl WebhookSnapshot {
            /// Every counter with its name and description, for exporters.
            pub fn fields(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name),)*]
            }
        }

        impl WebhookMetrics {
            /// A copy of every counter.
            pub fn snapshot(&self) -> WebhookSnapshot {
                WebhookSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

webhook_counters! {
    deliveries_created => "Deliveries created from outbox rows (one per matching endpoint).",
    delivered => "Deliveries a receiver accepted (2xx).",
    attempts_failed => "Attempts that failed (an error, a timeout or a non-2xx answer).",
    deliveries_failed => "Deliveries that failed for good (schedule exhausted or 410 Gone).",
    endpoints_disabled => "Endpoints disabled by the dispatcher (410 Gone or failing for days).",
    store_errors => "Store operations of the dispatcher that failed (retried at the next tick).",
    pruned => "Old deliveries and outbox rows deleted.",
    probes => "Attempts made to probe a failing endpoint ahead of its retry schedule.",
}

fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn dispatcher_add(counter: &AtomicU64, n: u64) {
    if n > 0 {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_has_eight_attempts_with_jitter() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.delay_after(0), None);
        for _ in 0..100 {
            let d = s.delay_after(1).expect("first retry");
            assert!(d >= Duration::from_millis(4_500) && d <= Duration::from_millis(5_500));
        }
        assert!(s.delay_after(7).is_some());
        assert_eq!(s.delay_after(8), None);
        let exact = RetrySchedule::new(vec![Duration::from_secs(1)], 0.0);
        assert_eq!(exact.delay_after(1), Some(Duration::from_secs(1)));
        assert_eq!(exact.attempts(), 2);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = Timestamp::from_millis(1_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Timestamp::from_millis(121_000))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Timestamp::from_millis(784_111_777_000))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(
            rfc3339(Timestamp::from_millis(1_700_000_000_500)),
            "2023-11-14T22:13:20.5Z"
        );
    }
}
