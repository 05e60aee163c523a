"""Benchmark: the four pipeline stages at scale, each next to its floor.

Run from the project root:

    python bench/pipeline.py                 # N=2,000,000 x D=50, tracking on and off (minutes)
    python bench/pipeline.py --quick         # N=20,000 x D=10: checks that it runs
    python bench/pipeline.py --n 500000 --d 50 --repeats 3

In a temporary workspace it composes ``data=synthetic data.n_samples=N data.n_features=D
evaluate.baseline=false`` into a params file and runs prepare, rebalance, train and
evaluate as ``dvc repro`` does, one subprocess each, twice: with MLflow tracking on (a
sqlite store in the workspace) and with ``mlflow.enabled=false``. For each stage it
prints the wall time and the peak RSS of its process (``os.wait4``, children included).
Then the floors, measured in the same run:

- train against the estimator's own ``fit`` on C-ordered arrays of the same splits,
  with the same parameters (so the same epochs): goal <= 1.3x;
- prepare against reading the raw Parquet table and writing three Parquet splits of it;
- tracking's share of the run: the extra time of the stages that track (train and
  evaluate) with tracking on, over the run's time with tracking on; goal <= 10 %;
- each stage's peak RSS against the size of the data it reads (the uncompressed size
  of the Parquet files it reads; prepare's is the raw table it loads): goal <= 3x.

``--repeats`` runs every measurement that many times, interleaved, and prints medians.
The machine (CPUs, RAM, load, versions) is printed first: on a shared machine, read the
load average next to the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logreg import pipeline  # noqa: E402
from logreg.frames import read_split, read_table, write_table  # noqa: E402
from logreg.io import write_text  # noqa: E402
from logreg.model import LogisticRegression  # noqa: E402
from logreg.params import compose, render  # noqa: E402
from logreg.stages import entry  # noqa: E402
from logreg.tracking.runs import read_run_file  # noqa: E402

STAGES = ("prepare", "rebalance", "train", "evaluate")
# The stages that log to MLflow: tracking's cost is their time on minus off. The other
# two do the same work either way, so their on/off difference is only noise.
TRACKING = ("train", "evaluate")
GOAL_TRAIN = 1.3  # train stage / the estimator's fit on C-ordered arrays
GOAL_TRACKING = 0.10  # share of the run's time spent tracking
GOAL_RSS = 3.0  # peak RSS / the data a stage reads
MIB = 1 << 20


def machine() -> dict[str, Any]:
    import pyarrow

    pages, page = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    return {
        "cpus": os.cpu_count(),
        "ram_gib": round(pages * page / (1 << 30), 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "pyarrow": pyarrow.__version__,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def workspace_params(folder: Path, n: int, d: int, tracking: bool) -> Path:
    """The composed params file of one pipeline run inside ``folder``."""
    overrides = [
        "data=synthetic",
        f"data.n_samples={n}",
        f"data.n_features={d}",
        "evaluate.baseline=false",
        f"mlflow.enabled={str(tracking).lower()}",
        f"mlflow.tracking_uri=sqlite:///{folder / 'mlflow.db'}",
        "mlflow.experiment_name=bench",
    ]
    path = folder / pipeline.PARAMS_FILE
    write_text(path, render(compose(ROOT / "conf", overrides)))
    return path


def stage_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MLFLOW_DISABLE_TELEMETRY="true")
    return env | {"DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}


def create_store(folder: Path) -> float:
    """Create the workspace's MLflow store and experiment; seconds it took.

    A user's store exists before their runs, so its creation (sqlite schema migrations,
    seconds) is kept out of the stages' times.
    """
    params = entry.read_params(folder / pipeline.PARAMS_FILE, ("mlflow",))
    code = (
        "import sys; from logreg.tracking.runs import open_tracker; "
        f"open_tracker({params['mlflow']!r}, root=__import__('pathlib').Path(sys.argv[1]))"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(folder)], env=stage_env(), check=True)
    return time.perf_counter() - started


def run_stage(name: str, folder: Path) -> dict[str, Any]:
    """One stage as a subprocess in ``folder``: wall seconds, peak RSS, its stderr."""
    paths = pipeline.layout(folder)[name]
    command = [sys.executable, "-m", f"logreg.stages.{name}", "--params", "params.yaml"]
    command += entry.argv(paths)
    env = stage_env()
    log = folder / f"{name}.log"
    with open(log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if process.returncode != 0:
        raise SystemExit(f"stage {name} failed ({process.returncode}):\n{text}")
    return {"seconds": seconds, "rss": usage.ru_maxrss * 1024, "stderr": text}


def data_read(folder: Path) -> dict[str, int]:
    """Bytes each stage reads: the uncompressed size of its Parquet inputs.

    Evaluate reads the rebalanced split only for the scikit-learn baseline, which the
    benchmark turns off.
    """
    layout = pipeline.layout(folder)
    raw = next((folder / "data/raw").glob("*.parquet"))
    evaluate = entry.read_params(folder / pipeline.PARAMS_FILE, ("evaluate",))["evaluate"]
    evaluated = layout["evaluate"]
    inputs = {
        "prepare": [raw],
        "rebalance": [layout["rebalance"].train],
        "train": [layout["train"].train, layout["train"].val],
        "evaluate": [evaluated.train, evaluated.val, evaluated.test]
        + ([evaluated.rebalanced] if evaluate["baseline"] else []),
    }
    return {stage: sum(map(parquet_bytes, files)) for stage, files in inputs.items()}


def parquet_bytes(path: Path) -> int:
    meta = pq.ParquetFile(path).metadata
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def train_floor(folder: Path) -> tuple[float, int]:
    """Seconds of the estimator's fit on C-ordered arrays of the stage's splits; its epochs."""
    params = entry.read_params(folder / pipeline.PARAMS_FILE, ("model", "train"))
    layout = pipeline.layout(folder)["train"]
    train, val = read_split(layout.train), read_split(layout.val)
    dtype = np.dtype(params["train"]["dtype"])
    X = np.ascontiguousarray(train.X, dtype=dtype)
    X_val = np.ascontiguousarray(val.X, dtype=dtype)
    model = LogisticRegression(**params["model"], **params["train"])
    started = time.perf_counter()
    model.fit(X, train.y, sample_weight=train.sample_weight, X_val=X_val, y_val=val.y)
    return time.perf_counter() - started, int(model.n_iter_)


def prepare_floor(folder: Path) -> float:
    """Seconds to read the raw table and write three Parquet splits of it (60/20/20).

    The stage's own reader and writer (:func:`logreg.frames.write_table`), so the floor
    moves with the writer's settings.
    """
    raw = next((folder / "data/raw").glob("*.parquet"))
    started = time.perf_counter()
    frame = read_table(raw)
    n = len(frame)
    cuts = (0, int(0.6 * n), int(0.8 * n), n)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        for i in range(3):  # as the stage writes them
            write_table(frame.iloc[cuts[i] : cuts[i + 1]], Path(tmp) / f"{i}.parquet")
    return time.perf_counter() - started


def rebalance_floor(folder: Path) -> float:
    """Seconds to read the prepared training split and write it back (what ``none`` does)."""
    layout = pipeline.layout(folder)["rebalance"]
    started = time.perf_counter()
    frame = read_table(layout.train)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        write_table(frame, Path(tmp) / "train.parquet")
    return time.perf_counter() - started


def fit_profile(folder: Path, stderr: str) -> dict[str, float]:
    """The train stage's fit: total, first epoch (with the setup before the first step), rest.

    The seconds come from train's untracked run file: the DVC outputs hold none.
    """
    run_file = read_run_file(pipeline.layout(folder)["train"].run_file)
    elapsed = np.asarray(run_file["epoch_elapsed_s"])
    found = re.search(r"train: (\d+) epochs in ([\d.]+) s", stderr)
    fit = float(found.group(2)) if found else float(elapsed[-1])
    later = np.diff(elapsed)
    return {
        "fit": fit,
        "first_epoch": float(elapsed[0]),
        "epochs": len(elapsed),
        "later_epoch": float(np.median(later)) if len(later) else float("nan"),
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def goal_line(label: str, value: float, goal: float, unit: str = "x") -> str:
    status = "NOISE" if value < 0 else "PASS" if value <= goal else "MISS"
    shown = f"{value:.1%}" if unit == "%" else f"{value:.2f}x"
    bound = f"{goal:.0%}" if unit == "%" else f"{goal:g}x"
    return f"{status}  {label:<44} {shown:>8}  (goal <= {bound})"


FLOOR_NAMES = {
    "prepare": "read raw, write 3 splits",
    "rebalance": "read + write the split",
    "train": "estimator fit, C-ordered",
}
STAGE_GOALS = {"train": GOAL_TRAIN}  # stage time / its floor; the others have no time goal


def met(value: float, goal: float | None) -> str:
    """yes, NO, or noise: a negative cost (tracking: the run was slower with it off) is
    the machine's noise, not a pass."""
    if goal is None:
        return "-"
    return "noise" if value < 0 else ("yes" if value <= goal else "NO")


