//! End-to-end ingestion benchmark.
//!
//! A publisher sends messages of 10 readings at QoS 1 through a local Mosquitto. Measured in the
//! same run, interleaved, the median of `--runs` rounds of each:
//! - the broker's raw drain rate: a plain subscriber that acknowledges and discards;
//! - pdm's durable rate into SQLite: the MQTT source, validation, the engine, committed writes
//!   (time until the last reading is committed);
//! - the same into PostgreSQL, when a database URL is given (`--postgres-url` or
//!   `PDM_TEST_DATABASE_URL`; a fresh database is created and dropped).
//!
//! By default it starts a private Mosquitto (`PDM_MOSQUITTO_BIN`, `mosquitto` on PATH, or
//! /usr/sbin/mosquitto) configured as docs/operations.md recommends for pdm
//! (`max_inflight_messages 1000`, `max_queued_messages 0`); `--mqtt-url` uses another broker.
//!
//! `cargo run --release -p benches --bin ingest_bench -- --messages 20000 --runs 3`

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use pdm_core::{Catalog, Engine, EngineConfig, Metrics, Timestamp};
use pdm_ingest::mqtt::{MqttPublisherConfig, MqttSourceConfig, MqttState};
use pdm_ingest::{CodecConfig, Intake};
use pdm_store::StoreOptions;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[derive(Debug, Parser)]
#[command(about = "End-to-end MQTT ingestion benchmark of pdm")]
struct Args {
    /// Messages per round (each carries --values readings).
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Readings per message.
    #[arg(long, default_value_t = 10)]
    values: u64,
    /// Rounds of each measurement; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Use this broker instead of starting a private Mosquitto.
    #[arg(long)]
    mqtt_url: Option<String>,
    /// PostgreSQL server to measure (a fresh database is created on it).
    #[arg(long, env = "PDM_TEST_DATABASE_URL")]
    postgres_url: Option<String>,
    /// Skip PostgreSQL even when a URL is known.
    #[arg(long)]
    no_postgres: bool,
    /// Engine writers (default: what each store suggests).
    #[arg(long)]
    writers: Option<usize>,
}

struct Broker {
    url: String,
    child: Option<Child>,
    description: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn mosquitto_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PDM_MOSQUITTO_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

fn start_broker(dir: &std::path::Path) -> anyhow::Result<Broker> {
    let bin =
        mosquitto_bin().context("no mosquitto binary: set PDM_MOSQUITTO_BIN or --mqtt-url")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_inflight_messages 1000\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\n"
        ),
    )?;
    let child = Command::new(&bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("mosquitto did not start on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Broker {
        url: format!("mqtt://127.0.0.1:{port}"),
        child: Some(child),
        description: format!(
            "private {} (max_inflight_messages 1000, max_queued_messages 0)",
            bin.display()
        ),
    })
}

fn host_port(url: &str) -> (String, u16) {
    let rest = url.trim_start_matches("mqtt://").trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(1883)),
        None => (rest.to_owned(), 1883),
    }
}

fn payloads(messages: u64, values: u64, base_ts: i64) -> Vec<Vec<u8>> {
    (0..messages)
        .map(|i| {
            let v: Vec<String> = (0..values)
                .map(|j| format!("\"s{j}\":{}.5", (i * values + j) % 1000))
                .collect();
            format!(
                "{{\"ts\":{},\"values\":{{{}}}}}",
                base_ts + i as i64,
                v.join(",")
            )
            .into_bytes()
        })
        .collect()
}

/// Publishes all payloads at QoS 1 and returns when the broker acknowledged them.
async fn publish(url: &str, topic: &str, payloads: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let mut cfg = MqttPublisherConfig::new(url);
    cfg.client_id = format!("bench-pub-{}", std::process::id());
    cfg.max_inflight = 1000;
    let publisher = cfg.connect()?;
    publisher.wait_connected(Duration::from_secs(10)).await?;
    for p in payloads {
        publisher.publish(topic, p).await?;
    }
    publisher.disconnect(Duration::from_secs(120)).await?;
    Ok(())
}

/// Raw drain: a subscriber that acknowledges (automatically) and discards.
async fn raw_drain(url: &str, payloads: Vec<Vec<u8>>, round: usize) -> anyhow::Result<Duration> {
    let (host, port) = host_port(url);
    let mut opts = MqttOptions::new(
        format!("bench-raw-{}-{round}", std::process::id()),
        host,
        port,
    );
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    let topic = format!("bench/raw{round}/telemetry");
    client.subscribe(&topic, QoS::AtLeastOnce).await?;
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    let expected = payloads.len() as u64;
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let drain = tokio::spawn(async move {
        while counter.load(Ordering::Relaxed) < expected {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => return Err(anyhow::Error::new(e)),
            }
        }
        Ok(Instant::now())
    });
    let started = Instant::now();
    publish(url, &topic, payloads).await?;
    let finished = tokio::time::timeout(Duration::from_secs(300), drain)
        .await
        .context("raw subscriber did not receive everything in 300 s")???;
    let _ = client.disconnect().await;
    Ok(finished - started)
}

