"""The table contract between stages.

Prepared and rebalanced splits are Parquet tables of standardised float feature
columns plus two reserved columns: ``target`` (the original class labels) and, in
the rebalanced training split, ``sample_weight`` (ones unless the ``class_weight``
strategy set them). Every stage reads and writes tables through this module.

:func:`read_split` hands the estimator its features as it works fastest on them: one
C-ordered (row-major) array in the working dtype, filled straight from the table's
columns (:func:`feature_matrix`), with no second full-size copy on the way.
A frame's ``to_numpy()`` would give a Fortran-ordered array, whose rows the estimator's
shuffled copy gathers many times slower.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from logreg.errors import UserError
from logreg.io import atomic_path

TARGET = "target"
WEIGHT = "sample_weight"
RESERVED = (TARGET, WEIGHT)
DICTIONARY_PAGE_BYTES = 1 << 16  # Parquet: past this, a column is written plain (write_table)
# Reading a table costs about its own size in memory, not two or three times it: Arrow
# reads each column chunk when it decodes it instead of buffering the file ahead (which
# also ran faster here), and pandas takes over the columns one by one, each freed from
# Arrow as it goes, instead of copying them all into one block.
LEAN_READ = {"pre_buffer": False}
# A split's features are streamed instead (read_split): Arrow reads each column chunk
# through a 1 MB buffer and decodes STREAM_ROWS rows at a time into buffers it reuses,
# so X is the only full-size allocation. Measured on a 1.2M x 50 split: half the CPU of
# reading the whole table first (fewer fresh pages to fault in) and 470 MB less peak.
STREAM_READ = {"pre_buffer": False, "buffer_size": 1 << 20}
STREAM_ROWS = 1 << 16
LEAN_FRAME = {"split_blocks": True, "self_destruct": True}
ROWS_PER_BLOCK = 4096  # rows filled at a time: a block of a 50-column float64 matrix fits in cache
# Rows per Parquet row group (pyarrow's default), each converted from pandas on its own:
# Arrow then holds one group's copy of the frame at a time, not the whole frame's.
ROWS_PER_GROUP = 1 << 20


@dataclass(frozen=True)
class Split:
    """One split as arrays: ``X`` (n, d) float, ``y`` (n,) labels, ``sample_weight`` (n,)."""

    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray
    feature_names: list[str]

    def to_frame(self) -> pd.DataFrame:
        """The features (a view of ``X``, not a copy) and ``target`` as a table."""
        frame = pd.DataFrame(self.X, columns=self.feature_names, copy=False)
        frame[TARGET] = self.y
        return frame


def plain_label(label: Any) -> Any:
    """A NumPy scalar label as its Python value, so it reads 1 (not np.int64(1)) and serialises."""
    return label.item() if isinstance(label, np.generic) else label


def class_counts(y: Any) -> dict[str, int]:
    """Rows per class, keyed by the label as text, in label order (for reports)."""
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    return {str(plain_label(label)): int(n) for label, n in zip(labels, counts, strict=True)}


def minority_class(y: Any) -> Any:
    """The least frequent label (ties go to the label that sorts last): the positive class."""
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    return plain_label(labels[counts == counts.min()][-1])


@contextlib.contextmanager
def reading_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Reading errors as one UserError line naming the file."""
    try:
        yield
    except UserError:  # already one line naming the file
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run the earlier pipeline stages first)") from None
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


PART = "part-{:05d}.parquet"  # a partition of a table written by the dask engine


def part_paths(path: str | os.PathLike[str]) -> list[Path]:
    """The files of a table: the file itself, or a partition folder's parts in row order."""
    path = Path(path)
    if path.is_dir():
        parts = sorted(path.glob("part-*.parquet"))
        if not parts:
            raise UserError(f"{path}: a folder without partitions (part-*.parquet)")
        return parts
    if not path.exists():
        raise UserError(f"{path}: file not found (run the earlier pipeline stages first)")
    return [path]


