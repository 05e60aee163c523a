"""Figures (PNG) and plot data files (CSV for ``dvc plots``) of a fitted classifier.

Pure functions: arrays in, one file out, written atomically. Figures are drawn on a
bare ``matplotlib.figure.Figure`` rendered by the Agg canvas, so no pyplot state or GUI
backend is touched and parallel jobs cannot interfere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from logreg.io import atomic_path

PathLike = str | os.PathLike[str]

# No ``elapsed``: the file is a DVC output, and seconds would change its hash on every run.
HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "learning_rate"]


# ---------------------------------------------------------------- plot data (dvc plots)


def write_history(history: Sequence[dict[str, Any]], path: PathLike) -> pd.DataFrame:
    """Per-epoch history as CSV: epoch, train_loss, val_loss (empty without val), learning_rate."""
    frame = pd.DataFrame(list(history), columns=HISTORY_COLUMNS)
    _write_csv(frame, path)
    return frame


def write_pr_points(y_true: np.ndarray, scores: np.ndarray, path: PathLike) -> pd.DataFrame:
    """Precision-recall curve points as CSV: recall, precision, threshold."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    return write_pr_table(recall, precision, thresholds, path)


def write_pr_table(
    recall: np.ndarray, precision: np.ndarray, thresholds: np.ndarray, path: PathLike
) -> pd.DataFrame:
    """PR points as scikit-learn's ``precision_recall_curve`` orders them (one threshold fewer)."""
    # The last point (recall 0, precision 1) has no threshold: left blank.
    frame = pd.DataFrame(
        {"recall": recall, "precision": precision, "threshold": np.r_[thresholds, np.nan]}
    )
    _write_csv(frame, path)
    return frame


def write_roc_points(y_true: np.ndarray, scores: np.ndarray, path: PathLike) -> pd.DataFrame:
    """ROC curve points as CSV: fpr, tpr, threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y_true, scores)
    return write_roc_table(fpr, tpr, thresholds, path)


def write_roc_table(
    fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, path: PathLike
) -> pd.DataFrame:
    """ROC points as scikit-learn's ``roc_curve`` gives them, highest threshold first."""
    # The first point (0, 0) has threshold +inf, which plotting tools can't parse: left blank.
    thresholds = np.where(np.isfinite(thresholds), thresholds, np.nan)
    frame = pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thresholds})
    _write_csv(frame, path)
    return frame


def write_confusion_rows(y_true: np.ndarray, y_pred: np.ndarray, path: PathLike) -> pd.DataFrame:
    """One row per sample, ``actual,predicted``: the input of DVC's confusion template."""
    frame = pd.DataFrame({"actual": np.asarray(y_true), "predicted": np.asarray(y_pred)})
    _write_csv(frame, path)
    return frame


