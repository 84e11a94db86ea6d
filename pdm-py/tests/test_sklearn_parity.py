"""Parity with scikit-learn's IsolationForest on the same data.

Individual trees differ (the random streams differ), so parity is statistical: over several
seeds each side, the two rank the same rows as anomalous (high score correlation, same ROC
AUC) and the contamination threshold flags the same share of rows.
"""

import numpy as np
import pytest

import pdm_engine as pe

sklearn_ensemble = pytest.importorskip("sklearn.ensemble")
metrics = pytest.importorskip("sklearn.metrics")


def dataset(seed):
    rng = np.random.default_rng(seed)
    inliers = rng.multivariate_normal([0, 0, 0], [[1, 0.8, 0], [0.8, 1, 0], [0, 0, 1]], size=3000)
    outliers = rng.uniform(-6, 6, size=(90, 3))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(len(inliers)), np.ones(len(outliers))]
    return X, y


def test_scores_agree_with_scikit_learn():
    aucs_pdm, aucs_sk, correlations = [], [], []
    for seed in range(4):
        X, y = dataset(seed)
        ours = pe.IsolationForest(random_state=seed).fit(X).score_samples(X)
        theirs = sklearn_ensemble.IsolationForest(random_state=seed, n_jobs=1).fit(X).score_samples(X)
        correlations.append(np.corrcoef(ours, theirs)[0, 1])
        aucs_pdm.append(metrics.roc_auc_score(y, -ours))
        aucs_sk.append(metrics.roc_auc_score(y, -theirs))
    assert min(correlations) > 0.95, correlations
    assert abs(np.mean(aucs_pdm) - np.mean(aucs_sk)) <= 0.01, (aucs_pdm, aucs_sk)
    # The score scale is the same: same formula, same normalisation c(max_samples).
    X, _ = dataset(9)
    ours = pe.IsolationForest(random_state=1).fit(X).score_samples(X)
    theirs = sklearn_ensemble.IsolationForest(random_state=1).fit(X).score_samples(X)
    assert abs(ours.mean() - theirs.mean()) < 0.01


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2])
def test_contamination_behaves_the_same(contamination):
    X, _ = dataset(3)
    ours = pe.IsolationForest(contamination=contamination, random_state=0).fit(X)
    theirs = sklearn_ensemble.IsolationForest(contamination=contamination, random_state=0).fit(X)
    ours_share = (ours.predict(X) == -1).mean()
    theirs_share = (theirs.predict(X) == -1).mean()
    assert abs(ours_share - contamination) < 0.005
    assert abs(ours_share - theirs_share) < 0.005
    # offset_ is the contamination percentile of the training scores, on the same scale.
    assert abs(ours.offset_ - theirs.offset_) < 0.02
