"""What mattered in a sweep: each knob's share of the variation in validation F1.

    python -m logreg.sweep            # writes reports/importance.csv beside reports/sweep.csv

- A grid (:func:`anova_shares`): a two-way ANOVA of validation F1 on the knobs as
  categorical factors, main effects and two-way interactions, with statsmodels'
  ``ols`` and ``anova_lm(typ=2)``. A term's share is its sum of squares over the sum of
  the table's sums of squares, the residual row included; in a balanced grid that sum is
  the total sum of squares, so the shares add up to 1 and the residual's share is what
  the terms leave unexplained (the three-way interaction and noise). Type 2 sums of
  squares keep their meaning when failed jobs leave the grid unbalanced.
- An Optuna search (:func:`optuna_shares`): Optuna's own parameter importances of the
  finished trials, rebuilt as a study from the jobs' configs and scores.

Both return the same table: one row per term, largest share first.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

RESIDUAL = "residual"
COLUMNS = ("term", "share", "sum_sq", "df", "F", "p_value", "method")


def anova_shares(results: pd.DataFrame, knobs: Sequence[str], response: str) -> pd.DataFrame:
    """Each knob's and each pair's share of the variance in ``response`` (two-way ANOVA).

    ``knobs`` with a single level in ``results`` are dropped (they explain nothing), as
    are rows without a ``response``. Interactions are left out when the jobs are too few
    to estimate them with a residual degree of freedom to spare. Empty when no knob
    varies, or the jobs are too few even for the main effects.
    """
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    scored = results.dropna(subset=[response])
    varying = [k for k in knobs if len(set(scored[k].astype(str))) > 1]
    if not varying or len(scored) < 3:
        return pd.DataFrame(columns=list(COLUMNS))
    # Formula-safe names for keys such as "rebalance.strategy"; mapped back below.
    alias = {knob: f"k{i}" for i, knob in enumerate(varying)}
    data = pd.DataFrame({alias[k]: scored[k].astype(str).to_numpy() for k in varying})
    data["y"] = scored[response].to_numpy(dtype=float)
    mains = [f"C({alias[k]})" for k in varying]
    pairs = [f"{a}:{b}" for a, b in itertools.combinations(mains, 2)]
    fits = (
        smf.ols("y ~ " + " + ".join(terms), data=data).fit() for terms in ([*mains, *pairs], mains)
    )
    fit = next((fit for fit in fits if fit.df_resid >= 1), None)
    if fit is None:  # fewer jobs than the main effects' parameters
        return pd.DataFrame(columns=list(COLUMNS))
    with warnings.catch_warnings():  # a constant response: 0/0 in F, a NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        table = anova_lm(fit, typ=2)
    names = {f"C({a})": knob for knob, a in alias.items()}
    table.index = [
        RESIDUAL if term == "Residual" else ":".join(names[part] for part in term.split(":"))
        for term in table.index
    ]
    total = table["sum_sq"].sum()
    shares = pd.DataFrame(
        {
            "term": table.index,
            "share": table["sum_sq"].to_numpy() / total if total > 0 else np.nan,
            "sum_sq": table["sum_sq"].to_numpy(),
            "df": table["df"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p_value": table["PR(>F)"].to_numpy(),
            "method": "anova (type 2)",
        }
    )
    return _largest_first(shares)


def optuna_shares(
    results: pd.DataFrame, space: Mapping[str, str], response: str, seed: int = 0
) -> pd.DataFrame:
    """Optuna's importances of the searched ``space`` (key -> Hydra sweep, as in conf/).

    The finished jobs become the trials of a fresh study (their params from ``results``,
    their value the ``response``), so the importances need nothing of the sweeper's
    in-memory study. The evaluator is the random forest's mean decrease in impurity:
    Optuna 2.10's default, fANOVA, fails on scikit-learn ≥ 1.3 trees.
    """
    import optuna
    from optuna.importance import MeanDecreaseImpurityImportanceEvaluator, get_param_importances

    scored = results.dropna(subset=[response])
    distributions = {key: _distribution(key, sweep) for key, sweep in space.items()}
    distributions = {k: d for k, d in distributions.items() if k in scored}
    if len(scored) < 2 or not distributions:
        return pd.DataFrame(columns=list(COLUMNS))
    with warnings.catch_warnings():  # add_trial and create_trial are "experimental" in 2.10
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize")
        for row in scored.to_dict("records"):
            params = {k: _param_value(d, row[k]) for k, d in distributions.items()}
            trial = optuna.trial.create_trial(
                params=params, distributions=distributions, value=float(row[response])
            )
            study.add_trial(trial)
        evaluator = MeanDecreaseImpurityImportanceEvaluator(seed=seed)
        importances = get_param_importances(study, evaluator=evaluator)
    shares = pd.DataFrame(
        {"term": list(importances), "share": list(importances.values())},
    )
    shares["method"] = "optuna (mean decrease in impurity)"
    return _largest_first(shares.reindex(columns=list(COLUMNS)))


def _distribution(key: str, sweep: str) -> Any:
    """Optuna's distribution for a Hydra sweep (``choice(...)``, ``tag(log, interval(...))``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import (
        CategoricalDistribution,
        LogUniformDistribution,
        UniformDistribution,
    )

    value = OverridesParser.create().parse_override(f"{key}={sweep}").value()
    if isinstance(value, IntervalSweep):
        log = "log" in value.tags
        uniform = LogUniformDistribution if log else UniformDistribution
        return uniform(float(value.start), float(value.end))
    if isinstance(value, ChoiceSweep | RangeSweep):
        values = value.list if isinstance(value, ChoiceSweep) else list(value.range())
        return CategoricalDistribution([str(v) for v in values])
    return CategoricalDistribution([str(value)])  # a fixed value: importance 0


def _param_value(distribution: Any, value: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    return str(value) if isinstance(distribution, CategoricalDistribution) else float(value)


def _largest_first(shares: pd.DataFrame) -> pd.DataFrame:
    """Terms by share, largest first; the residual last."""
    is_residual = shares["term"] == RESIDUAL
    ordered = pd.concat(
        [shares[~is_residual].sort_values("share", ascending=False), shares[is_residual]]
    )
    return ordered.reset_index(drop=True)


def format_shares(shares: pd.DataFrame) -> str:
    """One line per term: ``share  term``, as ``make sweep`` prints it."""
    if shares.empty:
        return "importance: no knob varies across the scored jobs"
    method = shares["method"].iloc[0]
    lines = [f"what mattered (share of the variance in validation F1, {method}):"]
    for row in shares.itertuples():
        lines.append(f"  {row.share:6.1%}  {row.term}")
    return "\n".join(lines)
