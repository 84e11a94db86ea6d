//! The NAB scorer against NAB's own published numbers: scoring the Windowed Gaussian detector's
//! published result files must give its scoreboard entry, 39.65 / 20.87 / 47.41
//! (results/final_results.json: 39.650 / 20.868 / 47.410).
//!
//! The data is read at test time from `PDM_NAB_DIR` (default `../shared/data/nab` beside the
//! workspace). Without it the test prints `SKIPPED` and passes, unless `PDM_TEST_REQUIRE_DATA=1`.

use super::nab::{score_corpus, windows_from_times, CostProfile, NabFile, PROBATION_PERCENT};
use super::text::{parse_nab_results, parse_nab_windows};
use std::path::{Path, PathBuf};

const DETECTOR: &str = "windowedGaussian";
/// NAB's results/final_results.json, in CostProfile::ALL order.
const PUBLISHED: [f64; 3] = [39.650, 20.868, 47.410];

fn nab_dir() -> PathBuf {
    match std::env::var_os("PDM_NAB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab"),
    }
}

fn skip(what: &str, dir: &Path) {
    let msg = format!(
        "SKIPPED {what}: NAB data not found at {} (set PDM_NAB_DIR to the folder holding \
         labels/ and results/{DETECTOR}/)",
        dir.display()
    );
    if std::env::var("PDM_TEST_REQUIRE_DATA").as_deref() == Ok("1") {
        panic!("{msg}, and PDM_TEST_REQUIRE_DATA=1");
    }
    eprintln!("{msg}");
}

/// `(key relative to data/, path)` of every `<category>/<detector>_<file>.csv` result file.
fn result_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let categories = std::fs::read_dir(dir).expect("results dir");
    for cat in categories {
        let cat = cat.expect("dir entry").path();
        if !cat.is_dir() {
            continue; // the <detector>_<profile>_scores.csv summaries
        }
        let cat_name = cat
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for f in std::fs::read_dir(&cat).expect("category dir") {
            let f = f.expect("dir entry").path();
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            let data_name = name
                .strip_prefix(&format!("{DETECTOR}_"))
                .expect("result files are named <detector>_<data file>");
            out.push((format!("{cat_name}/{data_name}"), f));
        }
    }
    out.sort();
    out
}

#[test]
fn reproduces_published_windowed_gaussian_scores() {
    let dir = nab_dir();
    let labels_path = dir.join("labels/combined_windows.json");
    let results = dir.join("results").join(DETECTOR);
    let Ok(json) = std::fs::read_to_string(&labels_path) else {
        skip("reproduces_published_windowed_gaussian_scores", &dir);
        return;
    };
    if !results.is_dir() {
        skip("reproduces_published_windowed_gaussian_scores", &dir);
        return;
    }
    let labels = parse_nab_windows("combined_windows.json", &json).expect("labels parse");
    let files: Vec<NabFile> = result_files(&results)
        .into_iter()
        .map(|(key, path)| {
            let text = std::fs::read_to_string(&path).expect("read result file");
            let series = parse_nab_results(&path.display().to_string(), &text).expect("parse");
            let limits = labels
                .get(&key)
                .unwrap_or_else(|| panic!("{key} not in labels"));
            let windows = windows_from_times(&key, &series.times, limits).expect("windows");
            NabFile::new(key, series.values, windows).expect("valid file")
        })
        .collect();
    assert_eq!(files.len(), 58, "NAB v1.1 has 58 files");
    assert_eq!(files.iter().map(|f| f.windows().len()).sum::<usize>(), 116);

    let report = score_corpus(&files, &CostProfile::ALL, PROBATION_PERCENT).expect("score");
    for (r, published) in report.iter().zip(PUBLISHED) {
        println!(
            "{DETECTOR} {:<20} threshold {:.6} raw {:.4} null {} normalised {:.3} (published {published})",
            r.profile.name, r.threshold, r.raw_score, r.null_score, r.normalized
        );
        assert!(
            (r.normalized - published).abs() <= 0.01,
            "{}: {} vs published {published}",
            r.profile.name,
            r.normalized
        );
    }
}
