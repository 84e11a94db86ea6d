"""The rest of the engine from Python: robust scaler, PCA detector, window features, streaming
detectors."""

import numpy as np
import pytest

import pdm_engine as pe


def correlated(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return np.column_stack([a, a + 0.1 * rng.normal(size=n), rng.normal(size=n)])


def test_robust_scaler_uses_median_and_iqr():
    X = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [100.0, 5.0]])
    s = pe.RobustScaler().fit(X)
    np.testing.assert_allclose(s.center_, [3.0, 5.0])
    np.testing.assert_allclose(s.scale_, [2.0, 1.0])  # numpy's quartiles 2 and 4; constant -> 1
    np.testing.assert_allclose(s.transform(X)[:, 0], (X[:, 0] - 3.0) / 2.0)
    assert np.all(s.transform(X)[:, 1] == 0.0)
    with pytest.raises(pe.DataError, match="1 features"):
        s.transform(X[:, :1])


def test_pca_flags_a_broken_correlation_and_blames_the_right_sensors():
    X = correlated()
    det = pe.PcaDetector(n_components=2, alpha=0.99).fit(X)
    assert det.n_components_ == 2
    flagged = (det.predict(X) == -1).mean()
    assert 0.002 < flagged < 0.03, flagged
    broken = np.array([[2.0, -2.0, 0.0]])  # sensors 0 and 1 always move together
    t2, q = det.statistics(broken)
    assert q[0] > det.q_limit_ and det.predict(broken)[0] == -1
    _, q_contrib = det.contributions(broken[0])
    assert np.argmin(q_contrib) == 2, q_contrib
    with pytest.raises(pe.ParameterError, match="alpha"):
        pe.PcaDetector(alpha=1.5).fit(X)
    with pytest.raises(pe.ParameterError, match="n_components"):
        pe.PcaDetector(n_components=0).fit(X)


def test_window_features_are_named_and_end_aligned():
    t = np.arange(300, dtype=float)
    X = np.column_stack([t, np.ones_like(t)])
    values, names, ends = pe.window_features(
        X, window=100, step=100, features=["mean", "slope"], channels=["ramp", "flat"]
    )
    assert names == ["ramp__mean", "ramp__slope", "flat__mean", "flat__slope"]
    assert ends.tolist() == [99, 199, 299]
    np.testing.assert_allclose(values[:, 0], [49.5, 149.5, 249.5])
    np.testing.assert_allclose(values[:, 1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(values[:, 3], [0.0, 0.0, 0.0])
    with pytest.raises(pe.ParameterError, match='unknown feature "median"'):
        pe.window_features(X, features=["median"])
    with pytest.raises(pe.DataError, match="not a finite"):
        pe.window_features(np.array([[np.nan], [1.0]] * 40))


@pytest.mark.parametrize(
    "detector",
    [pe.RobustZScore(window=300), pe.EwmaChart(), pe.HalfSpaceTrees(random_state=3)],
    ids=["robust_zscore", "ewma_chart", "half_space_trees"],
)
def test_streaming_detectors_flag_a_spike(detector):
    rng = np.random.default_rng(1)
    calm = rng.normal(size=(2000, 1))
    scores = detector.score_series(calm)
    assert (scores[500:] > detector.threshold_).mean() < 0.05
    spike = detector.update([12.0])
    assert spike > detector.threshold_, (spike, detector.threshold_)


def test_streaming_detectors_check_their_input():
    det = pe.RobustZScore()
    det.update([1.0, 2.0])
    with pytest.raises(pe.DataError, match="2"):
        det.update([1.0, 2.0, 3.0])
    with pytest.raises(pe.DataError, match="not a finite"):
        det.update([np.nan, 1.0])
    with pytest.raises(pe.ParameterError):
        pe.RobustZScore(window=0).update([1.0])
    assert det.get_params()["window"] is None


def test_default_pipeline_crosses_between_python_and_rust(tmp_path):
    from test_isolation_forest import cargo_example

    rng = np.random.default_rng(5)
    load = rng.random(700)
    X = np.c_[load + 0.05 * rng.normal(size=700), 2 * load + 0.05 * rng.normal(size=700), rng.normal(size=700)]
    X[600:, 1] += 3.0
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X, delimiter=",", fmt="%.17g")
    X = np.loadtxt(csv, delimiter=",")
    # Python -> Rust: the Rust scores (one per full window) are Python's, bit for bit.
    model = pe.Pipeline().fit(X[:400])
    model.save(tmp_path / "py.json")
    rust = cargo_example("score", tmp_path / "py.json", csv)
    ours = model.score_samples(X)
    np.testing.assert_array_equal(rust, ours[model.window - 1 :])
    assert np.all(np.isnan(ours[: model.window - 1]))
    # Rust -> Python.
    rust_fit = cargo_example("fit", csv, tmp_path / "rust.json", "pipeline")
    loaded = pe.load(tmp_path / "rust.json")
    assert isinstance(loaded, pe.Pipeline) and loaded.channels_ == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(loaded.score_samples(X)[loaded.window - 1 :], rust_fit)


def test_default_pipeline_flags_a_broken_relation_and_refuses_bad_input():
    rng = np.random.default_rng(6)
    load = rng.random(800)
    X = np.c_[load + 0.02 * rng.normal(size=800), 2 * load + 0.02 * rng.normal(size=800)]
    X[600:, 1] += 0.8
    model = pe.Pipeline(n_components=2).fit(X[:400], channels=["flow", "current"])
    pred = model.predict(X)
    assert pred.shape == (800,)
    assert np.all(pred[:590] == 1) and np.mean(pred[620:] == -1) > 0.9
    events = model.events(X)
    assert events and 600 <= events[0].start < 615
    assert model.get_params()["margin"] == 3.0
    with pytest.raises(pe.DataError):
        model.score_samples(X[:, :1])
    bad = X.copy()
    bad[5, 0] = np.nan
    with pytest.raises(pe.DataError):
        model.score_samples(bad)
    with pytest.raises(pe.ParameterError):
        pe.Pipeline(margin=0.5).fit(X)
    with pytest.raises(pe.ParameterError):
        pe.Pipeline(statistic="t3").fit(X)
    for window in (0, 1, 2.5, True):  # a trailing mean of one sample is no window
        with pytest.raises(pe.ParameterError, match="window must be an int of at least 2"):
            pe.Pipeline(window=window).fit(X)
    assert pe.Pipeline(window=2).fit(X).window == 2
    with pytest.raises(pe.NotFittedError):
        pe.Pipeline().predict(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: pe.RobustZScore(window=50, warm_up=10),
        lambda: pe.EwmaChart(smoothing=0.3, warm_up=5),
        lambda: pe.HalfSpaceTrees(window_size=50, random_state=3),
        lambda: pe.ContextDetector(feature_ranges=[(-3.0, 3.0), (-3.0, 3.0)], rest_period=5),
    ],
    ids=["robust_zscore", "ewma_chart", "half_space_trees", "context"],
)
def test_streaming_detectors_resume_from_a_model_file(make, tmp_path):
    rng = np.random.default_rng(8)
    before, after = rng.normal(size=(180, 2)), rng.normal(size=(120, 2))
    det = make()
    det.score_series(before)
    det.save(tmp_path / "det.json")
    back = pe.load(tmp_path / "det.json")
    assert type(back) is type(det)
    for k, v in det.get_params().items():
        if v is not None:
            assert back.get_params()[k] == v
    np.testing.assert_array_equal(back.score_series(after), det.score_series(after))
    assert pe.load(det.to_bytes()).n_features_in_ == 2
    with pytest.raises(pe.NotFittedError):
        make().save(tmp_path / "unfitted.json")


