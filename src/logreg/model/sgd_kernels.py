"""The fused kernels of :func:`logreg.model.sgd.sgd_solve`: the same step, with nothing allocated.

Read :func:`logreg.model.equations.sgd_step` first; this module computes exactly that
step, faster (tests/test_sgd_reference.py holds the two together). The tricks, each
measured on 200,000 × 100 rows (``bench/run.py``):

- The intercept is the weight of a constant feature: θ = (W; b) multiplies X̃ = [X, 1],
  so one product gives the logits and one both gradients.
- For the sigmoid the copy is X̃ = [X, 1]/2, so the product is already z/2, the argument
  of tanh in σ(z) = (1 + tanh(z/2))/2: one elementwise call instead of three. Scaling
  by a power of two is exact.
- The residual −lr·s(P − Y)/B is gain·f + offset, with per-row coefficients computed once
  and rescaled once per epoch, where f is what the forward pass leaves in the buffer.
- Every batch is a view made once; the loop's constants are 0-d arrays, because NumPy
  takes about 1 µs to convert a Python float operand, three times a small in-place
  operation on arrays.
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import NamedTuple

import numpy as np

from logreg.model.equations import weighted_cross_entropy_sum
from logreg.model.rows import Block

ROWS_PER_COPY = 1024  # rows of X̃ made at a time by the shuffled copy: its buffer stays in L2
TRANSPOSED_ROWS = 256  # ... from Fortran-ordered X (see _scatter_rows)


class Batch(NamedTuple):
    """Views of one batch: X̃_b, X̃_bᵀ, its logits, its residual buffer, gain, offset, m/B."""

    X: np.ndarray
    X_T: np.ndarray
    Z: np.ndarray
    R: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    share: float  # m/B: the short last batch takes its share of a full step
    decay: np.ndarray  # 0-d: the L2 decay 1 − lr·α(1−ρ)·m/B, set every epoch


class LoopState:
    """Buffers every batch reuses, and the L1 penalty's running totals."""

    def __init__(self, theta: np.ndarray, D: int, B: int, shares: set[float]) -> None:
        K, dtype = theta.shape[1], theta.dtype
        self.K = K
        self.W = theta[:D]
        self.velocity = np.zeros_like(theta)
        self.step = np.empty_like(theta)
        self.step_W = self.step[:D]
        self.R_buffer = np.empty((B, K), dtype=dtype)
        self.row_buffer = np.empty((B, 1), dtype=dtype)  # softmax's row maxima and sums
        self.W_scratch, self.W_before = np.empty_like(self.W), np.empty_like(self.W)
        self.l1_offered, self.l1_received = 0.0, np.zeros_like(self.W)  # Tsuruoka's u and q
        self.l1_masks = (np.empty(self.W.shape, dtype=bool), np.empty(self.W.shape, dtype=bool))
        self.decay_by_share = {share: np.empty((), dtype=dtype) for share in shares}

    def set_decays(self, lr_l2: float) -> None:
        for share, decay in self.decay_by_share.items():  # W ← (1 − lr·α(1−ρ)·m/B)W
            decay[...] = 1.0 - lr_l2 * share


