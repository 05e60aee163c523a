"""The study's computations on small synthetic data, against independent references."""

import numpy as np
import pytest
import statsmodels.api as sm

from logreg.frames import Split
from logreg.study import SEEDS, batch_size_study, likelihood_check


def _split(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    p = 1 / (1 + np.exp(-(X @ np.array([1.0, -0.5, 0.3, 0.0]) - 1.5)))
    y = np.where(rng.random(n) < p, "yes", "no")
    return Split(X=X, y=y, sample_weight=np.ones(n), feature_names=[f"f{j}" for j in range(4)])


def test_objective_equals_statsmodels_negative_mean_log_likelihood():
    train = _split(500, 0)
    check = likelihood_check(train, "yes")
    y01 = (train.y == "yes").astype(float)
    reference = sm.Logit(y01, sm.add_constant(train.X)).fit(disp=0, method="newton", tol=1e-12)
    assert abs(check["objective"] - (-reference.llf / 500)) < 1e-10
    assert abs(check["by_hand"] - check["objective"]) < 1e-12


def test_batch_size_study_covers_every_fit_and_full_batch_is_seed_free():
    train, val, test = _split(300, 1), _split(100, 2), _split(100, 3)
    params = {"penalty": "l2", "alpha": 1e-3, "l1_ratio": 0.5, "fit_intercept": True}
    histories, finals = batch_size_study(train, val, test, "yes", params, 0.5)
    assert len(finals) == 4 * len(SEEDS)
    full = finals[finals.batch_size == "full"]
    # One step per epoch over all rows: the seed only reorders the sums (rounding-level).
    assert np.ptp(full.train_objective) < 1e-12
    small = finals[finals.batch_size == "16"]
    assert np.ptp(small.train_objective) > 1e-6
    assert set(histories.epoch) == set(range(1, 61))


def test_sweep_section_reports_the_test_figures_of_the_run_that_won_validation():
    import pandas as pd

    from logreg.study import _sweep_section

    sweep = pd.DataFrame(
        {
            "rebalance.strategy": ["smote", "smote", "none"],
            "model.penalty": ["l1", "l2", "l2"],
            "train.batch_size": ["16", "full", "64"],
            "val_f1": [0.30, 0.20, 0.10],
            # The val-best smote run has the LOWER test F1: the table must not mix rows.
            "test_f1": [0.15, 0.25, 0.05],
            "test_precision": [0.1, 0.2, 0.3],
            "test_recall": [0.5, 0.4, 0.03],
            "test_f1_tuned": [0.2, 0.2, 0.18],
        }
    )
    text = "\n".join(_sweep_section(sweep, 70))
    assert "| smote | l1 | 16 | 0.300 | 0.150 |" in text
    assert "| none | l2 | 64 | 0.100 | 0.050 |" in text
    assert "+0.100" in text  # 0.15 − 0.05 on test at 0.5


@pytest.mark.parametrize(
    "winner_tuned, expected",
    [
        (0.20, "what rebalancing buys at 0.5 is a better-placed threshold"),  # gap -0.02
        (0.235, "so most of what rebalancing buys at 0.5"),  # +0.015 of +0.1 at 0.5
        (0.30, "so rebalancing keeps most of its lead"),  # +0.08 of +0.1
    ],
)
def test_sweep_section_reads_the_tuned_gap_by_its_sign_and_size(winner_tuned, expected):
    import pandas as pd

    from logreg.study import _sweep_section

    sweep = pd.DataFrame(
        {
            "rebalance.strategy": ["smote", "none"],
            "model.penalty": ["l1", "l2"],
            "train.batch_size": ["16", "64"],
            "val_f1": [0.30, 0.10],
            "test_f1": [0.15, 0.05],
            "test_precision": [0.1, 0.3],
            "test_recall": [0.5, 0.03],
            "test_f1_tuned": [winner_tuned, 0.22],
        }
    )
    assert expected in "\n".join(_sweep_section(sweep, 70))
