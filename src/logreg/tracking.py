"""MLflow tracking: the only module that imports mlflow.

One MLflow run spans a pipeline run: the train stage starts it and writes its id to
``models/run.json``; the evaluate stage resumes it. :meth:`MlflowTracker.run` ends the
run FINISHED on success, FAILED on an exception and KILLED on Ctrl-C or SIGTERM, so no
run is left RUNNING. A process killed outright (SIGKILL, the OOM killer) cannot end its
run; every run is therefore tagged with the host, pid and start time of the process
that holds it open, and the next run started on that host ends such orphans KILLED
(:meth:`MlflowTracker.end_orphaned_runs`). With ``mlflow.enabled: false`` every call is
a no-op (:class:`NullTracker`).

The store is ``mlflow.tracking_uri`` if set, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///<project root>/mlflow.db`` with artifacts in ``<project root>/mlartifacts``;
the project root is ``$DVC_ROOT`` (set by DVC for stage commands) or the working
directory; for a queued DVC experiment, which runs in a temporary copy under
``.dvc/tmp/exps/``, it is the project holding that copy. Nothing happens at
import: mlflow is imported on first use, after telemetry has been switched off.

The logged model is a pyfunc whose ``loader_module`` is this module: its weights load
from the npz/json pair written by :meth:`logreg.LogisticRegression.save`, nothing is
pickled. When the model's metadata holds the prepare stage's preprocessing, as the
pipeline's models do, the served model takes rows of the original columns and applies
that preprocessing itself. Serve it offline with
``mlflow models serve -m runs:/<run id>/model --env-manager local``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logreg import preprocess
from logreg.errors import UserError, sigterm_as_interrupt
from logreg.preprocess import Preprocessing

REACHABLE_TIMEOUT = 10.0  # seconds to wait for an http(s) tracking server before giving up
TIMEOUT_VARIABLE = "LOGREG_TRACKING_TIMEOUT"  # overrides REACHABLE_TIMEOUT (seconds)
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit for metrics
PARAMS_PER_BATCH = 100  # ... and for params and tags
MODEL_NAME = "model"  # the pyfunc model's name inside the run
MODEL_FILE = "model.npz"
SERVING_FILE = "serving.json"  # positive class and decision threshold of the served model


# ----------------------------------------------------------------------------- store


def project_root() -> Path:
    """The project's own root, absolute: ``$DVC_ROOT`` when DVC runs the stage, else cwd.

    ``dvc exp run --queue`` / ``--temp`` run stages in a throwaway copy under
    ``<project>/.dvc/tmp/exps/``, and ``$DVC_ROOT`` is that copy. The store and the
    artifacts must outlive it, so the root is the project that holds the copy.
    """
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for index in range(len(parts) - 3):
        if parts[index : index + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:index])
    return root


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
    raw = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return REACHABLE_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"{TIMEOUT_VARIABLE}: got {raw!r}; allowed: a number of seconds > 0")
    return value


def check_reachable(uri: str, timeout: float | None = None) -> None:
    """Fail fast with a clear :class:`UserError` when an http(s) server does not answer.

    Waits ``timeout`` seconds (default :func:`reachable_timeout`) for the connection and
    again for the answer to ``GET /health``: a server that accepts connections but never
    answers fails as surely as a port where nothing listens.
    """
    if not is_remote(uri):
        return
    timeout = reachable_timeout() if timeout is None else timeout
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # the server answered, even if it has no /health page
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"mlflow.tracking_uri: the tracking server {uri} did not answer within "
            f"{timeout:g} s ({reason}); start it, point mlflow.tracking_uri or "
            "MLFLOW_TRACKING_URI at a running one, or use mlflow=off"
        ) from None


def _mlflow() -> Any:
    """Import mlflow with telemetry off (it starts its telemetry client on import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    return mlflow


# Errors that a second try clears: sqlite's lock, and two parallel jobs logging the same
# dataset at once (MLflow checks for it, then inserts it: the slower insert fails).
TRANSIENT_ERRORS = ("database is locked", "UNIQUE constraint failed: datasets.")


def _retry(fn: Any, attempts: int = 6, first_wait: float = 0.2) -> Any:
    """Call ``fn`` again on a transient store error (:data:`TRANSIENT_ERRORS`), with backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            transient = any(error in str(exc) for error in TRANSIENT_ERRORS)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(first_wait * 2**attempt)
    raise AssertionError("unreachable")


def ensure_experiment(uri: str, name: str, root: Path) -> str:
    """Get or create the experiment; local stores get ``<root>/mlartifacts`` as artifact root.

    The artifact location is fixed when an experiment is created, so it is made absolute
    here, once. A remote server chooses its own (e.g. proxied ``mlflow-artifacts:``).
    """
    _mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    location = None if is_remote(uri) else (root / "mlartifacts").as_uri()

    def get_or_create() -> str:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return client.create_experiment(name, artifact_location=location)
            except MlflowException:
                experiment = client.get_experiment_by_name(name)  # another process won the race
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            raise UserError(
                f"mlflow.experiment_name: experiment '{name}' is deleted in {uri}; restore it "
                "(mlflow experiments restore) or choose another name"
            )
        return experiment.experiment_id

    with _creation_lock(uri):
        return str(_retry(get_or_create))


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


def open_tracker(cfg: Mapping[str, Any], root: Path | None = None) -> Tracker:
    """A tracker for the ``mlflow`` config section: :class:`NullTracker` when disabled."""
    if not cfg.get("enabled", True):
        return NullTracker()
    root = (root or project_root()).resolve()
    uri = resolve_tracking_uri(cfg.get("tracking_uri"), root)
    name = cfg.get("experiment_name") or "logreg"
    check_reachable(uri)
    mlflow = _mlflow()
    mlflow.set_tracking_uri(uri)
    return MlflowTracker(uri, ensure_experiment(uri, str(name), root), root)


# ----------------------------------------------------------------------------- helpers

HOST_TAG, PID_TAG, STARTED_TAG = "logreg.host", "logreg.pid", "logreg.pid_started"
ORPHAN_TAG = "logreg.orphaned"


def owner_tags() -> dict[str, str]:
    """Tags naming the process that holds a run open: host, pid and start time."""
    import psutil

    me = psutil.Process()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(me.pid),
        STARTED_TAG: f"{me.create_time():.3f}",
    }


def _process_alive(pid: str | None, started: str | None) -> bool:
    """Whether the process with this pid and start time (as in owner_tags) still runs."""
    import psutil

    try:
        return f"{psutil.Process(int(pid or '')).create_time():.3f}" == started
    except (ValueError, psutil.NoSuchProcess):
        return False
    except psutil.Error:  # not ours to inspect: assume it runs
        return True


def _run_tags(tags: Mapping[str, str]) -> list[Any]:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in tags.items()]


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"train": {"batch_size": 16}}`` -> ``{"train.batch_size": 16}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat |= flatten(value, name, sep)
        else:
            flat[name] = value
    return flat


def metric_key(name: str) -> str:
    """A valid MLflow key: letters, digits, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^\w\-. /]", "_", name)


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_info(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the repository at ``root``; empty outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    sha = commit.stdout.strip()
    info = {"git.commit": sha, "mlflow.source.git.commit": sha}
    if status.returncode == 0:
        info["git.dirty"] = str(bool(status.stdout.strip())).lower()
    return info


def write_run_file(path: str | os.PathLike[str], run_id: str | None, tracker: Tracker) -> None:
    """``models/run.json``: how evaluate finds the run that train started."""
    from logreg.io import write_json

    write_json(
        path,
        {"run_id": run_id, "experiment_id": tracker.experiment_id, "tracking_uri": tracker.uri},
    )


def read_run_id(path: str | os.PathLike[str]) -> str | None:
    file = Path(path)
    if not file.is_file():
        return None
    try:
        run_id = json.loads(file.read_text()).get("run_id")
    except (ValueError, AttributeError):
        raise UserError(f"{file}: not a run file written by the train stage") from None
    return run_id if isinstance(run_id, str) and run_id else None


# ----------------------------------------------------------------------------- trackers


class NullTracker:
    """Tracking switched off: every call does nothing."""

    uri: str | None = None
    experiment_id: str | None = None
    run_id: str | None = None

    @contextlib.contextmanager
    def run(
        self,
        run_id: str | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> Iterator[NullTracker]:
        yield self

    def run_exists(self, run_id: str | None) -> bool:
        return False

    def open_run(
        self, run_name: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> str | None:
        return None

    def close_run(self, status: str = "FINISHED") -> None: ...

    def child_runs(self, parent_run_id: str | None = None) -> list[dict[str, Any]]:
        return []

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...
    def log_history(self, history: Iterable[Mapping[str, Any]], start_ms: int) -> None: ...
    def log_artifact(self, path: str | os.PathLike[str], folder: str | None = None) -> None: ...
    def log_dict(self, payload: Any, name: str) -> None: ...
    def log_dataset(self, frame: pd.DataFrame, **kwargs: Any) -> None: ...
    def log_model(self, model_path: str | os.PathLike[str], **kwargs: Any) -> None: ...


class MlflowTracker:
    """One experiment in one store; :meth:`run` opens (or resumes) the active run."""

    def __init__(self, uri: str, experiment_id: str, root: Path) -> None:
        self.uri = uri
        self.experiment_id = experiment_id
        self.root = root
        self.run_id: str | None = None
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def run_exists(self, run_id: str | None) -> bool:
        if not run_id:
            return False
        try:
            run = self.client.get_run(run_id)
        except Exception:  # RESOURCE_DOES_NOT_EXIST, or a malformed id
            return False
        return run.info.experiment_id == self.experiment_id and run.info.lifecycle_stage == "active"

    @contextlib.contextmanager
    def run(
        self,
        run_id: str | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> Iterator[MlflowTracker]:
        """Start a run (or resume ``run_id``); it ends FINISHED, FAILED or KILLED, never RUNNING.

        ``parent_run_id`` makes the new run a child (a sweep's job under the sweep's run).
        """
        mlflow = _mlflow()
        self.end_orphaned_runs()
        owner = owner_tags()
        if run_id:  # a resumed run names its new owner before it is RUNNING again
            _retry(lambda: self.client.log_batch(run_id, tags=_run_tags(owner)))
        active = _retry(
            lambda: mlflow.start_run(
                run_id=run_id,
                experiment_id=None if run_id else self.experiment_id,
                run_name=None if run_id else run_name,
                nested=parent_run_id is not None,
                parent_run_id=parent_run_id,
                tags=None if run_id else owner,
            )
        )
        outer, self.run_id = self.run_id, active.info.run_id
        status = "FAILED"
        try:
            with sigterm_as_interrupt():
                yield self
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        except SystemExit as exc:
            status = "FINISHED" if exc.code in (0, None) else "FAILED"
            raise
        finally:
            try:
                _retry(lambda: mlflow.end_run(status))
            except Exception as exc:  # never hide the error that got us here
                print(f"warning: could not end MLflow run {self.run_id}: {exc}", file=sys.stderr)
            if outer is not None and parent_run_id is not None:
                self.run_id = outer  # back to logging into the parent

    def open_run(self, run_name: str | None = None, tags: Mapping[str, Any] | None = None) -> str:
        """Create a run and log to it, without making it MLflow's active run.

        For a sweep's parent run: it spans every job while the jobs, perhaps in this very
        process, start and end their own child runs with :meth:`run`. End it with
        :meth:`close_run`.
        """
        self.end_orphaned_runs()
        tags = {key: str(value) for key, value in (tags or {}).items() if value is not None}
        tags |= owner_tags()
        created = _retry(
            lambda: self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        )
        self.run_id = created.info.run_id
        return self.run_id

    def end_orphaned_runs(self) -> list[str]:
        """End KILLED the RUNNING runs whose process on this host has exited; their ids.

        A process is the one that was tagged, not just any with its pid: its start time
        must match too, so a recycled pid does not keep an orphan alive. Runs of other
        hosts, and runs without the tags, are left alone. Never fails: a store that
        cannot be searched only gets a warning.
        """
        host = socket.gethostname()
        query = f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
        ended: list[str] = []
        try:
            runs = _retry(
                lambda: self.client.search_runs([self.experiment_id], query, max_results=1000)
            )
            for run in runs:
                tags = run.data.tags
                if _process_alive(tags.get(PID_TAG), tags.get(STARTED_TAG)):
                    continue
                note = (
                    f"its process {tags.get(PID_TAG)} on {host} exited without ending it; "
                    f"ended KILLED by process {os.getpid()}"
                )
                run_id = run.info.run_id
                _retry(lambda r=run_id, n=note: self.client.set_tag(r, ORPHAN_TAG, n))
                _retry(lambda r=run_id: self.client.set_terminated(r, "KILLED"))
                ended.append(run_id)
        except Exception as exc:
            print(f"warning: could not check for orphaned MLflow runs: {exc}", file=sys.stderr)
        return ended

    def close_run(self, status: str = "FINISHED") -> None:
        """End the run from :meth:`open_run`: FINISHED, FAILED or KILLED."""
        if self.run_id is not None:
            run_id = self.run_id
            _retry(lambda: self.client.set_terminated(run_id, status))

    def child_runs(self, parent_run_id: str | None = None) -> list[dict[str, Any]]:
        """The runs under ``parent_run_id`` (default: this tracker's run) as plain dicts.

        Each has ``run_id``, ``run_name``, ``status``, ``params``, ``tags`` and ``metrics``
        (the latest value of each).
        """
        parent = parent_run_id or self.run_id
        query = f"tags.mlflow.parentRunId = '{parent}'"
        found: list[dict[str, Any]] = []
        token = None
        while True:
            page = _retry(
                lambda token=token: self.client.search_runs(
                    [self.experiment_id], query, max_results=1000, page_token=token
                )
            )
            found += [
                {
                    "run_id": run.info.run_id,
                    "run_name": run.info.run_name,
                    "status": run.info.status,
                    "params": dict(run.data.params),
                    "tags": dict(run.data.tags),
                    "metrics": dict(run.data.metrics),
                }
                for run in page
            ]
            token = page.token
            if not token:
                return found

    # -- logging ---------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Flattened params, in batches; values already logged with the same value are skipped."""
        from mlflow.entities import Param

        existing = _retry(lambda: self.client.get_run(self.run_id)).data.params
        items = [
            Param(key, _param_value(value))
            for key, value in flatten(params).items()
            if key not in existing
        ]
        for chunk in _chunks(items, PARAMS_PER_BATCH):
            _retry(lambda chunk=chunk: self.client.log_batch(self.run_id, params=chunk))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(key, str(value)) for key, value in tags.items() if value is not None]
        for chunk in _chunks(items, PARAMS_PER_BATCH):
            _retry(lambda chunk=chunk: self.client.log_batch(self.run_id, tags=chunk))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Nested keys join with ``/`` (``test/threshold_tuned/f1``); non-numbers are dropped."""
        now = _now_ms()
        flat = flatten(metrics, sep="/")
        self._send(
            (metric_key(key), float(value), now, step or 0)
            for key, value in flat.items()
            if _is_number(value)
        )

    def log_history(self, history: Iterable[Mapping[str, Any]], start_ms: int) -> None:
        """Per-epoch ``train/loss``, ``val/loss``, ``train/lr`` as step metrics, in batches.

        Timestamps are the fit's start plus each epoch's elapsed time, so the MLflow UI
        can plot the curves against wall-clock time as well as against epochs.
        """
        names = {"train_loss": "train/loss", "val_loss": "val/loss", "learning_rate": "train/lr"}

        def rows() -> Iterator[tuple[str, float, int, int]]:
            for record in history:
                step = int(record["epoch"])
                stamp = start_ms + round(1000 * float(record.get("elapsed") or 0.0))
                for field, key in names.items():
                    if _is_number(record.get(field)):
                        yield key, float(record[field]), stamp, step

        self._send(rows())

    def _send(self, rows: Iterable[tuple[str, float, int, int]]) -> None:
        from mlflow.entities import Metric

        metrics = [Metric(key, value, stamp, step) for key, value, stamp, step in rows]
        for chunk in _chunks(metrics, METRICS_PER_BATCH):
            _retry(lambda chunk=chunk: self.client.log_batch(self.run_id, metrics=chunk))

    def log_artifact(self, path: str | os.PathLike[str], folder: str | None = None) -> None:
        _retry(lambda: self.client.log_artifact(self.run_id, str(path), folder))

    def log_dict(self, payload: Any, name: str) -> None:
        _retry(lambda: self.client.log_dict(self.run_id, payload, name))

    def log_dataset(
        self,
        frame: pd.DataFrame,
        *,
        source: str | os.PathLike[str],
        name: str,
        context: str,
        targets: str | None = None,
    ) -> None:
        """The table as an MLflow dataset input of this run (schema, digest, source path)."""
        mlflow = _mlflow()
        from mlflow.data.pandas_dataset import from_pandas

        with warnings.catch_warnings():
            # mlflow registers two identical local-file sources and warns about its own tie.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            dataset = from_pandas(
                frame, source=str(Path(source).resolve()), name=name, targets=targets
            )
        with _no_integer_schema_hint():  # the dataset infers its schema when it is logged
            _retry(lambda: mlflow.log_input(dataset, context=context))

    def log_model(
        self,
        model_path: str | os.PathLike[str],
        *,
        input_example: pd.DataFrame,
        positive: Any = None,
        threshold: float = 0.5,
    ) -> None:
        """Log the saved model as a pyfunc; its weights are the npz/json files, not a pickle.

        The served model takes rows by column name: the original columns when the
        model's metadata holds its preprocessing (``input_example`` should then be such
        rows), else the prepared features. It returns ``proba_<class>`` columns equal
        to ``predict_proba`` and a ``label`` column (binary: ``P(positive) >= threshold``).
        """
        _mlflow()
        from mlflow.models import infer_signature
        from mlflow.pyfunc import log_model

        model_path = Path(model_path)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "logreg"
            data.mkdir()
            shutil.copy2(model_path, data / MODEL_FILE)
            shutil.copy2(
                model_path.with_suffix(".json"), data / Path(MODEL_FILE).with_suffix(".json")
            )
            serving = {"positive_class": _plain(positive), "threshold": float(threshold)}
            (data / SERVING_FILE).write_text(json.dumps(serving, indent=2) + "\n")
            served = _load_pyfunc(str(data))
            output = served.predict(input_example)
            with _no_integer_schema_hint():
                log_model(
                    name=MODEL_NAME,
                    loader_module=__name__,
                    data_path=str(data),
                    signature=infer_signature(input_example, output),
                    input_example=input_example,
                    pip_requirements=_requirements(),
                )


@contextlib.contextmanager
def _no_integer_schema_hint() -> Iterator[None]:
    """Silence MLflow's advice against integer columns in a schema (warned on stderr).

    Its integers here are class labels and codes, which never hold missing values, and
    the served model imputes the inputs' gaps itself.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        yield


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("mlflow", "numpy", "pandas"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and not (isinstance(value, float | np.floating) and math.isnan(value))
    )


def _param_value(value: Any) -> str:
    return "null" if value is None else str(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# ----------------------------------------------------------------------------- pyfunc


class ServedModel:
    """What ``mlflow.pyfunc.load_model`` returns for a logged logreg model."""

    def __init__(
        self,
        model: Any,
        positive: Any = None,
        threshold: float = 0.5,
        preprocessing: Preprocessing | None = None,
    ) -> None:
        self.model = model
        self.positive = positive
        self.threshold = threshold
        self.preprocessing = preprocessing
        names = model.feature_names_in_
        self.feature_names = list(names) if names else None

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if self.preprocessing is not None:
            frame = self._features_of(frame)
        if self.feature_names is not None:
            missing = [c for c in self.feature_names if c not in frame.columns]
            if missing:
                raise ValueError(f"input is missing feature columns: {missing[:5]}")
            frame = frame[self.feature_names]
        proba = self.model.predict_proba(frame.to_numpy(dtype=np.float64))
        classes = self.model.classes_
        out = pd.DataFrame(proba, columns=[f"proba_{c}" for c in classes], index=frame.index)
        if len(classes) == 2 and self.positive is not None:
            pos = int(np.flatnonzero(classes == self.positive)[0])
            labels = np.where(proba[:, pos] >= self.threshold, classes[pos], classes[1 - pos])
        else:
            labels = classes[np.argmax(proba, axis=1)]
        out.insert(0, "label", labels)
        return out

    def _features_of(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The training transform applied to rows of the original columns."""
        prep = self.preprocessing
        try:
            features = preprocess.transform(prep, rows)
        except UserError as exc:  # one message, as a scoring error
            raise ValueError(f"input: {exc}") from None
        if len(features) < len(rows):  # prepare.missing=drop removes rows with gaps
            gaps = rows[[c.name for c in prep.columns]].isna().any(axis=1).to_numpy()
            raise ValueError(
                f"input {preprocess.row_name(rows.index, int(np.argmax(gaps)))} has a missing "
                "value; the model was prepared with missing=drop, so it scores complete rows only"
            )
        return features


def _load_pyfunc(data_path: str, model_config: Any = None) -> ServedModel:
    """MLflow's ``loader_module`` hook: rebuild the model from npz/json, no pickle."""
    from logreg import LogisticRegression

    folder = Path(data_path)
    model = LogisticRegression.load(folder / MODEL_FILE)
    prep = model.metadata_.get("preprocess")
    preprocessing = Preprocessing.from_dict(prep) if prep else None
    serving_file = folder / SERVING_FILE
    serving = json.loads(serving_file.read_text()) if serving_file.is_file() else {}
    positive = serving.get("positive_class")
    if positive is not None:
        positive = np.asarray([positive]).astype(model.classes_.dtype)[0]
    return ServedModel(model, positive, float(serving.get("threshold", 0.5)), preprocessing)


Tracker = NullTracker | MlflowTracker
