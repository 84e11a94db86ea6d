//! Test support shared by the crates of the pdm workspace (a dev-dependency only, never
//! published): finding the real services, unique names, eventual assertions, fresh PostgreSQL
//! databases and test logs.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_time().build()?.block_on(async {
//! use std::time::Duration;
//!
//! // A missing broker skips the test loudly, or fails it under PDM_TEST_REQUIRE_SERVICES=1.
//! if let Some(url) = pdm_testkit::mqtt_url() {
//!     assert!(url.starts_with("mqtt"));
//! }
//! let topic = format!("pdm/{}/telemetry", pdm_testkit::unique("m"));
//! assert_ne!(topic, format!("pdm/{}/telemetry", pdm_testkit::unique("m")));
//! pdm_testkit::eventually(Duration::from_secs(1), "a true condition", || async { true }).await;
//! # });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "postgres")]
pub mod pg;

/// The variable naming the PostgreSQL server of the tests.
pub const DATABASE_URL_VAR: &str = "PDM_TEST_DATABASE_URL";
/// The variable naming the MQTT broker of the tests.
pub const MQTT_URL_VAR: &str = "PDM_TEST_MQTT_URL";
/// The variable that, at `1`, turns a missing service from a skip into a failure.
pub const REQUIRE_SERVICES_VAR: &str = "PDM_TEST_REQUIRE_SERVICES";

/// True when missing services must fail the tests instead of skipping them
/// (`PDM_TEST_REQUIRE_SERVICES=1`).
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1")
}

/// The name of the running test: the harness names each test's thread after it.
pub fn test_name() -> String {
    std::thread::current().name().unwrap_or("test").to_owned()
}

/// Says that the running test skips, and why, where it is seen: written to the stderr handle,
/// not with `eprintln!`, so that the test harness does not capture it.
pub fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {}: {why}", test_name());
}

/// The service URL in `var`, or `None` after a loud SKIPPED line when it is unset or empty;
/// panics instead under `PDM_TEST_REQUIRE_SERVICES=1`.
pub fn service_url(var: &str, example: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if services_required() => panic!(
            "{}: {var} is not set but {REQUIRE_SERVICES_VAR}=1: point it at the service, e.g. \
             {example}",
            test_name()
        ),
        _ => {
            skipped(&format!("{var} not set"));
            None
        }
    }
}

/// The broker to test against, from `PDM_TEST_MQTT_URL` (see [`service_url`]).
pub fn mqtt_url() -> Option<String> {
    service_url(MQTT_URL_VAR, "mqtt://127.0.0.1:1883")
}

/// The PostgreSQL server to test against, from `PDM_TEST_DATABASE_URL` (see [`service_url`]).
/// Tests make their own databases there ([`pg::TestDatabases`] with the `postgres` feature).
pub fn database_url() -> Option<String> {
    service_url(DATABASE_URL_VAR, "postgres://postgres@127.0.0.1:5432/test")
}

fn unique_bits() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed =
        nanos ^ (u64::from(std::process::id()) << 40) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed & 0xffff_ffff_ffff
}

/// `prefix-<12 hex digits>`, a name no other test or test run uses, for topics, client ids and
/// keys (a valid machine or sensor key when `prefix` is one).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:012x}", unique_bits())
}

/// `prefix_<12 hex digits>`, like [`unique`] but a valid SQL identifier when `prefix` is one
/// (lowercase letters, digits, underscores), for database names.
pub fn unique_ident(prefix: &str) -> String {
    format!("{prefix}_{:012x}", unique_bits())
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(timeout, what, || {
        let done = check();
        async move { done.await.then_some(()) }
    })
    .await
}

/// Polls `check` every 20 ms until it gives a value, and returns it; panics naming `what` after
/// `timeout`.
pub async fn eventually_some<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends log lines (`RUST_LOG`, else info) to the test harness, which shows them with a failing
/// test's output. Idempotent.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_keep_their_shape() {
        let (a, b) = (unique("m"), unique("m"));
        assert_ne!(a, b);
        assert!(a.starts_with("m-") && a.len() == 14, "{a}");
        let id = unique_ident("pdm_test");
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'),
            "{id}"
        );
    }

    #[tokio::test]
    async fn eventually_returns_once_the_check_holds() {
        let mut n = 0;
        eventually(Duration::from_secs(5), "three polls", || {
            n += 1;
            let done = n >= 3;
            async move { done }
        })
        .await;
        assert_eq!(n, 3);
    }
}
