"""Out-of-fold scores against scikit-learn refits on the same folds."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from logreg import LogisticRegression
from logreg.crossval import out_of_fold_scores, stratified_folds
from logreg.frames import Split

ALPHA = 1e-2
REBALANCE = {"ratio": 1.0, "k_neighbors": 5, "seed": 0}


def make_split(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-(X @ np.array([1.5, -1.0, 0.5]) - 1.5)))
    y = np.where(rng.random(n) < p, "Yes", "No")
    return Split(X, y, np.ones(n), ["a", "b", "c"])


def test_folds_are_stratified_balanced_and_seeded():
    y = np.array(["No"] * 83 + ["Yes"] * 17)
    folds = stratified_folds(y, 5, seed=1)
    for label, size in (("No", 83), ("Yes", 17)):
        counts = np.bincount(folds[y == label], minlength=5)
        assert counts.max() - counts.min() <= 1 and counts.sum() == size
    assert np.array_equal(folds, stratified_folds(y, 5, seed=1))
    assert not np.array_equal(folds, stratified_folds(y, 5, seed=2))


@pytest.mark.parametrize("strategy", ["none", "class_weight"])
def test_out_of_fold_scores_equal_sklearn_refits_on_the_same_folds(strategy):
    train, val = make_split(300, 0), make_split(100, 1)
    model = LogisticRegression(solver="newton", alpha=ALPHA, tol=1e-10, epochs=100)
    model.fit(train.X, train.y)
    y_pos, scores = out_of_fold_scores(
        model, [train, val], "Yes", {"strategy": strategy, **REBALANCE}, seed=3
    )

    X, y = np.vstack([train.X, val.X]), np.r_[train.y, val.y]
    assert np.array_equal(y_pos, y == "Yes")
    folds = stratified_folds(y, 5, seed=3)
    expected = np.empty(len(y))
    for fold in range(5):
        fit = folds != fold
        n_c = {c: np.sum(y[fit] == c) for c in ("No", "Yes")}  # n / (K · n_c), by hand
        weights = np.array([fit.sum() / (2 * n_c[c]) for c in y[fit]])
        if strategy == "none":
            weights = np.ones(fit.sum())
        # Our objective is the weighted MEAN loss + alpha/2·|w|²; sklearn's is C·SUM + |w|²/2.
        sk = SkLogisticRegression(C=1 / (ALPHA * fit.sum()), tol=1e-12, max_iter=10_000)
        sk.fit(X[fit], y[fit], sample_weight=weights * fit.sum() / weights.sum())
        expected[~fit] = sk.predict_proba(X[~fit])[:, 1]
    np.testing.assert_allclose(scores, expected, atol=1e-6)


def test_the_folds_are_built_from_the_splits_without_a_stacked_copy_of_them():
    """NumPy's peak while scoring (tracemalloc), in units of train + val's features: the
    splits (1), the fold's rows and the refit's shuffled copy (0.8 each), not also train
    + val stacked into one frame first (4.8 before), nor a second copy of the fold's rows
    made from its frame (2.65 before)."""
    train, val = make_split(40_000, 0), make_split(10_000, 1)
    train, val = (
        Split(np.hstack([s.X] * 8), s.y, s.sample_weight, [f"x{j}" for j in range(24)])
        for s in (train, val)
    )
    model = LogisticRegression(solver="sgd", epochs=1, seed=0).fit(train.X, train.y)
    tracemalloc.start()
    out_of_fold_scores(model, [train, val], "Yes", {"strategy": "none", **REBALANCE})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak / (train.X.nbytes + val.X.nbytes) <= 2.55
