"""Streaming detectors: score_one scores without learning; update and score_series agree."""

import numpy as np
import pytest

import pdm_engine as pe

DETECTORS = [
    lambda: pe.RobustZScore(window=50, warm_up=10),
    lambda: pe.EwmaChart(smoothing=0.3, warm_up=10),
    lambda: pe.HalfSpaceTrees(window_size=50, random_state=4),
]
IDS = ["robust_zscore", "ewma_chart", "half_space_trees"]


def series(n=400, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2))


def test_robust_zscore_by_hand():
    # Each row against the window before it: 4 against 1, 2, 3 (median 2, MAD 1); 5 against
    # 1..4 (median 2.5, MAD 1); 10 against 1..5 (median 3, MAD 1). 1.4826 scales a MAD to a sigma.
    det = pe.RobustZScore(window=5, warm_up=3)
    np.testing.assert_allclose(
        det.score_series(np.arange(1.0, 6.0)), [0.0, 0.0, 0.0, 2.0 / 1.4826, 2.5 / 1.4826]
    )
    assert det.score_one(10.0) == pytest.approx(7.0 / 1.4826)
    assert det.score_one([10.0]) == pytest.approx(7.0 / 1.4826)


@pytest.mark.parametrize("make", DETECTORS, ids=IDS)
def test_score_one_does_not_learn(make):
    X = series()
    learner, checker = make(), make()
    expected = learner.score_series(X)
    got = []
    for row in X:
        candidate = checker.score_one(row)
        assert checker.score_one(row) == candidate  # asking twice changes nothing
        got.append(checker.update(row))
        assert got[-1] == candidate  # update scores the row exactly as score_one did
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("make", DETECTORS, ids=IDS)
def test_score_one_checks_its_input(make):
    det = make()
    det.update([0.0, 1.0])
    with pytest.raises(pe.DataError, match="2"):
        det.score_one([1.0, 2.0, 3.0])
    with pytest.raises(pe.DataError, match=r"row\[1\] is not a finite number"):
        det.score_one([1.0, np.inf])
    with pytest.raises(pe.DataError, match="1-D"):
        det.score_one([[1.0, 2.0]])
    with pytest.raises(pe.DataError, match="dtype"):
        det.score_one(["a", "b"])
    with pytest.raises(pe.DataError, match="empty"):
        pe.RobustZScore().score_one([])


def test_ewma_smoothing_is_the_charts_lambda():
    # smoothing 1 makes the EWMA statistic the row itself: a Shewhart chart at limit L.
    X = series(300)[:, :1]
    shewhart = pe.EwmaChart(smoothing=1.0, limit=3.0, shewhart_limit=100.0).score_series(X)
    ewma = pe.EwmaChart(smoothing=0.2, limit=3.0, shewhart_limit=100.0).score_series(X)
    assert not np.allclose(shewhart, ewma)
    assert pe.EwmaChart().get_params() == {
        "smoothing": None, "limit": None, "alpha": None, "warm_up": None, "min_std": None,
        "shewhart_limit": None,
    }
    for bad in (0.0, 1.5, "0.2", True):
        with pytest.raises(pe.ParameterError, match="smoothing must be in"):
            pe.EwmaChart(smoothing=bad).update([1.0])
    with pytest.raises(TypeError):
        pe.EwmaChart(lambda_=0.2)
