"""Minibatch SGD: the schedule, the stopping rules, and the loop over epochs.

One step on a batch of m rows (B rows in a full batch) with step size lr:

    g = (m/B)·∇J_batch(W, b)         the batch's share of the gradient of J (L2 part only)
    v ← μ·v + g,   θ ← θ − lr·v      heavy-ball momentum (μ = 0: plain SGD, θ ← θ − lr·g)
    W ← cumulative L1 step           the soft threshold by what each weight is still owed

:func:`logreg.model.equations.sgd_step` is that step, the reference. :func:`sgd_solve`
takes exactly those steps with the kernels of :mod:`logreg.model.sgd_kernels`, which
allocate nothing (tests/test_sgd_reference.py holds the two together), and adds the
schedule and the stopping rules.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from logreg.model.equations import (
    auto_step_size,
    hessian_bound_per_squared_norm,
    penalty_value,
    squared_spectral_norm,
    weighted_cross_entropy_sum,
)
from logreg.model.rows import RowBlocks
from logreg.model.sgd_epochs import ResidentEpochs, StreamedEpochs
from logreg.model.sgd_kernels import BlockDesign, LoopState

PLATEAU_EPOCHS = 5  # 'adaptive': epochs without a better training loss before lr /= 5
INVSCALING_EPOCHS = 20.0  # 'invscaling': the epoch scale of the decay
HALVING_SAMPLES = 50_000  # 'step': samples seen between halvings of the step (at least an epoch)
SMOOTHNESS_SAMPLE_ROWS = 4096  # 'auto': rows behind the estimate of L, at most ...
SMOOTHNESS_GRAM_COST = 2**26  # ... and a Gram matrix of at most this many multiply-adds


class DivergenceError(FloatingPointError):
    """Training produced a non-finite or exploding loss."""


@dataclass
class FitRecord:
    """What a solver reports besides the weights."""

    history: list[dict[str, Any]]
    n_iter: int
    stop_reason: str
    learning_rate: float | None = None  # SGD: the base step lr0, before the schedule
    hessian: np.ndarray | None = None  # Newton only: ∇²J at the optimum, for inference


def learning_rate(
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
    rows: RowBlocks,
    *,
    alpha: float,
    l1_ratio: float,
    fit_intercept: bool,
    batch_size: int,
    learning_rate0: float | str,
    lr_schedule: str,
    momentum: float,
    epochs: int,
    epoch_loss: str,
    tol: float,
    patience: int | None,
    max_time: float | None,
    rng: np.random.Generator,
    validation: RowBlocks | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    streamed: bool | None = None,
    visits: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, FitRecord]:
    """Minibatch SGD with momentum, a step-size schedule, the L1 cumulative penalty and stops.

    Works in the precision of the blocks' Y and s (float64 or float32). Rows in memory
    (``streamed`` False; by default when ``rows.in_memory``): each block's rows are put
    in random order once, into a copy (:class:`~logreg.model.sgd_kernels.BlockDesign`);
    then every epoch visits all the batches in a fresh random order. Otherwise each
    block's copy is kept where its rows are, and an epoch visits one block at a time
    (:mod:`logreg.model.sgd_epochs`). Each sample still
    appears once per epoch and each step is an unbiased estimate of the gradient; what
    is lost against reshuffling every epoch is only that batch composition is fixed,
    which correlates the gradient noise of successive epochs but moves neither the
    expected step nor the fixed point. In exchange every batch is a slice of memory: a
    gather per batch, or a permuted copy every epoch, would add 1.1× or 1.5× an epoch
    (200,000 × 100, batch 256).

    The loss recorded after each epoch is J at the epoch's final weights ("full"), from
    one pass over the rows, or the progressive loss ("progressive"): each row's loss at
    the weights its batch was visited with, before its step, as SGDClassifier and Keras
    report it. It reuses the batches' logits, so it costs no pass; it runs above J while
    J is still falling. The penalty term of both is taken at the epoch's final weights.

    ``visits`` replaces how an epoch visits the blocks: a class with StreamedEpochs'
    members, such as :class:`logreg.engines.dask_epochs.PartitionChains`, whose steps run
    where the blocks are; its ``close()`` is called when the fit ends.
    """
    started = time.perf_counter()
    n = rows.n_rows
    B = min(batch_size, n)
    streamed = not rows.in_memory if streamed is None else streamed
    visits = visits or (StreamedEpochs if streamed else ResidentEpochs)
    epochs_over = visits(rows, rng, fit_intercept, B)
    # What the visits hold for the fit (each block's visit; on Dask, the workers' designs)
    # is dropped when it ends, however it ends.
    with contextlib.closing(epochs_over):
        first = next(iter(rows.blocks()))
        D, K, dtype = first.X.shape[1], first.Y.shape[1], first.Y.dtype
        theta = np.zeros((D + 1 if fit_intercept else D, K), dtype=dtype)
        W = theta[:D]  # views into θ: a step on θ moves them
        b = theta[D] if fit_intercept else np.zeros(K, dtype=dtype)
        l2, l1 = alpha * (1.0 - l1_ratio), alpha * l1_ratio
        shares = {1.0, *((size % B or B) / B for size in rows.sizes)}  # each block's last batch
        state = LoopState(theta, D, B, shares)
        auto = learning_rate0 == "auto"
        if auto:
            designs = epochs_over.first_designs()
            smoothness = [BlockSmoothness.of(design, n, keep=streamed) for design in designs]
            learning_rate0 = auto_learning_rate(smoothness, K, 0.5 if K == 1 else 1.0, n, B, l2)
        else:
            learning_rate0 = float(learning_rate0)
        step_named = f"learning_rate={learning_rate0:g}" + (" (auto)" if auto else "")
        epochs_over.bind(state)

        def loss_after_epoch() -> float:
            data_sum = epochs_over.loss_sum(theta, full=epoch_loss == "full")
            return data_sum / n + penalty_value(W, alpha, l1_ratio)

        history: list[dict[str, Any]] = []
        # J at θ = 0 needs no pass: every class then has probability 1/classes.
        initial_loss = math.log(max(K, 2)) * rows.sum(lambda block: float(block.s.sum())) / n
        lr = learning_rate0
        previous_loss = best_val = math.inf
        best_train, epochs_on_plateau, epochs_without_improvement = initial_loss, 0, 0
        best_weights = (W.copy(), b.copy())
        stop_reason = "max_epochs"
        with _overflow_is_divergence(step_named, learning_rate0):
            for epoch in range(epochs):
                lr = learning_rate(lr_schedule, learning_rate0, epoch, lr, n, B)
                state.set_decays(lr * l2)
                epochs_over.run(theta, state, rng, lr=lr, l2=l2, l1=l1, momentum=momentum)

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
                        f"SGD diverged at epoch {epoch + 1}: the training loss became "
                        f"{train_loss:.3g} with {step_named}; try a smaller "
                        f"learning_rate (e.g. {learning_rate0 / 10:g}) or standardised features"
                    )
                if validation is not None:
                    val_loss = validation_loss(validation, W, b)
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
                        if lr < learning_rate0 * 1e-6:
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
        fit = FitRecord(history, len(history), stop_reason, learning_rate=learning_rate0)
        return W.copy(), b.copy(), fit


def smoothness_sample_rows(columns: int) -> int:
    """m, the rows behind the estimate of L for X̃ of this many columns (see below)."""
    return min(
        SMOOTHNESS_SAMPLE_ROWS,
        max(SMOOTHNESS_GRAM_COST // columns**2, math.isqrt(SMOOTHNESS_GRAM_COST // columns)),
    )


@dataclass(frozen=True)
class BlockSmoothness:
    """What learning_rate="auto" needs of one block's shuffled copy: its size, Σ s‖x̃‖²,
    and its first rows, the block's share of the sample behind L."""

    n_rows: int
    weighted_squared_norm: float
    head: np.ndarray
    head_weights: np.ndarray

    @classmethod
    def of(
        cls, design: BlockDesign | BlockSmoothness, n: int, keep: bool = False
    ) -> BlockSmoothness:
        """``keep`` copies the head, so that the design itself can be freed. A smoothness
        already taken where the block is (a Dask worker) passes through."""
        if isinstance(design, BlockSmoothness):
            return design
        rows = design.X_tilde.shape[0]
        count = math.ceil(smoothness_sample_rows(design.X_tilde.shape[1]) * rows / n)
        head, weights = design.X_tilde[:count], design.s[:count]
        if keep:
            head, weights = head.copy(), weights.copy()
        return cls(rows, design.sum_weighted_squared_norm, head, weights)


