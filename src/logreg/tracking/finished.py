"""Finished runs: read one back (``python -m logreg.compare``), or add to a sweep's parent.

- :func:`read_run`: a run's params, latest metrics, per-epoch losses and the PR curve it
  logged (``plots/pr.csv``), as plain Python and pandas, for the comparison report;
- :func:`add_to_parent_run`: after ``python -m logreg.sweep`` has ranked the jobs, the
  sweep's parent run gets the importance table as an artifact and a line in its
  description. The parent is found from a job's run file (``.logreg/run.json``).

mlflow is imported on first use, never at import.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from logreg.errors import UserError
from logreg.tracking.runs import read_run_file
from logreg.tracking.store import import_mlflow, resolve_tracking_uri, retry

PR_ARTIFACT = "plots/pr.csv"  # the evaluate stage logs reports/plots/pr.csv in plots/
LOSSES = ("train/loss", "val/loss")  # per-epoch metrics logged by the train stage
PARENT_TAG = "mlflow.parentRunId"
NOTE_TAG = "mlflow.note.content"  # the run's description in the MLflow UI


def _client(tracking_uri: str | None) -> Any:
    import_mlflow()
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=resolve_tracking_uri(tracking_uri))


def find_run(run_id: str, tracking_uri: str | None = None) -> Any | None:
    """The MLflow run ``run_id``, or None when the store has no such run."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        return retry(lambda: client.get_run(run_id))
    except MlflowException:
        return None


def read_run(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """A run as the comparison needs it: ``name``, ``params``, ``metrics``, ``history``, ``pr``.

    ``history`` has a column per loss in :data:`LOSSES`, indexed by epoch; ``pr`` is the
    logged PR curve (recall, precision, threshold), None when the run logged none.
    """
    client = _client(tracking_uri)
    run = find_run(run_id, tracking_uri)
    if run is None:
        raise UserError(
            f"{run_id}: no such MLflow run in {resolve_tracking_uri(tracking_uri)} "
            "(and no DVC experiment of that name)"
        )
    curves = {
        key: pd.Series(
            {m.step: m.value for m in retry(lambda key=key: client.get_metric_history(run_id, key))}
        )
        for key in LOSSES
    }
    history = pd.DataFrame(curves).sort_index().rename_axis("epoch")
    return {
        "name": run.info.run_name or run_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "history": history,
        "pr": _logged_csv(client, run_id, PR_ARTIFACT),
    }


def _logged_csv(client: Any, run_id: str, artifact: str) -> pd.DataFrame | None:
    from mlflow.exceptions import MlflowException

    # A comparison reads a few small files: no progress bar per file on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except (MlflowException, OSError):
            return None
        return pd.read_csv(path)


def latest_run_ids(count: int, experiment_name: str, tracking_uri: str | None = None) -> list[str]:
    """The ids of the ``count`` most recent FINISHED runs of the pipeline, oldest first.

    A sweep's parent run (tag ``sweep = parent``) is not a run of the pipeline: skipped.
    """
    client = _client(tracking_uri)
    experiment = retry(lambda: client.get_experiment_by_name(experiment_name))
    if experiment is None:
        raise UserError(
            f"mlflow.experiment_name: no experiment '{experiment_name}' in "
            f"{resolve_tracking_uri(tracking_uri)}; run `make run` first"
        )
    runs = retry(
        lambda: client.search_runs(
            [experiment.experiment_id],
            "attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=count + 50,
        )
    )
    pipeline_runs = [run for run in runs if run.data.tags.get("sweep") != "parent"]
    return [run.info.run_id for run in pipeline_runs[:count]][::-1]


def add_to_parent_run(
    run_file: str | os.PathLike[str], artifact: str | os.PathLike[str], line: str
) -> str | None:
    """Log ``artifact`` to the parent of the run in ``run_file``, and put ``line`` in its
    description in place of an earlier line with the same label, the text up to its
    first colon (a re-ranked sweep says it once). Returns the parent's id; None when the
    job was not tracked in a sweep.
    """
    run_file = Path(run_file)
    record = read_run_file(run_file)
    run_id = record.get("run_id")
    if not run_id:
        return None
    client = _client(record.get("tracking_uri"))
    child = find_run(run_id, record.get("tracking_uri"))
    parent_id = child.data.tags.get(PARENT_TAG) if child is not None else None
    if not parent_id:
        return None
    note = retry(lambda: client.get_run(parent_id)).data.tags.get(NOTE_TAG, "")
    label = line.split(":", 1)[0] + ":"  # "- what mattered:"
    kept = [old for old in note.splitlines() if not old.startswith(label)]
    retry(lambda: client.log_artifact(parent_id, str(artifact)))
    retry(lambda: client.set_tag(parent_id, NOTE_TAG, "\n".join([*kept, line])))
    return str(parent_id)
