"""The prepare stage on a Dask cluster: the numpy engine's outputs, one partition at a time.

Each step maps a pure function over the partitions on the workers; only small summaries
come back to the client (counts, profiles, digit counts, moments). The steps:

1. **Load**: workers write the raw table as parts of at most ``engine.partition_rows``
   rows: one task per CSV or Parquet file of ``data.path`` (read in blocks), one per range
   of synthetic rows (:func:`logreg.datasets.synthetic_rows`, the minority cut found over
   the chunks first); the small built-in datasets are loaded here and written as parts.
2. **Check**: each part's target summary and column :class:`~logreg.preprocess.Profile`
   merge into the numpy engine's checks and messages (rows named by their number in the
   whole table).
3. **Split**: each row's seeded hash and class stay on its worker; the cuts of
   :mod:`logreg.hash_split` take a pass of class counts and a few of digit counts. The
   split is the numpy engine's row for row (it runs the same functions on one block).
4. **Fit** on the train rows: profiles (the column kinds), category counts, exact medians
   (:func:`logreg.order_stats.medians`, a few passes), then the encoded columns' moments
   merged exactly (:mod:`logreg.moments`) with their min and max. Means and standard
   deviations equal the numpy engine's up to rounding (~1e-15 relative); medians,
   categories and modes are equal.
5. **Transform**: each part's train, val and test rows are transformed and written as
   parts of the three split folders, in row order.

Every folder is written beside its target and moved in place once complete: a failure
leaves the previous outputs, never a half-written folder.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial, reduce
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from logreg import datasets, hash_split, moments, order_stats, preprocess
from logreg.engines.partitions import PART, part_paths, part_rows, read_part, replace_path
from logreg.errors import UserError
from logreg.frames import (
    DICTIONARY_PAGE_BYTES,
    RESERVED,
    TARGET,
    plain_label,
    reading_errors,
    write_table,
)
from logreg.io import atomic_path
from logreg.preprocess import CATEGORICAL, NUMERIC, Column, Preprocessing, Profile, Stats

SPLITS = ("train", "val", "test")
MAX_CLASSES = 100  # as the numpy engine: more distinct labels is not a class label
# Memory a prepare task needs per byte of its part's raw size (rows × columns × 8 B).
# bench/prepare_memory.py measures a task's peak at 1.9-3.2× (reading, hashing and
# typing hold copies; text columns cost most), and a Dask worker spills at 60 % of its
# memory_limit: 3.2 / 0.6 ≈ 5.3, rounded up.
MEMORY_FACTOR = 6


@dataclass
class TargetSummary:
    """A part's (or several parts') target column: empty values and label counts."""

    rows: int = 0
    empty: int = 0
    first_empty: int | None = None  # row label
    counts: Counter = field(default_factory=Counter)
    first_label: Any = None

    def merge(self, other: TargetSummary) -> TargetSummary:
        counts = self.counts + other.counts
        return TargetSummary(
            self.rows + other.rows,
            self.empty + other.empty,
            self.first_empty if self.first_empty is not None else other.first_empty,
            Counter(dict(list(counts.items())[: MAX_CLASSES + 1])),
            self.first_label if self.rows else other.first_label,
        )


def prepare_on_dask(
    client: Any,
    data: Mapping[str, Any],
    options: Mapping[str, Any],
    partition_rows: int,
    raw_path: Path,
    out_dir: Path,
) -> tuple[Preprocessing, dict[str, Any]]:
    """Write the raw parts and the three split folders; return the preprocessing and report.

    ``data`` and ``options`` are the checked ``data`` and ``prepare`` sections.
    """
    source = data.get("path") or f"data.name={data['name']}"
    categorical = [str(c) for c in data["categorical"]]
    raw_path, out_dir = raw_path.absolute(), out_dir.absolute()  # workers may have another cwd
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{raw_path.name}.", suffix=".tmp", dir=raw_path.parent)
    )
    try:
        target = load_raw(client, dict(data), partition_rows, staging)
        try:  # a problem with the data names its source
            parts = part_paths(staging)
            offsets = np.cumsum(
                [0, *results(client, [submit(client, part_rows, p) for p in parts])]
            )[:-1]
            classes = check_raw(client, parts, offsets, target, categorical)
            replace_path(staging, raw_path)
            parts = part_paths(raw_path)
            prep, report = split_fit_transform(
                client, parts, offsets, target, classes, options, out_dir, categorical
            )
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return prep, report


@dataclass(frozen=True)
class Failed:
    """A task's UserError, returned as a value: raised, Dask would log it on the worker
    with its traceback, beside the stage's one line."""

    message: str


