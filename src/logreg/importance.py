"""What mattered in a sweep: each knob's share of the variation in validation F1.

    python -m logreg.sweep            # writes reports/importance.csv beside reports/sweep.csv

- A grid (:func:`anova_shares`): a two-way ANOVA of validation F1 on the knobs as
  categorical factors, main effects and two-way interactions, with statsmodels'
  ``ols`` and ``anova_lm(typ=2)``. A term's share is its sum of squares over the sum of
  the table's sums of squares, the residual row included; in a balanced grid that sum is
  the total sum of squares, so the shares add up to 1 and the residual's share is what
  the terms leave unexplained (the three-way interaction and noise). Type 2 sums of
  squares keep their meaning when failed jobs leave the grid unbalanced.
- An Optuna search (:func:`optuna_shares`): Optuna's own parameter importances (fANOVA)
  of the finished trials, rebuilt as a study from the jobs' configs and scores.

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
    results: pd.DataFrame, distributions: Mapping[str, Any], response: str, seed: int = 0
) -> pd.DataFrame:
    """Optuna's importances of the searched keys, each with the distribution it was drawn from.

    The finished jobs become the trials of a fresh study (their params from ``results``,
    their value the ``response``), so the importances need neither the sweeper's storage
    nor a study still in memory. The evaluator is Optuna's default, fANOVA, seeded.
    """
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    scored = results.dropna(subset=[response])
    searched = {key: d for key, d in distributions.items() if key in scored}
    if len(scored) < 2 or not searched:
        return pd.DataFrame(columns=list(COLUMNS))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for row in scored.to_dict("records"):
        params = {key: _trial_value(d, row[key]) for key, d in searched.items()}
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=searched, value=float(row[response])
            )
        )
    importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
    shares = pd.DataFrame(
        {"term": list(importances), "share": [float(v) for v in importances.values()]}
    )
    shares["method"] = "optuna (fANOVA)"
    return _largest_first(shares.reindex(columns=list(COLUMNS)))


def _trial_value(distribution: Any, value: Any) -> Any:
    """A job's value as the distribution holds it: the choice it is written as, or a number."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return next(c for c in distribution.choices if str(c) == str(value))
    return int(value) if isinstance(distribution, IntDistribution) else float(value)


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
