"""Evaluate stage: judge the trained model on the untouched test split.

    python -m logreg.stages.evaluate --params params.yaml --model-dir models \\
        --train data/prepared/train.parquet --val data/prepared/val.parquet \\
        --test data/prepared/test.parquet --reports-dir reports \\
        [--rebalanced data/rebalanced/train.parquet] [--run-file .logreg/run.json]

Binary problems score the minority class of the prepared training split as positive.
Writes ``<reports-dir>/metrics.json`` (sections ``test``, ``val``, ``baseline``, ``model``),
``coefficients.csv``, plot data in ``plots/`` (PR, ROC, confusion) and figures in
``figures/``, and logs all of it to the MLflow run that trained the model (found by
:func:`logreg.tracking.runs.trained_run`: train's ``--run-file``, else its tag ``model.sha256``),
with the model as a pyfunc. Binary test scores carry seeded bootstrap 95 % intervals
(``evaluate.n_bootstrap`` resamples, ``evaluate.seed``), and the threshold is tuned by
``evaluate.threshold_method`` (``cv`` also reads the ``rebalance`` section). The
scikit-learn baseline is fitted on ``--rebalanced`` (with its sample weights) when given,
else on ``--train``; ``evaluate.baseline: false`` skips it (saga, for l1, takes far longer
than our fit: sweeps turn it off). Reads only
the ``evaluate`` and ``mlflow`` sections of the params (and ``data.name`` as a label):
the model carries its own hyperparameters.

With ``engine=dask`` (the ``engine`` section) the splits may be partition folders, and
:mod:`logreg.engines.dask_evaluate` computes the same reports from counts summed on the
workers (what is exact and what is binned is listed there).

:func:`evaluate_model` and :func:`coefficient_table` do the work on a model and splits;
:func:`run` reads, writes and tracks, given checked params and :class:`Paths`;
:func:`main` is the command line.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

from logreg import LogisticRegression, plots, preprocess
from logreg.allocator import keep_freed_memory
from logreg.bootstrap import score_intervals
from logreg.crossval import out_of_fold_scores
from logreg.errors import UserError, cli
from logreg.frames import TARGET, Split, minority_class, read_split, split_head
from logreg.io import atomic_path, write_json
from logreg.metrics import (
    OUT_OF_FOLD,
    THRESHOLD_METHODS,
    baseline_sklearn,
    confusion,
    evaluate_scores,
    majority_accuracy,
    positive_scores,
    thresholded_metrics,
)
from logreg.preprocess import Preprocessing
from logreg.schema import check_section
from logreg.stages import entry
from logreg.stages.train import MODEL_FILE, logged_split
from logreg.tracking.background import open_background_tracker
from logreg.tracking.provenance import file_sha256
from logreg.tracking.runs import MODEL_TAG, open_tracker, trained_run

METRICS_FILE = "metrics.json"  # in --reports-dir, with coefficients.csv, plots/ and figures/


def evaluate_model(
    model: LogisticRegression,
    splits: dict[str, Split],
    positive: Any = None,
    baseline_train: Split | None = None,
    baseline: bool = True,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    threshold_method: str = "cv",
    rebalance_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Metrics of every section; ``splits`` holds ``train`` (prepared), ``val`` and ``test``.

    Binary: test and val at threshold 0.5, with ``test.ci95`` (seeded bootstrap 95 %
    intervals of F1, precision, recall and PR-AUC, :mod:`logreg.bootstrap`), plus
    ``threshold_tuned``: the threshold tuned by ``threshold_method``
    (:data:`logreg.metrics.THRESHOLD_METHODS`) on val's scores, or for ``cv`` on
    out-of-fold scores of train + val (refits rebalanced by ``rebalance_options``,
    :mod:`logreg.crossval`), applied to both; ``val.threshold_tuned.spread`` is where the
    F1-maximising threshold of those scores' resamples lies (2.5 to 97.5 %).
    ``baseline`` compares scikit-learn (fitted on ``baseline_train``, default
    ``splits["train"]``; skipped unless ``baseline``) and the majority-class rule.
    """
    classes = model.classes_
    binary = len(classes) == 2
    if binary and positive is None:
        positive = minority_class(splits["train"].y)
    val, test = splits["val"], splits["test"]
    proba_val, proba_test = model.predict_proba(val.X), model.predict_proba(test.X)
    out: dict[str, dict[str, Any]] = {
        "test": evaluate_scores(test.y, proba_test, classes, positive),
        "val": evaluate_scores(val.y, proba_val, classes, positive),
    }
    del out["val"]["per_class"]  # the per-class report belongs to the final, test judgement
    if binary:
        y_test, scores_test = test.y == positive, positive_scores(proba_test, classes, positive)
        out["test"]["ci95"] = {
            **score_intervals(y_test, scores_test, 0.5, n_bootstrap, seed),
            "n_bootstrap": n_bootstrap,
            "seed": seed,
        }
        if threshold_method in OUT_OF_FOLD:
            prep = model_preprocessing(model)
            y_tune, s_tune = out_of_fold_scores(
                model,
                [splits["train"], val],
                positive,
                rebalance_options or {"strategy": "none"},
                prep.one_hot_groups() if prep is not None else None,
                seed=seed,
            )
        else:
            y_tune, s_tune = val.y == positive, positive_scores(proba_val, classes, positive)
        threshold, spread = THRESHOLD_METHODS[threshold_method](y_tune, s_tune, n_bootstrap, seed)
        for name, split, proba in (("val", val, proba_val), ("test", test, proba_test)):
            predicted = positive_scores(proba, classes, positive) >= threshold
            out[name]["threshold_tuned"] = {
                "threshold": threshold,
                **thresholded_metrics(split.y == positive, predicted),
            }
        out["val"]["threshold_tuned"]["spread"] = spread
        tuned_ci = score_intervals(y_test, scores_test, threshold, n_bootstrap, seed)
        out["test"]["threshold_tuned"]["ci95"] = {
            name: tuned_ci[name] for name in ("f1", "precision", "recall")
        }
    out["baseline"] = {"majority_accuracy": majority_accuracy(splits["train"].y, test.y)}
    if baseline:
        fit_on = baseline_train or splits["train"]
        out["baseline"] |= baseline_sklearn(
            fit_on.X,
            fit_on.y,
            fit_on.sample_weight,
            test.X,
            test.y,
            model,
            positive,
            seed=int(getattr(model, "seed", 0) or 0),
        )
    out["model"] = model_metrics(model)
    return _finite(out)


