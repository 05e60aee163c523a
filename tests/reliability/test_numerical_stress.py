"""Numerical stress: each case ends with a sensible model or a clear message, never NaN.

Every fit here runs with RuntimeWarnings (overflow, invalid value, divide by zero) turned
into errors, so a NaN or an overflow on the way fails the test even when the final
weights look finite.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from reliability_helpers import stage_command, tiny_params, write_params

from logreg import LogisticRegression
from logreg.frames import TARGET, read_split
from logreg.model import DivergenceError
from logreg.rebalance import rebalance
from logreg.stages import evaluate, prepare
from logreg.stages import rebalance as rebalance_stage
from logreg.stages import train as train_stage

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]


def linear_data(n: int = 400, d: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ np.linspace(1.0, -1.0, d) + rng.logistic(size=n) > 0).astype(int)
    return X, y


def separable_data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes with a gap of 2 along the first feature: perfectly separable."""
    X, _ = linear_data(n, 5, seed)
    y = (X[:, 0] > 0).astype(int)
    X[:, 0] += np.where(y == 1, 1.0, -1.0)
    return X, y


def assert_sensible(model: LogisticRegression, X: np.ndarray, y: np.ndarray) -> None:
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    assert all(np.isfinite(r["train_loss"]) for r in model.history_)
    proba = model.predict_proba(X)
    assert np.isfinite(proba).all()
    majority = np.unique(y, return_counts=True)[1].max() / len(y)
    assert (model.predict(X) == y).mean() > majority  # better than always the majority class


# ----------------------------------------------------------------------------- 1e9 scale


def test_raw_features_on_a_1e9_scale_sgd_stops_with_the_divergence_message():
    # A hand-set step; the default, learning_rate="auto", scales with the features.
    X, y = linear_data()
    assert_sensible(LogisticRegression().fit(X * 1e9, y), X * 1e9, y)
    with pytest.raises(DivergenceError) as error:
        LogisticRegression(learning_rate=0.5).fit(X * 1e9, y)
    message = str(error.value)
    assert message.startswith("SGD diverged at epoch 1: the training loss became ")
    assert message.endswith(
        "with learning_rate=0.5; try a smaller learning_rate (e.g. 0.05) or standardised features"
    )


@pytest.mark.parametrize("penalty", ["l2", "none"])
def test_raw_features_on_a_1e9_scale_newton_fits_the_same_model(penalty):
    X, y = linear_data()
    raw = LogisticRegression(solver="newton", penalty=penalty, alpha=0.0).fit(X * 1e9, y)
    unit = LogisticRegression(solver="newton", penalty=penalty, alpha=0.0).fit(X, y)
    assert_sensible(raw, X * 1e9, y)
    assert raw.stop_reason_ == "newton_converged"
    np.testing.assert_allclose(raw.coef_ * 1e9, unit.coef_, rtol=1e-6)


def test_the_pipeline_standardises_1e9_features_and_trains_a_sensible_model(tmp_path):
    X, y = linear_data(600, 4)
    frame = pd.DataFrame(X * [1e9, 1e-9, 1.0, 3e8], columns=["huge", "tiny", "unit", "big"])
    frame["y"] = y
    frame.to_csv(tmp_path / "scaled.csv", index=False)
    data = {"name": "scaled", "source": "file", "path": str(tmp_path / "scaled.csv"), "target": "y"}
    run_stages(tmp_path, tiny_params(data=data, train={"epochs": 50}))
    model = LogisticRegression.load(tmp_path / "models/model.npz")
    test = read_split(tmp_path / "data/prepared/test.parquet")
    assert np.abs(test.X.mean(axis=0)).max() < 0.5  # standardised with train's statistics
    assert_sensible(model, test.X, test.y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_step_that_overflows_is_reported_as_divergence_without_warnings(dtype):
    X, y = linear_data()
    with pytest.raises(DivergenceError, match="try a smaller learning_rate"):
        LogisticRegression(dtype=dtype, learning_rate=1e300, batch_size=8).fit(X * 1e9, y)


def run_stages(folder, params, stages=("prepare", "rebalance", "train")) -> None:
    write_params(folder, params)
    mains = {
        "prepare": prepare.main,
        "rebalance": rebalance_stage.main,
        "train": train_stage.main,
        "evaluate": evaluate.main,
    }
    for stage in stages:
        mains[stage](stage_command(stage, folder)[2:])


# ----------------------------------------------------------------------------- separable

STOPS = {  # how an unpenalised fit on separable data ends, and the fit arguments
    "max_time": {"epochs": 10**6, "tol": 0.0, "max_time": 0.2},
    "converged": {"tol": 1e-3},
    "early_stopping": {"epochs": 10**6, "patience": 5},
    "max_epochs": {"epochs": 300, "tol": 0.0},
}


@pytest.mark.parametrize("stop", list(STOPS))
def test_separable_data_without_a_penalty_stops_and_says_why(stop):
    X, y = separable_data()
    X_val, y_val = linear_data(200, 5, seed=1)  # overlapping classes: val loss turns up
    kwargs = STOPS[stop]
    validation = {"X_val": X_val, "y_val": y_val} if stop == "early_stopping" else {}
    with pytest.warns(UserWarning, match=f"perfectly separable.*stop_reason_='{stop}'"):
        model = LogisticRegression(penalty="none", **kwargs).fit(X, y, **validation)
    assert model.stop_reason_ == stop and model.separable_
    assert_sensible(model, X, y)
    assert (model.predict(X) == y).all()


def test_separable_data_with_a_penalty_converges_to_bounded_weights():
    X, y = separable_data()
    small = LogisticRegression(penalty="l2", alpha=1e-2).fit(X, y)
    assert small.stop_reason_ == "converged"
    assert_sensible(small, X, y)
    newton = LogisticRegression(solver="newton", penalty="l2", alpha=1e-2).fit(X, y)
    np.testing.assert_allclose(small.coef_, newton.coef_, atol=0.05)
    with pytest.warns(UserWarning, match="perfectly separable"):
        free = LogisticRegression(solver="newton", penalty="none").fit(X, y)
    assert free.stop_reason_ == "newton_converged"  # no descent left at machine precision
    assert_sensible(free, X, y)
    assert np.abs(free.coef_).max() > 5 * np.abs(newton.coef_).max()  # unbounded without it


# ----------------------------------------------------------------------------- collinear, wide


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "sgd"},
        {"solver": "newton", "penalty": "l2"},
        {"solver": "newton", "penalty": "none"},
    ],
    ids=["sgd", "newton-l2", "newton-none"],
)
def test_duplicated_columns_share_their_weight(params):
    X, y = linear_data()
    X_dup = np.hstack([X, X[:, :2]])  # columns 5 and 6 repeat columns 0 and 1
    model = LogisticRegression(**params).fit(X_dup, y)
    assert_sensible(model, X_dup, y)
    pairs = model.coef_[0, :2] + model.coef_[0, 5:]
    if params.get("penalty") == "none":
        # Only the sum of a pair is identified, and it is the fit without the copies.
        single = LogisticRegression(**params).fit(X, y)
        np.testing.assert_allclose(pairs, single.coef_[0, :2], rtol=1e-5)
        np.testing.assert_allclose(model.predict_proba(X_dup), single.predict_proba(X))
    else:  # the penalty (or SGD's symmetric start) splits it evenly
        np.testing.assert_allclose(model.coef_[0, 5:], model.coef_[0, :2], rtol=1e-6)


