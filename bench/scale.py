"""Benchmark: the same solvers on data that is not one in-memory array (issue 14).

    python bench/scale.py                       # N=2,000,000 × D=100, float32, 20 partitions
    python bench/scale.py --quick               # N=20,000 × D=20: checks that it runs
    python bench/scale.py --n 8000000 --keep /big/disk/scale   # data larger than memory

The data are written once, partition by partition (never held whole): Parquet files,
and the row-major block cache that an epoch should read (logreg.engines.memmap_rows).
Then, in one process and in interleaved rounds (each round times every measurement
once, so load from other processes hits all alike), it prints medians of:

- one gradient pass (Σ s·CE, Xᵀ S(P − Y)) over: the in-memory array (when it fits);
  the memory-mapped cache (page cache warm); the Parquet files decoded to row-major
  arrays (the floor of reading Parquet every pass); Dask partitions on a 2-worker
  LocalCluster (blocks read once by the workers, then kept);
- a whole Newton fit, in memory and on Dask, with its iterations; the answers compared:
  the optimum (max relative difference) and the Wald standard errors √diag(H⁻¹)/√n;
- the train stage's engine (logreg.engines.dask_train): an SGD epoch and a Newton
  iteration of the estimator on Dask partitions (each read once by a worker into its
  row cache on disk, memory-mapped by every task; or kept in the worker's memory),
  against the numpy engine on the same data and against the floor of reading the
  cached blocks plus the in-memory compute (the same streamed solver on the memmap
  cache, in this process: each block's shuffled copy written once beside the cache,
  memory-mapped by every visit); goal ≤ 1.5× both. The first epoch (or iteration),
  which also holds the fit's setup (SGD: the shuffled copies), is printed beside it;
- the peak RSS of the process tree (driver and workers), sampled every 50 ms.

Timings are noisy on a shared machine; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from logreg.engines.cluster import connect
from logreg.engines.dask_epochs import PartitionChains
from logreg.engines.dask_rows import DaskRows
from logreg.engines.dask_train import load_rows
from logreg.engines.memmap_rows import MemmapRows, write_row_cache
from logreg.frames import TARGET, WEIGHT
from logreg.model.equations import data_term_sums
from logreg.model.newton import newton_solve
from logreg.model.rows import Block, InMemoryRows
from logreg.model.sgd import sgd_solve

ALPHA = 1e-4


def synthetic_blocks(n: int, d: int, partitions: int, dtype: str, seed: int = 0):
    """Seeded logistic-model rows, one partition at a time (6 % positives)."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d) / np.sqrt(d)
    for rows in np.array_split(np.arange(n), partitions):
        X = rng.standard_normal((len(rows), d)).astype(dtype)
        z = X @ w - 3.0
        y = (rng.random(len(rows)) < 1.0 / (1.0 + np.exp(-z))).astype(dtype)
        yield Block(X, y[:, None], np.ones(len(rows), dtype=dtype))


def write_parquet(blocks, folder: Path) -> list[Path]:
    paths = []
    for i, block in enumerate(blocks):
        columns = {f"x{j}": block.X[:, j] for j in range(block.X.shape[1])}
        table = pa.table({**columns, TARGET: block.Y[:, 0], WEIGHT: block.s})
        paths.append(folder / f"part-{i:05d}.parquet")
        pq.write_table(table, paths[-1])
    return paths


def read_parquet_block(path: Path) -> Block:
    """A Parquet partition as a row-major Block: decode, then transpose columns into rows."""
    table = pq.read_table(path)
    names = [c for c in table.column_names if c.startswith("x")]
    first = table.column(names[0]).to_numpy()
    X = np.empty((table.num_rows, len(names)), dtype=first.dtype)
    for j, name in enumerate(names):
        X[:, j] = table.column(name).to_numpy()
    y = table.column(TARGET).to_numpy()
    return Block(X, y[:, None], table.column(WEIGHT).to_numpy())


def gradient_pass(rows, W: np.ndarray, b: np.ndarray):
    return rows.sum(lambda block: data_term_sums(block.X, block.X @ W + b, block.Y, block.s))


