"""The evaluate stage on Dask: the model scores each partition on its worker; only counts return.

Same ``metrics.json`` keys as the numpy engine, computed from sums. For two classes:

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
  weights (rows of equal content draw equal weights). Unlike the numpy engine's bootstrap
  it is not multinomial (the resample's size varies, ±√n) nor stratified (its class
  counts vary too), so its intervals are close to the numpy engine's, not equal. Each
  resample is counted on a coarser grid of at most :data:`BOOTSTRAP_BINS` bins of about
  equal rows (a quantile grid of the scores, its edges among the fine ones), which keeps
  0.5 and the tuned threshold as edges: resampled P/R/F1 are exact, resampled PR-AUC
  binned.
- **Threshold tuning, from the validation split's counts.** ``val_max``: the F1-maximising
  bin edge. ``bootstrap_median``: the lower median of the resamples' F1-maximising edges
  (an edge itself, so the test counts at it stay exact). ``cv`` would refit the model on
  k folds, k full fits over the cluster; on Dask it is ``bootstrap_median`` on the
  validation split, and ``val.threshold_tuned.method`` says so.
- **The scikit-learn baseline** runs on one worker when the rows it fits and scores fit in
  :data:`BASELINE_MEMORY_SHARE` of a worker's memory limit; else ``baseline.skipped``
  gives the reason. The majority-class accuracy comes from counts and is always there.

For several classes, accuracy, the macro and weighted P/R/F1 and ``per_class`` come from
the summed confusion matrix (exact), the one-vs-rest areas from per-class bin counts
(binned); as on one machine, no interval and no tuned threshold.

The plot files hold one point per bin edge where the curve moves, and ``confusion.csv``
one row per test row, grouped by (actual, predicted) cell.

Memory: for two classes each worker keeps its partitions' scores, labels and row hashes
(17 bytes a row) for the three passes over them (counts, then the validation and the
test bootstraps), instead of reading and scoring each partition three times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq

from logreg import plots
from logreg.bootstrap import INTERVAL_METRICS, percentile_interval
from logreg.engines.partitions import part_paths, part_rows
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
from logreg.frames import TARGET, Split, plain_label, read_split, reading_errors
from logreg.hash_split import class_index, row_hashes
from logreg.metrics import (
    baseline_sklearn,
    confusion_metrics,
    per_class_report,
    positive_scores,
)

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


class Drawn(NamedTuple):
    """What the plots need from the test split: its (one-vs-rest, for several classes)
    counts, the labels, the confusion matrices at 0.5 and at the tuned threshold."""

    counts: SplitCounts
    labels: list[Any]
    matrix: np.ndarray  # (labels, labels): rows actual, columns predicted
    matrix_tuned: np.ndarray
    threshold: float | None


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
) -> tuple[dict[str, dict[str, Any]], Drawn, Any]:
    """The metrics of ``paths["val"]`` and ``paths["test"]`` (and the baseline), what
    the plots need, and the positive class (None for several classes).

    ``paths`` also holds ``train`` (the prepared train split: its class counts) and
    ``rebalanced`` (what the baseline fits, or None for ``train``). ``memory_limit``
    (bytes per worker) bounds the baseline; None asks the workers.
    """
    classes = [plain_label(label) for label in model.classes_]
    train_counts = _label_counts(client, part_paths(paths["train"]))
    shared = client.scatter(model, broadcast=True)
    if len(classes) == 2:
        positive = _minority(train_counts)
        options = {"n_bootstrap": n_bootstrap, "seed": seed, "threshold_method": threshold_method}
        out, drawn = _binary(client, shared, paths, classes, positive, **options)
    else:
        positive = None
        out, drawn = _multiclass(client, shared, paths, classes)
    test_counts = dict(zip(drawn.labels, drawn.matrix.sum(axis=1).tolist(), strict=True))
    out["baseline"] = {"majority_accuracy": _majority_accuracy(train_counts, test_counts)}
    if baseline:
        out["baseline"] |= _baseline(client, model, paths, positive, memory_limit)
    return out, drawn, positive


def _binary(
    client: Any,
    model: Any,
    paths: Mapping[str, Path | None],
    classes: list[Any],
    positive: Any,
    *,
    n_bootstrap: int,
    seed: int,
    threshold_method: str,
) -> tuple[dict[str, dict[str, Any]], Drawn]:
    """Binary metrics at 0.5 and at the threshold tuned on val, with bootstrap intervals."""
    scored = {
        name: [
            client.submit(_scored, path, model, positive, seed, pure=False)
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
    matrices = [_binary_matrix(_at(fine["test"], t), classes, positive) for t in (0.5, threshold)]
    out["test"]["per_class"] = _per_class(matrices[0], classes)
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
    return out, Drawn(sums["test"], classes, *matrices, threshold)


def _multiclass(
    client: Any, model: Any, paths: Mapping[str, Path | None], classes: list[Any]
) -> tuple[dict[str, dict[str, Any]], Drawn]:
    """:func:`logreg.metrics.multiclass_metrics` of val and test, from summed counts."""
    sums = {
        name: _sum(client, _class_counts, part_paths(paths[name]), model)
        for name in ("val", "test")
    }
    out = {name: _multiclass_metrics(counts) for name, counts in sums.items()}
    test = sums["test"]
    out["test"]["per_class"] = _per_class(test.confusion, classes)
    out["test"]["binning"] = {
        "bins": BINS,
        "auc_error_bound": max(_mixed_share(counts) for counts in test.per_class),
    }
    micro = SplitCounts(test.per_class.sum(axis=0), test.score_sums, test.log_loss, test.brier)
    return out, Drawn(micro, classes, test.confusion, test.confusion, None)


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


def _per_class(matrix: np.ndarray, labels: list[Any]) -> dict[str, dict[str, float]]:
    """:func:`logreg.metrics.classification_report` from the confusion matrix."""
    right, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    return per_class_report(labels, *_prf_per_class(right, support, predicted), support)


def _prf_per_class(
    right: np.ndarray, support: np.ndarray, predicted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 of each class (0 where undefined, as zero_division=0)."""
    return (
        _ratio(right, predicted, empty=0.0),
        _ratio(right, support, empty=0.0),
        _ratio(2 * right, support + predicted, empty=0.0),
    )


