"""The evaluate stage on Dask: the model scores each partition on its worker; only counts return.

Same ``metrics.json`` keys as the numpy engine (binary problems), computed from sums:

- **Confusion counts, P/R/F1, accuracy: exact.** Each partition counts its rows per score
  bin and class (:mod:`logreg.engines.score_counts`, 2¹⁶ bins even in the logit, 0.0012
  wide); 0.5 and every tuned threshold are bin edges, so the counts at them are exact.
- **Log loss, Brier score, prevalence: exact** (sums over rows).
- **ROC-AUC, PR-AUC, the curves: binned.** The curves of the scores rounded down to their
  bin's edge. The areas are exact when no bin holds both classes, and otherwise err by at
  most the share of rows in mixed bins, which ``binning.auc_error_bound`` reports.
- **95 % intervals: a Poisson bootstrap.** Resample r gives each row the weight
  w ~ Poisson(1), drawn from the row's content hash and (``evaluate.seed``, r)
  (:func:`poisson_weights`), so no row is collected and a rerun task draws the same
  weights. Unlike the numpy engine's bootstrap it is not multinomial (the resample's size
  varies, ±√n) nor stratified (its class counts vary too), so its intervals are close to
  the numpy engine's, a little wider for recall, not equal. Each resample is counted on a
  coarser grid of at most :data:`BOOTSTRAP_BINS` bins of about equal rows (a quantile grid
  of the scores, its edges among the fine ones), which keeps 0.5 and the tuned threshold
  as edges: resampled P/R/F1 are exact, resampled PR-AUC binned.
- **Threshold tuning, from the validation split's counts.** ``val_max``: the F1-maximising
  bin edge. ``bootstrap_median``: the lower median of the resamples' F1-maximising edges
  (an edge itself, so the test counts at it stay exact). ``cv`` would refit the model on
  k folds, k full fits over the cluster; on Dask it is ``bootstrap_median`` on the
  validation split, and ``val.threshold_tuned.method`` says so.
- **The scikit-learn baseline** runs on one worker when the rows it fits and scores fit in
  :data:`BASELINE_MEMORY_SHARE` of a worker's memory limit; else ``baseline.skipped``
  gives the reason. The majority-class accuracy comes from counts and is always there.

The per-class report (``test.per_class``) and every key of the numpy engine are present;
the plot files hold one point per bin edge where the curve moves, and ``confusion.csv``
holds one row per test row, grouped by (actual, predicted) cell.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from logreg import plots
from logreg.bootstrap import INTERVAL_METRICS, percentile_interval
from logreg.engines.partitions import part_paths, part_rows, read_part
from logreg.engines.score_counts import (
    BINS,
    Curves,
    average_precision,
    bin_edges,
    curves,
    roc_auc,
    score_counts,
)
from logreg.errors import UserError
from logreg.frames import RESERVED, TARGET, plain_label, read_split
from logreg.hash_split import row_hashes
from logreg.metrics import baseline_sklearn, confusion_metrics, positive_scores

BOOTSTRAP_BINS = 1024  # per resample: (2, bins) weighted counts per partition
# lbfgs holds the features, a copy, the gradient's work arrays: four times the rows' bytes.
BASELINE_MEMORY_SHARE = 0.25
CLIP = 1e-15  # the log loss clips probabilities as metrics.binary_metrics does
_POISSON_MAX = 20  # P(w > 20) = 1e-20 for w ~ Poisson(1): never drawn in float64
POISSON_CDF = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(_POISSON_MAX)])
CV_ON_DASK = "bootstrap_median"


class SplitCounts(NamedTuple):
    """A split's sums over its rows: per fine bin the class counts and the scores' sum."""

    counts: np.ndarray  # (2, BINS) int64: negatives, positives per bin
    score_sums: np.ndarray  # (BINS,) float64
    log_loss: float  # Σ −[y log p + (1 − y) log(1 − p)], p clipped to [CLIP, 1 − CLIP]
    brier: float  # Σ (p − y)²

    def __add__(self, other: Any) -> SplitCounts:  # type: ignore[override]
        return SplitCounts(*(a + b for a, b in zip(self, other, strict=True)))


def evaluate_parts(
    client: Any,
    model: Any,
    paths: Mapping[str, Path | None],
    *,
    baseline: bool = True,
    n_bootstrap: int = 1000,
    seed: int = 0,
    threshold_method: str = "cv",
    memory_limit: int | None = None,
) -> tuple[dict[str, dict[str, Any]], SplitCounts, Any]:
    """The metrics of ``paths["val"]`` and ``paths["test"]`` (and the baseline), the
    test split's counts (for the plots) and the positive class.

    ``paths`` also holds ``train`` (the prepared train split: its class counts) and
    ``rebalanced`` (what the baseline fits, or None for ``train``). ``memory_limit``
    (bytes per worker) bounds the baseline; None asks the workers.
    """
    classes = np.asarray(model.classes_)
    if len(classes) != 2:
        raise UserError(
            f"engine=dask evaluates binary problems; this model has {len(classes)} classes "
            "(use engine=numpy)"
        )
    train_counts = _label_counts(client, part_paths(paths["train"]))
    positive = _minority(train_counts)
    shared = client.scatter(model, broadcast=True)
    scored = {
        name: [
            client.submit(_scored, path, shared, positive, seed, pure=False)
            for path in part_paths(paths[name])
        ]
        for name in ("val", "test")
    }
    sums = {name: _sum(client, _split_counts, parts) for name, parts in scored.items()}
    fine = {name: curves(s.counts) for name, s in sums.items()}

    # The threshold, from the validation split's counts.
    method = CV_ON_DASK if threshold_method == "cv" else threshold_method
    val_grid = _grid(sums["val"].counts, [])
    val_resampled = _resample(client, scored["val"], val_grid, n_bootstrap, seed)
    maxima = bin_edges()[val_grid.starts][_best(val_resampled)]
    spread = percentile_interval(maxima)
    if method == "val_max":
        threshold = float(fine["val"].thresholds[int(np.argmax(_f1_of(fine["val"])))])
    else:  # bootstrap_median: the lower median, an edge
        threshold = float(np.percentile(maxima, 50, method="lower"))

    out: dict[str, dict[str, Any]] = {
        "test": _split_metrics(fine["test"], sums["test"], 0.5),
        "val": _split_metrics(fine["val"], sums["val"], 0.5),
    }
    negative = plain_label(classes[classes != positive][0])
    out["test"]["per_class"] = _per_class(_at(fine["test"], 0.5), positive, negative)
    test_grid = _grid(sums["test"].counts, [0.5, threshold])
    test_resampled = _resample(client, scored["test"], test_grid, n_bootstrap, seed)
    at_half = _resampled_at(test_resampled, test_grid, 0.5)
    at_half["pr_auc"] = _resampled_ap(test_resampled)
    out["test"]["ci95"] = {
        **{name: percentile_interval(at_half[name]) for name in INTERVAL_METRICS},
        "n_bootstrap": n_bootstrap,
        "seed": seed,
        "bootstrap": "poisson",
    }
    for name in ("val", "test"):
        out[name]["threshold_tuned"] = {
            "threshold": threshold,
            **confusion_metrics(*_at(fine[name], threshold)),
        }
    out["val"]["threshold_tuned"] |= {"spread": spread, "method": method}
    if method != threshold_method:
        out["val"]["threshold_tuned"]["asked"] = threshold_method
    tuned = _resampled_at(test_resampled, test_grid, threshold)
    out["test"]["threshold_tuned"]["ci95"] = {
        name: percentile_interval(tuned[name]) for name in ("f1", "precision", "recall")
    }
    out["test"]["binning"] = {
        "bins": BINS,
        "auc_error_bound": _mixed_share(sums["test"].counts),
        "bootstrap_bins": len(test_grid.starts),
    }
    out["baseline"] = {
        "majority_accuracy": _majority_accuracy(train_counts, fine["test"], positive)
    }
    if baseline:
        out["baseline"] |= _baseline(client, model, paths, positive, memory_limit)
    return out, sums["test"], positive


# ----------------------------------------------------------------- metrics from counts


def _split_metrics(c: Curves, sums: SplitCounts, threshold: float) -> dict[str, Any]:
    """:func:`logreg.metrics.binary_metrics` from the split's counts."""
    n = c.positives + c.negatives
    both = c.positives > 0 and c.negatives > 0
    return {
        "threshold": threshold,
        **confusion_metrics(*_at(c, threshold)),
        "roc_auc": roc_auc(c) if both else float("nan"),
        "pr_auc": average_precision(c) if c.positives else float("nan"),
        "log_loss": sums.log_loss / n,
        "brier": sums.brier / n,
        "prevalence": c.positives / n,
    }


