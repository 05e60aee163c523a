"""Rebalancing the training split: resample with imbalanced-learn, or weight the rows.

:func:`rebalance` applies one strategy from :data:`STRATEGIES` and always returns the
features, ``target`` and a ``sample_weight`` column (ones unless the strategy weights),
so training has a single code path. Validation and test splits are never rebalanced.

``ratio`` is the target minority/majority ratio, in (0, 1]. The per-class sizes are
computed here and handed to imbalanced-learn as a ``sampling_strategy`` dict, the same
rule for binary and multiclass problems (n_max = largest class, n_min = smallest):

- ``oversample`` / ``smote``: every class grows to at least ``ceil(ratio · n_max)`` rows;
- ``undersample``: every class shrinks to at most ``floor(n_min / ratio)`` rows;
- ``class_weight``: no resampling; row weight ``n / (K · n_c)`` for a row of class c
  (so every class carries the same total weight; ``ratio`` is not used);
- ``none``: the table as it is, weights one.

Classes already within the ratio are left alone. SMOTE's ``k_neighbors`` is clipped to
(smallest class to grow) - 1, with a warning; a class of fewer than 2 rows cannot be
interpolated and is a UserError. Given the one-hot groups of the categorical columns,
SMOTE becomes SMOTE-NC, which gives a synthetic row a category instead of a blend of
indicators (:func:`_smote_nc`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT, plain_label
from logreg.model.equations import balanced_class_weights

_EPS = 1e-9  # keeps ratio·n from rounding the wrong way, e.g. 0.3·100 = 30.000000000000004

Resampled = tuple[pd.DataFrame, pd.Series, np.ndarray]


def over_targets(counts: dict[Any, int], ratio: float) -> dict[Any, int]:
    """Class sizes after over-sampling: at least ``ceil(ratio · n_max)`` rows per class."""
    goal = math.ceil(ratio * max(counts.values()) - _EPS)
    return {label: max(n, goal) for label, n in counts.items()}


def under_targets(counts: dict[Any, int], ratio: float) -> dict[Any, int]:
    """Class sizes after under-sampling: at most ``floor(n_min / ratio)`` rows per class."""
    cap = math.floor(min(counts.values()) / ratio + _EPS)
    return {label: min(n, cap) for label, n in counts.items()}


def _counts(y: pd.Series) -> dict[Any, int]:
    return {label: int(n) for label, n in y.value_counts().sort_index().items()}


def _none(X: pd.DataFrame, y: pd.Series, ratio: float, k_neighbors: int, seed: int) -> Resampled:
    return X, y, np.ones(len(y))


def _undersample(
    X: pd.DataFrame, y: pd.Series, ratio: float, k_neighbors: int, seed: int
) -> Resampled:
    from imblearn.under_sampling import RandomUnderSampler  # slow to import: only when used

    targets = under_targets(_counts(y), ratio)
    return _resampled(RandomUnderSampler(sampling_strategy=targets, random_state=seed), X, y)


def _oversample(
    X: pd.DataFrame, y: pd.Series, ratio: float, k_neighbors: int, seed: int
) -> Resampled:
    from imblearn.over_sampling import RandomOverSampler

    targets = over_targets(_counts(y), ratio)
    return _resampled(RandomOverSampler(sampling_strategy=targets, random_state=seed), X, y)


def _resampled(sampler: Any, X: pd.DataFrame, y: pd.Series) -> Resampled:
    """Apply an imbalanced-learn sampler; resampled rows all weigh 1."""
    X_new, y_new = sampler.fit_resample(X, y)
    return X_new, y_new, np.ones(len(y_new))


def smote(
    X: pd.DataFrame,
    y: pd.Series,
    ratio: float,
    k_neighbors: int,
    seed: int,
    one_hot_groups: dict[str, list[str]] | None = None,
    counts: dict[Any, int] | None = None,
) -> Resampled:
    """SMOTE (SMOTE-NC given one-hot groups) up to :func:`over_targets` of ``counts``.

    ``counts`` are the class sizes the targets come from: ``y``'s own, or the whole
    table's when ``X``, ``y`` hold only the rows of the classes that grow (Dask gathers
    just those, :mod:`logreg.engines.dask_rebalance`). Each class gains targets − counts
    synthetic rows, appended after the rows given; a class's synthetic rows depend only
    on its own rows and the seed, so the rows of the other classes need not be there.
    """
    held = _counts(y)
    counts = counts or held
    targets = over_targets(counts, ratio)
    growing = {label: counts[label] for label in counts if targets[label] > counts[label]}
    if not growing:
        return X, y, np.ones(len(y))
    label, smallest = min(growing.items(), key=lambda item: item[1])
    label = plain_label(label)
    if smallest < 2:
        raise UserError(
            f"rebalance.strategy=smote: class {label!r} has {smallest} row in the train split; "
            "SMOTE needs at least 2 to interpolate (use oversample, or more data)"
        )
    k = min(k_neighbors, smallest - 1)
    if k < k_neighbors:
        warnings.warn(
            f"rebalance.k_neighbors={k_neighbors} clipped to {k}: "
            f"class {label!r} has {smallest} rows",
            stacklevel=3,
        )
    goals = {label: n + targets[label] - counts[label] for label, n in held.items()}
    if one_hot_groups:
        return _smote_nc(X, y, goals, k, seed, one_hot_groups)
    from imblearn.over_sampling import SMOTE

    return _resampled(SMOTE(sampling_strategy=goals, k_neighbors=k, random_state=seed), X, y)


def _smote_nc(
    X: pd.DataFrame,
    y: pd.Series,
    targets: dict[Any, int],
    k: int,
    seed: int,
    one_hot_groups: dict[str, list[str]],
) -> Resampled:
    """SMOTE-NC on the categorical columns behind the one-hot groups of X.

    Interpolating indicators would make rows that are 0.3 one category and 0.7 another.
    Each group is folded back into one categorical column (the position of its active
    indicator, 0 for the reference level); SMOTE-NC (Chawla et al. 2002) interpolates
    the numeric columns and gives the categorical ones the value most frequent among
    the neighbours; the indicators are then rebuilt from the two values each takes in X
    (standardised 0 and 1: its minimum and maximum).
    """
    from imblearn.over_sampling import SMOTEN, SMOTENC

    low, high = X.min(), X.max()
    indicators = [column for group in one_hot_groups.values() for column in group]
    folded = X.drop(columns=indicators)
    for name, group in one_hot_groups.items():
        active = X[group].to_numpy() > ((low[group] + high[group]) / 2).to_numpy()
        folded[name] = np.where(active.any(axis=1), active.argmax(axis=1) + 1, 0)
    categorical = list(one_hot_groups)
    if len(categorical) == folded.shape[1]:  # nothing numeric to interpolate
        sampler = SMOTEN(sampling_strategy=targets, k_neighbors=k, random_state=seed)
    else:
        sampler = SMOTENC(categorical, sampling_strategy=targets, k_neighbors=k, random_state=seed)
    X_new, y_new, weights = _resampled(sampler, folded, y)
    for name, group in one_hot_groups.items():
        position = X_new.pop(name).to_numpy()
        for index, column in enumerate(group, start=1):
            X_new[column] = np.where(position == index, high[column], low[column])
    return X_new[list(X.columns)], y_new, weights


def _class_weight(
    X: pd.DataFrame, y: pd.Series, ratio: float, k_neighbors: int, seed: int
) -> Resampled:
    counts = y.value_counts()
    per_class = dict(zip(counts.index, balanced_class_weights(counts.to_numpy()), strict=True))
    return X, y, y.map(per_class).to_numpy(dtype=np.float64)


STRATEGIES: dict[str, Callable[[pd.DataFrame, pd.Series, float, int, int], Resampled]] = {
    "none": _none,
    "undersample": _undersample,
    "oversample": _oversample,
    "smote": smote,
    "class_weight": _class_weight,
}


def rebalance(
    frame: pd.DataFrame,
    strategy: str = "none",
    ratio: float = 1.0,
    k_neighbors: int = 5,
    seed: int = 0,
    one_hot_groups: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """The rebalanced table: features, ``target`` and ``sample_weight``, with a fresh index.

    ``one_hot_groups`` (categorical column -> its indicator columns in ``frame``, from
    :meth:`logreg.preprocess.Preprocessing.one_hot_groups`) makes SMOTE treat them as
    categories; the other strategies copy or weight whole rows and do not need it.
    """
    if TARGET not in frame.columns:
        raise UserError(f"the train split has no '{TARGET}' column")
    if WEIGHT in frame.columns:
        raise UserError(f"the train split already has a '{WEIGHT}' column; rebalance it only once")
    if frame[TARGET].nunique() < 2:
        raise UserError("the train split holds a single class; there is nothing to rebalance")
    X, y = frame.drop(columns=TARGET), frame[TARGET]
    absent = [c for group in (one_hot_groups or {}).values() for c in group if c not in X]
    if absent:
        raise UserError(f"the train split lacks the one-hot column(s) {absent[:5]}")
    if strategy == "smote":
        X_new, y_new, weights = smote(X, y, ratio, k_neighbors, seed, one_hot_groups)
    else:
        X_new, y_new, weights = STRATEGIES[strategy](X, y, ratio, k_neighbors, seed)
    labels = pd.Series(y_new).reset_index(drop=True)  # its dtype kept
    return with_columns(
        pd.DataFrame(X_new), {TARGET: labels, WEIGHT: np.asarray(weights, dtype=np.float64)}
    )


def with_columns(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    """``frame`` (its index dropped) with ``columns`` appended in one concatenation (arrays,
    or series indexed 0..n-1).

    A table read one block per column (:data:`logreg.frames.LEAN_FRAME`) is a frame of
    many blocks: inserting a column into one of more than 100 makes pandas warn that it
    is "highly fragmented" (on Dask, once per partition of a wide table).
    """
    added = pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))
    return pd.concat([frame.reset_index(drop=True), added], axis=1)


def report(
    before: pd.DataFrame, after: pd.DataFrame, strategy: str, ratio: float
) -> dict[str, Any]:
    """Class counts before and after, and the total weight per class after (for the report)."""
    weighted = after.groupby(TARGET, sort=True)[WEIGHT].sum()
    return counts_report(
        strategy,
        ratio,
        _counts(before[TARGET]),
        _counts(after[TARGET]),
        {label: float(w) for label, w in weighted.items()},
    )


def counts_report(
    strategy: str,
    ratio: float,
    before: dict[Any, int],
    after: dict[Any, int],
    weight: dict[Any, float],
) -> dict[str, Any]:
    """The report from the class counts before and after and the weight per class after."""

    def by_label(values: dict[Any, Any]) -> dict[str, Any]:
        return {str(plain_label(label)): values[label] for label in sorted(values)}

    return {
        "strategy": strategy,
        "ratio": ratio,
        "before": {"rows": sum(before.values()), "classes": by_label(before)},
        "after": {
            "rows": sum(after.values()),
            "classes": by_label(after),
            "weight": by_label(weight),
        },
    }
