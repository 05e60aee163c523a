"""Benchmark: the train stage on a training split larger than this machine's RAM (issue 14).

Run from the project root, with a folder on a disk that has room (about 2.4x the
features: the split, its row cache and Newton's sampled quarter):

    python bench/larger_than_ram.py --folder /big/disk/ltr            # 1.1x RAM of features
    python bench/larger_than_ram.py --quick                          # 100,000 x 10: it runs

It is a measurement, not a test; it writes tens of gigabytes. In ``--folder`` it

1. composes ``params.yaml`` (``engine=dask``, ``--workers`` workers at ``--memory-limit``
   each, ``engine.partition_rows``, ``model.solver`` (Newton by default), tracking and
   the scikit-learn baseline off) and runs the **prepare** stage on a small synthetic
   table of the same columns (``--prepare-rows``): it gives ``preprocess.json`` and the
   val and test splits;
2. writes the **training split** where the train stage reads it
   (``data/rebalanced/train.parquet``, a folder of parts) with ``--n`` rows of the same
   seeded generator (rows after prepare's), chunk by chunk on the workers, each part transformed
   by that ``preprocess.json`` as prepare transforms its splits: nobody ever holds the
   table;
3. runs the **train** stage (then **evaluate**) as ``dvc repro`` does, one subprocess
   each, and prints its wall time, the seconds of each iteration (from the run file's
   elapsed times), the peak RSS of its process tree (driver, scheduler, workers;
   sampled every 50 ms) and the disk the run used.

Why not ``dvc repro`` at this size: prepare also writes the raw table and all three
splits, and rebalance a copy of the training split, so the whole pipeline needs about
3.8x the features on disk, and prepare's passes took about half an hour per 4 GB of
features on this 2-core machine (README). Steps 1 and 2 give the train stage the input
prepare would give it, with preprocessing statistics from ``--prepare-rows`` rows
instead of all of them (the synthetic features are standard normal either way).

SGD is not the default here: on Dask it keeps each partition's shuffled copy beside
its row cache, one more copy of the features on disk.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

# bench/pipeline.py runs a stage as dvc repro does; scale.py samples a process tree's RSS.
import pipeline as bench_pipeline
from logreg import datasets, pipeline
from logreg.engines import dask_prepare
from logreg.engines.cluster import connect
from logreg.engines.partitions import PART, staged_folder
from logreg.frames import TARGET, write_table
from logreg.io import write_text
from logreg.params import compose, render
from logreg.preprocess import Preprocessing, read_preprocessing, transform
from scale import PeakRSS

ROOT = bench_pipeline.ROOT
GB = 1e9
TEST_METRICS = ("roc_auc", "pr_auc", "f1", "prevalence")  # a model of the same data, or not


def overrides(args: argparse.Namespace) -> list[str]:
    """The run's config: the pipeline on a LocalCluster, tracking and the baseline off."""
    return [
        "data=synthetic",
        f"data.n_samples={args.prepare_rows}",
        f"data.n_features={args.d}",
        "evaluate.baseline=false",
        "mlflow.enabled=false",
        "engine=dask",
        f"engine.n_workers={args.workers}",
        f"engine.memory_limit={args.memory_limit}",
        f"engine.partition_rows={args.partition_rows}",
        f"model.solver={args.solver}",
        f"train.epochs={args.epochs}",
    ]


