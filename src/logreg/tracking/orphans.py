"""Runs left RUNNING by a process that died, and the owner tags that find them.

A process killed outright (SIGKILL, the OOM killer) cannot end its run. Every run is
therefore tagged with the host, pid and start time of the process that holds it open
(:func:`owner_tags`), and the next run started on that host ends such orphans KILLED
(:func:`end_orphaned_runs`). The MLflow client is passed in: nothing here imports mlflow.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from logreg.tracking.store import retry

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


def end_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
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
        runs = retry(lambda: client.search_runs([experiment_id], query, max_results=1000))
        for run in runs:
            tags = run.data.tags
            if _process_alive(tags.get(PID_TAG), tags.get(STARTED_TAG)):
                continue
            note = (
                f"its process {tags.get(PID_TAG)} on {host} exited without ending it; "
                f"ended KILLED by process {os.getpid()}"
            )
            run_id = run.info.run_id
            retry(lambda r=run_id, n=note: client.set_tag(r, ORPHAN_TAG, n))
            retry(lambda r=run_id: client.set_terminated(r, "KILLED"))
            ended.append(run_id)
    except Exception as exc:
        print(f"warning: could not check for orphaned MLflow runs: {exc}", file=sys.stderr)
    return ended


def _process_alive(pid: str | None, started: str | None) -> bool:
    """Whether the process with this pid and start time (as in owner_tags) still runs."""
    import psutil

    try:
        return f"{psutil.Process(int(pid or '')).create_time():.3f}" == started
    except (ValueError, psutil.NoSuchProcess):
        return False
    except psutil.Error:  # not ours to inspect: assume it runs
        return True
