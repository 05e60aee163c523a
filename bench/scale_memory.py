"""Benchmark: the Dask pipeline's peak memory at N and 4N rows; it should not grow with N.

Run from the project root:

    python bench/scale_memory.py                    # 1 GB and 4 GB of features (N=1,250,000 x 100)
    python bench/scale_memory.py --quick            # N=20,000 x 10: checks that it runs
    python bench/scale_memory.py --n 500000 --d 50 --epochs 3
    python bench/scale_memory.py --watch -- python -m logreg.run engine=dask ...   # any command

For N and 4N rows, in a temporary workspace each, it composes ``data=synthetic
data.n_samples=… data.n_features=D evaluate.baseline=false mlflow.enabled=false
engine=dask`` with 2 workers at ``engine.memory_limit=1GB`` (``--partition-rows`` per
partition) and runs prepare, rebalance, train and evaluate as ``dvc repro`` does, one
subprocess each (``bench/pipeline.py``'s helpers). While a stage runs, a thread sums the
resident memory (RSS) of the stage's process (the driver, with the LocalCluster's
scheduler) and of every process under it (the Dask workers) every 50 ms: the largest
sum is the stage's peak. A sum of RSS counts shared library pages once per
process, so it errs high. Pages of the row cache that a task has memory-mapped count
too, while it maps them.

It prints, per stage and N, the wall time and that peak, the largest single process's
peak (the stage's ``ru_maxrss``, which covers the workers it waited for), the peak's
ratio 4N/N and ``met?``: the peak at 4N stays under 2.5 GB (:data:`GOAL_PEAK`) and
grows at most 25 % from N to 4N (:data:`GOAL_GROWTH`). Training runs ``--epochs``
epochs: each epoch reads the same rows, so more epochs take more time, not more memory.
The machine (CPUs, RAM, load) is printed first: on a shared machine, read the load
average next to the times.

``--watch -- COMMAND`` runs any command instead and prints its wall time and the peak
RSS of its process tree, sampled the same way (the README's run larger than its memory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# bench/pipeline.py runs a stage as dvc repro does; this script measures the same runs.
import pipeline as bench_pipeline
from logreg.io import write_text
from logreg.params import compose, render
from scale import SAMPLE_S, PeakRSS  # sampling the stage process tree

ROOT = bench_pipeline.ROOT
STAGES = bench_pipeline.STAGES
GOAL_PEAK = 2.5e9  # bytes: the whole process tree's peak at 4N (the "2.5 GB")
GOAL_GROWTH = 1.25  # peak at 4N / peak at N: "does not grow with N", with room for noise
WORKERS, MEMORY_LIMIT = 2, "1GB"
GB = 1e9


def overrides(n: int, d: int, epochs: int, partition_rows: int, folder: Path) -> list[str]:
    """The config of one measured run: the brief's pipeline on a 2-worker LocalCluster."""
    return [
        "data=synthetic",
        f"data.n_samples={n}",
        f"data.n_features={d}",
        "evaluate.baseline=false",
        "mlflow.enabled=false",
        f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}",
        "engine=dask",
        f"engine.n_workers={WORKERS}",
        f"engine.memory_limit={MEMORY_LIMIT}",
        f"engine.partition_rows={partition_rows}",
        f"train.epochs={epochs}",
    ]


