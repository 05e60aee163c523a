"""Train stage: fit logreg.LogisticRegression on the rebalanced training split.

    python -m logreg.stages.train --params params.yaml \\
        --train data/rebalanced/train.parquet --val data/prepared/val.parquet \\
        --preprocess data/prepared/preprocess.json --model-dir models \\
        --history reports/history.csv [--run-file .logreg/run.json]

Reads the ``model``, ``train`` and ``mlflow`` sections (the other sections are only
logged to MLflow, for the record). Validation data drives early stopping. Writes
``<model-dir>/model.npz`` + ``model.json`` (weights; feature names, preprocessing, class
labels and positive class as metadata) and the per-epoch history CSV: DVC outputs, so
they hold no clock time and no run id, and a rerun writes the same bytes. The seconds
and the MLflow run id go to MLflow (per-epoch timestamps, ``train/time_s``) and to the
untracked ``--run-file``. The run is tagged with the model's SHA-256, which is how
evaluate finds it when the run file is missing or describes another model.

:func:`fit_model` does the work on splits; :func:`run` reads, writes and tracks, given
checked params and :class:`Paths`; :func:`main` is the command line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

from logreg import LogisticRegression
from logreg.errors import UserError, cli
from logreg.frames import TARGET, Split, minority_class, read_split, split_head
from logreg.plots import write_history
from logreg.preprocess import Preprocessing, read_preprocessing
from logreg.stages import entry
from logreg.tracking.background import open_background_tracker, work_beside
from logreg.tracking.provenance import file_sha256, git_info, project_root
from logreg.tracking.runs import MODEL_TAG, SCHEMA_SAMPLE_ROWS, open_tracker, write_run_file

MODEL_FILE = "model.npz"  # in --model-dir, with model.json beside it
DATASETS = (("train", "train"), ("val", "validation"))  # MLflow's name and context per split


def fit_model(
    train_split: Split,
    val_split: Split | None,
    model_params: dict[str, Any],
    train_params: dict[str, Any],
    callback: Any = None,
) -> LogisticRegression:
    """Fit on the (rebalanced, weighted) training split; validation drives early stopping.

    ``model_params`` and ``train_params`` are (some keys of) the checked ``model`` and
    ``train`` sections: the estimator's constructor arguments.
    """
    model = LogisticRegression(**model_params, **train_params)
    # Frames only carry the feature names: copy=False keeps each a view of its split's
    # C-ordered array, which the estimator then reads as it is.
    X = pd.DataFrame(train_split.X, columns=train_split.feature_names, copy=False)
    fit_kwargs: dict[str, Any] = {"sample_weight": train_split.sample_weight}
    if val_split is not None:
        if val_split.feature_names != train_split.feature_names:
            raise UserError("val split: its feature columns differ from the training split's")
        fit_kwargs |= {
            "X_val": pd.DataFrame(val_split.X, columns=val_split.feature_names, copy=False),
            "y_val": val_split.y,
        }
    if callback is not None:
        fit_kwargs["callback"] = callback
    return model.fit(X, train_split.y, **fit_kwargs)


def working_dtype(model_params: Mapping[str, Any], train_params: Mapping[str, Any]) -> np.dtype:
    """The dtype the estimator fits in: ``train.dtype`` for SGD; Newton and proximal: float64."""
    full_batch = model_params.get("solver") in ("newton", "proximal")
    return np.dtype(np.float64 if full_batch else train_params["dtype"])


def model_metadata(model: LogisticRegression, prep: Preprocessing, positive: Any) -> dict[str, Any]:
    """What a reader of the saved model needs besides the weights.

    The served model applies ``preprocess`` to the rows it is sent.
    """
    return {
        "feature_names": list(model.feature_names_in_ or []),
        "classes": model.classes_.tolist(),
        "positive_class": positive,
        "preprocess": prep.to_dict(),
    }


def positive_class(prep: Preprocessing, minority: Any) -> Any:
    """The positive class: prepare's record of the minority class, else the training
    split's minority class (``minority``)."""
    return prep.positive_class if prep.positive_class is not None else minority


def logged_split(
    split: Split | None, path: Path, dtype: Any = np.float64
) -> tuple[pd.DataFrame, tuple[int, int]]:
    """What a run logs of a split (an MLflow dataset): its frame and shape, from the split
    in memory, or, when the workers read it (engine=dask), its first rows and its shape
    from the Parquet footers (:func:`~logreg.frames.split_head`): the same schema and size."""
    if split is not None:
        frame = split.to_frame()
        return frame, frame.shape
    return split_head(path, SCHEMA_SAMPLE_ROWS, dtype)


class _Progress:
    """A tqdm bar per epoch on a terminal; silent in logs and other non-TTY output."""

    def __init__(self, total: int) -> None:
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc="train", unit="epoch", file=sys.stderr)

    def __call__(self, record: dict[str, Any]) -> None:
        if self.bar is None:
            return
        postfix = {"loss": f"{record['train_loss']:.4g}"}
        if record.get("val_loss") is not None:
            postfix["val_loss"] = f"{record['val_loss']:.4g}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary_line(model: LogisticRegression, seconds: float) -> str:
    last = model.history_[-1] if model.history_ else {}
    val = last.get("val_loss")
    return (
        f"train: {model.n_iter_} epochs in {seconds:.2f} s, stop={model.stop_reason_}, "
        f"loss={last.get('train_loss', float('nan')):.5g}"
        + (f", val_loss={val:.5g}" if val is not None else "")
    )


