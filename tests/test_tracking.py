"""MLflow tracking against an sqlite store in tmp_path, and against a real ``mlflow server``.

Nothing reaches the network: the stores are files in tmp_path, the servers listen on
127.0.0.1, and telemetry is off.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from browser import offline_page
from conftest import free_port, mlflow_cli, server_env, stop, wait_for
from logreg import LogisticRegression, preprocess
from logreg.errors import UserError
from logreg.preprocess import Preprocessing
from logreg.tracking.orphans import HOST_TAG, ORPHAN_TAG, PID_TAG, STARTED_TAG
from logreg.tracking.provenance import git_info
from logreg.tracking.runs import (
    MODEL_TAG,
    MlflowTracker,
    NullTracker,
    flatten,
    open_tracker,
    read_run_file,
    trained_run,
    write_run_file,
)
from logreg.tracking.served import MODEL_FILE, ServedModel, _load_pyfunc
from logreg.tracking.store import resolve_tracking_uri

EPOCHS = 6


@pytest.fixture
def env(isolated_tracking):
    return isolated_tracking


@dataclass
class Fitted:
    model: LogisticRegression
    path: Path  # model.npz, saved with its preprocessing in the metadata
    raw: pd.DataFrame  # rows of the original columns, as the served model takes them
    X: pd.DataFrame  # the same rows prepared: the features the model was fitted on
    prep: Preprocessing


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A tiny model fitted for EPOCHS epochs on prepared features, saved as the train stage does."""
    rng = np.random.default_rng(0)
    raw = pd.DataFrame(
        {
            "f_a": rng.normal(5.0, 2.0, 120),
            "f_b": rng.normal(size=120),
            "colour": rng.choice(["blue", "green", "red"], 120),
        }
    )
    signal = raw["f_a"] / 2 - raw["f_b"] + (raw["colour"] == "red") + rng.normal(size=120)
    y = np.where(signal > 3.0, "Yes", "No")
    prep = preprocess.fit(raw)
    X = preprocess.transform(prep, raw)
    model = LogisticRegression(batch_size=16, epochs=EPOCHS, patience=None, tol=0.0).fit(X, y)
    path = tmp_path_factory.mktemp("model") / "model.npz"
    model.save(path, metadata={"positive_class": "Yes", "preprocess": prep.to_dict()})
    return Fitted(model, path, raw, X, prep)


def mlflow_cfg(uri: str | None, enabled: bool = True) -> dict:
    return {"enabled": enabled, "tracking_uri": uri, "experiment_name": "tests"}


def train_then_evaluate(tracker: MlflowTracker, fitted, tmp_path: Path) -> str:
    """What the two stages do: start a run in 'train', resume it in 'evaluate'."""
    model, path, X = fitted.model, fitted.path, fitted.X
    with tracker.run(run_name="tiny") as active:
        active.log_params({"train": {"batch_size": 16}, "model": {"penalty": "l2"}})
        active.log_history(model.history_, start_ms=int(time.time() * 1000))
        active.log_metrics({"n_nonzero_coef": int(np.count_nonzero(model.coef_))})
        active.set_tags({"dataset.name": "tiny", "rebalance.strategy": "none", MODEL_TAG: "m"})
        active.log_dataset(
            X.assign(target="No"), source=path, name="tiny/train", context="train", targets="target"
        )
        write_run_file(tmp_path / "run.json", tracker, model_sha256="m", train_time_s=0.5)
    run_id = tracker.run_id

    resumed = trained_run(tracker, "m", tmp_path / "run.json")
    assert resumed == run_id
    coefficients = tmp_path / "coefficients.csv"
    pd.DataFrame({"feature": X.columns, "coefficient": model.coef_[0]}).to_csv(coefficients)
    with tracker.run(run_id=resumed) as active:
        active.log_metrics({"test": {"precision": 0.5, "recall": 0.25, "f1": 1 / 3}})
        active.log_artifact(coefficients, "reports")
        active.log_model(path, input_example=fitted.raw.head(3), positive="Yes", threshold=0.4)
    return run_id


