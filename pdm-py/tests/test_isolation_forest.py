"""pdm_engine.IsolationForest: scikit-learn conventions, parity, bad input, model files."""

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import pdm_engine as pe

ROOT = Path(__file__).resolve().parents[2]


def gaussian_with_outliers(seed=0, n=2000, d=4, outliers=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:outliers] += rng.choice([-6.0, 6.0], size=(outliers, d))
    y = np.zeros(n, dtype=int)
    y[:outliers] = 1
    return X, y


def test_fit_returns_self_and_sets_fitted_attributes():
    X, _ = gaussian_with_outliers()
    model = pe.IsolationForest(n_estimators=50, random_state=1)
    assert model.fit(X) is model
    assert model.n_features_in_ == 4
    assert model.offset_ == -0.5
    assert model.max_samples_ == 256
    assert not hasattr(model, "feature_names_in_")


def test_outliers_score_lowest_and_predict_minus_one():
    X, y = gaussian_with_outliers()
    model = pe.IsolationForest(random_state=0).fit(X)
    scores = model.score_samples(X)
    assert scores[y == 1].mean() < scores[y == 0].mean() - 0.1
    assert np.all((scores < 0) & (scores >= -1))
    np.testing.assert_array_equal(model.decision_function(X), scores - model.offset_)
    assert set(np.unique(model.predict(X))) <= {-1, 1}
    assert model.predict(np.array([[9.0, 9.0, 9.0, 9.0]]))[0] == -1


def test_contamination_flags_that_share_of_training_rows():
    X, _ = gaussian_with_outliers(n=1000)
    for c in (0.05, 0.1, 0.25):
        flagged = (pe.IsolationForest(contamination=c, random_state=2).fit_predict(X) == -1).mean()
        assert abs(flagged - c) <= 0.011, (c, flagged)


def test_get_and_set_params_follow_scikit_learn():
    model = pe.IsolationForest(n_estimators=10)
    params = model.get_params()
    assert params["n_estimators"] == 10 and params["contamination"] == "auto"
    assert model.set_params(max_samples=0.5, random_state=3) is model
    assert model.max_samples == 0.5
    with pytest.raises(pe.ParameterError, match="invalid parameter 'n_trees'"):
        model.set_params(n_trees=3)


def test_same_seed_same_model_any_thread_count():
    X, _ = gaussian_with_outliers()
    a = pe.IsolationForest(random_state=5).fit(X).score_samples(X)
    b = pe.IsolationForest(random_state=5, n_jobs=2).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)


def test_float32_fortran_and_integer_input_give_the_same_scores():
    X, _ = gaussian_with_outliers()
    X32 = X.astype(np.float32)
    as64 = X32.astype(np.float64)
    model = pe.IsolationForest(random_state=0).fit(as64)
    base = model.score_samples(as64)
    np.testing.assert_array_equal(model.score_samples(X32), base)
    np.testing.assert_array_equal(model.score_samples(np.asfortranarray(as64)), base)
    ints = np.round(X * 10).astype(np.int64)
    np.testing.assert_array_equal(model.score_samples(ints), model.score_samples(ints.astype(float)))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"n_estimators": 0}, "n_estimators"),
        ({"contamination": 0.7}, "contamination"),
        ({"contamination": "most"}, "contamination"),
        ({"max_samples": 1.5}, "max_samples"),
        ({"max_samples": 0}, "max_samples"),
        ({"max_features": 0}, "max_features"),
        ({"max_features": 9}, "max_features"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"random_state": "x"}, "random_state"),
    ],
)
def test_bad_parameters_raise_value_errors_naming_them(params, message):
    X, _ = gaussian_with_outliers(n=100)
    with pytest.raises(pe.ParameterError, match=message) as info:
        pe.IsolationForest(**params).fit(X)
    assert isinstance(info.value, ValueError) and isinstance(info.value, pe.PdmError)


