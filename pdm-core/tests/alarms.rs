//! The alarm stage of the live path against a real SQLite store: readings beyond a limit raise
//! one alarm, stored with its events and outbox rows and published on the bus; people's
//! commands go through the store and the owner adopts them; a restart and a second worker
//! scoring the same machine never open a second alarm.

use std::sync::Arc;

use pdm_core::alarm::{AlarmEventKind, StateName};
use pdm_core::bus::PushKind;
use pdm_core::live::{AlarmCommandError, Live, LiveConfig, ModelFactory};
use pdm_core::{AlarmQuery, Batch, MachineKey, NewAlarmRule, Reading, SensorKey, Store, Timestamp};
use pdm_detect::DetectFactory;

const BASE: i64 = 1_767_225_600_000;

fn key() -> MachineKey {
    MachineKey::new("m").expect("key")
}

fn temp(from: i64, to: i64, value: f64) -> Batch {
    Batch {
        readings: (from..to)
            .map(|i| Reading {
                machine: key(),
                sensor: SensorKey::new("temp").expect("key"),
                ts: Timestamp::from_millis(BASE + i * 1000),
                value,
            })
            .collect(),
        dead_letters: Vec::new(),
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &Default::default())
        .await
        .expect("connect");
    store
        .ensure_sensor(&key(), &SensorKey::new("temp").expect("key"))
        .await
        .expect("sensor");
    (dir, store)
}

fn start(store: &Arc<dyn Store>) -> Arc<Live> {
    let factory: Arc<dyn ModelFactory> = Arc::new(DetectFactory);
    let config = LiveConfig {
        tasks: 1,
        auto_train_after_s: 0,
        ..LiveConfig::default()
    };
    Live::start(store.clone(), factory, config)
}

async fn feed(store: &Arc<dyn Store>, live: &Live, b: Batch) {
    store.write(&b).await.expect("write");
    live.offer(b);
    live.flush().await;
}

async fn alarms(store: &Arc<dyn Store>) -> Vec<pdm_core::StoredAlarm> {
    store
        .list_alarms(&AlarmQuery {
            limit: 100,
            ..AlarmQuery::default()
        })
        .await
        .expect("list")
}

