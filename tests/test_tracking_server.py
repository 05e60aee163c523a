"""The team tracking server: PostgreSQL + ``mlflow server`` (python -m logreg.tracking.server).

A pipeline run with ``mlflow=server`` sends its run, metrics, coefficient table, figures
and servable model through the server, whose artifacts land in its own folder; so does
each job of an 8-job parallel sweep. Twin jobs that log the same datasets and tags at
the same instant all finish; without the tracker's retry of conflicts, MLflow's race on
the dataset table shows (the sweep alone seldom hits it: its two parallel jobs drift
apart). The server's command gives one-line errors (a busy port, PostgreSQL missing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import invocations, server_command, server_env, serving, started_team_server
from logreg import LogisticRegression, preprocess
from logreg.errors import UserError
from logreg.preprocess import Preprocessing
from logreg.tracking import store
from logreg.tracking.runs import open_tracker

pytestmark = pytest.mark.slow

TINY = ["data=synthetic", "data.n_samples=400", "train.epochs=5", "evaluate.baseline=false"]
TWINS = 8  # jobs logging the same datasets and tags at once
LAUNCHERS = {  # two jobs at a time, through each launcher
    "joblib": ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"],
    "dask": ["hydra/launcher=dask", "hydra.launcher.n_workers=2"],
}
ROUNDS = 4  # each round, every twin logs into a new run two datasets new to the experiment


def run_logreg(server, cwd: Path, experiment: str, *args: str) -> None:
    """``python -m logreg.run`` on tiny data with ``mlflow=server`` pointed at ``server``."""
    tracking = ["mlflow=server", f"mlflow.tracking_uri={server.uri}"]
    command = [sys.executable, "-m", "logreg.run", *args, *TINY, *tracking]
    env = {k: v for k, v in server_env().items() if k not in ("DVC_ROOT", "MLFLOW_TRACKING_URI")}
    done = subprocess.run(
        [*command, f"mlflow.experiment_name={experiment}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]


def test_a_pipeline_run_goes_through_the_team_server(team_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    run_logreg(team_server, tmp_path, "pipeline", "hydra.run.dir=job")
    job = tmp_path / "job"

    client = MlflowClient(team_server.uri)
    experiment = client.get_experiment_by_name("pipeline")
    (run,) = client.search_runs([experiment.experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert [p.step for p in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3, 4, 5]
    assert {"val/f1", "test/f1", "test/pr_auc"} <= set(run.data.metrics)
    assert {i.dataset.name for i in run.inputs.dataset_inputs} == {
        "synthetic/train",
        "synthetic/val",
        "synthetic/test",
    }

    # Proxied artifacts: the run's root is the server's, and the files are in its folder.
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = team_server.folder / "artifacts" / experiment.experiment_id / run_id / "artifacts"
    local = job / "reports" / "coefficients.csv"
    assert (stored / "reports" / "coefficients.csv").read_bytes() == local.read_bytes()
    figures = {p.name for p in (job / "reports" / "figures").glob("*.png")}
    assert figures and {p.name for p in (stored / "figures").glob("*.png")} == figures

    # The servable model, loaded through the server, scores rows as the local model does.
    # (An earlier test in this process may have set mlflow's URI, which beats the variable.)
    import mlflow.pyfunc

    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", team_server.uri)
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    rows = pd.read_parquet(job / "data" / "raw" / "synthetic.parquet").head(7)
    scored = served.predict(rows.drop(columns=["target"]))
    model = LogisticRegression.load(job / "models" / "model.npz")
    prep = Preprocessing.from_dict(model.metadata_["preprocess"])
    features = preprocess.transform(prep, rows).drop(columns=["target"], errors="ignore")
    expected = model.predict_proba(features[list(model.feature_names_in_)].to_numpy(float))
    proba = scored[[f"proba_{c}" for c in model.classes_]].to_numpy()
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-12)

    # `mlflow models serve -m runs:/…` fetches the model through the server as well.
    model_uri = f"runs:/{run_id}/model"
    with serving(model_uri, tmp_path / "serve.log", MLFLOW_TRACKING_URI=team_server.uri) as url:
        records = rows.drop(columns=["target"]).to_dict(orient="records")
        predictions = invocations(url, records)
    answered = [[row[f"proba_{c}"] for c in model.classes_] for row in predictions]
    np.testing.assert_allclose(answered, expected, rtol=1e-12)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_eight_parallel_sweep_jobs_track_everything_through_the_team_server(
    team_server, tmp_path, launcher
):
    """The issue's failure: parallel jobs that share their data, against PostgreSQL."""
    from mlflow.tracking import MlflowClient

    sweep = ["train.batch_size=16,256", "model.penalty=l1,l2", "rebalance=none,oversample"]
    name = f"sweep-{launcher}"
    run_logreg(team_server, tmp_path, name, "--multirun", *LAUNCHERS[launcher], *sweep)

    client = MlflowClient(team_server.uri)
    experiment = client.get_experiment_by_name(name).experiment_id
    runs = client.search_runs([experiment])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 8 == len(runs) - 1
    assert parent.info.status == "FINISHED"
    combos = set()
    for child in children:
        assert child.info.status == "FINISHED"
        params = child.data.params
        combos.add(
            (params["train.batch_size"], params["model.penalty"], params["rebalance.strategy"])
        )
        assert child.data.tags["dataset.name"] == "synthetic"
        assert {i.dataset.name for i in child.inputs.dataset_inputs} == {
            "synthetic/train",
            "synthetic/val",
            "synthetic/test",
        }
        losses = client.get_metric_history(child.info.run_id, "train/loss")
        assert sorted(m.step for m in losses) == [1, 2, 3, 4, 5]
        assert {"val/f1", "test/f1"} <= set(child.data.metrics)
    assert len(combos) == 8


