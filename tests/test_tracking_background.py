"""The tracker whose MLflow calls run in a child process: same run, same ends, errors raised.

Against an sqlite store in tmp_path; the run is read back with MLflow's own client.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from logreg.tracking.background import CHILD_NICENESS, BackgroundTracker, open_background_tracker
from logreg.tracking.orphans import PID_TAG
from logreg.tracking.runs import SCHEMA_SAMPLE_ROWS, NullTracker


def cfg(root) -> dict:
    return {"enabled": True, "tracking_uri": f"sqlite:///{root}/store.db", "experiment_name": "bg"}


def test_the_child_logs_the_whole_run_in_order_and_ends_it_finished(isolated_tracking, tmp_path):
    rows = SCHEMA_SAMPLE_ROWS + 500  # more than the rows sent to the child
    frame = pd.DataFrame({"x": np.arange(rows, dtype=float), "target": ["a", "b"] * (rows // 2)})
    source = tmp_path / "train.parquet"
    frame.to_parquet(source)
    artifact = tmp_path / "history.csv"
    artifact.write_text("epoch,loss\n1,0.5\n")
    tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path)
    with tracker.run(run_name="bg") as active:
        active.log_params({"train": {"batch_size": 16}})
        active.set_tags({"dataset.name": "tiny"})
        active.log_dataset(
            frame, source=source, name="tiny/train", context="train", targets="target"
        )
        history = [{"epoch": e, "train_loss": 1.0 / e, "elapsed": 0.1 * e} for e in (1, 2, 3)]
        active.log_history(history, start_ms=0)
        active.log_metrics({"train": {"epochs": 3}})
        active.log_artifact(artifact, "reports")
    run = MlflowClient(tracking_uri=tracker.uri).get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "16"
    assert run.data.tags["dataset.name"] == "tiny"
    assert run.data.tags[PID_TAG] != str(os.getpid())  # the child held the run
    assert run.data.metrics["train/epochs"] == 3
    losses = MlflowClient(tracking_uri=tracker.uri).get_metric_history(
        run.info.run_id, "train/loss"
    )
    assert [(m.step, m.value) for m in losses] == [(1, 1.0), (2, 0.5), (3, 1.0 / 3)]
    (dataset,) = run.inputs.dataset_inputs
    profile = json.loads(dataset.dataset.profile)
    assert profile["num_rows"] == rows and profile["num_elements"] == 2 * rows  # not the head's
    client = MlflowClient(tracking_uri=tracker.uri)
    assert [f.path for f in client.list_artifacts(run.info.run_id, "reports")] == [
        "reports/history.csv"
    ]


@pytest.mark.parametrize(
    ("error", "status"), [(ZeroDivisionError, "FAILED"), (KeyboardInterrupt, "KILLED")]
)
def test_an_error_in_the_stage_ends_the_run_as_the_tracker_in_process_would(
    isolated_tracking, tmp_path, error, status
):
    tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path)
    with pytest.raises(error), tracker.run(run_name="boom") as active:
        active.log_params({"a": 1})
        raise error
    run = MlflowClient(tracking_uri=tracker.uri).get_run(tracker.run_id)
    assert run.info.status == status
    assert run.data.params == {"a": "1"}  # the calls before the error were made


def test_a_failed_call_in_the_child_is_raised_when_the_block_ends(isolated_tracking, tmp_path):
    tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path)
    with pytest.raises(Exception, match=r"missing\.csv"), tracker.run(run_name="lost") as active:
        active.log_artifact(tmp_path / "missing.csv", "reports")
    assert MlflowClient(tracking_uri=tracker.uri).get_run(tracker.run_id).info.status == "FINISHED"


def test_disabled_tracking_starts_no_child(tmp_path):
    assert isinstance(open_background_tracker({"enabled": False}), NullTracker)


@pytest.mark.parametrize("defer_open", [False, True])
def test_a_deferred_tracker_opens_the_store_with_its_first_call_not_before(
    isolated_tracking, tmp_path, defer_open
):
    """The child is forked at once either way; only the store's opening waits for a call.

    Ended with no call made: the eager child has opened (created) the store, the deferred
    one has not touched it. Then a deferred tracker's run is logged as any other.
    """
    tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path, defer_open=defer_open)
    tracker._finish(raise_error=True)  # waits for every queued call, as a run block's end
    assert (tmp_path / "store.db").exists() is not defer_open

    if defer_open:
        tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path, defer_open=True)
        with tracker.run(run_name="late") as active:
            active.log_params({"a": 1})
        run = MlflowClient(tracking_uri=tracker.uri).get_run(tracker.run_id)
        assert run.info.status == "FINISHED" and run.data.params == {"a": "1"}


def test_the_child_runs_at_a_lower_priority_than_the_stage(tmp_path):
    """Its imports and hashing yield to the stage's fit where both want a core."""
    tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path, defer_open=True)
    try:
        child_niceness = tracker._pool.submit(os.nice, 0).result()  # os.nice(0): the current one
    finally:
        tracker._finish(raise_error=True)
    assert child_niceness == min(os.nice(0) + CHILD_NICENESS, 19)


def test_work_beside_a_child_has_one_blas_thread_and_without_one_all(isolated_tracking, tmp_path):
    from threadpoolctl import threadpool_info, threadpool_limits

    from logreg.tracking.background import work_beside

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    np.ones((4, 4)) @ np.ones(4)  # NumPy's BLAS is loaded
    with threadpool_limits(limits=2, user_api="blas"):
        tracker = BackgroundTracker(cfg(tmp_path), root=tmp_path, defer_open=True)
        with tracker.run(run_name="beside"), work_beside(tracker):
            assert blas_threads() == {1}
        assert blas_threads() == {2}
        with work_beside(NullTracker()):
            assert blas_threads() == {2}
