"""Curves from summed score counts (engines/score_counts.py) against scikit-learn's exact ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from logreg.engines.score_counts import (
    average_precision,
    bin_edges,
    curves,
    f1,
    roc_auc,
    score_counts,
)


def _partitioned_counts(scores, y, parts=3):
    """Counted per partition and added, as the partitions of a Dask evaluate would be."""
    return sum(
        score_counts(s, t)
        for s, t in zip(np.array_split(scores, parts), np.array_split(y, parts), strict=True)
    )


def test_scores_on_bin_edges_give_scikit_learns_exact_curves():
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.07
    # Scores that sit on bin edges, with ties, the positives higher on average.
    index = rng.integers(20_000, 50_000, size=3000) + 8_000 * y
    scores = bin_edges()[index]
    c = curves(_partitioned_counts(scores, y))

    assert roc_auc(c) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert average_precision(c) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)
    # The confusion counts at 0.5, an edge: predicted positive when the score is ≥ 0.5.
    at_half = np.searchsorted(-c.thresholds, -0.5)
    assert c.thresholds[at_half] == 0.5
    _tn, fp, _fn, tp = skm.confusion_matrix(y, scores >= 0.5).ravel()
    assert (c.tp[at_half], c.fp[at_half]) == (tp, fp)
    assert f1(c)[at_half] == pytest.approx(skm.f1_score(y, scores >= 0.5), abs=1e-12)


def test_continuous_scores_of_a_fitted_model_are_within_the_bins_resolution():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    scores = LogisticRegression(C=0.05).fit(X, y).predict_proba(X)[:, 1]
    c = curves(_partitioned_counts(scores, y == 1))

    assert roc_auc(c) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-4)
    assert average_precision(c) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-4)
    # The best F1 over edges is within one row of the exact best over all thresholds.
    precision, recall, _ = skm.precision_recall_curve(y, scores)
    exact_best = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-300))
    assert exact_best - 2 / len(y) <= f1(c).max() <= exact_best + 1e-12
