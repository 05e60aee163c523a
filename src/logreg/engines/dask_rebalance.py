"""The rebalance stage on Dask: every partition resampled or weighted on the workers.

The rules are the numpy engine's (:mod:`logreg.rebalance`): one pass sums the class
counts of every partition, and the class sizes to reach come from those global counts
(:func:`~logreg.rebalance.under_targets`, :func:`~logreg.rebalance.over_targets`). Then
each partition is rewritten on its own worker into the output folder:

- ``none``: the rows as they are, weight 1;
- ``class_weight``: weight n / (K·n_c) from the global counts
  (:func:`logreg.model.equations.balanced_class_weights`), so equal to the numpy engine's;
- ``undersample`` / ``oversample``: the rows to keep, or copy once more, chosen by their
  seeded content hash (:mod:`logreg.hash_resample`, key ``rebalance.seed``). Exact class
  sizes, and the same rows whatever the partitioning; a different random sample from the
  numpy engine's (imbalanced-learn draws with its own generator);
- ``smote``: the rows of the classes that grow are gathered on one worker (they are the
  minority: few), SMOTE runs on them with the numpy engine's code and seed, and the
  synthetic rows become extra partitions after the others. Gathered in row order, they
  give the numpy engine's very synthetic rows (SMOTE-N, for tables with no numeric
  column, fits its value-difference metric on the rows it sees, so it can differ).
  When the minority does not fit (:data:`SMOTE_MEMORY_SHARE`), one line names the
  strategies that need no gathering.

Each task writes its partition's output as pieces of at most ``partition_rows`` rows
(an oversampled partition grows); once all are written, the pieces are renamed
``part-00000.parquet``, ... in row order. Rows reach the client only as counts.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from logreg import rebalance as rb
from logreg.engines.partitions import PART, part_paths, read_part, staged_folder
from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT, plain_label, reading_errors, write_table
from logreg.hash_resample import extra_copies_cut, kept, oversample_copies, undersample_cut
from logreg.hash_split import class_index, row_hashes
from logreg.model.equations import balanced_class_weights

# SMOTE holds about four copies of the rows it works on (the frame, its float array, the
# neighbour search, the output), so the gathered rows plus the synthetic ones, as float64,
# must take at most this share of one worker's memory limit.
SMOTE_MEMORY_SHARE = 0.25


def rebalance_parts(
    client: Any,
    train: Path,
    out: Path,
    options: Mapping[str, Any],
    partition_rows: int,
    one_hot_groups: dict[str, list[str]] | None = None,
    memory_limit: int | None = None,
) -> dict[str, Any]:
    """Rebalance the partitions of ``train`` into the folder ``out``; the report.

    ``memory_limit`` (bytes per worker) bounds SMOTE's gathered rows; None asks the
    workers for theirs.
    """
    sources = part_paths(train)
    census = client.gather([client.submit(_census, path, pure=False) for path in sources])
    columns = census[0][0]
    _check_columns(columns, one_hot_groups)
    counts = dict(
        sorted(sum((Counter(part_counts) for _, part_counts in census), Counter()).items())
    )
    if len(counts) < 2:
        raise UserError("the train split holds a single class; there is nothing to rebalance")
    strategy = options["strategy"]
    if strategy == "smote":  # before anything is written
        max_rows = _smote_bound(client, memory_limit) // (8 * len(columns))
        _check_smote_fits(counts, options["ratio"], max_rows)
    rewrite = REWRITES[strategy](Job(client, sources, counts, options))

    with staged_folder(out) as staging:
        written = client.gather(
            [
                client.submit(_write, rewrite, path, Place(staging, i, partition_rows))
                for i, path in enumerate(sources)
            ]
        )
        if strategy == "smote":
            written.append(
                _smote(
                    client,
                    sources,
                    counts,
                    options,
                    one_hot_groups,
                    Place(staging, len(sources), partition_rows),
                )
            )
        _number_parts(staging)
    after: Counter = Counter()
    weight: Counter = Counter()
    for part_after, part_weight in written:
        after.update(part_after)
        weight.update(part_weight)
    return rb.counts_report(
        strategy,
        options["ratio"],
        counts,
        dict(after),
        {label: float(w) for label, w in weight.items()},
    )


# ----------------------------------------------------------------- each strategy's rewrite
# A strategy's plan looks at the global counts (and, to resample, at the rows' hashes on
# the workers) and returns what each partition's task applies to its frame.

Rewrite = Callable[[pd.DataFrame], pd.DataFrame]


class Job(NamedTuple):
    """What a plan sees: the cluster, the partitions, the global class counts, the options."""

    client: Any
    sources: list[Path]
    counts: dict[Any, int]
    options: Mapping[str, Any]


def _plan_ones(job: Job) -> Rewrite:
    """none, and smote's original rows: weight 1."""
    return partial(_weighted, weights=dict.fromkeys(job.counts, 1.0))