def test_resolve_tracking_uri_prefers_config_then_env_then_root_sqlite(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path) == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:////abs/x.db", tmp_path) == "sqlite:////abs/x.db"
    # Relative paths land in the project root, not in a DVC experiment's temporary copy.
    assert resolve_tracking_uri("sqlite:///rel.db", tmp_path) == f"sqlite:///{tmp_path}/rel.db"
    assert resolve_tracking_uri("mlruns", tmp_path) == (tmp_path / "mlruns").as_uri()


def test_project_root_comes_from_dvc_root(env):
    tracker = open_tracker(mlflow_cfg(None))
    assert tracker.uri == f"sqlite:///{env}/mlflow.db"
    experiment = tracker.client.get_experiment(tracker.experiment_id)
    assert experiment.artifact_location == (env / "mlartifacts").as_uri()


def test_the_experiment_opens_on_its_runs_in_the_ui(env):
    """New or older, the experiment has the kind that makes MLflow's UI show its runs."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{env}/store.db"
    kind = "mlflow.experimentKind"
    open_tracker(mlflow_cfg(uri))
    client = MlflowClient(tracking_uri=uri)
    assert client.get_experiment_by_name("tests").tags[kind] == "custom_model_development"

    # An experiment created before the tag existed gets it with its next run.
    older = client.create_experiment("older")
    assert kind not in client.get_experiment(older).tags
    tracker = open_tracker({**mlflow_cfg(uri), "experiment_name": "older"})
    with tracker.run(run_name="next"):
        pass
    assert tracker.experiment_id == older
    assert client.get_experiment(older).tags[kind] == "custom_model_development"

    # A kind chosen in the UI is left alone.
    chosen = client.create_experiment("chosen", tags={kind: "genai_development"})
    open_tracker({**mlflow_cfg(uri), "experiment_name": "chosen"})
    assert client.get_experiment(chosen).tags[kind] == "genai_development"


def test_a_job_that_loses_the_race_to_tag_the_experiment_goes_on(env, monkeypatch):
    """Two jobs see the tag missing; the slower insert fails, and the tag is there."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{env}/store.db"
    older = MlflowClient(tracking_uri=uri).create_experiment("older")
    set_tag = MlflowClient.set_experiment_tag

    def other_job_first(self, *args):
        set_tag(self, *args)
        raise MlflowException("UNIQUE constraint failed: experiment_tags.key")

    monkeypatch.setattr(MlflowClient, "set_experiment_tag", other_job_first)
    tracker = open_tracker({**mlflow_cfg(uri), "experiment_name": "older"})
    assert tracker.experiment_id == older


def test_flatten_joins_nested_keys():
    assert flatten({"train": {"batch_size": 16, "x": {"y": None}}, "a": 1}) == {
        "train.batch_size": 16,
        "train.x.y": None,
        "a": 1,
    }
    assert flatten({"test": {"f1": 0.5}}, sep="/") == {"test/f1": 0.5}


def test_a_run_spanning_train_and_evaluate_is_finished_and_complete(env, fitted):
    import mlflow

    model, X = fitted.model, fitted.X
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    run_id = train_then_evaluate(tracker, fitted, env)

    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "16"
    assert run.data.params["model.penalty"] == "l2"
    steps = tracker.client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in steps) == list(range(1, EPOCHS + 1))
    assert len(tracker.client.get_metric_history(run_id, "train/lr")) == EPOCHS
    for key in ("test/precision", "test/recall", "test/f1", "n_nonzero_coef"):
        assert key in run.data.metrics
    assert run.data.tags["dataset.name"] == "tiny"
    assert run.inputs.dataset_inputs[0].dataset.name == "tiny/train"
    artifacts = [a.path for a in tracker.client.list_artifacts(run_id, "reports")]
    assert "reports/coefficients.csv" in artifacts

    # The logged pyfunc takes the original columns, in any order, applies the training
    # preprocessing and reproduces predict_proba on the prepared rows exactly.
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    out = loaded.predict(fitted.raw[["colour", "f_b", "f_a"]])
    assert np.array_equal(out[["proba_No", "proba_Yes"]].to_numpy(), model.predict_proba(X))
    proba_yes = model.predict_proba(X)[:, 1]
    assert (out["label"] == np.where(proba_yes >= 0.4, "Yes", "No")).all()
    # Weights come from npz/json: no pickle anywhere in the logged model.
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(env)))
    files = {p.name for p in local.rglob("*") if p.is_file()}
    assert {"model.npz", "model.json", "MLmodel"} <= files
    assert not any(name.endswith((".pkl", ".pickle", ".cloudpickle")) for name in files)
    assert "loader_module: logreg.tracking.served" in (local / "MLmodel").read_text()