/// pdm: MQTT source -> validation -> engine -> durable store; time until the last commit.
async fn pdm_durable(
    url: &str,
    db_url: &str,
    payloads: Vec<Vec<u8>>,
    values: u64,
    round: usize,
    writers: Option<usize>,
) -> anyhow::Result<Duration> {
    let store = pdm_store::connect(db_url, &StoreOptions::default()).await?;
    let catalog = Arc::new(Catalog::load(store.clone(), true).await?);
    let metrics = Arc::new(Metrics::default());
    let mut engine = Engine::start(
        store.clone(),
        catalog.clone(),
        metrics.clone(),
        EngineConfig {
            writers,
            ..EngineConfig::default()
        },
    );
    let intake = Arc::new(Intake::new(catalog, CodecConfig::default()));
    let client_id = format!("bench-pdm-{}-{round}", std::process::id());
    let mut source_cfg = MqttSourceConfig::new(url);
    source_cfg.client_id = client_id.clone();
    let source = source_cfg.build(intake)?;
    let mut status = source.status();
    engine.add_source(Box::new(source));
    if !status
        .wait_for(MqttState::Subscribed, Duration::from_secs(20))
        .await
    {
        bail!("the MQTT source did not subscribe within 20 s");
    }
    let expected = payloads.len() as u64 * values;
    let machine = format!("bench-{round}");
    let started = Instant::now();
    publish(url, &format!("pdm/{machine}/telemetry"), payloads).await?;
    benches::wait_stored(&metrics, expected, Duration::from_millis(2)).await?;
    let elapsed = started.elapsed();
    engine.shutdown().await;
    let stored = store
        .count_readings(&pdm_core::MachineKey::new(&machine)?)
        .await?;
    if stored != expected {
        bail!("{stored} readings in the database, {expected} expected");
    }
    // Leave no persistent session behind on the broker.
    let (host, port) = host_port(url);
    let mut opts = MqttOptions::new(client_id, host, port);
    opts.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(opts, 10);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while !matches!(
            el.poll().await,
            Ok(Event::Incoming(Packet::ConnAck(_))) | Err(_)
        ) {}
    })
    .await;
    let _ = client.disconnect().await;
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.runs == 0 || args.messages == 0 || args.values == 0 {
        bail!("--runs, --messages and --values must be at least 1");
    }
    let dir = tempfile::tempdir()?;
    let broker = match &args.mqtt_url {
        Some(url) => Broker {
            url: url.clone(),
            child: None,
            description: url.clone(),
        },
        None => start_broker(dir.path())?,
    };
    let pg = match (&args.postgres_url, args.no_postgres) {
        (Some(base), false) => Some((base.clone(), benches::pg::fresh(base, "bench").await?)),
        _ => None,
    };
    let readings = (args.messages * args.values) as f64;
    println!(
        "pdm ingestion benchmark: {} messages x {} readings at QoS 1, {} rounds (median)",
        args.messages, args.values, args.runs
    );
    println!("broker: {}", broker.description);
    let base_ts = Timestamp::now().as_millis() - 86_400_000;
    let (mut raw, mut sqlite, mut postgres) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..args.runs {
        let ts = base_ts + (round as i64) * 10_000_000;
        let d = raw_drain(&broker.url, payloads(args.messages, args.values, ts), round).await?;
        raw.push(readings / d.as_secs_f64());
        let db = format!(
            "sqlite://{}",
            dir.path().join(format!("bench-{round}.db")).display()
        );
        let d = pdm_durable(
            &broker.url,
            &db,
            payloads(args.messages, args.values, ts),
            args.values,
            round,
            args.writers,
        )
        .await?;
        sqlite.push(readings / d.as_secs_f64());
        if let Some((_, (url, _))) = &pg {
            let d = pdm_durable(
                &broker.url,
                url,
                payloads(args.messages, args.values, ts),
                args.values,
                round,
                args.writers,
            )
            .await?;
            postgres.push(readings / d.as_secs_f64());
        }
        eprintln!(
            "round {}: raw {:.0}/s, sqlite {:.0}/s{}",
            round + 1,
            raw[round],
            sqlite[round],
            postgres
                .get(round)
                .map(|p| format!(", postgres {p:.0}/s"))
                .unwrap_or_default()
        );
    }
    let raw_m = benches::median(raw);
    println!("{:<44} {:>14} {:>10}", "path", "readings/s", "ratio");
    println!(
        "{:<44} {:>14.0} {:>10.2}",
        "broker raw drain (subscriber acks, discards)", raw_m, 1.0
    );
    let sq = benches::median(sqlite);
    println!(
        "{:<44} {:>14.0} {:>10.2}",
        "pdm durable into SQLite",
        sq,
        sq / raw_m
    );
    if !postgres.is_empty() {
        let pm = benches::median(postgres);
        println!(
            "{:<44} {:>14.0} {:>10.2}",
            "pdm durable into PostgreSQL",
            pm,
            pm / raw_m
        );
    } else {
        println!("PostgreSQL: not measured (no --postgres-url / PDM_TEST_DATABASE_URL)");
    }
    if let Some((base, (_, name))) = pg {
        benches::pg::drop(&base, &name).await?;
    }
    Ok(())
}
