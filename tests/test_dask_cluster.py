"""The project's sweeps on real Dask clusters: a running scheduler, a lost worker, a killed search.

A real ``dask scheduler`` with two ``dask worker --nthreads 1`` processes on loopback
(conftest.dask_cluster) runs ``python -m logreg.run -m hydra/launcher=dask`` on tiny
data, tracked on the PostgreSQL-backed team server; then one worker is killed while
both run a job. An Optuna search on a LocalCluster is killed after 3 trials and
restarted on the same study.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import dask_cluster, server_command, server_env, started_team_server

pytestmark = pytest.mark.slow

TINY = ["data=synthetic", "data.n_samples=400", "train.epochs=5", "evaluate.baseline=false"]
EPOCHS = 5
GRID = ["train.batch_size=16,256", "model.penalty=l1,l2"]
COMBOS = {("16", "l1"), ("16", "l2"), ("256", "l1"), ("256", "l2")}


def sweep_env(**extra: str) -> dict[str, str]:
    """The sweep's and the workers' environment: no inherited run, root or store."""
    env = {k: v for k, v in server_env().items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    return {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"} | extra


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "logreg.run", "--multirun", "hydra/launcher=dask", *TINY, *args]


def children_of_the_sweep(uri: str, experiment: str) -> tuple[object, list]:
    """The experiment's one parent run, and its children."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(runs) - 1
    return parent, children


def assert_four_finished_with_every_step(uri: str, children: list) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    finished = [c for c in children if c.info.status == "FINISHED"]
    combos = [(c.data.params["train.batch_size"], c.data.params["model.penalty"]) for c in finished]
    assert sorted(combos) == sorted(COMBOS)
    for child in finished:
        losses = client.get_metric_history(child.info.run_id, "train/loss")
        assert sorted(m.step for m in losses) == list(range(1, EPOCHS + 1))
        assert {i.dataset.name for i in child.inputs.dataset_inputs} == {
            "synthetic/train",
            "synthetic/val",
            "synthetic/test",
        }
        assert {"val/f1", "test/f1"} <= set(child.data.metrics)


def test_a_sweep_on_a_running_cluster_is_tracked_on_the_team_server(team_server, tmp_path):
    tracking = [f"mlflow.tracking_uri={team_server.uri}", "mlflow.experiment_name=cluster"]
    with dask_cluster(2, tmp_path, sweep_env()) as (address, workers):
        command = sweep_command(f"hydra.launcher.address={address}", *tracking, *GRID)
        done = subprocess.run(
            command, cwd=tmp_path, env=sweep_env(), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-4000:]
        parent, children = children_of_the_sweep(team_server.uri, "cluster")
        # Each run's process (its pid tag) is a worker of this cluster, still running.
        groups = {process_group(int(c.data.tags["logreg.pid"])) for c in children}
        assert groups <= {worker.pid for worker in workers}

    assert parent.info.status == "FINISHED"
    assert [c.info.status for c in children] == ["FINISHED"] * 4
    assert_four_finished_with_every_step(team_server.uri, children)
    assert parent.data.metrics["sweep/jobs"] == 4 and parent.data.metrics["sweep/jobs_failed"] == 0


def process_group(pid: int) -> int | None:
    """The process group of a running process; None when it has exited."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def wait_until(condition, what: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s"
        time.sleep(0.2)


@contextlib.contextmanager
def sweep_in_background(
    command: list[str], cwd: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen]:
    """The sweep in its own process group, its output in ``cwd/sweep.log``; killed after,
    with its LocalCluster if it has one, when it still runs."""
    with (cwd / "sweep.log").open("w") as log:
        sweep = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield sweep
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
            sweep.wait(timeout=30)


def test_a_worker_killed_mid_sweep_costs_a_rerun_not_a_job(tmp_path):
    """Both workers run a job with its MLflow run open; one dies; its job runs again."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = sweep_env(MLFLOW_TRACKING_URI=uri)

    def running_children() -> list:
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("logreg")
        if experiment is None:
            return []
        runs = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
        return [r for r in runs if "mlflow.parentRunId" in r.data.tags]

    with dask_cluster(2, tmp_path, env) as (address, workers):
        command = sweep_command(f"hydra.launcher.address={address}", "hydra.launcher.retries=1")
        with sweep_in_background([*command, *GRID], tmp_path, env) as sweep:
            # A job's folder: the sweep has made the store (read it no sooner: it migrates).
            wait_until(lambda: any(tmp_path.glob("multirun/*/*/[0-9]")), "a job", sweep)
            wait_until(lambda: len(running_children()) == 2, "two jobs running at once", sweep)
            # The worker that runs the first of them (its run's pid tag): nanny and all.
            job_pid = int(running_children()[0].data.tags["logreg.pid"])
            (worker,) = [w for w in workers if process_group(job_pid) == w.pid]
            os.killpg(worker.pid, signal.SIGKILL)
            sweep.wait(timeout=600)
    assert sweep.returncode == 0, (tmp_path / "sweep.log").read_text()[-4000:]

    parent, children = children_of_the_sweep(uri, "logreg")
    assert parent.info.status == "FINISHED"
    assert_four_finished_with_every_step(uri, children)
    # The lost job's first run: ended KILLED by the next run on this host, not left RUNNING.
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4 + ["KILLED"]


