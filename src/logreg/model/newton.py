"""Newton's method (IRLS) for L2 or no penalty: θ ← θ − t·H⁻¹∇J, with the Hessian for inference.

The gradient is :func:`logreg.model.equations.data_term_sums` summed over the row
blocks, so Newton minimises exactly the J that SGD does. The Hessian of J is

    ∇²J = X̃ᵀ diag(c) X̃ / n + α·I (intercept unpenalised),   c = s·p(1 − p)

for two classes; for K classes, block (k, l) has c = s·p_k(δ_kl − p_l).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from logreg.model.equations import (
    add_penalty,
    data_term_sums,
    penalty_value,
    predict_probabilities,
    weighted_cross_entropy_sum,
)
from logreg.model.rows import Block, RowBlocks
from logreg.model.sgd import FitRecord

ROWS_PER_BLOCK = 4096  # rows per block of the Hessian's sums: 3 MiB at D=100, in cache
SKETCH_FRACTION = 4  # Newton far from the optimum: the Hessian of a random quarter of the rows
SKETCH_ROWS_PER_PARAMETER = 50  # ... when that leaves at least 50 rows per parameter


def newton_solve(
    rows: RowBlocks,
    *,
    alpha: float,
    fit_intercept: bool,
    max_iter: int,
    tol: float,
    max_time: float | None,
    rng: np.random.Generator,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    """Newton's method with backtracking; converges quadratically near the optimum.

    Softmax over K columns is unchanged by adding the same vector to every column, so
    its Hessian is singular along that direction; the step is the minimum-norm
    solution, Newton's step on the remaining, identified directions.

    The Hessian costs n·p² multiply-adds, the rest of an iteration a few passes over X.
    On large data the steps far from the optimum use the Hessian of a random quarter
    of the rows, drawn once by ``rng`` (a subsampled Newton method, Byrd et al. 2011):
    the Hessian only steers the step, while the fixed point ∇J = 0 is set by the exact
    gradient, so the sample changes the path, not the answer. Random rows, not every
    4th, so that no order of the data (grouped in fours, say) can bias the sample.
    Once the predicted gain falls below √tol·J, or a sampled step has to backtrack,
    every row is used: the last steps are exact Newton steps, converging
    quadratically, and the Hessian kept for inference is the exact one.
    """
    started = time.perf_counter()
    n = rows.n_rows
    first = next(iter(rows.blocks()))
    D, K = first.X.shape[1], first.Y.shape[1]
    p = D + 1 if fit_intercept else D
    W = np.zeros((D, K))
    b = np.zeros(K)
    if fit_intercept:
        # Start from the intercept-only fit, W = 0 and b = the log-odds of the weighted class
        # frequencies (log frequencies for softmax): on imbalanced data it saves an iteration.
        weighted_counts, total = rows.sum(lambda block: (block.s @ block.Y, block.s.sum()))
        frequency = np.clip(weighted_counts / max(total, 1e-300), 1e-12, 1.0 - 1e-12)
        b = np.log(frequency / (1.0 - frequency)) if K == 1 else np.log(frequency)
    # At least SKETCH_ROWS_PER_PARAMETER rows per parameter, so the sample's Hessian is
    # within a few percent of the exact one.
    exact = n < SKETCH_FRACTION * SKETCH_ROWS_PER_PARAMETER * K * p
    sample = None if exact else rows.sample(n // SKETCH_FRACTION, rng)
    Z = logits(rows, W, b)  # kept per block: the line search's pass serves the next step
    loss = objective(rows, Z, W, alpha)
    H: np.ndarray | None = None
    history: list[dict[str, Any]] = []
    stop_reason = "max_epochs"
    for iteration in range(max_iter):
        if exact:
            (loss, grad_W, grad_b), H = gradient_and_hessian(rows, Z, W, alpha, fit_intercept)
        else:
            sums = rows.sum(lambda block, Z_b: data_term_sums(block.X, Z_b, block.Y, block.s), Z)
            loss, grad_W, grad_b = add_penalty(n, sums, W, alpha, 0.0)
            H = hessian(sample, W, b, alpha, fit_intercept)  # type: ignore[arg-type]
        g = stack(grad_W, grad_b, fit_intercept)
        step = _newton_direction(H, g, K)
        sampled = not exact
        # The Newton decrement ½gᵀH⁻¹g is the gain this step predicts.
        gain = 0.5 * float(g @ step)
        # Converged when the gain is negligible (tested after a first step, so history_ is
        # never empty, and only with the exact Hessian, which is then the one at the
        # returned optimum).
        if history and exact and gain <= tol * max(abs(loss), 1e-12):
            stop_reason = "newton_converged"
            break
        if sampled and gain <= math.sqrt(tol) * max(abs(loss), 1e-12):
            exact = True  # this step is sampled; the next ones are exact
        step_W, step_b = unstack(step, D, K, p, fit_intercept)
        # Backtracking keeps far-from-optimum steps (e.g. separable data) descending.
        t = 1.0
        while True:
            W_new, b_new = W - t * step_W, b - t * step_b
            Z_new = logits(rows, W_new, b_new)
            new_loss = objective(rows, Z_new, W_new, alpha)
            if new_loss <= loss - 2e-4 * t * gain or t < 1e-10:
                break
            t *= 0.5
        improvement = loss - new_loss
        W, b, Z, loss, H = W_new, b_new, Z_new, new_loss, None
        elapsed = time.perf_counter() - started
        history.append(
            {
                "epoch": iteration + 1,
                "train_loss": loss,
                "val_loss": None,
                "learning_rate": t,
                "elapsed": elapsed,
            }
        )
        if callback is not None:
            callback(history[-1])
        if sampled and (t < 1.0 or improvement <= 0.0):
            exact = True  # the sample misjudged the curvature: use every row from now on
        elif improvement <= 0.0:  # no descent left at machine precision
            stop_reason = "newton_converged"
            break
        if max_time is not None and elapsed >= max_time:
            stop_reason = "max_time"
            break
    if H is None:  # stopped right after a step: the exact Hessian at θ, for inference
        H = hessian(rows, W, b, alpha, fit_intercept, Z)
    record = FitRecord(history=history, n_iter=len(history), stop_reason=stop_reason, hessian=H)
    return W, b, record


def logits(rows: RowBlocks, W: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """Z = XW + b for each block, kept where the block is."""
    return rows.map(lambda block: block.X @ W + b)


def objective(rows: RowBlocks, Z: list[np.ndarray], W: np.ndarray, alpha: float) -> float:
    """J with an L2 penalty, from each block's logits Z."""
    total = rows.sum(lambda block, Z_b: weighted_cross_entropy_sum(Z_b, block.Y, block.s), Z)
    return total / rows.n_rows + penalty_value(W, alpha, 0.0)


