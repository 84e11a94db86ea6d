"""Which features, and so which sensors, made a row anomalous (``pdm_detect::attribution``)."""

from __future__ import annotations

from typing import Any, List, NamedTuple, Tuple

import numpy as np

from . import _native
from ._validation import as_matrix, as_vector, check_fitted
from .exceptions import DataError, ParameterError


class Attribution(NamedTuple):
    """Contributions to one row's score, largest first: ``features`` as ``(feature name,
    contribution)`` pairs, and ``sensors`` with the contributions of each sensor's features
    summed (a window feature ``"<sensor>__<feature>"`` belongs to ``<sensor>``; a name without
    ``__`` is its own sensor). ``dict(a.sensors)`` gives a mapping in the same order."""

    features: List[Tuple[str, float]]
    sensors: List[Tuple[str, float]]


def _row(row: Any, n_features: int) -> np.ndarray:
    arr = np.asarray(row.to_numpy() if hasattr(row, "to_numpy") else row)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    arr = as_vector(arr, name="row")
    if arr.shape[0] != n_features:
        raise DataError(f"row has {arr.shape[0]} values, the model {n_features} features")
    return arr


def pca_attribution(detector: Any, row: Any, statistic: str = "dominant") -> Attribution:
    """The PCA detector's own decomposition of one row's statistic: per feature, its
    contribution to T² (``statistic="t2"``) or Q (``"q"``) divided by that statistic's limit, so
    the contributions sum to ``T²/T²_limit`` or ``Q/Q_limit``; ``"dominant"`` takes whichever
    is larger, so they sum to ``score_samples`` of the row. ``detector`` is a fitted
    :class:`PcaDetector`; ``row`` one row of what it scores (1-D, or a 1-row matrix)."""
    from . import PcaDetector

    if not isinstance(detector, PcaDetector):
        raise ParameterError(f"pca_attribution needs a PcaDetector, got {type(detector).__name__}")
    check_fitted(detector, "model_")
    if not isinstance(statistic, str):
        raise ParameterError(f"statistic must be 'dominant', 't2' or 'q', got {statistic!r}")
    arr = _row(row, detector.n_features_in_)
    features, sensors = _native.pca_attribution(detector.model_, arr, statistic)
    return Attribution(features, sensors)


class MedianReplacement:
    """Model-agnostic attribution: the contribution of feature ``j`` to a row's score is how
    much the score drops when ``x_j`` alone is replaced by its training median. It asks the model
    itself, so a feature far from its median that the model ignores gets no blame, and one that
    is ordinary alone but breaks a learned correlation does; a replacement that itself makes an
    odd combination gives a negative contribution.

    ``fit(X)`` learns the medians (``median_``) from the rows the detector was fitted on;
    ``explain(detector, row)`` attributes one row's score. The score is the engine's, higher
    more anomalous: ``-score_samples`` for :class:`IsolationForest`, ``score_samples`` for
    :class:`PcaDetector`. Feature names are the detector's (a DataFrame's columns at fit, else
    ``x0, x1, ...``).
    """

    def get_params(self, deep: bool = True) -> dict:
        """No parameters (scikit-learn's convention)."""
        return {}

    def set_params(self, **params: Any) -> "MedianReplacement":
        """Refuses any parameter: there are none."""
        if params:
            raise ParameterError(f"MedianReplacement has no parameters, got {sorted(params)}")
        return self

    def fit(self, X: Any, y: Any = None) -> "MedianReplacement":
        """Learns each feature's median over the training rows ``X``; returns ``self``."""
        arr, names = as_matrix(X)
        self.model_ = _native.fit_median_replacement(arr)
        self.median_ = self.model_.median
        self.n_features_in_ = arr.shape[1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        return self

    def explain(self, detector: Any, row: Any) -> Attribution:
        """Attributes ``detector``'s score of ``row`` (one row of ``n_features_in_`` values) to
        its features and sensors. ``detector``: a fitted :class:`IsolationForest` or
        :class:`PcaDetector` of the same features."""
        from . import IsolationForest, PcaDetector

        check_fitted(self, "model_")
        if not isinstance(detector, (IsolationForest, PcaDetector)):
            raise ParameterError(
                f"explain needs a fitted IsolationForest or PcaDetector, got {type(detector).__name__}"
            )
        check_fitted(detector, "model_")
        arr = _row(row, self.n_features_in_)
        features, sensors = self.model_.explain(detector.model_, arr)
        return Attribution(features, sensors)

    def __repr__(self) -> str:
        return "MedianReplacement()"
