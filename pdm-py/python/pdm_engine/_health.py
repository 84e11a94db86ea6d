"""Health index from anomaly scores, and remaining useful life from the health trend
(``pdm_detect::health``)."""

from __future__ import annotations

import os
from typing import Any, NamedTuple, Optional, Tuple

import numpy as np

from . import _native
from ._validation import as_count, as_real, as_vector
from .exceptions import DataError, ParameterError


class HealthIndex:
    """Health in [0, 1] (1 healthy, 0 failed) from a stream of anomaly scores.

    Each score is divided by the detector's threshold and smoothed exponentially with weight
    ``alpha`` (in (0, 1]; the default 0.05 remembers about 40 rows), so one stray spike barely
    moves health while a lasting rise does. Health is ``clip(1 - smoothed / failure_level, 0,
    1)``: 1 for scores of 0, ``1 - 1 / failure_level`` while scores sit at the threshold (0.5 by
    default), 0 once the smoothed score reaches ``failure_level`` thresholds. Negative scores
    count as 0.

    ``update(score, threshold)`` takes one score, ``transform(scores, threshold)`` a series;
    both continue from the scores seen so far. ``health_`` and ``smoothed_`` are the state after
    the last score. The index starts at the first score; parameters set after that do not apply
    to it until :meth:`reset`.
    """

    def __init__(self, alpha: float = 0.05, failure_level: float = 2.0) -> None:
        self.alpha = alpha
        self.failure_level = failure_level

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their current values."""
        return {"alpha": self.alpha, "failure_level": self.failure_level}

    def set_params(self, **params: Any) -> "HealthIndex":
        """Sets constructor parameters; returns ``self``."""
        for key, value in params.items():
            if key not in ("alpha", "failure_level"):
                raise ParameterError(
                    f"invalid parameter {key!r} for HealthIndex; valid: alpha, failure_level"
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        return f"HealthIndex(alpha={self.alpha!r}, failure_level={self.failure_level!r})"

    def _index(self) -> Any:
        if not hasattr(self, "model_"):
            self.model_ = _native.health_index(
                as_real(self.alpha, name="alpha"), as_real(self.failure_level, name="failure_level")
            )
        return self.model_

    def _sync(self) -> None:
        self.health_ = self.model_.health
        self.smoothed_ = self.model_.smoothed

    def update(self, score: float, threshold: float) -> float:
        """Takes the next score of a detector whose alarm level is ``threshold`` (> 0) and
        returns the health. A refused score leaves the index unchanged."""
        s = as_real(score, name="score")
        if not np.isfinite(s):
            raise DataError(f"score is not a finite number ({s})")
        health = self._index().update(s, as_real(threshold, name="threshold"))
        self._sync()
        return health

    def transform(self, scores: Any, threshold: float) -> np.ndarray:
        """The health after each score of ``scores`` (1-D, in time order), continuing from the
        scores seen so far. All or nothing: a refused score leaves the index unchanged."""
        arr = as_vector(scores, name="scores", allow_empty=True)
        health = self._index().series(arr, as_real(threshold, name="threshold"))
        self._sync()
        return health

    def save(self, path: Any) -> None:
        """Writes the index with its smoothed score as a pdm model file."""
        self._index().save(os.fspath(path))

    def to_bytes(self) -> bytes:
        """The index with its smoothed score as the bytes of a pdm model file."""
        return self._index().to_bytes()

    @classmethod
    def _from_model(cls, model: Any) -> "HealthIndex":
        alpha, failure_level = model.params()
        index = cls(alpha=alpha, failure_level=failure_level)
        index.model_ = model
        index._sync()
        return index

    def reset(self) -> "HealthIndex":
        """Forgets the scores seen (and applies the current parameters); returns ``self``."""
        for name in ("model_", "health_", "smoothed_"):
            if hasattr(self, name):
                delattr(self, name)
        return self


class RulEstimate(NamedTuple):
    """A remaining-useful-life estimate, in the units of the times given, counted from the last
    one: ``rul`` and its interval ``lower``..``upper`` (0 when already failed), the trend
    ``model`` that fitted better (``"linear"`` in health, or ``"exponential"``: ``1 - health``
    growing exponentially), its ``slope`` (of health, or of ``ln(1 - health)``, per time unit)
    with ``slope_std_err``, and ``n_points`` fitted."""

    rul: float
    lower: float
    upper: float
    model: str
    slope: float
    slope_std_err: float
    n_points: int

    @property
    def interval(self) -> Tuple[float, float]:
        """``(lower, upper)``."""
        return (self.lower, self.upper)


def remaining_useful_life(
    times: Any,
    health: Any,
    *,
    window: int = 100,
    min_points: int = 10,
    failure_level: float = 0.0,
    confidence: float = 0.9,
) -> Optional[RulEstimate]:
    """Remaining useful life from health values (as :class:`HealthIndex` gives) at strictly
    increasing ``times`` (numbers in any unit; the estimate is in the same unit).

    Over the last ``window`` points, fits health linearly in time and ``ln(1 - health)``
    linearly in time (exponential degradation), keeps the better fit, and says when it reaches
    ``failure_level`` (health at failure, in [0, 1)), with Fieller's ``confidence`` interval.
    Returns ``None`` when health is not significantly falling (the slope's ``confidence``
    interval must lie wholly below 0) or fewer than ``min_points`` points are given. The
    interval assumes independent residuals, so it is too narrow on smoothed health.
    """
    t = as_vector(times, name="times", allow_empty=True)
    h = as_vector(health, name="health", allow_empty=True)
    if t.shape[0] != h.shape[0]:
        raise DataError(f"times has {t.shape[0]} values, health {h.shape[0]}; one time per value")
    if t.shape[0] > 1:
        back = np.flatnonzero(np.diff(t) <= 0)
        if back.size:
            i = int(back[0]) + 1
            raise DataError(f"times must increase strictly: times[{i}] = {t[i]} follows {t[i - 1]}")
    est = _native.remaining_useful_life(
        t,
        h,
        as_count(window, name="window"),
        as_count(min_points, name="min_points"),
        as_real(failure_level, name="failure_level"),
        as_real(confidence, name="confidence"),
    )
    return None if est is None else RulEstimate(*est)
