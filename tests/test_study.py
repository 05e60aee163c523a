"""The study's computations on small synthetic data, against independent references."""

import numpy as np
import pytest
import statsmodels.api as sm

from logreg.frames import Split
from logreg.study.analysis import SEEDS, batch_size_study, likelihood_check


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

    from logreg.study.analysis import sweep_summary
    from logreg.study.document import sweep_section

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
    text = "\n".join(sweep_section(sweep_summary(sweep, 70)))
    assert "| smote | l1 | 16 | 0.300 | 0.150 |" in text
    assert "| none | l2 | 64 | 0.100 | 0.050 |" in text
    assert "+0.100" in text  # 0.15 − 0.05 on test at 0.5


def test_sweep_section_shows_the_sweeps_noise_verdicts():
    import pandas as pd

    from logreg.study.analysis import sweep_summary
    from logreg.study.document import sweep_section

    columns = ["rebalance.strategy", "model.penalty", "train.batch_size", "val_f1", "test_f1"]
    columns += ["test_f1_low", "test_f1_high", "test_precision", "test_recall"]
    columns += ["test_f1_tuned", "vs_best", "noise_test"]
    rows = [
        ("smote", "l1", "16", 0.30, 0.15, 0.10, 0.20, 0.1, 0.5, 0.2, "best", ""),
        ("none", "l2", "64", 0.10, 0.05, 0.0, 0.08, 0.3, 0.03, 0.18, "worse", "paired"),
        ("smote", "l2", "full", 0.20, 0.14, 0.09, 0.19, 0.1, 0.5, 0.2, "within noise", "paired"),
    ]
    sweep = pd.DataFrame(rows, columns=columns)
    text = "\n".join(sweep_section(sweep_summary(sweep, 70)))
    assert "| 0.100 – 0.200 | best |" in text and "| 0.000 – 0.080 | worse |" in text
    assert "1 of the other 2 runs differ in test F1 by more than the noise (a paired" in text
    assert "The others' places in the ranking are within the noise." in text


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

    from logreg.study.analysis import sweep_summary
    from logreg.study.document import sweep_section

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
    assert expected in "\n".join(sweep_section(sweep_summary(sweep, 70)))


def _coded_frame(n, seed, with_empty_level=False):
    import pandas as pd

    rng = np.random.default_rng(seed)
    region = rng.choice([1, 2, 3], n, p=[0.3, 0.3, 0.4])
    income = rng.normal(50, 10, n)
    logit = -2 + 0.05 * (income - 50) + np.select([region == 2, region == 3], [0.8, -0.6], 0)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    if with_empty_level:
        region[:25], y[:25] = 4, "no"  # a fourth region without a single positive
    return pd.DataFrame({"region": region, "income": income, "target": y})


def _as_split(frame, prep):
    from logreg import preprocess

    out = preprocess.transform(prep, frame)
    X = out[prep.feature_names].to_numpy()
    y = out["target"].to_numpy()
    return Split(X=X, y=y, sample_weight=np.ones(len(X)), feature_names=prep.feature_names)


def test_category_odds_ratios_are_statsmodels_dummy_coefficients_on_raw_data():
    import pandas as pd

    from logreg import preprocess
    from logreg.study.analysis import category_effects, wald_table

    raw = _coded_frame(3000, 0)
    prep = preprocess.fit(raw, categorical=["region"])
    split = _as_split(raw, prep)
    effects = category_effects(wald_table(split, 1e-12, prep), split, prep, "yes")["region"]
    # statsmodels on the raw columns: income in its units, region as 0/1 dummies vs 1.
    design = pd.DataFrame(
        {"income": raw.income, "r2": (raw.region == 2) * 1.0, "r3": (raw.region == 3) * 1.0}
    )
    fit = sm.Logit((raw.target == "yes") * 1.0, sm.add_constant(design)).fit(disp=0, tol=1e-12)
    interval = np.exp(fit.conf_int())
    for name, dummy in (("region=2", "r2"), ("region=3", "r3")):
        assert effects.odds_ratio[name] == pytest.approx(np.exp(fit.params[dummy]), rel=1e-6)
        assert effects.ci_low[name] == pytest.approx(interval.loc[dummy, 0], rel=1e-6)
        assert effects.ci_high[name] == pytest.approx(interval.loc[dummy, 1], rel=1e-6)
    counts = pd.crosstab(raw.region, raw.target)
    assert effects.rows.tolist() == counts.sum(axis=1).tolist()
    assert effects.positives.tolist() == counts["yes"].tolist()
    assert effects.index[0] == "region=1" and effects.odds_ratio.iloc[0] == 1.0


def test_a_category_without_positives_is_called_out():
    from logreg import preprocess
    from logreg.study.analysis import category_effects, wald_table
    from logreg.study.document import category_section

    raw = _coded_frame(1000, 1, with_empty_level=True)
    prep = preprocess.fit(raw, categorical=["region"])
    split = _as_split(raw, prep)
    effects = category_effects(wald_table(split, 1e-3, prep), split, prep, "yes")
    text = "\n".join(category_section(effects))
    assert "| region=4 | 25 | 0 |" in text
    assert "`region=4` has no positive row in training" in text
    assert effects["region"].odds_ratio["region=4"] < 0.1


def test_variance_inflation_is_statsmodels_and_infinite_for_an_exact_combination():
    from statsmodels.stats.outliers_influence import variance_inflation_factor

    from logreg.study.analysis import variance_inflation
    from logreg.study.document import collinearity_reading

    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 3))
    X = np.column_stack([base, base[:, 0] + 0.3 * base[:, 1] + 0.1 * rng.standard_normal(500)])
    names = ["a", "b", "c", "d"]
    ours = variance_inflation(X, names)
    exog = sm.add_constant(X)
    reference = [variance_inflation_factor(exog, j + 1) for j in range(4)]
    np.testing.assert_allclose(ours.to_numpy(), reference, rtol=1e-8)
    assert ours["d"] > 10 > ours["c"]
    text = " ".join(collinearity_reading(ours))
    assert "2 of the 4 features" in text and "`d` (" in text and "`a` (" in text

    exact = variance_inflation(np.column_stack([X[:, :3], X[:, 0] - X[:, 1]]), names)
    assert exact["d"] == np.inf and exact["a"] == np.inf and np.isfinite(exact["c"])
    assert "No feature" in " ".join(collinearity_reading(variance_inflation(base, names[:3])))