def test_bad_data_raises_clear_errors():
    X, _ = gaussian_with_outliers(n=100)
    model = pe.IsolationForest(random_state=0).fit(X)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(pe.DataError, match="row 3, column 2"):
        pe.IsolationForest().fit(bad)
    bad[3, 2] = np.inf
    with pytest.raises(pe.DataError, match="not a finite"):
        model.score_samples(bad)
    with pytest.raises(pe.DataError, match="2-D"):
        model.score_samples(X[:, 0])
    with pytest.raises(pe.DataError, match="3 features, but IsolationForest was fitted with 4"):
        model.score_samples(X[:, :3])
    with pytest.raises(pe.DataError, match="empty"):
        pe.IsolationForest().fit(np.empty((0, 4)))
    with pytest.raises(pe.DataError, match="dtype"):
        pe.IsolationForest().fit(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(pe.NotFittedError):
        pe.IsolationForest().predict(X)
    # Still usable after all of that.
    assert model.predict(X).shape == (100,)


def test_dataframes_bring_feature_names():
    pd = pytest.importorskip("pandas")
    X, _ = gaussian_with_outliers(n=300)
    df = pd.DataFrame(X, columns=["temperature", "vibration", "current", "pressure"])
    model = pe.IsolationForest(random_state=0).fit(df)
    assert list(model.feature_names_in_) == list(df.columns)
    np.testing.assert_array_equal(model.score_samples(df), model.score_samples(X))
    with pytest.raises(pe.DataError, match="feature names"):
        model.score_samples(df.rename(columns={"current": "amps"}))


def test_models_survive_save_load_and_pickle_bit_for_bit(tmp_path):
    X, _ = gaussian_with_outliers()
    model = pe.IsolationForest(contamination=0.02, max_features=0.75, random_state=9).fit(X)
    path = tmp_path / "model.json"
    model.save(path)
    loaded = pe.load(path)
    assert isinstance(loaded, pe.IsolationForest)
    assert loaded.get_params()["contamination"] == 0.02
    assert loaded.get_params()["random_state"] == 9
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.offset_ == model.offset_
    again = pe.load(model.to_bytes())
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_damaged_and_newer_model_files_raise(tmp_path):
    import json

    X, _ = gaussian_with_outliers(n=200)
    model = pe.IsolationForest(n_estimators=5, random_state=0).fit(X)
    doc = json.loads(model.to_bytes())
    doc["format_version"] = pe.MODEL_FORMAT_VERSION + 1
    with pytest.raises(pe.ModelVersionError, match="upgrade pdm"):
        pe.load(json.dumps(doc).encode())
    doc["format_version"] = pe.MODEL_FORMAT_VERSION
    doc["model"]["offset"] = 0.25
    with pytest.raises(pe.ModelFileError, match="checksum"):
        pe.load(json.dumps(doc).encode())
    with pytest.raises(pe.ModelFileError):
        pe.load(b"not json at all")
    with pytest.raises(pe.ModelIOError) as info:
        pe.load(tmp_path / "missing.json")
    assert isinstance(info.value, OSError)


def cargo_example(*args):
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not available: the Rust side of the round trip cannot run")
    out = subprocess.run(
        [cargo, "run", "-q", "--release", "-p", "examples", "--example", "model_roundtrip", "--", *map(str, args)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return np.array([int(line, 16) for line in out.stdout.split()], dtype=np.uint64).view(np.float64)


def test_python_models_score_identically_in_rust_and_back(tmp_path):
    X, _ = gaussian_with_outliers(n=500)
    csv = tmp_path / "x.csv"
    np.savetxt(csv, X, delimiter=",", fmt="%.17g")
    # Python -> Rust.
    model = pe.IsolationForest(n_estimators=60, random_state=4).fit(np.loadtxt(csv, delimiter=","))
    model.save(tmp_path / "py.json")
    rust_scores = cargo_example("score", tmp_path / "py.json", csv)
    np.testing.assert_array_equal(rust_scores, model.score_samples(np.loadtxt(csv, delimiter=",")))
    # Rust -> Python.
    rust_fit_scores = cargo_example("fit", csv, tmp_path / "rust.json")
    loaded = pe.load(tmp_path / "rust.json")
    np.testing.assert_array_equal(loaded.score_samples(np.loadtxt(csv, delimiter=",")), rust_fit_scores)


def test_float32_is_read_in_place_and_scores_as_its_float64_widening():
    rng = np.random.default_rng(12)
    X32 = rng.normal(size=(2000, 3)).astype(np.float32)
    X64 = X32.astype(np.float64)
    model = pe.IsolationForest(n_estimators=50, random_state=1, contamination=0.05).fit(X64)
    want = model.score_samples(X64)
    for X in (X32, np.asfortranarray(X32)):
        np.testing.assert_array_equal(model.score_samples(X), want)
        np.testing.assert_array_equal(model.decision_function(X), want - model.offset_)
        np.testing.assert_array_equal(model.predict(X), model.predict(X64))
    bad = X32.copy()
    bad[7, 2] = np.inf
    with pytest.raises(pe.DataError, match="row 7, column 2"):
        model.score_samples(bad)
