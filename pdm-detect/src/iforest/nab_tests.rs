//! The forest on a real series: NAB's machine temperature, read at test time from `PDM_NAB_DIR`
//! (default `../shared/data/nab` beside the workspace). Skips, loudly, when the data is absent.

use super::*;
use ndarray::Array2;
use std::path::PathBuf;

const FILE: &str = "realKnownCause/machine_temperature_system_failure.csv";

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

/// The `[start, end]` windows of `file` in `combined_windows.json`, as "YYYY-MM-DD HH:MM:SS"
/// strings. A few lines of string handling spare the crate a JSON dependency; the file's layout
/// (one key per file, a list of two-string lists) is fixed upstream.
fn read_windows(json: &str, file: &str) -> Vec<(String, String)> {
    let key = format!("\"{file}\"");
    let start = json.find(&key).expect("file listed in the labels") + key.len();
    let rest = &json[start..];
    let body = &rest[rest.find('[').expect("list")..];
    // The file's list ends at the first "]" that closes a list of lists: "]" then, past
    // whitespace, "," or "}" of the outer object, or the list was empty.
    let mut depth = 0usize;
    let mut end = body.len();
    for (i, ch) in body.char_indices() {
        match ch {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    end = i;
                    break;
                }
            }
            _ => {}
        }
    }
    let stamps: Vec<String> = body[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|s| s.get(..19).unwrap_or(s).to_owned())
        .collect();
    stamps
        .chunks_exact(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .collect()
}

/// ROC AUC of `scores` for the positives in `labels` (Mann–Whitney U, ties counted half).
fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of tied scores.
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    let n_pos = labels.iter().filter(|&&l| l).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
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
    // One positive above two of three negatives: 2/3.
    assert!(
        (roc_auc(&[0.1, 0.2, 0.9, 0.5], &[false, false, false, true]) - 2.0 / 3.0).abs() < 1e-12
    );
}

#[test]
fn windows_parser_reads_the_layout() {
    let json = r#"{
    "a/x.csv": [],
    "a/y.csv": [
        [
            "2014-04-10 07:15:00.000000",
            "2014-04-11 16:45:00.000000"
        ],
        [
            "2014-05-10 07:15:00.000000",
            "2014-05-11 16:45:00.000000"
        ]
    ]
}"#;
    assert!(read_windows(json, "a/x.csv").is_empty());
    assert_eq!(
        read_windows(json, "a/y.csv"),
        [
            (
                "2014-04-10 07:15:00".to_owned(),
                "2014-04-11 16:45:00".to_owned()
            ),
            (
                "2014-05-10 07:15:00".to_owned(),
                "2014-05-11 16:45:00".to_owned()
            )
        ]
    );
}

#[test]
fn labelled_windows_score_higher_on_nab_machine_temperature() {
    let dir = nab_dir();
    let csv = dir.join("data").join(FILE);
    let labels = dir.join("labels/combined_windows.json");
    let (Ok(text), Ok(json)) = (
        std::fs::read_to_string(&csv),
        std::fs::read_to_string(&labels),
    ) else {
        println!(
            "SKIPPED labelled_windows_score_higher_on_nab_machine_temperature: NAB data not found \
             at {} (set PDM_NAB_DIR to the NAB folder holding data/ and labels/)",
            dir.display()
        );
        return;
    };
    let series = read_series(&text);
    let windows = read_windows(&json, FILE);
    assert_eq!(windows.len(), 4, "the file has four labelled windows");
    // Timestamps share one fixed-width format, so string order is time order.
    let in_window: Vec<bool> = series
        .iter()
        .map(|(ts, _)| windows.iter().any(|(a, b)| a <= ts && ts <= b))
        .collect();

    // Two features until window features exist: the value and its change from the last row.
    let x = Array2::from_shape_fn((series.len(), 2), |(i, j)| match (j, i) {
        (0, _) => series[i].1,
        (_, 0) => 0.0,
        _ => series[i].1 - series[i - 1].1,
    });
    let model = IsolationForest::params()
        .random_state(7)
        .n_threads(2)
        .fit(&x.view())
        .expect("fit");
    let scores = model.anomaly_score(&x.view()).expect("score");
    let mean = |want: bool| {
        let v: Vec<f64> = scores
            .iter()
            .zip(&in_window)
            .filter(|(_, &w)| w == want)
            .map(|(s, _)| *s)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (inside, outside) = (mean(true), mean(false));
    let auc = roc_auc(scores.as_slice().expect("contiguous"), &in_window);
    println!(
        "NAB {FILE}: {} rows, mean anomaly score {inside:.4} in windows vs {outside:.4} outside, \
         ROC AUC {auc:.3}",
        series.len()
    );
    assert!(inside > outside);
    assert!(auc > 0.5);
}
