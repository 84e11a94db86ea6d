//! Reading to alarm event at a push client (issue 10): the time from sending the reading that
//! crosses a sensor limit to receiving its alarm event at a WebSocket client and at an SSE
//! client, under a background load of HTTP ingestion.
//!
//! The real server runs in this process (`pdm_server::run::Server`, as `pdm-server serve`
//! starts it) on a TCP port, with SQLite in a temporary directory and, with `--database-url`
//! (or `PDM_TEST_DATABASE_URL`), on PostgreSQL. Background: `--load-machines` machines of 10
//! sensors, readings sent by `--senders` keep-alive HTTP connections as
//! `POST /api/v1/machines/{m}/telemetry` of 10 rows each, paced to `--rate` readings per
//! second. Probe: a fleet-wide rule `sensor_limit` (temp above 50) and `--samples` probe
//! machines; each probe machine gets one normal reading, then one above the limit (`raised`,
//! measured) and one back below it (`returned`, measured): every machine and rule raises once,
//! so no chattering latch interferes. Latency is measured from just before the crossing
//! reading's POST to the event's arrival at each client (both read by their own tasks).
//!
//! `cargo run --release -p benches --bin push_bench -- --samples 100`
//! `cargo run --release -p benches --bin push_bench -- --samples 100 --database-url postgres://postgres@127.0.0.1:5432/test`

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use benches::http::{percentile, Http};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pdm_server::config::ServerConfig;
use pdm_server::run::Server;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "Reading-to-alarm-event latency at WebSocket and SSE clients of pdm-server")]
struct Args {
    /// Probe machines (each gives one `raised` and one `returned` sample per client).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Background readings per second.
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Background machines (10 sensors each).
    #[arg(long, default_value_t = 20)]
    load_machines: usize,
    /// Concurrent HTTP connections sending the background load.
    #[arg(long, default_value_t = 4)]
    senders: usize,
    /// Also run on this PostgreSQL database (its tables are created if missing; machines get
    /// names unique to the run).
    #[arg(long, env = "PDM_TEST_DATABASE_URL")]
    database_url: Option<String>,
    /// Skip SQLite.
    #[arg(long)]
    no_sqlite: bool,
}

/// The admin API token the clients send (made in the store by [`sign_in`]).
static TOKEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn token() -> String {
    TOKEN.lock().map(|t| t.clone()).unwrap_or_default()
}

fn bearer() -> String {
    format!("Bearer {}", token())
}

/// An admin API token for this server's clients, written into its store (the API itself
/// needs one to make one).
async fn sign_in(server: &Server) -> anyhow::Result<()> {
    use pdm_server::auth::secret;
    let (token, hash) = secret::generate(secret::Kind::Api);
    server
        .state()
        .store
        .create_api_token(&pdm_core::store::NewApiToken {
            name: "push_bench".into(),
            scope: pdm_core::store::TokenScope::Api {
                role: "admin".into(),
            },
            hash,
            prefix: secret::display_prefix(&token),
            created_by: None,
            at: pdm_core::Timestamp::now(),
            expires_at: None,
        })
        .await?;
    if let Ok(mut t) = TOKEN.lock() {
        *t = token;
    }
    Ok(())
}

fn now_ms() -> i64 {
    pdm_core::Timestamp::now().as_millis()
}

/// What a client saw: (machine, alarm event kind, when).
type Seen = (String, String, Instant);

async fn sse_reader(addr: SocketAddr, tx: mpsc::UnboundedSender<Seen>) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get("/api/v1/events?kinds=alarm")
        .header("host", addr.to_string())
        .header("authorization", bearer())
        .body(http_body_util::Empty::<Bytes>::new())?;
    let resp = sender.send_request(req).await?;
    if resp.status() != 200 {
        bail!("SSE answered {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut buf = String::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let at = Instant::now();
        buf.push_str(std::str::from_utf8(&data)?);
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data)?;
                if let (Some(m), Some(k)) = (v["machine"].as_str(), v["kind"].as_str()) {
                    let _ = tx.send((m.to_owned(), k.to_owned(), at));
                }
            }
        }
    }
    Ok(())
}