def auto_learning_rate(
    blocks: list[BlockSmoothness], K: int, scale: float, n: int, B: int, l2: float
) -> float:
    """learning_rate="auto": γ = 2/(𝓛̄(B) + α(1−ρ)) (equations.auto_step_size).

    L̄ is exact: the copy pass took every row's ‖x̃‖². L needs λ_max(X̃ᵀSX̃)/n, a pass over
    X and a D×D eigenproblem; it comes instead from m of the rows, the first of each
    block's shuffled copy in proportion to its size: a uniform sample without
    replacement (every row when n ≤ m). m is SMOOTHNESS_SAMPLE_ROWS, fewer for wide X̃, so
    that the Gram matrix (D×D, or m×m when m < D) costs a fraction of an epoch. A
    sample's top eigenvalue errs upwards for spread-out spectra (isotropic X̃ at D = 100:
    ×1.3; far more when m < D), which only shortens the step.
    """
    c = hessian_bound_per_squared_norm(K)
    L_mean = c * sum(block.weighted_squared_norm for block in blocks) / n + l2
    if not math.isfinite(L_mean):  # finite values whose squares overflow: |x| > 1e154
        raise ValueError("X is too large for learning_rate='auto'; rescale it or set a step")
    # R = √S·X̃ on the sample, in the copy's dtype; X̃ without the sigmoid's ½
    R = np.concatenate([block.head for block in blocks])
    R *= (np.sqrt(np.concatenate([block.head_weights for block in blocks])) / scale)[:, None]
    with _blas().limit(limits=1, user_api="blas"):
        L = c * squared_spectral_norm(R) / len(R) + l2
    return auto_step_size(min(L, L_mean), L_mean, n, B, l2)


@functools.cache
def _blas() -> ThreadpoolController:
    """BLAS's thread pools. The Gram matrix behind L takes about 1 ms on one thread; with
    several, on a machine whose cores are busy, its call waits for a descheduled thread
    (20 to 70 ms, two epochs, measured on a shared 2-core machine)."""
    return ThreadpoolController()


def validation_loss(validation: RowBlocks, W: np.ndarray, b: np.ndarray) -> float:
    """J's data term, unpenalised, on the validation rows: Σ_blocks Σ_i s_i·CE_i / n_val."""
    total = validation.sum(
        lambda block: weighted_cross_entropy_sum(block.X @ W + b, block.Y, block.s)
    )
    return total / validation.n_rows


@contextlib.contextmanager
def _overflow_is_divergence(step_named: str, learning_rate0: float) -> Iterator[None]:
    """A step so large that it overflows inside an epoch is divergence: raise at once."""
    try:
        with np.errstate(over="raise", invalid="raise"):
            yield
    except DivergenceError:
        raise
    except FloatingPointError as exc:
        raise DivergenceError(
            f"SGD diverged: a step overflowed ({exc}) with {step_named}; "
            f"try a smaller learning_rate (e.g. {learning_rate0 / 10:g}) or standardised features"
        ) from None