def measure(n: int, d: int, epochs: int, partition_rows: int, root: Path) -> dict[str, Any]:
    """Each stage of one run of N rows: wall seconds, the tree's peak RSS, one process's."""
    folder = root / f"n{n}"
    folder.mkdir()
    settings = overrides(n, d, epochs, partition_rows, folder)
    write_text(folder / "params.yaml", render(compose(ROOT / "conf", settings)))
    stages = {}
    for name in STAGES:
        with PeakRSS(include_self=False) as tree:
            run = bench_pipeline.run_stage(name, folder)
        stages[name] = {"seconds": run["seconds"], "tree": tree.peak, "one": run["rss"]}
        print(
            f"  N={n:,} {name}: {run['seconds']:.1f} s, peak {tree.peak / GB:.2f} GB "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        fitted = [line for line in run["stderr"].splitlines() if line.startswith("train: ")]
        print("".join(f"    {line}\n" for line in fitted), end="")  # epochs and their seconds
    return stages


def met(peak_4n: float, growth: float) -> str:
    return "yes" if peak_4n <= GOAL_PEAK and growth <= GOAL_GROWTH else "NO"


def print_table(n: int, d: int, runs: dict[int, dict[str, Any]]) -> None:
    """Per stage: time and peaks at N and 4N, the peak's ratio 4N/N, and the goal."""
    big = 4 * n
    print(
        f"\n== peak RSS of the process tree (driver + scheduler + {WORKERS} workers at "
        f"{MEMORY_LIMIT}); features {n * d * 8 / GB:.2f} GB at N, {big * d * 8 / GB:.2f} GB at 4N"
    )
    print(
        f"{'stage':<10} {'N s':>7} {'4N s':>7} | {'N peak':>7} {'4N peak':>7} {'4N/N':>5} | "
        f"{'1 proc N':>8} {'1 proc 4N':>9} | {'goal':>16} {'met?':>4}"
    )
    goal = f"<={GOAL_PEAK / GB:g}GB, <={GOAL_GROWTH:g}x"
    for name in STAGES:
        small, large = runs[n][name], runs[big][name]
        growth = large["tree"] / small["tree"]
        print(
            f"{name:<10} {small['seconds']:>7.1f} {large['seconds']:>7.1f} | "
            f"{small['tree'] / GB:>5.2f}GB {large['tree'] / GB:>5.2f}GB {growth:>4.2f}x | "
            f"{small['one'] / GB:>6.2f}GB {large['one'] / GB:>7.2f}GB | "
            f"{goal:>16} {met(large['tree'], growth):>4}"
        )
    peak = {size: max(stage["tree"] for stage in runs[size].values()) for size in (n, big)}
    growth = peak[big] / peak[n]
    print(
        f"{'pipeline':<10} {'':>7} {'':>7} | {peak[n] / GB:>5.2f}GB {peak[big] / GB:>5.2f}GB "
        f"{growth:>4.2f}x | {'':>8} {'':>9} | {goal:>16} {met(peak[big], growth):>4}"
    )


def watch(command: Sequence[str]) -> int:
    """Run ``command``; print its wall time and its process tree's peak RSS; its exit code."""
    started = time.perf_counter()
    with PeakRSS(include_self=False) as tree:
        code = subprocess.run(command).returncode
    print(
        f"watched: {time.perf_counter() - started:.1f} s, peak RSS of the process tree "
        f"{tree.peak / GB:.2f} GB, exit code {code}, load {os.getloadavg()[0]:.1f}"
    )
    return code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_250_000, help="rows at N (4N is the other)")
    parser.add_argument("--d", type=int, default=100, help="float64 features")
    parser.add_argument("--epochs", type=int, default=2, help="SGD epochs the train stage runs")
    parser.add_argument("--partition-rows", type=int, default=100_000, help="engine.partition_rows")
    parser.add_argument("--quick", action="store_true", help="N=20,000, D=10: a smoke run")
    parser.add_argument("--watch", action="store_true", help="run COMMAND, print its peak")
    parser.add_argument("command", nargs="*", help="with --watch, after --: the command to run")
    args = parser.parse_args(argv)
    if args.watch != bool(args.command):
        parser.error("--watch and a command after -- go together")
    if args.watch:
        raise SystemExit(watch(args.command))
    n, d, partition_rows = (
        (20_000, 10, 10_000) if args.quick else (args.n, args.d, args.partition_rows)
    )

    print("== machine")
    for key, value in bench_pipeline.machine().items():
        print(f"{key:>8}: {value}")
    print(
        f"== config: N={n:,} and 4N={4 * n:,} rows x D={d}, engine.partition_rows="
        f"{partition_rows:,}, train.epochs={args.epochs}, sampled every {SAMPLE_S * 1000:.0f} ms"
    )
    runs = {}
    with tempfile.TemporaryDirectory(prefix="logreg-memory-") as tmp:
        for size in (n, 4 * n):
            runs[size] = measure(size, d, args.epochs, partition_rows, Path(tmp))
            shutil.rmtree(Path(tmp) / f"n{size}")  # 4N's data need not share the disk with N's
    print_table(n, d, runs)
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
