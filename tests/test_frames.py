"""Splits as arrays: C-ordered features in the working dtype, and no second full-size copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT, feature_matrix, read_split, split_head, write_table

ROWS, COLUMNS = 60_000, 40
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A split of ROWS x COLUMNS float features (written in several row groups), target, weights."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.normal(size=(ROWS, COLUMNS)), columns=[f"x{j}" for j in range(COLUMNS)]
    )
    frame[TARGET] = rng.choice(["No", "Yes"], ROWS)
    frame[WEIGHT] = rng.uniform(0.5, 2.0, ROWS)
    path = tmp_path_factory.mktemp("split") / "train.parquet"
    frame.to_parquet(path, index=False, row_group_size=ROWS // 7)
    return frame, path


# Measures table_split on a table already read, in a fresh process: NumPy allocations by
# tracemalloc, Arrow's (a pandas frame made by to_pandas lives there) by a proxy pool
# set as Arrow's default for the conversion only. The process exits without freeing,
# as buffers of the proxy pool must not outlive it.
CONVERSION = """
import json, os, sys, tracemalloc
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from logreg.frames import table_split
table = pq.read_table(sys.argv[1])
proxy = pa.proxy_memory_pool(pa.default_memory_pool())
pa.set_memory_pool(proxy)
tracemalloc.start()
split = table_split(table, np.dtype(sys.argv[2]))
_, traced = tracemalloc.get_traced_memory()
out = split.X.nbytes + split.y.nbytes + split.sample_weight.nbytes
print(json.dumps({"peak_over_output": (traced + proxy.max_memory()) / out,
                  "c_ordered": split.X.flags["C_CONTIGUOUS"], "dtype": str(split.X.dtype)}))
sys.stdout.flush()
os._exit(0)
"""


def measure(script: str, *args: str) -> dict:
    """What ``script`` prints as JSON, run in a fresh process on this checkout's code."""
    completed = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_conversion_allocates_little_beyond_the_arrays_it_returns(table, dtype):
    """X, the labels (pointers to one string per class) and the weights, and ~nothing else."""
    _, path = table
    measured = measure(CONVERSION, str(path), dtype)
    assert measured["c_ordered"] and measured["dtype"] == dtype
    assert measured["peak_over_output"] <= 1.1, measured


FRAME_CONVERSION = """
import json, os, sys, tracemalloc
import numpy as np, pandas as pd, pyarrow as pa
from logreg.frames import frame_split, table_split
read = pd.read_parquet(sys.argv[1])
names = [c for c in read.columns if c not in ("target", "sample_weight")]
# As crossval builds a fold: a frame over a C-ordered array, so its columns are strided.
frame = pd.DataFrame(np.ascontiguousarray(read[names].to_numpy()), columns=names, copy=False)
frame["target"], frame["sample_weight"] = read["target"].to_numpy(), read["sample_weight"]
proxy = pa.proxy_memory_pool(pa.default_memory_pool())
pa.set_memory_pool(proxy)
tracemalloc.start()
split = frame_split(frame)
peak = tracemalloc.get_traced_memory()[1] + proxy.max_memory()
tracemalloc.stop()
out = split.X.nbytes + split.y.nbytes + split.sample_weight.nbytes
through_arrow = table_split(pa.Table.from_pandas(frame, preserve_index=False))
same = all(np.array_equal(getattr(split, k), getattr(through_arrow, k))
           for k in ("X", "y", "sample_weight"))
print(json.dumps({"peak_over_output": peak / out, "same": same,
                  "names": split.feature_names == through_arrow.feature_names,
                  "c_ordered": split.X.flags["C_CONTIGUOUS"]}))
sys.stdout.flush()
os._exit(0)
"""


def test_a_frame_becomes_the_split_arrow_gives_without_a_copy_of_the_frame(table):
    """As through an Arrow table, but no table (a copy of the frame's strided columns):
    X, the labels' strings and the weights, and little else."""
    _, path = table
    measured = measure(FRAME_CONVERSION, str(path))
    assert measured["same"] and measured["names"] and measured["c_ordered"]
    assert measured["peak_over_output"] <= 1.3, measured  # through Arrow: 2x and more


