//! Evaluation of pdm detectors on public anomaly benchmarks, beside the published leaderboards.
//!
//! - `eval skab --data DIR [--detector pipeline]`: every SKAB-format CSV under DIR (recursively):
//!   per file, train on the first 400 rows, flag the rest; point-wise F1 / FAR / MAR summed over
//!   files, and SKAB's changepoint score of the alarm edges.
//! - `eval nab --data DIR --labels FILE [--detector robust-zscore]`: runs a detector over a NAB corpus
//!   (`DIR/<category>/<file>.csv`, `timestamp,value`) and scores it with the three NAB profiles.
//! - `eval nab-results --results DIR --labels FILE`: scores precomputed NAB result files
//!   (`DIR/<category>/<detector>_<file>.csv` with an `anomaly_score` column), e.g. NAB's
//!   published Windowed Gaussian results.
//!
//! The metrics live in `pdm_detect::eval`; this binary reads the files, runs the detectors and
//! prints tables. See docs/evaluation.md.
//!
//! `cargo run --release -p benches --bin eval -- nab-results --results ../shared/data/nab/results/windowedGaussian --labels ../shared/data/nab/labels/combined_windows.json`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};
use ndarray::{Array2, ArrayView2, Axis, Slice};
use pdm_detect::eval::nab::{
    probation_rows, score_corpus, windows_from_times, CostProfile, NabFile, ProfileReport,
    PROBATION_PERCENT,
};
use pdm_detect::eval::skab::{
    alarm_edges, changepoint_outcome, changepoint_scores, median3, train_test_split, Confusion,
    CpOutcome, CpProfile, CP_WINDOW_SECONDS, TRAIN_ROWS,
};
use pdm_detect::eval::text::{parse_nab_data, parse_nab_results, parse_nab_windows, parse_skab};
use pdm_detect::stream::{self, ParamValue, StreamKind, StreamSpec};
use pdm_detect::{calibrate_threshold, Contamination, IsolationForest, Pipeline, StandardScaler};

#[derive(Debug, Parser)]
#[command(about = "Score pdm detectors on NAB and SKAB, beside the published leaderboards")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score a detector on every SKAB-format CSV under a folder.
    Skab {
        /// Folder searched recursively for `;`-separated CSVs with `anomaly` and `changepoint`
        /// [default: $PDM_SKAB_DIR/data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// Detector to run.
        #[arg(long, value_enum, default_value_t = DetectorName::Pipeline)]
        detector: DetectorName,
        /// Training rows at the start of each file (SKAB's protocol: 400).
        #[arg(long, default_value_t = TRAIN_ROWS)]
        train_rows: usize,
        /// Expected outlier share of the training rows; sets the alarm threshold (SKAB's
        /// reference Isolation Forest uses 0.0005).
        #[arg(long, default_value_t = 0.0005)]
        contamination: f64,
        /// Random seed of the detector (the first one with --seeds).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of runs, with seeds seed, seed+1, ...: one row each, plus the pooled counts.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
    },
    /// Run a detector over a NAB corpus and score it.
    Nab {
        /// Folder holding `<category>/<file>.csv` data files [default: $PDM_NAB_DIR/data].
        #[arg(long)]
        data: Option<PathBuf>,
        /// NAB's windows file [default: $PDM_NAB_DIR/labels/combined_windows.json].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Detector to run.
        #[arg(long, value_enum, default_value_t = DetectorName::Iforest)]
        detector: DetectorName,
        /// Random seed of the detector (the first one with --seeds).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of runs, with seeds seed, seed+1, ...: one row each, plus their mean.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: u64,
        /// Also print each file's raw standard-profile score (of the first run).
        #[arg(long)]
        per_file: bool,
    },
    /// The fleet scenario of issue 10: a seeded simulated week of machines with faults at known
    /// times, through the engine, the live path and the alarm stage on a virtual clock; per
    /// fault whether and when it was alarmed, and false alarms per machine-week.
    Fleet {
        /// Machines in the fleet (at least 20).
        #[arg(long, default_value_t = 24)]
        machines: usize,
        /// Monitored days, after one training day (at least 3).
        #[arg(long, default_value_t = 7)]
        days: u64,
        /// Seeds, one run each (repeat the flag or give a comma-separated list).
        #[arg(long, value_delimiter = ',', default_values_t = [42u64])]
        seed: Vec<u64>,
        /// Seconds between two samples of a machine.
        #[arg(long, default_value_t = 10)]
        interval_s: u64,
        /// Parameters of the trained models, a JSON object ('{}': the pipeline's defaults)
        /// [default: {"statistic": "dominant", "margin": 2}].
        #[arg(long)]
        model_params: Option<String>,
        /// Print one JSON object per run instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Score precomputed NAB result files.
    NabResults {
        /// Folder holding `<category>/<detector>_<file>.csv` files with an `anomaly_score`
        /// column [default: $PDM_NAB_DIR/results/windowedGaussian].
        #[arg(long)]
        results: Option<PathBuf>,
        /// NAB's windows file [default: $PDM_NAB_DIR/labels/combined_windows.json].
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Also print each file's raw standard-profile score.
        #[arg(long)]
        per_file: bool,
    },
}

