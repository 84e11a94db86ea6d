"""Health index and remaining useful life, checked by hand."""

import numpy as np
import pytest

import pdm_engine as pe


def test_health_index_by_hand():
    hi = pe.HealthIndex(alpha=0.5, failure_level=2.0)
    assert not hasattr(hi, "health_")
    assert hi.update(0.0, 3.0) == 1.0  # u = 0
    assert hi.update(3.0, 3.0) == 0.75  # u = 1: smoothed 0.5, health 1 - 0.5 / 2
    assert hi.update(15.0, 3.0) == 0.0  # u = 5: smoothed 2.75, past failure
    assert (hi.health_, hi.smoothed_) == (0.0, 2.75)
    # A series continues from there: u = 0 halves the smoothed score each time.
    np.testing.assert_allclose(hi.transform([0.0, 0.0], 3.0), [1 - 1.375 / 2, 1 - 0.6875 / 2])
    assert hi.reset().get_params() == {"alpha": 0.5, "failure_level": 2.0}
    assert not hasattr(hi, "health_")
    assert hi.transform(np.array([-1.0, 2.0]), 1.0).tolist() == [1.0, 0.5]  # negative counts as 0


def test_refused_scores_leave_the_index_alone():
    hi = pe.HealthIndex(alpha=0.5)
    hi.update(1.0, 1.0)
    before = (hi.health_, hi.smoothed_)
    with pytest.raises(pe.DataError, match="not a finite"):
        hi.update(np.nan, 1.0)
    with pytest.raises(pe.DataError, match=r"scores\[1\] is not a finite number"):
        hi.transform([1.0, np.inf], 1.0)
    with pytest.raises(pe.ParameterError, match="threshold must be finite and > 0, got 0"):
        hi.transform([1.0, 2.0], 0.0)
    assert (hi.health_, hi.smoothed_) == before
    assert hi.update(1.0, 1.0) == hi.health_
    with pytest.raises(pe.ParameterError, match="alpha must be in \\(0, 1\\], got 0"):
        pe.HealthIndex(alpha=0.0).update(1.0, 1.0)
    with pytest.raises(pe.ParameterError, match="failure_level"):
        pe.HealthIndex(failure_level="high").update(1.0, 1.0)


def test_remaining_useful_life_of_a_straight_line():
    # Health 1 - 0.005 t reaches 0 at t = 200: 101 time units after the last time, 99. With no
    # noise the interval closes on the estimate.
    t = np.arange(100.0)
    est = pe.remaining_useful_life(t, 1.0 - 0.005 * t)
    assert est.model == "linear" and est.n_points == 100
    assert est.rul == pytest.approx(101.0)
    assert est.interval == pytest.approx((101.0, 101.0))
    assert est.slope == pytest.approx(-0.005)
    # Failure at health 0.5: t = 100, one unit after the last; the window keeps the last 20.
    est = pe.remaining_useful_life(t, 1.0 - 0.005 * t, window=20, failure_level=0.5)
    assert est.rul == pytest.approx(1.0) and est.n_points == 20


def test_remaining_useful_life_is_none_without_a_falling_trend():
    t = np.arange(100.0)
    flat = 0.8 + 0.02 * np.random.default_rng(7).normal(size=100)
    assert pe.remaining_useful_life(t, flat) is None
    assert pe.remaining_useful_life(t, 0.2 + 0.005 * t) is None
    assert pe.remaining_useful_life(t[:9], 1.0 - 0.005 * t[:9]) is None  # fewer than min_points
    assert pe.remaining_useful_life(t[:9], 1.0 - 0.005 * t[:9], min_points=5) is not None


def test_rul_bad_input():
    with pytest.raises(pe.DataError, match="times has 2 values, health 1"):
        pe.remaining_useful_life([0.0, 1.0], [1.0])
    with pytest.raises(pe.DataError, match=r"times\[2\] = 1.0 follows 1.0"):
        pe.remaining_useful_life([0.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(pe.DataError, match=r"health\[1\] is not a finite number"):
        pe.remaining_useful_life([0.0, 1.0], [1.0, np.nan])
    with pytest.raises(pe.DataError, match="dtype"):
        pe.remaining_useful_life(np.array(["2024-01-01"], dtype="datetime64[D]"), [1.0])
    with pytest.raises(pe.ParameterError, match="window must be >= 3, got 2"):
        pe.remaining_useful_life([0.0], [1.0], window=2, min_points=2)
    with pytest.raises(pe.ParameterError, match="window must be an int"):
        pe.remaining_useful_life([0.0], [1.0], window=-5)
    with pytest.raises(pe.ParameterError, match="confidence must be in \\(0, 1\\), got 1"):
        pe.remaining_useful_life([0.0], [1.0], confidence=1.0)
