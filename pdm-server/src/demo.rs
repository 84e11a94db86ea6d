//! `demo` (the server on the embedded database with simulated machines, narrated) and
//! `simulate` (simulated machines publishing to an MQTT broker).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use pdm_core::{ShutdownTrigger, Timestamp};
use pdm_ingest::sim::{register_machines, SimConfig, Simulator, SimulatorSource};
use pdm_store::redact_url;

use crate::cli::{apply_listen, sleep_or_forever, DemoArgs, SimulateArgs};
use crate::config::ServerConfig;
use crate::run::{wait_for_signal, Server};

/// How much simulated history the demo replays before running in real time.
const DEMO_HISTORY_MS: i64 = 2 * 3_600_000;

/// How much of each machine's history its model trains on: the first forty minutes. Shorter
/// spans see too little of a machine's load drift and thermal lag (the simulator's time
/// constants are 15 and 20 minutes): with ten minutes, a healthy pump's rows were flagged
/// 84 to 100 % of the time in the live tests once its load had drifted.
const DEMO_TRAIN_S: u64 = 2_400;

/// Runs the demo.
pub async fn run(mut config: ServerConfig, args: DemoArgs) -> anyhow::Result<()> {
    config.auto_register = true;
    if config.live.auto_train_after_s == 0 {
        config.live.auto_train_after_s = DEMO_TRAIN_S;
    }
    let train_s = config.live.auto_train_after_s;
    apply_listen(&mut config, args.listen)?;
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number of simulated seconds per real second");
    }
    // The demo admin exists from the start (its password is replaced below, with the others').
    config.auth.admin = Some(crate::auth::AdminBootstrap {
        email: "admin@demo.pdm".into(),
        password: format!("demo-{:x}", rand::random::<u128>()),
    });
    let db = config.effective_database_url();
    let mut server = Server::start(config).await?;
    let addr = server.local_addr();

    // Replay the last two hours quickly (so there is history to look at), then run live.
    let mut sim_config = SimConfig::fleet(3, args.seed).with_demo_faults();
    // The faults begin after the training span (the demo's models learn healthy operation).
    for m in &mut sim_config.machines {
        if let Some(f) = &mut m.fault {
            f.start_after_secs += train_s;
        }
    }
    let sim_start = Timestamp::now().add_millis(-DEMO_HISTORY_MS);
    sim_config.start = Some(sim_start);
    sim_config.speed = args.speed;
    sim_config.clamp_to_now = true;
    // Registered below rather than by the source, so the first requests already see them.
    sim_config.register = false;
    let sim = Simulator::new(&sim_config).context("simulator settings")?;
    register_machines(&server.state().catalog, &sim)
        .await
        .context("cannot register the simulated machines")?;
    let machines = sim.machines();
    let faults = sim.fault_windows();
    server.add_source(Box::new(SimulatorSource::new(
        sim,
        server.state().ingest.intake.clone(),
    )));

    let users = demo_users(&server).await?;
    let base = format!("http://{addr}/api/v1");
    println!("pdm demo");
    println!("  database  {}", redact_url(&db));
    println!("  HTTP API  {base}");
    println!(
        "  machines  (two hours of history replayed at {}x, then live at 1 sample/s)",
        args.speed
    );
    println!(
        "  detection each machine trains on its first {} minutes (auto_train_after_s = {train_s}), then every row is scored",
        train_s / 60
    );
    for (key, kind) in &machines {
        let fault = faults
            .iter()
            .find(|f| &f.machine == key)
            .map(|f| {
                let minutes = (f.start.as_millis() - sim_start.as_millis()) / 60_000;
                format!(
                    ", {} injected {minutes} minutes into the history",
                    f.kind.as_str()
                )
            })
            .unwrap_or_default();
        println!("    {key:<14} {}{fault}", kind.as_str());
    }
    let first = machines
        .first()
        .map(|(k, _)| k.to_string())
        .unwrap_or_else(|| "pump-1".into());
    println!("  users     (new passwords at every start of the demo)");
    for (email, role, password) in &users {
        println!("    {role:<9} {email:<22} {password}");
    }
    let (admin, _, admin_password) = &users[0];
    println!("try (every API request carries a token; sign in first):");
    println!(
        "  TOKEN=$(curl -s -X POST {base}/auth/login -H 'content-type: application/json' \\\n       -d '{{\"email\": \"{admin}\", \"password\": \"{admin_password}\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
    );
    let auth = "-H \"authorization: Bearer $TOKEN\"";
    println!("  curl {auth} {base}/machines");
    println!("  curl {auth} {base}/machines/{first}/latest");
    println!("  curl {auth} '{base}/machines/{first}/readings?sensor=temperature&bucket=10m'");
    println!(
        "  curl {auth} -X POST {base}/machines/{first}/telemetry -H 'content-type: application/json' \\\n       -d '{{\"ts\": \"{}\", \"values\": {{\"temperature\": 55.0}}}}'",
        pdm_ingest::codec::format_ts(Timestamp::now())
    );
    println!("  curl {auth} '{base}/machines/{first}/predictions?bucket=5m'");
    println!("  curl {auth} {base}/machines/{first}/live");
    println!("  curl {auth} {base}/alarms");
    println!("  curl {auth} {base}/models");
    println!("  curl {auth} {base}/jobs");
    println!("  curl {auth} {base}/dead-letters");
    println!("  curl http://{addr}/metrics");
    println!("the API, described: http://{addr}/api/docs/ (Swagger UI; /api/v1/openapi.json)");
    println!("press Ctrl-C to stop.");

    let state = server.state().clone();
    let started = Instant::now();
    // Alarms as they are stored: raised, escalated, acknowledged, cleared, ...
    let mut alarm_events = state.bus.subscribe(None).rx;
    let alarms = async move {
        loop {
            match alarm_events.recv().await {
                Ok(e) if e.kind == pdm_core::bus::PushKind::Alarm => {
                    if let Ok(n) =
                        serde_json::from_str::<pdm_core::notify::AlarmNotification>(&e.data)
                    {
                        println!("{}", alarm_line(&n));
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    tokio::pin!(alarms);
    let mut last_stored = 0u64;
    let mut last_at = Instant::now();
    let report = async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tick.tick().await;
            let m = state.ingest.metrics.snapshot();
            let rate = (m.readings_stored - last_stored) as f64 / last_at.elapsed().as_secs_f64();
            last_stored = m.readings_stored;
            last_at = Instant::now();
            let mut line = format!(
                "[{:>4}s] stored {} readings ({rate:.0}/s), dead letters {}",
                started.elapsed().as_secs(),
                m.readings_stored,
                m.dead_letters_total()
            );
            if let Some(live) = &state.detection.live {
                let l = live.metrics();
                line.push_str(&format!(
                    "; scored {} rows ({} anomalous), {} models trained",
                    l.rows_scored, l.rows_anomalous, l.jobs_succeeded
                ));
            }
            for (key, _) in &machines {
                line.push_str(&format!("\n    {key:<14}"));
                if let Ok(latest) = state.store.latest(key).await {
                    let temp = latest.iter().find(|l| l.sensor.as_str() == "temperature");
                    let vib = latest.iter().find(|l| l.sensor.as_str() == "vibration_rms");
                    if let (Some(t), Some(v)) = (temp, vib) {
                        line.push_str(&format!(" {:5.1} degC {:5.2} mm/s", t.value, v.value));
                    }
                }
                line.push_str(&detection_line(&state, key).await);
            }
            println!("{line}");
        }
    };
    tokio::select! {
        _ = report => {}
        _ = &mut alarms => {}
        _ = wait_for_signal() => {}
        _ = sleep_or_forever(args.duration) => {}
    }
    println!("stopping: writing what is queued...");
    let stored_before = server.state().ingest.metrics.snapshot().readings_stored;
    let metrics = server.state().ingest.metrics.clone();
    server.shutdown().await?;
    let m = metrics.snapshot();
    println!(
        "stopped: {} readings stored in this run ({} in the final flush), {} dead letters",
        m.readings_stored,
        m.readings_stored - stored_before,
        m.dead_letters_total()
    );
    Ok(())
}

/// One alarm event, for the demo's console.
fn alarm_line(n: &pdm_core::notify::AlarmNotification) -> String {
    use pdm_core::alarm::AlarmEventKind as K;
    let what = match n.event.kind {
        K::Raised => "ALARM RAISED",
        K::Cleared => "alarm cleared",
        K::Escalated => "ALARM ESCALATED",
        K::Returned => "alarm returned (condition gone, awaiting acknowledgement)",
        other => other.as_str(),
    };
    format!(
        "  >> {what}: {} rule {} ({}) #{} at {} - {}",
        n.machine,
        n.rule,
        n.event.severity,
        n.alarm_id,
        n.event.at.to_rfc3339(),
        n.event.reason
    )
}

/// What the live path says about a machine, for the demo's report.
async fn detection_line(state: &crate::state::AppState, key: &pdm_core::MachineKey) -> String {
    let Some(live) = &state.detection.live else {
        return String::new();
    };
    let Some(status) = live.status(key).await else {
        return "  | waiting for readings".into();
    };
    let Some(last) = status.last_scored else {
        return match status.model {
            Some(m) => format!("  | model {m}: warming up"),
            None => "  | no model yet (training on its first minutes)".into(),
        };
    };
    let q = pdm_core::PredictionQuery {
        machine: key.clone(),
        from: last.add_millis(-60_000),
        to: last.add_millis(1),
        limit: 100,
    };
    match state.store.predictions(&q).await {
        Ok(p) if !p.is_empty() => {
            let anomalous = p.iter().filter(|p| p.anomalous).count();
            let newest = &p[p.len() - 1];
            let verdict = if anomalous * 2 > p.len() {
                "ANOMALY"
            } else {
                "normal"
            };
            let blame = newest
                .contributions
                .first()
                .filter(|_| newest.anomalous)
                .map(|c| format!(", {} {:.0}%", c.sensor, c.share * 100.0))
                .unwrap_or_default();
            let rul = match newest.rul_s {
                Some(r) if r < 1.0 => ", at the failure level".to_owned(),
                Some(r) => format!(", about {:.0} min of useful life left", r / 60.0),
                None => String::new(),
            };
            format!(
                "  | score {:6.2} / {:.0}  health {:.2}{rul}  {verdict} ({anomalous}/{} rows in the last minute{blame})",
                newest.score,
                newest.threshold,
                newest.health.unwrap_or(f64::NAN),
                p.len()
            )
        }
        _ => "  | scoring".into(),
    }
}

/// Publishes simulated machines to a broker until the duration ends or Ctrl-C.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    if !(args.speed.is_finite() && args.speed > 0.0) {
        anyhow::bail!("--speed must be a positive number of simulated seconds per real second");
    }
    let mut sim_config = SimConfig::fleet(args.machines, args.seed).with_demo_faults();
    sim_config.interval_ms = args.interval_ms;
    sim_config.speed = args.speed;
    let sim = Simulator::new(&sim_config).context("simulator settings")?;
    let publisher = pdm_ingest::mqtt::MqttPublisherConfig::new(args.mqtt_url.clone());
    let (trigger, shutdown) = ShutdownTrigger::new();
    println!(
        "publishing {} simulated machines to {} (Ctrl-C to stop)",
        args.machines,
        redact_url(&args.mqtt_url)
    );
    let publish = pdm_ingest::sim::publish_to_mqtt(&publisher, sim, shutdown);
    tokio::pin!(publish);
    let summary = tokio::select! {
        done = &mut publish => done,
        _ = async {
            tokio::select! {
                _ = wait_for_signal() => {}
                _ = sleep_or_forever(args.duration) => {}
            }
        } => {
            trigger.trigger();
            publish.await
        }
    }
    .context("publishing failed")?;
    println!(
        "published {} messages with {} readings",
        summary.messages, summary.readings
    );
    Ok(())
}