class BlockDesign:
    """One block's rows in random order: X̃, Y, s, the epoch's logits and residual coefficients."""

    def __init__(self, block: Block, order: np.ndarray, fit_intercept: bool, B: int) -> None:
        self.n_outputs = block.Y.shape[1]
        self.n_features = block.X.shape[1]
        self.dtype = block.Y.dtype
        self.B = B
        self.scale = 0.5 if self.n_outputs == 1 else 1.0
        # and Σ s_i‖x̃_i‖², for the mean row's smoothness L̄ (learning_rate="auto")
        self.X_tilde, self.sum_weighted_squared_norm = shuffled_design(
            block.X, order, self.dtype, fit_intercept, self.scale, block.s
        )
        self._rows_in_order(block.Y[order], block.s[order])

    def _rows_in_order(self, Y: np.ndarray, s: np.ndarray) -> None:
        self.Y, self.s = Y, s
        # Each row's logits as its batch saw them, which the progressive loss needs.
        self.Z = np.empty((len(Y), self.n_outputs), dtype=self.dtype)
        self.unit_gain, self.unit_offset = residual_coefficients(self.Y, self.s, self.B)
        self.gain, self.offset = np.empty_like(self.unit_gain), np.empty_like(self.unit_offset)

    @classmethod
    def shuffled(
        cls, block: Block, rng: np.random.Generator, fit_intercept: bool, B: int
    ) -> BlockDesign:
        return cls(block, rng.permutation(block.X.shape[0]), fit_intercept, B)

    @property
    def kept_rows(self) -> Block:
        """X̃, Y and s in the shuffled order: what :meth:`of_kept_rows` takes back, with no copy."""
        return Block(self.X_tilde, self.Y, self.s)

    @classmethod
    def of_kept_rows(cls, rows: Block, fit_intercept: bool, B: int) -> BlockDesign:
        """The design of a copy kept from an earlier one (:attr:`kept_rows`), perhaps
        memory-mapped: no row is copied or shuffled again."""
        design = cls.__new__(cls)
        design.n_outputs = rows.Y.shape[1]
        design.n_features = rows.X.shape[1] - (1 if fit_intercept else 0)
        design.dtype, design.B = rows.Y.dtype, B
        design.scale = 0.5 if design.n_outputs == 1 else 1.0
        design.X_tilde, design.sum_weighted_squared_norm = rows.X, math.nan  # taken at setup
        design._rows_in_order(rows.Y, rows.s)
        return design

    @property
    def last_share(self) -> float:
        n = self.X_tilde.shape[0]
        return (n % self.B or self.B) / self.B

    def batches(self, state: LoopState) -> list[Batch]:
        """Every batch's views. The full batches' come from (batches, B, ·) reshapes,
        iterated in C: a streamed epoch cuts every block's batches on each visit, and
        slicing them one by one cost a quarter of the steps' time (1M × 50, batch 256)."""
        n, B = self.X_tilde.shape[0], self.B
        full = n // B
        X, Z, gain, offset = (
            array[: full * B].reshape(full, B, array.shape[1])
            for array in (self.X_tilde, self.Z, self.gain, self.offset)
        )
        views = list(map(
            Batch, X, X.transpose(0, 2, 1), Z, repeat(state.R_buffer, full), gain, offset,
            repeat(1.0, full), repeat(state.decay_by_share[1.0], full),
        ))  # fmt: skip
        if full * B < n:  # the short last batch, which takes its share m/B of a step
            rows, share = slice(full * B, n), (n - full * B) / B
            views.append(
                Batch(
                    self.X_tilde[rows],
                    self.X_tilde[rows].T,
                    self.Z[rows],
                    state.R_buffer[: n - full * B],
                    self.gain[rows],
                    self.offset[rows],
                    share,
                    state.decay_by_share[share],
                )
            )
        return views

    def scale_residual_coefficients(self, scale: float) -> None:
        np.multiply(self.unit_gain, scale, out=self.gain)
        np.multiply(self.unit_offset, scale, out=self.offset)

    def epoch_loss_sum(self, theta: np.ndarray, full: bool) -> float:
        """Σ s·CE at θ (``full``), or at the logits the batches saw (progressive)."""
        if full:
            np.dot(self.X_tilde, theta, out=self.Z)
        if self.scale != 1.0:
            np.divide(self.Z, self.scale, out=self.Z)  # z/2 back to the logits z
        return weighted_cross_entropy_sum(self.Z, self.Y, self.s)


