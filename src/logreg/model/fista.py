"""Full-batch proximal gradient (FISTA) for L1 and elastic net, on any row blocks.

J(θ) = f(θ) + αρ‖W‖₁ with the smooth part f = (1/n)Σ s·CE + α(1−ρ)/2·‖W‖². The L1 term
has no gradient, but its proximal step is the soft threshold, so each iteration is

    y  = θ_k + β_k (θ_k − θ_{k−1})                 Nesterov's extrapolation
    θ_{k+1} = S_{tαρ}(y − t∇f(y))                  a gradient step, then the soft threshold

with t = 1/L and β_k from Beck and Teboulle (2009); weights land exactly on zero. L
bounds the curvature of f: the Hessian of the cross-entropy is at most c·X̃ᵀSX̃/n with
c = 1/4 for the sigmoid and 1/2 for the softmax (Böhning 1992), so
L = c·λ_max(X̃ᵀSX̃)/n + α(1−ρ), λ_max from a few power iterations over the blocks.
Momentum restarts when it points uphill, ∇f(y)ᵀ(θ_{k+1} − θ_k) > 0 (O'Donoghue and
Candès 2015), which keeps FISTA from oscillating on ill-conditioned data.

Everything a step needs from the data is two sums over the blocks (the logits Xθ, kept
per block, and Xᵀ S(P − Y) at y), so it runs on one array, a disk cache or Dask
partitions alike; the intercept is not penalised.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from logreg.model.equations import (
    add_penalty,
    data_term_sums,
    penalty_value,
    soft_threshold,
    weighted_cross_entropy_sum,
)
from logreg.model.rows import Block, RowBlocks
from logreg.model.sgd import FitRecord

POWER_ITERATIONS = 20  # λ_max to a few percent, from above once inflated (below)
SAFETY = 1.05  # the power iteration estimates λ_max from below: step a little shorter


def fista_solve(
    rows: RowBlocks,
    *,
    alpha: float,
    l1_ratio: float,
    fit_intercept: bool,
    max_iter: int,
    tol: float,
    max_time: float | None,
    rng: np.random.Generator,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    """Minimise J by FISTA with restarts; stop when no weight moves by more than
    ``tol``·max(1, max|θ|) in an iteration, after ``max_iter`` or ``max_time``."""
    started = time.perf_counter()
    n = rows.n_rows
    first = next(iter(rows.blocks()))
    D, K = first.X.shape[1], first.Y.shape[1]
    curvature = 0.25 if K == 1 else 0.5
    L = curvature * SAFETY * largest_eigenvalue(rows, fit_intercept, rng) / n
    L += alpha * (1.0 - l1_ratio)
    step, l1 = 1.0 / L, alpha * l1_ratio
    W, b = np.zeros((D, K)), np.zeros(K)
    W_prev, b_prev = W.copy(), b.copy()
    momentum_age = 1  # k in β_k = (k − 1)/(k + 2); 1 after a restart
    history: list[dict[str, Any]] = []
    stop_reason = "max_epochs"
    for iteration in range(max_iter):
        beta = (momentum_age - 1) / (momentum_age + 2)
        W_y, b_y = W + beta * (W - W_prev), b + beta * (b - b_prev)
        sums = rows.sum(partial(_data_sums, W=W_y, b=b_y))
        _, grad_W, grad_b = add_penalty(n, sums, W_y, alpha * (1.0 - l1_ratio), 0.0)
        W_next = soft_threshold(W_y - step * grad_W, step * l1)
        b_next = b_y - step * grad_b if fit_intercept else b_y
        uphill = float(np.sum(grad_W * (W_next - W)) + np.sum(grad_b * (b_next - b))) > 0.0
        momentum_age = 1 if uphill else momentum_age + 1
        moved = max(np.abs(W_next - W).max(), np.abs(b_next - b).max())
        W_prev, b_prev, W, b = W, b, W_next, b_next
        loss = _objective(rows, W, b, alpha, l1_ratio)
        elapsed = time.perf_counter() - started
        record = {
            "epoch": iteration + 1,
            "train_loss": loss,
            "val_loss": None,
            "learning_rate": step,
            "elapsed": elapsed,
        }
        history.append(record)
        if callback is not None:
            callback(record)
        if not math.isfinite(loss):
            raise FloatingPointError(f"FISTA diverged at iteration {iteration + 1}")
        if moved <= tol * max(1.0, np.abs(W).max(), np.abs(b).max()):
            stop_reason = "converged"
            break
        if max_time is not None and elapsed >= max_time:
            stop_reason = "max_time"
            break
    return W, b, FitRecord(history=history, n_iter=len(history), stop_reason=stop_reason)


def largest_eigenvalue(rows: RowBlocks, fit_intercept: bool, rng: np.random.Generator) -> float:
    """λ_max(X̃ᵀSX̃) by power iteration; each iteration is one sum over the blocks."""
    first = next(iter(rows.blocks()))
    p = first.X.shape[1] + (1 if fit_intercept else 0)
    v = rng.standard_normal(p)
    v /= np.linalg.norm(v)
    estimate = 0.0
    for _ in range(POWER_ITERATIONS):
        Av = rows.sum(partial(_gram_times, v=v, fit_intercept=fit_intercept))
        estimate = float(np.linalg.norm(Av))
        if estimate == 0.0:
            return 1.0  # X = 0: any step is safe
        v = Av / estimate
    return estimate


def _data_sums(block: Block, W: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    return data_term_sums(block.X, block.X @ W + b, block.Y, block.s)


def _gram_times(block: Block, v: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """X̃ᵀ S X̃ v over one block, X̃ = [X, 1], without forming X̃."""
    D = block.X.shape[1]
    Xv = block.X @ v[:D] + (v[D] if fit_intercept else 0.0)
    weighted = block.s * Xv
    out = block.X.T @ weighted
    return np.append(out, weighted.sum()) if fit_intercept else out


def _objective(
    rows: RowBlocks, W: np.ndarray, b: np.ndarray, alpha: float, l1_ratio: float
) -> float:
    total = rows.sum(lambda block: weighted_cross_entropy_sum(block.X @ W + b, block.Y, block.s))
    return total / rows.n_rows + penalty_value(W, alpha, l1_ratio)