# Arrow's peak while read_split reads a file, in a fresh process (a proxy pool as Arrow's
# default from the start), and what it returns.
READ = """
import json, os, sys
import numpy as np, pyarrow as pa
proxy = pa.proxy_memory_pool(pa.default_memory_pool())
pa.set_memory_pool(proxy)
from logreg.frames import read_split
split = read_split(sys.argv[1], np.dtype(sys.argv[2]))
np.save(sys.argv[3], split.X)
print(json.dumps({"arrow_peak": proxy.max_memory(), "c_ordered": split.X.flags["C_CONTIGUOUS"],
                  "y": split.y.tolist(), "w": split.sample_weight.tolist()}))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_split_file_is_streamed_into_x_so_arrow_holds_no_copy_of_the_table(tmp_path, dtype):
    """Twice the rows, about the same Arrow peak: a batch at a time, not the whole table
    (reading the table first held it all: twice the peak for twice the rows). X, the
    labels and the weights are what pandas reads from the file."""
    rng = np.random.default_rng(1)
    peaks = []
    for rows in (100_000, 200_000):
        frame = pd.DataFrame(rng.normal(size=(rows, 40)), columns=[f"x{j}" for j in range(40)])
        frame[TARGET] = rng.choice(["No", "Yes"], rows)
        frame[WEIGHT] = rng.uniform(0.5, 2.0, rows)
        path = tmp_path / f"{rows}.parquet"
        write_table(frame, path)
        measured = measure(READ, str(path), dtype, str(tmp_path / "X.npy"))
        expected = pd.read_parquet(path)
        X = np.load(tmp_path / "X.npy")
        assert measured["c_ordered"] and X.dtype == dtype
        np.testing.assert_array_equal(X, expected.drop(columns=[TARGET, WEIGHT]).to_numpy(dtype))
        assert measured["y"] == expected[TARGET].tolist()
        assert measured["w"] == expected[WEIGHT].tolist()
        peaks.append(measured["arrow_peak"])
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_feature_matrix_fills_rows_across_blocks_and_checks_the_count():
    first = [np.arange(3.0), np.arange(10.0, 13.0)]
    second = [np.arange(3.0, 5.0), np.arange(13.0, 15.0)]
    X = feature_matrix([first, second], 5, 2)
    assert X.flags["C_CONTIGUOUS"]
    assert X.tolist() == [[0, 10], [1, 11], [2, 12], [3, 13], [4, 14]]
    with pytest.raises(ValueError, match="hold 3 rows, not 5"):
        feature_matrix([first], 5, 2)


def test_a_split_without_a_target_or_file_is_a_user_error(tmp_path):
    write_table(pd.DataFrame({"x": [1.0, 2.0]}), tmp_path / "no_target.parquet")
    with pytest.raises(UserError, match=r"no_target\.parquet: missing the 'target' column"):
        read_split(tmp_path / "no_target.parquet")
    with pytest.raises(UserError, match=r"absent\.parquet: file not found"):
        read_split(tmp_path / "absent.parquet")


def test_a_partition_folder_reads_as_the_one_file_of_its_rows(tmp_path):
    """engine=dask writes a split as part-*.parquet files; every reader takes either."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame[TARGET], frame[WEIGHT] = rng.integers(0, 2, 300), rng.uniform(0.5, 2, 300)
    write_table(frame, tmp_path / "whole.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    for index, start in enumerate((0, 120, 250)):  # parts of unequal sizes, in row order
        write_table(
            frame.iloc[start : start + (120, 130, 50)[index]], folder / f"part-{index:05d}.parquet"
        )
    whole, parts = read_split(tmp_path / "whole.parquet"), read_split(folder)
    np.testing.assert_array_equal(parts.X, whole.X)
    np.testing.assert_array_equal(parts.X, frame[["a", "b"]].to_numpy())
    np.testing.assert_array_equal(parts.y, frame[TARGET].to_numpy())
    np.testing.assert_array_equal(parts.sample_weight, frame[WEIGHT].to_numpy())
    (folder / "part-00001.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match=r"part-00001\.parquet: not a readable Parquet file"):
        read_split(folder)


def test_a_splits_head_and_shape_come_from_its_first_part_and_the_footers(tmp_path):
    """What a run logs of a split on disk (engine=dask): to_frame's first rows, the full shape."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    frame[TARGET] = rng.choice(["no", "yes"], 300)
    frame[WEIGHT] = rng.uniform(0.5, 2, 300)
    write_table(frame, tmp_path / "whole.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    for index, (start, stop) in enumerate(((0, 120), (120, 250), (250, 300))):
        write_table(frame.iloc[start:stop], folder / f"part-{index:05d}.parquet")

    head, shape = split_head(folder, 100, np.float32)
    expected = frame[["a", "b", TARGET]].head(100).astype({"a": np.float32, "b": np.float32})
    pd.testing.assert_frame_equal(head, expected)  # the weight is not a column of the frame
    assert shape == (300, 3)
    whole_head, whole_shape = split_head(tmp_path / "whole.parquet", 100, np.float32)
    pd.testing.assert_frame_equal(whole_head, head)
    assert whole_shape == shape == read_split(tmp_path / "whole.parquet").to_frame().shape
    head, shape = split_head(folder, 1000)  # the first part's rows only
    pd.testing.assert_frame_equal(head, frame[["a", "b", TARGET]].head(120))
    assert shape == (300, 3)
