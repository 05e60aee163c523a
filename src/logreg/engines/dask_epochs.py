"""SGD epochs on a Dask cluster: each partition's steps run on the worker that holds it.

One chain is streaming SGD exactly (:class:`~logreg.model.sgd_epochs.StreamedEpochs`):
each partition's rows shuffled into a copy once per fit, on its worker, and kept there
(written beside the partition's row cache, or in the worker's memory when the
partition is); then each epoch the partitions in a seeded random order, the weights
passing from one partition to the next. The client sends a partition's task the
weights, the loop's running state (momentum's velocity, the L1 penalty's totals) and
the random generator, and the task returns them after its steps; the next partition's
task takes that result as its input on the cluster, so only θ travels, never a block.
Each task copies what it is given and draws from the generator it was passed, and a
kept copy's folder is named by its inputs: every task is pure, and a task rerun after
its worker died takes the same steps.

With ``chains`` k > 1, each epoch deals the partitions, in their seeded order, to k
chains that run at once from the same weights, each with its own generator (seeded by
the epoch's generator and the chain's index), and averages their weights, velocities
and L1 totals at the end of the epoch. What averaging changes: each chain sees only
n/k rows per epoch, so an epoch moves about as far as 1/k of a sequential epoch in
k-times less time per epoch, with the chains' gradient noise averaged down; the
fixed point in expectation is the same optimum, but the result is not the sequential
chain's, and a weight is exactly zero under L1 only where every chain's weight is zero.
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import groupby
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from dask.base import tokenize
from distributed import wait
from distributed.comm import get_address_host

from logreg.engines.dask_rows import DaskRows, on_opened
from logreg.engines.memmap_rows import write_row_cache
from logreg.model.rows import Block
from logreg.model.sgd import BlockSmoothness
from logreg.model.sgd_epochs import BlockVisit, StreamedEpochs, kept_loss_sum
from logreg.model.sgd_kernels import BlockDesign, LoopState

# Each kept copy's design on the worker that last visited it, for the rest of its fit:
# its O(rows) buffers (the logits, the residual coefficients), never its rows, whose map
# is each task's own. Rebuilding them every visit cost about a tenth of an epoch's task
# (1M × 100 float32, 20 partitions). Keyed by the fit and the copy's folder; a task takes
# its entry out while it runs (a concurrent task on the same copy builds its own), and
# every buffer is written before it is read, so a task's result never depends on it.
# PartitionChains.close drops the fit's entries on every worker.
_DESIGNS: dict[tuple[str, str], BlockDesign] = {}


@dataclass(frozen=True)
class Carry:
    """What passes along a chain: θ, the loop's running state, the generator, Σ progressive."""

    theta: np.ndarray
    velocity: np.ndarray
    l1_offered: float
    l1_received: np.ndarray
    rng: np.random.Generator
    progressive_sum: float


