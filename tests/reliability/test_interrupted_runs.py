"""Interrupted and failed runs leave nothing that looks complete, and no run left RUNNING.

Real stage subprocesses are killed with SIGINT or SIGTERM at a chosen moment: prepare
while a Parquet file is being written, train in the middle of its fit. Then a diverging
fit, and tracking servers that refuse connections or accept them and never answer.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_helpers import (
    TINY_DATA,
    clean_env,
    one_line_error,
    run_command,
    stage_command,
    tiny_params,
    write_params,
)

from conftest import free_port
from logreg import preprocess
from logreg.datasets import make_synthetic
from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT, write_table
from logreg.preprocess import write_preprocessing
from logreg.stages import prepare, train
from logreg.tracking.runs import open_tracker

pytestmark = pytest.mark.reliability

PREPARE_OUTPUTS = (
    "data/raw/synthetic.parquet",
    "data/prepared/train.parquet",
    "data/prepared/val.parquet",
    "data/prepared/test.parquet",
    "data/prepared/preprocess.json",
    "reports/data.json",
)
# Big enough that each Parquet write takes a visible fraction of a second.
BIG_DATA = {"n_samples": 150_000, "n_features": 40, "n_informative": 5}


def start_interruptible(command: list[str], cwd: Path) -> subprocess.Popen:
    """Start a stage whose SIGINT acts like Ctrl-C, whatever this process inherited.

    A job started in the background by a non-interactive shell (nohup, `cmd &`, some CI
    runners) inherits SIGINT as *ignored*, and Python then never installs its Ctrl-C
    handler; restoring the default before exec gives the child a normal SIGINT.
    """
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=clean_env(),
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until(condition, timeout: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the stage ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.005)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readable(path: Path) -> bool:
    """The file reads whole: Parquet has its footer, JSON parses."""
    try:
        if path.suffix == ".parquet":
            return TARGET in pd.read_parquet(path).columns
        json.loads(path.read_text())
        return True
    except Exception:
        return False


@pytest.mark.parametrize(
    ("signum", "target"),
    [
        (signal.SIGTERM, "data/raw/synthetic.parquet"),
        (signal.SIGINT, "data/prepared/train.parquet"),
    ],
    ids=["SIGTERM writing raw", "SIGINT writing train split"],
)
def test_a_stage_killed_mid_write_leaves_only_complete_files(tmp_path, signum, target):
    write_params(tmp_path, tiny_params(data={**TINY_DATA, **BIG_DATA}))
    command = [sys.executable, *stage_command("prepare", tmp_path)]
    proc = start_interruptible(command, tmp_path)
    temp = (tmp_path / target).parent, f".{Path(target).name}."  # atomic_path's temp file
    wait_until(
        lambda: temp[0].is_dir() and any(p.name.startswith(temp[1]) for p in temp[0].iterdir()),
        60,
        proc,
        f"temp file {temp[1]}*.tmp",
    )
    proc.send_signal(signum)
    stderr = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 130
    assert "interrupted" in stderr and "Traceback" not in stderr

    # Every output is either absent or complete; the one being written is absent, and the
    # cleanup ran (SIGTERM unwinds like Ctrl-C): no temp file is left.
    present = {n: digest(tmp_path / n) for n in PREPARE_OUTPUTS if (tmp_path / n).exists()}
    assert target not in present
    assert all(readable(tmp_path / name) for name in present)
    assert not list(tmp_path.rglob("*.tmp"))

    # A rerun recovers; the files that survived the kill were already the complete ones.
    prepare.main(stage_command("prepare", tmp_path)[2:])
    assert all(readable(tmp_path / name) for name in PREPARE_OUTPUTS)
    assert {name: digest(tmp_path / name) for name in present} == present


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory) -> Path:
    """A migrated, empty sqlite store: creating one takes MLflow seconds, copying it none."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # runs the schema migrations
    return path


def write_training_data(folder: Path, n_rows: int) -> None:
    """Prepared and rebalanced splits of synthetic data, as prepare and rebalance write them."""
    frame = make_synthetic(n_rows, 20, 5, 2, 0.2, seed=0).rename(columns={"target": TARGET})
    train_rows = frame.iloc[: int(0.8 * n_rows)].assign(**{WEIGHT: 1.0})
    write_table(train_rows, folder / "data/rebalanced/train.parquet")
    write_table(frame.iloc[int(0.8 * n_rows) :], folder / "data/prepared/val.parquet")
    write_preprocessing(folder / "data/prepared/preprocess.json", preprocess.fit(train_rows))


