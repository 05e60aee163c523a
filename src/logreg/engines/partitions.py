"""A table on disk as partitions: a folder of Parquet files, one per block of rows.

The numpy engine writes a split as one file (``data/prepared/train.parquet``); the dask
engine writes the same path as a folder of ``part-00000.parquet``, ``part-00001.parquet``,
... in row order, each at most ``engine.partition_rows`` rows. Arrow reads either as one
table, so a stage of one engine reads the other's output when it fits in memory, and DVC
tracks a folder as it tracks a file. A partition is what one Dask task reads, so a
worker's memory bounds a partition, never the table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from logreg.frames import PART, part_paths, part_rows, read_table, write_table

# part_paths and part_rows live with the readers (logreg.frames), which read a file or a
# folder alike.
__all__ = [
    "PART",
    "part_paths",
    "part_rows",
    "read_part",
    "replace_path",
    "staged_folder",
    "write_parts",
]


def read_part(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One part as a frame; a corrupt or truncated file is one line naming it."""
    return read_table(path)


def write_parts(frames: Iterable[pd.DataFrame], path: str | os.PathLike[str]) -> list[int]:
    """Each frame as the next part of the folder ``path``; the rows per part.

    The parts go to a temp folder beside ``path`` (:func:`staged_folder`), which
    replaces ``path`` only when every part is written: an interrupted write leaves the
    old table (or none), never a folder missing its last parts.
    """
    with staged_folder(path) as staging:
        sizes = []
        for i, frame in enumerate(frames):
            write_table(frame, staging / PART.format(i))
            sizes.append(len(frame))
    return sizes


@contextlib.contextmanager
def staged_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temp folder beside ``path`` to write parts into (from workers too: it is on the
    same file system); it replaces ``path`` when the block ends without an error."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o777 & ~_umask())
        replace_path(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_path(new: Path, target: Path) -> None:
    """Put ``new`` (a file or folder) at ``target``, whatever ``target`` was."""
    if target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        if new.is_dir() and target.exists():
            target.unlink()  # a file cannot be renamed over; the old table is gone either way
        os.replace(new, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
