//! The streaming detectors on NAB series, read at test time from `PDM_NAB_DIR` (default
//! `../shared/data/nab` beside the workspace). A sanity check that raw scores rise inside the
//! labelled windows (pointwise ROC AUC of the squashed scores, which order rows as the raw ones
//! do), not the NAB score; the likelihood mapping's AUC is printed for reference only, since it
//! is built to fire at the onset of a change rather than throughout a window. Skips, loudly, when
//! the data is absent.

use super::{nab_scores_with, ScoreMapping, StreamSpec};
use std::path::PathBuf;

const FILES: [&str; 6] = [
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realKnownCause/ec2_request_latency_system_failure.csv",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv",
    "realKnownCause/nyc_taxi.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
];

fn nab_dir() -> PathBuf {
    match std::env::var_os("PDM_NAB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab"),
    }
}

/// `(timestamp, value)` rows of a NAB CSV (header `timestamp,value`).
fn read_series(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (ts, v) = l.split_once(',').expect("timestamp,value");
            (ts.to_owned(), v.trim().parse().expect("numeric value"))
        })
        .collect()
}

/// The `[start, end]` windows of `file` in `combined_windows.json` as "YYYY-MM-DD HH:MM:SS"
/// strings; the layout (one key per file, a list of two-string lists) is fixed upstream, which a
/// few lines of string handling can read without a JSON dependency.
fn read_windows(json: &str, file: &str) -> Vec<(String, String)> {
    let key = format!("\"{file}\"");
    let start = json.find(&key).expect("file listed in the labels") + key.len();
    let body = &json[start..];
    let body = &body[body.find('[').expect("list")..];
    let mut depth = 0i32;
    let end = body
        .char_indices()
        .find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i)
        })
        .expect("closed list");
    let stamps: Vec<&str> = body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|s| s.get(..19).unwrap_or(s))
        .collect();
    stamps
        .chunks_exact(2)
        .map(|w| (w[0].to_owned(), w[1].to_owned()))
        .collect()
}

/// ROC AUC of `scores` for the positives in `labels` (Mann–Whitney U, ties counted half).
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * order[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let n_pos = labels.iter().filter(|&&l| l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

#[test]
fn auc_helper_on_known_cases() {
    assert_eq!(
        roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
        1.0
    );
    assert_eq!(
        roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
        0.0
    );
    assert_eq!(
        roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]),
        0.5
    );
    let third = roc_auc(&[0.1, 0.2, 0.9, 0.5], &[false, false, false, true]);
    assert!((third - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn windows_parser_reads_the_layout() {
    let json = r#"{
    "a/x.csv": [],
    "a/y.csv": [
        [
            "2014-04-10 07:15:00.000000",
            "2014-04-11 16:45:00.000000"
        ]
    ]
}"#;
    assert!(read_windows(json, "a/x.csv").is_empty());
    assert_eq!(
        read_windows(json, "a/y.csv"),
        [(
            "2014-04-10 07:15:00".to_owned(),
            "2014-04-11 16:45:00".to_owned()
        )]
    );
}

#[test]
fn scores_rise_in_labelled_windows_on_nab_files() {
    let dir = nab_dir();
    let Ok(json) = std::fs::read_to_string(dir.join("labels/combined_windows.json")) else {
        println!(
            "SKIPPED scores_rise_in_labelled_windows_on_nab_files: NAB labels not found at {} \
             (set PDM_NAB_DIR to the NAB folder holding data/ and labels/)",
            dir.display()
        );
        return;
    };
    let mut means = Vec::new();
    for name in StreamSpec::NAMES {
        let spec = StreamSpec::by_name(name).expect("known name");
        let mut aucs = Vec::new();
        for file in FILES {
            let Ok(text) = std::fs::read_to_string(dir.join("data").join(file)) else {
                println!("SKIPPED {file}: not found under {}", dir.display());
                continue;
            };
            let series = read_series(&text);
            let windows = read_windows(&json, file);
            // One timestamp format throughout, so string order is time order.
            let labels: Vec<bool> = series
                .iter()
                .map(|(ts, _)| windows.iter().any(|(a, b)| a <= ts && ts <= b))
                .collect();
            let values: Vec<f64> = series.iter().map(|(_, v)| *v).collect();
            let raw = nab_scores_with(&spec, ScoreMapping::Squash, &values).expect("scores");
            let lik = nab_scores_with(&spec, ScoreMapping::default(), &values).expect("scores");
            assert!(raw.iter().chain(&lik).all(|s| (0.0..=1.0).contains(s)));
            let auc = roc_auc(&raw, &labels);
            let lik_auc = roc_auc(&lik, &labels);
            println!("NAB {name} {file}: ROC AUC {auc:.3} (likelihood {lik_auc:.3})");
            aucs.push(auc);
        }
        if aucs.is_empty() {
            continue;
        }
        let mean = aucs.iter().sum::<f64>() / aucs.len() as f64;
        println!(
            "NAB {name}: mean ROC AUC {mean:.3} over {} files",
            aucs.len()
        );
        means.push((name, mean));
    }
    for (name, mean) in means {
        assert!(mean > 0.5, "{name}: mean ROC AUC {mean:.3}");
    }
}
