"""The Dask cluster a stage or a sweep runs on: a LocalCluster made for it, or a running one.

``engine.address`` null starts a :class:`distributed.LocalCluster` of ``n_workers``
processes and closes it when the stage ends; an address (``tcp://host:8786``) connects
to a running ``dask scheduler`` and leaves it running. A scheduler that does not answer
is one :class:`~logreg.errors.UserError` line within :data:`CONNECT_TIMEOUT`, whoever
asked (the ``engine`` section or the Dask launcher's ``hydra.launcher``). Dask is
imported only when a cluster is wanted, so the numpy engine never pays for it.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from logreg.errors import UserError

ENGINES = ("numpy", "dask")
# A scheduler answers in milliseconds; Dask retries a wrong address until this ends.
CONNECT_TIMEOUT = "5s"
_BYTE_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([kKMGTP]i?B|B)?\s*$")


def is_byte_size(value: Any) -> bool:
    """A memory size Dask reads: bytes as an integer, '4GiB', '500MB', or 'auto'."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    return isinstance(value, str) and (value == "auto" or bool(_BYTE_SIZE.match(value)))


@contextlib.contextmanager
def connect(
    address: str | None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    memory_limit: str | int = "auto",
    allowed_failures: int | None = None,
    key: str = "engine.address",
) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a LocalCluster.

    ``allowed_failures`` is how often a task may lose its worker before it fails
    (the LocalCluster's scheduler only; a running scheduler keeps its own setting).
    ``key`` names the setting that gave ``address``, for the error line.
    """
    import dask
    from distributed import Client, LocalCluster

    quiet_dask_logs()
    if address:
        try:
            client = Client(str(address), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise UserError(f"{key}: cannot reach a Dask scheduler at {address} ({exc})") from None
        with client:
            yield client
        return
    settings: dict[str, Any] = {
        # The workers' statistical profiler samples every task thread's stack every 10 ms,
        # for the dashboard's profile page: a sweep job (Python for seconds) took 1.23x its
        # time in one process with it, 1.13x without (Caravan, 5 jobs each, load 2).
        "distributed.worker.profile.enabled": False,
        # Every server (scheduler, nannies, workers) wakes its event loop every 20 ms to
        # time itself, for a "blocked event loop" warning, and every 500 ms to sample
        # CPU, memory, disk and network for the dashboard; each wake needs the GIL that
        # the job beside it holds. With a 1 s tick an idle 2-worker cluster used 0.7 CPU
        # seconds in 15 s instead of 1.7, and a 40-job sweep's CPU went from 1.24x to
        # 1.11x joblib's (README, bench/sweep.py). The memory limits keep their monitors
        # (distributed.worker.memory.monitor-interval, 100 ms).
        "distributed.admin.tick.interval": "1s",
        "distributed.admin.system-monitor.interval": "5s",
        # The nanny starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which also pins
        # glibc's mmap threshold at 128 KB: every array above it is then fresh pages,
        # zeroed by the kernel (a pandas-heavy job: 1.6-1.9x the thread's CPU, 200x the
        # page faults; logreg.allocator). Unset, the workers allocate as any process does;
        # arrays above 32 MB (a partition) still go back to the OS when freed.
        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    }
    if allowed_failures is not None:
        settings["distributed.scheduler.allowed-failures"] = allowed_failures
    with (
        dask.config.set(settings),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            memory_limit=memory_limit,
            dashboard_address=":0",  # a free port: two clusters on one host never clash
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@contextlib.contextmanager
def engine_client(engine: dict[str, Any]) -> Iterator[Any]:
    """The client for a checked ``engine`` section whose name is 'dask'."""
    with connect(
        engine["address"],
        n_workers=engine["n_workers"],
        threads_per_worker=engine["threads_per_worker"],
        memory_limit=engine["memory_limit"],
    ) as client:
        yield client


def quiet_dask_logs() -> None:
    """Dask's INFO lines (workers starting, closing) would bury the stage's own lines."""
    for name in [*logging.root.manager.loggerDict, "distributed"]:
        if name.startswith("distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