def model_metrics(model: LogisticRegression) -> dict[str, Any]:
    """The ``model`` section: epochs, nonzero coefficients, last train loss, best val loss."""
    history = model.history_ or [{}]
    val_losses = [r["val_loss"] for r in history if r.get("val_loss") is not None]
    return {
        "epochs": int(model.n_iter_),
        "n_nonzero_coef": int(np.count_nonzero(model.coef_)),
        "train_loss": history[-1].get("train_loss"),
        "best_val_loss": min(val_losses) if val_losses else None,
    }


def coefficient_table(model: LogisticRegression, prep: Preprocessing | None = None) -> pd.DataFrame:
    """feature, coefficient, odds_ratio, rank (1 = largest |coef|), is_zero; CIs for Newton fits.

    The coefficients are per standard deviation of the (standardised) features. With the
    preprocessing, ``sd`` gives each feature's train SD in its own units and
    ``odds_ratio_per_unit`` = exp(coefficient/sd) the odds ratio per unit: per year, per
    level, or, for a one-hot column, of that category against the reference level.
    Multiclass tables have one row per (class, feature) and rank within each class.
    """
    names = list(model.feature_names_in_ or [f"x{j}" for j in range(model.coef_.shape[1])])
    classes = model.classes_
    binary = model.coef_.shape[0] == 1
    frames = []
    for k, row in enumerate(model.coef_):
        frame = pd.DataFrame({"feature": names, "coefficient": row, "odds_ratio": np.exp(row)})
        if prep is not None:
            sd = {f.name: f.std for f in prep.features}
            frame["sd"] = [sd[name] for name in names]
            frame["odds_ratio_per_unit"] = np.exp(row / frame["sd"])
        frame["rank"] = frame["coefficient"].abs().rank(ascending=False, method="first")
        frame["rank"] = frame["rank"].astype(int)
        frame["is_zero"] = frame["coefficient"] == 0.0
        if not binary:
            frame.insert(0, "class", classes[k])
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    summary = _summary(model)
    if summary is not None:
        keys = ["feature"] if binary else ["class", "feature"]
        extra = summary.reset_index()[
            [*keys, "std_err", "z", "p_value", "ci_low", "ci_high", "or_ci_low", "or_ci_high"]
        ]
        table = table.merge(extra, on=keys, how="left")
    return table.sort_values([*([] if binary else ["class"]), "rank"], kind="stable")


