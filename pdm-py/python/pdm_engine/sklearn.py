"""scikit-learn estimators over pdm's models.

This is the only module of ``pdm_engine`` that imports scikit-learn (``pip install
pdm-engine[sklearn]``). Its classes are proper scikit-learn estimators: they pass scikit-learn's
own ``check_estimator`` suite, validate input the way scikit-learn does (its error messages
included), pickle, clone, and work inside ``Pipeline`` and ``GridSearchCV``.

>>> import numpy as np
>>> from sklearn.pipeline import make_pipeline
>>> from pdm_engine.sklearn import IsolationForest, StandardScaler
>>> X = np.random.default_rng(0).normal(size=(500, 3))
>>> pipe = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(X)
>>> pipe.predict(np.array([[0.0, 0.0, 0.0], [8.0, 8.0, 8.0]])).tolist()
[1, -1]

The fitted pdm model of each estimator is ``model_`` (a :class:`pdm_engine.IsolationForest`
and so on): ``est.model_.save(path)`` writes the model file the pdm server loads.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

import pdm_engine

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

__all__ = ["IsolationForest", "StandardScaler", "RobustScaler", "PcaDetector"]


def _validate(est: BaseEstimator, X: Any, reset: bool, **check: Any) -> np.ndarray:
    """scikit-learn's own input validation: 2-D, finite, numeric, not sparse, float64 unless
    ``dtype`` says otherwise; sets (``reset``) or checks ``n_features_in_`` and
    ``feature_names_in_``."""
    check.setdefault("dtype", np.float64)
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, reset=reset, **check)
    return est._validate_data(X, reset=reset, **check)  # pragma: no cover


class _PdmEstimator(BaseEstimator):
    """Pickling through pdm's model files: the native model is written as its bytes and read
    back, so a pickled estimator scores bit for bit as the original."""

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        if model is not None:
            state["_model_bytes"] = model.to_bytes()
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        data = state.pop("_model_bytes", None)
        self.__dict__.update(state)
        if data is not None:
            self.model_ = pdm_engine.load(data)

    def _fitted_input(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        # float32 stays float32: the engine scores and transforms it in place.
        return _validate(self, X, reset=False, dtype=(np.float64, np.float32))


class IsolationForest(OutlierMixin, _PdmEstimator):
    """:class:`pdm_engine.IsolationForest` as a scikit-learn outlier detector, with the
    parameters, attributes and semantics of ``sklearn.ensemble.IsolationForest``:
    ``score_samples`` (lower is more abnormal), ``offset_``, ``decision_function``
    (``score_samples - offset_``, negative for outliers) and ``predict`` (-1 for outliers)."""

    _parameter_constraints: dict = {
        "n_estimators": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_samples": [
            StrOptions({"auto"}),
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(numbers.Real, 0, 1, closed="right"),
        ],
        "contamination": [StrOptions({"auto"}), Interval(numbers.Real, 0, 0.5, closed="right")],
        "max_features": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(numbers.Real, 0, 1, closed="right"),
        ],
        "bootstrap": ["boolean"],
        "n_jobs": [numbers.Integral, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: Any = "auto",
        contamination: Any = "auto",
        max_features: Any = 1.0,
        bootstrap: bool = False,
        n_jobs: Any = None,
        random_state: Any = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> "IsolationForest":
        """Grows the forest on ``X``; returns ``self``."""
        self._validate_params()
        X = _validate(self, X, reset=True)
        self.model_ = pdm_engine.IsolationForest(**self.get_params()).fit(X)
        self.offset_ = self.model_.offset_
        self.max_samples_ = self.model_.max_samples_
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Opposite of the anomaly score of each row: in [-1, 0), lower is more abnormal."""
        X = self._fitted_input(X)
        return self.model_.score_samples(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        X = self._fitted_input(X)
        return self.model_.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        X = self._fitted_input(X)
        return self.model_.predict(X).astype(int)


class _Scaler(TransformerMixin, _PdmEstimator):
    _pdm_class: Any = None

    def fit(self, X: Any, y: Any = None) -> "_Scaler":
        """Learns the column statistics; returns ``self``."""
        X = _validate(self, X, reset=True)
        self.model_ = type(self)._pdm_class(**self.get_params()).fit(X)
        self.scale_ = self.model_.scale_
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Scales ``X`` with the learned statistics."""
        X = self._fitted_input(X)
        return self.model_.transform(X)


class StandardScaler(_Scaler):
    """:class:`pdm_engine.StandardScaler`: each column centred on its mean and divided by its
    standard deviation (constant columns centred only). Fitted: ``mean_``, ``scale_``."""

    _pdm_class = pdm_engine.StandardScaler

    def __init__(self, with_mean: bool = True, with_std: bool = True) -> None:
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None) -> "StandardScaler":
        """Learns each column's mean and standard deviation; returns ``self``."""
        super().fit(X, y)
        self.mean_ = self.model_.mean_
        return self


class RobustScaler(_Scaler):
    """:class:`pdm_engine.RobustScaler`: each column centred on its median and divided by its
    interquartile range (zero-range columns centred only). Fitted: ``center_``, ``scale_``."""

    _pdm_class = pdm_engine.RobustScaler

    def __init__(self) -> None:
        pass

    def fit(self, X: Any, y: Any = None) -> "RobustScaler":
        """Learns each column's median and interquartile range; returns ``self``."""
        super().fit(X, y)
        self.center_ = self.model_.center_
        return self


class PcaDetector(OutlierMixin, _PdmEstimator):
    """:class:`pdm_engine.PcaDetector` (Hotelling's T² and Q with control limits) as a
    scikit-learn outlier detector.

    scikit-learn's convention is "lower is more abnormal", so ``score_samples`` is the negated
    pdm score ``-max(T²/T²_limit, Q/Q_limit)``, ``offset_`` is -1 (the limits) and
    ``decision_function = score_samples - offset_`` is negative beyond a limit, where ``predict``
    gives -1.
    """

    _parameter_constraints: dict = {
        "n_components": [
            Interval(numbers.Integral, 1, None, closed="left"),
            Interval(numbers.Real, 0, 1, closed="right"),
        ],
        "alpha": [Interval(numbers.Real, 0, 1, closed="neither")],
        "limits": [StrOptions({"empirical", "parametric"})],
    }

    def __init__(self, n_components: Any = 0.95, alpha: float = 0.99, limits: str = "empirical") -> None:
        self.n_components = n_components
        self.alpha = alpha
        self.limits = limits

    def fit(self, X: Any, y: Any = None) -> "PcaDetector":
        """Fits the PCA model and its limits on (scaled) training rows; returns ``self``."""
        self._validate_params()
        # A covariance needs two rows: scikit-learn's own message says so.
        X = _validate(self, X, reset=True, ensure_min_samples=2)
        self.model_ = pdm_engine.PcaDetector(**self.get_params()).fit(X)
        self.offset_ = -1.0
        self.n_components_ = self.model_.n_components_
        self.t2_limit_ = self.model_.t2_limit_
        self.q_limit_ = self.model_.q_limit_
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """``-max(T²/T²_limit, Q/Q_limit)`` per row: below -1 is beyond a limit."""
        X = self._fitted_input(X)
        return -self.model_.score_samples(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative beyond a limit."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """-1 beyond a limit, +1 elsewhere."""
        return np.where(self.decision_function(X) < 0, -1, 1)
