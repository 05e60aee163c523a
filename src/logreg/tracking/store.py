"""The MLflow store: which one, whether it answers, its experiment, and retries.

The store is ``mlflow.tracking_uri`` if set, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<project root>/mlflow.db`` with artifacts in ``<project root>/mlartifacts``
(the root: :func:`logreg.tracking.provenance.project_root`). Nothing happens at
import: mlflow is imported on first use, by :func:`import_mlflow`, after telemetry has
been switched off.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from logreg.errors import UserError
from logreg.tracking.provenance import project_root

REACHABLE_TIMEOUT = 10.0  # seconds to wait for an http(s) tracking server before giving up
TIMEOUT_VARIABLE = "LOGREG_TRACKING_TIMEOUT"  # overrides REACHABLE_TIMEOUT (seconds)
# A sweep's job waits this long for a server that answered when the sweep began and is
# gone now: a restart. MLflow's client rides over an outage within a call (it retries
# refused connections and 5xx, MLFLOW_HTTP_REQUEST_MAX_RETRIES times with backoff).
OUTAGE_TIMEOUT = 60.0
OUTAGE_VARIABLE = "LOGREG_TRACKING_OUTAGE_TIMEOUT"  # overrides OUTAGE_TIMEOUT (seconds)
POLL_INTERVAL = 0.5  # seconds between two checks of a server that is coming back

# Errors that a second try clears: sqlite's lock, and conflicts. A conflict is two jobs
# inserting the same row at once: MLflow checks whether a dataset of the experiment (or a
# tag, or an experiment) exists, then inserts it, and the slower insert breaks a unique
# key (``dataset_pk``, ``tag_pk``...). SQLite serialises writers and rarely shows it;
# PostgreSQL does. Every call that retry() wraps is idempotent, so the second try finds
# the row and goes on. The markers: MLflow's error code, SQLAlchemy's wrapper, then the
# drivers' own words (psycopg2 / psycopg, sqlite), as the server relays them.
CONFLICT_ERRORS = (
    "RESOURCE_ALREADY_EXISTS",
    "IntegrityError",
    "UniqueViolation",
    "duplicate key value violates unique constraint",
    "UNIQUE constraint failed",
)
TRANSIENT_ERRORS = ("database is locked", *CONFLICT_ERRORS)

# The experiment's kind, which decides the page MLflow's UI opens it on: without it,
# MLflow 3.17 shows a GenAI overview (traces, token usage); "custom_model_development"
# shows the training runs. MLflow's Python API has no constant for it: the names are the
# UI's (ExperimentKind.CUSTOM_MODEL_DEVELOPMENT in mlflow/server/js/build/static/js/main.*.js,
# whose kind selector sets this tag), also in mlflow/demo/generators/traces.py and
# mlflow/assistant/skills/mlflow-onboarding/SKILL.md.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def import_mlflow() -> Any:
    """Import mlflow with telemetry off (it starts its telemetry client on import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


@contextlib.contextmanager
def no_integer_schema_hint() -> Iterator[None]:
    """Silence MLflow's advice against integer columns in a schema (warned on stderr).

    Its integers here are class labels and codes, which never hold missing values, and
    the served model imputes the inputs' gaps itself.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


def resolve_tracking_uri(configured: str | None = None, root: Path | None = None) -> str:
    """Config value, else ``$MLFLOW_TRACKING_URI``, else the sqlite file in the project root.

    A relative sqlite or file path is made absolute against the project root, so the
    store does not depend on the working directory of the stage.
    """
    root = (root or project_root()).resolve()
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        return f"sqlite:///{root / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri.removeprefix("sqlite:///")
        return uri if path == ":memory:" else f"sqlite:///{root / path}"
    if "://" not in uri and not uri.startswith(("databricks", "file:")):
        return (root / uri).resolve().as_uri()  # a bare directory: the file store
    return uri


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def reachable_timeout() -> float:
    """Seconds to wait for a server: ``$LOGREG_TRACKING_TIMEOUT`` or :data:`REACHABLE_TIMEOUT`."""
    return _seconds(TIMEOUT_VARIABLE, REACHABLE_TIMEOUT)


def outage_timeout() -> float:
    """Seconds a sweep's job waits for its server to come back: ``$LOGREG_TRACKING_OUTAGE_TIMEOUT``
    or :data:`OUTAGE_TIMEOUT`."""
    return _seconds(OUTAGE_VARIABLE, OUTAGE_TIMEOUT)


def _seconds(variable: str, default: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{variable}: got {raw!r}; allowed: a number of seconds > 0")
    return value


def check_reachable(uri: str, timeout: float | None = None, *, wait: bool = False) -> None:
    """Fail fast with a clear :class:`UserError` when an http(s) server does not answer.

    Waits at most ``timeout`` seconds in all (default :func:`reachable_timeout`): for the
    connection and the answer to ``GET /health``, so that a server that accepts
    connections but never answers fails as surely as a port where nothing listens; then
    for one read of its store (:data:`STORE_PROBE`). ``/health`` does not touch the
    database: with the database down, the server answers it, but each store call fails
    or hangs while the server retries its database, and MLflow's client retries those
    calls for minutes.

    ``wait``: a refused connection or a failing store is asked again every
    :data:`POLL_INTERVAL` seconds until ``timeout`` ends, for a server that is
    restarting (a sweep's job, :func:`outage_timeout`); without it, the first answer
    decides.
    """
    if not is_remote(uri):
        return
    timeout = reachable_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        try:
            _check_once(uri, timeout, deadline)
            return
        except UserError:
            left = deadline - time.monotonic()
            if not wait or left <= 0:
                raise
            time.sleep(min(POLL_INTERVAL, left))


def _check_once(uri: str, timeout: float, deadline: float) -> None:
    """One try of :func:`check_reachable`, within what is left of ``deadline``."""
    base = uri.rstrip("/")
    try:
        _get(base + "/health", max(deadline - time.monotonic(), 0.1))
    except urllib.error.HTTPError:
        return  # the server answered, even if it has no /health page
    except (OSError, ValueError) as exc:
        raise _no_answer(uri, timeout, exc) from None
    try:
        _get(base + STORE_PROBE, max(deadline - time.monotonic(), 0.1))
    except urllib.error.HTTPError as exc:
        if exc.code >= 500:
            raise _no_store(uri, f"HTTP {exc.code}: {_server_message(exc)}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _no_store(uri, f"no answer within {timeout:g} s: {reason}") from None


def _no_store(uri: str, why: str) -> UserError:
    return UserError(
        f"mlflow.tracking_uri: the tracking server {uri} answers, but its store does not "
        f"({why}); check the server's database (python -m logreg.tracking.server status), "
        "or use mlflow=off"
    )


# A read that every MLflow server answers from its store: 200, or 404 (no such experiment).
STORE_PROBE = "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"


def _get(url: str, timeout: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout):
        pass


def _no_answer(uri: str, timeout: float, exc: Exception) -> UserError:
    reason = getattr(exc, "reason", exc)
    return UserError(
        f"mlflow.tracking_uri: the tracking server {uri} did not answer within "
        f"{timeout:g} s ({reason}); start it, point mlflow.tracking_uri or "
        "MLFLOW_TRACKING_URI at a running one, or use mlflow=off"
    )


def _server_message(error: urllib.error.HTTPError) -> str:
    """The first line of the server's error message (MLflow answers JSON with a message)."""
    try:
        body = error.read().decode(errors="replace")
        message = str(json.loads(body).get("message") or body)
    except (OSError, ValueError, AttributeError):
        message = str(error.reason)
    line = next((part.strip() for part in message.splitlines() if part.strip()), "no message")
    return line[:300]


def is_transient(exc: BaseException) -> bool:
    """Whether a second try may clear ``exc``: a lock or a conflict (:data:`TRANSIENT_ERRORS`)."""
    words = f"{getattr(exc, 'error_code', '')} {type(exc).__name__} {exc}"
    return any(marker in words for marker in TRANSIENT_ERRORS)


def retry(fn: Callable[[], Any], attempts: int = 6, first_wait: float = 0.2) -> Any:
    """Call ``fn`` again on a transient store error (:func:`is_transient`), with backoff.

    Every store call of the trackers goes through here, so each survives a twin job
    that writes the same row at the same moment.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            time.sleep(first_wait * 2**attempt)
    raise AssertionError("unreachable")


def ensure_experiment(uri: str, name: str, root: Path) -> str:
    """Get or create the experiment; local stores get ``<root>/mlartifacts`` as artifact root.

    The artifact location is fixed when an experiment is created, so it is made absolute
    here, once. A remote server chooses its own (e.g. proxied ``mlflow-artifacts:``).
    The experiment gets its kind (:data:`EXPERIMENT_KIND_TAG`), so the UI opens it on its
    runs; one created without it gets it here, and one whose kind was chosen in the UI
    keeps that.
    """
    import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    location = None if is_remote(uri) else (root / "mlartifacts").as_uri()

    def get_or_create() -> str:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(
                    name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
                )
            except MlflowException:
                experiment = client.get_experiment_by_name(name)  # another process won the race
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise UserError(
                f"mlflow.experiment_name: experiment '{name}' is deleted in {uri}; restore it "
                "(mlflow experiments restore) or choose another name"
            )
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            try:
                client.set_experiment_tag(
                    experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND
                )
            except MlflowException:  # another process set it first: fine if it is there now
                if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment.experiment_id).tags:
                    raise
        return experiment.experiment_id

    with _creation_lock(uri):
        return str(retry(get_or_create))


@contextlib.contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Serialise first use of an sqlite store across processes.

    The first client to open a new sqlite file runs MLflow's schema migrations; two
    processes doing that at once (parallel sweep jobs, queued DVC experiments) leave
    the store broken for good ("duplicate column name"). An exclusive lock on a file
    beside the database makes the first one migrate and the others wait. Once a client
    has opened the store under the lock, the lock file records the database file's
    identity, and later clients of that same file skip the lock: opening a migrated
    store is safe in parallel, and serialising it would cost each job a second or two.
    """
    if not uri.startswith("sqlite:///") or uri.endswith(":memory:"):
        yield
        return
    import fcntl

    database = Path(uri.removeprefix("sqlite:///"))
    lock_path = Path(f"{database}.lock")
    if not _is_ready(database, lock_path):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if not _is_ready(database, lock_path):  # no other client opened it meanwhile
                    yield
                    lock_path.write_text(_ready_mark(database))
                    return
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    yield


def _is_ready(database: Path, lock_path: Path) -> bool:
    mark = _ready_mark(database)
    return bool(mark) and _read_mark(lock_path) == mark


def _ready_mark(database: Path) -> str:
    """The database file's identity (device, inode); empty when there is no file yet."""
    try:
        info = database.stat()
    except OSError:
        return ""
    return f"ready {info.st_dev} {info.st_ino}\n"


def _read_mark(lock_path: Path) -> str:
    try:
        return lock_path.read_text()
    except OSError:
        return ""
