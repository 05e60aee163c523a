"""Out-of-fold scores on train + val: a tuned threshold that rests on every labelled row.

The validation split alone holds 70 of Caravan's buyers, so the threshold that
maximises F1 on it moves with a handful of them (its bootstrap spread is 0.07 to 0.22).
Cross-validation scores every row of train + val with a model that did not see it:
K refits, each on the other K − 1 folds, rebalanced as the pipeline rebalances the
training split and fitted with the trained model's hyperparameters for the epochs it
ran (no early stopping: the held-out fold must stay unseen). Tuned on those scores, the
threshold rests on four times the positives (278 buyers on Caravan, not 70). The test
split is never touched. With random rebalancing (undersampling above all) each refit
sees other rows, and the out-of-fold scores of five differently calibrated models make
the threshold less steady, not more: ``bench/threshold_stability.py`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from logreg import rebalance
from logreg.frames import TARGET, Split, frame_split
from logreg.model import LogisticRegression

N_FOLDS = 5


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """A fold number in [0, n_folds) per row; each class dealt round the folds, seeded."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        folds[rows] = np.arange(len(rows)) % n_folds
    return folds


def out_of_fold_scores(
    model: LogisticRegression,
    splits: list[Split],
    positive: Any,
    rebalance_options: Mapping[str, Any],
    one_hot_groups: dict[str, list[str]] | None = None,
    n_folds: int = N_FOLDS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels == positive, P(positive)) of every row of ``splits``, each from a refit without it.

    ``rebalance_options`` are the ``rebalance`` section's keys (strategy, ratio,
    k_neighbors, seed), applied to each training fold.
    """
    frame = pd.concat(
        [pd.DataFrame(s.X, columns=s.feature_names).assign(**{TARGET: s.y}) for s in splits],
        ignore_index=True,
    )
    y = frame[TARGET].to_numpy()
    folds = stratified_folds(y, n_folds, seed)
    params = model.get_params() | {"epochs": max(int(model.n_iter_), 1), "patience": None}
    scores = np.empty(len(frame))
    for fold in range(n_folds):
        fit_on = frame_split(
            rebalance.rebalance(
                frame[folds != fold].reset_index(drop=True),
                **rebalance_options,
                one_hot_groups=one_hot_groups,
            )
        )
        refit = LogisticRegression(**params)
        refit.fit(fit_on.X, fit_on.y, sample_weight=fit_on.sample_weight)
        held_out = frame.loc[folds == fold].drop(columns=TARGET).to_numpy(dtype=np.float64)
        column = list(refit.classes_).index(positive)
        scores[folds == fold] = refit.predict_proba(held_out)[:, column]
    return y == positive, scores