/// The detectors this binary can run: the pipeline, the Isolation Forest, and every streaming
/// detector registered in pdm-detect (`StreamKind::ALL`), which needs nothing here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DetectorName {
    /// pdm's default pipeline.
    Pipeline,
    /// Isolation Forest.
    Iforest,
    /// A registered streaming detector, named on the command line with `-` for `_`.
    Stream(StreamKind),
}

impl ValueEnum for DetectorName {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: OnceLock<Vec<DetectorName>> = OnceLock::new();
        ALL.get_or_init(|| {
            [Self::Pipeline, Self::Iforest]
                .into_iter()
                .chain(StreamKind::ALL.into_iter().map(Self::Stream))
                .collect()
        })
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Pipeline => PossibleValue::new("pipeline").help(
                "pdm's default pipeline: trailing means, standard scaler, PCA T², limit from the \
                 training rows, 3 of 5 smoothing (`pdm_detect::pipeline`)",
            ),
            Self::Iforest => PossibleValue::new("iforest").help(
                "Isolation Forest (100 trees, scikit-learn semantics) on standardised features",
            ),
            Self::Stream(kind) => PossibleValue::new(cli_name(*kind)).help(kind.summary()),
        })
    }
}

/// The command-line name of a streaming kind: its name with `-` for `_` (`robust-zscore`).
fn cli_name(kind: StreamKind) -> &'static str {
    // clap wants names that live as long as the program; there are a handful, made once.
    static NAMES: OnceLock<Vec<(StreamKind, &'static str)>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        StreamKind::ALL
            .into_iter()
            .map(|k| (k, &*Box::leak(k.name().replace('_', "-").into_boxed_str())))
            .collect()
    });
    names
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or("?", |(_, name)| name)
}

impl DetectorName {
    fn label(self) -> String {
        match self {
            Self::Pipeline => "pdm pipeline".to_owned(),
            Self::Iforest => "pdm iforest".to_owned(),
            Self::Stream(kind) => format!("pdm {}", kind.name()),
        }
    }

    fn series(self, seed: u64) -> Box<dyn SeriesDetector> {
        match self {
            Self::Iforest => Box::new(IforestSeries { seed }),
            Self::Pipeline => Box::new(PipelineSeries),
            Self::Stream(kind) => Box::new(StreamSeries {
                spec: stream_spec(kind, seed),
            }),
        }
    }

    fn multivariate(self, seed: u64, contamination: f64) -> Box<dyn MultivariateDetector> {
        match self {
            Self::Iforest => Box::new(IforestMultivariate {
                seed,
                contamination,
            }),
            Self::Pipeline => Box::new(PipelineMultivariate),
            Self::Stream(kind) => Box::new(StreamMultivariate {
                spec: stream_spec(kind, seed),
                contamination,
            }),
        }
    }
}

/// The streaming detector's specification: the NAB-leaning parameters of `StreamSpec::by_name`,
/// with `seed` as the random state of the detectors that have one.
fn stream_spec(kind: StreamKind, seed: u64) -> StreamSpec {
    let spec = kind.nab_spec();
    match kind.param("random_state") {
        Some(_) => spec
            .clone()
            .set("random_state", ParamValue::Seed(seed))
            .unwrap_or(spec),
        None => spec,
    }
}

/// A streaming detector over a univariate series: it learns as it goes (no separate training),
/// is set up for the file by NAB's protocol and its scores are mapped into [0, 1] by
/// `stream::nab_scores` (see `StreamSpec::for_nab_file` and `StreamSpec::nab_mapping`).
struct StreamSeries {
    spec: StreamSpec,
}

impl SeriesDetector for StreamSeries {
    fn score_series(&self, values: &[f64], _train: usize) -> anyhow::Result<Vec<f64>> {
        Ok(stream::nab_scores(&self.spec, values)?)
    }
}

