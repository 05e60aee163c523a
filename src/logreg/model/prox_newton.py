"""Proximal Newton for L1 and elastic net: few passes over the rows, exact zeros.

FISTA (:mod:`logreg.model.fista`) needs thousands of iterations on ill-conditioned data
such as breast_cancer, two passes each: too many passes when the rows are partitions on
a cluster. Newton's quadratic model needs only the gradient and the Hessian, one sum
over the blocks, and then the L1 part is solved on the model, in memory, by coordinate
descent (newGLMNET: Yuan, Ho and Lin 2012). Each outer iteration

    d = argmin_d  gᵀd + ½dᵀHd + αρ‖W + d_W‖₁       coordinate descent on the p×p model
    θ ← θ + t·d,   t halved until J(θ + td) ≤ J(θ) + σ·t·Δ,   Δ = gᵀd + αρ(‖W+d_W‖₁ − ‖W‖₁)

where g and H are those of the smooth part f (cross-entropy + the L2 share α(1−ρ)), from
:func:`logreg.model.newton.gradient_and_hessian`. A coordinate's update is the soft
threshold w_j = S(θ_j − q_j/H_jj, αρ/H_jj), q_j the model's gradient at the other
coordinates, so weights land exactly on zero. It stops when the minimum-norm
subgradient of J is at most ``tol`` in every coordinate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from logreg.model.equations import soft_threshold
from logreg.model.newton import gradient_and_hessian, logits, objective, stack, unstack
from logreg.model.rows import RowBlocks
from logreg.model.sgd import FitRecord

SUFFICIENT_DECREASE = 1e-4  # σ of the line search
INNER_SWEEPS = 200  # coordinate-descent sweeps over the model, at most


def prox_newton_solve(
    rows: RowBlocks,
    *,
    alpha: float,
    l1_ratio: float,
    fit_intercept: bool,
    max_iter: int,
    tol: float,
    max_time: float | None,
    rng: np.random.Generator,  # unused: every iteration is exact; kept so the solvers share a call
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    started = time.perf_counter()
    first = next(iter(rows.blocks()))
    D, K = first.X.shape[1], first.Y.shape[1]
    p = D + 1 if fit_intercept else D
    l2, l1 = alpha * (1.0 - l1_ratio), alpha * l1_ratio
    penalised = np.tile(np.arange(p) < D, K)  # θ stacked class by class: [W_·k, b_k]
    W, b = np.zeros((D, K)), np.zeros(K)
    Z = logits(rows, W, b)
    loss = objective(rows, Z, W, l2) + l1 * np.abs(W).sum()
    history: list[dict[str, Any]] = []
    stop_reason = "max_epochs"
    for iteration in range(max_iter):
        (_, grad_W, grad_b), H = gradient_and_hessian(rows, Z, W, l2, fit_intercept)
        theta, g = stack(W, b, fit_intercept), stack(grad_W, grad_b, fit_intercept)
        if optimality(theta, g, l1, penalised) <= tol and history:
            stop_reason = "converged"
            break
        d = model_step(theta, g, H, l1, penalised)
        decrease = float(g @ d) + l1 * (
            np.abs((theta + d)[penalised]).sum() - np.abs(theta[penalised]).sum()
        )
        t = 1.0
        while True:
            W_new, b_new = unstack(theta + t * d, D, K, p, fit_intercept)
            Z_new = logits(rows, W_new, b_new)
            new_loss = objective(rows, Z_new, W_new, l2) + l1 * np.abs(W_new).sum()
            if new_loss <= loss + SUFFICIENT_DECREASE * t * decrease or t < 1e-10:
                break
            t *= 0.5
        W, b, Z, loss = W_new, b_new, Z_new, new_loss
        elapsed = time.perf_counter() - started
        history.append(
            {"epoch": iteration + 1, "train_loss": loss, "val_loss": None, "learning_rate": t,
             "elapsed": elapsed}
        )  # fmt: skip
        if callback is not None:
            callback(history[-1])
        if max_time is not None and elapsed >= max_time:
            stop_reason = "max_time"
            break
    return W, b, FitRecord(history=history, n_iter=len(history), stop_reason=stop_reason)


def optimality(theta: np.ndarray, g: np.ndarray, l1: float, penalised: np.ndarray) -> float:
    """max |minimum-norm subgradient of J|: 0 exactly at the optimum."""
    sub = g.copy()
    on = penalised & (theta != 0)
    sub[on] += l1 * np.sign(theta[on])
    off = penalised & (theta == 0)
    sub[off] = np.maximum(np.abs(g[off]) - l1, 0.0)
    return float(np.abs(sub).max())


def model_step(
    theta: np.ndarray, g: np.ndarray, H: np.ndarray, l1: float, penalised: np.ndarray
) -> np.ndarray:
    """argmin_d gᵀd + ½dᵀHd + l1·Σ_penalised |θ_j + d_j|, by cyclic coordinate descent."""
    d = np.zeros_like(theta)
    Hd = np.zeros_like(theta)
    diagonal = np.maximum(np.diag(H), 1e-12)  # a constant column has no curvature
    threshold = np.where(penalised, l1, 0.0) / diagonal
    for _ in range(INNER_SWEEPS):
        largest = 0.0
        for j in range(len(theta)):
            q = g[j] + Hd[j] - diagonal[j] * d[j]  # the model's slope at d_j = 0
            w = soft_threshold(theta[j] - q / diagonal[j], threshold[j])
            delta = (w - theta[j]) - d[j]
            if delta != 0.0:
                d[j] += delta
                Hd += H[:, j] * delta
                largest = max(largest, abs(delta))
        if largest <= 1e-12 * max(1.0, float(np.abs(theta).max())):
            break
    return d
