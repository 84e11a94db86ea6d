//! The webhook dispatcher against a real SQLite store, with a controlled clock and a scripted
//! sender: the whole retry schedule, disabling after days of failures, and a crash mid-attempt
//! retried by the next dispatcher with the same `webhook-id`.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
use pdm_core::store::{DeliveryQuery, DeliveryStatus, NewWebhook, WebhookId};
use pdm_core::webhook::{
    signing, Clock, Dispatcher, DispatcherConfig, RetrySchedule, SendError, WebhookRequest,
    WebhookResponse, WebhookSender,
};
use pdm_core::{AlarmTransition, MachineKey, Store, Timestamp};

struct ManualClock(AtomicI64);

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}

impl ManualClock {
    fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

/// Answers every request with `status` (or hangs when `None`), recording the requests.
struct Scripted {
    status: Mutex<Option<u16>>,
    got: Mutex<Vec<WebhookRequest>>,
}

impl Scripted {
    fn new(status: Option<u16>) -> Arc<Self> {
        Arc::new(Self {
            status: Mutex::new(status),
            got: Mutex::new(Vec::new()),
        })
    }

    fn answer(&self, status: u16) {
        *self.status.lock().expect("lock") = Some(status);
    }

    fn ids(&self) -> Vec<String> {
        self.got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|r| {
                r.headers
                    .iter()
                    .find(|(n, _)| n == "webhook-id")
                    .map(|(_, v)| v.clone())
            })
            .collect()
    }
}

#[async_trait]
impl WebhookSender for Scripted {
    async fn send(&self, request: &WebhookRequest) -> Result<WebhookResponse, SendError> {
        self.got.lock().expect("lock").push(request.clone());
        let status = *self.status.lock().expect("lock");
        match status {
            Some(status) => Ok(WebhookResponse {
                status,
                retry_after: None,
                body_excerpt: String::new(),
            }),
            None => std::future::pending().await,
        }
    }
}

struct Fixture {
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    hook: WebhookId,
    secret: String,
    _dir: tempfile::TempDir,
}

const T0: i64 = 1_800_000_000_000;

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &Default::default())
        .await
        .expect("store");
    let secret = signing::generate_secret();
    let hook = store
        .create_webhook(&NewWebhook {
            url: "https://receiver.example/hook".into(),
            description: None,
            secret: secret.clone(),
            filter: Default::default(),
            enabled: true,
        })
        .await
        .expect("webhook")
        .id;
    let key = MachineKey::new("pump-1").expect("key");
    store.ensure_machine(&key).await.expect("machine");
    store
        .record_transition(&AlarmTransition {
            machine: key,
            rule_id: "hot".into(),
            alarm: None,
            expected_version: 0,
            state: StateName::ActiveUnacked,
            severity: Severity::High,
            state_json: "{}".into(),
            events: vec![AlarmEvent {
                kind: AlarmEventKind::Raised,
                at: Timestamp::from_millis(T0),
                actor: "system".into(),
                reason: "hot".into(),
                severity: Severity::High,
            }],
            closes: false,
        })
        .await
        .expect("transition");
    Fixture {
        store,
        clock: Arc::new(ManualClock(AtomicI64::new(T0))),
        hook,
        secret,
        _dir: dir,
    }
}

/// No probes: the tests of the schedule see only its attempts.
fn config(schedule: RetrySchedule) -> DispatcherConfig {
    DispatcherConfig {
        schedule,
        probe_every: Duration::ZERO,
        poll: Duration::from_millis(20),
        timeout: Duration::from_millis(500),
        lease: Duration::from_secs(60),
        ..DispatcherConfig::default()
    }
}

async fn only_delivery(f: &Fixture) -> Option<pdm_core::store::Delivery> {
    let q = DeliveryQuery {
        webhook: f.hook,
        status: None,
        before: None,
        limit: 10,
    };
    f.store
        .list_deliveries(&q)
        .await
        .expect("deliveries")
        .into_iter()
        .next()
}

