"""Attribution: the PCA detector's own decomposition, and median replacement on any detector."""

import numpy as np
import pandas as pd
import pytest

import pdm_engine as pe

NAMES = ["inlet__mean", "outlet__mean", "bearing__mean"]


def one_factor(n=2000, seed=11):
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame(np.column_stack([f, f, f]) + 0.2 * rng.normal(size=(n, 3)), columns=NAMES)


def test_pca_attribution_sums_to_the_score_and_blames_the_broken_sensor():
    X = one_factor()
    det = pe.PcaDetector(n_components=1).fit(X)
    row = pd.DataFrame([[0.0, 0.0, 3.0]], columns=NAMES)
    score = det.score_samples(row)[0]
    a = pe.pca_attribution(det, row)
    assert a.sensors[0][0] == "bearing"
    assert [name for name, _ in a.sensors] == [n.split("__")[0] for n, _ in a.features]
    contributions = [c for _, c in a.features]
    assert contributions == sorted(contributions, reverse=True)
    assert sum(contributions) == pytest.approx(score, rel=1e-9)
    # Each statistic's contributions are the detector's own, divided by its limit.
    t2, q = det.contributions(row.to_numpy()[0])
    assert dict(pe.pca_attribution(det, row, "t2").features) == pytest.approx(
        dict(zip(NAMES, t2 / det.t2_limit_))
    )
    assert dict(pe.pca_attribution(det, row.to_numpy()[0], "q").features) == pytest.approx(
        dict(zip(NAMES, q / det.q_limit_))
    )


def test_median_replacement_is_the_drop_of_the_score():
    X = one_factor()
    arr = X.to_numpy()
    row = np.array([0.1, -0.2, 3.0])
    expl = pe.MedianReplacement().fit(X)
    np.testing.assert_array_equal(expl.median_, np.median(arr, axis=0))
    assert list(expl.feature_names_in_) == NAMES
    forest = pe.IsolationForest(random_state=0).fit(X)
    pca = pe.PcaDetector(n_components=1).fit(X)
    # The engine's scores: higher is more anomalous.
    for det, score in ((forest, lambda Z: -forest.score_samples(Z)), (pca, pca.score_samples)):
        a = expl.explain(det, row)
        base = score(pd.DataFrame([row], columns=NAMES))[0]
        for j, name in enumerate(NAMES):
            replaced = row.copy()
            replaced[j] = expl.median_[j]
            expected = base - score(pd.DataFrame([replaced], columns=NAMES))[0]
            assert dict(a.features)[name] == pytest.approx(expected, abs=1e-12)
        assert a.sensors[0][0] == "bearing"


def test_median_by_hand_and_default_names():
    expl = pe.MedianReplacement().fit(np.array([[-1.0, 5.0], [0.0, 1.0], [2.0, 3.0]]))
    assert expl.median_.tolist() == [0.0, 3.0]
    forest = pe.IsolationForest(n_estimators=20, random_state=0).fit(
        np.random.default_rng(0).normal(size=(200, 2))
    )
    a = expl.explain(forest, [4.0, 3.0])
    assert sorted(name for name, _ in a.features) == ["x0", "x1"]
    # x1 is at its median already: replacing it changes nothing.
    assert dict(a.features)["x1"] == 0.0


def test_bad_input_is_refused():
    X = one_factor(300)
    det = pe.PcaDetector(n_components=1).fit(X)
    expl = pe.MedianReplacement().fit(X)
    with pytest.raises(pe.DataError, match="row has 2 values, the model 3"):
        pe.pca_attribution(det, [1.0, 2.0])
    with pytest.raises(pe.DataError, match=r"row\[2\] is not a finite number"):
        expl.explain(det, [1.0, 2.0, np.nan])
    with pytest.raises(pe.ParameterError, match="statistic must be"):
        pe.pca_attribution(det, [1.0, 2.0, 3.0], "t3")
    with pytest.raises(pe.ParameterError, match="needs a PcaDetector"):
        pe.pca_attribution(pe.IsolationForest(), [1.0, 2.0, 3.0])
    with pytest.raises(pe.NotFittedError):
        pe.pca_attribution(pe.PcaDetector(), [1.0, 2.0, 3.0])
    with pytest.raises(pe.NotFittedError):
        pe.MedianReplacement().explain(det, [1.0, 2.0, 3.0])
    with pytest.raises(pe.NotFittedError):
        expl.explain(pe.IsolationForest(), [1.0, 2.0, 3.0])
    with pytest.raises(pe.ParameterError, match="IsolationForest or PcaDetector"):
        expl.explain("a model", [1.0, 2.0, 3.0])
    two = pe.PcaDetector(n_components=1).fit(X.iloc[:, :2])
    with pytest.raises(pe.DataError, match="expected 3 columns, got 2"):
        expl.explain(two, [1.0, 2.0, 3.0])
    with pytest.raises(pe.DataError, match="not a finite"):
        pe.MedianReplacement().fit(np.array([[1.0], [np.inf]]))
