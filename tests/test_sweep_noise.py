"""The sweep's noise verdicts: each job's test F1 against #1, from saved job folders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from logreg import LogisticRegression
from logreg.bootstrap import resample_indices
from logreg.frames import TARGET, write_table
from logreg.sweep import collect, format_table, noise_against_best, noise_summary, rank

FEATURES = ["x1", "x2", "x3"]
N_BOOTSTRAP, SEED = 200, 3


def make_frame(seed: int = 0, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    logit = X @ np.array([2.0, -1.0, 0.0]) - 1.0
    frame = pd.DataFrame(X, columns=FEATURES)
    frame[TARGET] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    return frame


def write_job(folder, coef, val_f1: float, frame: pd.DataFrame) -> LogisticRegression:
    """A finished job: params, metrics (val F1 decides the rank) and a model with its test split."""
    (folder / "reports").mkdir(parents=True)
    params = {
        "data": {"name": "tiny"},
        "rebalance": {"strategy": "none"},
        "model": {"penalty": "l2", "alpha": 1e-4},
        "train": {"batch_size": "full"},
        "evaluate": {"n_bootstrap": N_BOOTSTRAP, "seed": SEED},
    }
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    model = LogisticRegression(solver="newton", alpha=1e-2, epochs=1)
    model.fit(frame[FEATURES].to_numpy(), frame[TARGET].to_numpy())
    model.coef_ = np.array([coef], dtype=np.float64)
    model.intercept_ = np.array([-1.0])
    model.save(folder / "models/model.npz", metadata={"positive_class": "Yes"})
    proba = model.predict_proba(frame[FEATURES].to_numpy())[:, 1]
    scores = {"f1": val_f1, "precision": 0.5, "recall": 0.5, "pr_auc": 0.5}
    test = scores | {"f1": f1_score(frame[TARGET] == "Yes", proba >= 0.5)}
    metrics = {"val": scores, "test": test, "model": {"epochs": 1, "n_nonzero_coef": 3}}
    (folder / "reports/metrics.json").write_text(json.dumps(metrics))
    write_table(frame, folder / "data/prepared/test.parquet")
    return model


def reference_interval(frame, best, other):
    """The paired difference, one resample at a time, scikit-learn's F1 on each."""
    y = (frame[TARGET] == "Yes").to_numpy()
    X = frame[FEATURES].to_numpy()
    flags = [model.predict_proba(X)[:, 1] >= 0.5 for model in (other, best)]
    diffs = [
        f1_score(y[idx], flags[0][idx]) - f1_score(y[idx], flags[1][idx])
        for chunk in resample_indices(y, N_BOOTSTRAP, SEED)
        for idx in chunk
    ]
    return np.percentile(diffs, [2.5, 97.5])


def test_paired_verdicts_against_a_loop_and_the_overlap_fallback(tmp_path):
    frame = make_frame()
    best = write_job(tmp_path / "0", [2.0, -1.0, 0.0], 0.9, frame)  # the true model
    near = write_job(tmp_path / "1", [2.0, -1.0, 0.1], 0.8, frame)  # a tiny change
    bad = write_job(tmp_path / "2", [-0.5, 0.5, 1.0], 0.7, frame)  # a wrong model
    ranked = noise_against_best(rank(collect(tmp_path)), tmp_path)

    assert ranked["vs_best"].tolist() == ["best", "within noise", "worse"]
    assert ranked["noise_test"].tolist() == ["", "paired", "paired"]
    for i, model in ((1, near), (2, bad)):
        low, high = reference_interval(frame, best, model)
        assert ranked.loc[i, "test_f1_vs_best_low"] == pytest.approx(low, abs=1e-12)
        assert ranked.loc[i, "test_f1_vs_best_high"] == pytest.approx(high, abs=1e-12)
    assert ranked.loc[1, "test_f1_vs_best_low"] < 0 < ranked.loc[1, "test_f1_vs_best_high"]
    text = noise_summary(ranked)
    assert "1 of the 2 other jobs" in text and "#3 worse by" in text and "paired" in text
    assert "within noise" in format_table(ranked)

    # Another test split: no pairing, the jobs' own intervals are compared.
    write_job(tmp_path / "3", [2.0, -1.0, 0.0], 0.85, make_frame(seed=1))
    metrics = json.loads((tmp_path / "3/reports/metrics.json").read_text())
    metrics["test"]["ci95"] = {"f1": {"low": 0.0, "high": 0.1}}
    (tmp_path / "3/reports/metrics.json").write_text(json.dumps(metrics))
    for job in ("0", "1", "2"):
        path = tmp_path / job / "reports/metrics.json"
        metrics = json.loads(path.read_text())
        metrics["test"]["ci95"] = {"f1": {"low": 0.5, "high": 0.7}}
        path.write_text(json.dumps(metrics))
    ranked = noise_against_best(rank(collect(tmp_path)), tmp_path)
    assert ranked["job"].tolist() == ["0", "3", "1", "2"]
    assert ranked.loc[1, "noise_test"] == "overlap" and ranked.loc[1, "vs_best"] == "worse"
    assert np.isnan(ranked.loc[1, "test_f1_vs_best_low"])


def test_jobs_without_models_get_no_verdict(tmp_path):
    frame = make_frame()
    write_job(tmp_path / "0", [2.0, -1.0, 0.0], 0.9, frame)
    write_job(tmp_path / "1", [2.0, -1.0, 0.0], 0.8, frame)
    (tmp_path / "1/models/model.npz").unlink()
    ranked = noise_against_best(rank(collect(tmp_path)), tmp_path)
    assert ranked["vs_best"].tolist() == ["best", ""]
    assert noise_summary(ranked) == ""