SAMPLE_S = 0.05  # seconds between two samples of the processes' RSS


class PeakRSS:
    """The largest summed RSS of this process (``include_self``) and its descendants,
    sampled every ``SAMPLE_S`` in a thread; a process that ends between listing and reading
    adds 0."""

    def __init__(self, include_self: bool = True) -> None:
        self.peak, self.include_self, self._stop = 0, include_self, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(SAMPLE_S):
            total = 0
            for proc in [me] * self.include_self + me.children(recursive=True):
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def median_times(measurements: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in measurements}
    for _ in range(repeats):
        for name, measure in measurements.items():
            started = time.perf_counter()
            measure()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def standard_errors(hessian: np.ndarray, n: int) -> np.ndarray:
    return np.sqrt(np.diag(np.linalg.inv(hessian)) / n)


SGD_EPOCHS = 5  # the first epoch (setup, the rows' first read) is not counted
SGD_SETTINGS = {
    "alpha": ALPHA, "l1_ratio": 0.0, "fit_intercept": True, "batch_size": 256,
    "learning_rate0": 0.05, "lr_schedule": "constant", "momentum": 0.0, "epochs": SGD_EPOCHS,
    "epoch_loss": "progressive", "tol": 0.0, "patience": None, "max_time": None,
}  # fmt: skip


def per_epoch(history: list[dict]) -> float:
    """The median seconds of an epoch (or iteration) after the first, from the history."""
    elapsed = [record["elapsed"] for record in history]
    return statistics.median(np.diff(elapsed)) if len(elapsed) > 1 else elapsed[0]


