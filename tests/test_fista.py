"""L1 and elastic net on row blocks: FISTA (model/fista.py) and proximal Newton
(model/prox_newton.py) against scikit-learn's saga at the same objective."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.preprocessing import StandardScaler

from logreg.model.equations import objective_value
from logreg.model.fista import fista_solve, largest_eigenvalue
from logreg.model.prox_newton import prox_newton_solve
from logreg.model.rows import InMemoryRows


def _breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _fista(rows, alpha, l1_ratio):
    return fista_solve(
        rows, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=True, max_iter=20_000, tol=1e-10,
        max_time=None, rng=np.random.default_rng(0),
    )  # fmt: skip


def _prox_newton(rows, alpha, l1_ratio):
    return prox_newton_solve(
        rows, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=True, max_iter=100, tol=1e-12,
        max_time=None, rng=np.random.default_rng(0),
    )  # fmt: skip


@pytest.mark.parametrize("solve", [_fista, _prox_newton], ids=["fista", "prox_newton"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_the_l1_solvers_reach_sagas_optimum_with_the_same_zeros(l1_ratio, solve):
    X, y = _breast_cancer()
    n, alpha = len(y), 0.01
    Y, s = y[:, None].astype(float), np.ones(n)
    W, b, record = solve(InMemoryRows.of(X, Y, s, block_rows=200), alpha, l1_ratio)
    assert record.stop_reason == "converged"

    # scikit-learn minimises C·Σ CE + ρ‖w‖₁ + (1−ρ)/2‖w‖²: the same J with C = 1/(n·α).
    reference = SkLogisticRegression(
        penalty="elasticnet", l1_ratio=l1_ratio, C=1.0 / (n * alpha), solver="saga",
        tol=1e-12, max_iter=200_000,
    ).fit(X, y)  # fmt: skip
    W_ref, b_ref = reference.coef_.T, reference.intercept_
    ours = objective_value(X, Y, s, W, b, alpha, l1_ratio)
    theirs = objective_value(X, Y, s, W_ref, b_ref, alpha, l1_ratio)
    assert ours <= theirs + 1e-9
    np.testing.assert_allclose(W, W_ref, atol=1e-5)
    np.testing.assert_array_equal(W == 0, np.abs(W_ref) < 1e-8)  # exact zeros, the same ones
    assert (W == 0).sum() >= 5  # the penalty does select at this α


def test_the_power_iteration_finds_the_largest_eigenvalue():
    X, y = _breast_cancer()
    s = np.where(y == 1, 2.0, 1.0)
    rows = InMemoryRows.of(X, y[:, None].astype(float), s, block_rows=100)
    X_tilde = np.hstack([X, np.ones((len(X), 1))])
    exact = np.linalg.eigvalsh(X_tilde.T @ (s[:, None] * X_tilde)).max()
    assert largest_eigenvalue(rows, True, np.random.default_rng(0)) == pytest.approx(
        exact, rel=1e-3
    )


def test_proximal_newton_needs_few_passes_where_fista_needs_thousands():
    X, y = _breast_cancer()
    rows = InMemoryRows.of(X, y[:, None].astype(float), np.ones(len(y)))
    newton_fit, fista_fit = _prox_newton(rows, 0.01, 1.0), _fista(rows, 0.01, 1.0)
    assert newton_fit[2].n_iter <= 30 < 1_000 <= fista_fit[2].n_iter
    np.testing.assert_allclose(newton_fit[0], fista_fit[0], atol=1e-6)


def test_proximal_newton_on_softmax_matches_saga():
    from sklearn.datasets import load_wine

    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    n, alpha = len(y), 0.02
    Y, s = np.eye(3)[y], np.ones(n)
    W, b, record = _prox_newton(InMemoryRows.of(X, Y, s), alpha, 1.0)
    assert record.stop_reason == "converged"
    reference = SkLogisticRegression(
        penalty="l1", C=1.0 / (n * alpha), solver="saga", tol=1e-12, max_iter=200_000
    ).fit(X, y)
    ours = objective_value(X, Y, s, W, b, alpha, 1.0)
    theirs = objective_value(X, Y, s, reference.coef_.T, reference.intercept_, alpha, 1.0)
    assert ours <= theirs + 1e-9
    # Softmax is unchanged by a shift shared by the classes; compare the probabilities.
    P = np.exp(X @ W + b)
    P /= P.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(P, reference.predict_proba(X), atol=1e-5)
