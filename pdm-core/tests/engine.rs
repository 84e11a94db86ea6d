//! The engine against a real SQLite store (pdm-store, a dev-dependency): acknowledgement after
//! commit, several writers, draining on shutdown, backpressure, and retries while the database
//! is locked.

use std::sync::Arc;
use std::time::Duration;

use pdm_core::{
    Ack, Batch, Catalog, Engine, EngineConfig, MachineKey, Metrics, Reading, SensorKey, Timestamp,
};
use pdm_store::StoreOptions;
use sqlx::Connection as _;

struct Setup {
    _dir: tempfile::TempDir,
    url: String,
    store: Arc<dyn pdm_core::Store>,
    engine: Engine,
    metrics: Arc<Metrics>,
}

async fn setup(config: EngineConfig, opts: StoreOptions) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &opts).await.expect("connect");
    let catalog = Arc::new(Catalog::load(store.clone(), true).await.expect("catalog"));
    let machine = MachineKey::new("m").expect("key");
    store
        .ensure_sensor(&machine, &SensorKey::new("s").expect("key"))
        .await
        .expect("sensor");
    catalog.refresh().await.expect("refresh");
    let metrics = Arc::new(Metrics::default());
    let engine = Engine::start(store.clone(), catalog, metrics.clone(), config);
    Setup {
        _dir: dir,
        url,
        store,
        engine,
        metrics,
    }
}

fn batch(from: i64, n: i64) -> Batch {
    let machine = MachineKey::new("m").expect("key");
    let sensor = SensorKey::new("s").expect("key");
    Batch {
        readings: (from..from + n)
            .map(|i| Reading {
                machine: machine.clone(),
                sensor: sensor.clone(),
                ts: Timestamp::from_millis(i),
                value: i as f64,
            })
            .collect(),
        dead_letters: Vec::new(),
    }
}