/// Waits until the delivery has `n` attempts.
async fn attempts(f: &Fixture, n: u32) -> pdm_core::store::Delivery {
    pdm_testkit::eventually_some(Duration::from_secs(10), "an attempt", || async {
        only_delivery(f).await.filter(|d| d.attempts >= n)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_schedule_then_failed_with_one_webhook_id() {
    let f = fixture().await;
    let sender = Scripted::new(Some(500));
    let d = Dispatcher::start(
        f.store.clone(),
        sender.clone(),
        f.clock.clone(),
        config(RetrySchedule::default()),
    );
    let expected = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
    for (i, secs) in expected.iter().enumerate() {
        let got = attempts(&f, u32::try_from(i + 1).expect("small")).await;
        assert_eq!(got.status, DeliveryStatus::Pending);
        let next = got.next_attempt_at.expect("a retry is scheduled");
        let delay = next.as_millis() - f.clock.now().as_millis();
        let base = secs * 1_000;
        assert!(
            (delay - base).abs() <= base / 10,
            "retry {} after {delay} ms, not {base} ms ±10 %",
            i + 1
        );
        f.clock.set(next);
        d.waker().notify_one();
    }
    let last = attempts(&f, 8).await;
    assert_eq!(
        last.status,
        DeliveryStatus::Failed,
        "failed after the eighth attempt"
    );
    let ids = sender.ids();
    assert_eq!(ids.len(), 8);
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    // Each attempt is signed with the endpoint's secret.
    let req = sender.got.lock().expect("lock")[0].clone();
    let h = |n: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let ts: i64 = h("webhook-timestamp").parse().expect("seconds");
    signing::verify(
        &f.secret,
        &h("webhook-id"),
        &h("webhook-timestamp"),
        &h("webhook-signature"),
        &req.body,
        ts,
    )
    .expect("signed");
    assert_eq!(d.metrics().snapshot().deliveries_failed, 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_failing_for_five_days_is_disabled() {
    let f = fixture().await;
    let day = Duration::from_secs(86_400);
    let d = Dispatcher::start(
        f.store.clone(),
        Scripted::new(Some(503)),
        f.clock.clone(),
        config(RetrySchedule::new(vec![day; 10], 0.0)),
    );
    for n in 1..=5 {
        let got = attempts(&f, n).await;
        f.clock.set(got.next_attempt_at.expect("retry"));
        d.waker().notify_one();
        let w = f.store.get_webhook(f.hook).await.expect("webhook");
        assert!(w.enabled, "still enabled after {n} days of failures");
        assert_eq!(w.failing_since, Some(Timestamp::from_millis(T0)));
    }
    attempts(&f, 6).await;
    let w = f.store.get_webhook(f.hook).await.expect("webhook");
    assert!(!w.enabled, "disabled after 5 days");
    assert!(
        w.disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("5 days")),
        "{:?}",
        w.disabled_reason
    );
    assert_eq!(d.metrics().snapshot().endpoints_disabled, 1);
    d.shutdown().await;
}

/// A dispatcher dies mid-attempt (its receiver never answered); once the lease has run out
/// the next one sends the delivery again, with the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_attempt_is_retried_with_the_same_webhook_id() {
    let f = fixture().await;
    let mut cfg = config(RetrySchedule::default());
    cfg.timeout = Duration::from_secs(30);
    cfg.lease = Duration::from_secs(120);
    let hanging = Scripted::new(None);
    let first = Dispatcher::start(
        f.store.clone(),
        hanging.clone(),
        f.clock.clone(),
        cfg.clone(),
    );
    pdm_testkit::eventually(Duration::from_secs(10), "the first attempt", || async {
        !hanging.ids().is_empty()
    })
    .await;
    first.shutdown().await;
    let answering = Scripted::new(Some(200));
    let second = Dispatcher::start(f.store.clone(), answering.clone(), f.clock.clone(), cfg);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(answering.ids().is_empty(), "the lease still holds it");
    f.clock.set(Timestamp::from_millis(T0 + 121_000));
    second.waker().notify_one();
    let got = attempts(&f, 1).await;
    assert_eq!(got.status, DeliveryStatus::Delivered);
    assert_eq!(
        answering.ids(),
        hanging.ids(),
        "the same webhook-id after the crash"
    );
    second.shutdown().await;
}

/// An endpoint down: its alarm's first event fails twice and waits 5 minutes, the second
/// waits behind it. Probes try the first ahead of the schedule without using up its attempts;
/// once the endpoint answers again, a probe succeeds and the second event goes at once, in
/// order, minutes before the schedule would have sent anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_probed_and_its_backlog_goes_out_when_it_is_back() {
    let f = fixture().await;
    let alarm = f
        .store
        .list_alarms(&pdm_core::store::AlarmQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("alarms")
        .remove(0);
    f.store
        .record_transition(&AlarmTransition {
            machine: alarm.machine.clone(),
            rule_id: alarm.rule_id.clone(),
            alarm: Some(alarm.id),
            expected_version: alarm.version,
            state: StateName::ActiveUnacked,
            severity: Severity::Critical,
            state_json: "{}".into(),
            events: vec![AlarmEvent {
                kind: AlarmEventKind::Escalated,
                at: Timestamp::from_millis(T0 + 1),
                actor: "system".into(),
                reason: "hotter".into(),
                severity: Severity::Critical,
            }],
            closes: false,
        })
        .await
        .expect("second event");
    let sender = Scripted::new(Some(503));
    let mut cfg = config(RetrySchedule::new(
        vec![Duration::from_secs(5), Duration::from_secs(300)],
        0.0,
    ));
    cfg.probe_every = Duration::from_secs(15);
    let d = Dispatcher::start(f.store.clone(), sender.clone(), f.clock.clone(), cfg);
    let deliveries = || async {
        let mut all = f
            .store
            .list_deliveries(&DeliveryQuery {
                webhook: f.hook,
                status: None,
                before: None,
                limit: 10,
            })
            .await
            .expect("deliveries");
        all.reverse(); // oldest first
        all
    };
    let head_after = |n: u32| async move {
        pdm_testkit::eventually_some(Duration::from_secs(10), "the head's attempts", || async {
            let all = deliveries().await;
            (all.len() == 2 && all[0].attempts >= n).then(|| all[0].clone())
        })
        .await
    };
    head_after(1).await;
    f.clock.set(Timestamp::from_millis(T0 + 5_000));
    d.waker().notify_one();
    let head = head_after(2).await;
    let waits_until = head.next_attempt_at.expect("a retry");
    assert_eq!(waits_until.as_millis(), T0 + 305_000);

    // A failed probe 15 s into the failure: logged, the schedule unchanged.
    f.clock.set(Timestamp::from_millis(T0 + 16_000));
    d.waker().notify_one();
    pdm_testkit::eventually(Duration::from_secs(10), "a probe", || async {
        sender.ids().len() == 3
    })
    .await;
    let head =
        pdm_testkit::eventually_some(Duration::from_secs(10), "the probe logged", || async {
            let all = deliveries().await;
            let n = f
                .store
                .delivery_attempts(all[0].id)
                .await
                .expect("attempts")
                .len();
            (n == 3 && all[0].claimed_until.is_none()).then(|| all[0].clone())
        })
        .await;
    assert_eq!(head.attempts, 2, "a probe uses up no attempt");
    assert_eq!(head.next_attempt_at, Some(waits_until));
    assert_eq!(
        deliveries().await[1].attempts,
        0,
        "the second waits behind the first"
    );

    // Back: the next probe succeeds, and the second event follows at once.
    sender.answer(204);
    f.clock.set(Timestamp::from_millis(T0 + 32_000));
    d.waker().notify_one();
    let all = pdm_testkit::eventually_some(Duration::from_secs(10), "both delivered", || async {
        let all = deliveries().await;
        all.iter()
            .all(|x| x.status == DeliveryStatus::Delivered)
            .then_some(all)
    })
    .await;
    let ids = sender.ids();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(
        ids[3..],
        [all[0].message_id.clone(), all[1].message_id.clone()],
        "in order"
    );
    assert!(f.clock.now().as_millis() < waits_until.as_millis());
    assert!(f
        .store
        .get_webhook(f.hook)
        .await
        .expect("hook")
        .failing_since
        .is_none());
    assert_eq!(d.metrics().snapshot().probes, 2);
    d.shutdown().await;
}
