//! The streaming detectors on NAB series (see `eval::test_data` for where the data comes from;
//! absent data skips the test loudly). A sanity check that raw scores rise inside the labelled
//! windows (pointwise ROC AUC of the squashed scores, which order rows as the raw ones do), not
//! the NAB score; the likelihood mapping's AUC is printed for reference only, since it is built
//! to fire at the onset of a change rather than throughout a window.

use super::{nab_scores_with, ScoreMapping, StreamSpec};
use crate::eval::roc_auc;
use crate::eval::test_data::nab_labelled;

const FILES: [&str; 6] = [
    "realKnownCause/machine_temperature_system_failure.csv",
    "realKnownCause/ambient_temperature_system_failure.csv",
    "realKnownCause/ec2_request_latency_system_failure.csv",
    "realKnownCause/cpu_utilization_asg_misconfiguration.csv",
    "realKnownCause/nyc_taxi.csv",
    "artificialWithAnomaly/art_daily_jumpsup.csv",
];

#[test]
fn scores_rise_in_labelled_windows_on_nab_files() {
    let test = "scores_rise_in_labelled_windows_on_nab_files";
    let mut means = Vec::new();
    for name in StreamSpec::NAMES {
        let spec = StreamSpec::by_name(name).expect("known name");
        let mut aucs = Vec::new();
        for file in FILES {
            let Some(series) = nab_labelled(test, file) else {
                continue;
            };
            let (values, labels) = (&series.values, &series.in_window);
            let raw = nab_scores_with(&spec, ScoreMapping::Squash, values).expect("scores");
            let lik = nab_scores_with(&spec, ScoreMapping::default(), values).expect("scores");
            assert!(raw.iter().chain(&lik).all(|s| (0.0..=1.0).contains(s)));
            let auc = roc_auc(&raw, labels).expect("both classes present");
            let lik_auc = roc_auc(&lik, labels).expect("both classes present");
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
