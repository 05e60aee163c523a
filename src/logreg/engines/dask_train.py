"""The train stage on Dask: the training split's partitions as row blocks on the workers.

Each partition (a ``part-*.parquet`` of the split's folder, or the one file of the
numpy engine) is read once, by a worker: decoded into a C-ordered X in the working
dtype, its labels encoded with the classes, its sample weights. What the worker keeps:

- ``cache_dir`` given: the block written to a row-major ``.npy`` cache in
  ``cache_dir/part-00000/`` (:mod:`logreg.engines.memmap_rows`), and the task's result is
  only that folder's name. Every later task memory-maps it and unmaps it when it ends,
  so the rows are read from the page cache at in-memory speed while no worker holds
  them between tasks: the data may be larger than the cluster's memory (the operating
  system pages the blocks in and out). The stage's default.
- ``cache_dir`` None: the block itself, in the worker's memory (bounded by it).

Then the estimator's own solvers run on those blocks (:meth:`LogisticRegression.fit_rows`):
Newton and proximal Newton sum gradients and Hessians by map-reduce, SGD's steps run
on the worker holding each partition (:class:`logreg.engines.dask_epochs.PartitionChains`),
and the validation loss is a map-reduce too. The client holds only weights and sums.
Every task is pure (the same inputs give the same bytes), so a task rerun after its
worker died changes nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from dask.utils import parse_bytes

from logreg.engines.cluster import engine_client
from logreg.engines.dask_epochs import PartitionChains
from logreg.engines.dask_rows import DaskRows
from logreg.engines.memmap_rows import MemmapRows, write_row_cache
from logreg.engines.partitions import part_paths, part_rows
from logreg.errors import UserError
from logreg.frames import RESERVED, TARGET, plain_label, read_split, reading_errors
from logreg.model.estimator import LogisticRegression, encode_targets
from logreg.model.rows import Block

# A part in memory costs its Arrow table and its arrays while it is decoded: about twice
# its arrays, which must then fit in a worker's memory_limit with room to compute.
DECODE_FACTOR = 2


def read_block(path: str | Path, classes: np.ndarray, dtype: Any, unit_weights: bool) -> Block:
    """One part as a Block in ``dtype``: X, Y encoded with ``classes``, s (ones if
    ``unit_weights``, as the validation loss wants)."""
    split = read_split(path, dtype)
    try:
        Y = encode_targets(classes, split.y)
    except ValueError as exc:
        raise UserError(f"{path}: {exc}") from None
    s = np.ones(len(split.y)) if unit_weights else split.sample_weight
    return Block(split.X, Y.astype(dtype, copy=False), s.astype(dtype, copy=False))


def cache_block(
    path: str | Path, classes: np.ndarray, dtype: Any, unit_weights: bool, cache_dir: Path
) -> str:
    """One part read and written to its row cache, ``cache_dir/<part name>``; that folder."""
    folder = Path(cache_dir) / Path(path).name.removesuffix(".parquet")
    write_row_cache([read_block(path, classes, dtype, unit_weights)], folder, dtype)
    return str(folder)


def open_cached(folder: str) -> Block:
    """A cached part, memory-mapped (read-only): the OS pages it in as a task reads it."""
    return MemmapRows.open(folder).block(0)


def load_rows(
    client: Any,
    parts: Sequence[Path],
    classes: np.ndarray,
    dtype: Any,
    cache_dir: Path | None,
    unit_weights: bool = False,
) -> DaskRows:
    """The parts as row blocks on the workers: cached on disk (``cache_dir``) or in memory."""
    settings = {"classes": classes, "dtype": np.dtype(dtype), "unit_weights": unit_weights}
    if cache_dir is None:
        return DaskRows.load(client, partial(read_block, **settings), [str(p) for p in parts])
    read = partial(cache_block, cache_dir=Path(cache_dir), **settings)
    return DaskRows.load(client, read, [str(p) for p in parts], open=open_cached)


def class_counts(client: Any, parts: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted labels of a split and their row counts, from each part's target column,
    read on the workers."""
    per_part = client.gather(client.map(_label_counts, [str(p) for p in parts], pure=False))
    labels = np.unique(np.concatenate([part_labels for part_labels, _ in per_part]))
    counts = np.zeros(len(labels), dtype=np.int64)
    for part_labels, part_counts in per_part:
        counts[np.searchsorted(labels, part_labels)] += part_counts
    return labels, counts