/// A streaming detector over multivariate rows: it runs through the training rows (learning),
/// takes the (1 - contamination) quantile of their scores as its threshold, then flags the test
/// rows whose score passes it, still learning as it goes.
struct StreamMultivariate {
    spec: StreamSpec,
    contamination: f64,
}

impl MultivariateDetector for StreamMultivariate {
    fn flag(
        &self,
        train: &ArrayView2<'_, f64>,
        test: &ArrayView2<'_, f64>,
    ) -> anyhow::Result<Vec<bool>> {
        let mut detector = self.spec.build(train.ncols())?;
        let mut train_scores = Vec::with_capacity(train.nrows());
        for row in train.rows() {
            train_scores.push(detector.update(&row.to_vec())?);
        }
        let threshold = calibrate_threshold(&train_scores, 1.0 - self.contamination)?;
        let mut flags = Vec::with_capacity(test.nrows());
        for row in test.rows() {
            flags.push(detector.update(&row.to_vec())? > threshold);
        }
        Ok(flags)
    }
}

/// A detector over one univariate series, as NAB runs them: it may learn from the first
/// `train` rows (NAB's probation period) and must give every row a score in [0, 1].
trait SeriesDetector {
    fn score_series(&self, values: &[f64], train: usize) -> anyhow::Result<Vec<f64>>;
}

/// A detector over multivariate rows, as SKAB runs them: fit on the training rows, flag each
/// test row as an outlier or not.
trait MultivariateDetector {
    fn flag(
        &self,
        train: &ArrayView2<'_, f64>,
        test: &ArrayView2<'_, f64>,
    ) -> anyhow::Result<Vec<bool>>;
}

/// Isolation Forest on `[value, first difference]`, standardised on the probation rows and
/// fitted on them. The score of a row is the forest's anomaly score `2^(-E[h(x)] / c(n))` of
/// Liu et al., already in (0, 1] (0.5 is the paper's neutral point), used as is: a given value
/// means the same isolation depth relative to the training sample in every file, which is what
/// a corpus-wide threshold needs. (Mapping it through each file's training-score distribution
/// instead, a piecewise-linear empirical CDF, scored far worse: 1.98 / 0.00 / 4.19 with seed 0,
/// because files that drift after probation then put most later rows near 1.)
struct IforestSeries {
    seed: u64,
}

impl SeriesDetector for IforestSeries {
    fn score_series(&self, values: &[f64], train: usize) -> anyhow::Result<Vec<f64>> {
        if train < 2 {
            bail!(
                "{} rows leave {train} training rows; at least 2 are needed",
                values.len()
            );
        }
        // The first difference makes level shifts and spikes stand out even where the value
        // itself stays within its usual range; row 0 has no predecessor and gets 0.
        let x = Array2::from_shape_fn((values.len(), 2), |(i, j)| match (j, i) {
            (0, _) => values[i],
            (_, 0) => 0.0,
            _ => values[i] - values[i - 1],
        });
        let scaler = StandardScaler::fit(&rows(&x.view(), 0..train))?;
        let z = scaler.transform(&x.view())?;
        let model = IsolationForest::params()
            .random_state(self.seed)
            .n_threads(2)
            .fit(&rows(&z.view(), 0..train))?;
        Ok(model.anomaly_score(&z.view())?.to_vec())
    }
}

/// Isolation Forest on the sensor columns standardised on the training rows; a test row is an
/// outlier when its score passes the contamination percentile of the training scores
/// (scikit-learn's `predict`).
struct IforestMultivariate {
    seed: u64,
    contamination: f64,
}

impl MultivariateDetector for IforestMultivariate {
    fn flag(
        &self,
        train: &ArrayView2<'_, f64>,
        test: &ArrayView2<'_, f64>,
    ) -> anyhow::Result<Vec<bool>> {
        let scaler = StandardScaler::fit(train)?;
        let model = IsolationForest::params()
            .random_state(self.seed)
            .n_threads(2)
            .contamination(Contamination::Fraction(self.contamination))
            .fit(&scaler.transform(train)?.view())?;
        let pred = model.predict(&scaler.transform(test)?.view())?;
        Ok(pred.iter().map(|&p| p == -1).collect())
    }
}

/// The default pipeline, fitted on the training rows. A test row's window reaches back into
/// the training rows (it only looks backwards, as it would live), so the test rows are scored
/// as the continuation of the training ones. The contamination and seed do not apply.
struct PipelineMultivariate;

