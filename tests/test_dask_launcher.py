"""``hydra/launcher=dask``: a multirun's jobs on a Dask cluster, retried, recorded in order.

A tiny Hydra app (written to tmp_path) exercises the launcher alone: each job counts its
attempts in a file and fails as its ``mode`` says, so the retries are counted, not
inferred. The slow test runs the project's own sweep (``python -m logreg.run``) on a
LocalCluster, with one job that fails every attempt, and reads the MLflow parent run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import dask_cluster, free_port
from hydra_plugins.logreg_dask_launcher._core import _connect
from logreg.errors import UserError
from logreg.run import sweep_description

APP = """
import os
from pathlib import Path

import hydra


@hydra.main(config_path=None, config_name=None, version_base=None)
def job(cfg):
    counter = Path(os.environ["ATTEMPTS_DIR"]) / f"{cfg.mode}.attempts"
    attempt = len(counter.read_text()) if counter.exists() else 0
    counter.write_text("x" * (attempt + 1))
    if cfg.mode == "raise_once" and attempt == 0:
        raise RuntimeError("the first attempt fails")
    if cfg.mode == "die_once" and attempt == 0:
        os._exit(3)  # the worker process dies with the job
    if cfg.mode == "always":
        raise RuntimeError("this job fails every attempt")
    if cfg.mode == "faults":  # a freed 1 MB array made again: fresh pages, or reused ones
        import resource

        import numpy as np

        first = np.ones(1 << 17)
        del first
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        second = np.ones(1 << 17)
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
        (Path(os.environ["ATTEMPTS_DIR"]) / "faults").write_text(str(faults))
    Path("done").write_text(cfg.mode)  # in the job's folder (chdir below)


if __name__ == "__main__":
    job()
