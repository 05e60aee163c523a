"""What mattered in a sweep (logreg.importance): ANOVA shares and Optuna importances.

The ANOVA shares are checked against sums of squares computed by hand from group means
with NumPy, on a balanced 2×2 design with replicates; the other tests use synthetic
scores whose dependence on each knob is known.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {  # as the sweeper reads conf/search/optuna.yaml; batch sizes as written there
        "model.alpha": FloatDistribution(1e-6, 1e-1, log=True),
        "model.penalty": CategoricalDistribution(["l1", "l2"]),
        "train.batch_size": CategoricalDistribution([16, 64, 256, "full"]),
    }
    shares = optuna_shares(jobs, space, "val_f1")

    assert shares["term"].iloc[0] == "model.alpha"
    assert shares["share"].iloc[0] > 0.8
    assert shares["share"].sum() == pytest.approx(1.0)


def _sweep(folder: Path, *overrides: str) -> Path:
    """A tiny multirun of logreg.run in ``folder`` (its own store); returns the sweep folder."""
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    env |= {
        "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    tiny = ["data=synthetic", "data.n_samples=400", "train.epochs=5", "evaluate.baseline=false"]
    command = [sys.executable, "-m", "logreg.run", "--multirun", *tiny, *overrides]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    (sweep_dir,) = folder.glob("multirun/*/*")
    return sweep_dir


def _rank(folder: Path, sweep_dir: Path) -> pd.DataFrame:
    """``python -m logreg.sweep --from-dir``: the table, the importance, the parent run."""
    env = {k: v for k, v in os.environ.items() if k not in ("DVC_ROOT", "MLFLOW_RUN_ID")}
    command = [sys.executable, "-m", "logreg.sweep", "--from-dir", str(sweep_dir)]
    command += ["--out", "sweep.csv", "--figure", "sweep.png", "--importance", "importance.csv"]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "what mattered" in done.stdout
    return pd.read_csv(folder / "importance.csv")


def _parent(folder: Path) -> tuple[Any, list[str]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("logreg").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id)]
    return parent, artifacts


@pytest.mark.slow
def test_a_grid_sweep_writes_anova_shares_and_puts_them_on_its_parent_run(tmp_path):
    sweep_dir = _sweep(tmp_path, "train.batch_size=16,256", "model.penalty=l1,l2")
    shares = _rank(tmp_path, sweep_dir)
    # 2 × 2 jobs, one each: no residual degree of freedom for the interaction, so the
    # main effects only; data.name, model.alpha and rebalance.strategy did not vary.
    assert set(shares["term"]) == {"train.batch_size", "model.penalty", RESIDUAL}
    assert shares["share"].sum() == pytest.approx(1.0)
    assert shares["method"].str.startswith("anova").all()

    _rank(tmp_path, sweep_dir)  # ranked again: the parent says it once
    parent, artifacts = _parent(tmp_path)
    note = parent.data.tags["mlflow.note.content"]
    lines = [line for line in note.splitlines() if line.startswith("- what mattered")]
    assert len(lines) == 1 and "`model.penalty`" in lines[0]
    assert note.startswith("Sweep over") and "- best:" in note  # the sweep's own lines stay
    assert "importance.csv" in artifacts


@pytest.mark.slow
def test_an_optuna_search_gets_optunas_importances(tmp_path):
    sweep_dir = _sweep(tmp_path, "search=optuna", "hydra.sweeper.n_trials=4")
    shares = _rank(tmp_path, sweep_dir)
    space = {"model.alpha", "model.penalty", "rebalance.strategy", "train.batch_size"}
    assert set(shares["term"]) == space
    assert shares["method"].str.startswith("optuna").all()
    assert shares["share"].sum() == pytest.approx(1.0)


def test_fewer_jobs_than_main_effects_give_an_empty_table():
    jobs = pd.DataFrame(
        {"a": ["x", "y", "z", "w"], "b": ["u", "v", "u", "v"], "f1": [0.1, 0.2, 0.3, 0.4]}
    )
    assert anova_shares(jobs, ["a", "b"], "f1").empty


def test_the_study_shows_each_terms_share():
    from logreg.study.document import importance_section

    shares = pd.DataFrame(
        {
            "term": ["rebalance.strategy", RESIDUAL],
            "share": [0.75, 0.25],
            "p_value": [0.001, np.nan],
            "method": "anova (type 2)",
        }
    )
    text = "\n".join(importance_section(shares))
    assert "| rebalance.strategy | 75.0% | 0.001 |" in text
    assert "| residual | 25.0% |  |" in text
    assert "anova (type 2)" in text