impl MultivariateDetector for PipelineMultivariate {
    fn flag(
        &self,
        train: &ArrayView2<'_, f64>,
        test: &ArrayView2<'_, f64>,
    ) -> anyhow::Result<Vec<bool>> {
        let channels: Vec<String> = (0..train.ncols()).map(|c| format!("c{c}")).collect();
        let model = Pipeline::params().fit(train, &channels)?;
        let all = ndarray::concatenate(Axis(0), &[train.view(), test.view()])?;
        let d = model.decide(&all.view())?;
        let first = model
            .window_index(train.nrows())
            .context("fewer training rows than one window")?;
        Ok(d.flags[first..].to_vec())
    }
}

/// The default pipeline is made for several channels that move together (T² of their means);
/// on NAB's single series its limit, fitted on the probation rows, never gives a useful
/// corpus-wide threshold (it scores 0.0), so `nab` refuses it rather than print a meaningless row.
struct PipelineSeries;

impl SeriesDetector for PipelineSeries {
    fn score_series(&self, _values: &[f64], _train: usize) -> anyhow::Result<Vec<f64>> {
        let streaming: Vec<&str> = StreamKind::ALL.into_iter().map(cli_name).collect();
        bail!(
            "the pipeline detector is for multivariate machine data (SKAB); for NAB's univariate \
             series use --detector {} or iforest",
            streaming.join(", ")
        )
    }
}

/// Rows `r` of `a` (ndarray's `s!` macro expands to code our `forbid(unsafe_code)` rejects).
fn rows<'a>(a: &ArrayView2<'a, f64>, r: std::ops::Range<usize>) -> ArrayView2<'a, f64> {
    (*a).slice_axis_move(Axis(0), Slice::from(r))
}

/// Files under `dir` (recursively) whose name ends in `.csv`, sorted.
fn csv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?;
        for e in entries {
            let path = e
                .with_context(|| format!("cannot list {}", d.display()))?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "csv") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_labels(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<(f64, f64)>>> {
    Ok(parse_nab_windows(
        &path.display().to_string(),
        &read(path)?,
    )?)
}

/// `category/file.csv` of a file directly inside a category folder of `root`.
fn corpus_key(root: &Path, path: &Path) -> Option<(String, String)> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [category, file] => Some((category.clone(), file.clone())),
        _ => None,
    }
}

fn nab_file(
    key: &str,
    times: &[f64],
    scores: Vec<f64>,
    labels: &BTreeMap<String, Vec<(f64, f64)>>,
) -> anyhow::Result<Option<NabFile>> {
    let Some(limits) = labels.get(key) else {
        eprintln!("note: {key} has no entry in the labels; not scored");
        return Ok(None);
    };
    let windows = windows_from_times(key, times, limits)?;
    Ok(Some(NabFile::new(key, scores, windows)?))
}

fn run_nab(
    data: &Path,
    labels_path: &Path,
    detector: DetectorName,
    seeds: std::ops::Range<u64>,
    per_file: bool,
) -> anyhow::Result<()> {
    let labels = read_labels(labels_path)?;
    let mut series = Vec::new();
    for path in csv_files(data)? {
        let Some((category, name)) = corpus_key(data, &path) else {
            eprintln!(
                "note: {} is not at <category>/<file>.csv; skipped",
                path.display()
            );
            continue;
        };
        let parsed = parse_nab_data(&path.display().to_string(), &read(&path)?)?;
        series.push((format!("{category}/{name}"), path, parsed));
    }
    let mut runs = Vec::new();
    for seed in seeds {
        let model = detector.series(seed);
        let mut files = Vec::new();
        for (key, path, s) in &series {
            let train = probation_rows(s.values.len(), PROBATION_PERCENT);
            let scores = model
                .score_series(&s.values, train)
                .with_context(|| format!("{}: detector failed", path.display()))?;
            if let Some(f) = nab_file(key, &s.times, scores, &labels)? {
                files.push(f);
            }
        }
        runs.push((format!("{} seed {seed}", detector.label()), files));
    }
    print_nab(&runs, labels.len(), per_file)
}

