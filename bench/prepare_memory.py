"""Benchmark: the peak memory of one Dask prepare task, per byte of its partition.

    python bench/prepare_memory.py                 # 200,000 rows × 20 numbers + 1 category
    python bench/prepare_memory.py --rows 50000    # quicker

``engine.partition_rows`` must fit a worker's ``engine.memory_limit``; the prepare stage
stops early when rows × columns × 8 bytes × ``MEMORY_FACTOR`` exceeds it
(:mod:`logreg.engines.dask_prepare`). This measures that factor: each per-partition
task of the stage runs alone in a fresh process, as on a worker, and the process's peak
resident memory above its resident memory just before the task (VmHWM − VmRSS, Linux)
is divided by the part's raw size (rows × columns × 8 bytes). It prints each task's
ratio and the largest, with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TASK = r"""
import pickle, sys
from pathlib import Path

from logreg import hash_split
from logreg.engines import dask_prepare as dp
from logreg.preprocess import Stats  # noqa: F401 (unpickling)


def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024


task, folder = sys.argv[1], Path(sys.argv[2])
prep, classes = pickle.loads((folder / "prep.pickle").read_bytes())
part = folder / "raw.parquet"
cuts = None
if task in ("transform", "train_moments"):
    pair = dp._hash_class(part, "y", 0, classes)
    cuts = hash_split.find_cuts(lambda f: [f(*pair)], len(classes), 0.2, 0.2)
else:
    pair = None
dp._hash_class(folder / "tiny.parquet", "y", 0, classes)  # libraries' first-use set-up
before = status("VmRSS:")
if task == "profile":
    dp._profile_raw(part, 0, "y")
elif task == "hash":
    pair = dp._hash_class(part, "y", 0, classes)
elif task == "train_moments":
    dp._on_train_rows(dp._encoded_moments, part, 0, "y", pair, cuts, prep.columns, "impute")
elif task == "transform":
    out = {n: folder / n for n in dp.SPLITS}
    for f in out.values():
        f.mkdir(exist_ok=True)
    dp._write_split_parts(part, 0, "y", pair, cuts, prep, out, 0)
print(status("VmHWM:") - before)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=20, help="numeric feature columns")
    args = parser.parse_args()

    import pickle

    from logreg import preprocess
    from logreg.frames import write_table

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.standard_normal((args.rows, args.columns)),
        columns=[f"x{j}" for j in range(args.columns)],
    )
    frame.loc[rng.random(args.rows) < 0.05, "x0"] = np.nan
    frame["region"] = rng.choice(["north", "south", "east", "west"], args.rows)
    frame["y"] = np.where(rng.random(args.rows) < 0.1, "yes", "no")
    n_columns = frame.shape[1]
    raw_bytes = args.rows * n_columns * 8
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_table(frame, folder / "raw.parquet")
        write_table(frame.head(50), folder / "tiny.parquet")
        prep = preprocess.fit(frame.drop(columns="y"))
        (folder / "prep.pickle").write_bytes(pickle.dumps((prep, ["no", "yes"])))
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        python = sys.version.split()[0]
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {python}")
        print(f"part: {args.rows} rows × {n_columns} columns = {raw_bytes / 2**20:.1f} MiB at 8 B")
        ratios = {}
        for task in ("profile", "hash", "train_moments", "transform"):
            done = subprocess.run(
                [sys.executable, "-c", TASK, task, str(folder)],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            peak = int(done.stdout.strip().splitlines()[-1])
            ratios[task] = peak / raw_bytes
            print(f"{task:>14}: peak +{peak / 2**20:7.1f} MiB = {ratios[task]:.2f} × the part")
        print(f"largest: {max(ratios.values()):.2f} × (MEMORY_FACTOR in dask_prepare.py)")


if __name__ == "__main__":
    main()
