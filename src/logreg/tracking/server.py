"""A team tracking server: ``mlflow server`` on a PostgreSQL store, with proxied artifacts.

    python -m logreg.tracking.server start     # or: make mlflow-server
    python -m logreg.tracking.server status
    python -m logreg.tracking.server stop      # or: make mlflow-server-stop
    python -m logreg.tracking.server database-uri   # an Optuna study's storage, beside the runs

Everything lives in one folder (default ``<project root>/.mlflow-server``, git-ignored):
the PostgreSQL cluster (``pgdata/``, made by ``initdb`` on first use), the artifacts
(``artifacts/``, which the server proxies, so clients need no shared filesystem), both
logs, the server's pid and ``server.json`` (its URIs). PostgreSQL listens on 127.0.0.1
only, with password authentication (the password is ``postgres.password``, readable by
its owner only), and runs as the ``postgres`` user when this command runs as root,
since PostgreSQL refuses root. ``mlflow server`` listens on 127.0.0.1 at the port of
``conf/mlflow/server.yaml``'s ``tracking_uri``, so ``mlflow=server`` finds it.

``stop`` ends the server's process group, then stops PostgreSQL (``pg_ctl stop -m
fast``). ``start`` on a folder where both already run only says so. The cluster also
holds an ``optuna`` database, for ``search=optuna hydra.sweeper.storage=<database-uri>``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from logreg.errors import UserError, cli
from logreg.io import write_json
from logreg.tracking.provenance import project_root

FOLDER = ".mlflow-server"  # under the project root
SERVER_CONF = Path("conf") / "mlflow" / "server.yaml"  # its tracking_uri gives the port
HOST = "127.0.0.1"
DATABASE = "mlflow"  # MLflow's store
# A search's Optuna study (hydra.sweeper.storage): its own database, since MLflow and
# Optuna both keep their schema version in a table named alembic_version.
OPTUNA_DATABASE = "optuna"
DATABASES = (DATABASE, OPTUNA_DATABASE)
DB_USER = "logreg"  # PostgreSQL's superuser in the cluster, made by initdb
POSTGRES_USER = "postgres"  # the system user PostgreSQL runs as when we are root
# mlflow server's worker processes. One: uvicorn with several workers binds the socket
# itself without naming TCP, so asyncio leaves Nagle's algorithm on for every connection,
# and a client's second request on a kept-alive connection waits for a delayed ACK:
# 48 ms per /health with 2 workers against 6 ms with 1 (runs/get 60 against 24 ms; see
# bench/sweep.py). One process serves the sync handlers from its thread pool.
WORKERS = 1
START_TIMEOUT = 120.0  # seconds for mlflow server to answer /health (first start migrates)
STOP_TIMEOUT = 20.0  # seconds for the server's processes to exit after SIGTERM
INSTALL_HINT = "apt-get install postgresql"


@dataclass(frozen=True)
class Layout:
    """The files of one server folder (:meth:`of`)."""

    folder: Path
    pgdata: Path  # the PostgreSQL cluster
    artifacts: Path  # where the server stores the proxied artifacts
    password: Path  # PostgreSQL's password for DB_USER
    postgres_log: Path
    mlflow_log: Path
    mlflow_pid: Path
    state: Path  # server.json: the URIs and ports of the running server

    @classmethod
    def of(cls, folder: Path) -> Layout:
        folder = folder.resolve()
        names = ("pgdata", "artifacts", "postgres.password", "postgres.log", "mlflow.log")
        return cls(
            folder,
            *(folder / name for name in names),
            folder / "mlflow.pid",
            folder / "server.json",
        )


# ----------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> Path:
    """The folder of PostgreSQL's server programs (``initdb``, ``pg_ctl``).

    ``pg_config --bindir`` first (it may belong to a client-only install, so initdb must
    be there), then Debian's ``/usr/lib/postgresql/<version>/bin``, newest first, then PATH.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if found.returncode == 0 and found.stdout.strip():
            candidates.append(Path(found.stdout.strip()))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += [Path(p) for p in sorted(versions, key=_version_key, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl")):
            return folder
    raise UserError(
        "PostgreSQL's initdb and pg_ctl were not found (pg_config --bindir, "
        f"/usr/lib/postgresql/*/bin, PATH); install them: {INSTALL_HINT}"
    )


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def as_postgres(command: Sequence[str]) -> list[str]:
    """``command`` run as the ``postgres`` user when we are root, else as is."""
    if os.geteuid() != 0:
        return list(command)
    if shutil.which("runuser"):
        return ["runuser", "-u", POSTGRES_USER, "--", *command]
    return ["su", POSTGRES_USER, "-s", "/bin/sh", "-c", shlex.join(command)]


def _postgres_owner() -> tuple[int, int] | None:
    """The (uid, gid) that PostgreSQL's files need: the postgres user's when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        user = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise UserError(
            f"running as root, PostgreSQL must run as the '{POSTGRES_USER}' user, which does "
            f"not exist; {INSTALL_HINT} creates it (or run this command as another user)"
        ) from None
    return user.pw_uid, user.pw_gid


def _give_to_postgres(path: Path) -> None:
    owner = _postgres_owner()
    if owner is not None:
        os.chown(path, *owner)


def _run_checked(command: Sequence[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise UserError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'}")


def init_cluster(layout: Layout, bindir: Path) -> None:
    """``initdb`` a new cluster in ``pgdata`` (first use only), owned by PostgreSQL's user.

    A failed initdb leaves no half-made cluster behind.
    """
    if (layout.pgdata / "PG_VERSION").is_file():
        return
    if layout.pgdata.exists() and any(layout.pgdata.iterdir()):
        raise UserError(f"{layout.pgdata}: not empty and not a PostgreSQL cluster; move it away")
    layout.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    _give_to_postgres(layout.pgdata)
    reachable = subprocess.run(as_postgres(["test", "-w", str(layout.pgdata)]))
    if reachable.returncode != 0:
        layout.pgdata.rmdir()
        raise UserError(
            f"{layout.folder}: the '{POSTGRES_USER}' user cannot write there (a parent folder "
            "is closed to other users); choose a folder it can reach with --folder"
        )
    layout.password.write_text(secrets.token_urlsafe(24) + "\n")
    layout.password.chmod(0o600)
    _give_to_postgres(layout.password)  # initdb reads it as that user
    command = [
        str(bindir / "initdb"),
        f"--pgdata={layout.pgdata}",
        f"--username={DB_USER}",
        f"--pwfile={layout.password}",
        "--auth-local=peer",
        "--auth-host=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C",
    ]
    try:
        _run_checked(as_postgres(command), f"initdb of {layout.pgdata}")
    except UserError:
        shutil.rmtree(layout.pgdata, ignore_errors=True)
        raise


def postgres_port(layout: Layout) -> int | None:
    """The port of the cluster when it runs (line 4 of ``postmaster.pid``), else None."""
    try:
        lines = (layout.pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
    if not _alive(pid) or len(lines) < 4 or not lines[3].strip().isdigit():
        return None
    return int(lines[3])


def start_postgres(layout: Layout, bindir: Path, port: int | None) -> int:
    """Start the cluster on 127.0.0.1 (no Unix socket) at ``port`` or a free one; its port."""
    running = postgres_port(layout)
    if running is not None:
        return running
    port = port or free_port()
    check_port_free(port, "--db-port")
    if not layout.postgres_log.exists():
        layout.postgres_log.touch(mode=0o600)
    _give_to_postgres(layout.postgres_log)
    options = f"-c listen_addresses={HOST} -p {port} -c unix_socket_directories=''"
    command = [
        str(bindir / "pg_ctl"),
        "start",
        f"--pgdata={layout.pgdata}",
        f"--log={layout.postgres_log}",
        f"--options={options}",
        "--wait",
        "--timeout=60",
    ]
    _run_checked(as_postgres(command), f"PostgreSQL start (see {layout.postgres_log})")
    return port


def stop_postgres(layout: Layout, bindir: Path) -> bool:
    """``pg_ctl stop -m fast``: ends the sessions, checkpoints, exits. False if it was not up."""
    if postgres_port(layout) is None:
        return False
    command = [str(bindir / "pg_ctl"), "stop", f"--pgdata={layout.pgdata}", "-m", "fast", "-w"]
    _run_checked(as_postgres(command), "PostgreSQL stop")
    return True


def backend_store_uri(layout: Layout, port: int, database: str = DATABASE) -> str:
    """The SQLAlchemy URI of the server's database, password included (keep it private).

    ``postgresql+psycopg2://``: MLflow 3.17 asks for psycopg v3 when the URI says only
    ``postgresql://``, and the pinned driver is psycopg2.
    """
    password = layout.password.read_text().strip()
    return f"postgresql+psycopg2://{DB_USER}:{quote(password, safe='')}@{HOST}:{port}/{database}"


def create_databases(layout: Layout, port: int) -> None:
    """Create the :data:`DATABASES` that the cluster does not have yet."""
    import psycopg2

    password = layout.password.read_text().strip()
    try:
        connection = psycopg2.connect(
            host=HOST, port=port, user=DB_USER, password=password, dbname="postgres"
        )
    except psycopg2.Error as exc:
        raise UserError(f"PostgreSQL on {HOST}:{port}: {str(exc).strip()}") from None
    try:
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with connection.cursor() as cursor:
            for database in DATABASES:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{database}"')
    finally:
        connection.close()


def init_optuna_schema(layout: Layout, port: int) -> None:
    """Create Optuna's tables in the ``optuna`` database, their version stamp committed.

    Optuna 5.0 stamps its schema version (alembic) on a connection that it never
    commits: on PostgreSQL under SQLAlchemy 2 the stamp is rolled back, and every later
    study then fails Optuna's version check (a bare AssertionError). One storage opened
    in autocommit mode makes the stamp stick; afterwards plain URIs work.
    """
    import optuna

    uri = backend_store_uri(layout, port, OPTUNA_DATABASE)
    optuna.storages.RDBStorage(uri, engine_kwargs={"isolation_level": "AUTOCOMMIT"})


# ----------------------------------------------------------------------------- mlflow server


def mlflow_pid(layout: Layout) -> int | None:
    """The pid of this folder's ``mlflow server`` if it runs (pid file, and its command line)."""
    import psutil

    try:
        pid = int(layout.mlflow_pid.read_text().strip())
        command = " ".join(psutil.Process(pid).cmdline())
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if "mlflow" in command and "server" in command else None


def start_mlflow(layout: Layout, backend: str, port: int, host: str, workers: int) -> int:
    """Start ``mlflow server`` in its own session; wait for ``/health``; its pid.

    The backend URI goes through the environment (MLFLOW_BACKEND_STORE_URI), not the
    command line, which every user of the host can read.
    """
    check_port_free(port, "--port", host)
    layout.artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        str(layout.artifacts),
        "--serve-artifacts",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": backend}
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Its GenAI job runners are seven more processes that a training project never uses.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env["NO_PROXY"] = ",".join(filter(None, [env.get("NO_PROXY"), host, "localhost"]))
    with layout.mlflow_log.open("a") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop ends the workers too
            env=env,
            cwd=layout.folder,
        )
    layout.mlflow_pid.write_text(f"{process.pid}\n")
    url = f"http://{host}:{port}/health"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            layout.mlflow_pid.unlink(missing_ok=True)
            why = _last_line(layout.mlflow_log)
            raise UserError(f"mlflow server exited with code {process.returncode}: {why}")
        if _answers(url):
            return process.pid
        time.sleep(0.3)
    stop_process_group(process.pid)
    layout.mlflow_pid.unlink(missing_ok=True)
    raise UserError(
        f"mlflow server did not answer {url} within {START_TIMEOUT:g} s; see {layout.mlflow_log}"
    )


def stop_process_group(pid: int) -> None:
    """SIGTERM to the process group led by ``pid``, SIGKILL after :data:`STOP_TIMEOUT`."""
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pid):
                return
            time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies do not count (nobody may reap them)."""
    import psutil

    with contextlib.suppress(ChildProcessError):
        os.waitpid(pgid, os.WNOHANG)  # the leader, when it is our child
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):  # it has just exited
            continue
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return f"see {path}"
    return f"{lines[-1].strip()} (see {path})" if lines else f"see {path}"


# ----------------------------------------------------------------------------- ports


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def check_port_free(port: int, option: str, host: str = HOST) -> None:
    """Fail in one line when something listens on ``port``.

    SO_REUSEADDR, as the servers themselves bind: the closed connections of a server
    just stopped (TIME_WAIT, for a minute) do not make its port busy for its restart.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise UserError(
                f"{option}: port {port} on {host} is busy ({exc.strerror}); stop what uses it "
                f"or choose another port with {option}"
            ) from None