def train_engine_figures(client, parquet, cache, memory, folder: Path, args) -> None:
    """An SGD epoch and a Newton iteration: the numpy engine, the floor, the Dask engine."""
    classes = np.array([0.0, 1.0])
    on_dask = {
        "Dask, row cache": load_rows(client, parquet, classes, args.dtype, folder / "workers"),
        "Dask, in memory": load_rows(client, parquet, classes, args.dtype, None),
    }
    chains = partial(PartitionChains, chains=1)
    sgd_runs = {
        "numpy engine": lambda: sgd_solve(memory or cache, rng=np.random.default_rng(0),
                                          streamed=memory is None, **SGD_SETTINGS),
        "cached blocks": lambda: sgd_solve(cache, rng=np.random.default_rng(0), streamed=True,
                                           **SGD_SETTINGS),
        **{name: partial(sgd_solve, rows, rng=np.random.default_rng(0), visits=chains,
                         **SGD_SETTINGS) for name, rows in on_dask.items()},
    }  # fmt: skip
    newton = {"alpha": ALPHA, "fit_intercept": True, "max_iter": 50, "tol": 1e-20,
              "max_time": None}  # fmt: skip
    newton_runs = {
        name: partial(newton_solve, rows, rng=np.random.default_rng(0), **newton)
        for name, rows in {"numpy engine": memory or cache, "cached blocks": cache,
                           **on_dask}.items()
    }  # fmt: skip
    for what, runs in {"SGD epoch (batch 256)": sgd_runs, "Newton iteration": newton_runs}.items():
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        firsts: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):  # interleaved rounds
            for name, run in runs.items():
                history = run()[2].history
                seconds[name].append(per_epoch(history))
                firsts[name].append(history[0]["elapsed"])
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        numpy_engine, floor = medians["numpy engine"], medians["cached blocks"]
        print(f"\n{what}, median of {args.repeats} rounds (goal for Dask: <= 1.5x both); "
              f"load average {os.getloadavg()[0]:.1f}:")  # fmt: skip
        for name, value in medians.items():
            print(f"  {name:<18} {value:8.4f} s   {value / numpy_engine:5.2f}x numpy engine   "
                  f"{value / floor:5.2f}x cached blocks + compute   "
                  f"(first, with the setup: {statistics.median(firsts[name]):.2f} s)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="write the data here (default: a temp folder)")
    parser.add_argument("--quick", action="store_true", help="N=20,000, D=20, 4 partitions")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.d, args.partitions, args.repeats = 20_000, 20, 4, 2
    gib = 2.0**30
    data_bytes = args.n * args.d * np.dtype(args.dtype).itemsize
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{psutil.virtual_memory().total / gib:.1f} GiB RAM, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"data: N={args.n:,} × D={args.d} {args.dtype} = {data_bytes / gib:.2f} GiB of features, "
          f"{args.partitions} partitions")  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        parquet = write_parquet(
            synthetic_blocks(args.n, args.d, args.partitions, args.dtype), folder
        )
        cache = MemmapRows.open(
            write_row_cache(
                synthetic_blocks(args.n, args.d, args.partitions, args.dtype),
                folder / "cache",
                dtype=args.dtype,
            )
        )
        print(f"written: Parquet and the row cache in {time.perf_counter() - started:.1f} s")
        fits = data_bytes * 3 < psutil.virtual_memory().available
        memory = (
            InMemoryRows(tuple(cache.block(i) for i in range(len(cache.sizes)))) if fits else None
        )
        if memory is not None:  # bring the blocks into RAM as plain arrays
            memory = InMemoryRows(
                tuple(Block(np.array(b.X), np.array(b.Y), np.array(b.s)) for b in memory.parts)
            )
        W, b = np.zeros((args.d, 1), dtype=args.dtype), np.zeros(1, dtype=args.dtype)
        with (
            PeakRSS() as rss,
            # The train stage's own LocalCluster (logreg.engines.cluster), as the stage runs it.
            connect(
                None, n_workers=args.workers, threads_per_worker=1,
                memory_limit=f"{max(2 * data_bytes / args.workers, 2**30):.0f}",
            ) as client,
        ):  # fmt: skip
            dask_rows = DaskRows.load(client, read_parquet_block, parquet)
            passes = {
                "memmap cache": lambda: gradient_pass(cache, W, b),
                "Parquet decoded": lambda: gradient_pass(
                    InMemoryRows(tuple(read_parquet_block(p) for p in parquet)), W, b
                ),
                "Dask partitions": lambda: gradient_pass(dask_rows, W, b),
            }
            if memory is not None:
                passes = {"in memory": lambda: gradient_pass(memory, W, b), **passes}
            timings = median_times(passes, args.repeats)
            base = timings.get("in memory", timings["memmap cache"])
            print("\none gradient pass (median of", args.repeats, "rounds):")
            for name, seconds in timings.items():
                print(f"  {name:<18} {seconds:8.3f} s   {seconds / base:5.2f}× in memory")

            settings = {"alpha": ALPHA, "fit_intercept": True, "max_iter": 50, "tol": 1e-20,
                        "max_time": None}  # fmt: skip
            fits_at = {}
            for name, rows in {"in memory": memory or cache, "Dask": dask_rows}.items():
                started = time.perf_counter()
                fits_at[name] = newton_solve(rows, rng=np.random.default_rng(0), **settings)
                seconds = time.perf_counter() - started
                iterations = fits_at[name][2].n_iter
                print(f"Newton {name:<10} {seconds:8.2f} s, {iterations} iterations, "
                      f"{seconds / iterations:.3f} s per iteration")  # fmt: skip
            (W_a, b_a, fit_a), (W_b, b_b, fit_b) = fits_at["in memory"], fits_at["Dask"]
            theta_a, theta_b = np.append(W_a, b_a), np.append(W_b, b_b)
            relative = np.abs(theta_a - theta_b).max() / np.abs(theta_a).max()
            se_a, se_b = (standard_errors(f.hessian, args.n) for f in (fit_a, fit_b))
            print(f"same answer: optimum {relative:.1e} relative (goal 1e-8), standard errors "
                  f"{np.abs(se_a / se_b - 1).max():.1e} (goal 1e-6)")  # fmt: skip
            train_engine_figures(client, parquet, cache, memory, folder, args)
        print(f"peak RSS of driver + workers: {rss.peak / gib:.2f} GiB "
              f"({rss.peak / data_bytes:.2f}× the features)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
