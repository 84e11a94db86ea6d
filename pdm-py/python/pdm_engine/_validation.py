"""Input checks shared by the estimators and functions: turn what users pass into float64
matrices and vectors, bool flags and checked parameters."""

from __future__ import annotations

import numbers
from typing import Any, List, Optional, Tuple

import numpy as np

from .exceptions import DataError, NotFittedError, ParameterError


def as_matrix(X: Any, *, name: str = "X", keep_float32: bool = False) -> Tuple[np.ndarray, Optional[List[str]]]:
    """Returns ``X`` as a 2-D float64 array (without a copy when it already is one, C or Fortran
    order) and its column names when it is a pandas DataFrame. With ``keep_float32`` (for the
    engine functions that read float32 in place) a float32 array is passed on as it is too."""
    names = None
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "to_numpy"):
        names = [str(c) for c in columns]
        X = X.to_numpy()
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiub":
        raise DataError(
            f"{name} has dtype {arr.dtype}; pdm takes numbers (float64, float32 or integers)"
        )
    if arr.ndim != 2:
        raise DataError(
            f"{name} must be 2-D (rows = samples, columns = features), got {arr.ndim}-D; "
            "reshape a single feature with X.reshape(-1, 1)"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {arr.shape})")
    keep = arr.dtype == np.float64 or (keep_float32 and arr.dtype == np.float32)
    if not keep:
        arr = arr.astype(np.float64)
    elif not (arr.flags.c_contiguous or arr.flags.f_contiguous):
        arr = np.ascontiguousarray(arr)
    return arr, names


def check_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise NotFittedError(
            f"this {type(estimator).__name__} is not fitted yet; call fit() with training data first"
        )


def check_features(estimator: Any, arr: np.ndarray, names: Optional[List[str]]) -> None:
    expected = estimator.n_features_in_
    if arr.shape[1] != expected:
        raise DataError(
            f"X has {arr.shape[1]} features, but {type(estimator).__name__} was fitted with {expected}"
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and names is not None and list(fitted) != names:
        raise DataError(
            "the feature names of X differ from those seen in fit: "
            f"fitted {list(fitted)}, got {names}"
        )


def as_vector(x: Any, *, name: str, allow_empty: bool = False) -> np.ndarray:
    """Returns ``x`` as a contiguous 1-D float64 array of finite numbers (a pandas Series or any
    sequence of numbers), refusing other shapes, dtypes and NaN or infinite values by name."""
    if hasattr(x, "to_numpy") and getattr(x, "ndim", 1) == 1:
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "fiub":
        raise DataError(f"{name} has dtype {arr.dtype}; pdm takes numbers (float64, float32 or integers)")
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one value per row), got shape {arr.shape}")
    if arr.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} is empty")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise DataError(f"{name}[{bad[0]}] is not a finite number ({arr[bad[0]]})")
    return arr


def as_flags(x: Any, *, name: str) -> np.ndarray:
    """Returns ``x`` as a contiguous 1-D bool array: booleans, or numbers that are all exactly 0
    or 1 (integers, or floats such as the 0.0/1.0 pandas reads from SKAB's ``anomaly`` column)."""
    if hasattr(x, "to_numpy") and getattr(x, "ndim", 1) == 1:
        x = x.to_numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D (one flag per row), got shape {arr.shape}")
    if arr.dtype.kind in "iuf":
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            bad = arr[~((arr == 0) | (arr == 1))][0]
            raise DataError(
                f"{name} holds {bad!r}, a value other than 0 and 1; pass booleans or 0/1 "
                "(for predict's +1/-1, use predictions == -1)"
            )
    elif arr.dtype.kind != "b":
        raise DataError(f"{name} has dtype {arr.dtype}; flags are booleans (or 0/1 numbers)")
    return np.ascontiguousarray(arr, dtype=bool)


def as_count(value: Any, *, name: str, minimum: int = 0) -> int:
    """An int parameter of at least ``minimum`` (booleans refused), as ``int``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ParameterError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def as_real(value: Any, *, name: str) -> float:
    """A real-number parameter (booleans refused), as ``float``; ranges are the engine's to check."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ParameterError(f"{name} must be a number, got {value!r}")
    return float(value)