def test_an_optuna_search_on_the_cluster_killed_after_3_trials_resumes_to_6(tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    command = sweep_command(
        "search=optuna", "hydra.sweeper.n_trials=6", "hydra.sweeper.n_jobs=2",
        "hydra.launcher.n_workers=2", f"hydra.sweeper.storage={storage}",
    )  # fmt: skip
    env = sweep_env(MLFLOW_TRACKING_URI=uri)

    def count(*states: TrialState) -> int:
        study = optuna.load_study(study_name="logreg", storage=storage)
        return len(study.get_trials(deepcopy=False, states=states))

    # Killed at the end of the block: the sweep and its LocalCluster.
    with sweep_in_background(command, tmp_path, env) as sweep:
        # The sweeper saves multirun.yaml once the study exists: no second process makes it.
        saved = "multirun/*/*/multirun.yaml"
        wait_until(lambda: any(tmp_path.glob(saved)), "the study", sweep)
        # Trials are told in batches of two: kill once 3 or more completed and the next run.
        wait_until(
            lambda: count(TrialState.COMPLETE) >= 3 and count(TrialState.RUNNING) > 0,
            "3 completed trials and more running",
            sweep,
        )
    killed = optuna.load_study(study_name="logreg", storage=storage)
    interrupted = [t.params for t in killed.get_trials(states=(TrialState.RUNNING,))]
    assert interrupted and count(TrialState.COMPLETE) + len(interrupted) <= 6

    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]

    study = optuna.load_study(study_name="logreg", storage=storage)
    trials = study.get_trials()
    ran = [t for t in trials if t.state == TrialState.COMPLETE or "error" in t.user_attrs]
    assert len(ran) == 6, [(t.number, t.state) for t in trials]
    assert TrialState.RUNNING not in {t.state for t in trials}
    # The interrupted proposals ran again, and no more trials than were missing.
    assert [t.params for t in trials[-len(interrupted) :]] == interrupted
    assert len(trials) == 6 + len(interrupted)

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("logreg").experiment_id])
    finished = [
        r for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.status == "FINISHED"
    ]
    assert len(finished) == sum(t.state == TrialState.COMPLETE for t in trials)
    best_f1 = max(r.data.metrics["val/f1"] for r in finished)
    assert study.best_value == pytest.approx(best_f1, abs=1e-12)


RESTART_GRID = ["train.batch_size=16,64,256,full", "model.penalty=l1,l2"]  # 8 jobs
OUTAGE_S = 3.0  # seconds the tracking server stays down before it starts again


def test_a_tracking_server_restarted_mid_sweep_leaves_no_run_running(tmp_path):
    """The team's ``mlflow server`` stops while jobs run and starts again on the same port
    and store: the jobs ride over the outage, and every run of the sweep ends."""
    from mlflow.tracking import MlflowClient

    from logreg.tracking import server

    with started_team_server() as team:
        port = str(urlsplit(team.uri).port)
        tracking = [f"mlflow.tracking_uri={team.uri}", "mlflow.experiment_name=restart"]
        client = MlflowClient(team.uri)

        def finished_children() -> int:
            experiment = client.get_experiment_by_name("restart")
            if experiment is None:
                return 0
            query = "attributes.status = 'FINISHED' and tags.`mlflow.parentRunId` != ''"
            return len(client.search_runs([experiment.experiment_id], query))

        with dask_cluster(2, tmp_path, sweep_env()) as (address, _):
            command = sweep_command(f"hydra.launcher.address={address}", *tracking, *RESTART_GRID)
            with sweep_in_background(command, tmp_path, sweep_env()) as sweep:
                wait_until(lambda: finished_children() >= 1, "a finished job", sweep)
                layout = server.Layout.of(team.folder)
                server.stop_process_group(server.mlflow_pid(layout))
                time.sleep(OUTAGE_S)
                restarted = server_command("start", "--folder", str(team.folder), "--port", port)
                assert restarted.returncode == 0, restarted.stderr
                assert sweep.poll() is None, "the sweep ended before the server came back"
                sweep.wait(timeout=600)
        assert sweep.returncode == 0, (tmp_path / "sweep.log").read_text()[-4000:]

        parent, children = children_of_the_sweep(team.uri, "restart")
        experiment = client.get_experiment_by_name("restart").experiment_id
        running = client.search_runs([experiment], "attributes.status = 'RUNNING'")
    assert [r.info.run_id for r in running] == []
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["sweep/jobs"] == 8 and parent.data.metrics["sweep/jobs_failed"] == 0
    finished = [c for c in children if c.info.status == "FINISHED"]
    combos = {(c.data.params["train.batch_size"], c.data.params["model.penalty"]) for c in finished}
    assert len(combos) == 8 and all("val/f1" in c.data.metrics for c in finished)
    assert {c.info.status for c in children} == {"FINISHED"}