async fn put_limit_rule(store: &Arc<dyn Store>, machine: Option<MachineKey>) {
    store
        .put_rule(&NewAlarmRule {
            machine,
            rule_id: "hot".into(),
            definition: r#"{"id": "hot", "severity": "high",
                "kind": {"type": "sensor_limit", "sensor": "temp", "above": 50.0, "deadband": 1.0}}"#
                .into(),
            enabled: true,
        })
        .await
        .expect("rule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_raises_one_alarm_that_people_acknowledge_and_that_clears() {
    let (_dir, store) = store().await;
    put_limit_rule(&store, None).await;
    let live = start(&store);
    let mut bus = live.bus().subscribe(None).rx;

    feed(&store, &live, temp(0, 10, 20.0)).await;
    assert!(alarms(&store).await.is_empty());
    feed(&store, &live, temp(10, 20, 60.0)).await;
    let all = alarms(&store).await;
    assert_eq!(all.len(), 1, "{all:?}");
    let alarm = &all[0];
    assert_eq!(
        (alarm.state, alarm.rule_id.as_str()),
        (StateName::ActiveUnacked, "hot")
    );
    assert_eq!(alarm.opened_at, Timestamp::from_millis(BASE + 10_000));
    // Published after it was stored, with its outbox row waiting for the dispatcher.
    let mut kinds = Vec::new();
    while let Ok(e) = bus.try_recv() {
        kinds.push(e.kind);
        if e.kind == PushKind::Alarm {
            assert!(e.data.contains(r#""kind":"raised""#), "{}", e.data);
        }
    }
    assert!(kinds.contains(&PushKind::Alarm) && kinds.contains(&PushKind::Reading));
    assert_eq!(store.pending_outbox(100).await.expect("outbox").len(), 1);

    // Still hot: nothing new.
    feed(&store, &live, temp(20, 30, 61.0)).await;
    assert_eq!(alarms(&store).await.len(), 1);

    let now = Timestamp::from_millis(BASE + 31_000);
    let acked = live
        .alarms()
        .acknowledge(alarm.id, "ann", None, now)
        .await
        .expect("ack");
    assert_eq!(acked.alarm.state, StateName::ActiveAcked);
    assert!(matches!(
        live.alarms().acknowledge(alarm.id, "ann", None, now).await,
        Err(AlarmCommandError::Refused(_))
    ));
    // Back below the limit minus the deadband: the acknowledged alarm clears, by the owner,
    // which adopted the acknowledgement made through the store.
    feed(&store, &live, temp(30, 40, 20.0)).await;
    let all = alarms(&store).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].closed_at.is_some(), "{:?}", all[0]);
    let events: Vec<AlarmEventKind> = store
        .alarm_events(alarm.id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(
        events,
        [
            AlarmEventKind::Raised,
            AlarmEventKind::Acknowledged,
            AlarmEventKind::Cleared
        ]
    );
    // A cleared alarm cannot be acknowledged.
    assert!(matches!(
        live.alarms().acknowledge(alarm.id, "ann", None, now).await,
        Err(AlarmCommandError::Refused(_))
    ));
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_service_suppresses_and_a_restart_adopts_the_open_alarm() {
    let (_dir, store) = store().await;
    put_limit_rule(&store, Some(key())).await;
    let live = start(&store);
    let at = Timestamp::from_millis(BASE);
    live.alarms()
        .out_of_service(&key(), "ann", "bearing change", at)
        .await
        .expect("out of service");
    assert!(matches!(
        live.alarms()
            .out_of_service(&key(), "ann", "again", at)
            .await,
        Err(AlarmCommandError::Conflict(_))
    ));
    feed(&store, &live, temp(0, 10, 60.0)).await;
    assert!(
        alarms(&store).await.is_empty(),
        "raised while out of service"
    );
    // Back in service with the condition present: raised.
    live.alarms()
        .in_service(&key(), "ann", Timestamp::from_millis(BASE + 11_000))
        .await
        .expect("in service");
    feed(&store, &live, temp(10, 12, 60.0)).await;
    let all = alarms(&store).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].state, StateName::ActiveUnacked);
    live.shutdown().await;

    // A restart: the new owner adopts the open alarm; the condition ending returns it.
    let live = start(&store);
    feed(&store, &live, temp(12, 20, 20.0)).await;
    let all = alarms(&store).await;
    assert_eq!(all.len(), 1, "a second alarm after the restart: {all:?}");
    assert_eq!(all[0].state, StateName::ReturnedUnacked);
    live.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_machine_open_one_alarm() {
    let (_dir, store) = store().await;
    put_limit_rule(&store, None).await;
    // Two live paths that both own the machine (a misconfigured shard, or a hand-over): the
    // database lets one alarm open, and the other adopts it.
    let a = start(&store);
    let b = start(&store);
    for (from, value) in [(0, 20.0), (5, 60.0), (10, 20.0), (15, 60.0)] {
        let batch = temp(from, from + 5, value);
        store.write(&batch).await.expect("write");
        a.offer(batch.clone());
        b.offer(batch);
        a.flush().await;
        b.flush().await;
    }
    let all = alarms(&store).await;
    let open: Vec<_> = all.iter().filter(|x| x.closed_at.is_none()).collect();
    assert_eq!(open.len(), 1, "{all:?}");
    // Raised once, returned once, reactivated once: no event twice.
    let kinds: Vec<AlarmEventKind> = store
        .alarm_events(open[0].id)
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.event.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            AlarmEventKind::Raised,
            AlarmEventKind::Returned,
            AlarmEventKind::Reactivated
        ]
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A person's acknowledgement closes a returned alarm on the wall clock, which may be ahead of
/// the data; the next reading beyond the limit opens the next alarm at that close, never before
/// it: episodes of one machine and rule never overlap in time. A late reading (older than the
/// newest one judged) is history: it changes no condition, so it raises nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_alarm_never_opens_before_the_last_one_closed_and_late_readings_raise_nothing() {
    let (_dir, store) = store().await;
    put_limit_rule(&store, None).await;
    let live = start(&store);

    feed(&store, &live, temp(0, 1, 60.0)).await;
    feed(&store, &live, temp(10, 11, 20.0)).await;
    let first = alarms(&store).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].state, StateName::ReturnedUnacked);
    let closed_at = Timestamp::from_millis(BASE + 60_000);
    let acked = live
        .alarms()
        .acknowledge(first[0].id, "ann", None, closed_at)
        .await
        .expect("ack");
    assert_eq!(acked.alarm.closed_at, Some(closed_at));

    // Late: data from between the two readings, beyond the limit: nothing.
    feed(&store, &live, temp(5, 6, 70.0)).await;
    assert_eq!(alarms(&store).await.len(), 1);

    // Newer than the last, beyond the limit, but before the close: raised at the close.
    feed(&store, &live, temp(20, 21, 70.0)).await;
    let all = alarms(&store).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let next = all.iter().find(|a| a.closed_at.is_none()).expect("open");
    assert_eq!(next.opened_at, closed_at, "{all:?}");
    live.shutdown().await;
}
