"""A partitioned table: parts in row order, read back as one table, replaced atomically."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logreg.engines.partitions import part_paths, part_rows, read_part, write_parts
from logreg.errors import UserError
from logreg.frames import read_split, read_table, write_table


def frame(rows: int, start: int = 0) -> pd.DataFrame:
    index = np.arange(start, start + rows)
    return pd.DataFrame({"x0": index * 0.5, "x1": -index.astype(float), "target": index % 2})


def test_parts_read_back_in_row_order_as_one_table(tmp_path):
    pieces = [frame(5, 0), frame(3, 5), frame(4, 8)]
    assert write_parts(iter(pieces), tmp_path / "train.parquet") == [5, 3, 4]
    parts = part_paths(tmp_path / "train.parquet")
    assert [p.name for p in parts] == [f"part-0000{i}.parquet" for i in range(3)]
    assert [part_rows(p) for p in parts] == [5, 3, 4]
    whole = pd.concat(pieces, ignore_index=True)
    pd.testing.assert_frame_equal(read_table(tmp_path / "train.parquet"), whole)
    split = read_split(tmp_path / "train.parquet")  # the numpy engine reads a folder too
    np.testing.assert_array_equal(split.X, whole[["x0", "x1"]].to_numpy())


def test_a_rewrite_replaces_the_old_parts_and_leaves_no_staging(tmp_path):
    target = tmp_path / "train.parquet"
    write_parts([frame(2), frame(2), frame(2)], target)
    write_parts([frame(6)], target)
    assert [p.name for p in part_paths(target)] == ["part-00000.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]
    write_table(frame(3), tmp_path / "one.parquet")  # a file becomes a folder, and back
    write_parts([frame(1)], tmp_path / "one.parquet")
    assert part_paths(tmp_path / "one.parquet")[0].name == "part-00000.parquet"


def test_an_interrupted_write_keeps_the_old_table(tmp_path):
    target = tmp_path / "train.parquet"
    write_parts([frame(4)], target)

    def failing():
        yield frame(2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_parts(failing(), target)
    assert len(read_table(target)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]


def test_a_corrupt_part_is_named(tmp_path):
    target = tmp_path / "train.parquet"
    write_parts([frame(4), frame(4)], target)
    bad = part_paths(target)[1]
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(UserError, match=r"part-00001\.parquet: not a readable Parquet file"):
        read_part(bad)
    with pytest.raises(UserError, match=r"part-00001\.parquet: not a readable Parquet file"):
        part_rows(bad)
    with pytest.raises(UserError, match="without partitions"):
        part_paths(tmp_path)
