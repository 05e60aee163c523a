"""The vectorised bootstrap against a plain loop over the same resamples with scikit-learn."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from logreg.bootstrap import (
    MAX_CELLS,
    paired_difference,
    percentile_interval,
    resample_indices,
    resampled_counts,
    resampled_scores,
    resampled_thresholds,
    row_counts,
    score_intervals,
)
from logreg.metrics import THRESHOLD_METHODS, tune_threshold


def imbalanced(n: int = 80, n_pos: int = 14, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores with ties (two decimals), positives scored higher on average."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=bool)
    y[rng.choice(n, n_pos, replace=False)] = True
    scores = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1).round(2)
    return y, scores


REFERENCE = {
    "f1": lambda y, s, t: f1_score(y, s >= t, zero_division=0),
    "precision": lambda y, s, t: precision_score(y, s >= t, zero_division=0),
    "recall": lambda y, s, t: recall_score(y, s >= t),
    "pr_auc": lambda y, s, t: average_precision_score(y, s),
}


def reference_scores(y, s, threshold, indices, names=tuple(REFERENCE)):
    """One resample at a time, scikit-learn on the resampled rows."""
    return {
        name: np.array([REFERENCE[name](y[idx], s[idx], threshold) for idx in indices])
        for name in names
    }


def all_indices(y, n_resamples, seed, chunk):
    return np.vstack(list(resample_indices(y, n_resamples, seed, chunk=chunk)))


def test_resamples_are_stratified_seeded_and_draw_every_row_alike():
    y, _ = imbalanced()
    indices = all_indices(y, 2000, seed=7, chunk=300)
    assert np.array_equal(indices, all_indices(y, 2000, seed=7, chunk=2000))  # chunk-free
    assert indices.shape == (2000, len(y))
    assert np.array_equal(y[indices], np.broadcast_to(y, indices.shape))  # class counts kept
    assert np.array_equal(indices, all_indices(y, 2000, seed=7, chunk=300))
    assert not np.array_equal(indices, all_indices(y, 2000, seed=8, chunk=300))
    # With replacement: duplicates occur; each row is drawn once per resample on average.
    counts = row_counts(indices, len(y))
    assert np.array_equal(counts, np.stack([np.bincount(r, minlength=len(y)) for r in indices]))
    assert counts.max() > 1
    assert np.allclose(counts.mean(axis=0), 1.0, atol=0.1)


def test_resampled_counts_count_the_rows_of_the_same_resamples():
    y, _ = imbalanced()
    indices = all_indices(y, 230, seed=6, chunk=230)
    counts = np.vstack(list(resampled_counts(y, 230, seed=6, chunk=70)))
    assert np.array_equal(counts, row_counts(indices, len(y)))
    permutation = np.random.default_rng(0).permutation(len(y))
    moved = np.vstack(list(resampled_counts(y, 230, seed=6, positions=permutation)))
    assert np.array_equal(moved[:, permutation], counts)  # row i's count in column perm[i]


def test_a_large_split_is_resampled_in_chunks_of_bounded_memory():
    """Half a million rows: the bootstrap holds a few chunks of MAX_CELLS cells at a time,
    not (resamples x rows) matrices (40 x 500k int64 would be 160 MB each, 1.6 GB in all)."""
    rng = np.random.default_rng(0)
    n = 500_000
    y = rng.random(n) < 0.1
    s = rng.random(n)
    tracemalloc.start()
    try:
        score_intervals(y, s, 0.5, n_resamples=40, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * 8 * MAX_CELLS  # about a dozen 32 MB arrays (chunks of 8 resamples)


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.95])
def test_resampled_scores_equal_a_loop_with_sklearn(threshold):
    y, s = imbalanced()
    indices = all_indices(y, 150, seed=1, chunk=40)
    ours = resampled_scores(y, s, threshold, indices)
    expected = reference_scores(y, s, threshold, indices)
    for name in expected:
        np.testing.assert_allclose(ours[name], expected[name], rtol=0, atol=1e-12, err_msg=name)


def test_resampled_thresholds_equal_tuning_each_resample():
    y, s = imbalanced(n=120, n_pos=20)
    indices = all_indices(y, 120, seed=2, chunk=50)
    expected = [tune_threshold(y[idx], s[idx])[0] for idx in indices]
    assert np.array_equal(resampled_thresholds(y, s, indices), expected)
    # All rows, once each: the plain tuned threshold.
    assert resampled_thresholds(y, s, np.arange(len(y))[None, :])[0] == tune_threshold(y, s)[0]


def test_stable_threshold_is_the_median_of_the_resamples_optima():
    y, s = imbalanced(n=120, n_pos=20)
    optima = [tune_threshold(y[idx], s[idx])[0] for idx in all_indices(y, 301, seed=9, chunk=301)]
    threshold, spread = THRESHOLD_METHODS["bootstrap_median"](y, s, 301, 9)
    assert threshold == np.median(optima)
    low, high = np.percentile(optima, [2.5, 97.5])
    assert spread == pytest.approx({"low": low, "high": high}, abs=1e-12)
    plain, same_spread = THRESHOLD_METHODS["val_max"](y, s, 301, 9)
    assert plain == tune_threshold(y, s)[0] and same_spread == spread


def test_score_intervals_are_percentiles_of_the_resampled_scores():
    y, s = imbalanced()
    indices = all_indices(y, 400, seed=5, chunk=400)
    expected = reference_scores(y, s, 0.5, indices)
    intervals = score_intervals(y, s, 0.5, n_resamples=400, seed=5)
    for name, values in expected.items():
        low, high = np.percentile(values, [2.5, 97.5])
        assert intervals[name] == pytest.approx({"low": low, "high": high}, abs=1e-12)


def test_paired_difference_is_the_percentile_interval_of_per_resample_differences():
    y, s = imbalanced()
    other = np.clip(s + np.random.default_rng(0).normal(0, 0.1, len(s)), 0, 1)
    indices = all_indices(y, 300, seed=4, chunk=300)
    f1s = [reference_scores(y, scores, 0.5, indices, ["f1"])["f1"] for scores in (other, s)]
    diffs = f1s[0] - f1s[1]
    low, high = np.percentile(diffs, [2.5, 97.5])
    got = paired_difference(y, other, s, n_resamples=300, seed=4)
    assert got["low"] == pytest.approx(low, abs=1e-12)
    assert got["high"] == pytest.approx(high, abs=1e-12)
    assert got["difference"] == pytest.approx(
        f1_score(y, other >= 0.5) - f1_score(y, s >= 0.5), abs=1e-12
    )
    # A model against itself: no difference on any resample.
    assert paired_difference(y, s, s, 50, 0) == {"difference": 0.0, "low": 0.0, "high": 0.0}


def test_percentile_interval_by_hand():
    assert percentile_interval(np.arange(101.0)) == {"low": 2.5, "high": 97.5}
    assert percentile_interval(np.array([np.nan, 1.0, 1.0])) == {"low": 1.0, "high": 1.0}


def test_recall_interval_covers_the_population_recall():
    """Coverage sanity: the population recall is known; ~95 % of the intervals hold it."""
    rng = np.random.default_rng(11)
    n_pos, n_neg, threshold = 60, 440, 0.0
    covered = []
    for trial in range(150):
        y = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
        s = np.where(y, rng.normal(0.5, 1, len(y)), rng.normal(-0.5, 1, len(y)))
        interval = score_intervals(y, s, threshold, n_resamples=300, seed=trial)["recall"]
        covered.append(interval["low"] <= 0.6914624612740131 <= interval["high"])  # Φ(0.5)
    assert 0.88 <= np.mean(covered) <= 0.99