def epoch_steps(
    theta: np.ndarray,
    batches: list[Batch],
    visit: list[int],
    state: LoopState,
    *,
    lr: float,
    l2: float,
    l1: float,
    momentum: float,
) -> None:
    """One epoch of steps in place: the batches in the order ``visit``, each then its L1 clip.

    One call per epoch, with every buffer a local name: at batch size 32 a call or an
    attribute lookup per batch would cost a tenth of the epoch.
    """
    W, step, step_W, velocity = state.W, state.step, state.step_W, state.velocity
    W_scratch, row_buffer, softmax = state.W_scratch, state.row_buffer, state.K > 1
    for index in visit:
        X_b, X_b_T, Z_b, R, gain_b, offset_b, share, decay = batches[index]
        # Forward: X̃_b θ is z/2 for the sigmoid (f = tanh(z/2) = 2p − 1) and Z for
        # softmax (f = P = softmax(Z)); f goes into R.
        np.dot(X_b, theta, out=Z_b)
        if softmax:
            softmax_into(Z_b, R, row_buffer[: len(R)])
        else:
            np.tanh(Z_b, out=R)
        # Residual R = −scale·S(P − Y)/B (twice that for the sigmoid, whose X̃ is halved),
        # as gain·f + offset. The short last batch is also divided by B, not by its m
        # rows, and its penalty share is m/B: the batches are fixed by the single shuffle,
        # so anything else would bias the fixed point. An epoch sums to n/B full gradients.
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
            state.l1_offered += lr * l1 * share
            apply_l1_clip(W, state)


def apply_l1_clip(W: np.ndarray, state: LoopState) -> None:
    """Tsuruoka's clip in place: W > 0 to max(0, W − (u + q)), W < 0 to min(0, W + (u − q)).

    u is the total L1 shrinkage offered so far and q the signed shrinkage each weight
    has received; a weight reaches zero and stops there. Then q ← q + (W after − W before).
    """
    positive, negative = state.l1_masks
    offered, received, scratch = state.l1_offered, state.l1_received, state.W_scratch
    np.copyto(state.W_before, W)
    np.greater(W, 0.0, out=positive)
    np.less(W, 0.0, out=negative)
    np.add(received, offered, out=scratch)  # u + q
    np.subtract(W, scratch, out=W, where=positive)
    np.maximum(W, 0.0, out=W, where=positive)
    np.subtract(received, offered, out=scratch)  # q − u
    np.subtract(W, scratch, out=W, where=negative)
    np.minimum(W, 0.0, out=W, where=negative)
    received += W
    received -= state.W_before


class NonFiniteRows(ValueError):
    """X holds NaN or ±inf, found by the shuffled copy."""


