"""Every streaming kind registered in the engine (pdm_detect::stream::StreamKind) is a Python
estimator: a public class whose constructor takes the kind's parameters, that scores, saves and
loads back as itself. A detector added to the engine without its class fails here."""

import json

import numpy as np
import pytest

import pdm_engine as pe
from pdm_engine import _native

KINDS = _native.streaming_kinds()


def test_the_registry_lists_the_known_kinds():
    names = [name for name, _, _ in KINDS]
    assert names[:4] == ["robust_zscore", "ewma_chart", "half_space_trees", "context"]
    assert len(set(names)) == len(names)
    assert len({file_kind for _, file_kind, _ in KINDS}) == len(KINDS)


@pytest.mark.parametrize("name,file_kind,keys", KINDS, ids=[k[0] for k in KINDS])
def test_every_registered_kind_is_a_python_estimator(name, file_kind, keys):
    classes = pe._streaming_classes()
    assert name in classes, f"no pdm_engine class has _kind = {name!r}"
    cls = classes[name]
    assert cls.__name__ in pe.__all__
    # The constructor's parameters are the registry's keys, all defaulting to the engine's.
    est = cls()
    assert set(est.get_params()) == set(keys)
    assert all(v is None for v in est.get_params().values())

    X = np.random.default_rng(3).normal(size=(400, 2))
    scores = est.score_series(X[:300])
    assert scores.shape == (300,) and np.all(np.isfinite(scores))
    assert est.model_.kind == name
    assert set(est.model_.params()) == set(keys)

    data = est.to_bytes()
    assert json.loads(data)["kind"] == file_kind
    loaded = pe.load(data)
    assert type(loaded) is cls
    assert loaded.to_bytes() == data
    np.testing.assert_array_equal(loaded.score_series(X[300:]), est.score_series(X[300:]))

    # Every parameter passed by keyword, with the values the engine reports: the same detector.
    # This takes each key's value through the bindings' conversion of its type.
    # (A seeded kind is seeded alike on both sides, since its default seed is fresh entropy.)
    seed = {"random_state": 7} if "random_state" in keys else {}
    given = {k: v for k, v in est.model_.params().items() if v is not None}
    explicit = cls(**{**given, **seed})
    default = cls(**seed)
    explicit.score_series(X[:300])
    default.score_series(X[:300])
    assert explicit.model_.params() == default.model_.params()
    assert explicit.to_bytes() == default.to_bytes()


def test_an_unknown_kind_is_refused_with_the_registered_names():
    with pytest.raises(pe.ParameterError, match="one of robust_zscore, ewma_chart"):
        _native.streaming_detector("nope", 1)