def feature_names(path: Path) -> list[str]:
    """A part's feature columns, from its schema: no data read."""
    with reading_errors(path):
        names = pq.read_schema(path).names
    return [name for name in names if name not in RESERVED]


def check_part_sizes(parts: Sequence[Path], columns: int, dtype: Any, memory_limit: int) -> None:
    """Every part's decoded arrays fit a worker's memory: else one line naming both numbers."""
    itemsize = np.dtype(dtype).itemsize
    largest = max(parts, key=part_rows)
    need = DECODE_FACTOR * part_rows(largest) * columns * itemsize
    if need > memory_limit:
        raise UserError(
            f"{largest}: reading this partition needs about {need:,} bytes, more than "
            f"engine.memory_limit ({memory_limit:,} bytes per worker); write smaller "
            "partitions (a lower engine.partition_rows) or give the workers more memory"
        )


def fit_on_cluster(
    client: Any,
    train_parts: Sequence[Path],
    val_parts: Sequence[Path] | None,
    classes: np.ndarray,
    model_params: dict[str, Any],
    train_params: dict[str, Any],
    *,
    dtype: Any,
    cache_dir: Path | None,
    chains: int = 1,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> LogisticRegression:
    """The estimator fitted on the parts by the cluster; validation (SGD) stops it early."""
    model = LogisticRegression(**model_params, **train_params)
    names = feature_names(train_parts[0])
    if val_parts is not None and feature_names(val_parts[0]) != names:
        raise UserError("val split: its feature columns differ from the training split's")
    cache = (lambda name: Path(cache_dir) / name) if cache_dir is not None else (lambda _: None)
    rows = load_rows(client, train_parts, classes, dtype, cache("train"))
    validation = None
    if val_parts is not None and model.solver == "sgd":
        validation = load_rows(client, val_parts, classes, dtype, cache("val"), unit_weights=True)
    visits = partial(PartitionChains, chains=chains)
    return model.fit_rows(rows, classes, validation, callback, names, visits=visits)


def train_on_dask(
    engine: dict[str, Any],
    model_params: dict[str, Any],
    train_params: dict[str, Any],
    train_path: Path,
    val_path: Path,
    dtype: Any,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[LogisticRegression, Any]:
    """The train stage's fit on the cluster of the checked ``engine`` section: the model
    and the training split's minority class (ties: the label that sorts last).

    The row cache goes beside the training split (a path every worker sees) and is
    removed after the fit.
    """
    train_parts, val_parts = part_paths(train_path), part_paths(val_path)
    cache_dir = train_path.parent / f".{train_path.name}.rows-{os.getpid()}"
    with engine_client(engine) as client:
        classes, counts = class_counts(client, train_parts)
        if engine["address"] is None and engine["memory_limit"] != "auto":
            columns = len(feature_names(train_parts[0])) + len(classes) + 1
            check_part_sizes(train_parts, columns, dtype, parse_bytes(engine["memory_limit"]))
        try:
            model = fit_on_cluster(
                client, train_parts, val_parts, classes, model_params, train_params,
                dtype=dtype, cache_dir=cache_dir, chains=engine["chains"], callback=callback,
            )  # fmt: skip
        finally:
            shutil.rmtree(cache_dir, ignore_errors=True)
    return model, plain_label(classes[counts == counts.min()][-1])


def _label_counts(path: str) -> tuple[np.ndarray, np.ndarray]:
    with reading_errors(path):
        column = pq.read_table(path, columns=[TARGET]).column(TARGET)
    return np.unique(column.to_numpy(), return_counts=True)
