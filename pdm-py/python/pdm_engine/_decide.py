"""From scores to decisions: a calibrated threshold, "k of n" smoothing and events
(``pdm_detect::decide``)."""

from __future__ import annotations

import numbers
from typing import Any, List, NamedTuple

import numpy as np

from . import _native
from ._validation import as_count, as_flags, as_real, as_vector
from .exceptions import DataError, ParameterError


class Event(NamedTuple):
    """A run of flagged rows: ``start`` to ``end`` inclusive, and the row and value of its
    highest score (the first row on ties)."""

    start: int
    end: int
    peak_index: int
    peak_score: float

    @property
    def n_rows(self) -> int:
        """Rows in the event, ``end - start + 1``."""
        return self.end - self.start + 1


class Decisions(NamedTuple):
    """What :func:`decide` found: ``raw`` (score above the threshold, per row), ``flags`` (after
    "k of n" smoothing, per row) and ``events`` (runs of flags merged across short gaps)."""

    raw: np.ndarray
    flags: np.ndarray
    events: List[Event]


def calibrate_threshold(scores: Any, quantile: float = 0.99) -> float:
    """A threshold from scores of normal (training) rows: their ``quantile`` with numpy's
    default linear interpolation, so ``1 - quantile`` of them lie above it. Equal to
    ``np.quantile(scores, quantile)``."""
    arr = as_vector(scores, name="scores")
    q = as_real(quantile, name="quantile")
    return _native.calibrate_threshold(arr, q)


def k_of_n(flags: Any, k: int, n: int) -> np.ndarray:
    """"k of n" smoothing: row ``i`` is flagged when at least ``k`` of the raw flags at rows
    ``i - n + 1 .. i`` (fewer at the start) are set; ``1 <= k <= n``. Flags are booleans or 0/1
    integers; returns booleans."""
    arr = as_flags(flags, name="flags")
    return _native.k_of_n(arr, as_count(k, name="k"), as_count(n, name="n"))


def events(flags: Any, scores: Any, min_gap: int = 0) -> List[Event]:
    """Runs of flagged rows as :class:`Event` s, peaks taken from ``scores`` (one per flag); runs
    separated by fewer than ``min_gap`` unflagged rows are merged into one event spanning the
    gap (0 and 1 never merge)."""
    f = as_flags(flags, name="flags")
    s = as_vector(scores, name="scores", allow_empty=True)
    if f.shape[0] != s.shape[0]:
        raise DataError(f"flags has {f.shape[0]} values, scores {s.shape[0]}; one score per flag")
    found = _native.events(f, s, as_count(min_gap, name="min_gap"))
    return [Event(*e) for e in found]


def decide(scores: Any, threshold: float, k: int = 1, n: int = 1, min_gap: int = 0) -> Decisions:
    """Flags rows whose score is strictly above ``threshold``, smooths the flags "k of n" and
    groups them into events merged across gaps shorter than ``min_gap``: the engine's decision
    step, as the pdm server applies it. ``scores`` are in time order, higher more anomalous
    (for ``IsolationForest``, pass ``-score_samples(X)`` and ``threshold=-offset_``). The
    defaults (1 of 1, no merging) keep the raw flags."""
    s = as_vector(scores, name="scores", allow_empty=True)
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise ParameterError(f"threshold must be a finite number, got {threshold!r}")
    raw, flags, found = _native.decide(
        s,
        float(threshold),
        as_count(k, name="k"),
        as_count(n, name="n"),
        as_count(min_gap, name="min_gap"),
    )
    return Decisions(raw, flags, [Event(*e) for e in found])