def _binary_matrix(
    counts: tuple[int, int, int, int], labels: list[Any], positive: Any
) -> np.ndarray:
    """The 2×2 confusion matrix in ``labels`` order from (tp, fp, fn, tn)."""
    tp, fp, fn, tn = counts
    matrix = np.array([[tn, fp], [fn, tp]])  # negative first
    return matrix if labels[1] == positive else matrix[::-1, ::-1]


def _multiclass_metrics(counts: ClassCounts) -> dict[str, float]:
    """Accuracy, macro and weighted P/R/F1, one-vs-rest areas, log loss, Brier."""
    matrix = counts.confusion
    right, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    n = support.sum()
    precision, recall, f1 = _prf_per_class(right, support, predicted)
    out = {"accuracy": float(right.sum() / n)}
    for average, weights in (
        ("macro", np.ones(len(support)) / len(support)),
        ("weighted", support / n),
    ):
        out[f"precision_{average}"] = float(precision @ weights)
        out[f"recall_{average}"] = float(recall @ weights)
        out[f"f1_{average}"] = float(f1 @ weights)
    present = support > 0
    class_curves = [curves(c) for c in counts.per_class]
    out["roc_auc_macro"] = (
        float(np.mean([roc_auc(c) for c in class_curves])) if present.all() else float("nan")
    )
    out["pr_auc_macro"] = float(
        np.mean([average_precision(c) for c, p in zip(class_curves, present, strict=True) if p])
    )
    out["log_loss"] = counts.log_loss / n
    out["brier"] = counts.brier / n
    return out


def _f1_of(c: Curves) -> np.ndarray:
    return 2.0 * c.tp / np.maximum(c.tp + c.fp + c.positives, 1)


def _minority(counts: dict[Any, int]) -> Any:
    """:func:`logreg.frames.minority_class` from counts: the label that sorts last on ties."""
    smallest = min(counts.values())
    return [label for label in sorted(counts) if counts[label] == smallest][-1]


def _majority_accuracy(train: dict[Any, int], test: dict[Any, int]) -> float:
    """:func:`logreg.metrics.majority_accuracy` from counts (ties: the label sorting first)."""
    labels = sorted(train)
    majority = labels[int(np.argmax([train[label] for label in labels]))]
    return test.get(majority, 0) / sum(test.values())


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
    split = _checked_split(path, model)
    scores = positive_scores(model.predict_proba(split.X), model.classes_, positive)
    return Scored(scores, split.y == positive, row_hashes(split.to_frame(), seed))