fn run_nab_results(results: &Path, labels_path: &Path, per_file: bool) -> anyhow::Result<()> {
    let labels = read_labels(labels_path)?;
    let mut files = Vec::new();
    let mut detectors = std::collections::BTreeSet::new();
    for path in csv_files(results)? {
        let Some((category, name)) = corpus_key(results, &path) else {
            // NAB's per-profile summaries sit at the top; they are not results.
            if !path.to_string_lossy().ends_with("_scores.csv") {
                eprintln!(
                    "note: {} is not at <category>/<file>.csv; skipped",
                    path.display()
                );
            }
            continue;
        };
        // NAB names result files <detector>_<data file>; detector names have no underscore.
        let Some((detector, data_name)) = name.split_once('_') else {
            bail!(
                "{}: expected a <detector>_<data file>.csv name",
                path.display()
            );
        };
        detectors.insert(detector.to_owned());
        let key = format!("{category}/{data_name}");
        let series = parse_nab_results(&path.display().to_string(), &read(&path)?)?;
        if let Some(f) = nab_file(&key, &series.times, series.values, &labels)? {
            files.push(f);
        }
    }
    let name = detectors.into_iter().collect::<Vec<_>>().join("+");
    print_nab(
        &[(format!("results: {name}"), files)],
        labels.len(),
        per_file,
    )
}

/// NAB scoreboard (README, corpus v1.1) rows: standard, reward low FP, reward low FN.
const NAB_BOARD: &[(&str, [f64; 3])] = &[
    ("Perfect", [100.0, 100.0, 100.0]),
    ("ARTime", [74.9, 65.1, 80.4]),
    ("Numenta HTM (NuPIC 1.0, best seed)", [70.5, 62.6, 75.2]),
    ("CAD OSE", [69.9, 67.0, 73.2]),
    ("earthgecko Skyline", [58.2, 46.2, 63.9]),
    ("KNN CAD", [58.0, 43.4, 64.8]),
    ("Relative Entropy", [54.6, 47.6, 58.8]),
    ("Random Cut Forest (AWS)", [51.7, 38.4, 59.7]),
    ("Twitter ADVec v1.0.0", [47.1, 33.6, 53.5]),
    ("Windowed Gaussian", [39.6, 20.9, 47.4]),
    ("Etsy Skyline", [35.7, 27.1, 44.5]),
    ("Bayesian Changepoint", [17.7, 3.2, 32.2]),
    ("EXPoSE", [16.4, 3.2, 26.9]),
    ("Random (mean over seeds)", [11.0, 1.2, 19.5]),
    ("Null", [0.0, 0.0, 0.0]),
];

/// Prints the scores of one or more runs (e.g. one per seed) beside the scoreboard, then the
/// details of the first run.
fn print_nab(
    runs: &[(String, Vec<NabFile>)],
    labelled: usize,
    per_file: bool,
) -> anyhow::Result<()> {
    let Some((_, files)) = runs.first().filter(|(_, f)| !f.is_empty()) else {
        bail!(
            "no scorable file: no <category>/<file>.csv under the folder matches an entry of the \
             labels (give NAB's data/ or results/<detector>/ folder itself)"
        );
    };
    let reports: Vec<Vec<ProfileReport>> = runs
        .iter()
        .map(|(_, f)| score_corpus(f, &CostProfile::ALL, PROBATION_PERCENT))
        .collect::<Result<_, _>>()?;
    let windows: usize = files.iter().map(|f| f.windows().len()).sum();
    println!(
        "NAB: {} of {labelled} labelled files, {windows} windows; one threshold per profile over \
         the corpus",
        files.len()
    );
    if files.len() != labelled {
        println!("(a subset: not comparable with the scoreboard, which covers all 58 files)");
    }
    println!();
    println!(
        "{:<38} {:>9} {:>14} {:>14}",
        "detector", "standard", "reward low FP", "reward low FN"
    );
    let mut sum = [0.0; 3];
    for ((label, _), report) in runs.iter().zip(&reports) {
        let n: Vec<f64> = report.iter().map(|r| r.normalized).collect();
        for (acc, v) in sum.iter_mut().zip(&n) {
            *acc += v;
        }
        println!(
            "{label:<38} {:>9.2} {:>14.2} {:>14.2}   <- this run",
            n[0], n[1], n[2]
        );
    }
    if runs.len() > 1 {
        let k = runs.len() as f64;
        println!(
            "{:<38} {:>9.2} {:>14.2} {:>14.2}   <- this run",
            format!("mean of {} runs", runs.len()),
            sum[0] / k,
            sum[1] / k,
            sum[2] / k
        );
    }
    for (name, [a, b, c]) in NAB_BOARD {
        println!("{name:<38} {a:>9.1} {b:>14.1} {c:>14.1}");
    }
    println!();
    println!("details of {}:", runs[0].0);
    println!(
        "{:<20} {:>10} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "profile", "threshold", "raw", "null", "TP rows", "FP rows", "FN rows", "TN rows"
    );
    for r in &reports[0] {
        println!(
            "{:<20} {:>10.6} {:>10.3} {:>8.1} {:>8} {:>8} {:>9} {:>9}",
            r.profile.name,
            r.threshold,
            r.raw_score,
            r.null_score,
            r.counts.tp,
            r.counts.fp,
            r.counts.fn_,
            r.counts.tn
        );
    }
    if per_file {
        println!();
        println!("standard profile, raw score per file (null = -windows, perfect = +windows)");
        for (f, s) in files.iter().zip(&reports[0][0].files) {
            println!(
                "{:<60} {:>3} windows {:>9.3}",
                s.name,
                f.windows().len(),
                s.score
            );
        }
    }
    Ok(())
}

