"""Every number of the study: the fits, their statistics and the figures' data.

Pure functions of splits and tables; classification metrics come from
:mod:`logreg.metrics`. :mod:`logreg.study.document` turns the results into prose.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from logreg import LogisticRegression
from logreg.frames import Split
from logreg.metrics import (
    binary_metrics,
    cross_entropy,
    f1_step,
    predicted_positives,
    thresholded_metrics,
    tune_threshold,
)
from logreg.model.equations import sigmoid
from logreg.model.newton import newton_solve
from logreg.model.prox_newton import prox_newton_solve
from logreg.model.rows import InMemoryRows
from logreg.preprocess import Preprocessing, one_hot_name

BATCH_SIZES = (16, 64, 256, "full")
SEEDS = (0, 1, 2, 3, 4)
STUDY_EPOCHS = 60  # fixed, no early stopping, so the curves of every batch size line up


# ------------------------------------------------------------- 1. the coefficients


def wald_table(train: Split, alpha: float, prep: Preprocessing) -> pd.DataFrame:
    """The Newton fit's Wald table, each feature's train SD in its own units, odds per unit.

    Features are standardised, so a coefficient is the change in log-odds for a
    one-standard-deviation increase, and exp(coefficient) multiplies the odds; so
    exp(coefficient/sd) is the odds ratio per unit of the feature (``or_per_unit``, with
    ``or_per_unit_low`` and ``or_per_unit_high`` from the coefficient's interval).
    """
    frame = pd.DataFrame(train.X, columns=train.feature_names)
    model = LogisticRegression(solver="newton", penalty="l2", alpha=alpha)
    table = model.fit(frame, train.y, sample_weight=train.sample_weight).summary()
    table["sd"] = pd.Series({f.name: f.std for f in prep.features})
    per_unit = np.exp(table[["coef", "ci_low", "ci_high"]].div(table.sd, axis=0))
    table[["or_per_unit", "or_per_unit_low", "or_per_unit_high"]] = per_unit.to_numpy()
    table["vif"] = variance_inflation(train.X, train.feature_names)
    return table


def variance_inflation(X: np.ndarray, names: list[str]) -> pd.Series:
    """VIF_j = 1/(1 − R_j²), R_j² from the least-squares fit of column j on the others.

    The lesson assumes no multicollinearity; the VIF measures how far each feature is
    from that. In a linear model a VIF of v multiplies the variance of the coefficient
    by v against uncorrelated features. Exact collinearity gives inf.
    """
    design = np.column_stack([np.ones(len(X)), X])
    vif = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        others = np.delete(design, j + 1, axis=1)
        fit, *_ = np.linalg.lstsq(others, X[:, j], rcond=None)
        residual = X[:, j] - others @ fit
        unexplained = residual @ residual / np.sum((X[:, j] - X[:, j].mean()) ** 2)  # 1 − R²
        vif[j] = 1.0 / unexplained if unexplained > 1e-12 else math.inf
    return pd.Series(vif, index=names)


def strongest_evidence(table: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """The intercept, then the ``top`` features with the smallest p-values."""
    features = table.drop(index="intercept")
    return pd.concat([table.loc[["intercept"]], features.sort_values("p_value").head(top)])


def odds_reading(evidence: pd.DataFrame) -> dict[str, Any]:
    """The strongest feature of :func:`strongest_evidence`, and the odds it moves.

    At the mean of every (standardised) feature the log-odds are the intercept, so the
    odds are exp(intercept); one SD more of the feature multiplies them by its odds ratio.
    """
    feature = evidence.drop(index="intercept").index[0]
    odds = math.exp(evidence.loc["intercept", "coef"])
    return {
        "feature": feature,
        "odds_at_mean": odds,
        "probability_at_mean": odds / (1 + odds),
        "odds_one_sd_higher": odds * evidence.loc[feature, "odds_ratio"],
    }


def category_effects(
    table: pd.DataFrame, train: Split, prep: Preprocessing, positive: Any
) -> dict[str, pd.DataFrame]:
    """Each one-hot encoded column's categories against its reference level (row 1).

    A category's indicator goes from 0 to 1, so the odds ratio per unit from the Wald
    ``table`` is the odds ratio of that category against the reference level, the other
    features held fixed. The rows and positives per category come from the standardised
    indicators of ``train`` (1 is above 0).
    """
    frame = pd.DataFrame(train.X, columns=train.feature_names)
    is_positive = train.y == positive
    per_unit = table[["or_per_unit", "or_per_unit_low", "or_per_unit_high"]]
    references = {c.name: c.categories[0] for c in prep.columns if c.categories}
    effects = {}
    for column, names in prep.one_hot_groups().items():
        indicators = frame[names].to_numpy() > 0.0
        members = [~indicators.any(axis=1), *indicators.T]  # the reference: no indicator set
        ratios = np.vstack([np.ones((1, 3)), per_unit.loc[names].to_numpy()])
        effects[column] = pd.DataFrame(
            {
                "rows": [int(member.sum()) for member in members],
                "positives": [int((member & is_positive).sum()) for member in members],
                "odds_ratio": ratios[:, 0],
                "ci_low": ratios[:, 1],
                "ci_high": ratios[:, 2],
            },
            index=pd.Index([one_hot_name(column, references[column]), *names], name="category"),
        )
    return effects


# ------------------------------------------------------ 3. cross-entropy and likelihood


def likelihood_check(train: Split, positive: Any) -> dict[str, float]:
    """The unpenalised objective at its optimum against statsmodels' log-likelihood.

    Minimising the mean cross-entropy is maximising the likelihood: J(θ̂) = −ℓ(θ̂)/n.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    model = LogisticRegression(solver="newton", penalty="none").fit(train.X, train.y)
    y01 = (train.y == positive).astype(float)
    with warnings.catch_warnings():
        # Caravan has collinear columns: statsmodels flags slow convergence, yet its
        # log-likelihood agrees with ours to ~1e-10.
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = sm.Logit(y01, sm.add_constant(train.X)).fit(
            disp=0, method="newton", maxiter=100
        )
    p = model.predict_proba(train.X)[:, list(model.classes_).index(positive)]
    return {
        "objective": model.objective(train.X, train.y),
        "statsmodels_neg_mean_llf": -reference.llf / len(y01),
        "by_hand": cross_entropy(y01, p),
        "n": float(len(y01)),
    }


# ------------------------------------------------------------- 4. batch size


def batch_size_study(
    train: Split,
    val: Split,
    test: Split,
    positive: Any,
    model_params: dict[str, Any],
    learning_rate: float | str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every batch size with several seeds for a fixed number of epochs.

    Returns the per-epoch histories (long format) and one row per fit with the final
    objective, the seconds it took and test F1 at the threshold tuned on validation.
    """
    histories, finals = [], []
    for batch_size in BATCH_SIZES:
        for seed in SEEDS:
            model = LogisticRegression(
                **model_params,
                batch_size=batch_size,
                learning_rate=learning_rate,
                epochs=STUDY_EPOCHS,
                tol=0.0,
                patience=None,
                seed=seed,
            )
            started = time.perf_counter()
            model.fit(train.X, train.y, sample_weight=train.sample_weight, X_val=val.X, y_val=val.y)
            seconds = time.perf_counter() - started
            column = list(model.classes_).index(positive)
            threshold, _ = tune_threshold(val.y == positive, model.predict_proba(val.X)[:, column])
            predicted = model.predict_proba(test.X)[:, column] >= threshold
            f1 = thresholded_metrics(test.y == positive, predicted)["f1"]
            for record in model.history_:
                histories.append({"batch_size": str(batch_size), "seed": seed, **record})
            finals.append(
                {
                    "batch_size": str(batch_size),
                    "seed": seed,
                    "train_objective": model.history_[-1]["train_loss"],
                    "best_val_loss": min(r["val_loss"] for r in model.history_),
                    "test_f1_tuned": f1,
                    "seconds": seconds,
                }
            )
    return pd.DataFrame(histories), pd.DataFrame(finals)


def batch_size_summary(finals: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size, in study order: means and seed-to-seed SDs, median seconds."""
    return finals.groupby("batch_size", sort=False).agg(
        objective=("train_objective", "mean"),
        spread=("train_objective", "std"),
        best_val_loss=("best_val_loss", "mean"),
        f1=("test_f1_tuned", "mean"),
        f1_spread=("test_f1_tuned", "std"),
        seconds=("seconds", "median"),
    )


def loss_curves(histories: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per batch size, the training loss and elapsed seconds per epoch, averaged over seeds."""
    return {
        str(batch_size): group.groupby("epoch")[["train_loss", "elapsed"]].mean()
        for batch_size, group in histories.groupby("batch_size", sort=False)
    }


# ------------------------------------------------------------- the penalty: L1 against L2

PATH_ALPHAS = tuple(float(a) for a in np.logspace(-4, 0, 9))  # 1e-4 … 1, half a decade apart
PATH_PENALTIES = ("l1", "l2")


def regularisation_path(
    train: Split,
    val: Split,
    positive: Any,
    alphas: tuple[float, ...] = PATH_ALPHAS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every penalty in :data:`PATH_PENALTIES` at every α, each to its exact optimum.

    L1 by proximal Newton (:mod:`logreg.model.prox_newton`), whose coordinate updates
    set weights to exactly zero at the optimum; L2 by Newton. Exact optima, not SGD's
    approximations, so that a weight counted as zero is zero at that α and not an
    accident of where the iterates stopped. Returns one row per fit (penalty, alpha,
    nonzero coefficients, validation F1 at 0.5 and at the F1-best threshold on
    validation, validation PR-AUC) and the coefficients, a column per fit
    (``<penalty> <alpha>``), in log-odds of ``positive``.
    """
    rows, coefficients = [], {}
    is_positive_train = (train.y == positive).astype(float)[:, None]
    weights = np.ones(len(train.y)) if train.sample_weight is None else train.sample_weight
    blocks = InMemoryRows.of(np.asarray(train.X, dtype=np.float64), is_positive_train, weights)
    settings = {"fit_intercept": True, "max_time": None, "rng": np.random.default_rng(0)}
    for penalty in PATH_PENALTIES:
        for alpha in alphas:
            if penalty == "l1":
                W, b, _ = prox_newton_solve(
                    blocks, alpha=alpha, l1_ratio=1.0, max_iter=200, tol=1e-10, **settings
                )
            else:
                W, b, _ = newton_solve(blocks, alpha=alpha, max_iter=200, tol=1e-20, **settings)
            scores = sigmoid(np.asarray(val.X, dtype=np.float64) @ W[:, 0] + b[0])
            is_positive = val.y == positive
            at_half = binary_metrics(is_positive, scores)
            _, f1_tuned = tune_threshold(is_positive, scores)
            coefficients[f"{penalty} {alpha:g}"] = W[:, 0]
            rows.append(
                {
                    "penalty": penalty,
                    "alpha": alpha,
                    "nonzero": int(np.count_nonzero(W)),
                    "val_f1": at_half["f1"],
                    "val_f1_tuned": f1_tuned,
                    "val_pr_auc": at_half["pr_auc"],
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(coefficients, index=train.feature_names)


def l1_kept_features(
    path: pd.DataFrame, coefficients: pd.DataFrame, shown: int = 3, top: int = 12
) -> dict[float, pd.Series]:
    """The features L1 keeps at the ``shown`` largest α that keep any, largest |coef| first.

    Each value is a Series of at most ``top`` coefficients (log-odds per SD) by feature.
    """
    l1 = path[(path.penalty == "l1") & (path.nonzero > 0)].sort_values("alpha", ascending=False)
    kept = {}
    for alpha in l1.alpha.head(shown):
        coef = coefficients[f"l1 {alpha:g}"]
        coef = coef[coef != 0]
        kept[float(alpha)] = coef.reindex(coef.abs().sort_values(ascending=False).index).head(top)
    return kept


# ------------------------------------------------------------- the default sweep


def sweep_summary(sweep: pd.DataFrame, n_positive_test: int) -> dict[str, Any]:
    """Each strategy's best run by validation F1 (that same run's test figures), and gaps.

    ``gap_at_half`` and ``gap_tuned`` are the winner's test F1 minus that of the best run
    without rebalancing (None when the sweep has none); ``flagged`` is how many test rows
    the winner predicts positive and ``f1_step`` how far one of them moves its F1.
    ``noise`` counts the jobs whose test F1 the sweep judged against its #1 and those
    outside the noise (None for a table without verdicts).
    """
    best_runs = sweep.loc[sweep.groupby("rebalance.strategy")["val_f1"].idxmax()]
    best_runs = best_runs.sort_values("val_f1", ascending=False)
    winner, runner_up = best_runs.iloc[0], best_runs.iloc[1]
    gap_at_half = gap_tuned = None
    if "none" in set(best_runs["rebalance.strategy"]):
        none = best_runs[best_runs["rebalance.strategy"] == "none"].iloc[0]
        gap_at_half = winner.test_f1 - none.test_f1
        gap_tuned = winner.test_f1_tuned - none.test_f1_tuned
    flagged = predicted_positives(winner.test_precision, winner.test_recall, n_positive_test)
    noise = None
    if "vs_best" in sweep:  # python -m logreg.sweep's verdicts against its #1
        judged = sweep[sweep["vs_best"].isin(["within noise", "worse", "better"])]
        noise = {
            "judged": len(judged),
            "beyond": int((judged["vs_best"] != "within noise").sum()),
            "paired": bool((judged["noise_test"] == "paired").all()),
        }
    return {
        "noise": noise,
        "best_runs": best_runs,
        "runner_up_val_gap": winner.val_f1 - runner_up.val_f1,
        "gap_at_half": gap_at_half,
        "gap_tuned": gap_tuned,
        "n_positive_test": n_positive_test,
        "flagged": flagged,
        "f1_step": f1_step(flagged, n_positive_test),
    }
