"""pdm_engine.sklearn: scikit-learn's own estimator checks, Pipeline, GridSearchCV, pickling."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from pdm_engine.sklearn import IsolationForest, PcaDetector, RobustScaler, StandardScaler  # noqa: E402

ESTIMATORS = [IsolationForest(random_state=0), StandardScaler(), RobustScaler(), PcaDetector()]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_passes_scikit_learns_estimator_checks(estimator):
    check_estimator(estimator)


def data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.zeros(n, dtype=int)
    X[-30:] += 4.0
    y[-30:] = 1
    return X, y


def test_works_inside_pipeline_and_grid_search():
    X, y = data()
    pipe = make_pipeline(StandardScaler(), IsolationForest(random_state=0))

    def auc(est, X, y):
        return roc_auc_score(y, -est.score_samples(X))

    search = GridSearchCV(pipe, {"isolationforest__n_estimators": [10, 50]}, scoring=auc, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(X, y)
    assert search.best_params_["isolationforest__n_estimators"] in (10, 50)
    assert search.best_score_ > 0.9
    pred = search.best_estimator_.predict(X)
    assert set(np.unique(pred)) <= {-1, 1}


def test_pickled_estimators_score_bit_for_bit_the_same():
    X, _ = data()
    for est in [IsolationForest(random_state=3), PcaDetector(n_components=2)]:
        est.fit(X)
        back = pickle.loads(pickle.dumps(est))
        assert np.array_equal(back.score_samples(X), est.score_samples(X))
        assert back.get_params() == est.get_params()
    for est in [StandardScaler(), RobustScaler()]:
        est.fit(X)
        back = pickle.loads(pickle.dumps(est))
        assert np.array_equal(back.transform(X), est.transform(X))


def test_fitted_model_is_the_pdm_model_file():
    X, _ = data()
    est = IsolationForest(random_state=1, contamination=0.05).fit(X)
    import pdm_engine

    loaded = pdm_engine.load(est.model_.to_bytes())
    assert np.array_equal(loaded.score_samples(X), est.score_samples(X))
    assert abs(np.mean(est.predict(X) == -1) - 0.05) < 0.01


def test_pca_detector_follows_the_outlier_convention():
    X, _ = data()
    est = PcaDetector(n_components=2).fit(X[:500])
    s, d = est.score_samples(X), est.decision_function(X)
    assert np.allclose(d, s - est.offset_)
    assert np.array_equal(est.predict(X) == -1, d < 0)
    # The shifted rows lie beyond the limits.
    assert np.mean(est.predict(X[-30:]) == -1) > 0.9
