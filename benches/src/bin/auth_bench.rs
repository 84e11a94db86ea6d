//! The price of authentication (issue 11): an authenticated read under load, against the same
//! read unauthenticated, and the cost of a sign-in.
//!
//! The real server runs in this process (`pdm_server::run::Server`, SQLite in a temporary
//! directory, live detection on as in production) with one machine and a reading. The read is
//! `GET /api/v1/machines/{m}/latest`, sent at `--rate` requests per second (paced, over
//! `--connections` keep-alive HTTP/1 connections) for `--secs` seconds:
//!
//! - with an access token (a JWT: its signature checked, then the user and the session read
//!   from the database, the role from a cache), through `pdm_server::app`;
//! - with an API token (its hash looked up in the database);
//! - the peer: the same read through `pdm_server::app_without_auth` (the same state and
//!   layers, no authentication), served on its own port.
//!
//! Rounds alternate (access, API, peer, then again), so the machine's noise hits them alike.
//! Sign-in: `--logins` sequential `POST /api/v1/auth/login` (one Argon2id verification each),
//! and the hash alone.
//!
//! `cargo run --release -p benches --bin auth_bench -- --rate 1000 --secs 10`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use benches::http::{percentile, Http};
use clap::Parser;
use pdm_server::config::ServerConfig;
use pdm_server::run::Server;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "The price of authentication: authenticated reads against the same read open")]
struct Args {
    /// Requests per second.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds per round.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Keep-alive connections the requests are spread over.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Rounds of each kind.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Sequential sign-ins timed.
    #[arg(long, default_value_t = 20)]
    logins: usize,
}

const EMAIL: &str = "bench@bench.pdm";
const PASSWORD: &str = "a benchmark password";

/// `--rate` reads a second for `--secs` against `addr`: the latencies in ms, sorted.
async fn load(args: &Args, addr: SocketAddr, token: Option<String>) -> anyhow::Result<Vec<f64>> {
    let total = args.rate * args.secs;
    let per_conn = total / args.connections as u64;
    let interval = Duration::from_secs_f64(args.connections as f64 / args.rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            let mut http = Http::connect(addr).await?;
            let mut out = Vec::with_capacity(per_conn as usize);
            // Connections start spread over one interval.
            let offset = interval.mul_f64(c as f64 / 8.0);
            for i in 0..per_conn {
                tokio::time::sleep_until(start + offset + interval * i as u32).await;
                let t0 = Instant::now();
                let (st, body) = http
                    .send(
                        "GET",
                        "/api/v1/machines/bench-m/latest",
                        token.as_deref(),
                        String::new(),
                    )
                    .await?;
                if st != 200 {
                    bail!(
                        "GET latest answered {st}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                out.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by(f64::total_cmp);
    Ok(all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig {
        data_dir: dir.path().to_path_buf(),
        http: "127.0.0.1:0".parse()?,
        auto_register: true,
        ..ServerConfig::default()
    };
    config.live.seed_alarm_defaults = false;
    config.auth.admin = Some(pdm_server::auth::AdminBootstrap {
        email: EMAIL.into(),
        password: PASSWORD.into(),
    });
    config.auth.max_failures_per_account = 1_000_000;
    let server = Server::start(config).await?;
    let addr = server.local_addr();
    // The peer: the same state, no authentication, on its own port.
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let open_addr = open.local_addr()?;
    let open_app = pdm_server::app_without_auth(server.state().clone());
    tokio::spawn(async move { axum::serve(open, open_app).await });

    let mut http = Http::connect(addr).await?;
    let login = json!({"email": EMAIL, "password": PASSWORD}).to_string();
    let (st, body) = http
        .send("POST", "/api/v1/auth/login", None, login.clone())
        .await?;
    if st != 200 {
        bail!("sign-in answered {st}");
    }
    let access = serde_json::from_slice::<Value>(&body)?["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (st, body) = http
        .send(
            "POST",
            "/api/v1/tokens",
            Some(&access),
            json!({"name": "bench", "role": "viewer"}).to_string(),
        )
        .await?;
    if st != 201 {
        bail!("token answered {st}");
    }
    let api = serde_json::from_slice::<Value>(&body)?["secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let reading = json!([{"ts": pdm_core::Timestamp::now().as_millis(), "values": {"temp": 40.0}}]);
    let (st, _) = http
        .send(
            "POST",
            "/api/v1/machines/bench-m/telemetry",
            Some(&access),
            reading.to_string(),
        )
        .await?;
    if st != 202 {
        bail!("telemetry answered {st}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!(
        "GET /api/v1/machines/{{m}}/latest at {} requests/s for {} s per round, {} connections, {} rounds",
        args.rate, args.secs, args.connections, args.rounds
    );
    let mut results: Vec<(&str, Vec<f64>)> = vec![
        ("access token (JWT)", Vec::new()),
        ("API token", Vec::new()),
        ("peer: no authentication", Vec::new()),
    ];
    for _ in 0..args.rounds {
        let a = load(&args, addr, Some(access.clone())).await?;
        results[0].1.extend(a);
        let b = load(&args, addr, Some(api.clone())).await?;
        results[1].1.extend(b);
        let c = load(&args, open_addr, None).await?;
        results[2].1.extend(c);
    }
    let peer_p50 = {
        let mut p = results[2].1.clone();
        p.sort_by(f64::total_cmp);
        (percentile(&p, 50.0), percentile(&p, 99.0))
    };
    println!("| credential | requests | p50 ms | p99 ms | max ms | p50 / peer | p99 / peer |");
    println!("|---|---|---|---|---|---|---|");
    for (name, lat) in &mut results {
        lat.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(lat, 50.0), percentile(lat, 99.0));
        println!(
            "| {name} | {} | {p50:.2} | {p99:.2} | {:.2} | {:.2} | {:.2} |",
            lat.len(),
            lat.last().copied().unwrap_or(f64::NAN),
            p50 / peer_p50.0,
            p99 / peer_p50.1
        );
    }

    let mut logins = Vec::new();
    for _ in 0..args.logins {
        let t0 = Instant::now();
        let (st, _) = http
            .send("POST", "/api/v1/auth/login", None, login.clone())
            .await?;
        if st != 200 {
            bail!("sign-in answered {st}");
        }
        logins.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    logins.sort_by(f64::total_cmp);
    let mut hashes = Vec::new();
    for _ in 0..args.logins.min(10) {
        let t0 = Instant::now();
        let _ = pdm_server::auth::password::hash_blocking(PASSWORD);
        hashes.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    hashes.sort_by(f64::total_cmp);
    println!(
        "sign-in (POST /auth/login, Argon2id m=19 MiB t=2 p=1): p50 {:.1} ms, max {:.1} ms over {}; the hash alone p50 {:.1} ms",
        percentile(&logins, 50.0),
        logins.last().copied().unwrap_or(f64::NAN),
        logins.len(),
        percentile(&hashes, 50.0)
    );
    server.shutdown().await?;
    Ok(())
}