def write_reports(
    model: LogisticRegression,
    splits: dict[str, Split],
    metrics: dict[str, dict[str, Any]],
    reports_dir: str | Path,
    positive: Any = None,
) -> dict[str, list[Path]]:
    """metrics.json, coefficients.csv, plot data and figures; the written paths by folder."""
    reports = Path(reports_dir)
    test = splits["test"]
    classes = model.classes_
    proba = model.predict_proba(test.X)
    if len(classes) == 2:
        y_bin = test.y == positive
        scores = positive_scores(proba, classes, positive)
        negative = classes[classes != positive][0]
        threshold = metrics["test"]["threshold_tuned"]["threshold"]
        predicted = np.where(scores >= 0.5, positive, negative)
        predicted_tuned = np.where(scores >= threshold, positive, negative)
    else:  # one-vs-rest, micro-averaged: every (row, class) pair is one binary decision
        y_bin = (test.y[:, None] == classes[None, :]).ravel()
        scores = proba.ravel()
        threshold = None
        predicted = predicted_tuned = classes[np.argmax(proba, axis=1)]

    data_files = {
        "pr.csv": lambda p: plots.write_pr_points(y_bin, scores, p),
        "roc.csv": lambda p: plots.write_roc_points(y_bin, scores, p),
        "confusion.csv": lambda p: plots.write_confusion_rows(test.y, predicted, p),
        "confusion_tuned.csv": lambda p: plots.write_confusion_rows(test.y, predicted_tuned, p),
    }
    figures = {
        "pr_curve.png": lambda p: plots.pr_curve(y_bin, scores, p, threshold),
        "roc_curve.png": lambda p: plots.roc_curve(y_bin, scores, p),
        "confusion_matrix.png": lambda p: plots.confusion_matrix(
            confusion(test.y, predicted, classes), classes.tolist(), p
        ),
        "calibration.png": lambda p: plots.calibration_curve(y_bin, scores, p),
    }
    return write_files(model, metrics, reports, data_files, figures)


Maker = Callable[[Path], Any]


def write_files(
    model: LogisticRegression,
    metrics: dict[str, dict[str, Any]],
    reports_dir: str | Path,
    data_files: dict[str, Maker],
    figures: dict[str, Maker],
) -> dict[str, list[Path]]:
    """metrics.json, coefficients.csv, the loss and coefficient figures, and the plot
    files and figures that ``data_files`` and ``figures`` make; the paths by folder."""
    reports = Path(reports_dir)
    written: dict[str, list[Path]] = {"reports": [], "plots": [], "figures": []}
    write_json(reports / METRICS_FILE, metrics)
    table = coefficient_table(model, model_preprocessing(model))
    with atomic_path(reports / "coefficients.csv") as tmp:
        table.to_csv(tmp, index=False)
    written["reports"] += [reports / METRICS_FILE, reports / "coefficients.csv"]
    figures = {
        "loss_curves.png": lambda p: plots.loss_curves(model.history_, p),
        **figures,
        "coefficients.png": lambda p: plots.coefficient_chart(table, p),
    }
    for folder, makers in (("plots", data_files), ("figures", figures)):
        for name, make in makers.items():
            path = reports / folder / name
            make(path)
            written[folder].append(path)
    return written