def port_of(uri: str, where: str) -> int:
    """The port of an ``http://host:port`` URI."""
    try:
        port = urlsplit(uri).port
    except ValueError:
        port = None
    if not uri.startswith("http://") or port is None:
        raise UserError(f"{where}: tracking_uri: got {uri!r}; allowed: http://<host>:<port>")
    return port


# ----------------------------------------------------------------------------- commands


def start(
    folder: Path,
    port: int,
    db_port: int | None = None,
    host: str = HOST,
    workers: int = WORKERS,
) -> tuple[str, bool]:
    """Start PostgreSQL and ``mlflow server`` in ``folder`` (creating both on first use).

    Returns the tracking URI, and whether both were running already (the URI is then
    the running server's). What was started here is stopped again if a later step fails.
    """
    layout = Layout.of(folder)
    bindir = postgres_bindir()
    running = mlflow_pid(layout) is not None
    if running and postgres_port(layout) is not None:
        return str(_read_state(layout).get("tracking_uri", f"http://{host}:{port}")), True
    if not running:
        check_port_free(port, "--port", host)  # before any work
    layout.folder.mkdir(parents=True, exist_ok=True)
    init_cluster(layout, bindir)
    was_running = postgres_port(layout) is not None
    db = start_postgres(layout, bindir, db_port)
    try:
        create_databases(layout, db)
        init_optuna_schema(layout, db)
        pid = mlflow_pid(layout) or start_mlflow(
            layout, backend_store_uri(layout, db), port, host, workers
        )
    except BaseException:
        if not was_running:
            stop_postgres(layout, bindir)
        raise
    uri = f"http://{host}:{port}"
    write_json(
        layout.state,
        {"tracking_uri": uri, "mlflow_pid": pid, "postgres_port": db, "database": DATABASE},
    )
    return uri, False