/// SKAB outlier leaderboard (current protocol, 34 files): F1, FAR %, MAR %.
const SKAB_OUTLIER_BOARD: &[(&str, [f64; 3])] = &[
    ("Perfect detector", [1.0, 0.0, 0.0]),
    ("Conv-AE", [0.78, 13.55, 28.02]),
    ("MSET", [0.78, 39.73, 14.13]),
    ("T-squared+Q (PCA)", [0.76, 26.62, 24.92]),
    ("LSTM-AE", [0.74, 29.96, 25.92]),
    ("T-squared", [0.66, 19.21, 42.6]),
    ("LSTM-VAE", [0.56, 9.13, 55.03]),
    ("Vanilla LSTM", [0.54, 12.54, 59.53]),
    ("Vanilla AE", [0.39, 2.59, 75.15]),
    ("MSCRED", [0.36, 49.94, 69.88]),
    ("Isolation forest (scikit-learn)", [0.29, 2.56, 82.89]),
    ("Null detector", [0.0, 0.0, 100.0]),
];

/// SKAB changepoint leaderboard: NAB standard, low FP, low FN.
const SKAB_CP_BOARD: &[(&str, [f64; 3])] = &[
    ("Perfect detector", [100.0, 100.0, 100.0]),
    ("MSCRED", [32.42, 16.53, 40.28]),
    ("Isolation forest (scikit-learn)", [26.16, 19.5, 30.82]),
    ("T-squared+Q (PCA)", [25.35, 14.51, 31.33]),
    ("Conv-AE", [23.61, 21.54, 27.55]),
    ("LSTM-AE", [23.51, 20.11, 25.91]),
    ("T-squared", [19.54, 10.2, 24.31]),
    ("MSET", [13.84, 10.22, 17.37]),
    ("Vanilla AE", [11.41, 6.53, 13.91]),
    ("Vanilla LSTM", [11.31, -3.8, 17.25]),
    ("ArimaFD", [-0.09, -0.17, -0.06]),
    ("Null detector", [0.0, 0.0, 0.0]),
];

/// Rolling-max width (rows) of SKAB's reference changepoint post-processing.
const ALARM_EDGE_WINDOW: usize = 30;

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_owned(), |v| format!("{:.2}", 100.0 * v))
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"))
}

/// What one SKAB run (one seed) produced, summed over files.
struct SkabRun {
    seed: u64,
    raw: Confusion,
    smoothed: Confusion,
    cp: CpOutcome,
}

