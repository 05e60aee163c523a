"""Tracking beside the work: a stage's MLflow calls run in order in a child process.

Importing MLflow, opening its store, starting the run and logging the datasets (which
hashes the splits) take about 3 s of CPU per tracked stage: half the train stage's fit
at 2M rows. That fit can use one core (its batches are too small for OpenBLAS's second
thread; its loss passes are kept to one thread by :func:`work_beside`), so
:class:`BackgroundTracker` hands every call to a child process, which does them on the
other core while the stage reads its data and fits.

It has the methods of :class:`~logreg.tracking.runs.MlflowTracker`, and the same
promises. Calls run in the order they were made. The run ends FINISHED, FAILED or
KILLED when the stage's ``with tracker.run(...)`` block ends, and the stage waits
there for the child: an error from any call is raised then, before the stage returns.
An unreachable server still fails at once, before any work (the check needs no
MLflow). The child ignores Ctrl-C: the stage's own interrupt ends the run KILLED.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from logreg.errors import sigterm_as_interrupt
from logreg.tracking.provenance import project_root
from logreg.tracking.runs import SCHEMA_SAMPLE_ROWS, NullTracker, open_tracker
from logreg.tracking.store import check_reachable, resolve_tracking_uri


def work_beside(tracker: Any) -> contextlib.AbstractContextManager[Any]:
    """Around a stage's fit: one BLAS thread while a tracking child works beside it.

    OpenBLAS's second thread spins for a while after every call it shares (the fit's
    loss passes), so it holds the second core through most of the fit, and the child,
    niced, got none of it: on a 2M × 50 workspace of ``bench/pipeline.py`` the child
    imported MLflow and opened the store only after the 5 s fit, and the train stage
    then waited 2.6–2.8 s for it. On one thread the fit took 13 % longer (median of 4
    interleaved fits) and the child was done halfway through it, so the stage ended
    about 2 s sooner. Without a child there is nothing to leave room for: the
    libraries' own threads.
    """
    if isinstance(tracker, BackgroundTracker):
        return threadpool_limits(limits=1, user_api="blas")
    return contextlib.nullcontext()


def open_background_tracker(
    cfg: Mapping[str, Any], root: Path | None = None, defer_open: bool = False
) -> BackgroundTracker | NullTracker:
    """:func:`~logreg.tracking.runs.open_tracker`, its calls run in a child process."""
    if not cfg.get("enabled", True):
        return NullTracker()
    return BackgroundTracker(cfg, root, defer_open)


class BackgroundTracker:
    """An :class:`~logreg.tracking.runs.MlflowTracker` in a child process, fed in order."""

    def __init__(
        self, cfg: Mapping[str, Any], root: Path | None = None, defer_open: bool = False
    ) -> None:
        """``defer_open``: the child imports MLflow and opens the store with the first
        call, not at once. For a stage that makes no call until its fit, which uses one
        core, and reads its data first with every core (Arrow's reader): the child's
        seconds of CPU then run beside the fit instead of slowing the read."""
        root = (root or project_root()).resolve()
        self.uri = resolve_tracking_uri(cfg.get("tracking_uri"), root)
        check_reachable(self.uri)  # an unreachable server fails here, before any work
        # Forked, not spawned: the child starts as a copy of this process, its imports
        # done, before any thread of the stage's starts (ProcessPoolExecutor forks
        # before its own thread), instead of a new interpreter importing them again.
        # Forked now, even when the store opens later: a small process, before any read.
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        self._calls: list[Future] = [self._pool.submit(_settle_child)]
        self._open_args = (dict(cfg), root)
        self._opened: Future | None = None
        self._started: Future | None = None
        if not defer_open:
            self._open()

    @property
    def experiment_id(self) -> str:
        return self._open().result()

    @property
    def run_id(self) -> str | None:
        self._open().result()  # a store that failed to open says so, not the run after it
        return None if self._started is None else self._started.result()

    @contextlib.contextmanager
    def run(
        self,
        run_id: str | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> Iterator[BackgroundTracker]:
        """The child starts (or resumes) the run; it ends as the block ends, after every call."""
        self._started = self._submit(_start, run_id, run_name, parent_run_id)
        outcome: BaseException | None = None
        try:
            with sigterm_as_interrupt():
                yield self
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            self._submit(_end, _stand_in(outcome))
            self._finish(raise_error=outcome is None)

    def run_exists(self, run_id: str | None) -> bool:
        return self._submit(_call, "run_exists", (run_id,), {}).result()

    def find_run(self, tags: Mapping[str, str]) -> str | None:
        return self._submit(_call, "find_run", (dict(tags),), {}).result()

    def log_dataset(self, frame: Any, **kwargs: Any) -> None:
        """Sends the rows the schema is inferred from and the shape, not the whole table
        (the ``shape`` given, when ``frame`` is already a table's first rows)."""
        head = frame.head(SCHEMA_SAMPLE_ROWS)
        self._submit(_call, "log_dataset", (head,), {"shape": frame.shape} | kwargs)

    def __getattr__(self, method: str) -> Any:
        """log_params, set_tags, log_metrics, log_history, log_artifact, ...: queued."""
        if method.startswith("_") or method not in _QUEUED:
            raise AttributeError(method)

        def queued(*args: Any, **kwargs: Any) -> None:
            self._submit(_call, method, args, kwargs)

        return queued

    def _open(self) -> Future:
        """The child's opening of the store, queued before any other call."""
        if self._opened is None:
            self._opened = self._pool.submit(_open, *self._open_args)
            self._calls.append(self._opened)
        return self._opened

    def _submit(self, function: Any, *args: Any) -> Future:
        self._open()
        call = self._pool.submit(function, *args)
        self._calls.append(call)
        return call

    def _finish(self, raise_error: bool) -> None:
        """Wait for every call; raise the first error, or only warn while another unwinds."""
        errors = [call.exception() for call in self._calls]
        self._pool.shutdown()
        first = next((error for error in errors if error is not None), None)
        if first is None:
            return
        if raise_error:
            raise first
        print(f"warning: MLflow tracking failed too: {first}", file=sys.stderr)


_QUEUED = frozenset(
    {
        "log_params",
        "flush",
        "set_tags",
        "tag_digests",
        "set_description",
        "log_metrics",
        "log_history",
        "log_artifact",
        "log_dict",
        "log_model",
    }
)

# ------------------------------------------------------------------- the child's side

CHILD_NICENESS = 10  # added to the stage's: CFS gives it about a tenth of a contended core
_child: dict[str, Any] = {}  # the child process's tracker and its open run block


def _settle_child() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the stage, which ends the run
    # The child's seconds of CPU (importing MLflow, opening the store, hashing the splits)
    # can wait until the stage's end; the stage's fit cannot. Where no core is idle (its
    # BLAS threads, other jobs), the fit gets the CPU first.
    os.nice(CHILD_NICENESS)


def _open(cfg: dict[str, Any], root: Path) -> str:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    _child["tracker"] = open_tracker(cfg, root)
    return _child["tracker"].experiment_id


def _start(run_id: str | None, run_name: str | None, parent_run_id: str | None) -> str:
    tracker = _child["tracker"]
    block = tracker.run(run_id=run_id, run_name=run_name, parent_run_id=parent_run_id)
    block.__enter__()
    _child["block"] = block
    return tracker.run_id


def _call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return getattr(_child["tracker"], method)(*args, **kwargs)


def _end(outcome: BaseException | None) -> None:
    """End the run as the stage's block ended: FINISHED, FAILED or KILLED."""
    block = _child.pop("block", None)
    if block is None:  # the run never started: that error is already on its way
        return
    if outcome is None:
        block.__exit__(None, None, None)
        return
    with contextlib.suppress(BaseException):  # the run block re-raises what it is given
        block.__exit__(type(outcome), outcome, None)


def _stand_in(outcome: BaseException | None) -> BaseException | None:
    """The stage's exception as the run block tells them apart, and as it pickles."""
    if outcome is None or isinstance(outcome, KeyboardInterrupt):
        return None if outcome is None else KeyboardInterrupt()
    if isinstance(outcome, SystemExit):
        return SystemExit(outcome.code if isinstance(outcome.code, int | None) else 1)
    return RuntimeError(str(outcome))