def stop(folder: Path) -> list[str]:
    """Stop the folder's ``mlflow server`` (its process group), then PostgreSQL; what stopped."""
    layout = Layout.of(folder)
    stopped = []
    pid = mlflow_pid(layout)
    if pid is not None:
        stop_process_group(pid)
        stopped.append(f"mlflow server (pid {pid})")
    layout.mlflow_pid.unlink(missing_ok=True)
    if postgres_port(layout) is not None and stop_postgres(layout, postgres_bindir()):
        stopped.append(f"PostgreSQL ({layout.pgdata})")
    return stopped


def status(folder: Path) -> tuple[bool, list[str]]:
    """Whether both run, and one line for each."""
    layout = Layout.of(folder)
    state = _read_state(layout)
    pid = mlflow_pid(layout)
    db = postgres_port(layout)
    cluster = layout.pgdata if layout.pgdata.exists() else "no cluster yet"
    lines = [
        f"mlflow server: running at {state.get('tracking_uri', '?')} (pid {pid})"
        if pid is not None
        else "mlflow server: not running",
        f"PostgreSQL: running on {HOST}:{db} ({layout.pgdata})"
        if db is not None
        else f"PostgreSQL: not running ({cluster})",
    ]
    return pid is not None and db is not None, lines


def database_uri(folder: Path, database: str) -> str:
    """The SQLAlchemy URI of one of the running cluster's databases, password included.

    For an Optuna study beside the runs: ``hydra.sweeper.storage=$(python -m
    logreg.tracking.server database-uri)``.
    """
    layout = Layout.of(folder)
    port = postgres_port(layout)
    if port is None:
        raise UserError(f"{layout.pgdata}: PostgreSQL is not running; start the server first")
    return backend_store_uri(layout, port, database)


