"""Row blocks held by Dask workers: a sum over blocks is a map-reduce on the cluster.

Each block (a partition of the data) lives on one worker, as a future. ``map`` sends
the function to every block and keeps the results where the blocks are (Newton's
per-block logits never travel); ``sum`` brings back only each block's small total (a
loss, a gradient, a p×p Hessian) and adds them. So Newton's optimum, its Hessian and a
validation loss are those of the in-memory rows, up to the order of the additions.

A future may also hold a handle instead of the block (``open``): the folder of the
block's row cache on disk (:mod:`logreg.engines.memmap_rows`), memory-mapped by each
task that reads it and unmapped when the task ends. Then a worker's memory holds no
rows between tasks, and the data may be larger than the cluster's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from logreg.model.rows import Block, add_up, sample_positions, take


@dataclass(frozen=True)
class DaskRows:
    """Blocks as futures on a Dask cluster (``client``), in a fixed order."""

    client: Any
    parts: tuple[Any, ...]  # one future of a Block per partition
    sizes: tuple[int, ...]  # rows per block, known without fetching a block
    open: Callable[[Any], Block] | None = None  # a part's handle to its Block, in each task
    in_memory = False  # SGD streams the blocks through the client, one at a time

    @classmethod
    def load(
        cls,
        client: Any,
        read: Callable[[Any], Any],
        sources: Sequence[Any],
        open: Callable[[Any], Block] | None = None,
    ) -> DaskRows:
        """Each source (a file, a partition) read by ``read`` on a worker: into a Block,
        or into a handle that ``open`` turns into one."""
        parts = tuple(client.submit(read, source, pure=False) for source in sources)
        rows = cls(client, parts, (), open)
        sizes = client.gather(rows.map(_n_rows))
        return cls(client, parts, tuple(int(size) for size in sizes), open)

    @classmethod
    def scatter(cls, client: Any, blocks: Sequence[Block]) -> DaskRows:
        """Blocks the client holds, sent to the workers (tests, small data)."""
        parts = tuple(client.scatter(list(blocks)))
        return cls(client, parts, tuple(block.X.shape[0] for block in blocks))

    @property
    def n_rows(self) -> int:
        return sum(self.sizes)

    def blocks(self) -> Iterator[Block]:
        """Each block, fetched to the client one at a time."""
        for index in range(len(self.parts)):
            yield self.block(index)

    def block(self, index: int) -> Block:
        part = self.parts[index].result()
        return part if self.open is None else self.open(part)

    def map(self, of: Callable[..., Any], *per_block: list[Any]) -> list[Any]:
        task = of if self.open is None else partial(on_opened, self.open, of)
        return [
            self.client.submit(task, part, *items, pure=False)
            for part, *items in zip(self.parts, *per_block, strict=True)
        ]

    def sum(self, of: Callable[..., Any], *per_block: list[Any]) -> Any:
        return add_up(self.client.gather(self.map(of, *per_block)))

    def sample(self, n_rows: int, rng: np.random.Generator) -> DaskRows:
        picks = sample_positions(list(self.sizes), n_rows, rng)
        # The sampled rows are copies, kept in the workers' memory (a quarter of the rows
        # for Newton's sketched Hessian).
        parts = tuple(self.map(take, picks))
        return DaskRows(self.client, parts, tuple(len(local) for local in picks))

    def keep(self, rows: Block) -> Callable[[], Block]:
        """``rows`` sent to a worker, fetched back when called (SGD through the client;
        :class:`~logreg.engines.dask_epochs.PartitionChains` keeps its copies itself)."""
        return self.client.scatter(rows).result


def on_opened(
    open: Callable[[Any], Block], of: Callable[..., Any], handle: Any, *items: Any, **settings: Any
) -> Any:
    """``of`` on the block behind ``handle``, opened for this task only."""
    return of(open(handle), *items, **settings)


def _n_rows(block: Block) -> int:
    return block.X.shape[0]
