"""SGD epochs on a Dask cluster: each partition's steps run on the worker that holds it.

One chain is streaming SGD exactly (:class:`~logreg.model.sgd_epochs.StreamedEpochs`):
the partitions in a seeded random order, the weights passing from one partition to the
next. The client sends a partition's task the weights, the loop's running state
(momentum's velocity, the L1 penalty's totals) and the random generator, and the task
returns them after its steps; the next partition's task takes that result as its input
on the cluster, so only θ travels, never a block. Each task copies what it is given and
draws its shuffles from the generator it was passed: it is pure, and a task rerun after
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

import copy
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from logreg.engines.dask_rows import DaskRows, on_opened
from logreg.model.rows import Block
from logreg.model.sgd import BlockSmoothness
from logreg.model.sgd_epochs import StreamedEpochs, block_steps
from logreg.model.sgd_kernels import BlockDesign, LoopState


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

    def _submit(self, task: Any, index: int, *args: Any, **kwargs: Any) -> Any:
        rows: DaskRows = self.rows  # type: ignore[assignment]
        run = task if rows.open is None else partial(on_opened, rows.open, task)
        return rows.client.submit(run, rows.parts[index], *args, pure=False, **kwargs)

    def first_designs(self) -> list[BlockSmoothness]:
        """Each block's smoothness, taken on its worker from its first shuffled copy, the
        generator passing from block to block in order, as StreamedEpochs draws it."""
        n = self.rows.n_rows
        previous: Any = (None, self.rng)
        futures = []
        for index in range(len(self.rows.sizes)):
            previous = self._submit(_smoothness, index, previous, self.fit_intercept, self.B, n)
            futures.append(previous)
        results = self.rows.client.gather(futures)  # type: ignore[attr-defined]
        self.rng.bit_generator.state = results[-1][1].bit_generator.state
        return [smoothness for smoothness, _ in results]

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
        ends = []
        for chain, generator in enumerate(generators):
            carry: Any = Carry(
                theta.copy(), state.velocity.copy(), state.l1_offered,
                state.l1_received.copy(), generator, 0.0,
            )  # fmt: skip
            for index in order[chain :: self.chains]:
                carry = self._submit(_chain_steps, index, carry, **settings)
            ends.append(carry)
        carries: list[Carry] = self.rows.client.gather(ends)  # type: ignore[attr-defined]
        if self.chains == 1:
            rng.bit_generator.state = carries[0].rng.bit_generator.state
        theta[...] = _mean([carry.theta for carry in carries])
        state.velocity[...] = _mean([carry.velocity for carry in carries])
        state.l1_offered = float(np.mean([carry.l1_offered for carry in carries]))
        state.l1_received[...] = _mean([carry.l1_received for carry in carries])
        self.progressive_sum = sum(carry.progressive_sum for carry in carries)


def _mean(arrays: list[np.ndarray]) -> np.ndarray:
    """The average; one array is returned as it is (one chain's weights, bit for bit)."""
    return arrays[0] if len(arrays) == 1 else np.mean(arrays, axis=0)


def _smoothness(
    block: Block, previous: tuple[Any, np.random.Generator], fit_intercept: bool, B: int, n: int
) -> tuple[BlockSmoothness, np.random.Generator]:
    rng = copy.deepcopy(previous[1])  # the input stays as it was: a rerun draws the same
    design = BlockDesign.shuffled(block, rng, fit_intercept, B)
    return BlockSmoothness.of(design, n, keep=True), rng


def _chain_steps(
    block: Block, carry: Carry, *, fit_intercept: bool, B: int, shares: set[float], lr: float,
    l2: float, l1: float, momentum: float,
) -> Carry:  # fmt: skip
    """One partition's steps of a chain, on copies of the carry (so the task is pure)."""
    theta = carry.theta.copy()
    state = LoopState(theta, theta.shape[0] - (1 if fit_intercept else 0), B, shares)
    state.velocity[...] = carry.velocity
    state.l1_offered = carry.l1_offered
    state.l1_received[...] = carry.l1_received
    state.set_decays(lr * l2)
    rng = copy.deepcopy(carry.rng)
    # An overflowing step raises here as on the client, where sgd_solve names the divergence.
    with np.errstate(over="raise", invalid="raise"):
        progressive = block_steps(
            block, theta, state, rng, fit_intercept, B, lr=lr, l2=l2, l1=l1, momentum=momentum
        )
    return Carry(
        theta, state.velocity, state.l1_offered, state.l1_received, rng,
        carry.progressive_sum + progressive,
    )  # fmt: skip