def log_as_twins(uri: str, experiment: str, folder: Path) -> tuple[list[str], list[str]]:
    """TWINS threads, each its own tracker, log the same datasets and tags in step.

    A barrier before each round's logging releases every twin at once, as parallel
    sweep jobs that read the same data reach their ``log_dataset`` together. Each
    round's data is a Parquet file in ``folder``, whose digest names the dataset, as a
    split file does. Returns the run ids and the errors.
    """
    frames = [
        pd.DataFrame(np.random.default_rng([round_index, os.getpid()]).normal(size=(30, 3)))
        .rename(columns=str)
        .assign(target=np.arange(30) % 2)
        for round_index in range(ROUNDS)
    ]
    sources = [folder / f"{experiment}-{i}.parquet" for i in range(ROUNDS)]
    for frame, source in zip(frames, sources, strict=True):
        frame.to_parquet(source)
    start = threading.Barrier(TWINS)
    run_ids: list[str] = []
    errors: list[str] = []

    def twin(index: int) -> None:
        try:
            tracker = open_tracker({"tracking_uri": uri, "experiment_name": experiment})
            for frame, source in zip(frames, sources, strict=True):
                with tracker.run(run_name=f"twin{index}"):
                    start.wait(timeout=120)
                    tracker.log_dataset(frame, source=source, name="shared/train", context="train")
                    tracker.log_dataset(
                        frame.head(9), source=source, name="shared/val", context="val"
                    )
                    tracker.set_tags({"dataset.name": "shared", "sweep": "twins"})
                    run_ids.append(str(tracker.run_id))
        except threading.BrokenBarrierError:
            return  # another twin failed, and said why
        except Exception as exc:
            errors.append(f"twin {index}: {exc}")
            start.abort()  # the others stop waiting for it

    threads = [threading.Thread(target=twin, args=(i,)) for i in range(TWINS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run_ids, errors


def test_twin_jobs_log_the_same_datasets_and_tags_at_once(team_server, tmp_path):
    from mlflow.tracking import MlflowClient

    run_ids, errors = log_as_twins(team_server.uri, "twins", tmp_path)
    assert errors == []
    client = MlflowClient(team_server.uri)
    assert len(run_ids) == TWINS * ROUNDS
    for run_id in run_ids:
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert sorted(i.dataset.name for i in run.inputs.dataset_inputs) == [
            "shared/train",
            "shared/val",
        ]
        assert run.data.tags["dataset.name"] == "shared"
    # One dataset per name and round for the whole experiment: no duplicates were made.
    experiment = client.get_experiment_by_name("twins").experiment_id
    digests = {
        (i.dataset.name, i.dataset.digest)
        for run in client.search_runs([experiment], max_results=1000)
        for i in run.inputs.dataset_inputs
    }
    assert len(digests) == 2 * ROUNDS


def test_without_the_retry_the_twins_collide(team_server, monkeypatch, tmp_path):
    """The race is MLflow's: with conflicts taken out of the retry, twins fail.

    If MLflow ever makes dataset logging atomic this test fails, and the retry of
    conflicts (store.CONFLICT_ERRORS) may be dropped.
    """
    monkeypatch.setattr(store, "TRANSIENT_ERRORS", ("database is locked",))
    _, errors = log_as_twins(team_server.uri, "twins-without-retry", tmp_path)
    assert errors, "no twin collided: the race no longer shows"
    assert all("dataset_pk" in error or "UniqueViolation" in error for error in errors), errors


def test_an_optuna_study_lives_in_the_servers_postgresql(team_server):
    import optuna

    done = server_command("database-uri", "--folder", str(team_server.folder))
    assert done.returncode == 0, done.stderr
    storage = done.stdout.strip()
    assert storage.startswith("postgresql+psycopg2://logreg:") and storage.endswith("/optuna")
    study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
    study.optimize(lambda trial: -(trial.suggest_float("x", -1, 1) ** 2), n_trials=3)
    assert len(optuna.load_study(study_name="search", storage=storage).trials) == 3


def test_search_optuna_with_mlflow_server_finds_the_optuna_database(team_server):
    from logreg.tracking.server import study_storage

    done = server_command("database-uri", "--folder", str(team_server.folder))
    assert study_storage(team_server.uri, team_server.folder) == done.stdout.strip()
    assert study_storage(team_server.uri + "/", team_server.folder) == done.stdout.strip()
    assert study_storage("http://127.0.0.1:1", team_server.folder) is None  # another server
    assert study_storage(None, team_server.folder) is None


def test_postgresql_down_is_one_clear_line_within_10_s(tmp_path):
    """The server answers /health with its database down; the run stops at once, not in minutes."""
    from logreg.tracking import server

    with started_team_server() as down:
        layout = server.Layout.of(down.folder)
        assert server.stop_postgres(layout, server.postgres_bindir())
        started = time.monotonic()
        with pytest.raises(UserError) as raised:
            open_tracker({"tracking_uri": down.uri})
        waited = time.monotonic() - started
        command = [sys.executable, "-m", "logreg.run", *TINY, f"mlflow.tracking_uri={down.uri}"]
        env = {k: v for k, v in server_env().items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
    # One wait of LOGREG_TRACKING_TIMEOUT's default, 10 s, for /health and the store in all:
    # a server whose store is not made yet retries its database (here it never answers).
    assert waited < 10.0 + 1.0
    assert f"the tracking server {down.uri} answers, but its store does not" in str(raised.value)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith(str(raised.value))


def test_a_busy_port_is_one_clear_line(team_server, tmp_path):
    port = int(team_server.uri.rsplit(":", 1)[1])  # the running server holds it
    folder = tmp_path / "second"
    done = server_command("start", "--folder", str(folder), "--port", str(port))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert f"port {port} on 127.0.0.1 is busy" in line
    assert not (folder / "pgdata").exists(), "checked before any work"


def test_status_and_stop_of_a_folder_where_nothing_runs(tmp_path):
    done = server_command("status", "--folder", str(tmp_path))
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        "mlflow server: not running",
        "PostgreSQL: not running (no cluster yet)",
    ]
    done = server_command("stop", "--folder", str(tmp_path))
    assert done.returncode == 0 and done.stdout.strip() == f"nothing was running in {tmp_path}"


def test_postgresql_missing_is_one_line_naming_the_package(tmp_path):
    env = {**server_env(), "PATH": str(Path(sys.executable).parent)}
    code = (
        "import glob; glob.glob = lambda pattern: []\n"  # hide /usr/lib/postgresql/*/bin
        "from logreg.tracking import server; server.main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "start", "--folder", str(tmp_path), "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.endswith("apt-get install postgresql")
