//! Criterion benches of the detectors: Isolation Forest fit and score (100 trees, single
//! thread), window features, PCA scoring, the default pipeline, and one update of each streaming
//! detector.
//!
//! `cargo bench -p benches --bench detect`

use criterion::{criterion_main, BenchmarkId, Criterion, Throughput};
use ndarray::Array2;
use pdm_core::detector::StreamingDetector;
use pdm_detect::stream::{ContextDetector, EwmaChart, HalfSpaceTrees, RobustZScore};
use pdm_detect::{IsolationForest, NComponents, PcaDetector, Pipeline, WindowFeatures};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn data(rows: usize, cols: usize) -> Array2<f64> {
    let mut rng = StdRng::seed_from_u64(0);
    Array2::from_shape_fn((rows, cols), |_| rng.random::<f64>() * 2.0 - 1.0)
}

fn isolation_forest(c: &mut Criterion) {
    let mut group = c.benchmark_group("isolation_forest");
    group.sample_size(10);
    for rows in [10_000usize, 100_000] {
        let x = data(rows, 8);
        let params = IsolationForest::params()
            .n_estimators(100)
            .random_state(0)
            .n_threads(1);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::new("fit", rows), &x, |b, x| {
            b.iter(|| params.fit(&x.view()).map(|m| m.n_estimators()))
        });
        let model = params.fit(&x.view()).expect("fit");
        group.bench_with_input(BenchmarkId::new("score_samples", rows), &x, |b, x| {
            b.iter(|| model.score_samples(&x.view()).map(|s| s.len()))
        });
    }
    group.finish();
}

fn features_and_pca(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    let series = data(100_000, 8);
    let channels: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
    let windows = WindowFeatures::params()
        .window(128)
        .step(16)
        .check()
        .expect("params");
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("window_features_100k_rows_8_channels", |b| {
        b.iter(|| {
            windows
                .transform(&series.view(), &channels)
                .map(|m| m.values().len())
        })
    });
    let x = data(100_000, 16);
    let pca = PcaDetector::params()
        .n_components(NComponents::Count(4))
        .fit(&x.view())
        .expect("fit");
    group.bench_function("pca_scores_100k_rows_16_features", |b| {
        b.iter(|| pca.scores(&x.view()).map(|s| s.len()))
    });
    let pipeline = Pipeline::params()
        .fit(&series.view(), &channels)
        .expect("fit");
    group.bench_function("default_pipeline_scores_100k_rows_8_channels", |b| {
        b.iter(|| pipeline.scores(&series.view()).map(|s| s.len()))
    });
    group.finish();
}

fn streaming(c: &mut Criterion) {
    let mut group = c.benchmark_group("streaming_update");
    let rows = data(10_000, 4);
    let rows: Vec<Vec<f64>> = rows.rows().into_iter().map(|r| r.to_vec()).collect();
    let mut detectors: Vec<(&str, Box<dyn StreamingDetector>)> = vec![
        (
            "robust_zscore",
            Box::new(RobustZScore::params().window(1000).build(4).expect("build")),
        ),
        (
            "ewma_chart",
            Box::new(EwmaChart::params().build(4).expect("build")),
        ),
        (
            "half_space_trees",
            Box::new(
                HalfSpaceTrees::params()
                    .random_state(1)
                    .build(4)
                    .expect("build"),
            ),
        ),
    ];
    group.throughput(Throughput::Elements(1));
    for (name, det) in &mut detectors {
        let mut i = 0;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i = (i + 1) % rows.len();
                det.update(&rows[i])
            })
        });
    }
    // The context detector is made for a univariate series with structure (NAB): a noisy wave.
    // On noise in several features its contexts never repeat and its cost per row grows with
    // the contexts stored (see docs/detection.md).
    let wave: Vec<f64> = (0..10_000)
        .map(|i| (i as f64 * 0.3).sin() + 0.1 * rows[i][0])
        .collect();
    let mut context = ContextDetector::params()
        .value_range(-1.5, 1.5)
        .build(1)
        .expect("build");
    let mut i = 0;
    group.bench_function("context_1_feature_wave", |b| {
        b.iter(|| {
            i = (i + 1) % wave.len();
            context.update(&[wave[i]])
        })
    });
    group.finish();
}

// The macro generates an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(
        benches,
        super::isolation_forest,
        super::features_and_pca,
        super::streaming
    );
}
criterion_main!(group::benches);