def study_storage(tracking_uri: str | None, folder: Path | None = None) -> str | None:
    """The optuna database's URI when ``tracking_uri`` is this host's running team server.

    So ``search=optuna mlflow=server`` keeps its study beside the runs with no more
    settings; None for any other tracking URI, or when the server is not running.
    """
    layout = Layout.of(folder or project_root() / FOLDER)
    state = _read_state(layout)
    if not tracking_uri or state.get("tracking_uri") != tracking_uri.rstrip("/"):
        return None
    if postgres_port(layout) is None:
        return None
    return database_uri(layout.folder, OPTUNA_DATABASE)


def _read_state(layout: Layout) -> dict[str, object]:
    try:
        state = json.loads(layout.state.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def configured_port(root: Path) -> int:
    """The port of ``conf/mlflow/server.yaml``'s ``tracking_uri``: where ``mlflow=server`` looks."""
    from omegaconf import OmegaConf

    path = root / SERVER_CONF
    if not path.is_file():
        raise UserError(f"{path}: not found; pass --port, or run from the project root")
    uri = OmegaConf.load(path).get("tracking_uri")
    return port_of(str(uri), str(path))


@cli
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m logreg.tracking.server",
        description="The team tracking server: mlflow server on PostgreSQL, artifacts proxied.",
    )
    parser.add_argument("command", choices=("start", "stop", "status", "database-uri"))
    parser.add_argument(
        "--folder", type=Path, help=f"the server's folder (default: <project root>/{FOLDER})"
    )
    parser.add_argument("--port", type=int, help=f"mlflow server's port (default: {SERVER_CONF}'s)")
    parser.add_argument("--db-port", type=int, help="PostgreSQL's port (default: a free one)")
    parser.add_argument(
        "--host", default=HOST, help="mlflow server's address (default: %(default)s)"
    )
    parser.add_argument(
        "--database", default=OPTUNA_DATABASE, choices=DATABASES, help="database-uri's database"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=WORKERS,
        help="mlflow server's processes (default: %(default)s; more add ~40 ms to every call)",
    )
    args = parser.parse_args(argv)
    root = project_root()
    folder = args.folder or root / FOLDER
    if args.command == "start":
        configured = configured_port(root) if args.port is None else None
        uri, already = start(folder, args.port or configured, args.db_port, args.host, args.workers)
        where = f"PostgreSQL store, artifacts in {folder / 'artifacts'}"
        print(f"mlflow server: {uri} ({'already running, ' if already else ''}{where})")
        use = "mlflow=server" + ("" if configured else f" mlflow.tracking_uri={uri}")
        print(f"use it:  python -m logreg.run {use}   (or MLFLOW_TRACKING_URI={uri})")
        stop_command = f"python -m logreg.tracking.server stop --folder {folder}"
        print(f"stop it: {stop_command}   (or make mlflow-server-stop)")
    elif args.command == "stop":
        stopped = stop(folder)
        print("stopped: " + ", ".join(stopped) if stopped else f"nothing was running in {folder}")
    elif args.command == "database-uri":
        print(database_uri(folder, args.database))
    else:
        running, lines = status(folder)
        print("\n".join(lines))
        if not running:
            raise SystemExit(3)


if __name__ == "__main__":
    main()