/// The demo's people: an admin, an engineer and a viewer, created on the first run and given
/// new random passwords at every run (so the ones printed always work); (email, role,
/// password).
async fn demo_users(server: &Server) -> anyhow::Result<Vec<(String, String, String)>> {
    use pdm_core::store::{NewUser, UserUpdate};
    use rand::Rng as _;
    let store = &server.state().store;
    let mut out = Vec::new();
    for role in ["admin", "engineer", "viewer"] {
        let email = format!("{role}@demo.pdm");
        let password: String = {
            let mut rng = rand::rng();
            (0..16)
                .map(|_| {
                    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXY34679";
                    ALPHABET[rng.random_range(0..ALPHABET.len())] as char
                })
                .collect()
        };
        let hash = crate::auth::password::hash(password.clone()).await;
        let now = Timestamp::now();
        match store.user_by_email(&email).await? {
            Some(user) => {
                store
                    .update_user(
                        user.id,
                        &UserUpdate {
                            password_hash: Some(hash),
                            role: Some(role.into()),
                            active: Some(true),
                            ..UserUpdate::default()
                        },
                        now,
                    )
                    .await?;
            }
            None => {
                let mut name = role.to_owned();
                name[..1].make_ascii_uppercase();
                store
                    .create_user(
                        &NewUser {
                            email: email.clone(),
                            name: format!("Demo {name}"),
                            role: role.into(),
                            password_hash: hash,
                        },
                        now,
                    )
                    .await?;
            }
        }
        out.push((email, role.to_owned(), password));
    }
    Ok(out)
}