def part_rows(path: str | os.PathLike[str]) -> int:
    """A part's row count, from its footer: no data read."""
    with reading_errors(path):
        return int(pq.ParquetFile(path).metadata.num_rows)


def split_head(
    path: str | os.PathLike[str], rows: int, dtype: Any = np.float64
) -> tuple[pd.DataFrame, tuple[int, int]]:
    """A split's first ``rows`` rows as :meth:`Split.to_frame` gives them, and the shape
    of the whole split's frame, without reading the split.

    The rows come from the first part's first row group(s) (fewer when that part is
    shorter); the row count from every part's footer. What a run logs of a split that
    is not in memory (an MLflow dataset: its schema from the head, its size).
    """
    parts = part_paths(path)
    with reading_errors(parts[0]):
        first = pq.ParquetFile(parts[0])
        batch = next(first.iter_batches(batch_size=max(rows, 1)), None)
        table = (
            first.schema_arrow.empty_table() if batch is None else pa.Table.from_batches([batch])
        )
    head = table_split(table.slice(0, rows), dtype, source=str(parts[0])).to_frame()
    return head, (sum(part_rows(part) for part in parts), head.shape[1])


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The table as a frame, one block per column (see :data:`LEAN_READ`)."""
    with reading_errors(path):
        return pd.read_parquet(path, **LEAN_READ, to_pandas_kwargs=LEAN_FRAME)


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """The frame as Parquet, one row group at a time; a column with many distinct values
    skips dictionary encoding.

    Arrow tries a dictionary for every column and gives up once the dictionary page
    passes ``dictionary_pagesize_limit``; with its 1 MB default, continuous floats cost
    five times the write for a larger file. 64 kB keeps dictionaries for codes, one-hot
    and label columns (up to 8,192 distinct doubles). Each :data:`ROWS_PER_GROUP` rows
    are converted and written before the next (the same file as ``to_parquet``'s).
    """
    with atomic_path(path) as tmp:
        writer = None
        try:
            for start in range(0, max(len(frame), 1), ROWS_PER_GROUP):
                rows = frame.iloc[start : start + ROWS_PER_GROUP]
                table = pa.Table.from_pandas(rows, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(
                        tmp, table.schema, dictionary_pagesize_limit=DICTIONARY_PAGE_BYTES
                    )
                writer.write_table(table)
                del table  # before the next group's copy
        finally:
            if writer is not None:
                writer.close()
    pa.default_memory_pool().release_unused()  # give the groups' buffers back to the system


def feature_matrix(
    blocks: Iterable[Sequence[Any]], n_rows: int, n_columns: int, dtype: Any = np.float64
) -> np.ndarray:
    """The (n_rows, n_columns) C-ordered array in ``dtype`` whose columns are the given ones.

    ``blocks`` yields consecutive runs of rows, each as its d columns (1-D arrays of one
    length): a table's record batches, or a whole frame as one run. Rows are written
    :data:`ROWS_PER_BLOCK` at a time, so each block of the output stays in cache while its
    columns are scattered into it; the only full-size allocation is the output.
    """
    X = np.empty((n_rows, n_columns), dtype=dtype)
    if n_columns == 0:
        return X
    start = 0
    for columns in blocks:
        length = len(columns[0])
        for offset in range(0, length, ROWS_PER_BLOCK):
            stop = min(offset + ROWS_PER_BLOCK, length)
            rows = X[start + offset : start + stop]
            for j, column in enumerate(columns):
                rows[:, j] = column[offset:stop]
        start += length
    if start != n_rows:
        raise ValueError(f"the blocks hold {start} rows, not {n_rows}")
    return X


def read_split(path: str | os.PathLike[str], dtype: Any = np.float64) -> Split:
    """A split, a file or a partition folder, as arrays, ``X`` C-ordered in ``dtype``, as
    :func:`table_split` gives it, but with the features streamed into ``X``
    (:data:`STREAM_READ`), part after part."""
    with contextlib.ExitStack() as opened, reading_errors(path):
        files = [opened.enter_context(_open_parquet(part)) for part in part_paths(path)]
        columns = files[0].schema_arrow.names
        if TARGET not in columns:
            raise UserError(f"{path}: missing the '{TARGET}' column")
        features = [c for c in columns if c not in RESERVED]
        batches = (b for f in files for b in f.iter_batches(STREAM_ROWS, columns=features))
        blocks = ([column.to_numpy(zero_copy_only=False) for column in b.columns] for b in batches)
        n_rows = sum(f.metadata.num_rows for f in files)
        X = feature_matrix(blocks, n_rows, len(features), dtype)
        label_columns = [c for c in RESERVED if c in columns]
        labels = pa.concat_tables([f.read(columns=label_columns) for f in files])
    split = Split(X, _labels(labels.column(TARGET)), _weights(labels), features)
    del labels
    # Arrow's allocator keeps freed pages for reuse. Nothing here reuses them, so they
    # go back to the system now, not after the fit.
    pa.default_memory_pool().release_unused()
    return split


def _open_parquet(path: Path) -> pq.ParquetFile:
    with reading_errors(path):  # a corrupt part is named, not its folder
        return pq.ParquetFile(path, **STREAM_READ)


def table_split(table: Any, dtype: Any = np.float64, source: str = "table") -> Split:
    """A split from an Arrow table: features, labels, weights (ones when absent).

    The feature columns go from Arrow's buffers into ``X`` with no pandas frame
    between: ``X`` is the only full-size allocation.
    """
    if TARGET not in table.column_names:
        raise UserError(f"{source}: missing the '{TARGET}' column")
    feature_names = [c for c in table.column_names if c not in RESERVED]
    features = table.select(feature_names)
    blocks = (
        [column.to_numpy(zero_copy_only=False) for column in batch.columns]
        for batch in features.to_batches()
    )
    return Split(
        X=feature_matrix(blocks, table.num_rows, len(feature_names), dtype),
        y=_labels(table.column(TARGET)),
        sample_weight=_weights(table),
        feature_names=feature_names,
    )


def _weights(table: Any) -> np.ndarray:
    """The table's ``sample_weight`` column as float64; ones when it has none."""
    if WEIGHT in table.column_names:
        return table.column(WEIGHT).to_numpy().astype(np.float64, copy=False)
    return np.ones(table.num_rows, dtype=np.float64)


def frame_split(frame: pd.DataFrame, dtype: Any = np.float64, source: str = "table") -> Split:
    """A split from a pandas frame (a rebalanced fold, a table read whole), as
    :func:`table_split` gives it, with ``X`` filled straight from the frame's columns.

    No Arrow copy of the frame on the way: at 1.3M rows a cross-validation fold's
    table would be 500 MB more, beside the frame and ``X``.
    """
    if TARGET not in frame.columns:
        raise UserError(f"{source}: missing the '{TARGET}' column")
    names = [name for name in frame.columns if name not in RESERVED]
    columns = [frame[name].to_numpy() for name in names]
    weights = (
        frame[WEIGHT].to_numpy(dtype=np.float64)
        if WEIGHT in frame.columns
        else np.ones(len(frame), dtype=np.float64)
    )
    return Split(
        X=feature_matrix([columns], len(frame), len(names), dtype),
        y=frame[TARGET].to_numpy(),
        sample_weight=weights,
        feature_names=[str(name) for name in names],
    )


def _labels(column: Any) -> np.ndarray:
    """The label column as pandas gives it; text goes through a dictionary, so the array
    points at one string per class instead of one per row (which would outweigh X)."""
    if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)) and (
        column.null_count == 0
    ):
        encoded = column.combine_chunks().dictionary_encode()
        labels = encoded.dictionary.to_numpy(zero_copy_only=False)
        return labels[encoded.indices.to_numpy(zero_copy_only=False)]
    return column.to_pandas().to_numpy()