@dataclass(frozen=True, kw_only=True)
class Paths:
    model_dir: Annotated[Path, "folder with model.npz/json"]
    train: Annotated[Path, "prepared training split (Parquet)"]
    val: Annotated[Path, "prepared validation split (Parquet)"]
    test: Annotated[Path, "prepared test split (Parquet)"]
    rebalanced: Annotated[Path | None, "rebalanced training split for the sklearn baseline"] = None
    reports_dir: Annotated[Path, "folder for metrics, plots, figures"]
    run_file: Annotated[Path | None, "train's run file: the MLflow run to resume"] = None


SECTIONS = ("evaluate", "mlflow", "engine")


def run(
    params: Mapping[str, Any], paths: Paths, background: bool = False
) -> dict[str, dict[str, Any]]:
    """Score the saved model, write the reports and log them to train's MLflow run.

    ``params`` holds the checked ``evaluate`` and ``mlflow`` sections; ``data.name``,
    when present, labels the logged test set. Returns the metrics. ``background``: the
    MLflow calls run in a child process beside the scoring
    (:mod:`logreg.tracking.background`), as the command line does.
    """
    options = params["evaluate"]
    tracker = (open_background_tracker if background else open_tracker)(params["mlflow"])

    model_path = paths.model_dir / MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path}: file not found (run the train stage first)")
    model = LogisticRegression.load(model_path)
    on_dask = (params.get("engine") or {}).get("name") == "dask"
    splits: dict[str, Split] = {}
    if not on_dask:
        splits = {
            "train": read_split(paths.train),
            "val": read_split(paths.val),
            "test": read_split(paths.test),
        }
    names = list(model.feature_names_in_ or [])
    for name, split in splits.items():
        if names and split.feature_names != names:
            raise UserError(f"{name} split: its feature columns differ from the model's")
    # Only the scikit-learn baseline fits on it: without the baseline it is not read.
    reads_rebalanced = paths.rebalanced is not None and options["baseline"] and not on_dask
    rebalanced = read_split(paths.rebalanced) if reads_rebalanced else None
    if paths.rebalanced is None and options["baseline"]:
        print(
            "warning: no --rebalanced split; the scikit-learn baseline is fitted on --train "
            "without the rebalancing, so its objective is not comparable to ours",
            file=sys.stderr,
        )
    positive = minority_class(splits["train"].y) if splits and len(model.classes_) == 2 else None
    rebalance_options = None
    # The cv refits rebalance as the pipeline did (numpy only: on Dask cv tunes on val).
    if options["threshold_method"] in OUT_OF_FOLD and not on_dask:
        rebalance_options = check_section("rebalance", params.get("rebalance") or {})

    model_sha256 = file_sha256(model_path)
    run_id = trained_run(tracker, model_sha256, paths.run_file)
    if run_id is None and tracker.uri:
        print(
            f"warning: no MLflow run in {tracker.uri} trained {model_path} "
            f"(tag {MODEL_TAG} = {model_sha256}); logging evaluation to a new run",
            file=sys.stderr,
        )
    with tracker.run(run_id=run_id, run_name="evaluate"):
        dataset = (params.get("data") or {}).get("name") or "data"
        # Queued first: a background tracker hashes the test split while it is scored.
        frame, shape = logged_split(splits.get("test"), paths.test)
        tracker.log_dataset(
            frame,
            source=paths.test,
            name=f"{dataset}/test",
            context="test",
            targets=TARGET,
            shape=shape,
        )
        if on_dask:
            metrics, written, positive = _evaluate_on_dask(model, params, paths)
        else:
            metrics = evaluate_model(
                model,
                splits,
                positive,
                rebalanced,
                options["baseline"],
                n_bootstrap=options["n_bootstrap"],
                seed=options["seed"],
                threshold_method=options["threshold_method"],
                rebalance_options=rebalance_options,
            )
        tuned = metrics["test"].get("threshold_tuned", {})
        tracker.log_model(  # before the reports: a background tracker logs it as they are drawn
            model_path,
            input_example=serving_example(model, _first_test_rows(splits, paths.test)),
            positive=positive,
            threshold=float(tuned.get("threshold", 0.5)),
        )
        if not on_dask:
            written = write_reports(model, splits, metrics, paths.reports_dir, positive)
        sklearn_f1 = metrics["baseline"].get("f1")
        f1_ci = metrics["test"].get("ci95", {}).get("f1")
        spread = metrics["val"].get("threshold_tuned", {}).get("spread")
        print(
            f"evaluate: test f1={metrics['test'].get('f1', metrics['test'].get('f1_macro')):.4f}"
            + (f" (95 % {f1_ci['low']:.4f}-{f1_ci['high']:.4f})" if f1_ci else "")
            + (f", tuned {tuned['f1']:.4f} at t={tuned['threshold']:.3f}" if tuned else "")
            + (f" (optimum 95 % {spread['low']:.3f}-{spread['high']:.3f})" if spread else "")
            + (f", baseline f1={sklearn_f1:.4f}" if sklearn_f1 is not None else ""),
            file=sys.stderr,
        )

        tracker.log_metrics({**metrics, "n_nonzero_coef": metrics["model"]["n_nonzero_coef"]})
        tracker.set_tags(
            {
                "positive_class": positive,
                MODEL_TAG: model_sha256,  # a new run, too, is found from the model
            }
        )
        tracker.tag_digests({"dataset.test_sha256": paths.test})  # hashed once, by the tracker
        for folder, files in written.items():
            for path in files:
                tracker.log_artifact(path, folder)
    return metrics