def _plan_class_weight(job: Job) -> Rewrite:
    sizes = np.array(list(job.counts.values()), dtype=np.int64)
    weights = dict(zip(job.counts, balanced_class_weights(sizes).tolist(), strict=True))
    return partial(_weighted, weights=weights)


def _plan_undersample(job: Job) -> Rewrite:
    gather, sizes = _hash_gather(job)
    targets = _targets(rb.under_targets, job.counts, job.options["ratio"])
    cut = undersample_cut(gather, sizes, targets)
    return partial(_undersampled, classes=list(job.counts), seed=job.options["seed"], cut=cut)


def _plan_oversample(job: Job) -> Rewrite:
    gather, sizes = _hash_gather(job)
    targets = _targets(rb.over_targets, job.counts, job.options["ratio"])
    extra = extra_copies_cut(gather, sizes, targets)
    return partial(
        _oversampled,
        classes=list(job.counts),
        seed=job.options["seed"],
        sizes=sizes,
        targets=targets,
        extra=extra,
    )


REWRITES: dict[str, Callable[[Job], Rewrite]] = {
    "none": _plan_ones,
    "class_weight": _plan_class_weight,
    "undersample": _plan_undersample,
    "oversample": _plan_oversample,
    "smote": _plan_ones,  # + the synthetic rows, as extra parts (_smote)
}


def _hash_gather(job: Job) -> tuple[Callable[[Any], list[Any]], np.ndarray]:
    """A ``gather`` over the partitions' (hashes, class) held on the workers; class sizes."""
    client, classes, seed = job.client, list(job.counts), job.options["seed"]
    hashed = [client.submit(_hashes, path, seed, classes, pure=False) for path in job.sources]

    def gather(per_part: Any) -> list[Any]:
        return client.gather([client.submit(_apply, per_part, h) for h in hashed])

    return gather, np.array(list(job.counts.values()), dtype=np.int64)


class Place(NamedTuple):
    """Where a task writes its pieces: the folder, the source's number, rows per piece."""

    folder: Path
    source: int
    rows: int


PIECE = "piece-{:05d}-{:05d}.parquet"  # (source, piece): in row order when sorted


def _number_parts(folder: Path) -> None:
    """The pieces, in row order, renamed part-00000.parquet, part-00001.parquet, ..."""
    for number, piece in enumerate(sorted(folder.glob("piece-*.parquet"))):
        piece.rename(folder / PART.format(number))


def _check_columns(columns: list[str], one_hot_groups: dict[str, list[str]] | None) -> None:
    """The numpy engine's checks of the table (:func:`logreg.rebalance.rebalance`)."""
    if TARGET not in columns:
        raise UserError(f"the train split has no '{TARGET}' column")
    if WEIGHT in columns:
        raise UserError(f"the train split already has a '{WEIGHT}' column; rebalance it only once")
    absent = [c for group in (one_hot_groups or {}).values() for c in group if c not in columns]
    if absent:
        raise UserError(f"the train split lacks the one-hot column(s) {absent[:5]}")


