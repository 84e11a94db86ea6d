use super::*;
use ndarray::Array2;
use pdm_core::SensorKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn align(names: &[&str]) -> AlignConfig {
    AlignConfig {
        channels: names
            .iter()
            .map(|n| SensorKey::new(n).expect("key"))
            .collect(),
        sample_period_ms: 1_000,
        max_gap_ms: 5_000,
    }
}

const NAMES: [&str; 3] = ["flow", "current", "temp"];

/// Three channels driven by one load plus noise, seeded; from `fault` on, `temp` drifts away.
fn series(n: usize, seed: u64, fault: usize) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x = Array2::zeros((n, 3));
    for i in 0..n {
        let load = (i as f64 * 0.05).sin() + rng.random::<f64>() * 0.3;
        x[[i, 0]] = 10.0 * load + rng.random::<f64>();
        x[[i, 1]] = 3.0 * load + 0.5 * rng.random::<f64>() + 7.0;
        let drift = if i >= fault {
            (i - fault) as f64 * 0.2
        } else {
            0.0
        };
        x[[i, 2]] = 60.0 - 2.0 * load + rng.random::<f64>() + drift;
    }
    x
}

fn rows_of(x: &Array2<f64>) -> TrainingRows {
    TrainingRows {
        n_cols: x.ncols(),
        segments: vec![x.iter().copied().collect()],
    }
}

fn spec(kind: Option<&str>, params: &str) -> TrainSpec {
    TrainSpec {
        kind: kind.map(str::to_owned),
        params: params.into(),
        align: align(&NAMES),
    }
}

fn train(kind: Option<&str>, params: &str, x: &Array2<f64>) -> Result<Trained, ModelError> {
    DetectFactory.train(&spec(kind, params), &rows_of(x), &mut |_| true)
}

/// Live scores of every row of `x` (None while warming up), rows a second apart.
fn live_scores(bytes: &[u8], x: &Array2<f64>) -> Vec<Option<LiveScore>> {
    live_scores_every(bytes, x, 1_000)
}

/// Live scores of every row of `x`, rows `step_ms` apart.
fn live_scores_every(bytes: &[u8], x: &Array2<f64>, step_ms: i64) -> Vec<Option<LiveScore>> {
    let mut live = DetectFactory.load(bytes, &align(&NAMES)).expect("load");
    x.rows()
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            live.score(i as i64 * step_ms, r.as_slice().expect("row"))
                .expect("score")
        })
        .collect()
}