class PartitionChains(StreamedEpochs):
    """StreamedEpochs whose steps run on the workers (``rows``: :class:`DaskRows`)."""

    def __init__(
        self,
        rows: DaskRows,
        rng: np.random.Generator,
        fit_intercept: bool,
        B: int,
        chains: int = 1,
    ) -> None:
        super().__init__(rows, rng, fit_intercept, B)
        self.chains = max(1, min(chains, len(rows.sizes)))
        self.places: list[str] | None = None  # where each kept copy is, once they all are
        self.fit_key = uuid.uuid4().hex  # names this fit's designs in the workers' _DESIGNS

    def _submit(self, task: Any, handle: Any, *args: Any, **kwargs: Any) -> Any:
        """``task`` on the rows behind ``handle`` (a future), opened for the task if need be."""
        rows: DaskRows = self.rows  # type: ignore[assignment]
        run = task if rows.open is None else partial(on_opened, rows.open, task)
        return rows.client.submit(run, handle, *args, pure=False, **kwargs)

    def first_designs(self) -> list[BlockSmoothness]:
        """Each partition's rows shuffled into a copy on its worker and kept there, the
        generator passing from partition to partition in order, as StreamedEpochs draws
        it; each copy's smoothness (for the step size), taken there."""
        rows: DaskRows = self.rows  # type: ignore[assignment]
        settings = {"open": rows.open, "fit_intercept": self.fit_intercept, "B": self.B,
                    "n": rows.n_rows}  # fmt: skip
        rng: Any = self.rng
        self.kept, smoothness = [], []
        for part in rows.parts:
            result = rows.client.submit(_shuffle_once, part, rng, pure=False, **settings)
            # Each piece a future of its own, so the copy stays where it was made while
            # the next partition's task takes only the generator.
            kept, block_smoothness, rng = (
                rows.client.submit(itemgetter(i), result, pure=False) for i in range(3)
            )
            self.kept.append(kept)
            smoothness.append(block_smoothness)
        results = rows.client.gather([*smoothness, rng])
        self.rng.bit_generator.state = results[-1].bit_generator.state
        return results[:-1]

    def run(
        self, theta: np.ndarray, state: LoopState, rng: np.random.Generator, *, lr: float,
        l2: float, l1: float, momentum: float,
    ) -> None:  # fmt: skip
        order = rng.permutation(len(self.rows.sizes)).tolist()
        if self.chains == 1:
            generators = [rng]
        else:
            key = int(rng.integers(2**63))
            generators = [np.random.default_rng([key, chain]) for chain in range(self.chains)]
        settings = {
            "fit_intercept": self.fit_intercept, "B": self.B,
            "shares": set(state.decay_by_share), "lr": lr, "l2": l2, "l1": l1,
            "momentum": momentum,
        }  # fmt: skip
        rows: DaskRows = self.rows  # type: ignore[assignment]
        places = self._places()
        ends = []
        for chain, generator in enumerate(generators):
            carry: Any = Carry(
                theta.copy(), state.velocity.copy(), state.l1_offered,
                state.l1_received.copy(), generator, 0.0,
            )  # fmt: skip
            # One task per run of partitions kept at the same place: the steps are the
            # same however the chain is cut, and each task is a hop between processes.
            for _, run in groupby(order[chain :: self.chains], key=places.__getitem__):
                kept = [self.kept[index] for index in run]
                carry = rows.client.submit(
                    _run_steps, kept, carry, open=rows.open, fit_key=self.fit_key, pure=False,
                    **settings,
                )  # fmt: skip
            ends.append(carry)
        carries: list[Carry] = self.rows.client.gather(ends)  # type: ignore[attr-defined]
        if self.chains == 1:
            rng.bit_generator.state = carries[0].rng.bit_generator.state
        theta[...] = _mean([carry.theta for carry in carries])
        state.velocity[...] = _mean([carry.velocity for carry in carries])
        state.l1_offered = float(np.mean([carry.l1_offered for carry in carries]))
        state.l1_received[...] = _mean([carry.l1_received for carry in carries])
        self.progressive_sum = sum(carry.progressive_sum for carry in carries)

    def _places(self) -> list[str]:
        """Where each partition's copy is kept: the host of the worker that wrote it to
        disk (any worker there reads it from the host's page cache), or the worker that
        holds it in memory."""
        rows: DaskRows = self.rows  # type: ignore[assignment]
        if self.places is None:
            wait(self.kept)
            holders = rows.client.who_has(self.kept)
            where = (lambda worker: worker) if rows.open is None else get_address_host
            self.places = [where(min(holders[kept.key])) for kept in self.kept]
        return self.places

    def close(self) -> None:
        """This fit's designs dropped from every worker."""
        rows: DaskRows = self.rows  # type: ignore[assignment]
        if rows.open is None:  # copies in memory are stepped without a cached design
            return
        # Best effort: a fit that failed because the cluster went away reports that error,
        # not this one; a worker that is gone took its designs with it.
        with contextlib.suppress(Exception):
            rows.client.run(_drop_designs, self.fit_key)

    def loss_sum(self, theta: np.ndarray, full: bool) -> float:
        if not full:
            return self.progressive_sum
        settings = {"fit_intercept": self.fit_intercept, "B": self.B}
        sums = [self._submit(kept_loss_sum, kept, theta, **settings) for kept in self.kept]
        return sum(self.rows.client.gather(sums))  # type: ignore[attr-defined]


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The average; one array is returned as it is (one chain's weights, bit for bit)."""
    return arrays[0] if len(arrays) == 1 else np.mean(arrays, axis=0)


def _shuffle_once(
    part: Any, rng: np.random.Generator, *, open: Callable[[Any], Block] | None,
    fit_intercept: bool, B: int, n: int,
) -> tuple[Any, BlockSmoothness, np.random.Generator]:  # fmt: skip
    """A partition's rows shuffled into a copy, kept (in memory, or beside the row cache
    ``part`` in a folder named by this task's inputs), its smoothness, the generator after."""
    rng = copy.deepcopy(rng)  # the input stays as it was: a rerun draws the same
    inputs = tokenize(rng.bit_generator.state, fit_intercept, B)
    folder = None if open is None else Path(part) / f"kept-{inputs}"
    design = BlockDesign.shuffled(part if open is None else open(part), rng, fit_intercept, B)
    smoothness = BlockSmoothness.of(design, n, keep=True)
    if folder is None:
        return design.kept_rows, smoothness, rng
    write_row_cache([design.kept_rows], folder, design.dtype)
    return str(folder), smoothness, rng


def _run_steps(
    kept: list[Any], carry: Carry, *, open: Callable[[Any], Block] | None, fit_key: str,
    **settings: Any,
) -> Carry:  # fmt: skip
    """A run of a chain's partitions, in order: each one's steps on its kept copy (opened
    for its steps only, if it is on disk, its design kept in _DESIGNS for the next visit)."""
    for handle in kept:
        if open is None:
            carry = _chain_steps(handle, carry, **settings)
        else:
            carry = _chain_steps(open(handle), carry, design_key=(fit_key, handle), **settings)
    return carry


def _chain_steps(
    kept_rows: Block, carry: Carry, *, fit_intercept: bool, B: int, shares: set[float], lr: float,
    l2: float, l1: float, momentum: float, design_key: tuple[str, str] | None = None,
) -> Carry:  # fmt: skip
    """One partition's steps of a chain, on its kept copy and copies of the carry (so
    the task is pure); its design taken from, and left in, _DESIGNS under ``design_key``."""
    theta = carry.theta.copy()
    state = LoopState(theta, theta.shape[0] - (1 if fit_intercept else 0), B, shares)
    state.velocity[...] = carry.velocity
    state.l1_offered = carry.l1_offered
    state.l1_received[...] = carry.l1_received
    state.set_decays(lr * l2)
    rng = copy.deepcopy(carry.rng)
    earlier = None if design_key is None else _DESIGNS.pop(design_key, None)
    visit = BlockVisit(kept_rows, state, fit_intercept, B, earlier)
    # An overflowing step raises here as on the client, where sgd_solve names the divergence.
    with np.errstate(over="raise", invalid="raise"):
        progressive = visit.steps(theta, state, rng, lr=lr, l2=l2, l1=l1, momentum=momentum)
    if design_key is not None:
        design = visit.design
        design.X_tilde = design.Y = design.s = None  # type: ignore[assignment]  # the map goes
        _DESIGNS[design_key] = design
    return Carry(
        theta, state.velocity, state.l1_offered, state.l1_received, rng,
        carry.progressive_sum + progressive,
    )  # fmt: skip


def _drop_designs(fit_key: str) -> None:
    """A fit's designs removed from this worker's _DESIGNS."""
    for key in [key for key in _DESIGNS if key[0] == fit_key]:
        _DESIGNS.pop(key, None)