def _targets(rule: Any, counts: dict[Any, int], ratio: float) -> np.ndarray:
    goals = rule(counts, ratio)
    return np.array([goals[c] for c in counts], dtype=np.int64)


def _pieces(n_rows: int, partition_rows: int) -> int:
    return math.ceil(n_rows / partition_rows)  # none for a partition left empty


# ----------------------------------------------------------------- tasks on the workers


def _census(path: Path) -> tuple[list[str], dict[Any, int]]:
    """A partition's columns and its rows per class (its target column read alone)."""
    with reading_errors(path):
        columns = pq.read_schema(path).names
        if TARGET not in columns:
            return columns, {}
        labels = pq.read_table(path, columns=[TARGET]).column(TARGET).to_pandas()
    return columns, {plain_label(k): int(n) for k, n in labels.value_counts().items()}


def _hashes(path: Path, seed: int, classes: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A partition's seeded row hashes and class indices (kept on its worker)."""
    frame = read_part(path)
    return row_hashes(frame, seed), class_index(frame[TARGET], classes)


def _apply(per_part: Any, hashed: tuple[np.ndarray, np.ndarray]) -> Any:
    return per_part(*hashed)


def _weighted(frame: pd.DataFrame, weights: dict[Any, float]) -> pd.DataFrame:
    weight = frame[TARGET].map(weights).to_numpy(dtype=np.float64)
    return rb.with_columns(frame, {WEIGHT: weight})


def _undersampled(
    frame: pd.DataFrame, classes: list[Any], seed: int, cut: tuple[np.ndarray, np.ndarray]
) -> pd.DataFrame:
    mask = kept(row_hashes(frame, seed), class_index(frame[TARGET], classes), cut)
    return _weighted(frame[mask], dict.fromkeys(classes, 1.0))


def _oversampled(
    frame: pd.DataFrame,
    classes: list[Any],
    seed: int,
    sizes: np.ndarray,
    targets: np.ndarray,
    extra: tuple[np.ndarray, np.ndarray],
) -> pd.DataFrame:
    klass = class_index(frame[TARGET], classes)
    copies = oversample_copies(row_hashes(frame, seed), klass, sizes, targets, extra)
    # Each row's copies sit next to it: the partition's row order, repeated in place.
    grown = frame.iloc[np.repeat(np.arange(len(frame)), copies)]
    return _weighted(grown, dict.fromkeys(classes, 1.0))


def _write(rewrite: Any, path: Path, place: Place) -> tuple[dict[Any, int], dict[Any, float]]:
    """Rewrite a partition as pieces at ``place``; its rows and weight per class."""
    return _write_pieces(rewrite(read_part(path)), place)


def _write_pieces(frame: pd.DataFrame, place: Place) -> tuple[dict[Any, int], dict[Any, float]]:
    """The frame as parts of at most ``place.rows`` rows; its rows and weight per class."""
    size = place.rows
    for i in range(_pieces(len(frame), size)):
        piece = frame.iloc[i * size : (i + 1) * size].reset_index(drop=True)
        write_table(piece, Path(place.folder) / PIECE.format(place.source, i))
    grouped = frame.groupby(TARGET, sort=True)[WEIGHT]
    return (
        {plain_label(k): int(n) for k, n in grouped.size().items()},
        {plain_label(k): float(w) for k, w in grouped.sum().items()},
    )


# ----------------------------------------------------------------- SMOTE


def _smote_bound(client: Any, memory_limit: int | None) -> int:
    """Bytes SMOTE may use on one worker: :data:`SMOTE_MEMORY_SHARE` of its limit."""
    if memory_limit is None:
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
        memory_limit = min(limits) if limits and min(limits) > 0 else _system_memory()
    return int(SMOTE_MEMORY_SHARE * memory_limit)


def _system_memory() -> int:
    from distributed.system import MEMORY_LIMIT

    return int(MEMORY_LIMIT)


def _smote(
    client: Any,
    sources: list[Path],
    counts: dict[Any, int],
    options: Mapping[str, Any],
    one_hot_groups: dict[str, list[str]] | None,
    place: Place,
) -> tuple[dict[Any, int], dict[Any, float]]:
    """SMOTE's synthetic rows, made on one worker from the gathered growing classes."""
    growing = _growing(counts, options["ratio"])
    if not growing:
        return {}, {}
    gathered = [client.submit(_rows_of, path, list(growing), pure=False) for path in sources]
    # imbalanced-learn wants two classes: one row of a class that does not grow comes
    # last; it is given no synthetic rows and draws on no randomness.
    other = next(label for label in counts if label not in growing)
    gathered.append(client.submit(_first_row_of, sources, other, pure=False))
    task = client.submit(
        _synthetic,
        gathered,
        counts,
        dict(options),
        one_hot_groups,
        place,
        pure=False,
    )
    written, caught = task.result()
    for message in caught:  # a clipped k_neighbors, said on the driver as on one machine
        warnings.warn(message, stacklevel=2)
    return written


def _growing(counts: dict[Any, int], ratio: float) -> dict[Any, int]:
    """The classes SMOTE grows, and the size each grows to."""
    targets = rb.over_targets(counts, ratio)
    return {label: targets[label] for label in counts if targets[label] > counts[label]}


def _check_smote_fits(counts: dict[Any, int], ratio: float, max_rows: int) -> None:
    """SMOTE's gathered rows plus its synthetic ones fit in ``max_rows``, else one line."""
    growing = _growing(counts, ratio)
    rows = sum(growing.values())  # the gathered rows and the synthetic ones
    if rows > max_rows:
        raise UserError(
            f"rebalance.strategy=smote: the {sum(counts[c] for c in growing):,} rows of the "
            f"class(es) to grow and their synthetic rows ({rows:,} in all) do not fit in "
            f"{SMOTE_MEMORY_SHARE:.0%} of a worker's engine.memory_limit ({max_rows:,} rows "
            "of float64 columns); use rebalance.strategy=undersample, oversample or "
            "class_weight, or more worker memory"
        )


def _rows_of(path: Path, labels: list[Any]) -> pd.DataFrame:
    frame = read_part(path)
    return frame[frame[TARGET].isin(labels)]


def _first_row_of(sources: list[Path], label: Any) -> pd.DataFrame:
    for path in sources:
        frame = read_part(path)
        rows = frame[frame[TARGET] == label]
        if len(rows):
            return rows.iloc[:1]
    raise AssertionError(f"no row of class {label!r}, which the counts hold")


def _synthetic(
    parts: list[pd.DataFrame],
    counts: dict[Any, int],
    options: dict[str, Any],
    one_hot_groups: dict[str, list[str]] | None,
    place: Place,
) -> tuple[tuple[dict[Any, int], dict[Any, float]], list[str]]:
    """The synthetic rows of the gathered classes, written at ``place``; SMOTE's warnings."""
    rows = pd.concat(parts, ignore_index=True)
    X, y = rows.drop(columns=TARGET), rows[TARGET]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        X_new, y_new, weights = rb.smote(
            X, y, options["ratio"], options["k_neighbors"], options["seed"], one_hot_groups, counts
        )
    synthetic = rb.with_columns(
        pd.DataFrame(X_new).iloc[len(rows) :],
        {
            TARGET: pd.Series(y_new).iloc[len(rows) :].to_numpy(),
            WEIGHT: np.asarray(weights, dtype=np.float64)[len(rows) :],
        },
    )
    ours = [str(w.message) for w in caught if str(w.message).startswith("rebalance.")]
    return _write_pieces(synthetic, place), ours
