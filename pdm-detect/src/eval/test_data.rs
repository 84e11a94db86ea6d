//! NAB series with their labels, for the tests of every detector: read at test time from
//! `PDM_NAB_DIR` (default `../shared/data/nab` beside the workspace) with the crate's own parsers.
//! Absent data skips the test loudly, or fails it when `PDM_TEST_REQUIRE_DATA=1`.

use std::path::PathBuf;

use std::collections::BTreeMap;

use super::text::{parse_nab_data, parse_nab_windows, NabSeries};

/// The NAB folder (holding `data/` and `labels/`).
pub(crate) fn nab_dir() -> PathBuf {
    match std::env::var_os("PDM_NAB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/nab"),
    }
}

/// One NAB file's values and, per row, whether it lies in a labelled anomaly window.
pub(crate) struct Labelled {
    pub(crate) values: Vec<f64>,
    pub(crate) in_window: Vec<bool>,
    pub(crate) windows: usize,
}

fn read(p: PathBuf) -> Result<String, String> {
    std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Prints why the calling test is skipped, or fails it when `PDM_TEST_REQUIRE_DATA=1`.
fn skip(test: &str, why: &str) {
    let message = format!(
        "SKIPPED {test}: NAB data not found ({why}); set PDM_NAB_DIR to the NAB folder holding \
         data/ and labels/"
    );
    assert!(
        std::env::var("PDM_TEST_REQUIRE_DATA").as_deref() != Ok("1"),
        "{message}"
    );
    eprintln!("{message}");
}

/// One corpus file: its key (`category/file.csv`), series and windows as `[start, end]` times.
pub(crate) type CorpusFile = (String, NabSeries, Vec<(f64, f64)>);

/// Every file of the labels (`combined_windows.json`), in key order; or `None` after printing why
/// the calling test is skipped.
pub(crate) fn nab_corpus(test: &str) -> Option<Vec<CorpusFile>> {
    let dir = nab_dir();
    let labels: BTreeMap<String, Vec<(f64, f64)>> =
        match read(dir.join("labels/combined_windows.json")) {
            Ok(json) => parse_nab_windows("combined_windows.json", &json).expect("NAB labels"),
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
    let mut out = Vec::with_capacity(labels.len());
    for (key, windows) in labels {
        match read(dir.join("data").join(&key)) {
            Ok(csv) => {
                let series = parse_nab_data(&key, &csv).expect("a NAB data file");
                out.push((key, series, windows));
            }
            Err(why) => {
                skip(test, &why);
                return None;
            }
        }
    }
    Some(out)
}

/// `file` (e.g. `realKnownCause/nyc_taxi.csv`) with its labels, or `None` after printing why
/// the calling test is skipped.
pub(crate) fn nab_labelled(test: &str, file: &str) -> Option<Labelled> {
    let dir = nab_dir();
    let loaded = read(dir.join("data").join(file))
        .and_then(|csv| read(dir.join("labels/combined_windows.json")).map(|json| (csv, json)));
    let (csv, json) = match loaded {
        Ok(texts) => texts,
        Err(why) => {
            skip(test, &why);
            return None;
        }
    };
    let series = parse_nab_data(file, &csv).expect("a NAB data file");
    let all = parse_nab_windows("combined_windows.json", &json).expect("NAB labels");
    let windows = all.get(file).cloned().unwrap_or_default();
    let in_window = series
        .times
        .iter()
        .map(|t| windows.iter().any(|(a, b)| a <= t && t <= b))
        .collect();
    Some(Labelled {
        values: series.values,
        in_window,
        windows: windows.len(),
    })
}

/// The SKAB folder (holding `data/valve1` and `data/valve2`), from `PDM_SKAB_DIR` (default
/// `../shared/data/skab` beside the workspace).
pub(crate) fn skab_dir() -> PathBuf {
    match std::env::var_os("PDM_SKAB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/skab"),
    }
}

/// Every labelled file of SKAB's `valve1` and `valve2` folders, parsed, in name order; or `None`
/// after printing why the calling test is skipped (failing instead when
/// `PDM_TEST_REQUIRE_DATA=1`).
pub(crate) fn skab_valve_files(test: &str) -> Option<Vec<super::text::SkabFile>> {
    let dir = skab_dir().join("data");
    let mut paths = Vec::new();
    for folder in ["valve1", "valve2"] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            let message = format!(
                "SKIPPED {test}: SKAB data not found at {}; set PDM_SKAB_DIR to the SKAB folder \
                 holding data/valve1 and data/valve2",
                dir.join(folder).display()
            );
            assert!(
                std::env::var("PDM_TEST_REQUIRE_DATA").as_deref() != Ok("1"),
                "{message}"
            );
            eprintln!("{message}");
            return None;
        };
        let mut csvs: Vec<PathBuf> = entries
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        csvs.sort();
        paths.extend(csvs);
    }
    Some(
        paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("a readable SKAB file");
                super::text::parse_skab(&p.display().to_string(), &text).expect("a SKAB file")
            })
            .collect(),
    )
}
