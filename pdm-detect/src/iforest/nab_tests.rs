//! The forest on a real series: NAB's machine temperature (see `eval::test_data` for where the
//! data comes from; absent data skips the test loudly).

use super::*;
use crate::eval::roc_auc;
use crate::eval::test_data::nab_labelled;
use ndarray::Array2;

const FILE: &str = "realKnownCause/machine_temperature_system_failure.csv";

#[test]
fn labelled_windows_score_higher_on_nab_machine_temperature() {
    let test = "labelled_windows_score_higher_on_nab_machine_temperature";
    let Some(series) = nab_labelled(test, FILE) else {
        return;
    };
    assert_eq!(series.windows, 4, "the file has four labelled windows");
    let v = &series.values;
    // Two features: the value and its change from the last row.
    let x = Array2::from_shape_fn((v.len(), 2), |(i, j)| match (j, i) {
        (0, _) => v[i],
        (_, 0) => 0.0,
        _ => v[i] - v[i - 1],
    });
    let model = IsolationForest::params()
        .random_state(7)
        .n_threads(2)
        .fit(&x.view())
        .expect("fit");
    let scores = model.anomaly_score(&x.view()).expect("score").to_vec();
    let mean = |want: bool| {
        let s: Vec<f64> = scores
            .iter()
            .zip(&series.in_window)
            .filter(|(_, &w)| w == want)
            .map(|(s, _)| *s)
            .collect();
        s.iter().sum::<f64>() / s.len() as f64
    };
    let (inside, outside) = (mean(true), mean(false));
    let auc = roc_auc(&scores, &series.in_window).expect("both classes present");
    println!(
        "NAB {FILE}: {} rows, mean anomaly score {inside:.4} in windows vs {outside:.4} outside, \
         ROC AUC {auc:.3}",
        v.len()
    );
    assert!(inside > outside);
    assert!(auc > 0.5);
}