def _at(c: Curves, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of ``score >= threshold``, a bin edge."""
    i = int(np.searchsorted(-c.thresholds, -threshold))
    if c.thresholds[i] != threshold:
        raise ValueError(f"threshold {threshold} is not a bin edge")
    tp, fp = int(c.tp[i]), int(c.fp[i])
    return tp, fp, c.positives - tp, c.negatives - fp


def _per_class(counts: tuple[int, int, int, int], positive: Any, negative: Any) -> dict:
    """:func:`logreg.metrics.classification_report` of the two classes, labels in order."""
    tp, fp, fn, tn = counts
    of_positive = confusion_metrics(tp, fp, fn, tn)
    of_negative = confusion_metrics(tn, fn, fp, tp)  # the negative class seen as positive
    stats = {positive: (of_positive, tp + fn), negative: (of_negative, tn + fp)}
    return {
        str(label): {**_prf(stats[label][0]), "support": stats[label][1]} for label in sorted(stats)
    }


def _prf(m: dict[str, float]) -> dict[str, float]:
    return {name: float(m[name]) for name in ("precision", "recall", "f1")}


def _f1_of(c: Curves) -> np.ndarray:
    return 2.0 * c.tp / np.maximum(c.tp + c.fp + c.positives, 1)


def _minority(counts: dict[Any, int]) -> Any:
    """:func:`logreg.frames.minority_class` from counts: the label that sorts last on ties."""
    smallest = min(counts.values())
    return [label for label in sorted(counts) if counts[label] == smallest][-1]


def _majority_accuracy(train: dict[Any, int], test: Curves, positive: Any) -> float:
    """:func:`logreg.metrics.majority_accuracy` from counts (ties: the label sorting first)."""
    labels = sorted(train)
    majority = labels[int(np.argmax([train[label] for label in labels]))]
    right = test.positives if majority == positive else test.negatives
    return right / (test.positives + test.negatives)


def _mixed_share(counts: np.ndarray) -> float:
    """The share of rows in bins that hold both classes: the areas' error bound."""
    mixed = (counts[0] > 0) & (counts[1] > 0)
    return float(counts[:, mixed].sum() / max(counts.sum(), 1))


# ----------------------------------------------------------------- the Poisson bootstrap


class Grid(NamedTuple):
    """Coarse bins: the fine bin where each starts; the coarse bin of every fine bin."""

    starts: np.ndarray  # (groups,) increasing fine indices, starts[0] = 0
    group_of_fine: np.ndarray  # (BINS,) int32


def _grid(counts: np.ndarray, thresholds: list[float]) -> Grid:
    """At most :data:`BOOTSTRAP_BINS` (+ the thresholds) bins of about equal rows."""
    per_bin = counts.sum(axis=0)
    before = np.cumsum(per_bin) - per_bin
    quantile = before * BOOTSTRAP_BINS // max(int(per_bin.sum()), 1)
    starts = np.flatnonzero(np.diff(quantile, prepend=-1) > 0)
    forced = np.searchsorted(bin_edges(), thresholds)
    starts = np.unique(np.concatenate([[0], starts, forced])).astype(np.int64)
    group_of_fine = (np.searchsorted(starts, np.arange(BINS), side="right") - 1).astype(np.int32)
    return Grid(starts, group_of_fine)


def poisson_weights(hashes: np.ndarray, seed: int, resample: int) -> np.ndarray:
    """Each row's weight in ``resample``: Poisson(1), a function of (hash, seed, resample).

    The row's hash, mixed with a key of (seed, resample) by SplitMix64's finaliser, gives
    a uniform 53-bit u; the weight is the k with F(k − 1) ≤ u < F(k), F the Poisson(1) CDF.
    """
    key = _mix(np.array([(seed * 0x9E3779B97F4A7C15 + resample) % 2**64], dtype=np.uint64))
    uniform = (_mix(hashes ^ key) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.searchsorted(POISSON_CDF, uniform, side="right").astype(np.int32)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64's output function (a bijection of 64-bit words that mixes every bit)."""
    z = (z + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(2**64 - 1)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _resample(client: Any, scored: list[Any], grid: Grid, n: int, seed: int) -> np.ndarray:
    """(n, 2, groups): every resample's weighted class counts per coarse bin."""
    group_of_fine = client.scatter(grid.group_of_fine, broadcast=True)
    return _sum(client, _resampled_counts, scored, group_of_fine, len(grid.starts), n, seed)


def _above(resampled: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample and coarse edge, highest first: TP, FP, and the positives (a column)."""
    above = resampled[:, :, ::-1].cumsum(axis=2).astype(np.float64)
    return above[:, 1], above[:, 0], above[:, 1, -1:]


def _f1(tp: np.ndarray, fp: np.ndarray, positives: np.ndarray) -> np.ndarray:
    return _ratio(2 * tp, tp + fp + positives, empty=0.0)


def _best(resampled: np.ndarray) -> np.ndarray:
    """Each resample's F1-maximising coarse bin (the first maximum: the highest edge)."""
    f1 = _f1(*_above(resampled))
    return f1.shape[1] - 1 - np.argmax(f1, axis=1)


def _resampled_at(resampled: np.ndarray, grid: Grid, threshold: float) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of ``score >= threshold`` (a coarse edge) per resample."""
    group = int(grid.group_of_fine[np.searchsorted(bin_edges(), threshold)])
    tp = resampled[:, 1, group:].sum(axis=1).astype(np.float64)
    fp = resampled[:, 0, group:].sum(axis=1).astype(np.float64)
    positives = resampled[:, 1].sum(axis=1).astype(np.float64)
    return {
        "precision": _ratio(tp, tp + fp, empty=0.0),
        "recall": _ratio(tp, positives, empty=np.nan),
        "f1": _ratio(2 * tp, tp + fp + positives, empty=0.0),
    }


def _resampled_ap(resampled: np.ndarray) -> np.ndarray:
    """Average precision per resample: Σ (R_k − R_{k−1}) P_k over the coarse edges."""
    tp, fp, positives = _above(resampled)
    precision = _ratio(tp, tp + fp, empty=1.0)
    recall_step = np.diff(tp, axis=1, prepend=0.0)
    return _ratio(np.sum(recall_step * precision, axis=1), positives[:, 0], empty=np.nan)


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


# ----------------------------------------------------------------- tasks on the workers


class Scored(NamedTuple):
    scores: np.ndarray  # P(positive) per row
    positive: np.ndarray  # bool per row
    hashes: np.ndarray  # uint64 per row: keys the bootstrap weights


def _scored(path: Path, model: Any, positive: Any, seed: int) -> Scored:
    """A partition's scores (kept on its worker for the passes that follow)."""
    split = read_split(path)
    names = list(model.feature_names_in_ or [])
    if names and split.feature_names != names:
        raise UserError(f"{path}: its feature columns differ from the model's")
    scores = positive_scores(model.predict_proba(split.X), model.classes_, positive)
    return Scored(scores, split.y == positive, row_hashes(split.to_frame(), seed))


def _split_counts(part: Scored) -> SplitCounts:
    s, y = part.scores, part.positive
    clipped = np.clip(s, CLIP, 1 - CLIP)
    index = np.searchsorted(bin_edges(), s, side="right") - 1
    return SplitCounts(
        counts=score_counts(s, y),
        score_sums=np.bincount(index, weights=s, minlength=BINS),
        log_loss=float(-np.sum(np.where(y, np.log(clipped), np.log1p(-clipped)))),
        brier=float(np.sum((s - y) ** 2)),
    )


def _resampled_counts(
    part: Scored, group_of_fine: np.ndarray, groups: int, n_resamples: int, seed: int
) -> np.ndarray:
    """(resamples, 2, groups) int64: the partition's Poisson-weighted counts per coarse bin."""
    index = np.searchsorted(bin_edges(), part.scores, side="right") - 1
    cell = group_of_fine[index] + groups * part.positive
    out = np.empty((n_resamples, 2, groups), dtype=np.int64)
    for r in range(n_resamples):
        weights = poisson_weights(part.hashes, seed, r)
        out[r] = np.bincount(cell, weights=weights, minlength=2 * groups).reshape(2, groups)
    return out


def _label_counts(client: Any, sources: list[Path]) -> dict[Any, int]:
    counted = client.gather([client.submit(_labels_of, path, pure=False) for path in sources])
    total: dict[Any, int] = {}
    for part in counted:
        for label, n in part.items():
            total[label] = total.get(label, 0) + n
    return total


def _labels_of(path: Path) -> dict[Any, int]:
    labels = pq.read_table(path, columns=[TARGET]).column(TARGET).to_pandas()
    return {plain_label(k): int(n) for k, n in labels.value_counts().items()}


def _sum(client: Any, of: Callable[..., Any], parts: list[Any], *args: Any) -> Any:
    """Σ of ``of(part, *args)`` over the parts, added on the client as they finish."""
    from distributed import as_completed

    total = None
    for future in as_completed([client.submit(of, part, *args) for part in parts]):
        value = future.result()
        total = value if total is None else total + value
        future.release()
    return total


# ----------------------------------------------------------------- the baseline


def _baseline(
    client: Any,
    model: Any,
    paths: Mapping[str, Path | None],
    positive: Any,
    memory_limit: int | None,
) -> dict[str, Any]:
    """scikit-learn beside our model, on one worker, when its rows fit; else why not."""
    fit_on = paths.get("rebalanced") or paths["train"]
    rows = sum(part_rows(p) for p in part_paths(fit_on)) + sum(
        part_rows(p) for p in part_paths(paths["test"])
    )
    needed = rows * (len(model.coef_[0]) + 1) * 8
    limit = memory_limit or _worker_memory(client)
    bound = int(BASELINE_MEMORY_SHARE * limit)
    if needed > bound:
        return {
            "skipped": (
                f"the baseline's {rows:,} rows (fit and test) take {needed:,} bytes as "
                f"float64, more than {bound:,} ({BASELINE_MEMORY_SHARE:.0%} of a worker's "
                "memory limit)"
            )
        }
    task = client.submit(_fit_baseline, fit_on, paths["test"], model, positive, pure=False)
    return task.result()


def _worker_memory(client: Any) -> int:
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    if limits and min(limits) > 0:
        return int(min(limits))
    from distributed.system import MEMORY_LIMIT

    return int(MEMORY_LIMIT)


def _fit_baseline(fit_on: Path, test: Path, model: Any, positive: Any) -> dict[str, float]:
    train, held_out = read_split(fit_on), read_split(test)
    return baseline_sklearn(
        train.X,
        train.y,
        train.sample_weight,
        held_out.X,
        held_out.y,
        model,
        positive,
        seed=int(getattr(model, "seed", 0) or 0),
    )


# ----------------------------------------------------------------- plots from counts


def plot_makers(
    test: SplitCounts,
    classes: np.ndarray,
    positive: Any,
    threshold: float,
) -> tuple[dict[str, Callable[[Path], Any]], dict[str, Callable[[Path], Any]]]:
    """The plot data files and figures of the numpy engine, drawn from the test counts."""
    c = curves(test.counts)
    moves = np.r_[True, (np.diff(c.tp) != 0) | (np.diff(c.fp) != 0)]  # edges where it moves
    tp, fp, edges = c.tp[moves], c.fp[moves], c.thresholds[moves]
    fpr = np.r_[0.0, fp / max(c.negatives, 1)]
    tpr = np.r_[0.0, tp / max(c.positives, 1)]
    predicted = tp + fp
    shown = predicted > 0
    precision = tp[shown] / predicted[shown]
    recall = tp[shown] / max(c.positives, 1)
    # scikit-learn's order: thresholds increasing, then the point (recall 0, precision 1).
    pr = (np.r_[recall[::-1], 0.0], np.r_[precision[::-1], 1.0], edges[shown][::-1])
    negative = plain_label(np.asarray(classes)[np.asarray(classes) != positive][0])
    confusion = {
        name: _confusion_rows(_at(c, t), positive, negative)
        for name, t in (("confusion.csv", 0.5), ("confusion_tuned.csv", threshold))
    }
    tp5, fp5, fn5, tn5 = _at(c, 0.5)
    labels = sorted([positive, negative])
    cells = {(positive, positive): tp5, (negative, positive): fp5}
    cells |= {(positive, negative): fn5, (negative, negative): tn5}
    matrix = np.array([[cells[(a, p)] for p in labels] for a in labels])
    predicted_mean, observed = _calibration(test)
    data_files = {
        "pr.csv": lambda p: plots.write_pr_table(*pr, p),
        "roc.csv": lambda p: plots.write_roc_table(fpr, tpr, np.r_[np.inf, edges], p),
        **{name: _writer(rows) for name, rows in confusion.items()},
    }
    figures = {
        "pr_curve.png": lambda p: plots.draw_pr_curve(
            *pr, average_precision(c), c.positives / (c.positives + c.negatives), p, threshold
        ),
        "roc_curve.png": lambda p: plots.draw_roc_curve(fpr, tpr, roc_auc(c), p),
        "confusion_matrix.png": lambda p: plots.confusion_matrix(matrix, labels, p),
        "calibration.png": lambda p: plots.draw_calibration_curve(predicted_mean, observed, p),
    }
    return data_files, figures


def _writer(rows: tuple[np.ndarray, np.ndarray]) -> Callable[[Path], Any]:
    return lambda p: plots.write_confusion_rows(*rows, p)


def _confusion_rows(
    counts: tuple[int, int, int, int], positive: Any, negative: Any
) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted) per test row, grouped by cell: what DVC's confusion plot counts."""
    tp, fp, fn, tn = counts
    cells = [(positive, positive, tp), (negative, positive, fp)]
    cells += [(positive, negative, fn), (negative, negative, tn)]
    actual = np.repeat([a for a, _, _ in cells], [n for _, _, n in cells])
    predicted = np.repeat([p for _, p, _ in cells], [n for _, _, n in cells])
    return actual, predicted


def _calibration(test: SplitCounts, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean score and positive rate in about ``n_bins`` quantile groups of fine bins."""
    per_bin = test.counts.sum(axis=0)
    before = np.cumsum(per_bin) - per_bin
    group = before * n_bins // max(int(per_bin.sum()), 1)
    rows = np.bincount(group, weights=per_bin, minlength=n_bins)
    positives = np.bincount(group, weights=test.counts[1], minlength=n_bins)
    score = np.bincount(group, weights=test.score_sums, minlength=n_bins)
    filled = rows > 0
    return score[filled] / rows[filled], positives[filled] / rows[filled]


def first_rows(path: Path, n: int = 5) -> pd.DataFrame:
    """The first rows of a split (a serving example), read from its first part."""
    frame = read_part(part_paths(path)[0]).head(n)
    return frame[[c for c in frame.columns if c not in RESERVED]]
