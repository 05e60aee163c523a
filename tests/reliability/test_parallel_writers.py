"""Eight jobs logging at once lose nothing: to one brand-new sqlite store, and to a server.

Each job is a separate process (parallel_worker.py) that logs what the train and
evaluate stages log. The jobs import everything first and then start together, so
all eight open the store in the same instant: the sqlite file's first creation (its
schema migrations) races unless tracking serialises it. Afterwards every run must be
present and FINISHED, with every metric point of its history.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from parallel_worker import PARAMS
from reliability_helpers import clean_env

from logreg.tracking.runs import flatten

pytestmark = pytest.mark.reliability

JOBS = 8
EPOCHS = 300  # per-epoch points of train/loss, val/loss and train/lr per job
WORKER = Path(__file__).with_name("parallel_worker.py")
READY_WAIT = 120.0  # seconds for the jobs' imports, on a loaded machine


def run_jobs(uri: str, tmp_path: Path) -> list[str]:
    """Start JOBS writers, release them together, return their run ids."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), uri, str(go), str(index), str(EPOCHS), str(tmp_path)],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(JOBS)
    ]
    try:
        # Each job creates its work folder when its imports are done; then all start at once.
        deadline = time.monotonic() + READY_WAIT
        while sum((tmp_path / f"job{i}").is_dir() for i in range(JOBS)) < JOBS:
            assert time.monotonic() < deadline, "the jobs did not get ready"
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        time.sleep(1.0)  # the last ones reach their wait loop
        go.touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
    return [out.strip().splitlines()[-1] for out, _ in outputs]  # each job prints its run id


def check_nothing_lost(uri: str, run_ids: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e for e in client.search_experiments() if e.name == "parallel"]
    assert len(experiments) == 1
    runs = client.search_runs([experiments[0].experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids)
    for run in runs:
        assert run.info.status == "FINISHED", run.info
        job = int(run.data.params["job"])
        for key in ("train/loss", "val/loss", "train/lr"):
            points = client.get_metric_history(run.info.run_id, key)
            assert sorted(p.step for p in points) == list(range(1, EPOCHS + 1)), (job, key)
        loss = {p.step: p.value for p in client.get_metric_history(run.info.run_id, "train/loss")}
        assert loss[EPOCHS] == pytest.approx(1.0 / EPOCHS + job)  # this job's own points
        assert {"val/f1", "test/f1", "train/epochs", "train/time_s"} <= set(run.data.metrics)
        assert len(run.data.params) == len(flatten(PARAMS)) + 1  # the config, plus "job"
        assert run.data.tags["job"] == str(job) and run.data.tags["positive_class"] == "1"
        assert len(run.inputs.dataset_inputs) == 2
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "reports")}
        names = ("history.csv", "coefficients.csv", "metrics.json")
        assert artifacts == {f"reports/{name}" for name in names}
    # The store is not left locked: one more run goes through at once.
    started = time.monotonic()
    run = client.create_run(experiments[0].experiment_id)
    client.set_terminated(run.info.run_id)
    assert time.monotonic() - started < 5


def test_eight_jobs_on_one_brand_new_sqlite_store(tmp_path):
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    uri = f"sqlite:///{store}"
    run_ids = run_jobs(uri, tmp_path)
    check_nothing_lost(uri, run_ids)


@pytest.mark.slow
def test_eight_jobs_on_a_real_mlflow_server(tmp_path, mlflow_server):
    run_ids = run_jobs(mlflow_server, tmp_path)
    check_nothing_lost(mlflow_server, run_ids)
