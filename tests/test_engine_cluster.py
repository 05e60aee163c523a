"""engine=dask with a scheduler address that does not answer: one line, within 10 s."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from conftest import free_port
from logreg.config import load_params
from logreg.engines.cluster import connect
from logreg.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def test_an_unreachable_engine_address_stops_the_stage_with_one_line(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    params = OmegaConf.to_container(load_params(ROOT / "params.yaml"), resolve=True)
    params["engine"] = {"name": "dask", "address": address}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "logreg.stages.prepare", "--params", tmp_path / "params.yaml"]
    command += ["--raw-dir", tmp_path / "raw", "--out-dir", tmp_path / "prepared"]
    command += ["--report", tmp_path / "data.json"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    waited = time.monotonic() - started
    assert done.returncode != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: logreg.stages.prepare: engine.address: cannot reach a Dask ")
    assert address in line
    # Python and the stage's imports take seconds of a loaded machine: the 10 s bound is
    # checked below, on the connection alone; here, no minutes of retries.
    assert waited < 60.0
    assert not (tmp_path / "prepared").exists() and not (tmp_path / "data.json").exists()


def test_an_unreachable_address_is_reported_within_ten_seconds():
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(UserError, match="cannot reach a Dask"):
        with connect(address, key="engine.address"):
            pass
    assert time.monotonic() - started < 10.0


def test_a_local_clusters_workers_run_without_the_statistical_profiler():
    """It samples every task's stack every 10 ms: 9 % of a sweep job's time, for a page
    of the dashboard that nobody opens on a cluster made for one stage or sweep."""
    import dask

    with connect(None, n_workers=1) as client:
        seen = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert list(seen.values()) == [False]


def test_a_local_clusters_event_loops_wake_once_a_second_at_most():
    """Their health tick (20 ms) and system monitor (500 ms) take the GIL from the task
    running beside them; tornado's PeriodicCallback keeps its interval in ms."""
    with connect(None, n_workers=1) as client:
        workers = client.run(
            lambda dask_worker: {
                name: dask_worker.periodic_callbacks[name].callback_time
                for name in ("tick", "monitor")
            }
        )
        scheduler = client.run_on_scheduler(
            lambda dask_scheduler: dask_scheduler.periodic_callbacks["tick"].callback_time
        )
    (worker,) = workers.values()
    assert worker["tick"] >= 1000 and worker["monitor"] >= 1000
    assert scheduler >= 1000


def test_a_local_clusters_workers_allocate_as_any_process_does(monkeypatch):
    """Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 for its workers, which pins glibc's
    mmap threshold at 128 KB: a freed 1 MB array then comes back as 256 new pages."""
    # A nanny also writes the variable into its own process's environment, which later
    # workers inherit: an earlier test's cluster (not made by connect) leaves it here.
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)

    def refault_one_megabyte() -> tuple[str | None, int]:
        import resource

        for _ in range(2):  # glibc's first free of a mapped 1 MB raises its threshold above it
            warm = np.ones(1 << 17)
            del warm
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        again = np.ones(1 << 17)
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
        del again
        return os.environ.get("MALLOC_TRIM_THRESHOLD_"), faults

    with connect(None, n_workers=1) as client:
        setting, faults = client.submit(refault_one_megabyte, pure=False).result()
    # Dynamic, the freed 1 MB stays in the heap and is reused; pinned at 128 KB, each
    # 1 MB array was a new mapping: 257 faults.
    assert faults < 16
    assert setting is None