def _guarded(task: Callable, *args: Any) -> Any:
    """Run ``task`` on a worker; a Failed argument (an earlier task's) passes through."""
    failed = next((a for a in args if isinstance(a, Failed)), None)
    if failed is not None:
        return failed
    try:
        return task(*args)
    except UserError as exc:
        return Failed(str(exc))


def submit(client: Any, task: Callable, *args: Any) -> Any:
    """``task(*args)`` on a worker, as a future (futures among ``args`` are resolved)."""
    return client.submit(_guarded, task, *args, pure=False)


def results(client: Any, futures: list[Any]) -> list[Any]:
    """The futures' results; the first task's UserError raised here."""
    done = client.gather(futures)
    failed = next((d for d in done if isinstance(d, Failed)), None)
    if failed is not None:
        raise UserError(failed.message)
    return done


# ------------------------------------------------------------------------------ 1. load


def load_raw(client: Any, data: dict[str, Any], partition_rows: int, folder: Path) -> str:
    """The source's rows as parts ``part-00000.parquet``... in ``folder``; its target column."""
    source = data.get("source") or datasets.default_source(data["name"])
    limit = worker_memory(client)
    if source == "file":
        files = [file.absolute() for file in datasets.source_files(data)]
        schema = datasets.BlockSchema.of(files[0], str(data["target"]))
        target = schema.target
        n_columns = len(
            datasets.select_columns(_head(schema), target, data, str(data["path"])).columns
        )
        check_partition_memory(partition_rows, n_columns, limit)
        tasks = [
            submit(client, _write_file, file, schema, data, partition_rows, folder, i)
            for i, file in enumerate(files)
        ]
        texts = [
            name
            for name, kind in _settle_kinds(schema, files, results(client, tasks)).items()
            if kind == "text"
        ]
        if texts:  # the parts written while those columns were still empty hold numbers
            _retype_empty_parts(client, sorted(folder.glob("part-*.parquet")), texts)
    elif source == "synthetic":
        spec = datasets.synthetic_spec(data)
        target = data.get("target") or datasets.SYNTHETIC_TARGET
        check_partition_memory(partition_rows, spec.n_features + 1, limit)
        cut = datasets.minority_cut(spec, chunk_gather(client, spec, partition_rows))
        tasks = [
            submit(
                client,
                _write_synthetic,
                spec,
                start,
                min(start + partition_rows, spec.n_samples),
                cut,
                data,
                target,
                folder / PART.format(i),
            )
            for i, start in enumerate(range(0, spec.n_samples, partition_rows))
        ]
    else:  # a built-in table: it fits, and is written from here
        frame, target = datasets.load_dataset(data)
        check_partition_memory(partition_rows, frame.shape[1], limit)
        for i, start in enumerate(range(0, len(frame), partition_rows)):
            write_table(frame.iloc[start : start + partition_rows], folder / PART.format(i))
        return target
    results(client, tasks)
    renumber(folder)
    if not list(folder.glob("part-*.parquet")):
        raise UserError(f"{data.get('path')}: a header but no data rows")
    return target