def _evaluate_on_dask(
    model: LogisticRegression, params: Mapping[str, Any], paths: Paths
) -> tuple[dict[str, dict[str, Any]], dict[str, list[Path]], Any]:
    """Metrics and reports from counts summed over the partitions (engines.dask_evaluate)."""
    from logreg.engines import dask_evaluate
    from logreg.engines.cluster import engine_client

    options = params["evaluate"]
    with engine_client(params["engine"]) as client:
        metrics, drawn, positive = dask_evaluate.evaluate_parts(
            client,
            model,
            {
                "train": paths.train,
                "val": paths.val,
                "test": paths.test,
                "rebalanced": paths.rebalanced,
            },
            baseline=options["baseline"],
            n_bootstrap=options["n_bootstrap"],
            seed=options["seed"],
            threshold_method=options["threshold_method"],
        )
    metrics["model"] = model_metrics(model)
    metrics = _finite(metrics)
    makers = dask_evaluate.plot_makers(drawn)
    return metrics, write_files(model, metrics, paths.reports_dir, *makers), positive


def _first_test_rows(splits: dict[str, Split], test: Path, rows: int = 5) -> pd.DataFrame:
    """The features of the first test rows: from the split in memory, or its first part."""
    if splits:
        return pd.DataFrame(splits["test"].X[:rows], columns=splits["test"].feature_names)
    return split_head(test, rows)[0].drop(columns=TARGET)


@cli
def main(argv: list[str] | None = None) -> None:
    params, paths = entry.parse(argv, Paths, SECTIONS, "logreg.stages.evaluate", __doc__)
    keep_freed_memory()  # the bootstrap's arrays reused, not mapped afresh (logreg.allocator)
    run(params, paths, background=True)


def serving_example(model: LogisticRegression, test: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The first test rows (``test``: their features) in the form the served model takes.

    That is rows of the original columns when the model carries its preprocessing (the
    numbers rounded to 9 decimals, off the noise of un-standardising), else features.
    """
    features = test.head(rows).reset_index(drop=True)
    prep = model_preprocessing(model)
    if prep is None:
        return features
    return preprocess.inverse_transform(prep, features).round(9)


def model_preprocessing(model: LogisticRegression) -> Preprocessing | None:
    """The preprocessing the train stage saved with the model, if it did."""
    payload = getattr(model, "metadata_", {}).get("preprocess")
    return Preprocessing.from_dict(payload) if payload else None


def _summary(model: LogisticRegression) -> pd.DataFrame | None:
    """Newton fits carry standard errors; other solvers (and singular Hessians) do not."""
    try:
        return model.summary()
    except (ValueError, np.linalg.LinAlgError):
        return None


def _finite(tree: Any) -> Any:
    """NaN and inf become None: JSON has no NaN, and DVC should show a blank, not 'NaN'."""
    if isinstance(tree, dict):
        return {k: _finite(v) for k, v in tree.items()}
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


if __name__ == "__main__":
    main()
