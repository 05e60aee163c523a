"""Wald inference for a Newton fit: standard errors, z, p-values, intervals and odds ratios."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np


def wald_table(model: Any, confidence: float = 0.95) -> Any:
    """Coefficient table of a fitted LogisticRegression, from the Hessian at its optimum.

    The covariance is (n·∇²J)⁻¹ at the optimum, the inverse observed information.
    For an L2 fit this is the inverse of the *penalised* Hessian, so the errors and
    intervals are approximate (they ignore the shrinkage bias). For softmax the
    coefficients are identified only up to a shift shared by all classes; the
    pseudo-inverse reports them under the sum-to-zero constraint.
    """
    import pandas as pd

    if model._hessian is None:
        raise ValueError("summary() needs solver='newton' (the Hessian at the optimum)")
    K, D = model.coef_.shape
    p = D + 1 if model.fit_intercept else D
    H = model._hessian * model.n_samples_fit_
    if K == 1:
        L = np.linalg.cholesky(H)
        L_inv = np.linalg.solve(L, np.eye(len(H)))
        covariance = L_inv.T @ L_inv
    else:
        covariance = np.linalg.pinv(H, hermitian=True)
    std_err = np.sqrt(np.clip(np.diag(covariance), 0.0, None)).reshape(K, p)
    coef = (
        np.hstack([model.coef_, model.intercept_[:, None]]) if model.fit_intercept else model.coef_
    )
    names = model.feature_names_in_ or [f"x{j}" for j in range(D)]
    names = [*names, "intercept"] if model.fit_intercept else list(names)
    z_crit = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / std_err
    # Two-sided p = P(|N(0,1)| > |z|) = erfc(|z|/√2), without 1 − cdf's cancellation.
    p_value = np.vectorize(
        lambda v: math.erfc(abs(v) / math.sqrt(2.0)) if np.isfinite(v) else np.nan
    )(z)
    ci_low, ci_high = coef - z_crit * std_err, coef + z_crit * std_err
    # A coefficient the data barely pins down (collinear columns) can have an interval
    # too wide for exp(): its odds-ratio bound is then reported as inf, silently.
    with np.errstate(over="ignore"):
        odds = (np.exp(coef), np.exp(ci_low), np.exp(ci_high))
    table = pd.DataFrame(
        {
            "coef": coef.ravel(),
            "std_err": std_err.ravel(),
            "z": z.ravel(),
            "p_value": p_value.ravel(),
            "ci_low": ci_low.ravel(),
            "ci_high": ci_high.ravel(),
            "odds_ratio": odds[0].ravel(),
            "or_ci_low": odds[1].ravel(),
            "or_ci_high": odds[2].ravel(),
        }
    )
    if K == 1:
        table.index = pd.Index(names, name="feature")
    else:
        table.index = pd.MultiIndex.from_product(
            [model.classes_.tolist(), names], names=["class", "feature"]
        )
    return table