fn run_skab(
    data: &Path,
    detector: DetectorName,
    train_rows: usize,
    contamination: f64,
    seeds: std::ops::Range<u64>,
) -> anyhow::Result<()> {
    let mut files = Vec::new();
    for path in csv_files(data)? {
        let name = path.display().to_string();
        let file = parse_skab(&name, &read(&path)?)?;
        let (Some(anomaly), Some(changepoint)) = (file.anomaly.clone(), file.changepoint.clone())
        else {
            println!("note: {name} has no anomaly/changepoint columns; skipped");
            continue;
        };
        let (train, test) = train_test_split(file.times.len(), train_rows)
            .with_context(|| format!("{name}: too short for the protocol"))?;
        files.push((name, file, anomaly, changepoint, train, test));
    }
    if files.is_empty() {
        bail!("no labelled SKAB CSV under {}", data.display());
    }
    let test_rows: usize = files.iter().map(|f| f.5.len()).sum();
    let mut runs = Vec::new();
    for seed in seeds.clone() {
        let model = detector.multivariate(seed, contamination);
        let mut run = SkabRun {
            seed,
            raw: Confusion::default(),
            smoothed: Confusion::default(),
            cp: CpOutcome::default(),
        };
        for (name, file, anomaly, changepoint, train, test) in &files {
            let flags = model
                .flag(
                    &rows(&file.sensors.view(), train.clone()),
                    &rows(&file.sensors.view(), test.clone()),
                )
                .with_context(|| format!("{name}: detector failed"))?;
            let truth = &anomaly[test.clone()];
            run.raw.add(Confusion::from_flags(name, &flags, truth)?);
            // SKAB's reference pipeline: a rolling median over 3 rows drops one-row alarms;
            // the changepoints are the edges of the alarm runs widened by a rolling max.
            let alarms = median3(&flags);
            run.smoothed
                .add(Confusion::from_flags(name, &alarms, truth)?);
            let predicted_cp = alarm_edges(&alarms, ALARM_EDGE_WINDOW);
            run.cp.add(changepoint_outcome(
                name,
                &file.times[test.clone()],
                &changepoint[test.clone()],
                &predicted_cp,
                CP_WINDOW_SECONDS,
            )?);
        }
        runs.push(run);
    }
    println!(
        "SKAB: {} labelled files, {test_rows} test rows (first {train_rows} rows of each file \
         train), {} changepoints; detector {} (contamination {contamination}, seeds {}..{})",
        files.len(),
        runs[0].cp.windows,
        detector.label(),
        seeds.start,
        seeds.end
    );
    if files.len() != 34 {
        println!(
            "(the leaderboard covers all 34 labelled files; a different set is not directly \
             comparable)"
        );
    }
    println!();
    println!(
        "{:<32} {:>6} {:>8} {:>8}",
        "Outlier detection", "F1", "FAR %", "MAR %"
    );
    let smoothed: fn(&SkabRun) -> Confusion = |r| r.smoothed;
    let raw: fn(&SkabRun) -> Confusion = |r| r.raw;
    for (what, pick) in [("+ median3", smoothed), ("raw flags", raw)] {
        let mut pooled = Confusion::default();
        for r in &runs {
            print_confusion(&format!("{} s{} {what}", detector.label(), r.seed), pick(r));
            pooled.add(pick(r));
        }
        if runs.len() > 1 {
            print_confusion(&format!("pooled {} seeds {what}", runs.len()), pooled);
        }
    }
    for (name, [f1, far, mar]) in SKAB_OUTLIER_BOARD {
        println!("{name:<32} {f1:>6.2} {far:>8.2} {mar:>8.2}");
    }
    println!();
    println!(
        "{:<32} {:>8} {:>8} {:>8} {:>7} {:>5}",
        "Changepoint detection", "NAB std", "lowFP", "lowFN", "missed", "FPs"
    );
    let mut pooled = CpOutcome::default();
    for r in &runs {
        print_cp(&format!("{} s{} + edges", detector.label(), r.seed), &r.cp);
        pooled.add(r.cp.clone());
    }
    if runs.len() > 1 {
        print_cp(&format!("pooled {} seeds + edges", runs.len()), &pooled);
    }
    for (name, [a, b, c]) in SKAB_CP_BOARD {
        println!("{name:<32} {a:>8.2} {b:>8.2} {c:>8.2}");
    }
    Ok(())
}

fn print_confusion(label: &str, c: Confusion) {
    println!(
        "{label:<32} {:>6} {:>8} {:>8}   <- this run (TP {} TN {} FP {} FN {})",
        ratio(c.f1()),
        pct(c.far()),
        pct(c.mar()),
        c.tp,
        c.tn,
        c.fp,
        c.fn_
    );
}

fn print_cp(label: &str, cp: &CpOutcome) {
    let scores = changepoint_scores(cp, &CpProfile::ALL);
    let delay = cp
        .mean_delay()
        .map_or_else(|| "n/a".to_owned(), |d| format!("{d:.1}"));
    println!(
        "{label:<32} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>5}   <- this run (mean delay {delay} s)",
        scores[0].normalized,
        scores[1].normalized,
        scores[2].normalized,
        cp.missed(),
        cp.false_positives,
    );
}

/// NAB's windows file, relative to the NAB folder.
const NAB_LABELS: &str = "labels/combined_windows.json";

/// `path` when given, else `$var/default` (the data-set folders docs/testing.md names).
fn or_env(path: Option<PathBuf>, var: &str, default: &str) -> anyhow::Result<PathBuf> {
    match (path, std::env::var_os(var)) {
        (Some(p), _) => Ok(p),
        (None, Some(dir)) => Ok(PathBuf::from(dir).join(default)),
        (None, None) => bail!("give the path, or set {var} to the data set's folder"),
    }
}

