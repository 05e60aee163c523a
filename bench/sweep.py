"""Benchmark: the default study's sweep (``make sweep``) through each launcher and store.

Run from the project root:

    python bench/sweep.py              # the 40-job Caravan study, 4 sweeps (minutes)
    python bench/sweep.py --quick      # a 4-job grid: checks that it runs

In a temporary workspace it runs ``python -m logreg.run --multirun`` over the study's grid
(:data:`logreg.sweep.STUDY`: batch size x penalty x rebalancing, the scikit-learn
baseline off) five times, one after the other, each with 2 job slots:

- ``joblib``: Hydra's joblib launcher, ``n_jobs=2``, the sqlite store (``make sweep``);
- ``joblib, no tracking``: the same with ``mlflow=off``, the floor of joblib's tracking;
- ``dask``: ``hydra/launcher=dask``, a LocalCluster of 2 workers, the sqlite store;
  goal: at most 1.2x ``joblib``'s wall time;
- ``dask + server``: the same against the team server (PostgreSQL store, proxied
  artifacts), started here by :mod:`logreg.tracking.server` in a temp folder on free
  ports; goal: at most 1.3x ``dask``'s wall time;
- ``dask, no tracking``: ``mlflow=off``, the floor of the Dask sweeps' tracking.

Where the time goes comes from the jobs' own records (:func:`logreg.pipeline.timings_file`:
each job's process, start, end and stage seconds; train's run file: the fit's seconds):

- start: from the sweep command to its first job (Python, Hydra, the config checks,
  the parent run, the cluster or the joblib processes and their imports), and each
  later job's wait on its worker since the previous job there ended (the launcher's
  hand-over, Hydra's job set-up);
- data: prepare and rebalance; fit: the estimator's fit; train, evaluate: the rest of
  those stages (reading splits, saving, metrics, figures and their tracking);
- tracking: a job's train and evaluate seconds minus the median of those without
  tracking on the same launcher (its ``no tracking`` sweep), measured in the same run,
  so that a launcher whose jobs run slower does not count that as tracking;
- end: from the last job's end to the sweep's exit (the parent run's ranking and the
  cluster's shutdown).

The figures are medians over the jobs. The machine (CPU model, cores, load) is printed
first: on a shared machine, read the load next to the figures. ``--repeats`` runs the
five sweeps that many times, interleaved, and prints each sweep's median wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from logreg import pipeline  # noqa: E402
from logreg.io import read_json  # noqa: E402
from logreg.sweep import STUDY  # noqa: E402
from logreg.tracking.runs import read_run_file  # noqa: E402
from logreg.tracking.store import ensure_experiment  # noqa: E402

QUICK = ("train.batch_size=64,full", "model.penalty=l1,l2", "evaluate.baseline=false")
SLOTS = 2  # job slots of every sweep: joblib processes, Dask workers
GOAL_DASK = 1.2  # dask / joblib
GOAL_SERVER = 1.3  # dask + team server / dask + sqlite
SWEEP_TIMEOUT = 3600.0  # seconds for one sweep before the benchmark gives up


@dataclass(frozen=True)
class Sweep:
    name: str
    overrides: tuple[str, ...]  # launcher and tracking
    floor: str  # the sweep on the same launcher without tracking, that tracking is measured against


def sweeps(server_uri: str | None) -> list[Sweep]:
    joblib = ("hydra/launcher=joblib", f"hydra.launcher.n_jobs={SLOTS}")
    dask = ("hydra/launcher=dask", f"hydra.launcher.n_workers={SLOTS}")
    joblib_floor, dask_floor = "joblib, no tracking", "dask, no tracking"
    found = [
        Sweep("joblib", joblib, joblib_floor),
        Sweep(joblib_floor, (*joblib, "mlflow=off"), joblib_floor),
        Sweep("dask", dask, dask_floor),
    ]
    if server_uri is not None:
        server = ("mlflow=server", f"mlflow.tracking_uri={server_uri}")
        found.append(Sweep("dask + server", (*dask, *server), dask_floor))
    found.append(Sweep(dask_floor, (*dask, "mlflow=off"), dask_floor))
    return found


def machine_line() -> str:
    """CPU model, cores and load, as ``bench/run.py`` reads them."""
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    bench_run = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench_run  # its dataclasses look their module up there
    spec.loader.exec_module(bench_run)
    info = bench_run.machine()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{info['cpu_model']}, {info['nproc']} cores ({info['cpus_usable']} usable), "
        f"{info['memory']} RAM, Python {info['python']}; load average {load}"
    )


@contextlib.contextmanager
def team_server(folder: Path) -> Iterator[str | None]:
    """The team server in ``folder`` on free ports (None when PostgreSQL is missing)."""
    from logreg.errors import UserError
    from logreg.tracking import server

    try:
        server.postgres_bindir()
    except UserError as exc:
        print(f"dask + server: skipped ({exc})")
        yield None
        return
    folder.mkdir(parents=True)
    folder.chmod(0o755)  # run as root, PostgreSQL runs as the postgres user
    try:
        uri, _ = server.start(folder, server.free_port())
        yield uri
    finally:
        server.stop(folder)


def run_sweep(sweep: Sweep, grid: Sequence[str], workspace: Path, number: int) -> dict[str, Any]:
    """One sweep in ``workspace``: its wall time and its jobs' records."""
    sweep_dir = workspace / f"sweep-{number}"
    command = [
        sys.executable,
        "-m",
        "logreg.run",
        "--multirun",
        f"hydra.sweep.dir='{sweep_dir}'",
        *sweep.overrides,
        *grid,
        f"mlflow.experiment_name=bench-{number}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    env.pop("MLFLOW_TRACKING_URI", None)  # the workspace's mlflow.db unless the sweep says
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "NO_PROXY": "127.0.0.1,localhost"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    cpu_before = _children_cpu_s()
    started_at, started = time.time(), time.perf_counter()
    done = subprocess.run(
        command, cwd=workspace, env=env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT
    )
    wall = time.perf_counter() - started
    cpu = _children_cpu_s() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"{sweep.name}: the sweep failed:\n{done.stderr[-3000:]}")
    jobs = [job_record(job) for job in sorted(sweep_dir.iterdir()) if job.is_dir()]
    jobs = [job for job in jobs if job is not None]
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "started_at": started_at,
        "ended_at": time.time(),
        "load": os.getloadavg()[0],
        "jobs": jobs,
    }


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children and theirs.

    Less sensitive than wall time to what else the machine runs: a sweep's CPU seconds
    are its own work (the team server's are not counted, it runs on until the end).
    """
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def job_record(job: Path) -> dict[str, Any] | None:
    """A job folder's timings and fit seconds; None for a folder that is not a job."""
    timings = pipeline.timings_file(job)
    if not timings.is_file():
        return None
    record = read_json(timings)
    record["fit_s"] = read_run_file(pipeline.layout(job)["train"].run_file)["train_time_s"]
    return record


def breakdown(result: dict[str, Any]) -> dict[str, float]:
    """Medians over the jobs of one sweep (see the module's docstring), and its two ends."""
    jobs = sorted(result["jobs"], key=lambda job: job["started_at"])
    last_end: dict[int, float] = {}
    waits = []
    for job in jobs:
        if job["pid"] in last_end:
            waits.append(job["started_at"] - last_end[job["pid"]])
        last_end[job["pid"]] = job["ended_at"]

    def median(seconds: Any) -> float:
        return statistics.median(seconds(job["stage_s"], job["fit_s"]) for job in jobs)

    return {
        "sweep start": jobs[0]["started_at"] - result["started_at"],
        "job start": statistics.median(waits) if waits else float("nan"),
        "data": median(lambda stage, fit: stage["prepare"] + stage["rebalance"]),
        "fit": median(lambda stage, fit: fit),
        "train": median(lambda stage, fit: stage["train"] - fit),
        "evaluate": median(lambda stage, fit: stage["evaluate"]),
        "tracked": median(lambda stage, fit: stage["train"] + stage["evaluate"]),
        "sweep end": result["ended_at"] - max(job["ended_at"] for job in jobs),
        "busy": sum(job["ended_at"] - job["started_at"] for job in jobs)
        / (SLOTS * result["wall_s"]),
    }


def print_report(
    results: dict[str, list[dict[str, Any]]], floors: dict[str, str], n_jobs: int
) -> None:
    wall = {name: statistics.median(r["wall_s"] for r in runs) for name, runs in results.items()}
    print(f"\n== sweeps ({n_jobs} jobs, {SLOTS} slots each; wall time, median of "
          f"{len(next(iter(results.values())))})")  # fmt: skip
    cpu = {name: statistics.median(r["cpu_s"] for r in runs) for name, runs in results.items()}
    print(f"{'configuration':<20} {'wall s':>8} {'ratio':>14} {'goal':>7}  met?  "
          f"{'cpu s':>7} {'ratio':>6}  load")  # fmt: skip
    goals = {"dask": ("joblib", GOAL_DASK), "dask + server": ("dask", GOAL_SERVER)}
    for name, seconds in wall.items():
        load = " ".join(f"{r['load']:.1f}" for r in results[name])
        if name in goals and goals[name][0] in wall:
            reference, goal = goals[name]
            ratio = seconds / wall[reference]
            met = "yes" if ratio <= goal else "NO"
            cpu_ratio = cpu[name] / cpu[reference]
            print(f"{name:<20} {seconds:>8.1f} {ratio:>5.2f}x {reference:>7} "
                  f"{f'<= {goal}x':>7}  {met:<4}  {cpu[name]:>7.1f} {cpu_ratio:>5.2f}x  "
                  f"{load}")  # fmt: skip
        else:
            print(f"{name:<20} {seconds:>8.1f} {'':>14} {'':>7}  {'-':<4}  {cpu[name]:>7.1f} "
                  f"{'':>6}  {load}")  # fmt: skip
    print(
        "cpu: the sweep's processes' CPU seconds (its ratio: against the same reference); "
        f"load: the 1-minute load average at the end of each sweep, {os.cpu_count()} cores"
    )

    print("\n== where the time goes (s; per job: medians over the jobs of the last repeat)")
    parts = {name: breakdown(runs[-1]) for name, runs in results.items()}
    columns = ("sweep start", "job start", "data", "fit", "train", "evaluate", "tracking",
               "sweep end", "busy")  # fmt: skip
    print(f"{'configuration':<20} " + " ".join(f"{c:>11}" for c in columns))
    for name, part in parts.items():
        floor = parts[floors[name]]["tracked"] if floors[name] in parts else float("nan")
        part["tracking"] = part["tracked"] - floor
        cells = [f"{part[c]:>11.2f}" for c in columns[:-1]] + [f"{part['busy']:>10.0%}"]
        print(f"{name:<20} " + " ".join(cells))
    print(
        "sweep start, sweep end: once per sweep; tracking: against the same launcher's "
        "no-tracking sweep; busy: the jobs' share of the slots' time"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 4-job grid, to check it runs")
    parser.add_argument("--repeats", type=int, default=1, help="each sweep this many times")
    parser.add_argument("--reverse", action="store_true", help="the sweeps in reverse order")
    args = parser.parse_args(argv)
    grid = QUICK if args.quick else STUDY
    n_jobs = 4 if args.quick else 40
    print("== machine")
    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="logreg-bench-sweep-") as scratch:
        workspace = Path(scratch)
        workspace.chmod(0o755)
        # The sqlite store's one-off schema migration (seconds) is made here, not in
        # whichever sweep would open the new store first.
        ensure_experiment(f"sqlite:///{workspace / 'mlflow.db'}", "bench-warm-up", workspace)
        with team_server(workspace / "server") as server_uri:
            configurations = sweeps(server_uri)
            results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configurations}
            number = 0
            for repeat in range(args.repeats):
                # Every other repeat in reverse order: a load that drifts during the run
                # then weighs on every configuration alike.
                backwards = (repeat % 2 == 1) != args.reverse
                for sweep in configurations[::-1] if backwards else configurations:
                    number += 1
                    result = run_sweep(sweep, grid, workspace, number)
                    if len(result["jobs"]) != n_jobs:
                        raise SystemExit(f"{sweep.name}: {len(result['jobs'])} of {n_jobs} jobs")
                    print(f"{sweep.name}: {result['wall_s']:.1f} s, load average "
                          f"{result['load']:.2f} at its end", flush=True)  # fmt: skip
                    results[sweep.name].append(result)
    print_report(results, {c.name: c.floor for c in configurations}, n_jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