def test_context_detector_flags_a_break_in_a_learnt_pattern():
    t = np.arange(3000)
    x = np.sin(2 * np.pi * t / 25)
    x[2506] = -x[2506]  # in range, but never at that phase (near the top)
    det = pe.ContextDetector(feature_ranges=[(-1.0, 1.0)])
    scores = det.score_series(x)
    assert scores[2506] >= det.threshold_
    assert np.max(scores[2000:2506]) < det.threshold_
    assert det.score_one(np.array([0.0])) == det.score_one(np.array([0.0]))
    with pytest.raises(pe.ParameterError):
        pe.ContextDetector(value_bits=0).update(0.0)


def test_health_index_resumes_from_a_model_file(tmp_path):
    index = pe.HealthIndex(alpha=0.2)
    index.transform([0.2, 1.5, 2.5], threshold=1.0)
    index.save(tmp_path / "health.json")
    back = pe.load(tmp_path / "health.json")
    assert isinstance(back, pe.HealthIndex) and back.alpha == 0.2
    assert back.smoothed_ == index.smoothed_
    np.testing.assert_array_equal(back.transform([3.0, 0.0], 1.0), index.transform([3.0, 0.0], 1.0))


def test_scalers_and_pca_read_float32_as_its_float64_widening():
    rng = np.random.default_rng(13)
    X32 = rng.normal(size=(500, 4)).astype(np.float32)
    X64 = X32.astype(np.float64)
    for scaler in (pe.StandardScaler().fit(X64), pe.RobustScaler().fit(X64)):
        np.testing.assert_array_equal(scaler.transform(X32), scaler.transform(X64))
        np.testing.assert_array_equal(scaler.transform(np.asfortranarray(X32)), scaler.transform(X64))
    pca = pe.PcaDetector(n_components=2).fit(X64)
    np.testing.assert_array_equal(pca.score_samples(X32), pca.score_samples(X64))
    t2a, qa = pca.statistics(X32)
    t2b, qb = pca.statistics(X64)
    np.testing.assert_array_equal(t2a, t2b)
    np.testing.assert_array_equal(qa, qb)
