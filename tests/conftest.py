"""Shared by several test modules: real ``mlflow server`` processes on 127.0.0.1, and helpers;
headless Chromium (tests/browser.py).

:func:`mlflow_server` gets its own sqlite store and artifact folder in the test's
tmp_path, listens on a free loopback port, and is stopped (its whole process group)
when the test ends. :func:`team_server` is the project's team server (PostgreSQL store,
proxied artifacts: ``python -m logreg.tracking.server``), one per test session.
Nothing reaches the network: ``NO_PROXY`` keeps loopback requests off any proxy, and
telemetry is off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser import launch

SERVER_START_TIMEOUT = 90.0  # seconds for `mlflow server` to answer /health (its migrations)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, timeout: float = SERVER_START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    # The server runs in its own session; end that group (uvicorn workers included).
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextlib.contextmanager
def dask_cluster(
    n_workers: int, cwd: Path, env: dict[str, str], scheduler_env: dict[str, str] | None = None
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A real ``dask scheduler`` and ``n_workers`` ``dask worker --nthreads 1`` on loopback.

    Each runs in its own session, in ``cwd`` (where a job's folder lands) with ``env``:
    a worker of a running cluster has its own environment, not the sweep's. Yields the
    scheduler's address, once every worker has joined, and the workers' processes; all
    are stopped after.
    """
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = str(Path(sys.executable).with_name("dask"))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    flags = {"start_new_session": True, "cwd": cwd, **quiet}
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    processes = [subprocess.Popen(scheduler, env=scheduler_env or env, **flags)]
    try:
        worker = [dask, "worker", address, "--nthreads", "1", "--no-dashboard"]
        workers = [subprocess.Popen(worker, env=env, **flags) for _ in range(n_workers)]
        processes += workers
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
        yield address, workers
    finally:
        for process in reversed(processes):
            stop(process)


@contextlib.contextmanager
def local_dask_client(processes: bool = True) -> Iterator[object]:
    """A Client of a LocalCluster of two single-threaded worker processes, no dashboard
    (``processes`` False: worker threads of this process, which see its warning filters)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


class KillAWorker:
    """A fit's callback that kills one worker process of ``client`` (SIGKILL) once, at the
    end of the first epoch; ``killed`` records that epoch."""

    def __init__(self, client: object) -> None:
        self.client = client
        self.victim = next(iter(client.run(os.getpid).values()))  # type: ignore[attr-defined]
        self.killed: list[int] = []

    def __call__(self, record: dict) -> None:
        if not self.killed:
            os.kill(self.victim, signal.SIGKILL)
            self.killed.append(record["epoch"])

    def replaced(self) -> bool:
        """The victim is dead, and the cluster runs as many workers as before."""
        alive = self.client.run(os.getpid).values()  # type: ignore[attr-defined]
        return self.killed == [1] and self.victim not in alive


def mlflow_cli() -> str:
    return str(Path(sys.executable).with_name("mlflow"))


def server_env() -> dict[str, str]:
    # The venv's bin first: `mlflow models serve` execs `uvicorn` from PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return {
        **os.environ,
        "PATH": path,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        # The server's background job runners (GenAI jobs) are seven extra processes.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A running ``mlflow server`` with a brand-new store in tmp_path; yields its URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [
            mlflow_cli(),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=server_env(),
    )
    try:
        wait_for(f"http://127.0.0.1:{port}/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def isolated_tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the project root: its own mlflow.db, no telemetry, no inherited run."""
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def chromium():
    """Debian's headless Chromium; skips where it is missing, fails when CI=true."""
    with launch() as browser:
        yield browser


@contextlib.contextmanager
def serving(model_uri: str, log: Path, **env: str) -> Iterator[str]:
    """``mlflow models serve -m <model_uri>`` on a free loopback port; yields its URL.

    ``env`` adds variables, e.g. ``MLFLOW_TRACKING_URI`` for a ``runs:/`` URI on a server.
    """
    port = free_port()
    options = ["--env-manager", "local", "-w", "1", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("w") as output:
        proc = subprocess.Popen(
            [mlflow_cli(), "models", "serve", "-m", model_uri, *options],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**server_env(), **env},
        )
        try:
            wait_for(f"http://127.0.0.1:{port}/ping", proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def invocations(url: str, rows: list[dict]) -> list[dict]:
    """POST ``rows`` to a served model's ``/invocations``; its predictions."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"dataframe_records": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


POSTGRES_MISSING = (
    "PostgreSQL is missing: install Debian's postgresql (apt-get install postgresql, "
    "or .ci/system-packages)"
)


@dataclass(frozen=True)
class TeamServer:
    uri: str  # the tracking URI, http://127.0.0.1:<port>
    folder: Path  # the server's folder: pgdata/, artifacts/, logs


def server_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logreg.tracking.server", *args],
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def require_postgres() -> None:
    """Skip when PostgreSQL's programs are missing, except in CI (``CI=true``): fail there."""
    from logreg.errors import UserError
    from logreg.tracking.server import postgres_bindir

    try:
        postgres_bindir()
    except UserError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {exc}")
        pytest.skip(POSTGRES_MISSING)


@contextlib.contextmanager
def started_team_server() -> Iterator[TeamServer]:
    """``python -m logreg.tracking.server start`` in a new folder on free ports; stopped after.

    Not under pytest's tmp folder, which only its owner may enter: run as root, the
    server's PostgreSQL runs as the postgres user, which needs to reach its folder.
    """
    require_postgres()
    folder = Path(tempfile.mkdtemp(prefix="logreg-team-server-"))
    folder.chmod(0o755)
    port, db_port = free_port(), free_port()
    where = ["--folder", str(folder), "--port", str(port), "--db-port", str(db_port)]
    try:
        started = server_command("start", *where)
        assert started.returncode == 0, started.stderr + _logs(folder)
        yield TeamServer(f"http://127.0.0.1:{port}", folder)
    finally:
        stopped = server_command("stop", "--folder", str(folder))
        shutil.rmtree(folder, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="session")
def team_server() -> Iterator[TeamServer]:
    """The team server of the test session (:func:`started_team_server`).

    Skipped when PostgreSQL's programs are missing, except in CI (``CI=true``), where
    that fails: ``.ci/run`` installs them.
    """
    with started_team_server() as server:
        yield server


def _logs(folder: Path) -> str:
    return "".join(
        f"\n--- {log.name}:\n{log.read_text(errors='replace')[-3000:]}"
        for log in sorted(folder.glob("*.log"))
    )
