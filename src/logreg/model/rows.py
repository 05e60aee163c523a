"""Row blocks: how a solver sees its data, whatever holds it.

The solvers need little from the data. SGD visits blocks of rows and takes contiguous
batches from each; Newton, the validation loss and inference need sums over all rows
of a function of a block (the loss, Xᵀr, XᵀSX), and Newton keeps each block's logits
between two passes (``map``). :class:`RowBlocks` is that interface.
:class:`InMemoryRows` holds arrays in one block or several; Dask partitions stand
behind the same members (:mod:`logreg.engines.dask_rows`), and the solvers need no
change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class Block:
    """Rows of the training data: features X (m, D), targets Y (m, K'), sample weights s (m,)."""

    X: np.ndarray
    Y: np.ndarray
    s: np.ndarray


class RowBlocks(Protocol):
    """The rows a solver fits, as blocks; every block has the same columns."""

    n_rows: int
    sizes: tuple[int, ...]  # rows per block, in order
    in_memory: bool  # SGD may keep a copy of every block (else it streams them)
    kept_at_hand: bool  # what keep() kept reads back with no copy: streaming SGD may hold it

    def block(self, index: int) -> Block:
        """One block, by its position."""
        ...

    def blocks(self) -> Iterator[Block]:
        """Each block once, always in the same order."""
        ...

    def map(self, of: Callable[..., Any], *per_block: list[Any]) -> list[Any]:
        """``of(block, *its items of per_block)`` for each block, kept where the block is."""
        ...

    def sum(self, of: Callable[..., Any], *per_block: list[Any]) -> Any:
        """Σ over blocks of ``of(block, ...)``, as :meth:`map` calls it: floats, arrays, tuples."""
        ...

    def sample(self, n_rows: int, rng: np.random.Generator) -> RowBlocks:
        """``n_rows`` rows drawn without replacement, in their original order."""
        ...

    def keep(self, rows: Block) -> Callable[[], Block]:
        """``rows`` derived from a block (streaming SGD's shuffled copy), kept where the
        blocks are kept; a function that reads them back."""
        ...


@dataclass(frozen=True)
class InMemoryRows:
    """Rows held in memory: one block of arrays, or several (as tests and engines split them)."""

    parts: tuple[Block, ...]
    in_memory = True
    kept_at_hand = True

    @classmethod
    def of(
        cls, X: np.ndarray, Y: np.ndarray, s: np.ndarray, block_rows: int | None = None
    ) -> InMemoryRows:
        """The arrays as one block, or as blocks of ``block_rows`` rows (views, not copies)."""
        step = block_rows or max(X.shape[0], 1)
        starts = range(0, X.shape[0], step)
        return cls(tuple(Block(X[i : i + step], Y[i : i + step], s[i : i + step]) for i in starts))

    @property
    def n_rows(self) -> int:
        return sum(block.X.shape[0] for block in self.parts)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(block.X.shape[0] for block in self.parts)

    def block(self, index: int) -> Block:
        return self.parts[index]

    def blocks(self) -> Iterator[Block]:
        yield from self.parts

    def map(self, of: Callable[..., Any], *per_block: list[Any]) -> list[Any]:
        return [of(block, *items) for block, *items in zip(self.parts, *per_block, strict=True)]

    def sum(self, of: Callable[..., Any], *per_block: list[Any]) -> Any:
        return add_up(self.map(of, *per_block))

    def sample(self, n_rows: int, rng: np.random.Generator) -> InMemoryRows:
        sizes = [block.X.shape[0] for block in self.parts]
        picks = sample_positions(sizes, n_rows, rng)
        return InMemoryRows(
            tuple(take(block, local) for block, local in zip(self.parts, picks, strict=True))
        )

    def keep(self, rows: Block) -> Callable[[], Block]:
        return lambda: rows


def add_up(values: list[Any]) -> Any:
    """The sum of per-block values: floats, arrays, or tuples of them added item by item."""
    total = values[0]
    for value in values[1:]:
        if isinstance(total, tuple):
            total = tuple(a + b for a, b in zip(total, value, strict=True))
        else:
            total = total + value
    return total


def sample_positions(sizes: list[int], n_rows: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_rows`` of all the rows, drawn without replacement, as positions within each block.

    Sorted, so that each block's copy reads its rows front to back. The draw depends on
    the blocks' sizes only through their total, so any split of the same rows samples
    the same rows.
    """
    rows = np.sort(rng.choice(sum(sizes), n_rows, replace=False))
    ends = np.cumsum(sizes)
    starts = ends - np.asarray(sizes)
    return [
        rows[(rows >= start) & (rows < end)] - start
        for start, end in zip(starts, ends, strict=True)
    ]


def take(block: Block, positions: np.ndarray) -> Block:
    """The block's rows at ``positions`` (a copy)."""
    return Block(block.X[positions], block.Y[positions], block.s[positions])