async fn stored(store: &Arc<dyn pdm_core::Store>) -> u64 {
    store
        .count_readings(&MachineKey::new("m").expect("key"))
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_fires_after_its_batch_is_stored_with_several_writers() {
    let config = EngineConfig {
        writers: Some(3),
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    let sink = s.engine.sink();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let sink = sink.clone();
        let store = s.store.clone();
        tasks.push(tokio::spawn(async move {
            sink.send_and_wait(batch(i * 50, 50))
                .await
                .expect("committed");
            // Durable when acknowledged: the readings are there to read.
            let q = pdm_core::RangeQuery {
                machine: MachineKey::new("m").expect("key"),
                sensor: SensorKey::new("s").expect("key"),
                from: Timestamp::from_millis(i * 50),
                to: Timestamp::from_millis(i * 50 + 50),
                limit: 100,
            };
            assert_eq!(store.raw(&q).await.expect("raw").len(), 50);
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(stored(&s.store).await, 10_000);
    // Replays are acknowledged too, and stored once.
    sink.send_and_wait(batch(0, 10_000))
        .await
        .expect("replay committed");
    assert_eq!(stored(&s.store).await, 10_000);
    let m = s.metrics.snapshot();
    assert_eq!((m.readings_stored, m.readings_duplicate), (10_000, 10_000));
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_writes_and_acknowledges_what_is_queued() {
    let s = setup(EngineConfig::default(), StoreOptions::default()).await;
    let sink = s.engine.sink();
    let mut committed = Vec::new();
    for i in 0..100 {
        let (ack, c) = Ack::new();
        sink.send(batch(i * 10, 10), ack).await.expect("queued");
        committed.push(c);
    }
    s.engine.shutdown().await;
    for c in committed {
        c.wait()
            .await
            .expect("acknowledged before shutdown returned");
    }
    assert_eq!(stored(&s.store).await, 1_000);
    // After shutdown the engine takes nothing more.
    assert!(sink.send(batch(5_000, 1), Ack::none()).await.is_err());
}

/// Holds SQLite's write lock from another connection until dropped.
struct WriteLock(sqlx::SqliteConnection);

async fn lock_database(url: &str) -> WriteLock {
    let mut conn = sqlx::SqliteConnection::connect(url)
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("lock");
    WriteLock(conn)
}

impl WriteLock {
    async fn release(mut self) {
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("unlock");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_slows_producers_and_a_locked_database_is_retried() {
    let config = EngineConfig {
        queue_capacity: 2,
        max_retry_delay_ms: 100,
        ..EngineConfig::default()
    };
    let mut opts = StoreOptions::default();
    opts.busy_timeout_ms = 50;
    let s = setup(config, opts).await;
    let lock = lock_database(&s.url).await;
    let sink = s.engine.sink();
    // The writer takes the first batch and cannot commit it; two more then fill the queue,
    // and a fourth send must wait.
    let mut committed = Vec::new();
    for i in 0..3 {
        let (ack, c) = Ack::new();
        sink.send(batch(i * 10, 10), ack).await.expect("queued");
        committed.push(c);
        if i == 0 {
            // Let the writer take it and start retrying.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let (ack, fourth) = Ack::new();
    let blocked =
        tokio::time::timeout(Duration::from_millis(500), sink.send(batch(30, 10), ack)).await;
    assert!(blocked.is_err(), "a send into a full queue must wait");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.metrics.snapshot().write_errors > 0,
        "the locked database made writes fail"
    );
    assert_eq!(
        stored(&s.store).await,
        0,
        "nothing is stored while the lock is held"
    );
    lock.release().await;
    for c in committed {
        c.wait()
            .await
            .expect("acknowledged once the retry succeeded");
    }
    let (ack, c) = Ack::new();
    sink.send(batch(30, 10), ack).await.expect("room again");
    c.wait().await.expect("committed");
    drop(fourth);
    assert_eq!(stored(&s.store).await, 40);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_learns_what_another_worker_registered() {
    use pdm_core::{InputContext, NewMachine, NewSensor, Origin};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    // Two workers on one database, auto-registration off.
    let here = Catalog::load(store.clone(), false).await.expect("catalog");
    let there = Catalog::load(store.clone(), false).await.expect("catalog");
    let pump = MachineKey::new("pump-9").expect("key");
    let temp = SensorKey::new("temperature").expect("key");
    there
        .create_machine(&NewMachine {
            key: pump.clone(),
            name: None,
            kind: None,
            description: None,
        })
        .await
        .expect("machine");
    there
        .create_sensor(
            &pump,
            &NewSensor {
                key: temp.clone(),
                unit: None,
                min: None,
                max: None,
            },
        )
        .await
        .expect("sensor");
    // Right after loading, a miss does not reload (rate limit) ...
    let reading = Reading {
        machine: pump.clone(),
        sensor: temp,
        ts: Timestamp::from_millis(1),
        value: 1.0,
    };
    let ctx = InputContext {
        origin: Origin::Other,
        channel: "test",
        payload: b"",
    };
    let (kept, dead) = here.admit(vec![reading.clone()], ctx).await.expect("admit");
    assert_eq!((kept.len(), dead.len()), (0, 1));
    assert!(!here.knows_machine(&pump).await.expect("lookup"));
    // ... but once the interval has passed, it does, and the readings are admitted.
    tokio::time::sleep(pdm_core::catalog::REFRESH_ON_MISS_INTERVAL).await;
    assert!(here.knows_machine(&pump).await.expect("lookup"));
    let (kept, dead) = here.admit(vec![reading], ctx).await.expect("admit");
    assert_eq!((kept.len(), dead.len()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admit_keeps_input_order_in_both_outputs() {
    use pdm_core::{InputContext, NewSensor, Origin, RejectKind};
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("pdm.db").display());
    let store = pdm_store::connect(&url, &StoreOptions::default())
        .await
        .expect("connect");
    let m = MachineKey::new("m").expect("key");
    store.ensure_machine(&m).await.expect("machine");
    let catalog = Catalog::load(store.clone(), false).await.expect("catalog");
    let bounded = NewSensor {
        key: SensorKey::new("t").expect("key"),
        unit: None,
        min: Some(0.0),
        max: Some(10.0),
    };
    catalog.create_sensor(&m, &bounded).await.expect("sensor");
    let reading = |machine: &str, sensor: &str, ts: i64, value: f64| Reading {
        machine: MachineKey::new(machine).expect("key"),
        sensor: SensorKey::new(sensor).expect("key"),
        ts: Timestamp::from_millis(ts),
        value,
    };
    let input = vec![
        reading("m", "t", 1, 1.0),
        reading("ghost", "t", 2, 1.0),
        reading("m", "t", 3, 2.0),
        reading("m", "t", 4, 99.0),
        reading("m", "nope", 5, 1.0),
        reading("m", "t", 6, 3.0),
    ];
    let ctx = InputContext {
        origin: Origin::Other,
        channel: "test",
        payload: b"",
    };
    let (kept, dead) = catalog.admit(input, ctx).await.expect("admit");
    let kept_ts: Vec<i64> = kept.iter().map(|r| r.ts.as_millis()).collect();
    assert_eq!(kept_ts, [1, 3, 6]);
    let kinds: Vec<RejectKind> = dead.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            RejectKind::UnknownMachine,
            RejectKind::OutOfRange,
            RejectKind::UnknownSensor
        ]
    );
}

fn letter(received_at: Timestamp, reason: &str) -> pdm_core::DeadLetter {
    pdm_core::DeadLetter {
        received_at,
        origin: pdm_core::Origin::Http,
        channel: "/api/v1/machines/m/telemetry".into(),
        machine: Some("m".into()),
        kind: pdm_core::RejectKind::Malformed,
        reason: reason.into(),
        payload_head: vec![],
    }
}

async fn store_letters(engine: &Engine, letters: Vec<pdm_core::DeadLetter>) {
    engine
        .sink()
        .send_and_wait(Batch {
            readings: vec![],
            dead_letters: letters,
        })
        .await
        .expect("stored");
}

/// Waits until the engine has pruned `n` letters in all, then lists what is left.
async fn after_pruning(s: &Setup, n: u64) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while s.metrics.snapshot().dead_letters_pruned < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pruned {} of {n} after 20 s",
            s.metrics.snapshot().dead_letters_pruned
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = pdm_core::DeadLetterQuery {
        before: None,
        limit: 100,
        ..pdm_core::DeadLetterQuery::default()
    };
    let left = s.store.dead_letters(&all).await.expect("list");
    left.into_iter().map(|d| d.letter.reason).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_past_their_age_or_count_are_pruned_every_interval() {
    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: 1,
            dead_letters_max_age_days: 1,
            dead_letters_max_count: 3,
            readings_max_age_days: 0,
            predictions_max_age_days: 0,
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    let now = Timestamp::now();
    let two_days_ago = now.add_millis(-2 * 86_400_000);
    // Fresh letters first, then old ones: the old have the highest ids, so only the age limit
    // can remove them (the count limit alone would keep them as the newest).
    let mut letters: Vec<_> = (0..4).map(|i| letter(now, &format!("fresh {i}"))).collect();
    letters.extend((0..5).map(|i| letter(two_days_ago, &format!("old {i}"))));
    store_letters(&s.engine, letters).await;
    assert_eq!(
        after_pruning(&s, 6).await,
        ["fresh 3", "fresh 2", "fresh 1"],
        "age, then count"
    );
    // Letters arriving later are pruned by a later pass.
    store_letters(
        &s.engine,
        vec![letter(now, "fresh 4"), letter(now, "fresh 5")],
    )
    .await;
    assert_eq!(
        after_pruning(&s, 8).await,
        ["fresh 5", "fresh 4", "fresh 3"]
    );
    assert_eq!(s.metrics.snapshot().retention_errors, 0);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_the_next_pruning_pass() {
    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: pdm_core::retention::MAX_INTERVAL_S,
            ..pdm_core::Retention::default()
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    store_letters(&s.engine, vec![letter(Timestamp::now(), "kept")]).await;
    tokio::time::timeout(Duration::from_secs(10), s.engine.shutdown())
        .await
        .expect("shutdown returns without waiting a year");
    let all = pdm_core::DeadLetterQuery {
        before: None,
        limit: 10,
        ..pdm_core::DeadLetterQuery::default()
    };
    assert_eq!(s.store.dead_letters(&all).await.expect("list").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_past_their_age_are_pruned_only_when_asked() {
    let now = Timestamp::now().as_millis();
    let day = 86_400_000;
    // Ten readings a day apart, the newest an hour from now (an hour of slack for the pass's own
    // clock: "3 days old" is then 2 days 23 hours old).
    let ten_days = |s: &Setup| {
        let mut b = batch(0, 10);
        for (i, r) in b.readings.iter_mut().enumerate() {
            r.ts = Timestamp::from_millis(now - (9 - i as i64) * day + day / 24);
        }
        let sink = s.engine.sink();
        async move { sink.send_and_wait(b).await.expect("stored") }
    };

    // By default readings are kept, whatever their age: a pass that has run after they were
    // stored (it pruned the old dead letter written after them) left them alone.
    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: 1,
            ..pdm_core::Retention::default()
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    ten_days(&s).await;
    let sixty_days_ago = Timestamp::from_millis(now - 60 * day);
    store_letters(&s.engine, vec![letter(sixty_days_ago, "old")]).await;
    assert!(after_pruning(&s, 1).await.is_empty());
    assert_eq!(stored(&s.store).await, 10);
    assert_eq!(s.metrics.snapshot().readings_pruned, 0);
    s.engine.shutdown().await;

    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: 1,
            readings_max_age_days: 3,
            ..pdm_core::Retention::default()
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    ten_days(&s).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while s.metrics.snapshot().readings_pruned < 6 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Older than three days: the first six (9 to 4 days old) go; 3, 2, 1 and 0 days old stay.
    assert_eq!(stored(&s.store).await, 4);
    assert_eq!(s.metrics.snapshot().readings_pruned, 6);
    assert_eq!(s.metrics.snapshot().retention_errors, 0);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictions_past_their_age_are_pruned_when_asked() {
    let now = Timestamp::now().as_millis();
    let day = 86_400_000;
    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: 1,
            predictions_max_age_days: 3,
            ..pdm_core::Retention::default()
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    let machine = MachineKey::new("m").expect("key");
    let model = s
        .store
        .create_model(&pdm_core::NewModel {
            machine: machine.clone(),
            kind: "pipeline".into(),
            trained_from: Timestamp::from_millis(0),
            trained_to: Timestamp::from_millis(1),
            parameters: "{}".into(),
            metrics: "{}".into(),
            bytes: vec![],
        })
        .await
        .expect("model");
    // Ten predictions a day apart, the newest an hour from now (slack for the pass's clock).
    let predictions: Vec<_> = (0..10)
        .map(|i| pdm_core::Prediction {
            machine: machine.clone(),
            ts: Timestamp::from_millis(now - (9 - i) * day + day / 24),
            model: model.id,
            score: 0.1,
            threshold: 0.5,
            anomalous: false,
            contributions: vec![],
            health: None,
            rul_s: None,
        })
        .collect();
    assert_eq!(
        s.store
            .write_predictions(&predictions)
            .await
            .expect("written"),
        10
    );
    let all = pdm_core::PredictionQuery {
        machine: machine.clone(),
        from: Timestamp::from_millis(i64::MIN),
        to: Timestamp::from_millis(i64::MAX),
        limit: 100,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = s.store.predictions(&all).await.expect("read").len();
        if left == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not pruned after 20 s ({left} left)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.metrics.snapshot().retention_errors, 0);
    s.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_dropped_without_shutdown_stops_pruning() {
    let config = EngineConfig {
        retention: pdm_core::Retention {
            interval_s: 1,
            ..pdm_core::Retention::default()
        },
        ..EngineConfig::default()
    };
    let s = setup(config, StoreOptions::default()).await;
    let Setup {
        _dir,
        store,
        engine,
        metrics,
        ..
    } = s;
    drop(engine);
    let old = Timestamp::now().add_millis(-60 * 86_400_000);
    store
        .write(&Batch {
            readings: vec![],
            dead_letters: vec![letter(old, "written after the drop")],
        })
        .await
        .expect("write");
    // Two intervals: a task still running would have pruned the letter.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let all = pdm_core::DeadLetterQuery {
        before: None,
        limit: 10,
        ..pdm_core::DeadLetterQuery::default()
    };
    assert_eq!(store.dead_letters(&all).await.expect("list").len(), 1);
    assert_eq!(metrics.snapshot().dead_letters_pruned, 0);
}
