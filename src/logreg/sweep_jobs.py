"""``<sweep dir>/jobs.json``: how each job of a sweep ended, as its launcher saw it.

The Dask launcher writes it (``hydra/launcher=dask``); the sweep's MLflow parent run
reads it (:class:`logreg.run.SweepParentRun`), because a job that failed before its
stages opened a child run, or whose worker died, leaves no child run to count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from logreg.io import write_text

JOBS_FILE = "jobs.json"


def record_batch(sweep_dir: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    """Add a batch of job records (``job``, ``overrides``, ``status``, ``error``) to the file.

    A search sweeper launches batch after batch, so the file grows; a job number seen
    again takes its new record.
    """
    path = Path(sweep_dir) / JOBS_FILE
    done = {record["job"] for record in records}
    merged = [r for r in read(sweep_dir) if r["job"] not in done] + list(records)
    write_text(path, json.dumps(sorted(merged, key=lambda r: r["job"]), indent=2) + "\n")
    return path


def read(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """The records, or [] when the launcher keeps none (joblib, the basic launcher)."""
    path = Path(sweep_dir) / JOBS_FILE
    return json.loads(path.read_text()) if path.is_file() else []