async fn ws_reader(
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Seen>,
    ready: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut req = format!("ws://{addr}/api/v1/ws").into_client_request()?;
    req.headers_mut().insert("authorization", bearer().parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    ws.send(Message::Text(
        r#"{"op": "subscribe", "kinds": ["alarm"]}"#.into(),
    ))
    .await?;
    while let Some(msg) = ws.next().await {
        let at = Instant::now();
        let Message::Text(text) = msg? else {
            continue;
        };
        let v: Value = serde_json::from_str(&text)?;
        if v["op"] == "subscribed" {
            let _ = ready.send(());
            continue;
        }
        if let (Some(m), Some(k)) = (v["machine"].as_str(), v["data"]["kind"].as_str()) {
            let _ = tx.send((m.to_owned(), k.to_owned(), at));
        }
    }
    Ok(())
}

/// The background load: `rate` readings per second over `senders` connections.
async fn load(
    addr: SocketAddr,
    prefix: String,
    machines: usize,
    rate: u64,
    senders: usize,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    // A POST is 10 rows of 10 sensors.
    let per_post = 100u64;
    let posts_per_s = (rate / per_post).max(1);
    let per_sender = Duration::from_secs_f64(senders as f64 / posts_per_s as f64);
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (prefix, stop, accepted) = (prefix.clone(), stop.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(addr).await?;
            let mut tick = tokio::time::interval(per_sender);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // Each machine's rows go forward 1 ms at a time from an hour ago: unique instants.
            let mut ts: HashMap<usize, i64> = HashMap::new();
            let base = now_ms() - 3_600_000;
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let m = (s + n * senders) % machines;
                n += 1;
                let t = ts.entry(m).or_insert(base);
                let rows: Vec<Value> = (0..10)
                    .map(|_| {
                        *t += 1;
                        let values: serde_json::Map<String, Value> = (0..10)
                            .map(|j| (format!("s{j}"), json!(j as f64 + 0.5)))
                            .collect();
                        json!({ "ts": *t, "values": values })
                    })
                    .collect();
                let (status, body) = http
                    .send(
                        "POST",
                        &format!("/api/v1/machines/{prefix}-load-{m}/telemetry"),
                        Some(&token()),
                        Value::Array(rows).to_string(),
                    )
                    .await?;
                if status != 202 {
                    bail!(
                        "background POST answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                let v: Value = serde_json::from_slice(&body)?;
                accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Waits for `(machine, kind)` on a client's channel, keeping others that arrive first.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    early: &mut Vec<Seen>,
    machine: &str,
    kind: &str,
) -> anyhow::Result<Instant> {
    if let Some(i) = early.iter().position(|(m, k, _)| m == machine && k == kind) {
        return Ok(early.remove(i).2);
    }
    loop {
        let seen = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .with_context(|| format!("no {kind} event of {machine} within 30 s"))?
            .context("the client stopped")?;
        if seen.0 == machine && seen.1 == kind {
            return Ok(seen.2);
        }
        early.push(seen);
    }
}

struct Figures {
    backend: String,
    ws: Vec<f64>,
    sse: Vec<f64>,
    /// Until the crossing reading's POST was answered (stored durably): part of the above.
    post: Vec<f64>,
    rate: f64,
}

async fn run(backend: &str, database_url: Option<String>, args: &Args) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        database_url,
        http: "127.0.0.1:0".parse()?,
        auto_register: true,
        live: pdm_core::live::LiveConfig {
            seed_alarm_defaults: false,
            ..Default::default()
        },
        ..ServerConfig::default()
    };
    let server = Server::start(config).await?;
    let addr = server.local_addr();
    sign_in(&server).await?;
    let prefix = format!("b{}x{}", std::process::id(), now_ms() % 100_000);
    let mut http = Http::connect(addr).await?;
    let rule = json!({"severity": "high",
        "kind": {"type": "sensor_limit", "sensor": "temp", "above": 50.0, "deadband": 1.0}});
    let (status, body) = http
        .send(
            "PUT",
            "/api/v1/alarm-rules/push-bench-hot",
            Some(&token()),
            rule.to_string(),
        )
        .await?;
    if status != 200 {
        bail!(
            "the rule was refused ({status}): {}",
            String::from_utf8_lossy(&body)
        );
    }

    let (ws_tx, mut ws_rx) = mpsc::unbounded_channel();
    let (sse_tx, mut sse_rx) = mpsc::unbounded_channel();
    let (ready_tx, mut ready) = mpsc::unbounded_channel();
    let ws_task = tokio::spawn(ws_reader(addr, ws_tx, ready_tx));
    let sse_task = tokio::spawn(sse_reader(addr, sse_tx));
    ready.recv().await.context("the WebSocket client stopped")?;

    // Probe machines, registered by a first normal reading each.
    let probe = |i: usize| format!("{prefix}-probe-{i}");
    for i in 0..args.samples {
        let body = json!({"ts": now_ms(), "values": {"temp": 20.0}}).to_string();
        let (status, _) = http
            .send(
                "POST",
                &format!("/api/v1/machines/{}/telemetry", probe(i)),
                Some(&token()),
                body,
            )
            .await?;
        if status != 202 {
            bail!("probe registration answered {status}");
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let load_task = tokio::spawn(load(
        addr,
        prefix.clone(),
        args.load_machines,
        args.rate,
        args.senders,
        stop.clone(),
        accepted.clone(),
    ));
    // Warm up: the load's machines registered, the writer busy.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let accepted_before = accepted.load(Ordering::Relaxed);

    let (mut ws_lat, mut sse_lat, mut post_lat) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ws_early, mut sse_early) = (Vec::new(), Vec::new());
    for i in 0..args.samples {
        let machine = probe(i);
        for (value, kind) in [(60.0, "raised"), (20.0, "returned")] {
            let body = json!({"ts": now_ms(), "values": {"temp": value}}).to_string();
            let sent = Instant::now();
            let (status, _) = http
                .send(
                    "POST",
                    &format!("/api/v1/machines/{machine}/telemetry"),
                    Some(&token()),
                    body,
                )
                .await?;
            if status != 202 {
                bail!("probe reading answered {status}");
            }
            post_lat.push(sent.elapsed().as_secs_f64() * 1e3);
            let at_ws = wait_for(&mut ws_rx, &mut ws_early, &machine, kind).await?;
            let at_sse = wait_for(&mut sse_rx, &mut sse_early, &machine, kind).await?;
            ws_lat.push(at_ws.duration_since(sent).as_secs_f64() * 1e3);
            sse_lat.push(at_sse.duration_since(sent).as_secs_f64() * 1e3);
        }
        // Spread the probes over the load.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = (accepted.load(Ordering::Relaxed) - accepted_before) as f64 / elapsed;
    stop.store(true, Ordering::Relaxed);
    load_task.await??;
    ws_task.abort();
    sse_task.abort();
    server.shutdown().await?;
    ws_lat.sort_by(f64::total_cmp);
    sse_lat.sort_by(f64::total_cmp);
    post_lat.sort_by(f64::total_cmp);
    Ok(Figures {
        post: post_lat,
        backend: backend.to_owned(),
        ws: ws_lat,
        sse: sse_lat,
        rate,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut runs = Vec::new();
    if !args.no_sqlite {
        runs.push(run("sqlite", None, &args).await?);
    }
    if let Some(url) = args.database_url.clone() {
        runs.push(run("postgres", Some(url), &args).await?);
    }
    println!(
        "reading -> alarm event at a push client, background {} readings/s asked over {} HTTP connections, {} probe machines (raised + returned each)",
        args.rate, args.senders, args.samples
    );
    println!("| backend | client | samples | p50 ms | p99 ms | max ms | background readings/s achieved |");
    println!("|---|---|---|---|---|---|---|");
    for f in &runs {
        for (client, lat) in [
            ("WebSocket", &f.ws),
            ("SSE", &f.sse),
            ("(the POST's 202 alone)", &f.post),
        ] {
            println!(
                "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.0} |",
                f.backend,
                client,
                lat.len(),
                percentile(lat, 50.0),
                percentile(lat, 99.0),
                lat.last().copied().unwrap_or(f64::NAN),
                f.rate
            );
        }
    }
    Ok(())
}