def test_a_logged_dataset_carries_file_digest_schema_and_rows_without_a_per_cell_pass(
    env, monkeypatch
):
    """MLflow's from_pandas checks every cell in Python (75 s at 2M rows); we sample.

    The test counts MLflow's per-cell check: a pass over the whole table would make
    5,000 x 4 calls, the schema sample at most SCHEMA_SAMPLE_ROWS x 4. MLflow's digest
    of a frame (a per-cell type map) must not run at all.
    """
    import hashlib

    import mlflow.data.digest_utils
    import mlflow.data.pandas_dataset
    import mlflow.types.utils

    from logreg.tracking.runs import SCHEMA_SAMPLE_ROWS

    rng = np.random.default_rng(0)
    n = 5 * SCHEMA_SAMPLE_ROWS
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=["x0", "x1", "x2"])
    frame["target"] = rng.integers(0, 2, size=n)
    source = env / "train.parquet"
    frame.to_parquet(source, index=False)

    checked = []
    per_cell = mlflow.types.utils._is_none_or_nan
    monkeypatch.setattr(
        mlflow.types.utils, "_is_none_or_nan", lambda x: checked.append(1) or per_cell(x)
    )

    def no_frame_digest(df):
        raise AssertionError("the frame was hashed cell by cell")

    monkeypatch.setattr(mlflow.data.digest_utils, "compute_pandas_digest", no_frame_digest)
    monkeypatch.setattr(mlflow.data.pandas_dataset, "compute_pandas_digest", no_frame_digest)

    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    with tracker.run(run_name="datasets") as active:
        active.log_dataset(frame, source=source, name="s/train", context="train", targets="target")
    assert len(checked) <= SCHEMA_SAMPLE_ROWS * 4

    (logged,) = tracker.client.get_run(tracker.run_id).inputs.dataset_inputs
    dataset = logged.dataset
    assert dataset.name == "s/train"
    assert dataset.digest == hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    assert json.loads(dataset.source)["uri"] == str(source.resolve())
    columns = json.loads(dataset.schema)["mlflow_colspec"]
    assert [(c["name"], c["type"]) for c in columns] == [
        ("x0", "double"),
        ("x1", "double"),
        ("x2", "double"),
        ("target", "long"),
    ]
    assert json.loads(dataset.profile)["num_rows"] == n
    assert {(t.key, t.value) for t in logged.tags} == {("mlflow.data.context", "train")}


def test_a_failing_block_marks_the_run_failed(env):
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    with pytest.raises(ZeroDivisionError), tracker.run(run_name="boom"):
        1 / 0  # noqa: B018
    run = tracker.client.get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["logreg.error"] == "ZeroDivisionError: division by zero"


