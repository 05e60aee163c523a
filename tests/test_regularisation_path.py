"""The study's regularisation path (logreg.study.analysis.regularisation_path), L1 against L2.

On small synthetic data with three informative features of eight: L1's nonzero count
falls as α grows and its support is scikit-learn's liblinear L1 support at the matching
C = 1/(n·α); L2 zeroes nothing. The study's table and sentences read those numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

from logreg.frames import Split
from logreg.study.analysis import l1_kept_features, regularisation_path
from logreg.study.document import penalty_section

ALPHAS = tuple(float(a) for a in np.logspace(-3, 0, 7))


@pytest.fixture(scope="module")
def fitted_path():
    rng = np.random.default_rng(0)
    n, d = 600, 8
    X = rng.normal(size=(n, d))
    weights = np.array([2.0, -1.5, 1.0, 0, 0, 0, 0, 0])
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(X @ weights - 1))), "yes", "no")
    names = [f"x{i}" for i in range(d)]
    train = Split(X[:400], y[:400], np.ones(400), names)
    val = Split(X[400:], y[400:], np.ones(200), names)
    path, coefficients = regularisation_path(train, val, "yes", ALPHAS)
    return train, path, coefficients


def test_l1_nonzero_count_never_grows_with_alpha_and_l2_keeps_every_weight(fitted_path):
    _, path, _ = fitted_path
    l1 = path[path.penalty == "l1"].sort_values("alpha")
    l2 = path[path.penalty == "l2"]
    assert np.all(np.diff(l1.nonzero.to_numpy()) <= 0)
    assert l1.nonzero.iloc[0] == 8 and l1.nonzero.iloc[-1] == 0  # from every feature to none
    assert (l2.nonzero == 8).all()
    assert len(path) == 2 * len(ALPHAS)


def test_l1_support_is_liblinears_at_the_matching_c(fitted_path):
    train, _, coefficients = fitted_path
    n = len(train.y)
    for alpha in ALPHAS:
        reference = SklearnLogisticRegression(
            l1_ratio=1.0,
            solver="liblinear",
            C=1 / (n * alpha),
            tol=1e-8,
            max_iter=10_000,
            intercept_scaling=100.0,  # liblinear penalises the intercept: make that negligible
        ).fit(train.X, train.y == "yes")
        ours = coefficients[f"l1 {alpha:g}"].to_numpy()
        np.testing.assert_array_equal(ours != 0, reference.coef_[0] != 0, err_msg=f"α={alpha}")


def test_the_kept_features_are_the_largest_l1_coefficients_at_the_largest_alphas(fitted_path):
    _, path, coefficients = fitted_path
    kept = l1_kept_features(path, coefficients, shown=2)
    l1 = path[(path.penalty == "l1") & (path.nonzero > 0)]
    assert list(kept) == sorted(l1.alpha, reverse=True)[:2]
    for alpha, series in kept.items():
        assert (series != 0).all()
        assert series.abs().is_monotonic_decreasing
        assert set(series.index) == set(coefficients.index[coefficients[f"l1 {alpha:g}"] != 0])


def test_the_penalty_section_states_the_paths_numbers():
    alphas = [1e-4, 1e-2, 1.0]
    path = pd.DataFrame(
        {
            "penalty": ["l1"] * 3 + ["l2"] * 3,
            "alpha": alphas * 2,
            "nonzero": [10, 4, 0, 10, 10, 10],
            "val_f1": [0.0] * 6,
            "val_f1_tuned": [0.3, 0.31, 0.1, 0.3, 0.3, 0.2],
            "val_pr_auc": [0.20, 0.19, 0.06, 0.21, 0.20, 0.15],
        }
    )
    kept = {1e-2: pd.Series([0.5, -0.2], index=["a", "b"])}
    text = "\n".join(penalty_section(path, kept, 10, "study"))
    assert "L1 keeps 10 of the 10 coefficients" in text
    assert "from α = 1 on it keeps none" in text
    assert "it keeps 10 at every α" in text
    assert "keeps 4 of the 10 (α = 0.01, PR-AUC 0.190)" in text  # within 0.02 of 0.20
    assert "| 0.01 | 4 | 10 | 0.310 | 0.300 | 0.190 | 0.200 |" in text
    assert "`a` +0.500" in text and "`b` -0.200" in text
