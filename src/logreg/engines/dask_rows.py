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

from logreg.engines.memmap_rows import write_row_cache
from logreg.model.rows import Block, add_up, take


@dataclass(frozen=True)
class DaskRows:
    """Blocks as futures on a Dask cluster (``client``), in a fixed order."""

    client: Any
    parts: tuple[Any, ...]  # one future of a Block per partition
    sizes: tuple[int, ...]  # rows per block, known without fetching a block
    open: Callable[[Any], Block] | None = None  # a part's handle to its Block, in each task
    in_memory = False  # SGD streams the blocks through the client, one at a time
    kept_at_hand = False  # a kept copy is fetched to the client each time it is read

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
        """``n_rows`` of all the rows, drawn without replacement on the workers.

        The client draws only how many rows each block gives (:func:`sample_counts`) and
        one seed; each block's task draws its own rows (:func:`sampled_rows`), so the
        client holds O(blocks), and a task rerun draws the same rows. Blocks in a row
        cache keep their sample as a row cache beside theirs (:func:`cache_sample`),
        read from the page cache by the tasks that use it, so no worker holds the sampled
        rows (a quarter of them, for Newton's sketched Hessian) between tasks; blocks in
        memory keep theirs in memory.
        """
        counts, seed = sample_counts(self.sizes, n_rows, rng)
        draws = [(count, (seed, index)) for index, count in enumerate(counts)]
        if self.open is None:
            parts = tuple(self.map(sampled_rows, draws))
        else:
            parts = tuple(
                self.client.submit(cache_sample, self.open, part, draw, pure=False)
                for part, draw in zip(self.parts, draws, strict=True)
            )
        return DaskRows(self.client, parts, tuple(counts), self.open)

    def keep(self, rows: Block) -> Callable[[], Block]:
        """``rows`` sent to a worker, fetched back when called (SGD through the client;
        :class:`~logreg.engines.dask_epochs.PartitionChains` keeps its copies itself)."""
        return self.client.scatter(rows).result


def on_opened(
    open: Callable[[Any], Block], of: Callable[..., Any], handle: Any, *items: Any, **settings: Any
) -> Any:
    """``of`` on the block behind ``handle``, opened for this task only."""
    return of(open(handle), *items, **settings)


def sample_counts(
    sizes: Sequence[int], n_rows: int, rng: np.random.Generator
) -> tuple[list[int], int]:
    """How many of ``n_rows`` rows drawn uniformly without replacement from blocks of
    ``sizes`` rows fall in each block, and a seed for the blocks' own draws.

    The counts of a uniform sample of the rows are multivariate hypergeometric: drawing
    them, then each block's rows uniformly among its own, samples the rows uniformly,
    with O(blocks) numbers on the client instead of O(rows).
    """
    counts = rng.multivariate_hypergeometric(
        np.asarray(sizes, dtype=np.int64), n_rows, method="marginals"
    )
    return [int(count) for count in counts], int(rng.integers(2**63))


def sampled_rows(block: Block, draw: tuple[int, tuple[int, int]]) -> Block:
    """``draw``: (count, (seed, block index)); that many of the block's rows, drawn by a
    generator of that seed and index (so a rerun draws the same), in block order."""
    count, key = draw
    positions = np.random.default_rng(key).choice(block.X.shape[0], count, replace=False)
    return take(block, np.sort(positions))


def cache_sample(open: Callable[[Any], Block], folder: str, draw: tuple[int, Any]) -> str:
    """A cached block's sampled rows (:func:`sampled_rows`) written as a row cache beside
    the block's, ``<folder>.sample``; that folder, which ``open`` opens as it opens the
    block's (it is removed with them)."""
    rows = sampled_rows(open(folder), draw)
    return str(write_row_cache([rows], f"{folder}.sample", rows.X.dtype))


def _n_rows(block: Block) -> int:
    return block.X.shape[0]
