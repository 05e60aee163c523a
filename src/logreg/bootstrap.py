"""How much a score would move on another sample of the same size: the seeded bootstrap.

A test split of 1,165 rows with 70 positives pins F1 down only to a few hundredths. The
bootstrap redraws the split's rows with replacement, recomputes the score on each
resample, and reads the 2.5 and 97.5 percentiles of those scores as a 95 % interval.

The resampling is **stratified**: each resample draws the positives from the positives
and the negatives from the negatives, so it has exactly the split's class counts. The
prepare stage splits stratified, so the class counts are fixed by design and not part of
the noise; stratifying also keeps every resample's recall and PR-AUC defined.

Everything is vectorised over resamples. A resample is a row of an index matrix;
:func:`row_counts` turns it into how often each original row was drawn, and every score
is a weighted sum over the original rows in one sorted order:

* confusion counts at a threshold: TP = Σ wᵢ·yᵢ·[sᵢ >= t], FP = Σ wᵢ·(1 − yᵢ)·[sᵢ >= t];
* average precision, the ``pr_auc`` of :mod:`logreg.metrics` (scikit-learn's
  ``average_precision_score``): AP = Σₖ (Rₖ − Rₖ₋₁)·Pₖ over the cuts between distinct
  scores, with weighted cumulative counts;
* F1 at every threshold, and the F1-maximising threshold of
  :func:`logreg.metrics.tune_threshold`, per resample.

:func:`paired_difference` reuses one seed for two score vectors on the same rows, so
both see the same resamples: the interval of the difference then excludes the noise
the two share, which an overlap of two separate intervals cannot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

INTERVAL_METRICS = ("f1", "precision", "recall", "pr_auc")
CHUNK = 200  # resamples per index matrix: CHUNK × n_rows int64 and float64 at a time
LEVEL = 0.95


def resample_indices(
    y_true: np.ndarray, n_resamples: int, seed: int, chunk: int = CHUNK
) -> Iterator[np.ndarray]:
    """Index matrices of shape (≤ chunk, n_samples), ``n_resamples`` rows in all; stratified.

    Row r holds the positives' draws in the positions of the positives, and likewise for
    the negatives, so ``y_true[indices]`` equals ``y_true`` in every row. Seeded: the same
    ``y_true`` and ``seed`` give the same resamples, whatever the scores and the chunk
    size, and more resamples only add rows after the first ones.
    """
    y = np.asarray(y_true, dtype=bool)
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(y == value) for value in (False, True)]
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        indices = np.empty((size, len(y)), dtype=np.int64)
        for resample in indices:  # one draw per resample and class: the same for any chunk
            for rows in classes:
                resample[rows] = rows[rng.integers(0, len(rows), size=len(rows))]
        yield indices


def row_counts(indices: np.ndarray, n_samples: int) -> np.ndarray:
    """How often each original row occurs in each resample: shape (n_resamples, n_samples)."""
    n_resamples = indices.shape[0]
    offsets = indices + n_samples * np.arange(n_resamples)[:, None]
    return np.bincount(offsets.ravel(), minlength=n_resamples * n_samples).reshape(
        n_resamples, n_samples
    )


def resampled_scores(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, indices: np.ndarray
) -> dict[str, np.ndarray]:
    """F1, precision, recall (at ``scores >= threshold``) and average precision per resample.

    ``y_true`` boolean and ``scores`` of shape (n_samples,); ``indices`` of shape
    (n_resamples, n_samples). Precision of an empty prediction is 0, as in
    :func:`logreg.metrics.thresholded_metrics`; recall and average precision of a
    resample without positives are NaN.
    """
    y, s = _check(y_true, scores)
    counts = row_counts(indices, len(y)).astype(np.float64)
    flagged = s >= threshold
    tp = counts @ (y & flagged)
    fp = counts @ (~y & flagged)
    positives = counts @ y
    out = {
        "precision": _ratio(tp, tp + fp, empty=0.0),
        "recall": _ratio(tp, positives, empty=np.nan),
        "f1": _ratio(2 * tp, tp + fp + positives, empty=0.0),
    }
    tp_cut, predicted_cut, _ = _cumulative_at_cuts(y, s, counts)
    precision_cut = _ratio(tp_cut, predicted_cut, empty=0.0)
    recall_step = np.diff(tp_cut, axis=1, prepend=0.0)  # Rₖ − Rₖ₋₁, times P
    out["pr_auc"] = _ratio(np.sum(recall_step * precision_cut, axis=1), positives, empty=np.nan)
    return out


def resampled_f1_curves(
    y_true: np.ndarray, scores: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """F1 of each resample at each threshold ``scores >= t``, t over the distinct scores.

    Returns F1 of shape (n_resamples, n_distinct) and the distinct scores, highest first.
    F1 = 2·TPₖ / (Nₖ + P) at the cut after the k-th distinct score (Nₖ rows predicted).
    """
    y, s = _check(y_true, scores)
    counts = row_counts(indices, len(y)).astype(np.float64)
    tp_cut, predicted_cut, scores_cut = _cumulative_at_cuts(y, s, counts)
    positives = tp_cut[:, -1]
    if np.any(positives == 0):
        raise ValueError("bootstrap: a resample has no positive sample; F1 is undefined")
    return 2.0 * tp_cut / (predicted_cut + positives[:, None]), scores_cut


def resampled_thresholds(y_true: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The F1-maximising threshold of each resample, as :func:`~logreg.metrics.tune_threshold`.

    The first maximum of :func:`resampled_f1_curves` is the highest threshold. A cut at a
    score the resample does not hold ties with the cut before it, so the first maximum
    is always a score the resample holds.
    """
    f1, scores_cut = resampled_f1_curves(y_true, scores, indices)
    return scores_cut[np.argmax(f1, axis=1)]