def print_stage_goals(
    on: dict[str, dict[str, float]],
    floor_s: dict[str, float],
    sizes: dict[str, int],
    share: float,
    tracked: float,
) -> None:
    """Each stage's time and peak RSS (tracking on) next to its floor and goal, with met?."""
    print("\n== each stage against its floor and goal (tracking on; ratios from this run)")
    print(
        f"{'stage':<10} {'time s':>7} {'floor s':>8} {'floor':<25} {'ratio':>6} {'goal':>6} "
        f"{'met?':>4} | {'peak RSS':>9} {'data read':>9} {'ratio':>6} {'goal':>5} {'met?':>4}"
    )
    for name in STAGES:
        seconds, rss, data = on[name]["seconds"], on[name]["rss"], sizes[name]
        goal = STAGE_GOALS.get(name)
        if name in floor_s:
            ratio = seconds / floor_s[name]
            timing = f"{floor_s[name]:>8.2f} {FLOOR_NAMES[name]:<25} {ratio:>5.2f}x"
            timing += f" {'<=' + format(goal, 'g') + 'x' if goal else '-':>6} {met(ratio, goal):>4}"
        else:
            timing = f"{'-':>8} {'(no floor)':<25} {'-':>6} {'-':>6} {'-':>4}"
        print(
            f"{name:<10} {seconds:>7.2f} {timing} | {rss / MIB:>5.0f} MiB {data / MIB:>5.0f} MiB "
            f"{rss / data:>5.2f}x {'<=3x':>5} {met(rss / data, GOAL_RSS):>4}"
        )
    print(
        f"{'tracking':<10} {tracked:>7.2f} s more with it on (train + evaluate): {share:.1%} of "
        f"the run; goal <= {GOAL_TRACKING:.0%}: {met(share, GOAL_TRACKING)}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000, help="rows of the synthetic data")
    parser.add_argument("--d", type=int, default=50, help="features")
    parser.add_argument("--repeats", type=int, default=1, help="runs of every measurement")
    parser.add_argument("--quick", action="store_true", help="N=20,000, D=10: a smoke run")
    args = parser.parse_args(argv)
    n, d = (20_000, 10) if args.quick else (args.n, args.d)

    print("== machine")
    for key, value in machine().items():
        print(f"{key:>8}: {value}")
    print(f"== config: N={n:,} D={d} repeats={args.repeats} (tracking on and off)")

    runs: dict[bool, list[dict[str, dict[str, Any]]]] = {True: [], False: []}
    floors: dict[str, list[float]] = {"train": [], "prepare": [], "rebalance": []}
    floor_epochs = 0
    with tempfile.TemporaryDirectory(prefix="logreg-bench-") as tmp:
        folders = {
            on: Path(tmp) / ("tracking-on" if on else "tracking-off") for on in (True, False)
        }
        for folder in folders.values():
            folder.mkdir()
        workspace_params(folders[True], n, d, tracking=True)
        store_s = create_store(folders[True])
        for _ in range(args.repeats):
            for on in (False, True):
                workspace_params(folders[on], n, d, tracking=on)
                runs[on].append({name: run_stage(name, folders[on]) for name in STAGES})
            seconds, floor_epochs = train_floor(folders[True])
            floors["train"].append(seconds)
            floors["prepare"].append(prepare_floor(folders[True]))
            floors["rebalance"].append(rebalance_floor(folders[True]))
        sizes = data_read(folders[True])
        profile = fit_profile(folders[True], runs[True][-1]["train"]["stderr"])

    stage = {
        on: {
            name: {
                key: statistics.median(r[name][key] for r in runs[on]) for key in ("seconds", "rss")
            }
            for name in STAGES
        }
        for on in (True, False)
    }
    total = {on: sum(s["seconds"] for s in stage[on].values()) for on in (True, False)}
    print("\n== stages: wall time (tracking on, off) and peak RSS (tracking on); medians")
    print(
        f"{'stage':<10} {'on s':>8} {'off s':>8} {'tracking':>9} "
        f"{'peak RSS':>10} {'data read':>10} {'RSS/data':>9}"
    )
    for name in STAGES:
        on, off = stage[True][name], stage[False][name]
        print(
            f"{name:<10} {on['seconds']:>8.2f} {off['seconds']:>8.2f} "
            f"{on['seconds'] - off['seconds']:>8.2f}s "
            f"{on['rss'] / MIB:>6.0f} MiB {sizes[name] / MIB:>6.0f} MiB "
            f"{on['rss'] / sizes[name]:>8.2f}x"
        )
    print(
        f"{'total':<10} {total[True]:>8.2f} {total[False]:>8.2f} "
        f"{total[True] - total[False]:>8.2f}s"
    )

    train_s, prepare_s = stage[True]["train"]["seconds"], stage[True]["prepare"]["seconds"]
    train_floor_s, prepare_floor_s = map(statistics.median, (floors["train"], floors["prepare"]))
    tracked = sum(stage[True][name]["seconds"] - stage[False][name]["seconds"] for name in TRACKING)
    share = tracked / total[True]
    print("\n== floors (measured in this run)")
    print(
        f"train: stage {train_s:.2f} s; the estimator's fit on C-ordered arrays "
        f"{train_floor_s:.2f} s ({floor_epochs} epochs)"
    )
    print(
        f"prepare: stage {prepare_s:.2f} s; reading the raw table and writing three splits "
        f"{prepare_floor_s:.2f} s ({prepare_s / prepare_floor_s:.2f}x)"
    )
    print(
        f"tracking: the run takes {total[True]:.2f} s on, {total[False]:.2f} s off; "
        f"{' + '.join(TRACKING)} take {tracked:.2f} s more on, {share:.1%} of the run "
        f"(creating the store beforehand took {store_s:.2f} s, not counted)"
    )
    print("\n== train stage: where the time goes (tracking on)")
    print(
        f"fit {profile['fit']:.2f} s over {profile['epochs']} epochs: first epoch "
        f"{profile['first_epoch']:.2f} s (with the setup before the first step), then "
        f"{profile['later_epoch']:.3f} s per epoch (median); outside the fit "
        f"(start-up, reading, tracking, saving) {train_s - profile['fit']:.2f} s"
    )

    floor_s = {name: statistics.median(floors[name]) for name in ("prepare", "rebalance")}
    floor_s["train"] = train_floor_s
    print_stage_goals(stage[True], floor_s, sizes, share, tracked)

    print("\n== goals")
    ratios = [
        ("train stage / estimator fit (C-ordered)", train_s / train_floor_s, GOAL_TRAIN, "x"),
        ("tracking share of the run", share, GOAL_TRACKING, "%"),
        *(
            (f"{name} peak RSS / data read", stage[True][name]["rss"] / sizes[name], GOAL_RSS, "x")
            for name in STAGES
        ),
    ]
    for label, value, goal, unit in ratios:
        print(goal_line(label, value, goal, unit))


if __name__ == "__main__":
    main()