def gradient_and_hessian(
    rows: RowBlocks, Z: list[np.ndarray], W: np.ndarray, alpha: float, fit_intercept: bool
) -> tuple[tuple[float, np.ndarray, np.ndarray], np.ndarray]:
    """(J, ∂J/∂W, ∂J/∂b) and ∇²J at the weights whose logits are Z, in one pass."""

    def both(block: Block, Z_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        loss_sum, grad_W_sum, grad_b_sum = data_term_sums(block.X, Z_b, block.Y, block.s)
        curvature = _curvature_sum(block, predict_probabilities(Z_b), fit_intercept)
        return loss_sum, grad_W_sum, grad_b_sum, curvature

    loss_sum, grad_W_sum, grad_b_sum, curvature = rows.sum(both, Z)
    n = rows.n_rows
    gradient = add_penalty(n, (loss_sum, grad_W_sum, grad_b_sum), W, alpha, 0.0)
    return gradient, _with_ridge(curvature / n, alpha, W.shape[0], fit_intercept)


def hessian(
    rows: RowBlocks,
    W: np.ndarray,
    b: np.ndarray,
    alpha: float,
    fit_intercept: bool,
    Z: list[np.ndarray] | None = None,
) -> np.ndarray:
    """∇²J at (W, b) over θ = (W, b) stacked class by class, for an L2 (or no) penalty."""
    Z = logits(rows, W, b) if Z is None else Z
    curvature = rows.sum(
        lambda block, Z_b: _curvature_sum(block, predict_probabilities(Z_b), fit_intercept), Z
    )
    return _with_ridge(curvature / rows.n_rows, alpha, W.shape[0], fit_intercept)


def _curvature_sum(block: Block, P: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """Σ over the block's rows of X̃ᵀ diag(c) X̃, per class pair (k, l), stacked as ∇²J is."""
    D, K = block.X.shape[1], P.shape[1]
    p = D + 1 if fit_intercept else D
    H = np.empty((K * p, K * p), dtype=np.float64)
    for k in range(K):
        for l in range(k, K):  # H is symmetric: build the upper blocks, mirror them
            c = block.s * P[:, k] * ((k == l) - P[:, l])
            gram = weighted_gram(block.X, c, fit_intercept, nonnegative=k == l)
            H[k * p : (k + 1) * p, l * p : (l + 1) * p] = gram
            H[l * p : (l + 1) * p, k * p : (k + 1) * p] = gram.T
    return H


def _with_ridge(H: np.ndarray, alpha: float, D: int, fit_intercept: bool) -> np.ndarray:
    """H + α on the diagonal of every weight; the intercept is not penalised."""
    p = D + 1 if fit_intercept else D
    ridge = np.zeros(p)
    ridge[:D] = alpha
    H[np.diag_indices_from(H)] += np.tile(ridge, H.shape[0] // p)
    return H


def weighted_gram(
    X: np.ndarray, c: np.ndarray, fit_intercept: bool, nonnegative: bool
) -> np.ndarray:
    """X̃ᵀ diag(c) X̃ with X̃ = [X, 1], summed over chunks of rows.

    Each chunk of X̃ is scaled into a small buffer that stays in cache, so X is read once
    and never copied whole. With c ≥ 0 the chunk's product is AᵀA for A = diag(√c)X̃,
    which NumPy hands to BLAS syrk: one triangle, half the work of a general product.
    """
    n, D = X.shape
    p = D + 1 if fit_intercept else D
    G = np.zeros((p, p))
    buffer = np.empty((min(ROWS_PER_BLOCK, n), p))
    for start in range(0, n, ROWS_PER_BLOCK):
        X_rows, c_rows = X[start : start + ROWS_PER_BLOCK], c[start : start + ROWS_PER_BLOCK]
        A = buffer[: len(c_rows)]
        if nonnegative:
            _scale_rows(X_rows, np.sqrt(c_rows), fit_intercept, out=A)
            G += A.T @ A
        else:
            _scale_rows(X_rows, c_rows, fit_intercept, out=A)
            G[:D] += X_rows.T @ A
            if fit_intercept:
                G[D] += A.sum(axis=0)
    return G


def _scale_rows(X: np.ndarray, r: np.ndarray, fit_intercept: bool, out: np.ndarray) -> None:
    """out ← diag(r)·X̃ with X̃ = [X, 1], without building X̃."""
    D = X.shape[1]
    np.multiply(r[:, None], X, out=out[:, :D])
    if fit_intercept:
        out[:, D] = r


def _newton_direction(H: np.ndarray, g: np.ndarray, n_blocks: int) -> np.ndarray:
    """H⁻¹g: by Cholesky for one block (binary), minimum-norm for softmax's singular H."""
    if n_blocks == 1:
        try:
            L = np.linalg.cholesky(H)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(H, g, rcond=None)[0]
        return np.linalg.solve(L.T, np.linalg.solve(L, g))
    return np.linalg.lstsq(H, g, rcond=None)[0]


def stack(W: np.ndarray, b: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """θ as one vector, class by class: [W_·1, b_1, W_·2, b_2, ...]."""
    columns = np.vstack([W, b[None, :]]) if fit_intercept else W
    return columns.T.reshape(-1)


def unstack(
    theta: np.ndarray, D: int, K: int, p: int, fit_intercept: bool
) -> tuple[np.ndarray, np.ndarray]:
    columns = theta.reshape(K, p).T
    return columns[:D], (columns[D] if fit_intercept else np.zeros(K))
