"""Metrics against values worked out by hand, and threshold tuning against brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from logreg import LogisticRegression
from logreg.frames import minority_class
from logreg.metrics import (
    baseline_sklearn,
    binary_metrics,
    classification_report,
    confusion,
    cross_entropy,
    evaluate_scores,
    f1_step,
    majority_accuracy,
    multiclass_metrics,
    predicted_positives,
    thresholded_metrics,
    tune_threshold,
)

# Eight e-mails, three of them spam. Sorted by score: 0.9 S, 0.7 h, 0.6 S, 0.4 h, 0.3 S, ...
Y = np.array(["spam", "spam", "spam", "ham", "ham", "ham", "ham", "ham"])
P_SPAM = np.array([0.9, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.05])


def test_binary_metrics_match_a_hand_counted_confusion_matrix():
    m = binary_metrics(Y == "spam", P_SPAM, threshold=0.5)
    # At 0.5: spam predicted for 0.9 (S), 0.6 (S), 0.7 (h) -> TP 2, FP 1, FN 1, TN 4.
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # ROC-AUC: spam-over-ham pairs ranked right, 0.9 beats 5, 0.6 beats 4, 0.3 beats 3.
    assert m["roc_auc"] == pytest.approx(12 / 15)
    # Average precision: precision at each spam's rank (1/1, 2/3, 3/5), each a third of recall.
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    p_true = [0.9, 0.6, 0.3, 0.3, 0.6, 0.8, 0.9, 0.95]  # probability given to the actual class
    assert m["log_loss"] == pytest.approx(-sum(math.log(p) for p in p_true) / 8)
    assert m["brier"] == pytest.approx(
        (0.01 + 0.16 + 0.49 + 0.49 + 0.16 + 0.04 + 0.01 + 0.0025) / 8
    )
    assert m["prevalence"] == pytest.approx(3 / 8)


def test_binary_metrics_at_another_threshold_and_with_no_predicted_positives():
    m = binary_metrics(Y == "spam", P_SPAM, threshold=0.25)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 2, 0, 3)
    assert m["recall"] == 1.0 and m["precision"] == pytest.approx(3 / 5)
    none = binary_metrics(Y == "spam", P_SPAM, threshold=0.99)
    assert none["precision"] == 0.0 and none["recall"] == 0.0 and none["f1"] == 0.0


def test_evaluate_scores_uses_the_named_positive_class_and_reports_both_classes():
    classes = np.array(["ham", "spam"])
    proba = np.column_stack([1 - P_SPAM, P_SPAM])
    m = evaluate_scores(Y, proba, classes, positive="spam")
    assert m["f1"] == pytest.approx(2 / 3)
    # ham as a class: predicted ham for 5 rows, 4 of them ham; 5 hams, 4 found.
    assert m["per_class"]["ham"]["precision"] == pytest.approx(4 / 5)
    assert m["per_class"]["ham"]["recall"] == pytest.approx(4 / 5)
    assert m["per_class"]["spam"]["support"] == 3
    flipped = evaluate_scores(Y, proba, classes, positive="ham")
    assert flipped["f1"] == pytest.approx(4 / 5)
    with pytest.raises(ValueError, match="positive"):
        evaluate_scores(Y, proba, classes)


def test_multiclass_macro_and_weighted_by_hand():
    classes = np.array(["a", "b", "c"])
    y = np.array(["a", "a", "b", "c"])
    proba = np.array([[0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    m = multiclass_metrics(y, proba, classes)  # predicted a, b, b, c
    assert m["accuracy"] == pytest.approx(3 / 4)
    # Per class F1: a (P 1, R 1/2) 2/3; b (P 1/2, R 1) 2/3; c 1.
    assert m["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["f1_weighted"] == pytest.approx((2 * 2 / 3 + 2 / 3 + 1) / 4)
    assert m["precision_macro"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    onehot = (y[:, None] == classes).astype(float)
    assert m["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.3, 0.7, 0.8])))
    report = evaluate_scores(y, proba, classes)["per_class"]
    assert report["a"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": pytest.approx(2 / 3),
        "support": 2,
    }


def test_confusion_and_report_follow_the_label_order():
    y_pred = np.array(["spam", "spam", "ham", "spam", "ham", "ham", "ham", "ham"])
    assert confusion(Y, y_pred, np.array(["ham", "spam"])).tolist() == [[4, 1], [1, 2]]
    report = classification_report(Y, y_pred, np.array(["ham", "spam"]))
    assert list(report) == ["ham", "spam"]


def test_tune_threshold_finds_the_f1_maximum_of_a_constructed_case():
    y = np.array([1, 1, 0, 1, 0, 0, 0], dtype=bool)
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.4, 0.3, 0.1])
    # Cutting below 0.95, 0.9, 0.8, 0.7, 0.4: F1 = 2/4, 4/5, 4/6, 6/7, 6/8 -> best at 0.7.
    threshold, best = tune_threshold(y, scores)
    assert threshold == 0.7
    assert best == pytest.approx(6 / 7)


def test_tune_threshold_agrees_with_brute_force_including_tied_scores():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.random(60) < 0.3
        y[0] = True
        scores = np.round(rng.random(60) * 0.6 + 0.4 * y, 1)  # coarse: many ties
        threshold, best = tune_threshold(y, scores)
        brute = {t: f1_score(y, scores >= t) for t in np.unique(scores)}
        assert best == pytest.approx(max(brute.values()))
        assert f1_score(y, scores >= threshold) == pytest.approx(best)


def test_tune_threshold_rejects_a_split_without_positives():
    with pytest.raises(ValueError, match="no positive"):
        tune_threshold(np.zeros(4, dtype=bool), np.linspace(0, 1, 4))


def test_cross_entropy_is_sklearn_log_loss_unclipped():
    from sklearn.metrics import log_loss

    assert cross_entropy(Y == "spam", P_SPAM) == pytest.approx(
        log_loss(Y == "spam", P_SPAM), rel=1e-12
    )
    # −log p of the one spam e-mail alone: ln(1/0.9).
    assert cross_entropy(np.array([True]), np.array([0.9])) == pytest.approx(math.log(1 / 0.9))
    with np.errstate(divide="ignore"):
        assert cross_entropy(np.array([True]), np.array([0.0])) == math.inf  # no clipping


def test_one_flipped_example_moves_f1_by_f1_step():
    # At 0.5: TP 2 (0.9, 0.6), FP 1 (0.7), FN 1; precision 2/3, recall 2/3, 3 flagged.
    scores = thresholded_metrics(Y == "spam", P_SPAM >= 0.5)
    flagged = predicted_positives(scores["precision"], scores["recall"], 3)
    assert flagged == pytest.approx(3)
    # Flag the missed spam (0.3) instead of the ham (0.7): TP 3, FP 0, still 3 flagged.
    swapped = (P_SPAM >= 0.5) | (P_SPAM == 0.3)
    swapped[P_SPAM == 0.7] = False
    moved = thresholded_metrics(Y == "spam", swapped)["f1"] - scores["f1"]
    assert moved == pytest.approx(f1_step(flagged, 3))


def test_minority_and_majority_baseline():
    assert minority_class(Y) == "spam"
    assert minority_class(np.array([0, 1, 1, 2, 2])) == 0
    assert minority_class(np.array(["No", "Yes", "No", "Yes"])) == "Yes"  # ties: the last label
    assert majority_accuracy(Y, np.array(["ham", "spam", "ham", "ham"])) == pytest.approx(3 / 4)


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(X @ [1.5, -1.0, 0.0] - 1.0))), "yes", "no")
    return X, y, np.where(y == "yes", 2.0, 1.0)


def test_baseline_sklearn_reaches_our_newton_optimum_with_matched_regularisation():
    X, y, w = _data()
    ours = LogisticRegression(solver="newton", penalty="l2", alpha=1e-2, epochs=50, tol=1e-10)
    ours.fit(X, y, sample_weight=w)
    result = baseline_sklearn(X, y, w, X, y, ours, positive="yes")
    # Both minimise the same objective: equal optima, scored by OUR objective function.
    assert result["C"] == pytest.approx(1 / (1e-2 * len(X)))
    assert result["objective"] == pytest.approx(result["objective_ours"], rel=1e-6)
    assert result["f1"] == pytest.approx(result["f1_ours"])


@pytest.mark.parametrize("penalty", ["l1", "elasticnet", "none"])
def test_baseline_sklearn_handles_every_penalty(penalty):
    X, y, w = _data(120, seed=1)
    ours = LogisticRegression(penalty=penalty, alpha=1e-2, batch_size=32, epochs=20, seed=0)
    ours.fit(X, y, sample_weight=w)
    result = baseline_sklearn(X, y, w, X, y, ours, positive="yes")
    assert 0.0 < result["f1"] <= 1.0
    assert np.isfinite(result["objective"])
    # sklearn's solver is exact, ours ran 20 SGD epochs: its optimum is no worse.
    assert result["objective"] <= result["objective_ours"] + 1e-3