@dataclass(frozen=True, kw_only=True)
class Paths:
    train: Annotated[Path, "rebalanced training split (Parquet)"]
    val: Annotated[Path, "prepared validation split (Parquet)"]
    preprocess: Annotated[Path, "preprocess.json from prepare"]
    model_dir: Annotated[Path, "folder for model.npz/json"]
    history: Annotated[Path, "per-epoch history CSV"]
    run_file: Annotated[Path | None, "untracked: MLflow run id, model digest, seconds"] = None


SECTIONS = ("model", "train", "mlflow", "engine")


def run(params: Mapping[str, Any], paths: Paths, background: bool = False) -> None:
    """Fit, save the model and its history, and track it all in a new MLflow run.

    ``params`` holds the checked ``model``, ``train`` and ``mlflow`` sections; the run
    is named after ``data.name`` and ``rebalance.strategy`` when present, and every
    section is logged as the run's params. ``background``: the MLflow calls run in a
    child process while this one reads and fits (:mod:`logreg.tracking.background`),
    as the command line does.
    """
    model_params, train_params, mlflow_params = params["model"], params["train"], params["mlflow"]
    # An unreachable server fails here, before any work. The child opens the store once
    # the splits are read, beside the fit (defer_open).
    tracker = (
        open_background_tracker(mlflow_params, defer_open=True)
        if background
        else open_tracker(mlflow_params)
    )

    dtype = working_dtype(model_params, train_params)
    # engine=dask: the workers read the splits, partition by partition; here, nothing.
    on_dask = params.get("engine", {}).get("name") == "dask"
    splits = None if on_dask else (read_split(paths.train, dtype), read_split(paths.val, dtype))
    prep = read_preprocessing(paths.preprocess)
    dataset = str(_get(params, "data", "name") or paths.train.parent.name)

    with tracker.run(
        run_name=_run_name(model_params, train_params, params),
        parent_run_id=mlflow_params.get("parent_run_id"),  # a sweep's job: a child run
    ):
        tracker.log_params(params)
        tracker.set_tags(
            {
                **git_info(project_root()),
                "dataset.name": dataset,
                "rebalance.strategy": _get(params, "rebalance", "strategy"),
                "model.solver": model_params.get("solver"),
            }
        )
        # Hashed by the tracker (beside the fit, in the background), once for the tags
        # and the datasets' digests; not at all with tracking off.
        tracker.tag_digests({"dataset.sha256": paths.train, "dataset.val_sha256": paths.val})
        for index, (path, (name, context)) in enumerate(
            zip((paths.train, paths.val), DATASETS, strict=True)
        ):
            frame, shape = logged_split(splits[index] if splits else None, path, dtype)
            tracker.log_dataset(
                frame, source=path, name=f"{dataset}/{name}", context=context, targets=TARGET,
                shape=shape,
            )  # fmt: skip

        progress = _Progress(int(train_params.get("epochs", 0) or 0))
        start_ms, started = int(time.time() * 1000), time.perf_counter()
        try:
            if splits is None:
                from logreg.engines.dask_train import train_on_dask  # Dask: only when wanted

                model, minority = train_on_dask(
                    params["engine"], model_params, train_params, paths.train, paths.val,
                    dtype, callback=progress,
                )  # fmt: skip
            else:
                with work_beside(tracker):
                    model = fit_model(*splits, model_params, train_params, callback=progress)
                minority = minority_class(splits[0].y)
        finally:
            progress.close()
        seconds = time.perf_counter() - started
        print(summary_line(model, seconds), file=sys.stderr)

        positive = positive_class(prep, minority) if len(model.classes_) == 2 else None
        model_path = paths.model_dir / MODEL_FILE
        model.save(model_path, metadata=model_metadata(model, prep, positive))
        write_history(model.history_, paths.history)
        model_sha256 = file_sha256(model_path)

        tracker.log_history(model.history_, start_ms)
        tracker.log_metrics(
            {
                "train/epochs": model.n_iter_,
                "train/time_s": seconds,
                "train/learning_rate_resolved": model.learning_rate_,  # None (Newton): dropped
                "n_nonzero_coef": int(np.count_nonzero(model.coef_)),
            }
        )
        tracker.set_tags({"train.stop_reason": model.stop_reason_, MODEL_TAG: model_sha256})
        tracker.log_artifact(paths.history, "reports")
        if paths.run_file is not None:
            write_run_file(
                paths.run_file,
                tracker,
                model_sha256=model_sha256,
                train_time_s=seconds,
                epoch_elapsed_s=[record["elapsed"] for record in model.history_],
            )


@cli
def main(argv: list[str] | None = None) -> None:
    params, paths = entry.parse(argv, Paths, SECTIONS, "logreg.stages.train", __doc__)
    run(params, paths, background=True)


def _get(cfg: Any, *keys: str) -> Any:
    node = cfg
    for key in keys:
        if node is None or key not in node:
            return None
        node = node[key]
    return node


def _run_name(model_params: dict[str, Any], train_params: dict[str, Any], params: Any) -> str:
    parts = [
        str(_get(params, "data", "name") or "data"),
        str(model_params.get("penalty", "")),
        f"bs{train_params.get('batch_size', '')}",
        str(_get(params, "rebalance", "strategy") or ""),
    ]
    return "-".join(p for p in parts if p)


if __name__ == "__main__":
    main()
