"""Logistic regression from scratch in NumPy: the model, its loss, and two solvers.

Notation (one row per sample, K' = 1 column for two classes, K columns for K > 2):

    X : (n, D) features        W : (D, K') weights       b : (K',) intercept
    Z = X W + b                                           the linear predictor (logits)
    P = sigmoid(Z)  (K' = 1)   or   softmax(Z)  (K' = K)  the predicted probabilities
    Y : (n, K') targets, 0/1 for the positive class, or one-hot

The objective is the mean sample-weighted cross-entropy plus the elastic-net penalty

    J(W, b) = 1/n Σ_i s_i·CE(y_i, z_i) + α·(ρ·‖W‖₁ + (1−ρ)/2·‖W‖₂²)

with s_i the sample weights, α = ``alpha`` and ρ = ``l1_ratio``. The intercept is not
penalised and the mean divides by n, not by Σ s_i, so J has the same minimiser as
scikit-learn's LogisticRegression with C = 1/(α·n). Because CE is the negative log of
the predicted probability of the observed class, minimising the unweighted,
unpenalised J is maximum likelihood.

For both link functions the gradient of the data term has the same shape,

    ∂J/∂W = Xᵀ (S (P − Y)) / n + α(1−ρ) W        ∂J/∂b = 1ᵀ S (P − Y) / n

and the L1 part is handled by a proximal step, so coefficients reach exact zeros.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

PENALTY_L1_RATIO = {"l2": 0.0, "l1": 1.0, "none": 0.0}  # elasticnet uses the l1_ratio argument
SOLVERS = ("sgd", "newton")
LR_SCHEDULES = ("constant", "invscaling", "step", "adaptive")
EPOCH_LOSSES = ("full", "progressive")
DTYPES = ("float64", "float32")


PLATEAU_EPOCHS = 5  # 'adaptive': epochs without a better training loss before lr /= 5
INVSCALING_EPOCHS = 20.0  # 'invscaling': the epoch scale of the decay
HALVING_SAMPLES = 50_000  # 'step': samples seen between halvings of the step (at least an epoch)
ROWS_PER_COPY = 8192  # rows gathered at a time by SGD's shuffled copy of X
ROWS_PER_BLOCK = 4096  # rows per block of the Hessian's sums: 3 MiB at D=100, in cache
SKETCH_FRACTION = 4  # Newton far from the optimum: the Hessian of a random quarter of the rows
SKETCH_ROWS_PER_PARAMETER = 50  # ... when that leaves at least 50 rows per parameter


class DivergenceError(FloatingPointError):
    """Training produced a non-finite or exploding loss."""


# ---------------------------------------------------------------------------
# The functional pieces: each line below is one equation of the module docstring.
# ---------------------------------------------------------------------------


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1/(1+e^{−z}), written as (1 + tanh(z/2))/2 so it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) as max(z, 0) + log1p(e^{−|z|}), which never overflows.

    The same value as np.logaddexp(0, z), but from ufuncs NumPy vectorises: about six
    times faster, and the epoch loss of SGD is one of these per sample.
    """
    tail = np.abs(z)
    np.negative(tail, out=tail)
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    return tail + np.maximum(z, 0.0)


def softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise softmax; subtracting the row max keeps exp() from overflowing."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def log_sum_exp(Z: np.ndarray) -> np.ndarray:
    """log Σ_k e^{Z_k} per row, shifted by the row max for stability."""
    Z_max = Z.max(axis=1, keepdims=True)
    return (Z_max + np.log(np.exp(Z - Z_max).sum(axis=1, keepdims=True)))[:, 0]


def predict_probabilities(Z: np.ndarray) -> np.ndarray:
    """P from the logits: sigmoid for one column, softmax for several."""
    return sigmoid(Z) if Z.shape[1] == 1 else softmax(Z)


