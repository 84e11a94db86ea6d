//! Benchmarks of the live detection path (issue 9).
//!
//! - `ingest`: ingestion through the engine with live detection on every machine (each with an
//!   active default pipeline) against the engine without a live path, interleaved in one run,
//!   on SQLite and (with `--postgres-url` / `PDM_TEST_DATABASE_URL`) PostgreSQL;
//! - `memory`: the resident set with `--machines` machines live, models active, after every
//!   machine has filled its window and scored;
//! - `scoring`: rows per second of one live model scoring rows one at a time, and of `Live`
//!   end to end, beside `Pipeline::scores` on the same model and rows.
//!
//! Readings are pushed into the engine's sink directly (no broker), batches of one row of one
//! machine (10 readings, like an MQTT message), as fast as the engine takes them.
//!
//! `cargo run --release -p benches --bin live_bench -- ingest --machines 100 --rows 1000 --runs 2`
//! `cargo run --release -p benches --bin live_bench -- memory --machines 1000`
//! `cargo run --release -p benches --bin live_bench -- scoring --rows 200000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use ndarray::ArrayView2;
use pdm_core::align::AlignConfig;
use pdm_core::live::{Live, LiveConfig, ModelFactory, ModelParameters, TrainSpec, TrainingRows};
use pdm_core::store::{Activation, NewModel, Store};
use pdm_core::{
    Ack, Batch, Catalog, Engine, EngineConfig, MachineKey, Metrics, Reading, SensorKey, Timestamp,
};
use pdm_detect::persist::{self, Model};
use pdm_detect::DetectFactory;
use pdm_store::StoreOptions;

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of pdm's live detection path")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Ingestion with live detection against detection off, interleaved.
    Ingest {
        /// Machines, each with an active default pipeline.
        #[arg(long, default_value_t = 100)]
        machines: usize,
        /// Sensors per machine.
        #[arg(long, default_value_t = 10)]
        sensors: usize,
        /// Rows per machine per round (each row is `--sensors` readings).
        #[arg(long, default_value_t = 1000)]
        rows: usize,
        /// Pairs of rounds (off, on); the median ratio is reported.
        #[arg(long, default_value_t = 2)]
        runs: usize,
        /// PostgreSQL server to measure (a fresh database per round is created on it).
        #[arg(long, env = "PDM_TEST_DATABASE_URL")]
        postgres_url: Option<String>,
        /// Skip PostgreSQL even when a URL is known.
        #[arg(long)]
        no_postgres: bool,
        /// Skip SQLite.
        #[arg(long)]
        no_sqlite: bool,
        /// Owner tasks of the live path.
        #[arg(long, default_value_t = LiveConfig::default().tasks)]
        tasks: usize,
        /// Engine writers (default: what each store suggests: 1 for SQLite, 2 for PostgreSQL).
        #[arg(long)]
        writers: Option<usize>,
    },
    /// Resident set with many machines live.
    Memory {
        #[arg(long, default_value_t = 1000)]
        machines: usize,
        #[arg(long, default_value_t = 10)]
        sensors: usize,
        /// Rows fed to each machine (the default pipeline's window is 10).
        #[arg(long, default_value_t = 30)]
        rows: usize,
    },
    /// Scoring throughput: live model row by row, `Live` end to end, `Pipeline::scores`.
    Scoring {
        #[arg(long, default_value_t = 10)]
        sensors: usize,
        /// Rows scored per measurement.
        #[arg(long, default_value_t = 200_000)]
        rows: usize,
        /// Rounds of each; the median is reported.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Rows through `Live` end to end (0 skips it).
        #[arg(long, default_value_t = 50_000)]
        live_rows: usize,
        /// Also time prediction writes into PostgreSQL (a fresh database, dropped after).
        #[arg(long, env = "PDM_TEST_DATABASE_URL")]
        postgres_url: Option<String>,
    },
}

const PERIOD_MS: i64 = 1_000;

fn channels(n: usize) -> Vec<SensorKey> {
    (0..n)
        .map(|j| SensorKey::new(&format!("s{j}")).expect("a valid key"))
        .collect()
}

