"""How a classifier is judged: precision, recall and F1 on the minority class, not accuracy.

Pure functions of arrays. Binary problems treat the MINORITY class of the training
split as positive (the spam-like class); multiclass problems report macro and weighted
averages plus per-class figures. Every result is a flat dict of floats, ready for
``reports/metrics.json`` and for MLflow (``test/f1``, ``val/recall``, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from logreg import bootstrap
from logreg.frames import plain_label


def majority_accuracy(y_train: np.ndarray, y_true: np.ndarray) -> float:
    """Accuracy of always predicting the most frequent training label: the bar to beat."""
    labels, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_true == labels[np.argmax(counts)]))


def tune_threshold(y_true: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold t maximising F1 of ``scores >= t`` over the distinct scores; (t, F1).

    ``y_true`` is boolean (positive = True). Exact: sort scores in descending order; cutting
    after each run of equal scores gives every distinct decision, and
    F1 = 2·TP / (TP + FP + P) with P the number of positives. Ties go to the highest t.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"tune_threshold: y_true {y.shape} and scores {s.shape} must be equal 1-D")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("tune_threshold: y_true has no positive samples; F1 is undefined")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    predicted = np.arange(1, len(s) + 1)
    last_of_run = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # cut only between distinct scores
    f1 = 2.0 * tp[last_of_run] / (predicted[last_of_run] + n_pos)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return float(s_sorted[last_of_run][best]), float(f1[best])


def stable_threshold(
    y_true: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, dict[str, float]]:
    """The median over bootstrap resamples of the F1-maximising threshold; (t, spread).

    The plain maximum of :func:`tune_threshold` sits on whichever few positives happen to
    fall just above it, so a small change of the model or the data can move it far (on
    Caravan from 0.117 to 0.211). The median of the maxima of ``n_resamples`` stratified
    resamples of the same split moves little. ``spread`` holds the 2.5 and 97.5
    percentiles of those maxima (``low``, ``high``): where the best threshold could lie.
    """
    resampled = bootstrap.threshold_samples(y_true, scores, n_resamples, seed)
    return float(np.median(resampled)), bootstrap.percentile_interval(resampled)


def max_threshold(
    y_true: np.ndarray, scores: np.ndarray, n_resamples: int, seed: int
) -> tuple[float, dict[str, float]]:
    """:func:`tune_threshold`'s plain F1 maximum; the spread as in :func:`stable_threshold`."""
    _, spread = stable_threshold(y_true, scores, n_resamples, seed)
    return tune_threshold(y_true, scores)[0], spread


# evaluate.threshold_method: how the threshold is tuned, on the validation split's scores
# or, for those in OUT_OF_FOLD, on out-of-fold scores of train + val (logreg.crossval).
THRESHOLD_METHODS = {
    "cv": max_threshold,
    "bootstrap_median": stable_threshold,
    "val_max": max_threshold,
}
OUT_OF_FOLD = frozenset({"cv"})


def binary_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Threshold-free and thresholded metrics; ``y_true`` boolean, ``proba`` = P(positive).

    Predicts positive when ``proba >= threshold``. Precision of an empty prediction is 0.
    """
    from sklearn import metrics as skm  # slow to import: only where a score is computed

    y = np.asarray(y_true, dtype=bool)
    p = np.asarray(proba, dtype=np.float64)
    out = {"threshold": float(threshold), **thresholded_metrics(y, p >= threshold)}
    both = 0 < y.sum() < len(y)
    out["roc_auc"] = float(skm.roc_auc_score(y, p)) if both else float("nan")
    out["pr_auc"] = float(skm.average_precision_score(y, p)) if y.any() else float("nan")
    out["log_loss"] = float(skm.log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[False, True]))
    out["brier"] = float(np.mean((p - y) ** 2))
    out["prevalence"] = float(y.mean())
    return out


def thresholded_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and the confusion counts of boolean predictions."""
    y, yhat = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    return confusion_metrics(
        int(np.sum(y & yhat)),
        int(np.sum(~y & yhat)),
        int(np.sum(y & ~yhat)),
        int(np.sum(~y & ~yhat)),
    )


