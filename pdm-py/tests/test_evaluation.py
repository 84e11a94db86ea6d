"""SKAB metrics and the NAB score on small hand-checked cases."""

import math

import numpy as np
import pytest

import pdm_engine as pe


def test_skab_metrics_of_one_file_by_hand():
    m = pe.skab_metrics([1, 1, 0, 0, 1], [1, 0, 1, 0, 1])
    assert (m.tp, m.tn, m.fp, m.fn) == (2, 1, 1, 1)
    assert m.f1 == pytest.approx(2 / 3)  # TP / (TP + (FP + FN) / 2)
    assert (m.far, m.mar) == (0.5, pytest.approx(1 / 3))
    assert pe.skab_metrics(np.array([True, False]), np.array([True, False])).f1 == 1.0


def test_skab_metrics_take_labels_as_pandas_reads_them():
    # SKAB's `anomaly` column read by pandas is 0.0/1.0 floats: exact 0/1 floats are flags.
    m = pe.skab_metrics(np.array([1, 0, 1]), np.array([1.0, 0.0, 0.0]))
    assert (m.tp, m.tn, m.fp, m.fn) == (1, 1, 1, 0)
    for bad in ([0.5, 1.0, 0.0], [float("nan"), 0.0, 1.0], [2, 0, 1]):
        with pytest.raises(pe.DataError, match="other than 0 and 1"):
            pe.skab_metrics([1, 0, 1], bad)
    with pytest.raises(pe.DataError, match="dtype"):
        pe.skab_metrics([1, 0, 1], ["a", "b", "c"])


def test_dir_shows_the_api_not_the_imports():
    names = dir(pe)
    assert "IsolationForest" in names and "skab_metrics" in names and "sklearn" in names
    for private in ("np", "os", "inspect", "Any", "Dict", "numbers", "as_matrix", "_native"):
        assert private not in names, private
    assert set(pe.__all__) <= set(names)
    for name in pe.__all__:
        assert hasattr(pe, name), name


def test_skab_metrics_sum_counts_over_files():
    files = [
        (np.ones(4, dtype=bool), np.array([1, 1, 1, 1])),  # 4 true positives
        (np.array([1, 0, 0, 0]), np.zeros(4, dtype=int)),  # 1 false alarm, 3 true negatives
    ]
    m = pe.skab_metrics(files)
    assert (m.tp, m.tn, m.fp, m.fn) == (4, 3, 1, 0)
    assert m.f1 == pytest.approx(4 / 4.5)  # not the mean of the files' F1 (1 and undefined)
    assert (m.far, m.mar) == (0.25, 0.0)
    none = pe.skab_metrics([False, False], [False, False])
    assert (none.f1, none.far, none.mar) == (None, 0.0, None)


def test_skab_metrics_bad_input():
    with pytest.raises(pe.DataError, match="predicted has 3 rows, truth 2"):
        pe.skab_metrics([1, 0, 1], [1, 0])
    with pytest.raises(pe.DataError, match="other than 0 and 1"):
        pe.skab_metrics([-1, 1], [1, 0])
    with pytest.raises(pe.DataError, match="pair 1"):
        pe.skab_metrics([([1], [1]), ([1, 0], [1])])
    with pytest.raises(pe.DataError, match="one file"):
        pe.skab_metrics(np.array([1, 0]))
    with pytest.raises(pe.DataError, match="no \\(predicted, truth\\) pair"):
        pe.skab_metrics([])


def weight(p):
    # NAB's scaled sigmoid, normalised at the window's left edge.
    s = lambda x: 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0
    return s(p) / s(-1.0)


def test_nab_score_of_one_early_detection_by_hand():
    # 1000 rows, one window over rows 600..699 (width 100); one detection at row 610, at
    # relative position -(699 - 610 + 1) / 100 = -0.9. No false positive.
    scores = np.zeros(1000)
    scores[610] = 0.9
    r = pe.nab_score(scores, [(600, 699)])
    assert list(r) == list(pe.NAB_PROFILES)
    w = weight(-0.9)
    std = r["standard"]
    assert std.threshold == 0.9
    assert std.raw == pytest.approx(w) and (std.null, std.perfect) == (-1.0, 1.0)
    assert std.score == pytest.approx(100 * (w + 1) / 2)
    # Rows after the 150-row probation: 1 detected in the window, 99 missed, 750 quiet.
    assert (std.tp, std.fn, std.fp, std.tn) == (1, 99, 0, 750)
    low_fn = r["reward_low_FN_rate"]  # a missed window costs 2
    assert low_fn.score == pytest.approx(100 * (w + 2) / 3)


def test_nab_score_over_a_corpus():
    a = np.zeros(1000)
    a[610] = 0.9
    b = np.zeros(500)
    b[300] = 0.9  # a false positive in a file without windows: costs fp_weight at the threshold
    r = pe.nab_score({"a.csv": (a, [(600, 699)]), "b.csv": (b, [])}, profiles=["standard"])
    std = r["standard"]
    assert [f.name for f in std.files] == ["a.csv", "b.csv"]
    assert std.files[1].raw == pytest.approx(-0.11) and std.files[1].fp == 1
    assert std.raw == pytest.approx(weight(-0.9) - 0.11)
    listed = pe.nab_score([(a, [(600, 699)]), (b, [])], profiles="standard")["standard"]
    assert listed.raw == std.raw and listed.files[0].name == "file0"
    assert pe.nab_score(np.zeros(100), [])["standard"].score is None  # no window to score


def test_nab_score_bad_input():
    with pytest.raises(pe.DataError, match="anomaly score 1.5 is not a number in \\[0, 1\\]"):
        pe.nab_score([0.0, 1.5], [])
    with pytest.raises(pe.DataError, match="not a finite"):
        pe.nab_score([0.0, np.nan], [])
    with pytest.raises(pe.DataError, match="past the last row"):
        pe.nab_score(np.zeros(10), [(5, 10)])
    with pytest.raises(pe.DataError, match="overlaps"):
        pe.nab_score(np.zeros(10), [(1, 4), (3, 6)])
    with pytest.raises(pe.DataError, match="rows are ints >= 0"):
        pe.nab_score(np.zeros(10), [(-1, 4)])
    with pytest.raises(pe.DataError, match="not a \\(start, end\\) pair"):
        pe.nab_score(np.zeros(10), [3])
    with pytest.raises(pe.ParameterError, match='unknown NAB profile "strict"'):
        pe.nab_score(np.zeros(10), [], profiles=["strict"])
    with pytest.raises(pe.ParameterError, match="probation_percent must be in \\[0, 1\\), got 1"):
        pe.nab_score(np.zeros(10), [], probation_percent=1.0)
