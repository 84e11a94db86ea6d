//! Benchmarks of webhook delivery (issue 10).
//!
//! - `throughput`: a backlog of `--events` alarm events (stored as the alarm engine stores
//!   them: one transition per event, its outbox row in the same transaction) is delivered by
//!   the real dispatcher and the server's HTTP sender to a local receiver that verifies every
//!   signature. Measured beside the peer, the same sender POSTing the same signed bodies
//!   straight from memory with the same concurrency (no store, no retries): the ratio is the
//!   price of durability.
//! - `recovery`: events arrive at `--rate` per second while the receiver goes down (its port
//!   closed: connections refused) for `--down-secs`, then comes back. Reports when every event
//!   had arrived after the receiver returned, whether every event arrived once and whether the
//!   events of each alarm arrived in order.
//!
//! SQLite in a temporary directory by default; `--postgres-url` (or `PDM_TEST_DATABASE_URL`)
//! measures PostgreSQL too, on a fresh database dropped after.
//!
//! `cargo run --release -p benches --bin webhook_bench -- throughput --events 5000`
//! `cargo run --release -p benches --bin webhook_bench -- recovery --down-secs 60 --rate 50`

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use clap::{Parser, Subcommand};
use pdm_core::alarm::{AlarmEvent, AlarmEventKind, Severity, StateName};
use pdm_core::store::{NewWebhook, Store, StoredAlarm};
use pdm_core::webhook::{
    signing, Dispatcher, DispatcherConfig, SystemClock, WebhookRequest, WebhookSender,
};
use pdm_core::{AlarmTransition, MachineKey, Timestamp};
use pdm_server::webhook_sender::HttpSender;
use pdm_store::StoreOptions;
use tokio::task::JoinSet;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of pdm's webhook delivery")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
    /// PostgreSQL server to measure as well (a fresh database is created on it and dropped).
    #[arg(long, env = "PDM_TEST_DATABASE_URL", global = true)]
    postgres_url: Option<String>,
    /// Measure SQLite only, even when a PostgreSQL URL is known.
    #[arg(long, global = true)]
    sqlite_only: bool,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Deliver a stored backlog, beside the sender posting from memory.
    Throughput {
        /// Alarm events in the backlog.
        #[arg(long, default_value_t = 5_000)]
        events: usize,
        /// Alarms they belong to (events of one alarm go out in order, one at a time).
        #[arg(long, default_value_t = 500)]
        alarms: usize,
        /// Attempts in flight (`webhooks.concurrency`), for both.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// Events keep coming while the receiver is down, then it comes back.
    Recovery {
        /// Seconds the receiver is down.
        #[arg(long, default_value_t = 60)]
        down_secs: u64,
        /// Alarm events per second, throughout.
        #[arg(long, default_value_t = 50)]
        rate: u64,
        /// Alarms they belong to.
        #[arg(long, default_value_t = 100)]
        alarms: usize,
        /// Seconds of events before the receiver goes down, and after it is back.
        #[arg(long, default_value_t = 10)]
        margin_secs: u64,
    },
}

/// What the receiver got: every verified delivery, in arrival order.
#[derive(Default)]
struct Received {
    /// (outbox id from `webhook-id`, alarm id, arrival).
    got: Vec<(i64, i64, Instant)>,
    bad_signatures: u64,
}

struct Receiver {
    secret: String,
    received: Mutex<Received>,
}

async fn receive(
    State(r): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let now = Timestamp::now().as_millis() / 1_000;
    let ok = signing::verify(
        &r.secret,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        now,
    )
    .is_ok();
    let outbox = h("webhook-id")
        .strip_prefix("msg_")
        .and_then(|s| s.parse::<i64>().ok());
    let alarm = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["data"]["alarm_id"].as_i64());
    let mut got = r.received.lock().expect("receiver lock");
    match (ok, outbox, alarm) {
        (true, Some(o), Some(a)) => {
            got.got.push((o, a, Instant::now()));
            StatusCode::NO_CONTENT
        }
        _ => {
            got.bad_signatures += 1;
            StatusCode::BAD_REQUEST
        }
    }
}

