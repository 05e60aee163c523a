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
from logreg.frames import TARGET, WEIGHT, Split
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
    y = np.concatenate([split.y for split in splits])
    folds = stratified_folds(y, n_folds, seed)
    params = model.get_params() | {"epochs": max(int(model.n_iter_), 1), "patience": None}
    scores = np.empty(len(y))
    for fold in range(n_folds):
        held_out = folds == fold
        fit_on = rebalance.rebalance(
            fold_frame(splits, ~held_out, y), **rebalance_options, one_hot_groups=one_hot_groups
        )
        refit = LogisticRegression(**params)
        # The features go to fit as a frame: a view of the fold's array when the
        # rebalancing kept its rows (none, class_weight), so the refit's shuffled copy is
        # the only other copy of the fold (a Split would be one more: 490 MB at 2M rows).
        refit.fit(
            fit_on.drop(columns=[TARGET, WEIGHT]),
            fit_on[TARGET].to_numpy(),
            sample_weight=fit_on[WEIGHT].to_numpy(),
        )
        del fit_on
        column = list(refit.classes_).index(positive)
        # Column-major, as a frame's rows were: the same BLAS path, the same scores to the
        # bit. A temporary, freed before the next fold's rows are gathered.
        scores[held_out] = refit.predict_proba(np.asfortranarray(rows_of(splits, held_out)))[
            :, column
        ]
    return y == positive, scores


def rows_of(splits: list[Split], rows: np.ndarray) -> np.ndarray:
    """The features of the splits stacked, at the boolean mask ``rows`` over all of them:
    one array of the selected rows, with no stacked copy of the splits on the way."""
    starts = np.cumsum([0] + [len(split.y) for split in splits])
    # Written into one array, split by split: concatenating each split's selection
    # would hold the selected rows twice.
    selected = np.empty((int(np.count_nonzero(rows)), splits[0].X.shape[1]), splits[0].X.dtype)
    filled = 0
    for split, start, stop in zip(splits, starts[:-1], starts[1:], strict=True):
        mask = rows[start:stop]
        count = int(np.count_nonzero(mask))
        # mode="clip": the indices are valid, and "raise" would buffer the whole output.
        np.take(
            split.X,
            np.flatnonzero(mask),
            axis=0,
            out=selected[filled : filled + count],
            mode="clip",
        )
        filled += count
    return selected


def fold_frame(splits: list[Split], rows: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """The rows ``rows`` of the stacked splits as a frame: features and ``target``.

    Its features are one array of the selected rows (a view, not a copy): what the
    rebalancing reads, at the size of the fold, not of train + val.
    """
    frame = pd.DataFrame(rows_of(splits, rows), columns=splits[0].feature_names, copy=False)
    frame[TARGET] = y[rows]
    return frame
