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
is a weighted sum over the original rows in one sorted order. The bootstrap itself
counts the same draws as they are made (:func:`resampled_counts`), sorts the scores once
(:func:`rank_scores`) and takes as many resamples at a time as keep each (resamples ×
rows) array within :data:`MAX_CELLS`: at 1.6M rows, a few at a time, not 200:

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
from dataclasses import dataclass

import numpy as np

INTERVAL_METRICS = ("f1", "precision", "recall", "pr_auc")
CHUNK = 200  # resamples per index matrix at most: CHUNK × n_rows int64 and float64 at a time
# ... and at most this many cells (32 MB per int64 matrix), so that the few (chunk,
# n_rows) arrays of a chunk stay a small fixed size however many rows the split has.
MAX_CELLS = 1 << 22
LEVEL = 0.95


def chunk_size(n_samples: int) -> int:
    """Resamples per index matrix for a split of ``n_samples`` rows (:data:`MAX_CELLS`)."""
    return max(1, min(CHUNK, MAX_CELLS // max(n_samples, 1)))


@dataclass(frozen=True)
class Ranked:
    """The rows in one order, by descending score: what every resample's counts are cut in.

    Sorted once per score vector, not once per chunk of resamples. ``order`` lists the
    rows in that order and ``rank`` is each row's position in it, ``y`` the labels in
    it, ``ends`` the last position of each run of equal scores (None when the scores are
    all distinct) and ``distinct`` the distinct scores, highest first.
    """

    order: np.ndarray
    rank: np.ndarray
    y: np.ndarray
    ends: np.ndarray | None
    distinct: np.ndarray


def rank_scores(y_true: np.ndarray, scores: np.ndarray) -> Ranked:
    """:class:`Ranked` for boolean ``y_true`` and ``scores`` of shape (n_samples,)."""
    y, s = _check(y_true, scores)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    rank = np.empty(len(s), dtype=np.int64)
    rank[order] = np.arange(len(s))
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    ends = None if last_of_run.all() else np.flatnonzero(last_of_run)
    distinct = s_sorted if ends is None else s_sorted[ends]
    return Ranked(order=order, rank=rank, y=y[order], ends=ends, distinct=distinct)


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


def resampled_counts(
    y_true: np.ndarray,
    n_resamples: int,
    seed: int,
    chunk: int = CHUNK,
    positions: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """``row_counts`` of the resamples of :func:`resample_indices`, without index matrices.

    The same draws from the same seed, counted as they are drawn: (≤ chunk, n_samples)
    int64 matrices. With ``positions`` (a permutation, such as :attr:`Ranked.rank`),
    row i's count goes to column ``positions[i]``.
    """
    y = np.asarray(y_true, dtype=bool)
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(y == value) for value in (False, True)]
    targets = [rows if positions is None else positions[rows] for rows in classes]
    # Both classes' draws, one after the other, in one buffer for every resample.
    drawn = np.empty(len(y), dtype=np.int64)
    offsets = np.cumsum([0] + [len(column) for column in targets])
    for start in range(0, n_resamples, chunk):
        counts = np.empty((min(chunk, n_resamples - start), len(y)), dtype=np.int64)
        for resample in counts:  # the draws of resample_indices, in its order
            for column, begin, end in zip(targets, offsets[:-1], offsets[1:], strict=True):
                picks = rng.integers(0, len(column), size=len(column))
                np.take(column, picks, out=drawn[begin:end], mode="clip")  # picks are valid
            resample[:] = np.bincount(drawn, minlength=len(y))
        yield counts


def resampled_scores(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, indices: np.ndarray
) -> dict[str, np.ndarray]:
    """F1, precision, recall (at ``scores >= threshold``) and average precision per resample.

    ``y_true`` boolean and ``scores`` of shape (n_samples,); ``indices`` of shape
    (n_resamples, n_samples). Precision of an empty prediction is 0, as in
    :func:`logreg.metrics.thresholded_metrics`; recall and average precision of a
    resample without positives are NaN.
    """
    ranked = rank_scores(y_true, scores)
    return _scores(ranked, threshold, _ranked_counts(ranked, indices))


def _ranked_counts(ranked: Ranked, indices: np.ndarray) -> np.ndarray:
    """How often each row occurs in each resample of ``indices``, in score order."""
    return row_counts(ranked.rank[indices], len(ranked.rank))


def _scores(ranked: Ranked, threshold: float, counts: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`resampled_scores` from the resamples' row counts in score order."""
    tp_cut, predicted_cut = _cumulative_at_cuts(ranked, counts)
    # The rows flagged at the threshold are the first ones in score order: a prefix.
    flagged = int(np.searchsorted(-ranked.distinct, -threshold, side="right"))
    tp = tp_cut[:, flagged - 1] if flagged else np.zeros(len(tp_cut))
    predicted = predicted_cut[:, flagged - 1] if flagged else np.zeros(len(tp_cut))
    positives = tp_cut[:, -1]
    out = {
        "precision": _ratio(tp, predicted, empty=0.0),
        "recall": _ratio(tp, positives, empty=np.nan),
        "f1": _ratio(2 * tp, predicted + positives, empty=0.0),
    }
    precision_cut = _ratio(tp_cut, predicted_cut, empty=0.0)
    recall_step = np.diff(tp_cut, axis=1, prepend=0)  # Rₖ − Rₖ₋₁, times P (integers)
    out["pr_auc"] = _ratio(np.sum(recall_step * precision_cut, axis=1), positives, empty=np.nan)
    return out


def resampled_f1_curves(
    y_true: np.ndarray, scores: np.ndarray, indices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """F1 of each resample at each threshold ``scores >= t``, t over the distinct scores.

    Returns F1 of shape (n_resamples, n_distinct) and the distinct scores, highest first.
    F1 = 2·TPₖ / (Nₖ + P) at the cut after the k-th distinct score (Nₖ rows predicted).
    """
    ranked = rank_scores(y_true, scores)
    return _f1_curves(ranked, _ranked_counts(ranked, indices)), ranked.distinct


def _f1_curves(ranked: Ranked, counts: np.ndarray) -> np.ndarray:
    tp_cut, predicted_cut = _cumulative_at_cuts(ranked, counts)
    positives = tp_cut[:, -1]
    if np.any(positives == 0):
        raise ValueError("bootstrap: a resample has no positive sample; F1 is undefined")
    return 2.0 * tp_cut / (predicted_cut + positives[:, None])


def resampled_thresholds(y_true: np.ndarray, scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The F1-maximising threshold of each resample, as :func:`~logreg.metrics.tune_threshold`.

    The first maximum of :func:`resampled_f1_curves` is the highest threshold. A cut at a
    score the resample does not hold ties with the cut before it, so the first maximum
    is always a score the resample holds.
    """
    ranked = rank_scores(y_true, scores)
    return _thresholds(ranked, _ranked_counts(ranked, indices))


def _thresholds(ranked: Ranked, counts: np.ndarray) -> np.ndarray:
    return ranked.distinct[np.argmax(_f1_curves(ranked, counts), axis=1)]


def threshold_samples(
    y_true: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int
) -> np.ndarray:
    """:func:`resampled_thresholds` of ``n_resamples`` seeded resamples (one sort in all)."""
    ranked = rank_scores(y_true, scores)
    return bootstrap(
        lambda counts: _thresholds(ranked, counts), y_true, n_resamples, seed, ranked.rank
    )


def bootstrap(
    statistic: Callable[[np.ndarray], Mapping[str, np.ndarray] | np.ndarray],
    y_true: np.ndarray,
    n_resamples: int,
    seed: int,
    positions: np.ndarray | None = None,
) -> dict[str, np.ndarray] | np.ndarray:
    """``statistic(counts)`` over every chunk of :func:`resampled_counts`, concatenated."""
    chunks = resampled_counts(y_true, n_resamples, seed, chunk_size(len(y_true)), positions)
    parts = [statistic(counts) for counts in chunks]
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
    ranked = rank_scores(y_true, scores)
    samples = bootstrap(
        lambda counts: _scores(ranked, threshold, counts), y_true, n_resamples, seed, ranked.rank
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

    ours, theirs = rank_scores(y_true, scores), rank_scores(y_true, reference)

    def difference(counts: np.ndarray) -> np.ndarray:
        ours_counts, theirs_counts = counts[:, ours.order], counts[:, theirs.order]
        return (
            _scores(ours, threshold, ours_counts)[metric]
            - _scores(theirs, threshold, theirs_counts)[metric]
        )

    everything = np.ones((1, len(ours.rank)), dtype=np.int64)
    estimate = float(difference(everything)[0])
    return {
        "difference": estimate,
        **percentile_interval(bootstrap(difference, y_true, n_resamples, seed)),
    }


def _cumulative_at_cuts(ranked: Ranked, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TP and predicted counts of each resample at each cut between distinct scores.

    ``counts``: how often each row was drawn, in score order. Both results have shape
    (n_resamples, n_distinct), highest score first: the cumulative sums of ``counts``
    read at the end of each run of equal scores (rows of equal score fall on the same
    side of every threshold).
    Integer sums, so exact whatever the order of summation; left as integers, since every
    ratio of them is computed in float64 anyway (a float64 copy cost a tenth of the
    bootstrap at 400,000 rows).
    """
    tp_cut = np.cumsum(counts * ranked.y, axis=1)
    predicted_cut = np.cumsum(counts, axis=1)
    if ranked.ends is not None:
        tp_cut, predicted_cut = tp_cut[:, ranked.ends], predicted_cut[:, ranked.ends]
    return tp_cut, predicted_cut


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