def write_training_split(
    params: dict[str, Any], prep: Preprocessing, n: int, args: argparse.Namespace, path: Path
) -> int:
    """``n`` more rows of prepare's synthetic table, transformed by ``prep``, as the parts
    of ``path``, written by the workers one part each; the rows written.

    The same seed gives the same model; the rows start at the first chunk after
    prepare's, so none of them is in its val or test split. The minority cut is found
    over this larger table: the same fraction of minority rows."""
    offset = -(-int(params["data"]["n_samples"]) // datasets.CHUNK_ROWS) * datasets.CHUNK_ROWS
    spec = datasets.synthetic_spec(dict(params["data"], n_samples=offset + n))
    with connect(
        None, n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit
    ) as client:
        dask_prepare.check_partition_memory(
            args.partition_rows, spec.n_features + 1, dask_prepare.worker_memory(client)
        )
        cut = datasets.minority_cut(
            spec, dask_prepare.chunk_gather(client, spec, args.partition_rows)
        )
        with staged_folder(path) as staging:
            starts = range(offset, offset + n, args.partition_rows)
            ends = [min(start + args.partition_rows, offset + n) for start in starts]
            tasks = [
                dask_prepare.submit(
                    client, _write_part, spec, start, end, cut, prep, staging / PART.format(i)
                )
                for i, (start, end) in enumerate(zip(starts, ends, strict=True))
            ]
            return sum(dask_prepare.results(client, tasks))


def _write_part(
    spec: datasets.Synthetic, start: int, stop: int, cut: float, prep: Preprocessing, path: Path
) -> int:
    """A worker's task: rows ``start..stop-1``, transformed as prepare transforms a split."""
    frame = datasets.synthetic_rows(spec, start, stop, cut)
    frame = frame.rename(columns={datasets.SYNTHETIC_TARGET: TARGET})
    write_table(transform(prep, frame).reset_index(drop=True), path)
    return stop - start


def disk_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class DiskPeak:
    """The largest size of ``folder`` seen while the block runs, sampled every second
    (the row cache and Newton's sample exist only during the fit)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak = folder, 0

    def sample(self) -> None:
        self.peak = max(self.peak, psutil.disk_usage(str(self.folder)).used - self.base)

    def __enter__(self) -> DiskPeak:
        import threading

        self.base = psutil.disk_usage(str(self.folder)).used
        self._stop = threading.Event()

        def watch() -> None:
            while not self._stop.wait(1.0):
                self.sample()

        self._thread = threading.Thread(target=watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def staged(name: str, folder: Path) -> dict[str, Any]:
    """One stage as ``dvc repro`` runs it, with its process tree's peak RSS."""
    with PeakRSS(include_self=False) as tree:
        run = bench_pipeline.run_stage(name, folder)
    run["tree"] = tree.peak
    print(f"{name}: {run['seconds']:.1f} s, process-tree peak RSS {tree.peak / GB:.2f} GB "
          f"(load {os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    for line in run["stderr"].splitlines():
        if line.startswith(f"{name}: "):
            print(f"  {line}")
    return run


def iteration_seconds(folder: Path) -> list[float]:
    """Each iteration's seconds, from the run file's cumulative elapsed times."""
    run_file = pipeline.layout(folder)["train"].run_file
    elapsed = json.loads(run_file.read_text())["epoch_elapsed_s"]
    return [b - a for a, b in zip([0.0, *elapsed], elapsed, strict=False)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="on a disk with room; kept")
    parser.add_argument("--n", type=int, help="training rows (default: features = 1.1x RAM)")
    parser.add_argument("--d", type=int, default=100, help="float64 features")
    parser.add_argument("--prepare-rows", type=int, default=100_000, help="prepare's table")
    parser.add_argument("--partition-rows", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GB", help="per worker")
    parser.add_argument("--solver", default="newton", choices=["newton", "proximal", "sgd"])
    parser.add_argument("--epochs", type=int, default=20, help="train.epochs (SGD's epochs)")
    parser.add_argument("--quick", action="store_true", help="100,000 x 10 in a temp folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.d, args.prepare_rows, args.partition_rows = 100_000, 10, 20_000, 50_000
    elif args.folder is None:
        parser.error("--folder is required (a disk with room for about 2.4x the features)")
    with tempfile.TemporaryDirectory(prefix="logreg-ltr-") as scratch:
        measure(args, (args.folder or Path(scratch)).resolve())


def measure(args: argparse.Namespace, folder: Path) -> None:
    """Prepare at a small size, the large training split, then train and evaluate."""
    ram = psutil.virtual_memory().total
    n = args.n or math.ceil(1.1 * ram / (8 * args.d))
    features = n * args.d * 8
    folder.mkdir(parents=True, exist_ok=True)

    print("== machine")
    for key, value in bench_pipeline.machine().items():
        print(f"{key:>8}: {value}")
    print(f"free disk at {folder}: {psutil.disk_usage(str(folder)).free / GB:.1f} GB")
    print(f"== training split: N={n:,} x D={args.d} float64 = {features / GB:.1f} GB of "
          f"features, {features / ram:.2f}x RAM ({ram / GB:.1f} GB); {args.workers} workers "
          f"at {args.memory_limit}, partitions of {args.partition_rows:,} rows, "
          f"model.solver={args.solver}", flush=True)  # fmt: skip

    params = compose(ROOT / "conf", overrides(args))
    write_text(folder / "params.yaml", render(params))
    layout = pipeline.layout(folder)
    staged("prepare", folder)
    started = time.perf_counter()
    train_path = layout["train"].train
    written = write_training_split(
        params, read_preprocessing(layout["train"].preprocess), n, args, train_path
    )
    split_bytes = disk_bytes(train_path)
    seconds = time.perf_counter() - started
    print(f"training split: {written:,} rows written in {seconds:.1f} s, {split_bytes / GB:.1f} "
          f"GB of Parquet ({split_bytes / ram:.2f}x RAM)", flush=True)  # fmt: skip

    with DiskPeak(folder) as disk:
        train = staged("train", folder)
    seconds = iteration_seconds(folder)
    later = seconds[1:] or seconds
    print(f"  iterations: {len(seconds)}; seconds each: {' '.join(f'{s:.1f}' for s in seconds)}")
    print(f"  median iteration after the first: {statistics.median(later):.1f} s; "
          f"the fit's setup and first iteration: {seconds[0]:.1f} s")  # fmt: skip
    print(f"  disk during the fit: up to {disk.peak / GB:.1f} GB beyond the split "
          f"(row cache and Newton's sample; removed after)")  # fmt: skip
    print(f"  peak RSS {train['tree'] / GB:.2f} GB = {train['tree'] / features:.3f}x the "
          f"features, {train['tree'] / ram:.3f}x RAM")  # fmt: skip
    staged("evaluate", folder)
    test = json.loads((layout["evaluate"].reports_dir / "metrics.json").read_text())["test"]
    print("test split: " + ", ".join(f"{key} {test[key]:.3f}" for key in TEST_METRICS))


if __name__ == "__main__":
    main()