fn align(n: usize) -> AlignConfig {
    AlignConfig {
        channels: channels(n),
        sample_period_ms: PERIOD_MS as u64,
        max_gap_ms: 5_000,
    }
}

/// Deterministic noise in [-0.5, 0.5).
fn noise(seed: u64) -> f64 {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0xd1b5_4a32_d192_ed03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5
}

/// A healthy row: every channel follows one slow load, plus a little noise.
fn healthy_row(machine: usize, i: usize, n: usize, out: &mut Vec<f64>) {
    out.clear();
    let load = 0.5 + 0.4 * ((i as f64) * 0.02 + machine as f64).sin();
    for j in 0..n {
        let seed = ((machine as u64) << 40) ^ ((i as u64) << 8) ^ j as u64;
        out.push((j as f64 + 1.0) * load + 0.05 * noise(seed) + 10.0 * j as f64);
    }
}

/// Trains the default pipeline on healthy rows.
fn train(n: usize) -> anyhow::Result<(pdm_core::live::Trained, AlignConfig)> {
    let align = align(n);
    let mut seg = Vec::new();
    let mut row = Vec::new();
    for i in 0..3_000 {
        healthy_row(0, i, n, &mut row);
        seg.extend_from_slice(&row);
    }
    let rows = TrainingRows {
        n_cols: n,
        segments: vec![seg],
    };
    let spec = TrainSpec {
        kind: None,
        params: "{}".into(),
        align: align.clone(),
    };
    let trained = DetectFactory.train(&spec, &rows, &mut |_| true)?;
    Ok((trained, align))
}

fn machine_key(m: usize) -> MachineKey {
    MachineKey::new(&format!("m{m:05}")).expect("a valid key")
}

/// Creates the machines and sensors, and registers and activates the model for each.
async fn setup(
    store: &Arc<dyn Store>,
    machines: usize,
    trained: &pdm_core::live::Trained,
    align: &AlignConfig,
) -> anyhow::Result<()> {
    let params = ModelParameters {
        align: align.clone(),
        model: serde_json::from_str(&trained.params)?,
        source: "train".into(),
    }
    .to_json();
    for m in 0..machines {
        let key = machine_key(m);
        store.ensure_machine(&key).await?;
        for s in &align.channels {
            store.ensure_sensor(&key, s).await?;
        }
        let record = store
            .create_model(&NewModel {
                machine: key.clone(),
                kind: trained.kind.clone(),
                trained_from: Timestamp::from_millis(0),
                trained_to: Timestamp::from_millis(1_000),
                parameters: params.clone(),
                metrics: trained.metrics.clone(),
                bytes: trained.bytes.clone(),
            })
            .await?;
        store
            .activate_model(
                record.id,
                &Activation {
                    by: "bench".into(),
                    at: Timestamp::now(),
                    machine: Some(key.clone()),
                },
            )
            .await?;
    }
    Ok(())
}