def confusion_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """:func:`thresholded_metrics` from the four confusion counts (summed over partitions)."""
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return {
        "accuracy": (tp + tn) / (tp + fp + fn + tn) if tp + fp + fn + tn else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def cross_entropy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean binary cross-entropy −(1/n)·Σ [y·log p + (1 − y)·log(1 − p)], ``proba`` = P(positive).

    Straight from the definition, unclipped (a label given probability 0 costs inf), so
    it can be held against the fitted objective to 1e-12; :func:`binary_metrics`' log
    loss clips p to [1e-15, 1 − 1e-15] for reporting.
    """
    y = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(proba, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def predicted_positives(precision: float, recall: float, n_positive: int) -> float:
    """Rows predicted positive, from precision and recall: TP = recall·P = precision·predicted."""
    return recall * n_positive / precision


def f1_step(n_predicted: float, n_positive: int) -> float:
    """How far one example moves F1: 2 / (predicted + actual positives).

    F1 = 2·TP / (predicted + actual positives). Flagging one positive in place of one
    negative changes TP by one and neither count, so this is F1's resolution on a split
    of this size.
    """
    return 2.0 / (n_predicted + n_positive)


def multiclass_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    """Accuracy, macro and weighted precision/recall/F1, one-vs-rest AUCs, log loss, Brier."""
    from sklearn import metrics as skm  # slow to import: only where a score is computed

    classes = np.asarray(classes)
    y = np.asarray(y_true)
    p = np.asarray(proba, dtype=np.float64)
    y_pred = classes[np.argmax(p, axis=1)]
    onehot = (y[:, None] == classes[None, :]).astype(np.float64)
    out: dict[str, float] = {"accuracy": float(np.mean(y_pred == y))}
    for average in ("macro", "weighted"):
        prec, rec, f1, _ = skm.precision_recall_fscore_support(
            y, y_pred, labels=classes, average=average, zero_division=0
        )
        out |= {f"precision_{average}": prec, f"recall_{average}": rec, f"f1_{average}": f1}
    present = onehot.sum(axis=0) > 0
    out["roc_auc_macro"] = (
        float(skm.roc_auc_score(onehot[:, present], p[:, present], average="macro"))
        if present.all()
        else float("nan")
    )
    out["pr_auc_macro"] = float(
        skm.average_precision_score(onehot[:, present], p[:, present], average="macro")
    )
    out["log_loss"] = float(skm.log_loss(y, np.clip(p, 1e-15, 1.0), labels=classes))
    out["brier"] = float(np.mean(np.sum((p - onehot) ** 2, axis=1)))
    return {k: float(v) for k, v in out.items()}


def confusion(y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Counts of shape (n_labels, n_labels): rows actual, columns predicted, in ``labels`` order."""
    from sklearn import metrics as skm  # slow to import: only where a score is computed

    return skm.confusion_matrix(y_true, y_pred, labels=labels)


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, labels: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per-class precision, recall, F1 and support, keyed by the label as a string."""
    from sklearn import metrics as skm  # slow to import: only where a score is computed

    prec, rec, f1, support = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return per_class_report(labels, prec, rec, f1, support)


def per_class_report(
    labels: Any, precision: Any, recall: Any, f1: Any, support: Any
) -> dict[str, dict[str, float]]:
    """:func:`classification_report`'s dict from the per-class values, in ``labels`` order."""
    return {
        str(plain_label(label)): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }


def evaluate_scores(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    positive: Any | None = None,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """All metrics of one split: flat floats plus a ``per_class`` report; binary needs ``positive``.

    ``proba`` has shape (n_samples, n_classes) in ``classes`` order. Binary predictions
    use ``P(positive) >= threshold``; multiclass predictions the most probable class.
    """
    classes = np.asarray(classes)
    y = np.asarray(y_true)
    if len(classes) == 2:
        if positive is None:
            raise ValueError("evaluate_scores: binary problems need the positive class")
        pos_col = _column_of(classes, positive)
        p = proba[:, pos_col]
        out: dict[str, Any] = binary_metrics(y == positive, p, threshold)
        negative = classes[1 - pos_col]
        y_pred = np.where(p >= threshold, positive, negative).astype(classes.dtype)
    else:
        out = multiclass_metrics(y, proba, classes)
        y_pred = classes[np.argmax(proba, axis=1)]
    out["per_class"] = classification_report(y, y_pred, classes)
    return out


def positive_scores(proba: np.ndarray, classes: np.ndarray, positive: Any) -> np.ndarray:
    """The column of ``proba`` that belongs to ``positive``."""
    return np.asarray(proba)[:, _column_of(np.asarray(classes), positive)]


def baseline_sklearn(
    X_train: np.ndarray,
    y_train: np.ndarray,
    sample_weight: np.ndarray | None,
    X_eval: np.ndarray,
    y_eval: np.ndarray,
    ours: Any,
    positive: Any | None = None,
    seed: int = 0,
    max_iter: int = 5000,
) -> dict[str, float]:
    """scikit-learn's LogisticRegression with matched regularisation, beside our fitted model.

    Matching: C = 1/(alpha·n_samples); l2 uses lbfgs, l1 and elasticnet use saga with
    the same l1_ratio, none uses C = inf. Both coefficient vectors are scored with OUR
    objective on the same weighted training data, so a lower ``objective`` means a better
    optimum; ``f1`` is each model's F1 on ``(X_eval, y_eval)`` at threshold 0.5.
    """
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from logreg import LogisticRegression
    from logreg.model.parameters import effective_penalty

    n = len(X_train)
    params = ours.get_params() if hasattr(ours, "get_params") else _hyperparams(ours)
    alpha, ratio = effective_penalty(
        params.get("penalty", "l2"), params.get("alpha", 0.0), params.get("l1_ratio", 0.5)
    )
    if alpha == 0.0:
        C, ratio, solver = np.inf, 0.0, "lbfgs"
    else:
        C, solver = 1.0 / (alpha * n), "lbfgs" if ratio == 0.0 else "saga"
    sk = SkLogisticRegression(
        C=C,
        l1_ratio=ratio,
        solver=solver,
        fit_intercept=bool(params.get("fit_intercept", True)),
        max_iter=max_iter,
        tol=1e-8,
        random_state=seed,
    )
    sk.fit(X_train, y_train, sample_weight=sample_weight)

    # Our objective at sklearn's optimum: a copy of our model carrying sklearn's weights.
    theirs = LogisticRegression(**params)
    _copy_fitted(ours, theirs)
    theirs.coef_ = np.asarray(sk.coef_, dtype=np.float64).reshape(np.shape(ours.coef_))
    theirs.intercept_ = np.asarray(sk.intercept_, dtype=np.float64).reshape(
        np.shape(ours.intercept_)
    )

    def f1_of(model: Any) -> float:
        proba = model.predict_proba(X_eval)
        scores = evaluate_scores(y_eval, proba, model.classes_, positive)
        return float(scores["f1"] if "f1" in scores else scores["f1_macro"])

    return {
        "f1": f1_of(sk),
        "f1_ours": f1_of(ours),
        "objective": float(theirs.objective(X_train, y_train, sample_weight)),
        "objective_ours": float(ours.objective(X_train, y_train, sample_weight)),
        "n_iter": float(np.max(sk.n_iter_)),
        "C": float(C),
    }


def _copy_fitted(src: Any, dst: Any) -> None:
    # Fitted attributes (classes_, n_features_in_, ...) other than the weights themselves.
    for name, value in vars(src).items():
        if name.endswith("_") and not name.startswith("__"):
            setattr(dst, name, value)


def _hyperparams(model: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(model).items() if not k.endswith("_") and not k.startswith("_")}


def _column_of(classes: np.ndarray, label: Any) -> int:
    hits = np.flatnonzero(classes == label)
    if len(hits) != 1:
        raise ValueError(f"class {label!r} is not one of the model's classes {classes.tolist()}")
    return int(hits[0])