/// The receiver, serving on `addr` until the returned task is aborted (its listener closes).
async fn serve(addr: SocketAddr, r: Arc<Receiver>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the receiver on {addr}"))?;
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(r);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    }))
}

/// The alarms of the run and the next version of each.
struct Alarms {
    open: Vec<StoredAlarm>,
    machine: MachineKey,
}

impl Alarms {
    async fn open(store: &Arc<dyn Store>, n: usize) -> anyhow::Result<Alarms> {
        let machine = MachineKey::new("bench-1")?;
        store.ensure_machine(&machine).await?;
        let mut open = Vec::with_capacity(n);
        for i in 0..n {
            let t = transition(
                &machine,
                &format!("rule-{i}"),
                None,
                0,
                AlarmEventKind::Raised,
            );
            open.push(store.record_transition(&t).await?);
        }
        Ok(Alarms { open, machine })
    }

    /// One more event on alarm `i` (escalated or de-escalated, alternately).
    async fn next(&mut self, store: &Arc<dyn Store>, i: usize) -> anyhow::Result<()> {
        let a = &self.open[i];
        let kind = if a.version % 2 == 1 {
            AlarmEventKind::Escalated
        } else {
            AlarmEventKind::DeEscalated
        };
        let t = transition(&self.machine, &a.rule_id, Some(a), a.version, kind);
        self.open[i] = store.record_transition(&t).await?;
        Ok(())
    }
}

fn transition(
    machine: &MachineKey,
    rule: &str,
    alarm: Option<&StoredAlarm>,
    version: i64,
    kind: AlarmEventKind,
) -> AlarmTransition {
    let severity = if kind == AlarmEventKind::Escalated {
        Severity::Critical
    } else {
        Severity::High
    };
    AlarmTransition {
        machine: machine.clone(),
        rule_id: rule.into(),
        alarm: alarm.map(|a| a.id),
        expected_version: version,
        state: StateName::ActiveUnacked,
        severity,
        state_json: "{}".into(),
        events: vec![AlarmEvent {
            kind,
            at: Timestamp::now(),
            actor: "system".into(),
            reason: "webhook benchmark".into(),
            severity,
        }],
        closes: false,
    }
}

struct Rig {
    store: Arc<dyn Store>,
    receiver: Arc<Receiver>,
    url: String,
    addr: SocketAddr,
    label: &'static str,
    _dir: Option<tempfile::TempDir>,
}

async fn rig(url: Option<String>) -> anyhow::Result<Rig> {
    let (url, dir, label) = match url {
        Some(u) => (u, None, "PostgreSQL"),
        None => {
            let dir = tempfile::tempdir()?;
            let u = format!("sqlite://{}", dir.path().join("pdm.db").display());
            (u, Some(dir), "SQLite")
        }
    };
    let store = pdm_store::connect(&url, &StoreOptions::default()).await?;
    let secret = signing::generate_secret();
    let addr: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?
    };
    let hook_url = format!("http://{addr}/hook");
    store
        .create_webhook(&NewWebhook {
            url: hook_url.clone(),
            description: Some("webhook_bench".into()),
            secret: secret.clone(),
            filter: Default::default(),
            enabled: true,
        })
        .await?;
    Ok(Rig {
        store,
        receiver: Arc::new(Receiver {
            secret,
            received: Mutex::new(Received::default()),
        }),
        url: hook_url,
        addr,
        label,
        _dir: dir,
    })
}

fn dispatcher(rig: &Rig, concurrency: usize) -> anyhow::Result<Dispatcher> {
    let sender: Arc<dyn WebhookSender> = Arc::new(HttpSender::new(true)?);
    Ok(Dispatcher::start(
        rig.store.clone(),
        sender,
        Arc::new(SystemClock),
        DispatcherConfig {
            concurrency,
            ..DispatcherConfig::default()
        },
    ))
}

fn count(r: &Receiver) -> usize {
    r.received.lock().expect("receiver lock").got.len()
}