def shuffled_design(
    X: np.ndarray,
    order: np.ndarray,
    dtype: np.dtype,
    fit_intercept: bool,
    scale: float = 1.0,
    s: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """X̃ = scale·[X[order], 1] in ``dtype``, and Σ_i s_i‖x̃_i‖² (unscaled, the 1 included).

    One pass over X, written once into a fresh X̃, a block of rows at a time; each block
    takes its rows' squared norms while it is in cache, which also finds NaN and inf
    (raised as :class:`NonFiniteRows`). How the rows travel depends on X's layout:

    - C-ordered X: X̃ is written front to back, each block's rows gathered from X (whole
      rows, one memcpy each). Fresh pages are cheapest to fault in order: against
      scattering the rows to random places in X̃ this took 0.8× the time (200,000 × 100).
    - Any other layout (Fortran-ordered, what pandas gives for a frame of float columns):
      X is read front to back in blocks of contiguous rows, turned row-major in a buffer
      that already holds the intercept's column, and each whole row scattered to its
      place in X̃ (row i to position[i], the inverse of ``order``). Gathering rows from
      column-major memory instead touches a cache line per value (a 1.2M × 50 first
      epoch took 23.7 s, against 1.1 s from C order).

    Either way the norms are summed in X's row order, in the same blocks, so that the
    sum, and with it the auto step, does not depend on the layout or the path.
    """
    n, D = X.shape
    width = D + 1 if fit_intercept else D
    X_tilde = np.empty((n, width), dtype=dtype)
    squared_norms = np.empty(n, dtype=np.float64)  # in X's row order
    if X.flags.c_contiguous:
        _gather_rows(X, order, X_tilde, scale, squared_norms)
    else:
        _scatter_rows(X, order, X_tilde, scale, squared_norms)
    s = np.ones(n) if s is None else s
    weighted_sum = 0.0
    for start in range(0, n, ROWS_PER_COPY):
        rows = slice(start, start + ROWS_PER_COPY)
        weighted_sum += float(np.dot(s[rows], squared_norms[rows]))
    return X_tilde, weighted_sum / scale**2


def _gather_rows(
    X: np.ndarray, order: np.ndarray, X_tilde: np.ndarray, scale: float, squared_norms: np.ndarray
) -> None:
    n, D = X.shape
    rows_of_X = np.empty((min(ROWS_PER_COPY, n), D), dtype=X.dtype)
    norms = np.empty(len(rows_of_X), dtype=np.float64)
    for start in range(0, n, ROWS_PER_COPY):
        picked = order[start : start + ROWS_PER_COPY]
        gathered = rows_of_X[: len(picked)]
        # mode="clip": the default "raise" buffers the whole output before writing it
        np.take(X, picked, axis=0, out=gathered, mode="clip")
        block = X_tilde[start : start + len(picked)]
        np.multiply(gathered, scale, out=block[:, :D])  # by a power of two: exact
        block[:, D:] = scale  # the intercept's column, if any
        squared_norms[picked] = _checked_squared_norms(block, norms, picked)


def _scatter_rows(
    X: np.ndarray, order: np.ndarray, X_tilde: np.ndarray, scale: float, squared_norms: np.ndarray
) -> None:
    n, D = X.shape
    position = np.empty(n, dtype=np.intp)
    position[order] = np.arange(n)
    # Fortran-ordered rows turn row-major fastest when NumPy's loop runs down X's
    # columns (the transposed views below) over blocks of a few hundred rows: 0.7× the
    # time of 1,024-row blocks in the other loop order, 200,000 × 100.
    rows_per_block = TRANSPOSED_ROWS if X.flags.f_contiguous else ROWS_PER_COPY
    buffer = np.empty((min(rows_per_block, n), X_tilde.shape[1]), dtype=X_tilde.dtype)
    buffer[:, D:] = scale  # the intercept's column, if any: written once, copied with each row
    norms = np.empty(len(buffer), dtype=np.float64)
    for start in range(0, n, rows_per_block):
        block = buffer[: min(rows_per_block, n - start)]
        rows = slice(start, start + len(block))
        if X.flags.f_contiguous:
            np.multiply(X[rows].T, scale, out=block[:, :D].T)
        else:
            np.multiply(X[rows], scale, out=block[:, :D])
        squared_norms[rows] = _checked_squared_norms(block, norms, range(start, rows.stop))
        X_tilde[position[rows]] = block


def _checked_squared_norms(
    block: np.ndarray, norms: np.ndarray, rows: np.ndarray | range
) -> np.ndarray:
    """Each row's ‖x̃‖² (``rows``: their indices in X, for the error)."""
    norms = norms[: len(block)]
    np.einsum("ij,ij->i", block, block, out=norms, dtype=np.float64)
    if not np.isfinite(norms).all() and not np.isfinite(block).all():
        row, column = np.argwhere(~np.isfinite(block))[0]
        raise NonFiniteRows(f"X contains NaN or inf (row {rows[row]}, column {column})")
    return norms


def residual_coefficients(Y: np.ndarray, s: np.ndarray, B: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row (gain, offset) for the SGD residual gain·f + offset.

    For softmax f = P and the residual is −s(P − Y)/B: gain = −s/B, offset = s·Y/B. For
    the sigmoid f = tanh(z/2) = 2p − 1 and, because X̃ is halved, the residual is twice
    −s(p − y)/B, that is s(t − f)/B with the label as t = 2y − 1 = ±1: gain = −s/B,
    offset = s·t/B. Each epoch scales both by its step size.
    """
    weight = (s * (1.0 / B))[:, None]
    target = 2.0 * Y - 1.0 if Y.shape[1] == 1 else Y
    return -weight, weight * target


def softmax_into(Z: np.ndarray, P: np.ndarray, row_buffer: np.ndarray) -> None:
    """P = softmax(Z) without allocating; ``row_buffer`` is (n, 1)."""
    np.max(Z, axis=1, keepdims=True, out=row_buffer)
    np.subtract(Z, row_buffer, out=P)
    np.exp(P, out=P)
    np.sum(P, axis=1, keepdims=True, out=row_buffer)
    P /= row_buffer
