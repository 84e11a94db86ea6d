//! Kill -9 during a storm of alarm transitions, on SQLite and PostgreSQL: the server binary (a
//! child process) takes readings over HTTP that swing across sensor limits on many machines
//! while an operator task acknowledges every alarm that awaits it, so alarms raise, return,
//! get acknowledged and clear continually; a real receiver in the test records every webhook
//! delivery and answers 500 to the first attempt of a third of them. The server is killed
//! with SIGKILL mid-storm and restarted on the same database; once it has drained:
//!
//! - no machine and rule ever had two open alarms (the database's episodes do not overlap, and
//!   no list of open alarms the API answered held two);
//! - every alarm event stored has an outbox row and reached the receiver with its content (no
//!   outbox event lost);
//! - each `webhook-id` names one event (same body on every attempt, ids 1:1 with events), the
//!   deliveries sent again after the crash included.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::receiver::{verify_signature, Receiver};
use common::{free_port, http, now_ms, poll_json, Killed};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row, SqliteConnection};

const MACHINES: usize = 16;
/// Readings per machine in the storm; the value alternates below and above the limit.
const READINGS: i64 = 120;
/// Seconds of reading time between two readings of a machine: a raise/clear cycle takes two,
/// so three cycles never start within the 60 s that would latch a chattering alarm.
const STEP_MS: i64 = 40_000;
const RULE: &str = "swing";
const LIMIT: f64 = 50.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_alarm_storm_duplicates_no_alarm_and_loses_no_event_sqlite() {
    storm(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_an_alarm_storm_duplicates_no_alarm_and_loses_no_event_postgres() {
    storm(true).await;
}

/// Where the server keeps its data: the SQLite file, or a PostgreSQL database.
enum Db {
    Sqlite(std::path::PathBuf),
    Pg(String),
}

/// An alarm row, read from the database directly.
#[derive(Debug)]
struct AlarmRow {
    id: i64,
    machine: String,
    rule: String,
    opened_at: i64,
    closed_at: Option<i64>,
}

/// An alarm event with its outbox row, read from the database directly.
#[derive(Debug)]
struct EventRow {
    alarm_id: i64,
    kind: String,
    at: i64,
    actor: String,
    severity: String,
    outbox: Vec<i64>,
}

const ALARMS_SQL: &str = "SELECT a.id, m.key, a.rule_id, {opened}, {closed} \
     FROM alarms a JOIN machines m ON m.id = a.machine_id ORDER BY a.id";
const EVENTS_SQL: &str = "SELECT e.id, e.alarm_id, e.kind, {at}, e.actor, e.severity, o.id \
     FROM alarm_events e LEFT JOIN outbox o ON o.event_id = e.id ORDER BY e.id, o.id";
const PENDING_SQL: &str = "SELECT \
     (SELECT count(*) FROM outbox WHERE delivered_at IS NULL), \
     (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending')";

impl Db {
    fn sql(&self, template: &str) -> String {
        let ms = |c: &str| match self {
            Db::Sqlite(_) => c.to_owned(),
            Db::Pg(_) => format!("(extract(epoch from {c}) * 1000)::bigint"),
        };
        template
            .replace("{opened}", &ms("a.opened_at"))
            .replace("{closed}", &ms("a.closed_at"))
            .replace("{at}", &ms("e.at"))
    }

    async fn rows(&self, template: &str) -> Vec<Vec<Option<String>>> {
        // Every column as text (or NULL): one reader for both backends.
        macro_rules! read {
            ($conn:ty, $url:expr, $sql:expr) => {{
                let mut c = <$conn>::connect($url)
                    .await
                    .expect("connect to the database");
                let rows = sqlx::query($sql).fetch_all(&mut c).await.expect($sql);
                let _ = c.close().await;
                rows.iter()
                    .map(|r| {
                        (0..r.len())
                            .map(|i| match r.try_get::<Option<i64>, _>(i) {
                                Ok(v) => v.map(|v| v.to_string()),
                                Err(_) => r.try_get::<Option<String>, _>(i).expect("a text column"),
                            })
                            .collect()
                    })
                    .collect()
            }};
        }
        let sql = self.sql(template);
        match self {
            Db::Sqlite(path) => read!(
                SqliteConnection,
                &format!("sqlite://{}?mode=ro", path.display()),
                &sql
            ),
            Db::Pg(url) => read!(PgConnection, url, &sql),
        }
    }

    async fn alarms(&self) -> Vec<AlarmRow> {
        self.rows(ALARMS_SQL)
            .await
            .into_iter()
            .map(|r| AlarmRow {
                id: num(&r[0]),
                machine: r[1].clone().expect("key"),
                rule: r[2].clone().expect("rule"),
                opened_at: num(&r[3]),
                closed_at: r[4].as_deref().map(|v| v.parse().expect("ms")),
            })
            .collect()
    }

    async fn events(&self) -> Vec<EventRow> {
        let mut out: Vec<(i64, EventRow)> = Vec::new();
        for r in self.rows(EVENTS_SQL).await {
            let id = num(&r[0]);
            let outbox = r[6]
                .as_deref()
                .map(|v| v.parse::<i64>().expect("outbox id"));
            if let Some((last, e)) = out.last_mut() {
                if *last == id {
                    e.outbox.extend(outbox);
                    continue;
                }
            }
            out.push((
                id,
                EventRow {
                    alarm_id: num(&r[1]),
                    kind: r[2].clone().expect("kind"),
                    at: num(&r[3]),
                    actor: r[4].clone().expect("actor"),
                    severity: r[5].clone().expect("severity"),
                    outbox: outbox.into_iter().collect(),
                },
            ));
        }
        out.into_iter().map(|(_, e)| e).collect()
    }

    /// (undispatched outbox rows, pending deliveries).
    async fn pending(&self) -> (i64, i64) {
        let r = &self.rows(PENDING_SQL).await[0];
        (num(&r[0]), num(&r[1]))
    }
}

fn num(v: &Option<String>) -> i64 {
    v.as_deref().expect("a value").parse().expect("an integer")
}

fn start_server(config: &Path) -> Killed {
    let child = common::with_admin(&mut Command::new(env!("CARGO_BIN_EXE_pdm-server")))
        .arg("--config")
        .arg(config)
        .arg("serve")
        .env(
            "PDM_LOG",
            std::env::var("PDM_CRASH_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .spawn()
        .expect("start pdm-server");
    Killed(child)
}

/// The value of reading `i`: below the limit on even readings, above it on odd ones (far
/// above every fourth: an alarm raised at the escalated severity).
fn value(i: i64) -> f64 {
    match i % 4 {
        1 => 60.0,
        3 => 80.0,
        _ => 40.0,
    }
}

/// Posts one reading, again and again until the server takes it (it may be down).
async fn post_reading(addr: &str, machine: &str, ts: i64, v: f64) {
    let body = json!([{"ts": ts, "values": {"temp": v}}]).to_string();
    let path = format!("/api/v1/machines/{machine}/telemetry");
    loop {
        match http(addr, "POST", &path, Some(&body)).await {
            Some((202, _)) => return,
            Some((st, answer)) if st < 500 => panic!("POST {path}: {st} {answer}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What the operator task saw.
#[derive(Default)]
struct Operator {
    acks: AtomicUsize,
    /// Lists of open alarms that held two of one machine and rule (must stay empty).
    duplicates: Mutex<Vec<Value>>,
}

/// Acknowledges every open alarm awaiting it until `stop`, checking each list it reads.
async fn operate(addr: String, op: Arc<Operator>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Some((200, list)) =
            http(&addr, "GET", "/api/v1/alarms?open=true&limit=1000", None).await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let alarms = list["alarms"].as_array().cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for a in &alarms {
            let key = (a["machine"].to_string(), a["rule"].to_string());
            if !seen.insert(key) {
                op.duplicates.lock().expect("lock").push(list.clone());
            }
        }
        for a in alarms {
            let state = a["state"].as_str().unwrap_or_default();
            if state == "active_unacknowledged" || state == "returned_unacknowledged" {
                let path = format!("/api/v1/alarms/{}/ack", a["id"]);
                if let Some((200, _)) =
                    http(&addr, "POST", &path, Some(r#"{"by":"operator"}"#)).await
                {
                    op.acks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn storm(pg: bool) {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let databases = if pg {
        let Some(d) = pdm_testkit::pg::TestDatabases::from_env() else {
            return;
        };
        Some(d)
    } else {
        None
    };
    let db = match &databases {
        Some(d) => Db::Pg(d.create("pdm_alarm_crash").await.expect("a database")),
        None => Db::Sqlite(data_dir.join("pdm.db")),
    };
    let addr = format!("127.0.0.1:{}", free_port());
    let database_url = match &db {
        Db::Pg(url) => format!("database_url = {}\n", toml_str(url)),
        Db::Sqlite(_) => String::new(),
    };
    // Reading times run ahead of the wall clock, so that an acknowledgement (stamped now) is
    // never later than the readings after it. The owners' queues are small, so that batches
    // are skipped for detection under the storm: the alarm stage must read them back from the
    // store (or an alarm would miss its clear and stay open).
    let config = dir.path().join("pdm.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {}\n{database_url}http = \"{addr}\"\nauto_register = true\n\
             [codec]\nmax_future_secs = 0\n\
             [live]\nseed_alarm_defaults = false\nauto_train_after_s = 0\n\
             queue_capacity = 2\n\
             [webhooks]\nallow_private_destinations = true\ntimeout_ms = 2000\n\
             retry_schedule_ms = [200, 200, 200, 200, 200, 200, 200]\n",
            toml_str(&data_dir.display().to_string())
        ),
    )
    .expect("write the config");

    let mut server = start_server(&config);
    poll_json(&addr, "/health/ready", 60, |_| true).await;
    let (st, body) = http(
        &addr,
        "PUT",
        &format!("/api/v1/alarm-rules/{RULE}"),
        Some(
            &json!({"severity": "medium", "kind": {"type": "sensor_limit", "sensor": "temp",
                "above": LIMIT, "deadband": 1.0, "on_delay_ms": 0, "off_delay_ms": 0},
                "escalation": [{"by": "magnitude", "at_least": 20.0, "severity": "high"}]})
            .to_string(),
        ),
    )
    .await
    .expect("PUT rule");
    assert!((200..300).contains(&st), "{st}: {body}");
    // A third of the events fail their first attempt (500) and are retried.
    let (receiver_url, receiver) = Receiver::start(
        |id| {
            id.strip_prefix("msg_")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|n| n % 3 == 0)
        },
        Duration::from_millis(30),
    )
    .await;
    let (st, hook) = http(
        &addr,
        "POST",
        "/api/v1/webhooks",
        Some(&json!({"url": receiver_url}).to_string()),
    )
    .await
    .expect("POST webhook");
    assert_eq!(st, 201, "{hook}");
    let secret = hook["secret"].as_str().expect("secret").to_owned();

    // The storm: every machine's readings in order, from its own task; the operator acks.
    let base = (now_ms() / 1000 + 60) * 1000;
    // Posters hold at two thirds of their readings until the kill, so a slow machine (few
    // deliveries yet) still kills mid-storm rather than after it.
    let posted = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut posters = Vec::new();
    for m in 0..MACHINES {
        let (addr, posted, killed) = (addr.clone(), posted.clone(), killed.clone());
        posters.push(tokio::spawn(async move {
            let machine = format!("storm-{m:02}");
            for i in 0..READINGS {
                while i == READINGS * 2 / 3 && !killed.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                post_reading(&addr, &machine, base + i * STEP_MS, value(i)).await;
                posted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    let op = Arc::new(Operator::default());
    let stop = Arc::new(AtomicBool::new(false));
    let operator = tokio::spawn(operate(addr.clone(), op.clone(), stop.clone()));

    // Kill -9 once the storm is well under way: deliveries arriving, readings still to come.
    let total = MACHINES * READINGS as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while receiver.count() < 50 || posted.load(Ordering::Relaxed) < total / 3 {
        assert!(
            Instant::now() < deadline,
            "no storm: {} deliveries, {} readings",
            receiver.count(),
            posted.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let counters_at_kill = live_counters(&addr).await;
    server.kill9();
    killed.store(true, Ordering::Relaxed);
    let at_kill = receiver.count();
    let posted_at_kill = posted.load(Ordering::Relaxed);
    let events_at_kill = db.events().await.len();
    eprintln!(
        "killed with {posted_at_kill}/{total} readings taken, {events_at_kill} alarm events \
         stored, {at_kill} deliveries received"
    );
    assert!(
        posted_at_kill < total * 3 / 4,
        "the storm was nearly over at the kill; the test proves little"
    );

    // Restart on the same database; the storm goes on, then every machine ends below the limit
    // and the operator acknowledges what is left, until no alarm is open.
    server = start_server(&config);
    for p in posters {
        p.await.expect("poster");
    }
    for m in 0..MACHINES {
        post_reading(
            &addr,
            &format!("storm-{m:02}"),
            base + READINGS * STEP_MS,
            40.0,
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let open = poll_json(&addr, "/api/v1/alarms?open=true&limit=1000", 10, |_| true).await;
        let open = open["alarms"].as_array().cloned().unwrap_or_default();
        if open.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let mut detail = Vec::new();
            for a in &open {
                let full =
                    poll_json(&addr, &format!("/api/v1/alarms/{}", a["id"]), 10, |_| true).await;
                let latest = poll_json(
                    &addr,
                    &format!(
                        "/api/v1/machines/{}/latest",
                        a["machine"].as_str().unwrap_or("?")
                    ),
                    10,
                    |_| true,
                )
                .await;
                detail.push(format!("{full}\n  latest {latest}"));
            }
            let states = db
                .rows("SELECT id, state_json FROM alarms WHERE closed_at IS NULL")
                .await;
            let metrics = live_counters(&addr).await;
            panic!(
                "alarms still open after 120 s (readings from {base}):\n{}\nstored: {states:?}\n\
                 live counters: {metrics:?}",
                detail.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    operator.await.expect("operator");
    // Drained: nothing left in the outbox or pending.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (outbox, pending) = db.pending().await;
        if outbox == 0 && pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not drained: {outbox} outbox rows undispatched, {pending} deliveries pending"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let counters = live_counters(&addr).await;
    for c in [&counters_at_kill, &counters] {
        let skipped = c.get("pdm_live_readings_skipped_total").copied();
        let caught_up = c.get("pdm_live_alarm_readings_caught_up_total").copied();
        eprintln!("live counters: skipped {skipped:?}, read back for the alarms {caught_up:?}");
        if skipped.unwrap_or(0.0) > 0.0 {
            assert!(
                caught_up.unwrap_or(0.0) > 0.0,
                "batches were skipped and none read back for the alarms: {c:?}"
            );
        }
    }

    // 1. At most one open alarm per machine and rule, ever: each machine and rule's episodes
    //    follow one another, all closed now; every list of open alarms held one of each.
    let alarms = db.alarms().await;
    let events = db.events().await;
    assert!(
        op.duplicates.lock().expect("lock").is_empty(),
        "the API listed two open alarms of one machine and rule: {:?}",
        op.duplicates.lock().expect("lock")
    );
    let mut episodes: BTreeMap<(String, String), Vec<&AlarmRow>> = BTreeMap::new();
    for a in &alarms {
        episodes
            .entry((a.machine.clone(), a.rule.clone()))
            .or_default()
            .push(a);
    }
    assert_eq!(episodes.len(), MACHINES, "every machine alarmed");
    for ((machine, rule), list) in &episodes {
        for pair in list.windows(2) {
            let closed = pair[0].closed_at.unwrap_or_else(|| {
                panic!(
                    "{machine}/{rule}: alarm {} still open when {} opened",
                    pair[0].id, pair[1].id
                )
            });
            if closed > pair[1].opened_at {
                for e in events
                    .iter()
                    .filter(|e| e.alarm_id == pair[0].id || e.alarm_id == pair[1].id)
                {
                    eprintln!("  {e:?}");
                }
            }
            assert!(
                closed <= pair[1].opened_at,
                "{machine}/{rule}: alarm {} closed at {closed}, after {} opened at {}",
                pair[0].id,
                pair[1].id,
                pair[1].opened_at
            );
        }
        assert!(
            list.iter().all(|a| a.closed_at.is_some()),
            "{machine}: open at the end"
        );
    }
    let mut kinds_by_alarm: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for e in &events {
        kinds_by_alarm.entry(e.alarm_id).or_default().push(&e.kind);
    }
    for a in &alarms {
        let kinds = &kinds_by_alarm[&a.id];
        assert_eq!(kinds.first(), Some(&"raised"), "alarm {}: {kinds:?}", a.id);
        assert_eq!(kinds.last(), Some(&"cleared"), "alarm {}: {kinds:?}", a.id);
        let boundaries = kinds
            .iter()
            .filter(|k| **k == "raised" || **k == "cleared")
            .count();
        assert_eq!(boundaries, 2, "alarm {}: one episode, {kinds:?}", a.id);
    }
    // The API agrees with the database (every alarm, paged).
    let mut api_ids = Vec::new();
    let mut path = "/api/v1/alarms?limit=1000".to_owned();
    loop {
        let page = poll_json(&addr, &path, 10, |_| true).await;
        api_ids.extend(
            page["alarms"]
                .as_array()
                .expect("alarms")
                .iter()
                .map(|a| a["id"].as_i64().expect("id")),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/alarms?limit=1000&cursor={next}"),
            None => break,
        }
    }
    api_ids.sort_unstable();
    assert_eq!(api_ids, alarms.iter().map(|a| a.id).collect::<Vec<_>>());

    // 2. No outbox event lost: every stored event has one outbox row, and the receiver got it
    //    under that row's webhook-id, with the event's content.
    let received = receiver.received();
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for d in &received {
        verify_signature(&secret, d).unwrap_or_else(|e| panic!("delivery {}: {e}", d.id));
        // 3. Same webhook-id, same event: every attempt carries the same body.
        let first = *bodies.entry(&d.id).or_insert(&d.body);
        assert_eq!(first, &d.body[..], "{} sent with two bodies", d.id);
    }
    let mut expected_ids = BTreeSet::new();
    for e in &events {
        assert_eq!(e.outbox.len(), 1, "event {e:?}: one outbox row");
        let id = format!("msg_{}", e.outbox[0]);
        let body = bodies
            .get(id.as_str())
            .unwrap_or_else(|| panic!("event {e:?} ({id}) never reached the receiver"));
        let j: Value = serde_json::from_slice(body).expect("json");
        let data = &j["data"];
        assert_eq!(j["type"], format!("alarm.{}", e.kind), "{id}: {j}");
        assert_eq!(data["alarm_id"].as_i64(), Some(e.alarm_id), "{id}: {j}");
        assert_eq!(data["kind"], e.kind.as_str(), "{id}: {j}");
        assert_eq!(data["at"].as_i64(), Some(e.at), "{id}: {j}");
        assert_eq!(data["actor"], e.actor.as_str(), "{id}: {j}");
        assert_eq!(data["severity"], e.severity.as_str(), "{id}: {j}");
        expected_ids.insert(id);
    }
    // ... and nothing else: ids 1:1 with events.
    let got_ids: BTreeSet<String> = bodies.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        got_ids, expected_ids,
        "webhook-ids received = the events' ids"
    );

    // 3. Deliveries sent again after the crash kept their webhook-id (checked above: same id,
    //    same body); there were some: requests in flight at the kill, or answered 500 before it.
    let before: BTreeSet<&str> = received[..at_kill].iter().map(|d| d.id.as_str()).collect();
    let again: BTreeSet<&str> = received[at_kill..]
        .iter()
        .map(|d| d.id.as_str())
        .filter(|id| before.contains(id))
        .collect();
    assert!(
        !again.is_empty(),
        "no delivery was sent both before and after the kill; the test proves nothing about ids"
    );
    let retried = received.iter().filter(|d| d.attempt > 1).count();
    let failed_first = received.iter().filter(|d| d.status == 500).count();
    assert!(failed_first > 0 && retried >= failed_first);

    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &events {
        *kinds.entry(e.kind.as_str()).or_default() += 1;
    }
    eprintln!(
        "alarm storm ({}): {} alarms, {} events {kinds:?}, {} acks by the operator, {} requests \
         at the receiver ({failed_first} answered 500, {retried} repeats), {} ids sent before \
         and after the kill, {:.1} s",
        if pg { "PostgreSQL" } else { "SQLite" },
        alarms.len(),
        events.len(),
        op.acks.load(Ordering::Relaxed),
        received.len(),
        again.len(),
        started.elapsed().as_secs_f64()
    );
    server.kill9();
    if let Some(d) = databases {
        d.drop_all().await;
    }
}

/// The live path's counters from `GET /metrics`, by name.
async fn live_counters(addr: &str) -> BTreeMap<String, f64> {
    let Some((200, text)) = common::http_text(addr, "GET", "/metrics", None).await else {
        return BTreeMap::new();
    };
    text.lines()
        .filter(|l| l.starts_with("pdm_live_"))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string")
}
