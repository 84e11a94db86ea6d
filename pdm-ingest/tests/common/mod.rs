//! Shared helpers of the integration tests.

#![allow(dead_code)]

pub mod mem_store;

use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The broker to test against, from `PDM_TEST_MQTT_URL`. `None` (after saying so loudly) when
/// unset, unless `PDM_TEST_REQUIRE_SERVICES=1`, which makes a missing broker a failure.
pub fn mqtt_url() -> Option<String> {
    match std::env::var("PDM_TEST_MQTT_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("PDM_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("PDM_TEST_MQTT_URL is not set but PDM_TEST_REQUIRE_SERVICES=1");
            }
            // Written to the stderr handle, not with eprintln!, so the test harness does not
            // capture it: a skip must be seen.
            let test = std::thread::current().name().unwrap_or("test").to_owned();
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} (PDM_TEST_MQTT_URL not set)"
            );
            None
        }
    }
}

/// Sends the engine's log lines (`RUST_LOG`, else info) to the test harness, which shows them
/// with a failing test's output: the account of what the source did is what explains a failure
/// against a real broker.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// A name no other test run uses, so tests can share a broker and run in parallel.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed =
        nanos ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{prefix}-{:012x}", mixed & 0xffff_ffff_ffff)
}

/// Polls `check` until it holds, for at most `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