/// One source batch per (row, machine): `sensors` readings.
fn batches(machines: usize, sensors: usize, rows: usize, base_ts: i64) -> Vec<Batch> {
    let keys: Vec<MachineKey> = (0..machines).map(machine_key).collect();
    let chans = channels(sensors);
    let mut row = Vec::new();
    let mut out = Vec::with_capacity(machines * rows);
    for i in 0..rows {
        for (m, key) in keys.iter().enumerate() {
            healthy_row(m, i + 5_000, sensors, &mut row);
            let ts = Timestamp::from_millis(base_ts + i as i64 * PERIOD_MS);
            out.push(Batch {
                readings: chans
                    .iter()
                    .zip(&row)
                    .map(|(s, &v)| Reading {
                        machine: key.clone(),
                        sensor: s.clone(),
                        ts,
                        value: v,
                    })
                    .collect(),
                dead_letters: Vec::new(),
            });
        }
    }
    out
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Round {
    /// Readings per second until the last one was committed.
    ingest: f64,
    /// Readings per second until the live path had scored everything (live rounds only).
    scored_by: Option<f64>,
    live: Option<pdm_core::live::LiveSnapshot>,
}

#[allow(clippy::too_many_arguments)]
async fn ingest_round(
    db_url: &str,
    machines: usize,
    sensors: usize,
    rows: usize,
    live_on: bool,
    tasks: usize,
    writers: Option<usize>,
    trained: &pdm_core::live::Trained,
    align: &AlignConfig,
) -> anyhow::Result<Round> {
    let store = pdm_store::connect(db_url, &StoreOptions::default()).await?;
    setup(&store, machines, trained, align).await?;
    let catalog = Arc::new(Catalog::load(store.clone(), false).await?);
    let metrics = Arc::new(Metrics::default());
    let base_ts = Timestamp::now().as_millis() - 86_400_000;
    let input = batches(machines, sensors, rows, base_ts);
    let expected = (machines * sensors * rows) as u64;
    let live = live_on.then(|| {
        Live::start(
            store.clone(),
            Arc::new(DetectFactory),
            LiveConfig {
                tasks,
                ..LiveConfig::default()
            },
        )
    });
    let engine = Engine::start_with_live(
        store.clone(),
        catalog,
        metrics.clone(),
        EngineConfig {
            writers,
            ..EngineConfig::default()
        },
        live.clone(),
    );
    let sink = engine.sink();
    let started = Instant::now();
    for b in input {
        sink.send(b, Ack::none()).await?;
    }
    benches::wait_stored(&metrics, expected, Duration::from_millis(1)).await?;
    let stored_after = started.elapsed();
    let mut round = Round {
        ingest: expected as f64 / stored_after.as_secs_f64(),
        scored_by: None,
        live: None,
    };
    if let Some(live) = &live {
        live.flush().await;
        round.scored_by = Some(expected as f64 / started.elapsed().as_secs_f64());
        round.live = Some(live.metrics());
    }
    engine.shutdown().await;
    if let Some(live) = live {
        live.shutdown().await;
    }
    let n = store.count_readings(&machine_key(0)).await?;
    if n != (sensors * rows) as u64 {
        bail!(
            "{n} readings stored for m00000, {} expected",
            sensors * rows
        );
    }
    Ok(round)
}

#[allow(clippy::too_many_arguments)]
async fn ingest(
    machines: usize,
    sensors: usize,
    rows: usize,
    runs: usize,
    pg: Option<String>,
    no_sqlite: bool,
    tasks: usize,
    writers: Option<usize>,
) -> anyhow::Result<()> {
    if runs == 0 || machines == 0 || rows == 0 || sensors == 0 {
        bail!("--runs, --machines, --rows and --sensors must be at least 1");
    }
    let (trained, align) = train(sensors)?;
    let dir = tempfile::tempdir()?;
    println!(
        "live ingestion benchmark: {machines} machines x {sensors} sensors, {rows} rows each \
         ({} readings per round), {runs} x (off, on), live tasks {tasks}, engine writers {}",
        machines * sensors * rows,
        writers.map_or("the store's suggestion".to_owned(), |w| w.to_string())
    );
    let mut backends: Vec<&str> = Vec::new();
    if !no_sqlite {
        backends.push("sqlite");
    }
    if pg.is_some() {
        backends.push("postgres");
    }
    for backend in backends {
        let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..runs {
            let mut pair = [0.0; 2];
            // Alternate which goes first, so neither always runs on a warmer machine.
            let order = if run % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for live_on in order {
                let tag = format!("{run}_{}", if live_on { "on" } else { "off" });
                let (url, pg_name) = match backend {
                    "sqlite" => (
                        format!(
                            "sqlite://{}",
                            dir.path().join(format!("live-{tag}.db")).display()
                        ),
                        None,
                    ),
                    _ => {
                        let base = pg.as_deref().expect("a URL");
                        let (url, name) =
                            benches::pg::fresh(base, &format!("live_bench_{tag}")).await?;
                        (url, Some(name))
                    }
                };
                let r = ingest_round(
                    &url, machines, sensors, rows, live_on, tasks, writers, &trained, &align,
                )
                .await?;
                if let (Some(name), Some(base)) = (pg_name, pg.as_deref()) {
                    benches::pg::drop(base, &name).await?;
                }
                if live_on {
                    let s = r.live.clone().unwrap_or_default();
                    eprintln!(
                        "{backend} round {} on:  {:.0} readings/s stored, {:.0}/s until all \
                         scored; rows scored {}, predictions written {}, readings skipped {}, \
                         catch-ups {}, rows warmed {}, anomalous {}, scoring {} ms",
                        run + 1,
                        r.ingest,
                        r.scored_by.unwrap_or(0.0),
                        s.rows_scored,
                        s.predictions_written,
                        s.readings_skipped,
                        s.catch_ups,
                        s.rows_warmed,
                        s.rows_anomalous,
                        s.scoring_micros_total / 1000
                    );
                    on.push((r.ingest, r.scored_by.unwrap_or(0.0), s));
                    pair[1] = r.ingest;
                } else {
                    eprintln!(
                        "{backend} round {} off: {:.0} readings/s stored",
                        run + 1,
                        r.ingest
                    );
                    off.push(r.ingest);
                    pair[0] = r.ingest;
                }
            }
            ratios.push(pair[1] / pair[0]);
        }
        let off_m = benches::median(off.clone());
        let on_m = benches::median(on.iter().map(|r| r.0).collect());
        let scored_m = benches::median(on.iter().map(|r| r.1).collect());
        println!("{backend}:");
        println!(
            "  detection off           {off_m:>12.0} readings/s (rounds {:?})",
            off.iter().map(|v| *v as u64).collect::<Vec<_>>()
        );
        println!(
            "  detection on (stored)   {on_m:>12.0} readings/s (rounds {:?})",
            on.iter().map(|r| r.0 as u64).collect::<Vec<_>>()
        );
        println!("  detection on (scored)   {scored_m:>12.0} readings/s until flush() returned");
        println!(
            "  ratio on/off per pair   {:?}, median {:.2}",
            ratios
                .iter()
                .map(|r| (r * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            benches::median(ratios.clone())
        );
        for (i, (_, _, s)) in on.iter().enumerate() {
            println!(
                "  on round {}: rows scored {} of {}, predictions written {}, readings in {}, \
                 skipped {}, late {}, rows unscored (stale) {}, stale conditions {}, \
                 catch-ups {}, rows warmed {}",
                i + 1,
                s.rows_scored,
                machines * (rows - 11),
                s.predictions_written,
                s.readings_in,
                s.readings_skipped,
                s.readings_late,
                s.rows_unscored,
                s.stale_conditions,
                s.catch_ups,
                s.rows_warmed
            );
        }
    }
    Ok(())
}

async fn memory(machines: usize, sensors: usize, rows: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("mem.db").display());
    let (trained, align) = train(sensors)?;
    let store = pdm_store::connect(&url, &StoreOptions::default()).await?;
    setup(&store, machines, &trained, &align).await?;
    let catalog = Arc::new(Catalog::load(store.clone(), false).await?);
    let metrics = Arc::new(Metrics::default());
    let base_ts = Timestamp::now().as_millis() - 86_400_000;
    // Warm the allocator and the store with one pass without live, so that "before" holds the
    // engine and the store's caches.
    let engine = Engine::start(
        store.clone(),
        catalog.clone(),
        metrics.clone(),
        EngineConfig::default(),
    );
    let sink = engine.sink();
    for b in batches(machines, sensors, rows, base_ts - 10_000_000) {
        sink.send(b, Ack::none()).await?;
    }
    drop(sink);
    engine.shutdown().await;
    let before = rss_kb();
    let live = Live::start(
        store.clone(),
        Arc::new(DetectFactory),
        LiveConfig::default(),
    );
    let engine = Engine::start_with_live(
        store.clone(),
        catalog,
        metrics.clone(),
        EngineConfig::default(),
        Some(live.clone()),
    );
    let sink = engine.sink();
    for b in batches(machines, sensors, rows, base_ts) {
        sink.send(b, Ack::none()).await?;
    }
    drop(sink);
    engine.shutdown().await;
    live.flush().await;
    let after = rss_kb();
    let s = live.metrics();
    println!(
        "memory: {machines} machines x {sensors} sensors live (default pipeline, window 10), \
         {rows} rows fed to each"
    );
    println!(
        "  models loaded {}, rows scored {}, predictions written {}, readings skipped {}",
        s.models_loaded, s.rows_scored, s.predictions_written, s.readings_skipped
    );
    println!(
        "  VmRSS before the live path (store, engine pass done) {:>8.1} MB",
        before as f64 / 1024.0
    );
    println!(
        "  VmRSS with every machine live and scored             {:>8.1} MB",
        after as f64 / 1024.0
    );
    println!(
        "  difference per machine                               {:>8.1} kB",
        (after as f64 - before as f64) / machines as f64
    );
    if s.models_loaded != machines as u64 || s.rows_scored == 0 {
        bail!("not every machine was loaded and scored");
    }
    live.shutdown().await;
    Ok(())
}

async fn scoring(
    sensors: usize,
    rows: usize,
    runs: usize,
    live_rows: usize,
    postgres_url: Option<String>,
) -> anyhow::Result<()> {
    let (trained, align) = train(sensors)?;
    let Model::Pipeline(pipeline) = persist::from_bytes(&trained.bytes)? else {
        bail!("the default kind is not a pipeline");
    };
    let mut data = Vec::with_capacity(rows * sensors);
    let mut row = Vec::new();
    for i in 0..rows {
        healthy_row(1, i, sensors, &mut row);
        data.extend_from_slice(&row);
    }
    let x = ArrayView2::from_shape((rows, sensors), &data)?;
    let window = pipeline.fit_params().window();
    let (mut batch, mut single) = (Vec::new(), Vec::new());
    let mut check = (0.0, 0.0);
    for _ in 0..runs {
        let t = Instant::now();
        let s = pipeline.scores(&x)?;
        batch.push((rows - window + 1) as f64 / t.elapsed().as_secs_f64());
        check.0 = s.sum();

        let mut model = DetectFactory.load(&trained.bytes, &align)?;
        let t = Instant::now();
        let mut sum = 0.0;
        let mut n = 0usize;
        for (i, r) in data.chunks_exact(sensors).enumerate() {
            if let Some(s) = model.score(i as i64 * PERIOD_MS, r)? {
                sum += s.score;
                n += 1;
            }
        }
        single.push(n as f64 / t.elapsed().as_secs_f64());
        check.1 = sum;
    }
    if (check.0 - check.1).abs() > 1e-9 * check.0.abs().max(1.0) {
        bail!("live and batch scores differ: {} vs {}", check.1, check.0);
    }
    let b = benches::median(batch);
    let l = benches::median(single);
    println!(
        "scoring: default pipeline over {sensors} channels, {rows} rows, median of {runs} \
         (one thread)"
    );
    println!("  Pipeline::scores (batch)          {b:>12.0} rows/s  1.00");
    println!(
        "  LiveModel::score, row by row      {l:>12.0} rows/s  {:.3}",
        l / b
    );
    let dir = tempfile::tempdir()?;
    let sqlite_url = format!("sqlite://{}", dir.path().join("pred.db").display());
    let (align_rate, write_rate) =
        pieces(sensors, rows.min(100_000), &trained, &align, &sqlite_url).await?;
    println!(
        "  pieces: Aligner::push_batch        {align_rate:>12.0} rows/s; \
         SQLite write_predictions {write_rate:.0} predictions/s (batches of 5,000)"
    );
    if let Some(base) = postgres_url {
        let (url, name) = benches::pg::fresh(&base, "live_bench_pieces").await?;
        let r = pieces(sensors, rows.min(100_000), &trained, &align, &url).await;
        benches::pg::drop(&base, &name).await?;
        println!(
            "  pieces: PostgreSQL write_predictions {:.0} predictions/s (batches of 5,000)",
            r?.1
        );
    }
    if live_rows > 0 {
        let e = live_end_to_end(sensors, live_rows, &trained, &align).await?;
        println!(
            "  Live end to end (offer -> flush)  {:>12.0} rows/s  {:.3}  (owner scoring alone \
             {:.0} rows/s)",
            e.0,
            e.0 / b,
            e.1
        );
    }
    Ok(())
}

/// Rows per second of the aligner alone, and predictions per second stored into `url`.
async fn pieces(
    sensors: usize,
    rows: usize,
    trained: &pdm_core::live::Trained,
    align: &AlignConfig,
    url: &str,
) -> anyhow::Result<(f64, f64)> {
    let base_ts = Timestamp::now().as_millis() - 86_400_000;
    let readings: Vec<Reading> = batches(1, sensors, rows, base_ts)
        .into_iter()
        .flat_map(|b| b.readings)
        .collect();
    let mut aligner = pdm_core::Aligner::new(align.clone())?;
    let mut out = Vec::new();
    let t = Instant::now();
    for chunk in readings.chunks(1000) {
        out.clear();
        aligner.push_batch(chunk, &mut out);
    }
    let align_rate = rows as f64 / t.elapsed().as_secs_f64();

    let store = pdm_store::connect(url, &StoreOptions::default()).await?;
    setup(&store, 1, trained, align).await?;
    let model = store
        .active_model(&machine_key(0))
        .await?
        .context("an active model")?
        .id;
    let preds: Vec<pdm_core::Prediction> = (0..rows)
        .map(|i| pdm_core::Prediction {
            machine: machine_key(0),
            ts: Timestamp::from_millis(base_ts + i as i64 * PERIOD_MS),
            model,
            score: 1.0,
            threshold: 2.0,
            anomalous: false,
            contributions: Vec::new(),
            health: Some(0.9),
            rul_s: None,
        })
        .collect();
    let t = Instant::now();
    for chunk in preds.chunks(5_000) {
        store.write_predictions(chunk).await?;
    }
    let write_rate = rows as f64 / t.elapsed().as_secs_f64();
    Ok((align_rate, write_rate))
}

/// Rows per second through `Live` (one owner task): offer, align, score, predictions stored.
async fn live_end_to_end(
    sensors: usize,
    rows: usize,
    trained: &pdm_core::live::Trained,
    align: &AlignConfig,
) -> anyhow::Result<(f64, f64)> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let store = pdm_store::connect(&url, &StoreOptions::default()).await?;
    setup(&store, 1, trained, align).await?;
    let live = Live::start(
        store.clone(),
        Arc::new(DetectFactory),
        LiveConfig {
            tasks: 1,
            ..LiveConfig::default()
        },
    );
    let base_ts = Timestamp::now().as_millis() - 86_400_000;
    // 100 rows per offered batch; a flush every 100 batches keeps the owner's queue from
    // filling (a full queue would skip rows).
    let all = batches(1, sensors, rows, base_ts);
    let mut chunks = Vec::new();
    for group in all.chunks(100) {
        chunks.push(Batch {
            readings: group.iter().flat_map(|b| b.readings.clone()).collect(),
            dead_letters: Vec::new(),
        });
    }
    // The first batch loads the model and catches up; keep that out of the timing.
    let mut it = chunks.into_iter();
    if let Some(first) = it.next() {
        live.offer(first);
        live.flush().await;
    }
    let s0 = live.metrics();
    let t = Instant::now();
    for (i, c) in it.enumerate() {
        live.offer(c);
        if i % 100 == 99 {
            live.flush().await;
        }
    }
    live.flush().await;
    let elapsed = t.elapsed().as_secs_f64();
    let s = live.metrics();
    let scored = s.rows_scored - s0.rows_scored;
    if s.readings_skipped > 0 {
        bail!("{} readings skipped", s.readings_skipped);
    }
    let micros = (s.scoring_micros_total - s0.scoring_micros_total).max(1) as f64;
    live.shutdown().await;
    Ok((scored as f64 / elapsed, scored as f64 / micros * 1e6))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Ingest {
            machines,
            sensors,
            rows,
            runs,
            postgres_url,
            no_postgres,
            no_sqlite,
            tasks,
            writers,
        } => {
            let pg = postgres_url.filter(|_| !no_postgres);
            ingest(machines, sensors, rows, runs, pg, no_sqlite, tasks, writers).await
        }
        Cmd::Memory {
            machines,
            sensors,
            rows,
        } => memory(machines, sensors, rows).await,
        Cmd::Scoring {
            sensors,
            rows,
            runs,
            live_rows,
            postgres_url,
        } => scoring(sensors, rows, runs, live_rows, postgres_url).await,
    }
}
