//! Models cross between Rust and Python unchanged: this program is the Rust side of the
//! round-trip test in `pdm-py/tests`.
//!
//! - `model_roundtrip score MODEL CSV`: loads a model file of any scoring kind (written by
//!   Python, say) and prints its scores of the CSV rows as the 16 hex digits of their bits: an
//!   Isolation Forest's `score_samples`, a PCA detector's scores, or the default pipeline's
//!   scores (one per full window);
//! - `model_roundtrip fit CSV MODEL [iforest|pipeline]`: fits an Isolation Forest (50 trees,
//!   seed 3) or the default pipeline (channels `c0`, `c1`, ...) on the CSV, saves it to MODEL
//!   for Python to load, and prints its scores the same way.
//!
//! The CSV has one row per sample, comma-separated numbers, no header.

use anyhow::{bail, Context as _};
use ndarray::Array2;
use pdm_detect::persist::{self, Model};
use pdm_detect::{IsolationForest, Pipeline};

fn read_csv(path: &str) -> anyhow::Result<Array2<f64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let mut values = Vec::new();
    let mut cols = None;
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let row: Vec<f64> = line
            .split(',')
            .map(|v| v.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{path}: line {}", i + 1))?;
        if *cols.get_or_insert(row.len()) != row.len() {
            bail!(
                "{path}: line {} has {} values, the first has {cols:?}",
                i + 1,
                row.len()
            );
        }
        values.extend(row);
    }
    let cols = cols.context("empty CSV")?;
    Ok(Array2::from_shape_vec((values.len() / cols, cols), values)?)
}

fn print_bits(scores: impl IntoIterator<Item = f64>) {
    for s in scores {
        println!("{:016x}", s.to_bits());
    }
}

fn print_scores(model: &Model, x: &Array2<f64>) -> anyhow::Result<()> {
    let scores = match model {
        Model::IsolationForest(m) => m.score_samples(&x.view())?,
        Model::PcaDetector(m) => m.scores(&x.view())?,
        Model::Pipeline(m) => m.scores(&x.view())?,
        other => bail!("a {} model has no scores", other.kind()),
    };
    print_bits(scores);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["score", model, csv] => print_scores(&persist::load(model)?, &read_csv(csv)?),
        ["fit", csv, out] | ["fit", csv, out, "iforest"] => {
            let x = read_csv(csv)?;
            let model = IsolationForest::params()
                .n_estimators(50)
                .random_state(3)
                .fit(&x.view())?;
            model.save(out)?;
            print_bits(model.score_samples(&x.view())?);
            Ok(())
        }
        ["fit", csv, out, "pipeline"] => {
            let x = read_csv(csv)?;
            let channels: Vec<String> = (0..x.ncols()).map(|c| format!("c{c}")).collect();
            let model = Pipeline::params().fit(&x.view(), &channels)?;
            model.save(out)?;
            print_bits(model.scores(&x.view())?);
            Ok(())
        }
        _ => bail!("usage: model_roundtrip score MODEL CSV | fit CSV MODEL [iforest|pipeline]"),
    }
}