def worker_memory(client: Any) -> int:
    """The smallest memory per worker thread (one task each) in the cluster, in bytes
    (0: no limit set)."""
    workers = client.scheduler_info()["workers"].values()
    limits = [(w.get("memory_limit") or 0) // max(w.get("nthreads", 1), 1) for w in workers]
    return min(limits, default=0)


def check_partition_memory(partition_rows: int, n_columns: int, limit: int) -> None:
    """A UserError when a part of ``partition_rows`` rows would not fit a worker's memory."""
    from dask.utils import format_bytes

    need = partition_rows * n_columns * 8 * MEMORY_FACTOR
    if limit and need > limit:
        fits = limit // (n_columns * 8 * MEMORY_FACTOR)
        raise UserError(
            f"engine.partition_rows={partition_rows}: a partition of {partition_rows} rows × "
            f"{n_columns} columns needs about {format_bytes(need)} on a worker while prepare "
            f"works on it, above engine.memory_limit ({format_bytes(limit)} per worker "
            f"thread); set engine.partition_rows to {fits} or fewer, or give workers more memory"
        )


def _head(schema: datasets.BlockSchema) -> pd.DataFrame:
    return pd.DataFrame(columns=schema.columns)


def _write_file(
    file: Path,
    schema: datasets.BlockSchema,
    data: dict[str, Any],
    partition_rows: int,
    folder: Path,
    index: int,
) -> tuple[int, dict[str, tuple[str, int]]]:
    """A worker's task: one source file, read in blocks, as parts ``part-<file>-<k>``;
    its rows, and the kind (and the row it starts at) of each column that was empty in
    the first file's first block and holds values here."""
    where = str(data["path"])
    # Its own copy: the schema learns those kinds from this file only.
    schema = replace(schema, kinds=dict(schema.kinds), decided_at={})
    blocks = (
        datasets.select_columns(block, schema.target, data, where)
        for block in schema.checked_blocks(file)
    )
    rows = 0
    for k, part in enumerate(rebatch(blocks, partition_rows)):
        write_table(part, folder / f"part-{index:05d}-{k:05d}.parquet")
        rows += len(part)
    return rows, {name: (schema.kinds[name], row) for name, row in schema.decided_at.items()}


def _settle_kinds(
    schema: datasets.BlockSchema,
    files: list[Path],
    written: list[tuple[int, dict[str, tuple[str, int]]]],
) -> dict[str, str]:
    """The kinds of the columns empty in the first file's first block, as the numpy
    engine settles them reading the files in order: the first file with values sets
    the kind, and a later file of the other kind is the numpy engine's error line."""
    settled: dict[str, str] = {}
    for file, (_, kinds) in zip(files, written, strict=True):
        for name, (kind, row) in kinds.items():
            expected = settled.setdefault(name, kind)
            if kind != expected:
                raise schema.mixed_kinds(file, name, kind, row, expected)
    return settled


def _retype_empty_parts(client: Any, parts: list[Path], names: list[str]) -> None:
    """Give the text columns ``names`` the Arrow type of their text in every part: a
    part of a file where they are all empty holds them as numbers (CSV reads a column of
    gaps as floats), so the parts would not share one schema."""
    types = results(client, [submit(client, _column_types, part, names) for part in parts])
    text = {name: next(t[name] for t in types if _is_text(t[name])) for name in names}
    retyped = [p for p, t in zip(parts, types, strict=True) if t != {n: text[n] for n in names}]
    results(client, [submit(client, _as_empty_columns, part, text) for part in retyped])


def _column_types(part: Path, names: list[str]) -> dict[str, Any]:
    schema = pq.read_schema(part)
    return {name: schema.field(name).type for name in names}


def _is_text(arrow_type: Any) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def _as_empty_columns(part: Path, types: dict[str, Any]) -> None:
    """Rewrite ``part`` with its columns of ``types``, all gaps, as empty columns of those
    types."""
    table = pq.read_table(part)
    for name, arrow_type in types.items():
        index = table.schema.get_field_index(name)
        if table.schema.field(index).type != arrow_type:
            assert table.column(index).null_count == table.num_rows  # _settle_kinds saw gaps
            table = table.set_column(index, name, pa.nulls(table.num_rows, arrow_type))
    with atomic_path(part) as tmp:
        pq.write_table(table, tmp, dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES)


def rebatch(blocks: Iterable[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """The blocks' rows, in order, regrouped into frames of ``rows`` rows (the last fewer)."""
    pending: list[pd.DataFrame] = []
    count = 0
    for block in blocks:
        pending.append(block)
        count += len(block)
        while count >= rows:
            whole = pending[0] if len(pending) == 1 else pd.concat(pending)
            yield whole.iloc[:rows]
            pending, count = [whole.iloc[rows:]], count - rows
    if count:
        yield pending[0] if len(pending) == 1 else pd.concat(pending)


def renumber(folder: Path) -> None:
    """Rename the parts, in their name order, to ``part-00000.parquet``, ``part-00001``..."""
    for i, part in enumerate(sorted(folder.glob("part-*.parquet"))):
        part.rename(folder / f".renamed-{PART.format(i)}")
    for part in folder.glob(".renamed-*"):
        part.rename(folder / part.name.removeprefix(".renamed-"))


def chunk_gather(client: Any, spec: datasets.Synthetic, partition_rows: int) -> Callable:
    """A ``gather`` over the synthetic chunks' score keys, a task per run of chunks."""
    per_task = max(1, partition_rows // datasets.CHUNK_ROWS)
    runs = [range(i, min(i + per_task, spec.n_chunks)) for i in range(0, spec.n_chunks, per_task)]

    def gather(per_chunk: Callable) -> list[Any]:
        done = results(client, [submit(client, _on_chunks, per_chunk, spec, run) for run in runs])
        return [result for results in done for result in results]

    return gather


def _on_chunks(per_chunk: Callable, spec: datasets.Synthetic, run: range) -> list[Any]:
    return [per_chunk(*datasets.chunk_score_keys(spec, i)) for i in run]


def _write_synthetic(
    spec: datasets.Synthetic,
    start: int,
    stop: int,
    cut: float,
    data: dict[str, Any],
    target: str,
    path: Path,
) -> int:
    """A worker's task: synthetic rows ``start..stop-1`` as one part."""
    frame = datasets.synthetic_rows(spec, start, stop, cut)
    frame = frame.rename(columns={datasets.SYNTHETIC_TARGET: target})
    write_table(datasets.select_columns(frame, target, data, f"data.name={data['name']}"), path)
    return stop - start


# ----------------------------------------------------------------------------- 2. check


def part_columns(path: Path) -> list[str]:
    """A part's column names, from its footer: no data read."""
    with reading_errors(path):
        return list(pq.ParquetFile(path).schema_arrow.names)


def _read(path: Path, offset: int) -> pd.DataFrame:
    """A part, its rows labelled by their number in the whole table (for messages)."""
    frame = read_part(path)
    frame.index = pd.RangeIndex(offset, offset + len(frame))
    return frame


def _profile_raw(path: Path, offset: int, target: str) -> tuple[TargetSummary, dict]:
    """A worker's task: a raw part's target summary and feature column profiles."""
    frame = _read(path, offset)
    if target not in frame.columns:
        return TargetSummary(), {}
    labels = frame[target]
    empty = labels.isna().to_numpy()
    if labels.dtype == object or pd.api.types.is_string_dtype(labels):
        blank = labels.astype("string").str.strip().eq("").fillna(True).to_numpy(dtype=bool)
        empty = empty | blank
    present = labels[~empty]
    summary = TargetSummary(
        len(frame),
        int(empty.sum()),
        frame.index[int(empty.argmax())] if empty.any() else None,
        Counter(dict(present.value_counts().head(MAX_CLASSES + 1).items())),
        plain_label(labels.iloc[0]) if len(labels) else None,
    )
    features = [c for c in frame.columns if c != target]
    return summary, {name: preprocess.profile(frame[name]) for name in features}


def merge_profiles(parts: Sequence[dict[str, Profile]]) -> dict[str, Profile]:
    """Column by column, the parts' profiles merged in row order."""
    parts = [p for p in parts if p]
    return {name: reduce(Profile.merge, (p[name] for p in parts)) for name in parts[0]}


def check_raw(
    client: Any, parts: list[Path], offsets: np.ndarray, target: str, categorical: Sequence[Any]
) -> list[Any]:
    """The numpy engine's checks of the target and the features; the sorted class labels."""
    columns = part_columns(parts[0])  # the same in every part (load checked them)
    if target not in columns:
        shown = ", ".join(map(str, columns[:10]))
        raise UserError(f"target column '{target}' (data.target) not found; columns are {shown}")
    clashes = [c for c in RESERVED if c in columns and c != target]
    if clashes:
        raise UserError(f"feature column(s) {clashes} use reserved names; rename or drop them")
    found = results(
        client,
        [
            submit(client, _profile_raw, p, int(o), target)
            for p, o in zip(parts, offsets, strict=True)
        ],
    )
    summary = reduce(TargetSummary.merge, (s for s, _ in found))
    if summary.empty:
        raise UserError(
            f"target column '{target}' has {summary.empty} empty value(s), the first at "
            f"{preprocess.row_label(summary.first_empty)}; fill or remove those rows"
        )
    n_classes = len(summary.counts)
    if n_classes < 2:
        raise UserError(
            f"target column '{target}' has a single class ({summary.first_label!r}); "
            "a classifier needs at least two"
        )
    if n_classes > MAX_CLASSES:
        raise UserError(
            f"target column '{target}' has more than {MAX_CLASSES} distinct values; it looks "
            "continuous, not a class label (data.target)"
        )
    if target in categorical:
        raise UserError(
            f"data.categorical: lists the target column '{target}'; it names feature columns"
        )
    names = [c for c in columns if c != target]
    absent = [c for c in categorical if c not in names]
    if absent:
        raise UserError(
            f"data.categorical: column(s) {absent} not among the feature columns of the data"
        )
    preprocess.column_kinds(merge_profiles([p for _, p in found]), categorical=categorical)
    return [plain_label(c) for c in np.unique(np.asarray(list(summary.counts)))]


# ------------------------------------------------------------ 3. split, 4. fit, 5. transform


def _hash_class(path: Path, target: str, seed: int, classes: list[Any]) -> tuple:
    """A worker's task: the part's row hashes and class indices (kept on the worker)."""
    frame = read_part(path).rename(columns={target: TARGET})
    return hash_split.row_hashes(frame, seed), hash_split.class_index(frame[TARGET], classes)


def _apply(per_part: Callable, pair: tuple) -> Any:
    return per_part(*pair)


def _split_counts(
    hashes: np.ndarray, klass: np.ndarray, cuts: hash_split.Cuts, n_classes: int
) -> np.ndarray:
    """(classes, splits) row counts of a part, splits in :data:`hash_split.SPLITS` order."""
    split = hash_split.assign(hashes, klass, cuts)
    return np.bincount(klass * 3 + split, minlength=3 * n_classes).reshape(n_classes, 3)


def _split_rows(
    path: Path, offset: int, target: str, pair: tuple, cuts: hash_split.Cuts, name: str
) -> pd.DataFrame:
    """A part's rows of one split, the target renamed, labelled by table row number."""
    frame = _read(path, offset).rename(columns={target: TARGET})
    split = hash_split.assign(*pair, cuts)
    return frame[split == hash_split.SPLITS.index(name)]


def _on_train_rows(
    task: Callable, path: Path, offset: int, target: str, pair: tuple, cuts: hash_split.Cuts,
    *args: Any,
) -> Any:  # fmt: skip
    """A worker's task: ``task`` on the part's train rows."""
    return task(_split_rows(path, offset, target, pair, cuts, "train"), *args)


def _train_profiles(frame: pd.DataFrame) -> dict[str, Profile]:
    return {n: preprocess.profile(frame[n]) for n in preprocess.feature_columns(frame)}


def _category_counts(frame: pd.DataFrame, names: list[str]) -> dict[str, Counter]:
    return {
        n: Counter(preprocess.as_kind(frame[n], CATEGORICAL).value_counts().to_dict())
        for n in names
    }


def _numeric_keys(frame: pd.DataFrame, names: list[str], per_part: Callable) -> Any:
    matrix = np.column_stack(
        [preprocess.as_kind(frame[n], NUMERIC).to_numpy(np.float64) for n in names]
    ) if names else np.empty((len(frame), 0))  # fmt: skip
    return per_part(*order_stats.column_keys(matrix))


def _encoded_moments(frame: pd.DataFrame, columns: list[Column], missing: str) -> dict[str, tuple]:
    """A part's encoded train columns: (moments about the shift, min, max) each."""
    encoded, _, _ = preprocess.encode(columns, frame, missing)
    shifts = {c.name: c.fill for c in columns if c.kind == NUMERIC}
    return {
        name: (
            moments.moments(values[:, None], shifts.get(name, 0.0)),
            values.min() if len(values) else np.inf,
            values.max() if len(values) else -np.inf,
        )
        for name, values in encoded.items()
    }


def _write_split_parts(
    path: Path,
    offset: int,
    target: str,
    pair: tuple,
    cuts: hash_split.Cuts,
    prep: Preprocessing,
    folders: dict[str, Path],
    index: int,
) -> dict[str, Counter]:
    """A worker's task: the part's rows of each split, transformed, as part ``index``."""
    frame = _read(path, offset).rename(columns={target: TARGET})
    split = hash_split.assign(*pair, cuts)
    counts = {}
    for name in SPLITS:
        rows = frame[split == hash_split.SPLITS.index(name)]
        out = preprocess.transform(prep, rows).reset_index(drop=True)
        if len(out):
            write_table(out, folders[name] / PART.format(index))
        counts[name] = Counter(out[TARGET].value_counts().to_dict())
    return counts


def split_fit_transform(
    client: Any,
    parts: list[Path],
    offsets: np.ndarray,
    target: str,
    classes: list[Any],
    options: Mapping[str, Any],
    out_dir: Path,
    categorical: list[str],
) -> tuple[Preprocessing, dict[str, Any]]:
    """Steps 3-5 over the raw parts; writes ``<out_dir>/{train,val,test}.parquet`` folders."""
    val_size, test_size = options["val_size"], options["test_size"]
    missing, seed = options["missing"], options["seed"]
    preprocess.check_missing(missing)
    pairs = [submit(client, _hash_class, p, target, seed, classes) for p in parts]

    def gather(per_part: Callable) -> list[Any]:
        return results(client, [submit(client, _apply, per_part, h) for h in pairs])

    hint = hash_split.too_small_hint(val_size, test_size)
    sizes = sum(gather(partial(_class_sizes, n_classes=len(classes))))
    if sizes.min() < len(SPLITS):
        raise UserError(
            f"split too small to hold every class: class {classes[int(sizes.argmin())]!r} has "
            f"{sizes.min()} row(s), but train, val and test each need one; {hint}"
        )
    cuts = hash_split.find_cuts(gather, len(classes), val_size, test_size)
    per_split = sum(gather(partial(_split_counts, cuts=cuts, n_classes=len(classes))))
    check_split_classes(
        {name: per_split[:, hash_split.SPLITS.index(name)] for name in SPLITS}, classes, hint
    )

    def on_train(task: Callable, *args: Any) -> list[Any]:
        return results(
            client,
            [
                submit(client, _on_train_rows, task, p, int(o), target, h, cuts, *args)
                for p, o, h in zip(parts, offsets, pairs, strict=True)
            ],
        )

    prep = fit_on_parts(on_train, missing, categorical)
    staging = {
        name: Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=_made(out_dir)))
        for name in SPLITS
    }
    try:
        written = results(
            client,
            [
                submit(client, _write_split_parts, p, int(o), target, h, cuts, prep, staging, i)
                for i, (p, o, h) in enumerate(zip(parts, offsets, pairs, strict=True))
            ],
        )
        counts = {name: sum((w[name] for w in written), Counter()) for name in SPLITS}
        if missing == "drop":
            rows = {name: np.array([counts[name][c] for c in classes]) for name in SPLITS}
            hint = "prepare.missing=drop removed too many rows; use prepare.missing=impute"
            check_split_classes(rows, classes, hint)
        prep.classes = classes
        if len(classes) == 2:
            train = np.array([counts["train"][c] for c in classes])
            prep.positive_class = classes[int(np.flatnonzero(train == train.min())[-1])]
        raw = {
            "rows": int(offsets[-1]) + part_rows(parts[-1]),
            "columns": len(part_columns(parts[0])) - 1,
        }
        report: dict[str, Any] = {"raw": raw}
        for name in SPLITS:
            renumber(staging[name])
            report[name] = {
                "rows": sum(counts[name].values()),
                "features": len(prep.features),
                "classes": {str(c): int(counts[name][c]) for c in classes},
            }
        for name in SPLITS:
            replace_path(staging[name], out_dir / f"{name}.parquet")
    finally:
        for folder in staging.values():
            shutil.rmtree(folder, ignore_errors=True)
    return prep, report


def _class_sizes(hashes: np.ndarray, klass: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(klass, minlength=n_classes)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def check_split_classes(rows: dict[str, np.ndarray], classes: list[Any], hint: str) -> None:
    """A UserError if a split (its rows per class, in ``classes`` order) misses a class."""
    for name, per_class in rows.items():
        absent = [str(c) for c, n in zip(classes, per_class, strict=True) if n == 0]
        if absent:
            raise UserError(
                f"split too small to hold every class: the {name} split ({int(per_class.sum())} "
                f"rows) has no row of class(es) {sorted(absent)}; {hint}"
            )


def fit_on_parts(
    on_train: Callable[..., list[Any]], missing: str, categorical: list[str]
) -> Preprocessing:
    """:func:`logreg.preprocess.fit` over the train parts that ``on_train`` maps a task on."""
    profiles = merge_profiles(on_train(_train_profiles))
    kinds = preprocess.column_kinds(profiles, "the train split", categorical)
    if not kinds:
        raise UserError("no feature columns besides the target")
    numeric = [n for n, k in kinds.items() if k == NUMERIC]
    texts = [n for n, k in kinds.items() if k == CATEGORICAL]
    counts = reduce(lambda a, b: {n: a[n] + b[n] for n in texts}, on_train(_category_counts, texts))

    def gather(per_part: Callable) -> list[Any]:
        return on_train(_numeric_keys, numeric, per_part)

    medians = dict(zip(numeric, order_stats.medians(gather, len(numeric)), strict=True))
    columns = [
        Column(n, NUMERIC, float(medians[n]))
        if k == NUMERIC
        else preprocess.categorical_column(n, dict(counts[n]))
        for n, k in kinds.items()
    ]
    found = on_train(_encoded_moments, columns, missing)
    stats = {}
    shifts = {c.name: c.fill for c in columns if c.kind == NUMERIC}
    for name in found[0]:
        summaries = [part[name] for part in found]
        mean, std = moments.mean_std([s[0] for s in summaries], shifts.get(name, 0.0))
        n = sum(s[0].n for s in summaries)
        if n:
            lo, hi = min(s[1] for s in summaries), max(s[2] for s in summaries)
            stats[name] = Stats(n, float(mean[0]), float(std[0]), lo, hi)
    return preprocess.fitted(missing, columns, stats)