def _write_csv(frame: pd.DataFrame, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ---------------------------------------------------------------- figures (PNG)


def loss_curves(history: Sequence[dict[str, Any]] | pd.DataFrame, path: PathLike) -> None:
    """Training and validation loss per epoch, on a log scale when the losses allow it."""
    frame = pd.DataFrame(history) if not isinstance(history, pd.DataFrame) else history
    fig, ax = _figure()
    ax.plot(frame["epoch"], frame["train_loss"], marker=".", label="train")
    if "val_loss" in frame and frame["val_loss"].notna().any():
        ax.plot(frame["epoch"], frame["val_loss"].astype(float), marker=".", label="validation")
    losses = pd.concat([frame["train_loss"], frame.get("val_loss", frame["train_loss"])])
    losses = losses.dropna().astype(float)
    if len(losses) and losses.min() > 0 and losses.max() / losses.min() > 10:
        _log_axis(ax, "y", losses.min(), losses.max())  # SGD losses can span decades
    ax.set(xlabel="epoch", ylabel="loss", title="Loss curves")
    ax.legend()
    _save(fig, path)


def pr_curve(
    y_true: np.ndarray,
    scores: np.ndarray,
    path: PathLike,
    threshold: float | None = None,
) -> None:
    """Precision against recall, marking the prevalence (a random classifier) and a threshold."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.asarray(y_true, dtype=bool)
    precision, recall, thresholds = precision_recall_curve(y, scores)
    ap = average_precision_score(y, scores)
    draw_pr_curve(recall, precision, thresholds, ap, y.mean(), path, threshold)


def draw_pr_curve(
    recall: np.ndarray,
    precision: np.ndarray,
    thresholds: np.ndarray,
    ap: float,
    prevalence: float,
    path: PathLike,
    threshold: float | None = None,
) -> None:
    """:func:`pr_curve` from the curve's points (``thresholds`` increasing, one fewer)."""
    fig, ax = _figure()
    ax.step(recall, precision, where="post", label=f"AP = {ap:.3f}")
    ax.axhline(prevalence, color="grey", linestyle="--", label=f"prevalence = {prevalence:.3f}")
    if threshold is not None and len(thresholds):
        i = int(np.argmin(np.abs(thresholds - threshold)))
        ax.plot(recall[i], precision[i], "o", color="C3", label=f"threshold = {threshold:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curve")
    ax.legend()
    _save(fig, path)


def roc_curve(y_true: np.ndarray, scores: np.ndarray, path: PathLike) -> None:
    """True-positive rate against false-positive rate, with the chance diagonal."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    fpr, tpr, _ = sk_roc_curve(y_true, scores)
    draw_roc_curve(fpr, tpr, roc_auc_score(y_true, scores), path)


def draw_roc_curve(fpr: np.ndarray, tpr: np.ndarray, auc: float, path: PathLike) -> None:
    """:func:`roc_curve` from the curve's points."""
    fig, ax = _figure()
    ax.plot(fpr, tpr, label=f"AUC = {auc:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="chance")
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title="ROC curve")
    ax.legend()
    _save(fig, path)


def confusion_matrix(cm: np.ndarray, labels: Sequence[Any], path: PathLike) -> None:
    """Counts as a heat map: rows actual, columns predicted."""
    cm = np.asarray(cm)
    fig, ax = _figure(size=(4.5, 4))
    image = ax.imshow(cm, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(labels))
    names = [str(label) for label in labels]
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    for (i, j), count in np.ndenumerate(cm):
        dark = count > cm.max() / 2
        ax.text(j, i, str(count), ha="center", va="center", color="white" if dark else "black")
    ax.set(xlabel="predicted", ylabel="actual", title="Confusion matrix")
    _save(fig, path)


def coefficient_chart(table: pd.DataFrame, path: PathLike, top: int = 20) -> None:
    """Odds ratios exp(coef) of the ``top`` largest |coef| features, with CIs when present.

    ``table`` has columns ``feature``, ``coefficient``, ``odds_ratio`` and optionally
    ``or_ci_low``/``or_ci_high`` (Newton fits) and ``class`` (multiclass).
    """
    rows = table.reindex(table["coefficient"].abs().sort_values(ascending=False).index).head(top)
    rows = rows.iloc[::-1]  # largest at the top
    names = rows["feature"].astype(str)
    if "class" in rows:
        names = rows["class"].astype(str) + ": " + names
    fig, ax = _figure(size=(6.5, 0.3 * len(rows) + 1.5))
    y = np.arange(len(rows))
    if {"or_ci_low", "or_ci_high"} <= set(rows.columns):
        err = np.vstack(
            [rows["odds_ratio"] - rows["or_ci_low"], rows["or_ci_high"] - rows["odds_ratio"]]
        )
        ax.errorbar(rows["odds_ratio"], y, xerr=err, fmt="o", capsize=3, label="95% CI")
        ax.legend()
    else:
        ax.plot(rows["odds_ratio"], y, "o")
    ax.axvline(1.0, color="grey", linestyle="--")
    low = rows.get("or_ci_low", rows["odds_ratio"]).min()
    high = rows.get("or_ci_high", rows["odds_ratio"]).max()
    _log_axis(ax, "x", min(low, 1.0), max(high, 1.0))
    ax.set_yticks(y, names.tolist())
    ax.set(xlabel="odds ratio per 1 SD (log scale)", title=f"Top {len(rows)} coefficients")
    _save(fig, path)


def calibration_curve(
    y_true: np.ndarray, scores: np.ndarray, path: PathLike, n_bins: int = 10
) -> None:
    """Observed positive rate against mean predicted probability, in quantile bins."""
    from sklearn.calibration import calibration_curve as sk_calibration_curve

    observed, predicted = sk_calibration_curve(y_true, scores, n_bins=n_bins, strategy="quantile")
    draw_calibration_curve(predicted, observed, path)


def draw_calibration_curve(predicted: np.ndarray, observed: np.ndarray, path: PathLike) -> None:
    """:func:`calibration_curve` from each bin's mean predicted probability and positive rate."""
    fig, ax = _figure()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set(
        xlabel="mean predicted probability",
        ylabel="observed frequency",
        title="Calibration curve",
    )
    ax.legend()
    _save(fig, path)


def _log_axis(ax: Any, which: str, low: float, high: float) -> None:
    """A log axis labelled at 1-2-5 steps in plain numbers (matplotlib's default is 10^x)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    ticks = [m * 10.0**e for e in range(-6, 7) for m in (1, 2, 5)]
    inside = [t for t in ticks if low <= t <= high] or [low, high]
    axis.set_major_locator(FixedLocator(inside))
    axis.set_major_formatter(StrMethodFormatter("{x:g}"))
    axis.set_minor_formatter(NullFormatter())


def _figure(size: tuple[float, float] = (5.5, 4)) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def _save(fig: Any, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        # No metadata: the same figure gives the same bytes, so DVC sees no change.
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