def tracked_params(folder: Path, store: Path, **train_values) -> tuple[dict, str]:
    """Params tracking to a copy of ``store`` in ``folder``; the experiment is created here."""
    shutil.copy(store, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    params = tiny_params(
        mlflow={"enabled": True, "tracking_uri": uri, "experiment_name": "reliability"},
        train=train_values,
    )
    return params, uri


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_train_stage_killed_mid_fit_ends_its_run_killed_and_writes_no_model(
    tmp_path, empty_store, signum
):
    from mlflow.tracking import MlflowClient

    write_training_data(tmp_path, 100_000)
    params, uri = tracked_params(
        tmp_path, empty_store, batch_size=16, epochs=100_000, tol=0.0, patience=None, max_time=None
    )
    write_params(tmp_path, params)
    tracker = open_tracker(params["mlflow"], root=tmp_path)
    client = MlflowClient(uri)

    def fitting() -> bool:
        runs = client.search_runs([tracker.experiment_id])
        # The train stage logs its two dataset inputs right before it starts the fit.
        return bool(runs) and len(runs[0].inputs.dataset_inputs) == 2

    command = [sys.executable, *stage_command("train", tmp_path)]
    proc = start_interruptible(command, tmp_path)
    wait_until(fitting, 90, proc, "fit")
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signum)
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err

    (run,) = client.search_runs([tracker.experiment_id])
    assert run.info.status == "KILLED"
    assert run.info.end_time is not None
    assert not (tmp_path / "models").exists()
    assert not (tmp_path / "reports/history.csv").exists()
    assert not (tmp_path / ".logreg/run.json").exists()  # evaluate cannot pick the run up


def test_a_diverging_fit_fails_its_run_in_one_line_and_writes_no_model(
    tmp_path, empty_store, monkeypatch, capsys
):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    for flag in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(flag, raising=False)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)) * 1000.0, columns=["a", "b", "c"])  # raw units
    frame[TARGET] = (frame["a"] + rng.logistic(size=300) * 500 > 0).astype(int)
    write_table(frame.assign(**{WEIGHT: 1.0}), tmp_path / "data/rebalanced/train.parquet")
    write_table(frame, tmp_path / "data/prepared/val.parquet")
    write_preprocessing(tmp_path / "data/prepared/preprocess.json", preprocess.fit(frame))
    params, uri = tracked_params(tmp_path, empty_store, learning_rate=1e6)
    write_params(tmp_path, params)

    with pytest.raises(SystemExit) as exit_info:
        train.main(stage_command("train", tmp_path)[2:])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2
    assert len(err.splitlines()) == 1, err
    assert re.fullmatch(
        r"error: logreg\.stages\.train: SGD diverged at epoch 1: the training loss became "
        r"\S+ with learning_rate=1e\+06; try a smaller learning_rate \(e\.g\. 100000\) or "
        r"standardised features \(LOGREG_DEBUG=1 shows the traceback\)",
        err,
    ), err
    assert not (tmp_path / "models").exists()
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("reliability").experiment_id])
    assert run.info.status == "FAILED"


# ----------------------------------------------------------------------------- servers


@pytest.fixture
def silent_server():
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)  # the kernel completes the handshake; nothing ever reads or replies
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def tracker_cfg(uri: str) -> dict:
    return {"enabled": True, "tracking_uri": uri, "experiment_name": "reliability"}


def test_nothing_listening_fails_at_once(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(UserError) as error:
        open_tracker(tracker_cfg(uri), root=tmp_path)
    assert time.monotonic() - started < 5
    assert str(error.value) == (
        f"mlflow.tracking_uri: the tracking server {uri} did not answer within 10 s "
        "([Errno 111] Connection refused); start it, point mlflow.tracking_uri or "
        "MLFLOW_TRACKING_URI at a running one, or use mlflow=off"
    )


def test_a_server_that_never_answers_fails_after_the_timeout(tmp_path, monkeypatch, silent_server):
    monkeypatch.setenv("LOGREG_TRACKING_TIMEOUT", "1")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"did not answer within 1 s \(timed out\)"):
        open_tracker(tracker_cfg(silent_server), root=tmp_path)
    # It waited for the timeout, and not for MLflow's minutes of HTTP retries.
    assert 0.9 < time.monotonic() - started < 30
    monkeypatch.setenv("LOGREG_TRACKING_TIMEOUT", "soon")
    with pytest.raises(UserError, match=r"^LOGREG_TRACKING_TIMEOUT: got 'soon'; allowed: a"):
        open_tracker(tracker_cfg(silent_server), root=tmp_path)


def test_train_checks_the_server_before_reading_data_or_training(tmp_path, silent_server):
    write_params(tmp_path, tiny_params(mlflow=tracker_cfg(silent_server)))
    env = clean_env(LOGREG_TRACKING_TIMEOUT="1")
    done = run_command(stage_command("train", tmp_path), tmp_path, env)  # no data files at all
    line = one_line_error(done)
    assert line.startswith(
        f"error: logreg.stages.train: mlflow.tracking_uri: the tracking server {silent_server} "
        "did not answer within 1 s (timed out); start it"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