fn run_fleet(
    machines: usize,
    days: u64,
    seeds: Vec<u64>,
    interval_s: u64,
    model_params: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use benches::fleet::{self, FleetConfig};
    let model_params = match model_params {
        Some(p) => serde_json::from_str::<serde_json::Value>(&p)
            .with_context(|| format!("--model-params is not JSON: {p}"))?,
        None => fleet::fleet_model_params(),
    };
    let runtime = tokio::runtime::Runtime::new().context("a Tokio runtime")?;
    let mut all_met = true;
    let (mut in_time, mut faults, mut false_alarms, mut weeks) = (0, 0, 0, 0.0);
    for seed in seeds {
        let config = FleetConfig {
            machines,
            days,
            seed,
            interval_s,
            model_params: Some(model_params.clone()),
        };
        let report = runtime.block_on(fleet::run(&config))?;
        if json {
            println!("{}", report.to_json());
        } else {
            println!("{}", report.table());
        }
        all_met &= report.meets_target();
        in_time += report.in_time();
        faults += report.faults.len();
        false_alarms += report.false_alarms.len();
        weeks += report.machine_weeks();
    }
    if !json {
        println!(
            "all seeds: {in_time}/{faults} faults alarmed before their failure point; \
             {false_alarms} false alarms over {weeks:.2} machine-weeks ({:.3} per machine-week); \
             target {}",
            false_alarms as f64 / weeks.max(f64::MIN_POSITIVE),
            if all_met { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Skab {
            data,
            detector,
            train_rows,
            contamination,
            seed,
            seeds,
        } => {
            let data = or_env(data, "PDM_SKAB_DIR", "data")?;
            run_skab(
                &data,
                detector,
                train_rows,
                contamination,
                seed..seed + seeds,
            )
        }
        Command::Nab {
            data,
            labels,
            detector,
            seed,
            seeds,
            per_file,
        } => {
            let data = or_env(data, "PDM_NAB_DIR", "data")?;
            let labels = or_env(labels, "PDM_NAB_DIR", NAB_LABELS)?;
            run_nab(&data, &labels, detector, seed..seed + seeds, per_file)
        }
        Command::Fleet {
            machines,
            days,
            seed,
            interval_s,
            model_params,
            json,
        } => run_fleet(machines, days, seed, interval_s, model_params, json),
        Command::NabResults {
            results,
            labels,
            per_file,
        } => {
            let results = or_env(results, "PDM_NAB_DIR", "results/windowedGaussian")?;
            let labels = or_env(labels, "PDM_NAB_DIR", NAB_LABELS)?;
            run_nab_results(&results, &labels, per_file)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_keys_are_category_and_file() {
        let root = Path::new("/d");
        assert_eq!(
            corpus_key(root, Path::new("/d/realKnownCause/nyc_taxi.csv")),
            Some(("realKnownCause".to_owned(), "nyc_taxi.csv".to_owned()))
        );
        assert_eq!(corpus_key(root, Path::new("/d/summary.csv")), None);
    }

    #[test]
    fn every_registered_streaming_kind_is_a_detector_name() {
        for kind in StreamKind::ALL {
            let name = kind.name().replace('_', "-");
            assert_eq!(
                DetectorName::from_str(&name, false),
                Ok(DetectorName::Stream(kind))
            );
            assert_eq!(
                DetectorName::Stream(kind).label(),
                format!("pdm {}", kind.name())
            );
        }
        assert_eq!(
            DetectorName::from_str("pipeline", false),
            Ok(DetectorName::Pipeline)
        );
        assert_eq!(
            DetectorName::from_str("iforest", false),
            Ok(DetectorName::Iforest)
        );
        assert!(DetectorName::from_str("nope", false).is_err());
    }

    #[test]
    fn streaming_specs_are_the_nab_ones_with_the_seed_for_the_trees() {
        use pdm_detect::HalfSpaceTrees;
        for kind in StreamKind::ALL {
            let expected = match kind {
                StreamKind::HalfSpaceTrees => {
                    StreamSpec::HalfSpaceTrees(HalfSpaceTrees::params().random_state(3))
                }
                other => StreamSpec::by_name(other.name()).expect("registered"),
            };
            assert_eq!(stream_spec(kind, 3), expected, "{kind:?}");
        }
    }
}