def bootstrap(
    statistic: Callable[[np.ndarray], Mapping[str, np.ndarray] | np.ndarray],
    y_true: np.ndarray,
    n_resamples: int,
    seed: int,
) -> dict[str, np.ndarray] | np.ndarray:
    """``statistic(indices)`` over every chunk of :func:`resample_indices`, concatenated."""
    parts = [statistic(indices) for indices in resample_indices(y_true, n_resamples, seed)]
    if isinstance(parts[0], Mapping):
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
    return np.concatenate(parts)


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """``{"low", "high"}``: the (1 − level)/2 and (1 + level)/2 percentiles, NaNs ignored."""
    tail = round(50 * (1 - level), 9)  # 2.5, not 2.5000000000000022
    low, high = np.nanpercentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return {"low": float(low), "high": float(high)}


def score_intervals(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, n_resamples: int, seed: int
) -> dict[str, dict[str, float]]:
    """The 95 % percentile interval of each of :data:`INTERVAL_METRICS`."""
    samples = bootstrap(
        lambda indices: resampled_scores(y_true, scores, threshold, indices),
        y_true,
        n_resamples,
        seed,
    )
    return {name: percentile_interval(samples[name]) for name in INTERVAL_METRICS}


def paired_difference(
    y_true: np.ndarray,
    scores: np.ndarray,
    reference: np.ndarray,
    n_resamples: int,
    seed: int,
    threshold: float = 0.5,
    metric: str = "f1",
) -> dict[str, float]:
    """``metric`` of ``scores`` minus that of ``reference`` on the same rows: estimate, interval.

    Both are scored on the same resamples, so their shared noise cancels. The difference
    is outside the noise when the interval excludes 0.
    """

    def difference(indices: np.ndarray) -> np.ndarray:
        ours = resampled_scores(y_true, scores, threshold, indices)[metric]
        theirs = resampled_scores(y_true, reference, threshold, indices)[metric]
        return ours - theirs

    everything = np.arange(len(np.asarray(y_true)))[None, :]
    estimate = float(difference(everything)[0])
    return {
        "difference": estimate,
        **percentile_interval(bootstrap(difference, y_true, n_resamples, seed)),
    }


def _cumulative_at_cuts(
    y: np.ndarray, s: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted TP and predicted counts at each cut between distinct scores, highest first.

    Shapes (n_resamples, n_distinct) and the distinct scores (n_distinct,). Rows of equal
    score fall on the same side of every threshold, so they are summed into one run.
    """
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    weights = counts[:, order]
    tp_run = np.add.reduceat(weights * y[order], starts, axis=1)
    predicted_run = np.add.reduceat(weights, starts, axis=1)
    return np.cumsum(tp_run, axis=1), np.cumsum(predicted_run, axis=1), s_sorted[starts]


def _ratio(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    """numerator / denominator, ``empty`` where the denominator is 0."""
    out = np.full(np.broadcast(numerator, denominator).shape, empty, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _check(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"bootstrap: y_true {y.shape} and scores {s.shape} must be equal 1-D")
    return y, s
