"""Row blocks held by Dask workers: a sum over blocks is a map-reduce on the cluster.

Each block (a partition of the data) lives on one worker, as a future. ``map`` sends
the function to every block and keeps the results where the blocks are (Newton's
per-block logits never travel); ``sum`` brings back only each block's small total (a
loss, a gradient, a p×p Hessian) and adds them. So Newton's optimum, its Hessian and a
validation loss are those of the in-memory rows, up to the order of the additions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from logreg.model.rows import Block, add_up, sample_positions, take


@dataclass(frozen=True)
class DaskRows:
    """Blocks as futures on a Dask cluster (``client``), in a fixed order."""

    client: Any
    parts: tuple[Any, ...]  # one future of a Block per partition
    sizes: tuple[int, ...]  # rows per block, known without fetching a block

    @classmethod
    def load(cls, client: Any, read: Callable[[Any], Block], sources: Sequence[Any]) -> DaskRows:
        """Each source (a file, a partition) read into a Block by ``read`` on a worker."""
        parts = tuple(client.submit(read, source, pure=False) for source in sources)
        sizes = client.gather([client.submit(_n_rows, part) for part in parts])
        return cls(client, parts, tuple(int(size) for size in sizes))

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
        for part in self.parts:
            yield part.result()

    def map(self, of: Callable[..., Any], *per_block: list[Any]) -> list[Any]:
        return [
            self.client.submit(of, part, *items, pure=False)
            for part, *items in zip(self.parts, *per_block, strict=True)
        ]

    def sum(self, of: Callable[..., Any], *per_block: list[Any]) -> Any:
        return add_up(self.client.gather(self.map(of, *per_block)))

    def sample(self, n_rows: int, rng: np.random.Generator) -> DaskRows:
        picks = sample_positions(list(self.sizes), n_rows, rng)
        parts = tuple(
            self.client.submit(take, part, local)
            for part, local in zip(self.parts, picks, strict=True)
        )
        return DaskRows(self.client, parts, tuple(len(local) for local in picks))


def _n_rows(block: Block) -> int:
    return block.X.shape[0]