def _checked_split(path: Path, model: Any) -> Split:
    split = read_split(path)
    names = list(model.feature_names_in_ or [])
    if names and split.feature_names != names:
        raise UserError(f"{path}: its feature columns differ from the model's")
    return split


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


class ClassCounts(NamedTuple):
    """A split's sums for several classes: confusion matrix, per-class score counts."""

    confusion: np.ndarray  # (K, K) int64, rows actual, columns the most probable class
    per_class: np.ndarray  # (K, 2, BINS) int64: class k against the rest, per score bin
    score_sums: np.ndarray  # (BINS,) Σ of every (row, class) probability in the bin
    log_loss: float  # Σ −log p_{y}, p clipped to [CLIP, 1]
    brier: float  # Σ_rows Σ_k (p_k − [y = k])²

    def __add__(self, other: Any) -> ClassCounts:  # type: ignore[override]
        return ClassCounts(*(a + b for a, b in zip(self, other, strict=True)))


def _class_counts(path: Path, model: Any) -> ClassCounts:
    split = _checked_split(path, model)
    proba = model.predict_proba(split.X)
    k = len(model.classes_)
    actual = class_index(split.y, model.classes_)
    onehot = np.eye(k)[actual]
    index = np.searchsorted(bin_edges(), proba.ravel(), side="right") - 1
    chosen = proba[np.arange(len(actual)), actual]
    return ClassCounts(
        confusion=np.bincount(actual * k + proba.argmax(axis=1), minlength=k * k).reshape(k, k),
        per_class=np.stack([score_counts(proba[:, j], actual == j) for j in range(k)]),
        score_sums=np.bincount(index, weights=proba.ravel(), minlength=BINS),
        log_loss=float(-np.sum(np.log(np.clip(chosen, CLIP, 1.0)))),
        brier=float(np.sum((proba - onehot) ** 2)),
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
    with reading_errors(path):
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
    drawn: Drawn,
) -> tuple[dict[str, Callable[[Path], Any]], dict[str, Callable[[Path], Any]]]:
    """The plot data files and figures of the numpy engine, drawn from the test counts.

    Several classes are drawn one-vs-rest, micro-averaged, as on one machine: every
    (row, class) pair is one binary decision."""
    c = curves(drawn.counts.counts)
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
    prevalence = c.positives / max(c.positives + c.negatives, 1)
    predicted_mean, observed = _calibration(drawn.counts)
    labels, threshold = drawn.labels, drawn.threshold
    rows = {
        "confusion.csv": _confusion_rows(drawn.matrix, labels),
        "confusion_tuned.csv": _confusion_rows(drawn.matrix_tuned, labels),
    }
    data_files = {
        "pr.csv": lambda p: plots.write_pr_table(*pr, p),
        "roc.csv": lambda p: plots.write_roc_table(fpr, tpr, np.r_[np.inf, edges], p),
        **{name: _writer(table) for name, table in rows.items()},
    }
    figures = {
        "pr_curve.png": lambda p: plots.draw_pr_curve(
            *pr, average_precision(c), prevalence, p, threshold
        ),
        "roc_curve.png": lambda p: plots.draw_roc_curve(fpr, tpr, roc_auc(c), p),
        "confusion_matrix.png": lambda p: plots.confusion_matrix(drawn.matrix, labels, p),
        "calibration.png": lambda p: plots.draw_calibration_curve(predicted_mean, observed, p),
    }
    return data_files, figures


def _writer(rows: tuple[np.ndarray, np.ndarray]) -> Callable[[Path], Any]:
    return lambda p: plots.write_confusion_rows(*rows, p)


def _confusion_rows(matrix: np.ndarray, labels: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(actual, predicted) per test row, grouped by cell: what DVC's confusion plot counts."""
    actual, predicted = np.meshgrid(np.arange(len(labels)), np.arange(len(labels)), indexing="ij")
    repeats = np.asarray(matrix).ravel()
    named = np.asarray(labels, dtype=object)
    return (
        named[np.repeat(actual.ravel(), repeats)].astype(np.asarray(labels).dtype),
        named[np.repeat(predicted.ravel(), repeats)].astype(np.asarray(labels).dtype),
    )


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