#[test]
fn pipeline_live_scores_equal_batch_scores_bit_for_bit() {
    for (seed, window, statistic) in [
        (1, 10, "t2"),
        (2, 5, "q"),
        (3, 2, "dominant"),
        (4, 17, "t2"),
        (5, 10, "dominant"),
    ] {
        let train_x = series(500, seed, usize::MAX);
        let params = format!(r#"{{"window": {window}, "statistic": "{statistic}"}}"#);
        let trained = train(None, &params, &train_x).expect("train");
        let model = Pipeline::from_bytes(&trained.bytes).expect("pipeline");
        let x = series(400, seed + 100, 250);
        let batch = model.scores(&x.view()).expect("scores");
        let live = live_scores(&trained.bytes, &x);
        assert!(live[..window - 1].iter().all(Option::is_none));
        let live: Vec<u64> = live[window - 1..]
            .iter()
            .map(|s| s.as_ref().expect("scored").score.to_bits())
            .collect();
        let batch: Vec<u64> = batch.iter().map(|s| s.to_bits()).collect();
        assert_eq!(live, batch, "seed {seed}, window {window}, {statistic}");
    }
}

#[test]
fn pipeline_reset_and_warm_rebuild_the_window() {
    let trained = train(None, r#"{"window": 4}"#, &series(300, 7, usize::MAX)).expect("train");
    let model = Pipeline::from_bytes(&trained.bytes).expect("pipeline");
    let x = series(50, 8, usize::MAX);
    let batch = model.scores(&x.view()).expect("scores");
    let mut live = DetectFactory
        .load(&trained.bytes, &align(&NAMES))
        .expect("load");
    for i in 0..20 {
        live.score(i, x.row(i as usize).as_slice().expect("row"))
            .expect("score");
    }
    live.reset();
    // After a reset the window starts afresh: 3 rows of warm-up again.
    for i in 20..23 {
        assert_eq!(
            live.score(i, x.row(i as usize).as_slice().unwrap())
                .unwrap(),
            None
        );
    }
    let s = live
        .score(23, x.row(23).as_slice().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(s.score.to_bits(), batch[20].to_bits());
    // Warm rows fill the window without scoring.
    live.reset();
    for i in 30..33 {
        live.warm(i, x.row(i as usize).as_slice().unwrap());
    }
    let s = live
        .score(33, x.row(33).as_slice().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(s.score.to_bits(), batch[30].to_bits());
}

#[test]
fn a_drifting_channel_is_flagged_and_blamed() {
    let trained = train(None, "{}", &series(600, 11, usize::MAX)).expect("train");
    // A row a minute: the health trend has one point per minute of row time.
    let live = live_scores_every(&trained.bytes, &series(600, 12, 300), 60_000);
    let flagged: Vec<&LiveScore> = live
        .iter()
        .flatten()
        .filter(|s| s.score > s.threshold)
        .collect();
    assert!(!flagged.is_empty());
    for s in &flagged {
        assert!(!s.contributions.is_empty() && s.contributions.len() <= MAX_CONTRIBUTIONS);
        assert!(s.contributions.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(s
            .contributions
            .iter()
            .all(|&(c, f)| c < 3 && f > 0.0 && f <= 1.0));
    }
    let last = flagged.last().expect("flagged");
    assert_eq!(last.contributions[0].0, 2, "temp drifts: {last:?}");
    // Normal rows have no contributions; health falls with the drift, RUL appears.
    assert!(live
        .iter()
        .flatten()
        .filter(|s| s.score <= s.threshold)
        .all(|s| s.contributions.is_empty()));
    let end = live.last().unwrap().as_ref().unwrap();
    assert!(end.health.unwrap() < 0.5, "{end:?}");
    assert!(live.iter().flatten().any(|s| s.rul_s.is_some()));
    // Only while degraded.
    assert!(live
        .iter()
        .flatten()
        .filter(|s| s.rul_s.is_some())
        .all(|s| s.health.unwrap() < DEGRADED_BELOW));
}

#[test]
fn a_healthy_machine_has_no_remaining_life_figure() {
    let trained = train(None, "{}", &series(600, 11, usize::MAX)).expect("train");
    for step_ms in [1_000, 60_000] {
        let live = live_scores_every(&trained.bytes, &series(3_000, 13, usize::MAX), step_ms);
        let with_rul = live.iter().flatten().filter(|s| s.rul_s.is_some()).count();
        assert_eq!(with_rul, 0, "rows {step_ms} ms apart");
    }
}

#[test]
fn the_remaining_life_counts_down_between_trend_points() {
    let trained = train(None, "{}", &series(600, 11, usize::MAX)).expect("train");
    // Rows a second apart over a drift of hours: one trend point a minute.
    let x = series(4 * 3_600, 14, 600);
    let live = live_scores(&trained.bytes, &x);
    let ruls: Vec<(usize, f64)> = live
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.as_ref().and_then(|s| s.rul_s).map(|r| (i, r)))
        .collect();
    assert!(!ruls.is_empty(), "a long drift gives an estimate");
    // Between trend points (one a minute) the estimate falls by exactly the time passed; it
    // moves otherwise only when a point joins, at most once per 60 rows.
    let consecutive: Vec<(f64, f64)> = ruls
        .windows(2)
        .filter(|w| w[1].0 == w[0].0 + 1 && w[0].1 > 1.0)
        .map(|w| (w[0].1, w[1].1))
        .collect();
    let counting_down = consecutive
        .iter()
        .filter(|(a, b)| (a - b - 1.0).abs() < 1e-6)
        .count();
    let refreshed = consecutive.len() - counting_down;
    assert!(counting_down > 0);
    assert!(
        refreshed <= consecutive.len() / 60 + 1,
        "{refreshed} refreshes in {} consecutive rows",
        consecutive.len()
    );
}

#[test]
fn forest_live_scores_equal_batch_scores_bit_for_bit() {
    for seed in [1u64, 2, 3] {
        let params = format!(r#"{{"n_estimators": 50, "random_state": {seed}}}"#);
        let trained = train(
            Some("isolation_forest"),
            &params,
            &series(400, seed, usize::MAX),
        )
        .expect("train");
        let model = IsolationForest::from_bytes(&trained.bytes).expect("forest");
        let x = series(200, seed + 10, 100);
        let data: Vec<f64> = x.iter().copied().collect();
        let batch = Detector::score(&model, Rows::new(&data, 3).unwrap()).unwrap();
        let live = live_scores(&trained.bytes, &x);
        assert_eq!(live.len(), batch.len());
        for (l, b) in live.iter().zip(&batch) {
            let l = l.as_ref().expect("no warm-up");
            assert_eq!(l.score.to_bits(), b.to_bits());
            assert_eq!(l.threshold, Detector::threshold(&model));
            assert!(l.contributions.is_empty());
        }
    }
}

#[test]
fn streaming_live_scores_equal_offline_updates_bit_for_bit() {
    for kind in StreamKind::ALL {
        for seed in [1u64, 2] {
            let trained =
                train(Some(kind.file_kind()), "{}", &series(300, seed, usize::MAX)).expect("train");
            assert_eq!(trained.kind, kind.file_kind());
            let mut offline = StreamModel::from_bytes(&trained.bytes).expect("stream");
            let x = series(300, seed + 20, 150);
            let live = live_scores(&trained.bytes, &x);
            for (i, l) in live.iter().enumerate() {
                let b = offline.update(x.row(i).as_slice().unwrap()).unwrap();
                assert_eq!(
                    l.as_ref().expect("no warm-up").score.to_bits(),
                    b.to_bits(),
                    "{kind:?} row {i}"
                );
            }
        }
    }
}

#[test]
fn a_saved_streaming_state_is_the_starting_state() {
    // A detector that has learnt 300 rows scores the next ones as if it had gone on.
    let x = series(600, 3, usize::MAX);
    let mut det = StreamKind::RobustZScore
        .default_spec()
        .build_model(3)
        .expect("build");
    for r in x.rows().into_iter().take(300) {
        det.update(r.as_slice().unwrap()).unwrap();
    }
    let bytes = with_names(&det.to_bytes(), &NAMES.map(String::from)).expect("names");
    let mut live = DetectFactory.load(&bytes, &align(&NAMES)).expect("load");
    for (i, r) in x.rows().into_iter().enumerate().skip(300) {
        let expected = det.update(r.as_slice().unwrap()).unwrap();
        let got = live
            .score(i as i64, r.as_slice().unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(got.score.to_bits(), expected.to_bits());
    }
}

#[test]
fn inspect_names_kind_features_and_warm_up() {
    let x = series(200, 1, usize::MAX);
    let p = train(None, r#"{"window": 6}"#, &x).expect("train");
    let info = DetectFactory.inspect(&p.bytes).expect("inspect");
    assert_eq!(info.kind, "pipeline");
    assert_eq!(info.feature_names, NAMES);
    assert_eq!(info.warmup_rows, 5);
    let f = train(Some("isolation_forest"), r#"{"n_estimators": 10}"#, &x).expect("train");
    let info = DetectFactory.inspect(&f.bytes).expect("inspect");
    assert_eq!(
        (info.kind.as_str(), info.warmup_rows),
        ("isolation_forest", 0)
    );
    assert_eq!(info.feature_names, NAMES);
    let s = train(Some("ewma_chart"), "{}", &x).expect("train");
    let info = DetectFactory.inspect(&s.bytes).expect("inspect");
    assert_eq!((info.kind.as_str(), info.warmup_rows), ("ewma_chart", 0));
    assert_eq!(info.feature_names, NAMES);
}

#[test]
fn scalers_and_health_indexes_do_not_score_rows() {
    let x = series(50, 1, usize::MAX);
    let scaler = crate::StandardScaler::fit(&x.view()).unwrap().to_bytes();
    let e = DetectFactory.inspect(&scaler).unwrap_err();
    let ModelError::File(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.contains("standard_scaler") && msg.contains("pipeline, isolation_forest"),
        "{msg}"
    );
    assert!(DetectFactory.load(&scaler, &align(&NAMES)).is_err());
    let health = HealthIndex::params().check().unwrap().build().to_bytes();
    assert!(
        matches!(DetectFactory.inspect(&health), Err(ModelError::File(m)) if m.contains("health_index"))
    );
}

#[test]
fn damaged_files_are_refused_with_the_reason() {
    let p = train(None, "{}", &series(200, 1, usize::MAX)).expect("train");
    let e = DetectFactory.inspect(b"not json").unwrap_err();
    assert!(
        matches!(&e, ModelError::File(m) if m.contains("not a pdm model file")),
        "{e:?}"
    );
    let mut v: Value = serde_json::from_slice(&p.bytes).unwrap();
    v["model"]["margin"] = json!(4.0);
    let edited = serde_json::to_vec(&v).unwrap();
    let e = DetectFactory
        .load(&edited, &align(&NAMES))
        .err()
        .expect("refused");
    assert!(
        matches!(&e, ModelError::File(m) if m.contains("checksum")),
        "{e:?}"
    );
    let mut v: Value = serde_json::from_slice(&p.bytes).unwrap();
    v["format_version"] = json!(99);
    let newer = serde_json::to_vec(&v).unwrap();
    assert!(
        matches!(DetectFactory.inspect(&newer), Err(ModelError::File(m)) if m.contains("version 99"))
    );
}

#[test]
fn load_refuses_other_channels_naming_both_lists() {
    let p = train(None, "{}", &series(200, 1, usize::MAX)).expect("train");
    for other in [&["flow", "temp", "current"][..], &["flow", "current"]] {
        let e = DetectFactory
            .load(&p.bytes, &align(other))
            .err()
            .expect("refused");
        let ModelError::Mismatch(msg) = &e else {
            panic!("{e:?}")
        };
        assert!(msg.contains("[flow, current, temp]"), "{msg}");
        assert!(msg.contains(&format!("[{}]", other.join(", "))), "{msg}");
    }
    // An untrained streaming file has numbered features, which are not the channels.
    let det = StreamKind::EwmaChart.default_spec().build_model(3).unwrap();
    let e = DetectFactory
        .load(&det.to_bytes(), &align(&NAMES))
        .err()
        .expect("refused");
    assert!(
        matches!(&e, ModelError::Mismatch(m) if m.contains("[x0, x1, x2]")),
        "{e:?}"
    );
}

#[test]
fn bad_rows_are_errors_and_leave_the_state_unchanged() {
    let x = series(100, 1, usize::MAX);
    for kind in [None, Some("isolation_forest"), Some("robust_zscore")] {
        let params = if kind.is_none() {
            r#"{"window": 3}"#
        } else {
            "{}"
        };
        let t = train(kind, params, &series(300, 2, usize::MAX)).expect("train");
        let mut a = DetectFactory.load(&t.bytes, &align(&NAMES)).unwrap();
        let mut b = DetectFactory.load(&t.bytes, &align(&NAMES)).unwrap();
        for (i, r) in x.rows().into_iter().enumerate() {
            let r = r.as_slice().unwrap();
            if i % 7 == 3 {
                let e = a.score(i as i64, &r[..2]).unwrap_err();
                assert!(
                    matches!(&e, ModelError::Mismatch(m) if m.contains("2 values")),
                    "{e:?}"
                );
                let e = a.score(i as i64, &[r[0], f64::NAN, r[2]]).unwrap_err();
                assert!(
                    matches!(&e, ModelError::Data(m) if m.contains("current")),
                    "{e:?}"
                );
                a.warm(i as i64, &[f64::INFINITY, 0.0, 0.0]); // ignored
            }
            assert_eq!(
                a.score(i as i64, r).unwrap(),
                b.score(i as i64, r).unwrap(),
                "{kind:?} row {i}"
            );
        }
    }
}

#[test]
fn default_training_is_the_default_pipeline() {
    let x = series(300, 5, usize::MAX);
    let t = train(None, "{}", &x).expect("train");
    assert_eq!(t.kind, "pipeline");
    let reference = Pipeline::params()
        .fit(&x.view(), &NAMES)
        .expect("fit")
        .to_bytes();
    assert_eq!(
        t.bytes, reference,
        "the same file as Pipeline::params().fit"
    );
    let params: Value = serde_json::from_str(&t.params).unwrap();
    assert_eq!(
        params,
        json!({"window": 10, "n_components": 0.9, "statistic": "t2", "margin": 3.0, "k": 3, "n": 5})
    );
    let metrics: Value = serde_json::from_str(&t.metrics).unwrap();
    assert_eq!(metrics["rows"], 300);
    assert_eq!(metrics["segments"], 1);
    assert_eq!(metrics["threshold"], 1.0);
    assert!(metrics["t2_limit"].as_f64().unwrap() > 0.0);
    assert!(metrics["n_components"].as_u64().unwrap() >= 1);
}

#[test]
fn pipeline_windows_do_not_span_segments() {
    let x = series(300, 5, usize::MAX);
    let data: Vec<f64> = x.iter().copied().collect();
    let rows = TrainingRows {
        n_cols: 3,
        segments: vec![data[..150 * 3].to_vec(), data[150 * 3..].to_vec()],
    };
    let t = DetectFactory
        .train(&spec(None, "{}"), &rows, &mut |_| true)
        .expect("train");
    let metrics: Value = serde_json::from_str(&t.metrics).unwrap();
    assert_eq!(
        (metrics["rows"].as_u64(), metrics["segments"].as_u64()),
        (Some(300), Some(2))
    );
    let model = Pipeline::from_bytes(&t.bytes).unwrap();
    // 2 x 141 windows, not 291: the scaler saw no window across the gap.
    let whole = Pipeline::params().fit(&x.view(), &NAMES).unwrap();
    assert_ne!(model.scaler(), whole.scaler());
}

#[test]
fn parameter_errors_name_the_parameter_and_the_allowed_ones() {
    let x = series(200, 1, usize::MAX);
    let e = train(None, r#"{"windw": 5}"#, &x).unwrap_err();
    assert_eq!(
        e,
        ModelError::Params(
            "unknown parameter \"windw\" for pipeline; allowed: window, n_components, statistic, \
             margin, k, n"
                .into()
        )
    );
    let e = train(None, r#"{"window": "ten"}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("window must be a non-negative integer")),
        "{e:?}"
    );
    let e = train(None, r#"{"window": 0}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("window must be at least 2")),
        "{e:?}"
    );
    let e = train(None, r#"{"statistic": "t3"}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("statistic must be one of")),
        "{e:?}"
    );
    let e = train(None, r#"{"n_components": 1.5}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("n_components")),
        "{e:?}"
    );
    let e = train(None, "[1]", &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("JSON object")),
        "{e:?}"
    );
    let e = train(Some("isolation_forest"), r#"{"n_jobs": 2}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("\"n_jobs\"") && m.contains("random_state")),
        "{e:?}"
    );
    let e = train(Some("isolation_forest"), r#"{"bootstrap": 1}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("bootstrap must be true or false")),
        "{e:?}"
    );
    let e = train(Some("robust_zscore"), r#"{"window": 2.5}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("window must be a count")),
        "{e:?}"
    );
    let e = train(Some("robust_zscore"), r#"{"alpha": 1}"#, &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("\"alpha\"") && m.contains("warm_up")),
        "{e:?}"
    );
    let e = train(Some("pca_detector"), "{}", &x).unwrap_err();
    assert!(
        matches!(&e, ModelError::Params(m) if m.contains("trainable kinds: pipeline, isolation_forest")),
        "{e:?}"
    );
    // Filled-in parameters of other kinds.
    let t = train(
        Some("isolation_forest"),
        r#"{"n_estimators": 10, "random_state": 3}"#,
        &x,
    )
    .unwrap();
    let params: Value = serde_json::from_str(&t.params).unwrap();
    assert_eq!(params["max_samples"], "auto");
    assert_eq!(params["random_state"], 3);
    let t = train(Some("robust_zscore"), r#"{"window": 50}"#, &x).unwrap();
    let params: Value = serde_json::from_str(&t.params).unwrap();
    assert_eq!(params["window"], 50);
    assert!(params.get("warm_up").is_some());
}

#[test]
fn too_few_rows_say_how_many_there_are_and_are_needed() {
    let x = series(10, 1, usize::MAX);
    let e = train(None, "{}", &x).unwrap_err();
    let ModelError::Data(msg) = &e else {
        panic!("{e:?}")
    };
    assert!(
        msg.contains("11 rows") && msg.contains("10 in 1 segments"),
        "{msg}"
    );
    let e = train(Some("isolation_forest"), "{}", &series(1, 1, usize::MAX)).unwrap_err();
    assert!(
        matches!(&e, ModelError::Data(m) if m.contains("at least 2") && m.contains("has 1")),
        "{e:?}"
    );
    let empty = TrainingRows {
        n_cols: 3,
        segments: vec![],
    };
    let e = DetectFactory
        .train(&spec(Some("ewma_chart"), "{}"), &empty, &mut |_| true)
        .unwrap_err();
    assert!(
        matches!(&e, ModelError::Data(m) if m.contains("it has 0")),
        "{e:?}"
    );
    let wrong = TrainingRows {
        n_cols: 2,
        segments: vec![vec![0.0; 10]],
    };
    assert!(matches!(
        DetectFactory.train(&spec(None, "{}"), &wrong, &mut |_| true),
        Err(ModelError::Mismatch(_))
    ));
}

#[test]
fn progress_is_reported_and_can_cancel() {
    let x = series(300, 1, usize::MAX);
    for kind in [None, Some("isolation_forest"), Some("half_space_trees")] {
        let mut seen = Vec::new();
        DetectFactory
            .train(&spec(kind, "{}"), &rows_of(&x), &mut |f| {
                seen.push(f);
                true
            })
            .expect("train");
        assert!(
            seen.len() >= 3 && seen.windows(2).all(|w| w[0] <= w[1]),
            "{seen:?}"
        );
        assert_eq!((seen[0], *seen.last().unwrap()), (0.0, 1.0));
        let mut calls = 0;
        let e = DetectFactory
            .train(&spec(kind, "{}"), &rows_of(&x), &mut |_| {
                calls += 1;
                calls < 2
            })
            .unwrap_err();
        assert_eq!(e, ModelError::Data("training cancelled".into()));
    }
}

#[test]
fn trained_models_load_and_score() {
    let x = series(300, 1, usize::MAX);
    let mut kinds: Vec<&str> = vec!["pipeline", "isolation_forest"];
    kinds.extend(StreamKind::ALL.iter().map(|k| k.file_kind()));
    for kind in kinds {
        let t = train(Some(kind), "{}", &x).expect("train");
        let live = live_scores(&t.bytes, &series(100, 2, usize::MAX));
        let s = live.last().unwrap().as_ref().expect("scored");
        assert!(s.score.is_finite() && s.threshold.is_finite(), "{kind}");
        assert!(s.health.is_some(), "{kind}");
    }
}

#[test]
fn pca_detector_files_score_live_with_attribution() {
    let x = series(300, 1, usize::MAX);
    let model = PcaDetector::params()
        .fit(&x.view())
        .unwrap()
        .with_feature_names(NAMES.map(String::from).to_vec())
        .unwrap();
    let bytes = model.to_bytes();
    let live = live_scores(&bytes, &series(300, 2, 100));
    let y = series(300, 2, 100);
    let data: Vec<f64> = y.iter().copied().collect();
    let batch = Detector::score(&model, Rows::new(&data, 3).unwrap()).unwrap();
    for (l, b) in live.iter().zip(&batch) {
        let l = l.as_ref().unwrap();
        assert_eq!(l.score.to_bits(), b.to_bits());
        assert_eq!(l.score > l.threshold, !l.contributions.is_empty());
    }
}

/// A rough throughput comparison, printed (run with `--nocapture`); no timed assertion.
#[test]
fn live_pipeline_throughput_is_printed() {
    let t = train(None, "{}", &series(1000, 1, usize::MAX)).expect("train");
    let model = Pipeline::from_bytes(&t.bytes).unwrap();
    let x = series(20_000, 2, usize::MAX);
    let start = std::time::Instant::now();
    let batch = model.scores(&x.view()).unwrap();
    let batch_s = start.elapsed().as_secs_f64();
    let mut live = DetectFactory.load(&t.bytes, &align(&NAMES)).unwrap();
    let start = std::time::Instant::now();
    let mut n = 0;
    for (i, r) in x.rows().into_iter().enumerate() {
        if live
            .score(i as i64 * 1000, r.as_slice().unwrap())
            .unwrap()
            .is_some()
        {
            n += 1;
        }
    }
    let live_s = start.elapsed().as_secs_f64();
    assert_eq!(n, batch.len());
    println!(
        "pipeline, 3 channels, window 10: scores {:.0} rows/s, live {:.0} rows/s (rough, debug \
         or release as built)",
        x.nrows() as f64 / batch_s,
        x.nrows() as f64 / live_s
    );
}

#[test]
fn pipeline_parity_holds_for_other_channel_counts_and_components() {
    for (seed, n_cols, n_components) in [
        (21u64, 1, "0.9"),
        (22, 2, "1"),
        (23, 8, "3"),
        (24, 8, "0.99"),
    ] {
        let names: Vec<String> = (0..n_cols).map(|c| format!("s{c}")).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut gen = |n: usize| {
            Array2::from_shape_fn((n, n_cols), |(i, c)| {
                let load = (i as f64 * 0.07).sin();
                // Channel 1 constant when there is one: a scale of 1.
                if c == 1 {
                    5.0
                } else {
                    (c as f64 + 1.0) * load + rng.random::<f64>() * 1e3f64.powi(c as i32 % 3)
                }
            })
        };
        let (train_x, x) = (gen(400), gen(300));
        let spec = TrainSpec {
            kind: None,
            params: format!(
                r#"{{"window": 7, "n_components": {n_components}, "statistic": "dominant"}}"#
            ),
            align: align(&name_refs),
        };
        let t = DetectFactory
            .train(&spec, &rows_of(&train_x), &mut |_| true)
            .expect("train");
        let batch = Pipeline::from_bytes(&t.bytes)
            .unwrap()
            .scores(&x.view())
            .unwrap();
        let mut live = DetectFactory.load(&t.bytes, &align(&name_refs)).unwrap();
        let scores: Vec<u64> = x
            .rows()
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| live.score(i as i64, r.as_slice().unwrap()).unwrap())
            .map(|s| s.score.to_bits())
            .collect();
        let batch: Vec<u64> = batch.iter().map(|s| s.to_bits()).collect();
        assert_eq!(
            scores, batch,
            "seed {seed}, {n_cols} channels, n_components {n_components}"
        );
    }
}

#[test]
fn the_health_trail_keeps_the_last_points_in_order() {
    let mut trail = Trail::new(5);
    let mut all = Vec::new();
    for i in 0..13 {
        trail.push(i as f64, 1.0 - i as f64 / 100.0);
        all.push(i as f64);
        let from = all.len().saturating_sub(5);
        assert_eq!(trail.slices().0, &all[from..]);
        assert_eq!(trail.last_time(), Some(i as f64));
    }
    trail.clear();
    assert_eq!(trail.slices().0.len(), 0);
    assert_eq!(trail.last_time(), None);
}
