"""How an SGD epoch visits the rows: every block's copy kept, or one block at a time.

:class:`ResidentEpochs` is the fast path for rows that fit in memory: each block's rows
are shuffled into a copy once (:class:`~logreg.model.sgd_kernels.BlockDesign`), and
every epoch visits all the batches of all the blocks in one fresh random order.

:class:`StreamedEpochs` is for rows that do not fit: a row cache on disk, or partitions
on a cluster. Each block's rows are shuffled into a copy once per fit, as the resident
path does, and the copy is kept where the rows are (``rows.keep``: beside a row cache
on disk, in a worker's memory), not in the solver's memory. Each epoch then visits the
blocks in a seeded random order, and each block's batches in a seeded random order,
reading the kept copy as it is: no row is copied after the first. Where a kept copy
reads back with no copy (in memory, or memory-mapped), each block's visit (its design's
O(rows) buffers and its batches' views) is also built once, on its first visit, and
reused for the fit; a Dask task builds its own (:mod:`logreg.engines.dask_epochs`), so
that no worker holds a block between tasks. The weights pass from one block to the
next: this is streaming SGD. Against the resident path, only
the batches of different blocks never mix within an epoch. Each row is still seen
once per epoch and each step is still an unbiased gradient estimate; the blocks should
not be sorted by class (a partition of only one class pulls the weights its way for a
while), which the hash split never does.

Both take exactly the steps of :func:`logreg.model.equations.sgd_step`
(tests/test_sgd_reference.py follows each one's seeded order).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from logreg.model.rows import Block, RowBlocks
from logreg.model.sgd_kernels import BlockDesign, LoopState, epoch_steps


class ResidentEpochs:
    def __init__(self, rows: RowBlocks, rng: np.random.Generator, fit_intercept: bool, B: int):
        self.designs = [
            BlockDesign.shuffled(block, rng, fit_intercept, B) for block in rows.blocks()
        ]
        self.batches: list = []

    def first_designs(self) -> list[BlockDesign]:
        """The designs whose shapes, shares and smoothness set up the loop."""
        return self.designs

    def bind(self, state: LoopState) -> None:
        self.batches = [batch for design in self.designs for batch in design.batches(state)]

    def run(
        self, theta: np.ndarray, state: LoopState, rng: np.random.Generator, *, lr: float,
        l2: float, l1: float, momentum: float,
    ) -> None:  # fmt: skip
        # Without momentum the step is −lr·g; with it, g is needed alone (scale 1).
        for design in self.designs:
            design.scale_residual_coefficients(1.0 if momentum else lr)
        visit = rng.permutation(len(self.batches)).tolist()
        epoch_steps(theta, self.batches, visit, state, lr=lr, l2=l2, l1=l1, momentum=momentum)

    def loss_sum(self, theta: np.ndarray, full: bool) -> float:
        return sum(design.epoch_loss_sum(theta, full=full) for design in self.designs)

    def close(self) -> None:
        """Nothing to drop: the designs go with this object."""


class StreamedEpochs:
    def __init__(self, rows: RowBlocks, rng: np.random.Generator, fit_intercept: bool, B: int):
        self.rows, self.rng, self.fit_intercept, self.B = rows, rng, fit_intercept, B
        self.progressive_sum = 0.0
        self.kept: list[Callable[[], Block]] | None = None  # each block's copy, to read back
        # Each block's visit, built on its first and reused by the fit's later ones, where
        # a kept copy reads back with no copy (rows.kept_at_hand): rebuilding it on every
        # visit cost a fifth of a streamed epoch (2M × 100 float32, 20 blocks, batch 256).
        self.visits: dict[int, BlockVisit] = {}
        self.state: LoopState | None = None

    def first_designs(self) -> Iterator[BlockDesign]:
        """Each block's rows shuffled into a copy, in block order, the copy kept; each
        design in turn (a generator: one design in the solver's memory at a time)."""
        self.kept = []
        for block in self.rows.blocks():
            design = BlockDesign.shuffled(block, self.rng, self.fit_intercept, self.B)
            self.kept.append(self.rows.keep(design.kept_rows))
            yield design

    def bind(self, state: LoopState) -> None:
        """The copies, if the step size did not need them already (the same draws)."""
        if self.kept is None:
            for _ in self.first_designs():
                pass
        self.state, self.visits = state, {}  # the batches' views hold the state's buffers

    def run(
        self, theta: np.ndarray, state: LoopState, rng: np.random.Generator, *, lr: float,
        l2: float, l1: float, momentum: float,
    ) -> None:  # fmt: skip
        self.progressive_sum = 0.0
        for index in rng.permutation(len(self.rows.sizes)).tolist():
            self.progressive_sum += self._visit(index).steps(
                theta, state, rng, lr=lr, l2=l2, l1=l1, momentum=momentum
            )

    def loss_sum(self, theta: np.ndarray, full: bool) -> float:
        if not full:
            return self.progressive_sum
        if not self.rows.kept_at_hand:
            return sum(
                kept_loss_sum(kept(), theta, self.fit_intercept, self.B) for kept in self.kept
            )
        return sum(
            self._visit(index).design.epoch_loss_sum(theta, full=True)
            for index in range(len(self.kept))
        )

    def close(self) -> None:
        """The fit's visits dropped (and with them any kept copy's map)."""
        self.visits = {}

    def _visit(self, index: int) -> BlockVisit:
        visit = self.visits.get(index)
        if visit is None:
            visit = BlockVisit(self.kept[index](), self.state, self.fit_intercept, self.B)
            if self.rows.kept_at_hand:
                self.visits[index] = visit
        return visit


class BlockVisit:
    """A block's kept copy (X̃, Y, s in the order of the fit's one shuffle) made ready for
    its steps: its design (the logits' and residual coefficients' buffers, O(rows)) and
    its batches' views, bound to ``state``'s buffers."""

    def __init__(
        self, kept_rows: Block, state: LoopState, fit_intercept: bool, B: int,
        design: BlockDesign | None = None,
    ) -> None:  # fmt: skip
        """``design``: this copy's, from an earlier visit, to reuse (its rows rebound)."""
        if design is None:
            design = BlockDesign.of_kept_rows(kept_rows, fit_intercept, B)
        else:
            design.X_tilde, design.Y, design.s = kept_rows.X, kept_rows.Y, kept_rows.s
        self.design = design
        self.batches = design.batches(state)

    def steps(
        self, theta: np.ndarray, state: LoopState, rng: np.random.Generator, *, lr: float,
        l2: float, l1: float, momentum: float,
    ) -> float:  # fmt: skip
        """One streamed visit: the batches stepped in random order (θ and ``state`` in
        place); the block's progressive loss sum."""
        self.design.scale_residual_coefficients(1.0 if momentum else lr)
        visit = rng.permutation(len(self.batches)).tolist()
        epoch_steps(theta, self.batches, visit, state, lr=lr, l2=l2, l1=l1, momentum=momentum)
        # The logits each batch saw are in the design's buffer until its next visit.
        return self.design.epoch_loss_sum(theta, full=False)


def block_steps(
    kept_rows: Block, theta: np.ndarray, state: LoopState, rng: np.random.Generator,
    fit_intercept: bool, B: int, *, lr: float, l2: float, l1: float, momentum: float,
) -> float:  # fmt: skip
    """One streamed visit of a block, read from its kept copy, with nothing kept after it
    (a Dask task's): the block's progressive loss sum."""
    return BlockVisit(kept_rows, state, fit_intercept, B).steps(
        theta, state, rng, lr=lr, l2=l2, l1=l1, momentum=momentum
    )


def kept_loss_sum(kept_rows: Block, theta: np.ndarray, fit_intercept: bool, B: int) -> float:
    """Σ s·CE at θ over a block's kept copy."""
    return BlockDesign.of_kept_rows(kept_rows, fit_intercept, B).epoch_loss_sum(theta, full=True)