"""


def _run_app(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "attempts").mkdir(exist_ok=True)
    env = {**os.environ, "ATTEMPTS_DIR": str(tmp_path / "attempts")}
    command = [sys.executable, "app.py", "-m", "hydra/launcher=dask", "hydra.job.chdir=true"]
    return subprocess.run(
        [*command, *overrides], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )


def _attempts(tmp_path: Path) -> dict[str, int]:
    return {p.stem: len(p.read_text()) for p in (tmp_path / "attempts").glob("*.attempts")}


def _jobs(tmp_path: Path) -> list[dict]:
    (record,) = (tmp_path / "multirun").glob("*/*/jobs.json")
    return json.loads(record.read_text())


@pytest.mark.slow
def test_a_job_that_raises_or_kills_its_worker_runs_again_and_the_sweep_goes_on(tmp_path):
    done = _run_app(tmp_path, "hydra.launcher.retries=1", "+mode=raise_once,die_once,always,fine")

    assert done.returncode != 0, "a job that failed every attempt fails the sweep"
    assert "this job fails every attempt" in done.stderr
    assert _attempts(tmp_path) == {"raise_once": 2, "die_once": 2, "always": 2, "fine": 1}
    jobs = _jobs(tmp_path)
    assert [(j["job"], j["overrides"], j["status"]) for j in jobs] == [
        (0, ["+mode=raise_once"], "FINISHED"),
        (1, ["+mode=die_once"], "FINISHED"),
        (2, ["+mode=always"], "FAILED"),
        (3, ["+mode=fine"], "FINISHED"),
    ]
    assert "RuntimeError: this job fails every attempt" in jobs[2]["error"]
    # Each job ran in its own folder, numbered in the order of the overrides.
    folders = {p.parent.name: p.read_text() for p in tmp_path.glob("multirun/*/*/*/done")}
    assert folders == {"0": "raise_once", "1": "die_once", "3": "fine"}


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_job_reuses_freed_memory_despite_the_nannys_trim_threshold(tmp_path):
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's
    # mmap threshold at 128 KB: a freed 1 MB array would come back as 256 new pages.
    done = _run_app(tmp_path, "+mode=faults")
    assert done.returncode == 0, done.stderr[-3000:]
    assert int((tmp_path / "attempts" / "faults").read_text()) < 16


@pytest.mark.slow
def test_with_no_retries_a_failing_job_runs_once(tmp_path):
    done = _run_app(tmp_path, "hydra.launcher.retries=0", "+mode=raise_once,fine")

    assert done.returncode != 0
    assert _attempts(tmp_path) == {"raise_once": 1, "fine": 1}
    assert [j["status"] for j in _jobs(tmp_path)] == ["FAILED", "FINISHED"]


@pytest.mark.slow
def test_jobs_run_on_a_scheduler_that_is_already_running(tmp_path):
    # A worker of a running cluster has its own environment, not the sweep's.
    env = {**os.environ, "ATTEMPTS_DIR": str(tmp_path / "attempts")}
    with dask_cluster(1, tmp_path, env) as (address, _):
        done = _run_app(tmp_path, f"hydra.launcher.address={address}", "+mode=fine,raise_once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _attempts(tmp_path) == {"fine": 1, "raise_once": 2}


def test_an_unreachable_scheduler_is_one_clear_error_within_10_s(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    done = _run_app(tmp_path, f"hydra.launcher.address={address}", "+mode=fine")
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: hydra.launcher.address: cannot reach a Dask scheduler at ")
    assert address in line
    assert _attempts(tmp_path) == {}

    # The launcher's connection alone, timed: the process's start-up is not the user's wait.
    started = time.monotonic()
    with pytest.raises(UserError, match="cannot reach a Dask scheduler"):
        with _connect({"address": address}, retries=1):
            pass
    assert time.monotonic() - started < 10.0


def test_the_description_lists_jobs_that_failed_before_opening_a_run():
    children = [{"run_id": "a1", "run_name": "job-a", "status": "FINISHED", "metrics": {}}]
    jobs = [
        {"job": 0, "overrides": ["x=1", "mlflow.parent_run_id='p'"], "status": "FINISHED"},
        {
            "job": 1,
            "overrides": ["x=2", "mlflow.parent_run_id='p'"],
            "status": "FAILED",
            "error": "UserError: bad.csv: no column y",
        },
    ]
    note = sweep_description({"x": "1,2"}, children, None, jobs)
    assert note.splitlines()[2:4] == [
        "- jobs: 1 finished, 1 failed",
        "  - job 1 failed (`x=2`): UserError: bad.csv: no column y",
    ]


@pytest.mark.slow
def test_a_project_sweep_on_a_local_cluster_records_every_job_on_the_parent_run(tmp_path):
    from mlflow.tracking import MlflowClient

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = (X @ [1.5, -1.0, 0.5] + rng.logistic(size=300) > 1.0).astype(int)
    good = pd.DataFrame(X, columns=["a", "b", "c"]).assign(y=y)
    good.to_csv(tmp_path / "good.csv", index=False)
    good.drop(columns="y").to_csv(tmp_path / "bad.csv", index=False)  # no target column
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    env |= {"MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true"}
    command = [
        sys.executable, "-m", "logreg.run", "--multirun",
        "hydra/launcher=dask", "hydra.launcher.n_workers=2",
        "data=csv", "data.target=y", "data.path=good.csv,bad.csv",
        "train.epochs=5", "evaluate.baseline=false",
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode != 0, "the job on bad.csv failed every attempt"

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("logreg").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert [c.info.status for c in children] == ["FINISHED"]  # bad.csv fails before train
    assert parent.data.tags["best.run_id"] == children[0].info.run_id
    assert parent.data.metrics["sweep/jobs"] == 2
    assert parent.data.metrics["sweep/jobs_failed"] == 1
    note = parent.data.tags["mlflow.note.content"]
    assert "- jobs: 1 finished, 1 failed" in note
    failed_line = next(line for line in note.splitlines() if "job 1 failed" in line)
    assert "data.path=bad.csv" in failed_line and "bad.csv" in failed_line.split(":", 1)[1]
    assert children[0].info.run_id in note
