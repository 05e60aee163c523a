"""One of the parallel writers of test_parallel_writers.py: a train + evaluate run's logging.

    python parallel_worker.py <tracking uri> <go file> <job index> <epochs> <work dir>

Imports everything first, waits for the go file (so every job opens the brand-new store
at the same moment), then logs what the train and evaluate stages log: the composed
config as params, tags, two dataset inputs, the per-epoch history, nested metrics and a
few artifacts. Prints the run id.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from logreg.tracking.runs import open_tracker

PARAMS = {
    "data": {"name": "synthetic", "source": "synthetic", "n_samples": 400, "n_features": 4},
    "prepare": {"val_size": 0.2, "test_size": 0.2, "missing": "impute", "seed": 0},
    "rebalance": {"strategy": "none", "ratio": 1.0, "k_neighbors": 5, "seed": 0},
    "model": {"penalty": "l2", "alpha": 1e-4, "l1_ratio": 0.5, "solver": "sgd"},
    "train": {"batch_size": 16, "learning_rate": 0.5, "lr_schedule": "invscaling", "seed": 0},
    "evaluate": {"baseline": False},
}


def main(uri: str, go_file: str, index: int, epochs: int, work_dir: str) -> None:
    work = Path(work_dir) / f"job{index}"
    work.mkdir(parents=True)
    rng = np.random.default_rng(index)
    frame = pd.DataFrame(rng.normal(size=(50, 4)), columns=[f"x{j}" for j in range(4)])
    frame["target"] = rng.integers(0, 2, size=50)
    for split in ("train", "val"):  # a logged dataset's digest is its file's hash
        frame.to_parquet(work / f"{split}.parquet", index=False)
    history = [
        {
            "epoch": epoch,
            "train_loss": 1.0 / epoch + index,
            "val_loss": 1.0 / epoch + index + 0.1,
            "learning_rate": 0.5 / epoch,
            "elapsed": 0.01 * epoch,
        }
        for epoch in range(1, epochs + 1)
    ]
    reports = []
    for name in ("history.csv", "coefficients.csv", "metrics.json"):
        path = work / name
        path.write_text(f"job {index}: {name}\n")
        reports.append(path)

    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (imports done before the start)
    from mlflow.tracking import MlflowClient  # noqa: F401

    go = Path(go_file)
    while not go.exists():
        time.sleep(0.005)

    cfg = {"enabled": True, "tracking_uri": uri, "experiment_name": "parallel"}
    tracker = open_tracker(cfg, root=work)
    with tracker.run(run_name=f"job-{index}"):  # train
        tracker.log_params({**PARAMS, "job": index})
        tracker.set_tags({"dataset.name": "synthetic", "job": index})
        tracker.log_dataset(frame, source=work / "train.parquet", name="s/train", context="train")
        tracker.log_dataset(frame, source=work / "val.parquet", name="s/val", context="val")
        tracker.log_history(history, start_ms=int(time.time() * 1000))
        tracker.log_metrics({"train/epochs": epochs, "train/time_s": 1.0})
        tracker.log_artifact(reports[0], "reports")
    run_id = tracker.run_id
    with tracker.run(run_id=run_id):  # evaluate resumes the run
        metrics = {split: {"f1": 0.5, "precision": 0.4, "recall": 0.6} for split in ("val", "test")}
        tracker.log_metrics(metrics)
        tracker.set_tags({"positive_class": 1})
        for path in reports[1:]:
            tracker.log_artifact(path, "reports")
    print(run_id)


if __name__ == "__main__":
    uri, go_file, index, epochs, work_dir = sys.argv[1:]
    main(uri, go_file, int(index), int(epochs), work_dir)