async fn wait_for(r: &Receiver, n: usize, limit: Duration) -> anyhow::Result<Instant> {
    let start = Instant::now();
    loop {
        if count(r) >= n {
            return Ok(Instant::now());
        }
        if start.elapsed() > limit {
            bail!("only {} of {n} events arrived in {limit:?}", count(r));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every event delivered once, each alarm's in order: (distinct events, duplicates, alarms out
/// of order).
fn check(r: &Receiver) -> (usize, usize, usize) {
    let got = r.received.lock().expect("receiver lock");
    let mut seen = HashSet::new();
    let mut last: HashMap<i64, i64> = HashMap::new();
    let mut unordered = HashSet::new();
    let mut dups = 0;
    for &(outbox, alarm, _) in &got.got {
        if !seen.insert(outbox) {
            dups += 1;
            continue;
        }
        if last.get(&alarm).is_some_and(|&prev| prev > outbox) {
            unordered.insert(alarm);
        }
        last.insert(alarm, outbox);
    }
    (seen.len(), dups, unordered.len())
}

async fn throughput(
    url: Option<String>,
    events: usize,
    alarms: usize,
    concurrency: usize,
) -> anyhow::Result<()> {
    if alarms == 0 || events < alarms {
        bail!("--events must be at least --alarms, and --alarms at least 1");
    }
    let rig = rig(url).await?;
    let server = serve(rig.addr, rig.receiver.clone()).await?;
    let made = Instant::now();
    let mut set = Alarms::open(&rig.store, alarms).await?;
    for i in 0..events - alarms {
        set.next(&rig.store, i % alarms).await?;
    }
    let stored_secs = made.elapsed().as_secs_f64();
    let rows = rig.store.pending_outbox(u32::try_from(events)?).await?;
    if rows.len() != events {
        bail!("{} outbox rows for {events} events", rows.len());
    }

    let start = Instant::now();
    let d = dispatcher(&rig, concurrency)?;
    let done = wait_for(&rig.receiver, events, Duration::from_secs(600)).await?;
    let dispatcher_secs = done.duration_since(start).as_secs_f64();
    d.shutdown().await;
    let (distinct, dups, unordered) = check(&rig.receiver);
    let bad = rig.receiver.received.lock().expect("lock").bad_signatures;

    // The peer: the same sender, the same signed bodies, from memory, as many in flight.
    let secret = rig.receiver.secret.clone();
    let requests: Vec<WebhookRequest> = rows
        .iter()
        .map(|row| {
            let body = pdm_core::webhook::alarm_payload(row)?;
            let id = pdm_core::webhook::message_id(row.id);
            let ts = Timestamp::now().as_millis() / 1_000;
            let sig = signing::signature_header(&[secret.as_str()], &id, ts, body.as_bytes())?;
            Ok(WebhookRequest {
                url: rig.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("webhook-id".into(), id),
                    ("webhook-timestamp".into(), ts.to_string()),
                    ("webhook-signature".into(), sig),
                ],
                body: body.into_bytes(),
                timeout: Duration::from_secs(15),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    rig.receiver.received.lock().expect("lock").got.clear();
    let sender = Arc::new(HttpSender::new(true)?);
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for req in requests {
        let permit = slots.clone().acquire_owned().await?;
        let sender = sender.clone();
        tasks.spawn(async move {
            let _permit = permit;
            sender.send(&req).await.map(|r| r.status)
        });
    }
    while let Some(r) = tasks.join_next().await {
        let status = r??;
        if !(200..300).contains(&status) {
            bail!("the peer's request was answered {status}");
        }
    }
    let peer_secs = start.elapsed().as_secs_f64();
    server.abort();

    let rate = |secs: f64| events as f64 / secs;
    println!(
        "{}: {events} events on {alarms} alarms, concurrency {concurrency}",
        rig.label
    );
    println!(
        "  stored as alarm transitions in {stored_secs:.2} s ({:.0} events/s)",
        rate(stored_secs)
    );
    println!(
        "  dispatcher: delivered in {dispatcher_secs:.2} s = {:.0} events/s \
         (distinct {distinct}, duplicates {dups}, alarms out of order {unordered}, bad signatures {bad})",
        rate(dispatcher_secs)
    );
    println!(
        "  peer (same sender from memory): {peer_secs:.2} s = {:.0} requests/s",
        rate(peer_secs)
    );
    println!(
        "  ratio dispatcher / peer: {:.2}",
        rate(dispatcher_secs) / rate(peer_secs)
    );
    if distinct != events || unordered != 0 || bad != 0 {
        bail!("the dispatcher lost, reordered or missigned events");
    }
    Ok(())
}

async fn recovery(
    url: Option<String>,
    down_secs: u64,
    rate: u64,
    alarms: usize,
    margin_secs: u64,
) -> anyhow::Result<()> {
    if rate == 0 || alarms == 0 {
        bail!("--rate and --alarms must be at least 1");
    }
    let rig = rig(url).await?;
    let mut server = Some(serve(rig.addr, rig.receiver.clone()).await?);
    let mut set = Alarms::open(&rig.store, alarms).await?;
    let d = dispatcher(&rig, 32)?;
    let waker = d.waker();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    let down_at = Duration::from_secs(margin_secs);
    let up_at = down_at + Duration::from_secs(down_secs);
    let end_at = up_at + Duration::from_secs(margin_secs);
    let mut produced = alarms;
    let mut back = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0;
    while start.elapsed() < end_at {
        tick.tick().await;
        let t = start.elapsed();
        if t >= down_at && t < up_at {
            if let Some(s) = server.take() {
                s.abort();
                let _ = s.await;
                println!("  receiver down at {:.1} s", t.as_secs_f64());
            }
        } else if t >= up_at && server.is_none() && back.is_none() {
            server = Some(serve(rig.addr, rig.receiver.clone()).await?);
            back = Some(Instant::now());
            println!("  receiver back at {:.1} s", t.as_secs_f64());
        }
        set.next(&rig.store, i % alarms).await?;
        waker.notify_one();
        i += 1;
        produced += 1;
    }
    let last_made = Instant::now();
    let done = wait_for(&rig.receiver, produced, Duration::from_secs(900)).await;
    d.shutdown().await;
    if let Some(s) = server {
        s.abort();
    }
    let back = back.context("the receiver never came back")?;
    let (distinct, dups, unordered) = check(&rig.receiver);
    let bad = rig.receiver.received.lock().expect("lock").bad_signatures;
    println!(
        "{}: {produced} events at {rate}/s on {alarms} alarms, receiver down {down_secs} s",
        rig.label
    );
    match done {
        Ok(at) => println!(
            "  every event arrived {:.1} s after the receiver came back ({:.1} s after the last was made)",
            at.duration_since(back).as_secs_f64(),
            at.saturating_duration_since(last_made).as_secs_f64(),
        ),
        Err(e) => println!("  NOT every event arrived: {e}"),
    }
    println!(
        "  distinct {distinct} of {produced}, duplicates {dups}, alarms out of order {unordered}, \
         bad signatures {bad}"
    );
    if distinct != produced || unordered != 0 || bad != 0 {
        bail!("events were lost, reordered or missigned");
    }
    Ok(())
}

async fn on_each_backend<F, Fut>(args: &Args, run: F) -> anyhow::Result<()>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    run(None).await?;
    if args.sqlite_only {
        return Ok(());
    }
    match &args.postgres_url {
        Some(base) => {
            let (url, name) = benches::pg::fresh(base, "webhook_bench").await?;
            let r = run(Some(url)).await;
            benches::pg::drop(base, &name).await?;
            r
        }
        None => {
            println!("PostgreSQL not measured: pass --postgres-url or set PDM_TEST_DATABASE_URL");
            Ok(())
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.cmd {
        Cmd::Throughput {
            events,
            alarms,
            concurrency,
        } => on_each_backend(&args, |url| throughput(url, events, alarms, concurrency)).await,
        Cmd::Recovery {
            down_secs,
            rate,
            alarms,
            margin_secs,
        } => {
            on_each_backend(&args, |url| {
                recovery(url, down_secs, rate, alarms, margin_secs)
            })
            .await
        }
    }
}
