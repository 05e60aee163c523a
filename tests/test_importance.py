"""What mattered in a sweep (logreg.importance): ANOVA shares and Optuna importances.

The ANOVA shares are checked against sums of squares computed by hand from group means
with NumPy, on a balanced 2×2 design with replicates; the other tests use synthetic
scores whose dependence on each knob is known.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from logreg.importance import RESIDUAL, anova_shares, format_shares, optuna_shares


def grid(levels: dict[str, list[str]], replicates: int = 1) -> pd.DataFrame:
    rows = [dict(zip(levels, combo, strict=True)) for combo in itertools.product(*levels.values())]
    return pd.DataFrame(rows * replicates)


def test_balanced_2x2_shares_match_sums_of_squares_from_group_means():
    rng = np.random.default_rng(0)
    jobs = grid({"a": ["x", "y"], "b": ["u", "v"]}, replicates=4)
    effect = {"x": 0.0, "y": 0.3}
    jobs["f1"] = (
        jobs["a"].map(effect)
        + 0.1 * (jobs["b"] == "v")
        + 0.2 * ((jobs["a"] == "y") & (jobs["b"] == "v"))
        + rng.normal(0, 0.05, len(jobs))
    )
    y = jobs["f1"].to_numpy()
    grand = y.mean()
    total = np.sum((y - grand) ** 2)
    mean_a = jobs.groupby("a")["f1"].transform("mean").to_numpy()
    mean_b = jobs.groupby("b")["f1"].transform("mean").to_numpy()
    mean_ab = jobs.groupby(["a", "b"])["f1"].transform("mean").to_numpy()
    expected = {
        "a": np.sum((mean_a - grand) ** 2),
        "b": np.sum((mean_b - grand) ** 2),
        "a:b": np.sum((mean_ab - mean_a - mean_b + grand) ** 2),
        RESIDUAL: np.sum((y - mean_ab) ** 2),
    }

    shares = anova_shares(jobs, ["a", "b"], "f1").set_index("term")

    assert set(shares.index) == set(expected)
    for term, sum_sq in expected.items():
        assert shares.loc[term, "sum_sq"] == pytest.approx(sum_sq, rel=1e-9)
        assert shares.loc[term, "share"] == pytest.approx(sum_sq / total, rel=1e-9)
    assert shares["share"].sum() == pytest.approx(1.0)
    assert list(shares.index)[-1] == RESIDUAL


def test_a_knob_without_effect_gets_almost_no_share_and_a_one_level_knob_is_dropped():
    rng = np.random.default_rng(1)
    jobs = grid({"strategy": list("abcde"), "penalty": ["l1", "l2"], "batch": ["16", "full"]})
    jobs["data"] = "caravan"  # one level: nothing to explain with
    jobs["f1"] = jobs["strategy"].map(dict(zip("abcde", [0.0, 0.1, 0.2, 0.15, 0.05], strict=True)))
    jobs["f1"] += rng.normal(0, 0.005, len(jobs))

    shares = anova_shares(jobs, ["strategy", "penalty", "batch", "data"], "f1").set_index("term")

    assert not any("data" in term for term in shares.index)
    assert shares.loc["strategy", "share"] > 0.98
    assert shares.loc["penalty", "share"] < 0.01
    assert shares.loc["batch", "share"] < 0.01
    assert shares.index[0] == "strategy"


def test_failed_jobs_leave_an_unbalanced_grid_that_still_gets_shares():
    rng = np.random.default_rng(2)
    jobs = grid({"a": ["x", "y", "z"], "b": ["u", "v"], "c": ["p", "q"]})
    jobs["f1"] = (jobs["a"] == "z") * 0.2 + rng.normal(0, 0.01, len(jobs))
    jobs.loc[[3, 7], "f1"] = np.nan  # two jobs failed to score

    shares = anova_shares(jobs, ["a", "b", "c"], "f1").set_index("term")

    assert np.isfinite(shares["share"]).all()
    assert shares.index[0] == "a" and shares.loc["a", "share"] > 0.9


def test_too_few_jobs_or_no_varying_knob_gives_an_empty_table():
    jobs = pd.DataFrame({"a": ["x", "x", "x"], "f1": [0.1, 0.2, 0.3]})
    assert anova_shares(jobs, ["a"], "f1").empty
    assert "no knob varies" in format_shares(anova_shares(jobs, ["a"], "f1"))


def test_optuna_importances_rank_the_parameter_that_drives_the_score_first():
    rng = np.random.default_rng(3)
    n = 30
    jobs = pd.DataFrame(
        {
            "model.alpha": 10 ** rng.uniform(-6, -1, n),
            "model.penalty": rng.choice(["l1", "l2"], n),
            "train.batch_size": rng.choice(["16", "64", "256", "full"], n),
        }
    )
    jobs["val_f1"] = -0.05 * np.log10(jobs["model.alpha"]) + rng.normal(0, 0.001, n)
    space = {
        "model.alpha": "tag(log, interval(1e-6, 1e-1))",
        "model.penalty": "choice(l1, l2)",
        "train.batch_size": "choice(16, 64, 256, full)",
    }

    shares = optuna_shares(jobs, space, "val_f1")

    assert shares["term"].iloc[0] == "model.alpha"
    assert shares["share"].iloc[0] > 0.8
    assert shares["share"].sum() == pytest.approx(1.0)
