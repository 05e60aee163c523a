"""Submit each job of a multirun to Dask; return the jobs' results in order.

A job runs on a worker as under Hydra's joblib launcher: the sweep's config is loaded
with the job's overrides and Hydra's ``run_job`` calls the task, in the job's folder
under ``hydra.sweep.dir`` on that worker's filesystem. Everything a user compares goes
to MLflow, so a worker on another machine needs no shared disk, only the tracking URI.

Failures. Hydra's ``run_job`` catches the task's exception and returns it in a FAILED
``JobReturn``; the job raises it again here so that Dask's ``retries`` run it again. A
worker that dies is Dask's own business: the scheduler moves its tasks to another
worker, ``retries`` times (``distributed.scheduler.allowed-failures``, set for the
LocalCluster; a running scheduler uses its own setting). A job that fails every attempt
comes back FAILED with its error, after every other job has run, and the launcher writes
``<sweep dir>/jobs.json`` (each job's overrides, status, attempts and error), which the
sweep's MLflow parent run reads (:class:`logreg.run.SweepParentRun`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from logreg import sweep_jobs
from logreg.allocator import JOB_THRESHOLDS, keep_freed_memory
from logreg.engines.cluster import connect
from logreg.errors import UserError, user_errors_exit

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A job's task raised: carries its error as text, which pickles from any worker."""


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], first: int) -> list[JobReturn]:
    setup_globals()
    config, settings = launcher.config, launcher.settings
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    singleton_state = Singleton.get_state()
    with user_errors_exit():
        retries = _count(settings, "retries", minimum=0)
        client = _client(launcher, retries)
    log.info(f"Dask ({client.scheduler.address}) is launching {len(job_overrides)} jobs")
    sweep_key = uuid.uuid4().hex[:8]  # two sweeps on one cluster must not share task keys
    futures = [
        client.submit(
            execute_job,
            first + i,
            list(overrides),
            launcher.hydra_context,
            config,
            launcher.task_function,
            singleton_state,
            key=f"logreg-job-{sweep_key}-{first + i}",
            retries=retries,
            pure=False,
        )
        for i, overrides in enumerate(job_overrides)
    ]
    for i, overrides in enumerate(job_overrides):
        log.info(f"\t#{first + i} : {' '.join(filter_overrides(overrides))}")
    returns = [
        _result(future, list(overrides))
        for future, overrides in zip(futures, job_overrides, strict=True)
    ]
    record = [_job_record(first + i, ret, retries) for i, ret in enumerate(returns)]
    sweep_jobs.record_batch(sweep_dir, record)
    return returns


def execute_job(
    idx: int,
    overrides: list[str],
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """On a worker: one job, as Hydra's launchers run it. Raises when the task failed."""
    # The nanny's MALLOC_TRIM_THRESHOLD_ would make every array above 128 KB new pages.
    keep_freed_memory(*JOB_THRESHOLDS)
    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    ret = run_job(
        hydra_context=hydra_context,
        config=sweep_config,
        task_function=task_function,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    if ret.status == JobStatus.FAILED:
        error = ret._return_value
        raise JobFailed(f"{type(error).__name__}: {error}")
    return ret


def _result(future: Any, overrides: list[str]) -> JobReturn:
    """The job's JobReturn, or a FAILED one carrying the error of its last attempt."""
    try:
        return future.result()
    except Exception as error:  # the task raised on every attempt, or its workers died
        failed = JobReturn(overrides=overrides, status=JobStatus.FAILED)
        failed.return_value = error
        return failed


def _job_record(num: int, ret: JobReturn, retries: int) -> dict[str, Any]:
    ok = ret.status == JobStatus.COMPLETED
    return {
        "job": num,
        "overrides": list(ret.overrides or []),
        "status": "FINISHED" if ok else "FAILED",
        "error": None if ok else f"{ret._return_value}",
        "attempts_allowed": retries + 1,
    }


def _client(launcher: Any, retries: int) -> Any:
    """The sweep's client, connected on the first batch and kept for the next ones.

    A search sweeper launches batch after batch: they share one LocalCluster (or one
    connection), which closes when the sweep's process exits.
    """
    if launcher.client is None:
        resources = contextlib.ExitStack()
        launcher.client = resources.enter_context(_connect(launcher.settings, retries))
        atexit.register(resources.close)
    return launcher.client


def _connect(settings: dict[str, Any], retries: int) -> Any:
    """A client of the scheduler at ``address``, or of a LocalCluster made for this sweep."""
    # Hydra's job state is process-global, so a worker runs one job at a time.
    address = settings.get("address")
    return connect(
        str(address) if address else None,
        n_workers=1 if address else _count(settings, "n_workers", minimum=1),
        threads_per_worker=1,
        memory_limit=settings.get("memory_limit", "auto"),
        allowed_failures=retries,
        key="hydra.launcher.address",
    )


def _count(settings: dict[str, Any], key: str, minimum: int) -> int:
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"hydra.launcher.{key}: got {value!r}; allowed: an integer >= {minimum}")
    return value