def cross_entropy(Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy computed from the logits, never from log(P).

    Binary: −[y log σ(z) + (1−y) log(1−σ(z))] = log(1+e^z) − y·z.
    Softmax: −Σ_k Y_k log softmax(Z)_k = logsumexp(Z) − Σ_k Y_k Z_k.
    """
    if Z.shape[1] == 1:
        return softplus(Z[:, 0]) - Y[:, 0] * Z[:, 0]
    return log_sum_exp(Z) - np.einsum("ik,ik->i", Y, Z)


def penalty_value(W: np.ndarray, alpha: float, l1_ratio: float) -> float:
    """α·(ρ‖W‖₁ + (1−ρ)/2‖W‖₂²)."""
    return float(alpha * (l1_ratio * np.abs(W).sum() + 0.5 * (1.0 - l1_ratio) * (W * W).sum()))


def data_loss(Z: np.ndarray, Y: np.ndarray, s: np.ndarray) -> float:
    """1/n Σ_i s_i·CE(y_i, z_i), the data term of J, from the logits Z (n, K')."""
    return float(np.dot(s, cross_entropy(Z, Y))) / Z.shape[0]


def objective_value(
    X: np.ndarray,
    Y: np.ndarray,
    s: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    alpha: float,
    l1_ratio: float,
) -> float:
    """J(W, b): mean weighted cross-entropy (divided by n) plus the penalty."""
    return data_loss(X @ W + b, Y, s) + penalty_value(W, alpha, l1_ratio)


def loss_and_gradient(
    X: np.ndarray,
    Y: np.ndarray,
    s: np.ndarray,
    W: np.ndarray,
    b: np.ndarray,
    alpha: float,
    l1_ratio: float,
) -> tuple[float, np.ndarray, np.ndarray]:
    """J and its gradient (∂J/∂W, ∂J/∂b) from one linear predictor.

    The L1 term contributes α·ρ·sign(W), its gradient wherever W ≠ 0; the SGD
    solver does not use it and applies the proximal step instead.
    """
    n = X.shape[0]
    Z = X @ W + b
    loss = data_loss(Z, Y, s) + penalty_value(W, alpha, l1_ratio)
    R = s[:, None] * (predict_probabilities(Z) - Y)
    grad_W = X.T @ R / n + alpha * (1.0 - l1_ratio) * W + alpha * l1_ratio * np.sign(W)
    grad_b = R.sum(axis=0) / n
    return loss, grad_W, grad_b


def soft_threshold(W: np.ndarray, threshold: float | np.ndarray) -> np.ndarray:
    """prox of t‖·‖₁: shrink toward zero by t and stop exactly at zero."""
    return np.sign(W) * np.maximum(np.abs(W) - threshold, 0.0)


# ---------------------------------------------------------------------------
# Solvers. Each works on prepared arrays (X, Y, s) and returns (W, b, record).
# ---------------------------------------------------------------------------


@dataclass
class FitRecord:
    """What a solver reports besides the weights."""

    history: list[dict[str, Any]]
    n_iter: int
    stop_reason: str
    hessian: np.ndarray | None = None  # Newton only: ∇²J at the optimum, for inference


def _learning_rate(
    schedule: str, lr0: float, epoch: int, current: float, n: int, batch_size: int
) -> float:
    """Step size for an epoch (0-based) over n rows. 'adaptive' is changed by the caller."""
    if schedule == "constant" or schedule == "adaptive":
        return current
    if schedule == "invscaling":
        # lr0 at first, lr0/2 by epoch 60, lr0/7 by 1000.
        return lr0 / math.sqrt(1.0 + epoch / INVSCALING_EPOCHS)
    # "step": SGD's noise floor is proportional to the step size, so each halving halves
    # it, once the iterates have had time to settle at the current step. Counting that
    # time in samples, not epochs, serves both ends: 200,000 rows halve every epoch and
    # reach 1e-4 of the optimum in 6 epochs, while breast_cancer's 569 rows hold each step
    # for 88 epochs, long enough for progress on its ill-conditioned directions. Full-batch
    # descent has no gradient noise, so nothing to settle: its step stays lr0.
    if batch_size >= n:
        return lr0
    epochs_per_halving = max(1, round(HALVING_SAMPLES / n))
    return lr0 * 0.5 ** (epoch // epochs_per_halving)


def sgd_solve(
    X: np.ndarray,
    Y: np.ndarray,
    s: np.ndarray,
    *,
    alpha: float,
    l1_ratio: float,
    fit_intercept: bool,
    batch_size: int,
    learning_rate: float,
    lr_schedule: str,
    momentum: float,
    epochs: int,
    epoch_loss: str,
    tol: float,
    patience: int | None,
    max_time: float | None,
    rng: np.random.Generator,
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    """Minibatch SGD with momentum, a step-size schedule and the L1 cumulative penalty.

    Works in the precision of Y and s (float64 or float32); X, in either, is copied
    once into it. The intercept is the weight of a constant feature: θ = (W; b)
    multiplies X̃ = [X, 1], so one product gives the logits and one both gradients.
    For the sigmoid the copy is X̃ = [X, 1]/2 instead, so that the product is already
    z/2, the argument of tanh in σ(z) = (1 + tanh(z/2))/2; scaling by a power of two is
    exact, so the iterates are bit for bit those of [X, 1].

    The rows are put in random order once, then every epoch visits the contiguous
    batches of that order in a fresh random order. Each sample still appears once per
    epoch and each step is an unbiased estimate of the full gradient; what is lost
    against reshuffling every epoch is only that batch composition is fixed (two rows
    share a batch in every epoch or in none), which correlates the gradient noise of
    successive epochs but moves neither the expected step nor the fixed point. In
    exchange every batch is a slice of memory: a gather per batch, or a permuted copy
    of X every epoch, would add 1.1× or 1.5× an epoch (200,000 × 100, batch 256).

    The loss recorded after each epoch is J at the epoch's final weights ("full"), from
    one pass over X̃, or the progressive loss ("progressive"): each row's loss at the
    weights its batch was visited with, before its step, as SGDClassifier and Keras
    report it. It reuses the logits of the batches, so it costs no pass over X; it
    runs above J while J is still falling and settles around it as the steps shrink.
    The penalty term of both is taken at the epoch's final weights.

    L1 uses the cumulative penalty of Tsuruoka, Tsujii and Ananiadou (2009): each
    weight is clipped toward zero by the total L1 shrinkage it could have received so
    far minus what it did receive, so noise in small steps cannot keep weights alive.
    """
    started = time.perf_counter()
    n, D = X.shape
    K = Y.shape[1]
    dtype = Y.dtype
    B = min(batch_size, n)

    order = rng.permutation(n)
    design_scale = 0.5 if K == 1 else 1.0
    X_tilde = _shuffled_design(X, order, dtype, fit_intercept, design_scale)  # the one copy
    Y_shuffled, s_shuffled = Y[order], s[order]

    theta = np.zeros((X_tilde.shape[1], K), dtype=dtype)
    W = theta[:D]  # views into θ: a step on θ moves them
    b = theta[D] if fit_intercept else np.zeros(K, dtype=dtype)
    velocity = np.zeros_like(theta)
    # Buffers reused by every batch: the hot loop allocates nothing. Z_epoch holds each
    # row's logits as its batch saw them, which the progressive loss needs.
    Z_epoch = np.empty((n, K), dtype=dtype)
    R_buffer = np.empty((B, K), dtype=dtype)
    row_buffer = np.empty((B, 1), dtype=dtype)  # softmax's row maxima and sums
    step = np.empty_like(theta)
    step_W = step[:D]
    l2 = alpha * (1.0 - l1_ratio)
    l1 = alpha * l1_ratio
    l1_offered, l1_applied = 0.0, np.zeros_like(W)  # Tsuruoka's u and q
    W_scratch, W_before = np.empty_like(W), np.empty_like(W)
    unit_gain, unit_offset = _residual_coefficients(Y_shuffled, s_shuffled, B)
    gain, offset = np.empty_like(unit_gain), np.empty_like(unit_offset)
    l1_masks = (np.empty(W.shape, dtype=bool), np.empty(W.shape, dtype=bool))
    # The hot loop's constants are 0-d arrays, not Python floats: NumPy takes about 1 µs
    # to convert a float operand, three times a small in-place operation on arrays.
    decay_by_share = {share: np.empty((), dtype=dtype) for share in {1.0, (n % B or B) / B}}
    # Every batch as views made once: (X̃_b, X̃_bᵀ, its logits Z_b, its residual buffer,
    # gain_b, offset_b, its share m/B of a full batch, and its L2 decay).
    batches = [
        (
            X_tilde[start : start + B],
            X_tilde[start : start + B].T,
            Z_epoch[start : start + B],
            R_buffer[: min(B, n - start)],
            gain[start : start + B],
            offset[start : start + B],
            min(B, n - start) / B,
            decay_by_share[min(B, n - start) / B],
        )
        for start in range(0, n, B)
    ]

    def loss_after_epoch() -> float:
        # Z = X̃θ holds the intercept; the rows' order does not change the objective.
        if epoch_loss == "full":
            np.dot(X_tilde, theta, out=Z_epoch)
        if design_scale != 1.0:
            np.divide(Z_epoch, design_scale, out=Z_epoch)  # z/2 back to the logits z
        return data_loss(Z_epoch, Y_shuffled, s_shuffled) + penalty_value(W, alpha, l1_ratio)

    history: list[dict[str, Any]] = []
    # J at θ = 0 needs no pass: every class then has probability 1/classes.
    initial_loss = math.log(max(K, 2)) * float(s.sum()) / n
    lr = learning_rate
    previous_loss = best_val = math.inf
    best_train = initial_loss
    epochs_on_plateau = 0
    best_weights = (W.copy(), b.copy())
    epochs_without_improvement = 0
    stop_reason = "max_epochs"
    epoch = 0
    for epoch in range(epochs):
        lr = _learning_rate(lr_schedule, learning_rate, epoch, lr, n, B)
        # Without momentum the step is −lr·g; with it, g is needed alone (scale 1).
        scale = 1.0 if momentum else lr
        np.multiply(unit_gain, scale, out=gain)
        np.multiply(unit_offset, scale, out=offset)
        for share, decay in decay_by_share.items():  # W ← (1 − lr·α(1−ρ)·m/B)W, see below
            decay[...] = 1.0 - lr * l2 * share
        for index in rng.permutation(len(batches)).tolist():
            X_b, X_b_T, Z_b, R, gain_b, offset_b, share, decay = batches[index]
            # Forward: X̃_b θ is z/2 for the sigmoid (f = tanh(z/2) = 2p − 1) and Z for
            # softmax (f = P = softmax(Z)); f goes into R.
            np.dot(X_b, theta, out=Z_b)
            if K == 1:
                np.tanh(Z_b, out=R)
            else:
                _softmax_into(Z_b, R, row_buffer[: len(R)])
            # Residual R = −scale·S(P − Y)/|B| (twice that for the sigmoid, whose X̃ is
            # halved), as gain·f + offset. The short last batch is also divided by B, not
            # by its m rows, and its penalty share is m/B: the batches are fixed by the
            # single shuffle, so anything else would bias the fixed point. One epoch then
            # sums to exactly n/B full gradients.
            R *= gain_b
            R += offset_b
            # X̃_bᵀR stacks the data terms of −scale·∂J/∂W and −scale·∂J/∂b.
            np.dot(X_b_T, R, out=step)
            if momentum:
                # Heavy ball: v ← μv + g and θ ← θ − lr·v, where L2 adds its share m/B of
                # α(1−ρ)W to g (the step holds −g).
                if l2:
                    np.multiply(W, l2 * share, out=W_scratch)
                    step_W -= W_scratch
                velocity *= momentum
                velocity -= step
                step[:] = velocity
                step *= -lr
            elif l2:  # the L2 part of the step as one decay, W ← (1 − lr·α(1−ρ)·m/B)W
                W *= decay
            theta += step
            if l1:
                l1_offered += lr * l1 * share
                np.copyto(W_before, W)
                _clip_cumulative_l1(W, l1_offered, l1_applied, l1_masks, W_scratch)
                l1_applied += W  # q ← q + (W after the clip − W before it)
                l1_applied -= W_before

        train_loss = loss_after_epoch()
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": None,
            "learning_rate": lr,
            "elapsed": time.perf_counter() - started,
        }
        history.append(record)
        # Far above the loss of the all-zero model means the steps overshoot.
        if not math.isfinite(train_loss) or train_loss > 100.0 * max(initial_loss, 1e-3):
            raise DivergenceError(
                f"SGD diverged at epoch {epoch + 1}: the training loss became {train_loss:.3g} "
                f"with learning_rate={learning_rate:g}; try a smaller learning_rate "
                f"(e.g. {learning_rate / 10:g}) or standardised features"
            )
        if validation is not None:
            X_val, Y_val, s_val = validation
            val_loss = objective_value(X_val, Y_val, s_val, W, b, 0.0, 0.0)
            record["val_loss"] = val_loss
            if val_loss < best_val:
                best_val, epochs_without_improvement = val_loss, 0
                best_weights = (W.copy(), b.copy())
            else:
                epochs_without_improvement += 1
        if callback is not None:
            callback(record)
        if patience is not None and epochs_without_improvement >= patience:
            stop_reason = "early_stopping"
            W, b = best_weights
            break
        relative_change = abs(previous_loss - train_loss) / max(abs(train_loss), 1e-12)
        if lr_schedule == "adaptive":
            # A plateau of the training loss: shrink the step to lower SGD's noise floor.
            if train_loss < best_train - tol * abs(best_train):
                best_train, epochs_on_plateau = train_loss, 0
            else:
                epochs_on_plateau += 1
            if epochs_on_plateau >= PLATEAU_EPOCHS:
                lr, epochs_on_plateau = lr / 5.0, 0
                if lr < learning_rate * 1e-6:
                    stop_reason = "converged"
                    break
        elif relative_change < tol:
            stop_reason = "converged"
            break
        previous_loss = train_loss
        if max_time is not None and record["elapsed"] >= max_time:
            stop_reason = "max_time"
            break
    # Copies, so the returned weights do not keep θ and its buffers alive.
    return (
        W.copy(),
        b.copy(),
        FitRecord(history=history, n_iter=len(history), stop_reason=stop_reason),
    )


def _shuffled_design(
    X: np.ndarray, order: np.ndarray, dtype: np.dtype, fit_intercept: bool, scale: float = 1.0
) -> np.ndarray:
    """X̃ = scale·[X[order], 1] in ``dtype``, gathered a block of rows at a time.

    ``X[order]`` in one go would hold a second full-size copy (in float64 even for a
    float32 fit) next to X̃; blocks keep the extra memory to one block. Each block is
    gathered into a contiguous buffer first, where np.take copies whole rows; gathering
    straight into X̃'s rows, one column wider, is slower (57 against 50 ms at
    200,000 × 100, most of it the kernel providing X̃'s fresh pages).
    """
    n, D = X.shape
    X_tilde = np.empty((n, D + 1 if fit_intercept else D), dtype=dtype)
    buffer = np.empty((min(ROWS_PER_COPY, n), D), dtype=X.dtype)
    for start in range(0, n, ROWS_PER_COPY):
        rows = order[start : start + ROWS_PER_COPY]
        block = buffer[: len(rows)]
        # The indices are a permutation, always in range; mode="raise" would buffer `out`.
        np.take(X, rows, axis=0, out=block, mode="clip")
        np.multiply(block, scale, out=X_tilde[start : start + len(rows), :D])
    if fit_intercept:
        X_tilde[:, D] = scale
    return X_tilde


def _residual_coefficients(Y: np.ndarray, s: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (gain, offset) for the SGD residual gain·f + offset.

    f is what the forward pass leaves in the residual buffer. For softmax f = P and the
    residual is −s(P − Y)/B: gain = −s/B, offset = s·Y/B. For the sigmoid f = tanh(z/2)
    = 2p − 1 and, because X̃ is halved, the residual is twice −s(p − y)/B, that is
    s(t − f)/B with the label as t = 2y − 1 = ±1: gain = −s/B, offset = s·t/B. Each
    epoch scales both by its step size.
    """
    weight = (s * (1.0 / B))[:, None]
    target = 2.0 * Y - 1.0 if Y.shape[1] == 1 else Y
    return -weight, weight * target


def _softmax_into(Z: np.ndarray, P: np.ndarray, row_buffer: np.ndarray) -> None:
    """P = softmax(Z) without allocating; ``row_buffer`` is (n, 1)."""
    np.max(Z, axis=1, keepdims=True, out=row_buffer)
    np.subtract(Z, row_buffer, out=P)
    np.exp(P, out=P)
    np.sum(P, axis=1, keepdims=True, out=row_buffer)
    P /= row_buffer


def _clip_cumulative_l1(
    W: np.ndarray,
    offered: float,
    applied: np.ndarray,
    masks: tuple[np.ndarray, np.ndarray],
    scratch: np.ndarray,
) -> None:
    """Tsuruoka's clip in place: W > 0 to max(0, W − (u + q)), W < 0 to min(0, W + (u − q)).

    u is the total L1 shrinkage offered so far and q, ``applied`` before this clip, the
    signed shrinkage each weight has received; a weight reaches zero and stops there.
    ``masks`` and ``scratch`` are buffers shaped like W, so nothing is allocated.
    """
    positive, negative = masks
    np.greater(W, 0.0, out=positive)
    np.less(W, 0.0, out=negative)
    np.add(applied, offered, out=scratch)  # u + q
    np.subtract(W, scratch, out=W, where=positive)
    np.maximum(W, 0.0, out=W, where=positive)
    np.subtract(applied, offered, out=scratch)  # q − u
    np.subtract(W, scratch, out=W, where=negative)
    np.minimum(W, 0.0, out=W, where=negative)


def hessian(
    X: np.ndarray, P: np.ndarray, s: np.ndarray, alpha: float, fit_intercept: bool
) -> np.ndarray:
    """∇²J over θ = (W, b) stacked class by class, for an L2 (or no) penalty.

    Block (k, l) is X̃ᵀ diag(c) X̃ / n with X̃ = [X, 1] and the curvature
    c = s·p_k(δ_kl − p_l); for two classes that is the one block with c = s·p(1−p).
    """
    D = X.shape[1]
    K = P.shape[1]
    p = D + 1 if fit_intercept else D
    H = np.empty((K * p, K * p), dtype=np.float64)
    for k in range(K):
        for l in range(k, K):  # H is symmetric: build the upper blocks, mirror them
            c = s * P[:, k] * ((k == l) - P[:, l])
            block = weighted_gram(X, c, fit_intercept, nonnegative=k == l) / X.shape[0]
            H[k * p : (k + 1) * p, l * p : (l + 1) * p] = block
            H[l * p : (l + 1) * p, k * p : (k + 1) * p] = block.T
    ridge = np.zeros(p)
    ridge[:D] = alpha  # the intercept is not penalised
    H[np.diag_indices_from(H)] += np.tile(ridge, K)
    return H


def weighted_gram(
    X: np.ndarray, c: np.ndarray, fit_intercept: bool, nonnegative: bool
) -> np.ndarray:
    """X̃ᵀ diag(c) X̃ with X̃ = [X, 1], summed over blocks of rows.

    Each block of X̃ is scaled into a small buffer that stays in cache, so X is read once
    and never copied whole. With c ≥ 0 the block's product is AᵀA for A = diag(√c)X̃,
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


def newton_solve(
    X: np.ndarray,
    Y: np.ndarray,
    s: np.ndarray,
    *,
    alpha: float,
    fit_intercept: bool,
    max_iter: int,
    tol: float,
    max_time: float | None,
    rng: np.random.Generator,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    """Newton's method (IRLS) with backtracking: θ ← θ − t·H⁻¹∇J, for L2 or no penalty.

    Converges quadratically near the optimum. Softmax over K columns is unchanged by
    adding the same vector to every column, so its Hessian is singular along that
    direction; the step is the minimum-norm solution, which is Newton's step on the
    remaining, identified directions.

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
    n, D = X.shape
    K = Y.shape[1]
    p = D + 1 if fit_intercept else D
    W = np.zeros((D, K))
    b = np.zeros(K)
    if fit_intercept:
        # Start from the intercept-only fit, W = 0 and b = the log-odds of the weighted class
        # frequencies (log frequencies for softmax): on imbalanced data it saves an iteration.
        frequency = np.clip((s @ Y) / max(s.sum(), 1e-300), 1e-12, 1.0 - 1e-12)
        b = np.log(frequency / (1.0 - frequency)) if K == 1 else np.log(frequency)
    Z = X @ W + b
    loss = data_loss(Z, Y, s) + penalty_value(W, alpha, 0.0)
    # At least SKETCH_ROWS_PER_PARAMETER rows per parameter, so the sample's Hessian is
    # within a few percent of the exact one.
    exact = n < SKETCH_FRACTION * SKETCH_ROWS_PER_PARAMETER * K * p
    if not exact:  # sorted, so the copy reads X front to back
        sample = np.sort(rng.choice(n, n // SKETCH_FRACTION, replace=False))
        X_sample = X[sample]
    H: np.ndarray | None = None
    history: list[dict[str, Any]] = []
    stop_reason = "max_epochs"
    for iteration in range(max_iter):
        # Gradient and Hessian at θ, both from the probabilities of the current logits.
        P = predict_probabilities(Z)
        R = s[:, None] * (P - Y) / n
        g = _stack(X.T @ R + alpha * W, R.sum(axis=0), fit_intercept)
        if exact:
            H = hessian(X, P, s, alpha, fit_intercept)
        else:
            H = hessian(X_sample, P[sample], s[sample], alpha, fit_intercept)
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
        step_W, step_b = _unstack(step, D, K, p, fit_intercept)
        # Backtracking keeps far-from-optimum steps (e.g. separable data) descending.
        # A trial point needs only its loss: one pass over X.
        t = 1.0
        while True:
            W_new, b_new = W - t * step_W, b - t * step_b
            Z_new = X @ W_new + b_new
            new_loss = data_loss(Z_new, Y, s) + penalty_value(W_new, alpha, 0.0)
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
        H = hessian(X, predict_probabilities(Z), s, alpha, fit_intercept)
    record = FitRecord(history=history, n_iter=len(history), stop_reason=stop_reason, hessian=H)
    return W, b, record


def _newton_direction(H: np.ndarray, g: np.ndarray, n_blocks: int) -> np.ndarray:
    """H⁻¹g: by Cholesky for one block (binary), minimum-norm for softmax's singular H."""
    if n_blocks == 1:
        return _cholesky_solve(H, g)
    return np.linalg.lstsq(H, g, rcond=None)[0]


def _cholesky_solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve H x = g for symmetric positive-definite H; fall back to least squares."""
    try:
        L = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(H, g, rcond=None)[0]
    return np.linalg.solve(L.T, np.linalg.solve(L, g))


def _stack(W: np.ndarray, b: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """θ as one vector, class by class: [W_·1, b_1, W_·2, b_2, ...]."""
    columns = np.vstack([W, b[None, :]]) if fit_intercept else W
    return columns.T.reshape(-1)


def _unstack(
    theta: np.ndarray, D: int, K: int, p: int, fit_intercept: bool
) -> tuple[np.ndarray, np.ndarray]:
    columns = theta.reshape(K, p).T
    return columns[:D], (columns[D] if fit_intercept else np.zeros(K))


# ---------------------------------------------------------------------------
# The estimator: validation, label encoding, persistence and inference.
# ---------------------------------------------------------------------------


class LogisticRegression:
    """Binary (sigmoid) or multinomial (softmax) logistic regression.

    Parameters
    ----------
    penalty : {"l2", "l1", "elasticnet", "none"}
    alpha : float, default 1e-4
        Penalty strength α ≥ 0; the optimum matches scikit-learn's C = 1/(α·n_samples).
    l1_ratio : float in [0, 1], default 0.5
        Elastic-net mix ρ (used only by ``penalty="elasticnet"``).
    solver : {"sgd", "newton"}
        Minibatch SGD (any penalty) or full-batch Newton (l2/none, with ``summary()``).
    batch_size : int or "full", default 32
        Rows per SGD step; ``"full"`` or any value ≥ n_samples is full-batch descent.
    learning_rate : float, default 0.5
        Initial step size, for standardised features (one step moves by lr times the
        mean gradient of a batch).
    lr_schedule : {"step", "invscaling", "constant", "adaptive"}, default "step"
        Halved after every 50,000 samples seen (at most once per epoch, never for
        full-batch descent, which has no gradient noise), lr/√(1+epoch/20), fixed, or
        divided by 5 after 5 epochs without a better training loss. A decaying step
        lets SGD converge instead of wandering around the optimum at a noise floor set
        by the step size.
    momentum : float in [0, 1), default 0
        Heavy-ball momentum.
    epochs : int, default 1000
        Maximum passes over the data (SGD) or Newton iterations.
    epoch_loss : {"full", "progressive"}, default "full"
        The SGD training loss recorded after each epoch, which ``tol`` also watches: J
        at the epoch's final weights, from one extra pass over the data, or the
        progressive loss, each row's loss at the weights its batch was visited with
        (no extra pass; it lags J while J falls). Newton always records J.
    tol : float, default 1e-7
        Stop when the epoch loss changes by less than tol, relative (SGD), or when
        Newton's predicted gain falls below tol²·J. With the defaults, SGD ends within
        1e-3 of the optimal objective on standardised breast_cancer and wine.
    patience : int or None, default 5
        With validation data, stop after this many epochs without a better validation
        loss and restore the best weights. None disables early stopping.
    max_time : float or None
        Seconds of training after which to stop.
    class_weight : None, "balanced" or dict
        Multiplies sample weights per class; "balanced" is n/(K·count(class)).
    fit_intercept : bool, default True
    dtype : {"float64", "float32"}
        Precision of the SGD path. Newton always works in float64.
    seed : int, default 0
        Seeds SGD's shuffle and the rows of Newton's sampled Hessian; the same seed and
        data give identical weights.
    """

    def __init__(
        self,
        penalty: str = "l2",
        alpha: float = 1e-4,
        l1_ratio: float = 0.5,
        solver: str = "sgd",
        batch_size: int | str = 32,
        learning_rate: float = 0.5,
        lr_schedule: str = "step",
        momentum: float = 0.0,
        epochs: int = 1000,
        epoch_loss: str = "full",
        tol: float = 1e-7,
        patience: int | None = 5,
        max_time: float | None = None,
        class_weight: str | dict[Any, float] | None = None,
        fit_intercept: bool = True,
        dtype: str = "float64",
        seed: int = 0,
    ) -> None:
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.solver = solver
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.epochs = epochs
        self.epoch_loss = epoch_loss
        self.tol = tol
        self.patience = patience
        self.max_time = max_time
        self.class_weight = class_weight
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.seed = seed

    # -- parameters ---------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _CONSTRUCTOR_ARGS}

    @property
    def effective_l1_ratio(self) -> float:
        return (
            float(self.l1_ratio) if self.penalty == "elasticnet" else PENALTY_L1_RATIO[self.penalty]
        )

    @property
    def effective_alpha(self) -> float:
        return 0.0 if self.penalty == "none" else float(self.alpha)

    def _check_params(self) -> None:
        if self.penalty not in (*PENALTY_L1_RATIO, "elasticnet"):
            raise ValueError(
                f"penalty={self.penalty!r} is unknown; use one of 'l2', 'l1', 'elasticnet', 'none'"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r} is unknown; use 'sgd' or 'newton'")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule={self.lr_schedule!r} is unknown; use one of {LR_SCHEDULES}"
            )
        if self.epoch_loss not in EPOCH_LOSSES:
            raise ValueError(
                f"epoch_loss={self.epoch_loss!r} is unknown; use one of {EPOCH_LOSSES}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is unknown; use 'float64' or 'float32'")
        if self.solver == "newton" and self.penalty in ("l1", "elasticnet"):
            raise ValueError(
                f"solver='newton' cannot fit penalty={self.penalty!r} (not twice differentiable); "
                "use solver='sgd' or penalty='l2'/'none'"
            )
        if not (self.batch_size == "full" or (_is_int(self.batch_size) and self.batch_size > 0)):
            raise ValueError(f"batch_size={self.batch_size!r} must be a positive integer or 'full'")
        if not (_is_number(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate={self.learning_rate!r} must be a positive number")
        if not (_is_int(self.epochs) and self.epochs > 0):
            raise ValueError(f"epochs={self.epochs!r} must be a positive integer")
        if not (_is_number(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha={self.alpha!r} must be a number >= 0")
        if not (_is_number(self.l1_ratio) and 0.0 <= self.l1_ratio <= 1.0):
            raise ValueError(f"l1_ratio={self.l1_ratio!r} must be in [0, 1]")
        if not (_is_number(self.momentum) and 0.0 <= self.momentum < 1.0):
            raise ValueError(f"momentum={self.momentum!r} must be in [0, 1)")
        if not (_is_number(self.tol) and self.tol >= 0):
            raise ValueError(f"tol={self.tol!r} must be a number >= 0")
        if self.patience is not None and not (_is_int(self.patience) and self.patience > 0):
            raise ValueError(f"patience={self.patience!r} must be a positive integer or None")
        if self.max_time is not None and not (_is_number(self.max_time) and self.max_time > 0):
            raise ValueError(f"max_time={self.max_time!r} must be a positive number or None")
        if not (
            self.class_weight is None
            or self.class_weight == "balanced"
            or isinstance(self.class_weight, dict)
        ):
            raise ValueError(
                f"class_weight={self.class_weight!r} is unknown; use None, 'balanced' or a dict"
            )

    # -- data preparation -----------------------------------------------------

    def _check_X(self, X: Any, *, fitting: bool) -> np.ndarray:
        names = [str(c) for c in X.columns] if hasattr(X, "columns") else None
        array = np.asarray(X)
        if array.dtype != np.float32:  # float32 stays float32: a float32 fit needs no float64 copy
            array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(
                f"X must be 2-dimensional (n_samples, n_features); got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            rows, cols = np.nonzero(~np.isfinite(array))
            raise ValueError(
                f"X contains NaN or inf ({rows.size} values; first at row {rows[0]}, column "
                f"{names[cols[0]] if names else cols[0]})"
            )
        if fitting:
            self.n_features_in_ = array.shape[1]
            self.feature_names_in_ = names
        elif array.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {array.shape[1]} features, but the model was fitted with "
                f"{self.n_features_in_}"
            )
        return array

    def _encode_targets(self, y: Any) -> np.ndarray:
        """Y as (n, 1) 0/1 for two classes, one-hot (n, K) for more."""
        labels = np.asarray(y)
        index = np.searchsorted(self.classes_, labels)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[index], labels):
            unknown = labels[self.classes_[index] != labels][0]
            raise ValueError(f"y contains the label {unknown!r}, unseen when fitting")
        if len(self.classes_) == 2:
            return index[:, None].astype(np.float64)
        return np.eye(len(self.classes_))[index]

    def _sample_weights(self, y: np.ndarray, sample_weight: Any) -> np.ndarray:
        n = len(y)
        s = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if s.shape != (n,):
            raise ValueError(f"sample_weight has shape {s.shape}; expected ({n},)")
        if not np.isfinite(s).all() or (s < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        if self.class_weight is None:
            return s
        index = np.searchsorted(self.classes_, y)
        if self.class_weight == "balanced":
            counts = np.bincount(index, minlength=len(self.classes_))
            per_class = n / (len(self.classes_) * counts)
        else:
            unknown = set(self.class_weight) - set(self.classes_.tolist())
            if unknown:
                raise ValueError(f"class_weight names classes not in y: {sorted(unknown, key=str)}")
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in self.classes_])
        return s * per_class[index]

    # -- fitting --------------------------------------------------------------

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        X_val: Any = None,
        y_val: Any = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> LogisticRegression:
        """Fit on (X, y); X_val/y_val enable early stopping and the val_loss history.

        ``callback``, if given, is called with each epoch's history record as it ends
        (a progress bar, say); it must not change the record.
        """
        self._check_params()
        X_array = self._check_X(X, fitting=True)
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != X_array.shape[0]:
            raise ValueError(
                f"X has {X_array.shape[0]} rows but y has shape {labels.shape}; "
                "they must have the same length"
            )
        self.classes_ = np.unique(labels)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y has only {len(self.classes_)} class ({self.classes_.tolist()}); "
                "at least two are needed"
            )
        Y = self._encode_targets(labels)
        s = self._sample_weights(labels, sample_weight)
        alpha, l1_ratio = self.effective_alpha, self.effective_l1_ratio
        n = X_array.shape[0]

        if self.solver == "newton":
            W, b, record = newton_solve(
                X_array.astype(np.float64, copy=False),
                Y,
                s,
                alpha=alpha,
                fit_intercept=self.fit_intercept,
                max_iter=self.epochs,
                tol=max(self.tol, 1e-15) ** 2,  # the gain is quadratic in the gradient
                max_time=self.max_time,
                rng=np.random.default_rng(self.seed),
                callback=callback,
            )
        else:
            dtype = np.dtype(self.dtype)
            validation = None
            if X_val is not None and y_val is not None:
                X_val_array = self._check_X(X_val, fitting=False).astype(dtype, copy=False)
                y_val_labels = np.asarray(y_val)
                validation = (
                    X_val_array,
                    self._encode_targets(y_val_labels).astype(dtype),
                    np.ones(len(y_val_labels), dtype=dtype),
                )
            # A step so large that it overflows inside an epoch is divergence too: raise
            # at once instead of warning and waiting for the epoch's loss check.
            with _overflow_is_divergence(float(self.learning_rate)):
                W, b, record = sgd_solve(
                    X_array,  # copied once, shuffled and in `dtype`, inside sgd_solve
                    Y.astype(dtype),
                    s.astype(dtype),
                    alpha=alpha,
                    l1_ratio=l1_ratio,
                    fit_intercept=self.fit_intercept,
                    batch_size=n if self.batch_size == "full" else int(self.batch_size),
                    learning_rate=float(self.learning_rate),
                    lr_schedule=self.lr_schedule,
                    momentum=float(self.momentum),
                    epochs=int(self.epochs),
                    epoch_loss=self.epoch_loss,
                    tol=float(self.tol),
                    patience=self.patience if validation is not None else None,
                    max_time=self.max_time,
                    rng=np.random.default_rng(self.seed),
                    validation=validation,
                    callback=callback,
                )
        self.coef_ = np.ascontiguousarray(W.T)
        self.intercept_ = np.asarray(b)
        self.history_ = record.history
        self.n_iter_ = record.n_iter
        self.stop_reason_ = record.stop_reason
        self.n_samples_fit_ = n
        self._hessian = record.hessian
        self.separable_ = None if alpha > 0 else self._warn_if_separable(X_array, labels)
        return self

    def _warn_if_separable(self, X: np.ndarray, labels: np.ndarray) -> bool:
        """Without a penalty, perfectly separated training data have no finite optimum."""
        separable = bool(np.array_equal(self.predict(X), labels))
        if separable:
            warnings.warn(
                "the training data are perfectly separable: without a penalty the weights "
                f"grow until a stopping rule ends training (stop_reason_={self.stop_reason_!r}); "
                "use penalty='l2' with alpha > 0 for a finite optimum",
                stacklevel=3,
            )
        return separable

    # -- prediction -----------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ValueError("this LogisticRegression is not fitted yet; call fit() first")

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits Z = X Wᵀ + b: shape (n,) for two classes, (n, K) for more."""
        self._check_fitted()
        X_array = self._check_X(X, fitting=False).astype(self.coef_.dtype, copy=False)
        Z = X_array @ self.coef_.T + self.intercept_
        return Z[:, 0] if Z.shape[1] == 1 else Z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        Z = self.decision_function(X)
        if Z.ndim == 1:
            # σ(−z) = 1 − σ(z), computed directly so tiny probabilities keep their precision.
            return np.column_stack([np.exp(-np.logaddexp(0.0, Z)), np.exp(-np.logaddexp(0.0, -Z))])
        return softmax(Z)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class for each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def objective(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """J(W, b) on (X, y), with the fitted penalty and class weights."""
        self._check_fitted()
        X_array = self._check_X(X, fitting=False)
        labels = np.asarray(y)
        if len(labels) != X_array.shape[0]:
            raise ValueError(f"X has {X_array.shape[0]} rows but y has {len(labels)}")
        return objective_value(
            X_array,
            self._encode_targets(labels),
            self._sample_weights(labels, sample_weight),
            self.coef_.T.astype(np.float64),
            self.intercept_.astype(np.float64),
            self.effective_alpha,
            self.effective_l1_ratio,
        )

    # -- inference ------------------------------------------------------------

    def summary(self, confidence: float = 0.95) -> Any:
        """Coefficient table with Wald standard errors, z, p-values and odds ratios.

        The covariance is (n·∇²J)⁻¹ at the optimum, the inverse observed information.
        For an L2 fit this is the inverse of the *penalised* Hessian, so the errors and
        intervals are approximate (they ignore the shrinkage bias). For softmax the
        coefficients are identified only up to a shift shared by all classes; the
        pseudo-inverse reports them under the sum-to-zero constraint.
        """
        import pandas as pd

        self._check_fitted()
        if self._hessian is None:
            raise ValueError("summary() needs solver='newton' (the Hessian at the optimum)")
        K, D = self.coef_.shape
        p = D + 1 if self.fit_intercept else D
        H = self._hessian * self.n_samples_fit_
        if K == 1:
            L = np.linalg.cholesky(H)
            L_inv = np.linalg.solve(L, np.eye(len(H)))
            covariance = L_inv.T @ L_inv
        else:
            covariance = np.linalg.pinv(H, hermitian=True)
        std_err = np.sqrt(np.clip(np.diag(covariance), 0.0, None)).reshape(K, p)
        coef = (
            np.hstack([self.coef_, self.intercept_[:, None]]) if self.fit_intercept else self.coef_
        )
        names = self.feature_names_in_ or [f"x{j}" for j in range(D)]
        names = [*names, "intercept"] if self.fit_intercept else list(names)
        normal = NormalDist()
        z_crit = normal.inv_cdf(0.5 + confidence / 2.0)
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
                [self.classes_.tolist(), names], names=["class", "feature"]
            )
        return table

    # -- persistence ----------------------------------------------------------

    def save(self, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
        """Write ``path`` (.npz: weights) and ``path.with_suffix('.json')`` (everything else).

        Neither format runs code when read. Both are written to temp files and renamed.
        """
        from logreg.io import atomic_path, write_json

        self._check_fitted()
        npz_path = Path(path)
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        if self._hessian is not None:
            arrays["hessian"] = self._hessian
        with atomic_path(npz_path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, **arrays)
        classes = self.classes_.tolist()
        write_json(
            npz_path.with_suffix(".json"),
            {
                "format": "logreg.LogisticRegression/1",
                "params": self.get_params(),
                "classes": classes,
                "classes_dtype": self.classes_.dtype.str,
                "n_features_in": self.n_features_in_,
                "feature_names_in": self.feature_names_in_,
                "n_samples_fit": self.n_samples_fit_,
                "n_iter": self.n_iter_,
                "stop_reason": self.stop_reason_,
                "history": self.history_,
                "metadata": metadata or {},
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> LogisticRegression:
        """Read a model written by :meth:`save`, exactly as it was."""
        npz_path = Path(path)
        info = json.loads(npz_path.with_suffix(".json").read_text())
        params = info["params"]
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = _restore_class_keys(params["class_weight"], info)
        model = cls(**params)
        with np.load(npz_path, allow_pickle=False) as arrays:
            model.coef_ = arrays["coef"]
            model.intercept_ = arrays["intercept"]
            model._hessian = arrays["hessian"] if "hessian" in arrays else None
        model.classes_ = np.asarray(info["classes"], dtype=np.dtype(info["classes_dtype"]))
        model.n_features_in_ = info["n_features_in"]
        model.feature_names_in_ = info["feature_names_in"]
        model.n_samples_fit_ = info["n_samples_fit"]
        model.n_iter_ = info["n_iter"]
        model.stop_reason_ = info["stop_reason"]
        model.history_ = info["history"]
        model.metadata_ = info["metadata"]
        return model


_CONSTRUCTOR_ARGS = (
    "penalty",
    "alpha",
    "l1_ratio",
    "solver",
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "momentum",
    "epochs",
    "epoch_loss",
    "tol",
    "patience",
    "max_time",
    "class_weight",
    "fit_intercept",
    "dtype",
    "seed",
)


@contextlib.contextmanager
def _overflow_is_divergence(learning_rate: float) -> Iterator[None]:
    """Turn a floating-point overflow or invalid operation during SGD into DivergenceError."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            yield
    except DivergenceError:
        raise
    except FloatingPointError as exc:
        raise DivergenceError(
            f"SGD diverged: a step overflowed ({exc}) with learning_rate={learning_rate:g}; "
            f"try a smaller learning_rate (e.g. {learning_rate / 10:g}) or standardised features"
        ) from None


def _restore_class_keys(weights: dict[str, float], info: dict[str, Any]) -> dict[Any, float]:
    # JSON object keys are strings; map them back onto the fitted class labels.
    classes = np.asarray(info["classes"], dtype=np.dtype(info["classes_dtype"])).tolist()
    by_text = {str(c): c for c in classes}
    return {by_text.get(k, k): v for k, v in weights.items()}


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
