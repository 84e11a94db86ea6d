"""The benchmark metrics on your own predictions and labels (``pdm_detect::eval``): SKAB's
point-wise F1 / false alarm rate / missed alarm rate, and the NAB score."""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import _native
from ._validation import as_flags, as_real, as_vector
from .exceptions import DataError, ParameterError


class SkabMetrics(NamedTuple):
    """SKAB's outlier-detection metrics from confusion counts summed over files: ``f1 = TP /
    (TP + (FP + FN) / 2)``, ``far = FP / (FP + TN)`` (false alarm rate) and ``mar = FN / (FN +
    TP)`` (missed alarm rate), as fractions (SKAB's leaderboard prints FAR and MAR in percent).
    A ratio is ``None`` when undefined (no positive at all for F1; no normal row for FAR; no
    anomalous row for MAR)."""

    f1: Optional[float]
    far: Optional[float]
    mar: Optional[float]
    tp: int
    tn: int
    fp: int
    fn: int


def skab_metrics(predicted: Any, truth: Any = None) -> SkabMetrics:
    """SKAB's point-wise metrics. Either one file, ``skab_metrics(predicted, truth)``, or
    several, ``skab_metrics([(predicted, truth), ...])``: counts are summed over files before
    the ratios, as SKAB does. Each is one flag per row: booleans or 0/1 numbers (``truth`` is
    SKAB's ``anomaly`` column; for ``predict``'s -1/+1, pass ``predict(X) == -1``)."""
    if truth is None:
        if isinstance(predicted, np.ndarray):
            raise DataError(
                "pass skab_metrics(predicted, truth) for one file, or a list of (predicted, truth) pairs"
            )
        pairs = list(predicted)
    else:
        pairs = [(predicted, truth)]
    if not pairs:
        raise DataError("no (predicted, truth) pair given")
    checked = []
    for i, pair in enumerate(pairs):
        try:
            p, t = pair
        except (TypeError, ValueError):
            raise DataError(f"item {i} is not a (predicted, truth) pair") from None
        p = as_flags(p, name=f"predicted[{i}]" if truth is None else "predicted")
        t = as_flags(t, name=f"truth[{i}]" if truth is None else "truth")
        if p.shape[0] != t.shape[0]:
            where = f" of pair {i}" if truth is None else ""
            raise DataError(f"predicted{where} has {p.shape[0]} rows, truth {t.shape[0]}")
        checked.append((p, t))
    (tp, tn, fp, fn), f1, far, mar = _native.skab_metrics(checked)
    return SkabMetrics(f1, far, mar, tp, tn, fp, fn)


NAB_PROFILES: Tuple[str, ...] = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
"""NAB's cost profiles, in its scoreboard's order."""


class NabFileScore(NamedTuple):
    """One file's share of a NAB profile score: its raw score at the corpus threshold, and its
    row counts there."""

    name: str
    raw: float
    tp: int
    tn: int
    fp: int
    fn: int


class NabScore(NamedTuple):
    """One NAB profile over a corpus: ``score`` is the normalised score, ``100 * (raw - null) /
    (perfect - null)`` (0 for a detector that never fires, 100 for a perfect one; ``None``
    without any labelled window), at the one corpus-wide ``threshold`` (rows with a score
    ``>=`` it are detections) that maximises ``raw``. The counts are of scored rows (after the
    probation period) at that threshold; ``files`` gives each file's share."""

    profile: str
    score: Optional[float]
    threshold: float
    raw: float
    null: float
    perfect: float
    tp: int
    tn: int
    fp: int
    fn: int
    files: List[NabFileScore]


def _windows(windows: Any, name: str) -> List[Tuple[int, int]]:
    out = []
    for i, w in enumerate(windows):
        try:
            start, end = w
        except (TypeError, ValueError):
            raise DataError(f"{name}: window {i} is not a (start, end) pair of rows") from None
        for v in (start, end):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise DataError(f"{name}: window {i} = {tuple(w)!r}: rows are ints >= 0")
        out.append((int(start), int(end)))
    return out


def nab_score(
    scores: Any,
    windows: Any = None,
    *,
    profiles: Sequence[str] = NAB_PROFILES,
    probation_percent: float = 0.15,
) -> Dict[str, NabScore]:
    """The Numenta Anomaly Benchmark score of a detector's anomaly scores (numbers in [0, 1],
    one per row) against labelled anomaly windows (``(start, end)`` rows, inclusive, sorted and
    disjoint).

    One file: ``nab_score(scores, windows)``. A corpus: ``nab_score({name: (scores, windows),
    ...})`` or ``nab_score([(scores, windows), ...])`` (files named ``file0, file1, ...``); NAB
    picks one threshold for the whole corpus. The first ``probation_percent`` of each file (at
    most 750 rows) is the detector's learning period and is not scored. Returns one
    :class:`NabScore` per profile of ``profiles`` (NAB's three by default), keyed by its name.
    """
    if windows is not None:
        files: Iterable[Tuple[str, Any]] = [("file0", (scores, windows))]
    elif isinstance(scores, Mapping):
        files = [(str(k), v) for k, v in scores.items()]
    elif isinstance(scores, np.ndarray):
        raise DataError("pass nab_score(scores, windows) for one file, or a corpus of (scores, windows)")
    else:
        files = [(f"file{i}", v) for i, v in enumerate(scores)]
    checked = []
    for name, item in files:
        try:
            s, w = item
        except (TypeError, ValueError):
            raise DataError(f"{name}: expected a (scores, windows) pair") from None
        checked.append((name, as_vector(s, name=f"{name}: scores"), _windows(w, name)))
    if not checked:
        raise DataError("no file given")
    if isinstance(profiles, str):
        profiles = [profiles]
    names = list(profiles)
    if not names:
        raise ParameterError(f"profiles is empty; choose among {', '.join(NAB_PROFILES)}")
    reports = _native.nab_score(checked, names, as_real(probation_percent, name="probation_percent"))
    out = {}
    for profile, threshold, raw, null, perfect, normalized, counts, per_file in reports:
        out[profile] = NabScore(
            profile,
            None if math.isnan(normalized) else normalized,
            threshold,
            raw,
            null,
            perfect,
            *counts,
            [NabFileScore(n, s, *c) for n, s, c in per_file],
        )
    return out