def test_the_coefficient_table_of_a_singular_newton_fit_has_no_intervals():
    X, y = linear_data()
    frame = pd.DataFrame(np.hstack([X, X[:, :1]]), columns=[*"abcde", "a_again"])
    model = LogisticRegression(solver="newton", penalty="none").fit(frame, y)
    table = evaluate.coefficient_table(model)  # the Hessian is singular: no standard errors
    assert list(table.columns) == ["feature", "coefficient", "odds_ratio", "rank", "is_zero"]
    assert np.isfinite(table[["coefficient", "odds_ratio"]].to_numpy()).all()


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "sgd"},
        {"solver": "sgd", "penalty": "l1", "alpha": 1e-2},
        {"solver": "newton", "penalty": "l2", "alpha": 1e-2},
        {"solver": "newton", "penalty": "none"},
    ],
    ids=["sgd-l2", "sgd-l1", "newton-l2", "newton-none"],
)
def test_more_features_than_rows(params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 100))
    y = (X[:, 0] + 0.5 * rng.normal(size=30) > 0).astype(int)
    model = LogisticRegression(**params).fit(X, y)
    assert_sensible(model, X, y)
    X_new = rng.normal(size=(200, 100))
    assert np.isfinite(model.predict_proba(X_new)).all()


# ----------------------------------------------------------------------------- tiny class


def test_smote_on_a_five_row_minority_clips_its_neighbours():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(105, 3)), columns=["a", "b", "c"])
    frame[TARGET] = ["maj"] * 100 + ["min"] * 5
    with pytest.warns(UserWarning, match=r"k_neighbors=5 clipped to 4: class 'min' has 5 rows"):
        out = rebalance(frame, "smote", ratio=1.0, k_neighbors=5, seed=0)
    assert out[TARGET].value_counts().to_dict() == {"maj": 100, "min": 100}
    assert np.isfinite(out[["a", "b", "c"]].to_numpy()).all()


def test_the_pipeline_with_five_minority_rows_and_smote(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(205, 3)), columns=["a", "b", "c"])
    frame["y"] = ["no"] * 200 + ["yes"] * 5
    frame.loc[frame["y"] == "yes", "a"] += 3.0
    frame.to_csv(tmp_path / "rare.csv", index=False)
    data = {"name": "rare", "source": "file", "path": str(tmp_path / "rare.csv"), "target": "y"}
    params = tiny_params(data=data, rebalance={"strategy": "smote"}, train={"epochs": 30})
    # 5 rows: 1 for test, 1 for val, 3 for train, so SMOTE has 2 neighbours at most.
    with pytest.warns(UserWarning, match=r"k_neighbors=5 clipped to 2: class 'yes' has 3 rows"):
        run_stages(tmp_path, params)
    report = json.loads((tmp_path / "reports/rebalance.json").read_text())
    assert report["after"]["classes"] == {"no": report["before"]["classes"]["no"]} | {
        "yes": report["before"]["classes"]["no"]
    }
    model = LogisticRegression.load(tmp_path / "models/model.npz")
    train = read_split(tmp_path / "data/rebalanced/train.parquet")
    assert_sensible(model, train.X, train.y)


def test_smote_on_a_single_row_class_is_a_clear_error(tmp_path):
    frame = pd.DataFrame({"a": np.arange(51.0), TARGET: ["maj"] * 50 + ["min"]})
    with warnings.catch_warnings():
        with pytest.raises(Exception, match=r"class 'min' has 1 row.*SMOTE needs at least 2"):
            rebalance(frame, "smote")