def test_a_run_whose_store_fails_at_its_end_is_ended_when_the_store_answers(env, monkeypatch):
    """The store refuses the run's end once (a server restarting): the run still ends,
    and no run is left on MLflow's stack for the process's next job."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    real = MlflowClient.set_terminated
    refusals = []

    def refuse_once(self, run_id, status=None, end_time=None):
        if not refusals:
            refusals.append(run_id)
            raise MlflowException("Max retries exceeded: [Errno 111] Connection refused")
        return real(self, run_id, status, end_time)

    monkeypatch.setattr(MlflowClient, "set_terminated", refuse_once)
    with tracker.run(run_name="outage"):
        pass
    assert refusals == [tracker.run_id]
    assert tracker.client.get_run(tracker.run_id).info.status == "FINISHED"
    assert mlflow.active_run() is None


def test_interrupts_and_sigterm_mark_the_run_killed(env):
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    with pytest.raises(KeyboardInterrupt), tracker.run(run_name="ctrl-c"):
        raise KeyboardInterrupt
    assert tracker.client.get_run(tracker.run_id).info.status == "KILLED"
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be installed in the main thread")
    with pytest.raises(KeyboardInterrupt), tracker.run(run_name="sigterm"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert tracker.client.get_run(tracker.run_id).info.status == "KILLED"


def test_child_runs_name_their_parent(env):
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    with tracker.run(run_name="sweep"):
        parent = tracker.run_id
        with tracker.run(run_name="job", parent_run_id=parent):
            child = tracker.run_id
        assert tracker.run_id == parent
    assert tracker.client.get_run(child).data.tags["mlflow.parentRunId"] == parent
    assert tracker.client.get_run(child).info.status == "FINISHED"
    assert tracker.client.get_run(parent).info.status == "FINISHED"


def test_long_histories_are_sent_in_chunks(env):
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": None, "learning_rate": 0.1, "elapsed": e}
        for e in range(1, 1201)
    ]
    calls = []
    with tracker.run():
        original = tracker.client.log_batch

        def spy(*args, **kwargs):
            calls.append(len(kwargs["metrics"]))
            return original(*args, **kwargs)

        tracker.client.log_batch = spy
        tracker.log_history(history, start_ms=0)
    assert calls == [1000, 1000, 400]
    assert len(tracker.client.get_metric_history(tracker.run_id, "train/loss")) == 1200


def test_evaluate_finds_trains_run_by_its_run_file_else_by_the_model_digest(env):
    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    run_file = env / ".logreg" / "run.json"
    runs = {}
    for name, digest in (("old", "a"), ("twin", "b"), ("newer twin", "b")):
        with tracker.run(run_name=name):
            tracker.set_tags({MODEL_TAG: digest})
            if name == "twin":
                write_run_file(run_file, tracker, model_sha256=digest, train_time_s=1.5)
        runs[name] = tracker.run_id
        time.sleep(0.01)  # distinct start times: the newest run is well defined
    assert read_run_file(run_file)["train_time_s"] == 1.5
    # The run file is exact, even when a newer run (a parallel job) trained an equal model.
    assert trained_run(tracker, "b", run_file) == runs["twin"]
    # No run file, or one about another model: the newest run tagged with the digest.
    assert trained_run(tracker, "b") == runs["newer twin"]
    assert trained_run(tracker, "a", run_file) == runs["old"]
    assert trained_run(tracker, "c", run_file) is None
    tracker.client.delete_run(runs["twin"])  # a run file naming a deleted run
    assert trained_run(tracker, "b", run_file) == runs["newer twin"]
    run_file.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a run file"):
        read_run_file(run_file)


def test_disabled_tracking_is_a_no_op(env, fitted):
    tracker = open_tracker(mlflow_cfg(None, enabled=False))
    assert isinstance(tracker, NullTracker)
    with tracker.run() as active:
        active.log_params({"a": 1})
        active.log_model(fitted.path, input_example=fitted.raw)
    write_run_file(env / "run.json", tracker, model_sha256="m", train_time_s=0.5)
    assert read_run_file(env / "run.json")["run_id"] is None
    assert trained_run(tracker, "m", env / "run.json") is None
    assert not (env / "mlflow.db").exists()


def test_an_unreachable_server_fails_fast_with_a_clear_error(env):
    start = time.monotonic()
    with pytest.raises(UserError, match="did not answer"):
        open_tracker(mlflow_cfg(f"http://127.0.0.1:{free_port()}"))
    assert time.monotonic() - start < 10


def test_a_sweep_job_waits_for_its_server_then_says_it_stayed_down(env, monkeypatch):
    """A job of a sweep (its parent run named) polls a refused server until the outage
    timeout, then fails in one line; a run of its own fails at the first refusal."""
    monkeypatch.setenv("LOGREG_TRACKING_OUTAGE_TIMEOUT", "1.5")
    uri = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(UserError, match=r"did not answer within 1.5 s"):
        open_tracker(mlflow_cfg(uri) | {"parent_run_id": "0" * 32})
    assert 1.5 <= time.monotonic() - start < 5
    start = time.monotonic()
    with pytest.raises(UserError, match="did not answer"):
        open_tracker(mlflow_cfg(uri))
    assert time.monotonic() - start < 1.0


def test_a_server_that_comes_back_within_the_wait_is_reachable():
    """Nothing listens for a second, then a server answers every GET: the check returns."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from logreg.tracking.store import check_reachable

    class Answers(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None: ...

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    with pytest.raises(UserError):  # without waiting, the refusal decides
        check_reachable(uri, 10.0)
    servers: list[HTTPServer] = []

    def come_back() -> None:
        time.sleep(1.0)
        servers.append(HTTPServer(("127.0.0.1", port), Answers))
        servers[0].serve_forever()

    thread = threading.Thread(target=come_back, daemon=True)
    thread.start()
    start = time.monotonic()
    try:
        check_reachable(uri, 10.0, wait=True)
        assert 1.0 <= time.monotonic() - start < 10.0
    finally:
        while not servers:
            time.sleep(0.05)
        servers[0].shutdown()
        servers[0].server_close()


def test_git_info_reads_the_commit_and_tolerates_no_repository(tmp_path):
    assert git_info(tmp_path) == {}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f").write_text("x")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    info = git_info(tmp_path)
    assert info["git.commit"] == sha.strip()
    assert info["git.dirty"] == "false"


@pytest.mark.slow
def test_against_a_real_mlflow_server(env, fitted, mlflow_server, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # the env var route
    tracker = open_tracker(mlflow_cfg(None))
    assert tracker.uri == mlflow_server
    run_id = train_then_evaluate(tracker, fitted, env)

    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "16"
    assert len(tracker.client.get_metric_history(run_id, "train/loss")) >= EPOCHS
    assert {"test/precision", "test/recall", "test/f1"} <= set(run.data.metrics)
    artifacts = [a.path for a in tracker.client.list_artifacts(run_id, "reports")]
    assert "reports/coefficients.csv" in artifacts
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert np.array_equal(
        loaded.predict(fitted.raw)[["proba_No", "proba_Yes"]].to_numpy(),
        fitted.model.predict_proba(fitted.X),
    )


# MLflow 3.17's UI opens an experiment on the page of its GenAI / Model training switch,
# whatever the experiment's kind: "Model training" lists the runs (README, Comparing runs).
RUNS_PAGE = "{server}/#/experiments/{experiment_id}?workflowType=machine_learning"


@pytest.mark.slow
def test_the_ui_lists_the_runs_of_the_logreg_experiment(
    env, fitted, mlflow_server, monkeypatch, chromium
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    tracker = open_tracker({**mlflow_cfg(None), "experiment_name": "logreg"})
    train_then_evaluate(tracker, fitted, env)  # the run "tiny"
    with tracker.run(run_name="tiny-again"):
        pass

    page_url = RUNS_PAGE.format(server=mlflow_server, experiment_id=tracker.experiment_id)
    with offline_page(chromium) as offline:
        page = offline.page
        page.goto(page_url)
        for name in ("tiny", "tiny-again"):
            page.get_by_text(name, exact=True).first.wait_for()  # the runs table's name column
        assert "/runs" in page.url
        assert page.get_by_text("Token Usage").count() == 0  # the GenAI overview's panel
    assert offline.blocked == []


@pytest.mark.slow
def test_models_serve_scores_json_rows_offline(env, fitted):
    import mlflow

    tracker = open_tracker(mlflow_cfg(f"sqlite:///{env}/store.db"))
    run_id = train_then_evaluate(tracker, fitted, env)
    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(env / "m"))
    port = free_port()
    serve = ["models", "serve", "-m", local, "--env-manager", "local", "-w", "1"]
    proc = subprocess.Popen(
        [mlflow_cli(), *serve, "-h", "127.0.0.1", "-p", str(port)],
        stdout=(env / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=server_env(),
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/ping", proc)
        rows = fitted.raw.head(4).to_dict(orient="records")
        body = json.dumps({"dataframe_records": rows}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
    finally:
        stop(proc)
    served = np.array([[row["proba_No"], row["proba_Yes"]] for row in predictions])
    np.testing.assert_allclose(served, fitted.model.predict_proba(fitted.X.head(4)), rtol=1e-12)


def test_the_served_model_imputes_gaps_and_names_a_missing_column(fitted):
    served = ServedModel(fitted.model, "Yes", 0.5, fitted.prep)
    rows = fitted.raw.head(3).copy()
    rows.loc[1, "f_b"] = np.nan  # imputed with the train median, as in prepare
    expected = fitted.model.predict_proba(preprocess.transform(fitted.prep, rows))
    np.testing.assert_array_equal(served.predict(rows)[["proba_No", "proba_Yes"]], expected)
    with pytest.raises(ValueError, match=r"input: missing column\(s\) \['colour'\]"):
        served.predict(rows.drop(columns="colour"))


def test_a_model_prepared_with_missing_drop_refuses_a_row_with_a_gap(fitted):
    served = ServedModel(fitted.model, "Yes", 0.5, preprocess.fit(fitted.raw, missing="drop"))
    rows = fitted.raw.head(3).copy()
    rows.loc[2, "colour"] = None
    with pytest.raises(ValueError, match=r"input row 3 \(1-based, header excluded\) has a missing"):
        served.predict(rows)


def test_a_model_saved_without_preprocessing_serves_prepared_features(fitted, tmp_path):
    folder = tmp_path / "logreg"
    folder.mkdir()
    fitted.model.save(folder / MODEL_FILE, metadata={"positive_class": "Yes"})
    served = _load_pyfunc(str(folder))
    assert served.preprocessing is None
    np.testing.assert_array_equal(
        served.predict(fitted.X)[["proba_No", "proba_Yes"]], fitted.model.predict_proba(fitted.X)
    )


def test_a_model_logged_before_tracking_became_a_package_still_loads(fitted, tmp_path):
    import mlflow

    # Such a model's MLmodel names the old module, logreg.tracking, as its loader.
    data = tmp_path / "logreg"
    data.mkdir()
    fitted.model.save(data / MODEL_FILE, metadata={"preprocess": fitted.prep.to_dict()})
    mlflow.pyfunc.save_model(
        tmp_path / "model", loader_module="logreg.tracking", data_path=data, pip_requirements=[]
    )
    assert "loader_module: logreg.tracking\n" in (tmp_path / "model" / "MLmodel").read_text()
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    np.testing.assert_array_equal(
        loaded.predict(fitted.raw)[["proba_No", "proba_Yes"]].to_numpy(),
        fitted.model.predict_proba(fitted.X),
    )


def test_a_run_left_running_by_a_killed_process_is_ended_by_the_next_run(env):
    uri = f"sqlite:///{env}/store.db"
    tracker = open_tracker(mlflow_cfg(uri))
    # A process that dies holding its run open, as under SIGKILL or the OOM killer.
    script = (
        "import os, signal\n"
        "from logreg.tracking.runs import open_tracker\n"
        f"tracker = open_tracker({mlflow_cfg(uri)!r})\n"
        "with tracker.run(run_name='doomed'):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], env=server_env(), capture_output=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (doomed,) = tracker.client.search_runs([tracker.experiment_id])
    assert doomed.info.status == "RUNNING"

    here = socket.gethostname()
    recycled = tracker.client.create_run(  # this live pid, but a process started earlier
        tracker.experiment_id,
        tags={HOST_TAG: here, PID_TAG: str(os.getpid()), STARTED_TAG: "1.000"},
    )
    elsewhere = tracker.client.create_run(  # another host's process: not ours to judge
        tracker.experiment_id, tags={HOST_TAG: f"not-{here}", PID_TAG: "1", STARTED_TAG: "0"}
    )
    live = tracker.open_run("a sweep's parent, held open by this process")
    with tracker.run(run_name="next"):
        pass

    status = {
        r.info.run_id: r.info.status for r in tracker.client.search_runs([tracker.experiment_id])
    }
    assert status[doomed.info.run_id] == "KILLED"
    assert status[recycled.info.run_id] == "KILLED"
    assert status[elsewhere.info.run_id] == "RUNNING"
    assert status[live] == "RUNNING"
    note = tracker.client.get_run(doomed.info.run_id).data.tags[ORPHAN_TAG]
    assert f"its process {doomed.data.tags[PID_TAG]} on {here} exited without ending it" in note


def test_a_logged_datasets_schema_is_mlflows_own_without_its_per_cell_loop():
    import warnings

    from mlflow.types.utils import _infer_schema

    from logreg.tracking.runs import _frame_schema

    frame = pd.DataFrame(
        {
            "x": [0.5, np.nan, 2.0, 3.0],  # a gap: not required
            "z": np.arange(4, dtype=np.float32),
            "n": np.arange(4, dtype=np.int64),
            "flag": [True, False, True, True],
            "city": ["a", None, "b", "c"],
            "region": ["a", "b", "b", "c"],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns
        expected = _infer_schema(frame).to_dict()
    assert _frame_schema(frame).to_dict() == expected
    assert [column["required"] for column in expected] == [False, True, True, True, False, True]
