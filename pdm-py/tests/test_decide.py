"""Thresholds, "k of n" smoothing and events, checked by hand."""

import numpy as np
import pytest

import pdm_engine as pe

T, F = True, False


def test_decide_by_hand():
    scores = [0.2, 1.5, 0.3, 1.8, 2.5, 1.2, 0.1, 0.2, 0.1, 1.1]
    d = pe.decide(scores, 1.0, k=2, n=3)
    # Raw: strictly above 1. 2 of 3: the windows ending at rows 3..6 hold two raw flags or more.
    assert d.raw.tolist() == [F, T, F, T, T, T, F, F, F, T]
    assert d.flags.tolist() == [F, F, F, T, T, T, T, F, F, F]
    assert d.events == [pe.Event(start=3, end=6, peak_index=4, peak_score=2.5)]
    assert d.events[0].n_rows == 4
    start, end, peak_index, peak_score = d.events[0]
    assert (start, end, peak_index, peak_score) == (3, 6, 4, 2.5)
    # Defaults keep the raw flags; a score equal to the threshold is not a flag.
    d = pe.decide(np.array([1.0, 1.0001, 0.0]), 1.0)
    assert d.flags.tolist() == [F, T, F] and d.events == [pe.Event(1, 1, 1, 1.0001)]
    assert pe.decide([], 1.0).events == []


def test_k_of_n_and_events_by_hand():
    raw = [1, 0, 1, 0, 0, 1, 1, 0]
    assert pe.k_of_n(raw, 2, 3).tolist() == [F, F, T, F, F, F, T, T]
    assert pe.k_of_n(np.array(raw, dtype=bool), 1, 3).all()
    flags = [F, T, T, F, F, T, F, T, F, F, F, T]
    scores = [0.0, 2.0, 3.0, 0.5, 0.1, 4.0, 0.9, 1.5, 0.0, 0.0, 0.0, 9.0]
    assert pe.events(flags, scores) == [(1, 2, 2, 3.0), (5, 5, 5, 4.0), (7, 7, 7, 1.5), (11, 11, 11, 9.0)]
    # Gaps of 2, 1 and 3 unflagged rows: min_gap 2 merges the 1-row gap only.
    assert pe.events(flags, scores, min_gap=2) == [(1, 2, 2, 3.0), (5, 7, 5, 4.0), (11, 11, 11, 9.0)]
    assert pe.events(flags, scores, min_gap=4) == [(1, 11, 11, 9.0)]


def test_calibrated_threshold_is_numpys_quantile():
    s = np.random.default_rng(3).gamma(2.0, size=1001)
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert pe.calibrate_threshold(s, q) == pytest.approx(np.quantile(s, q), rel=1e-15)
    assert pe.calibrate_threshold([4, 1, 3, 2], 0.1) == pytest.approx(1.3)
    import pandas as pd

    assert pe.calibrate_threshold(pd.Series([1.0, 2.0, 3.0]), 0.5) == 2.0


def test_bad_input_is_refused_by_name():
    with pytest.raises(pe.DataError, match=r"scores\[1\] is not a finite number"):
        pe.decide([0.0, np.nan], 1.0)
    with pytest.raises(pe.DataError, match="1-D"):
        pe.decide(np.zeros((3, 2)), 1.0)
    with pytest.raises(pe.DataError, match="dtype"):
        pe.decide(["a"], 1.0)
    with pytest.raises(pe.ParameterError, match="k \\(of k of n\\) must be in \\[1, n = 3\\], got 4"):
        pe.decide([1.0], 1.0, k=4, n=3)
    with pytest.raises(pe.ParameterError, match="k must be an int >= 0"):
        pe.k_of_n([T], -1, 2)
    with pytest.raises(pe.ParameterError, match="n must be an int"):
        pe.k_of_n([T], 1, 2.5)
    with pytest.raises(pe.ParameterError, match="threshold must be a finite number"):
        pe.decide([1.0], float("nan"))
    with pytest.raises(pe.ParameterError, match="threshold"):
        pe.decide([1.0], "1")
    with pytest.raises(pe.DataError, match="other than 0 and 1"):
        pe.k_of_n([0, 2], 1, 1)
    with pytest.raises(pe.DataError, match="booleans"):
        pe.k_of_n([0.5, 1.0], 1, 1)
    with pytest.raises(pe.DataError, match="flags has 2 values, scores 3"):
        pe.events([T, F], [1.0, 2.0, 3.0])
    with pytest.raises(pe.ParameterError, match="quantile must be in \\[0, 1\\], got 1.5"):
        pe.calibrate_threshold([1.0, 2.0], 1.5)
    with pytest.raises(pe.DataError, match="empty"):
        pe.calibrate_threshold([], 0.5)
