"""The estimator's contract: shapes, labels, stopping criteria, persistence and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from logreg import LogisticRegression
from logreg.model import DivergenceError


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    logits = X @ np.array([1.5, -1.0, 0.5, 0.0]) - 0.5
    y = np.where(rng.random(300) < 1 / (1 + np.exp(-logits)), "spam", "ham")
    return X, y


@pytest.fixture
def iris():
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, np.array(["setosa", "versicolor", "virginica"])[y]


def test_shapes_and_class_order(binary_data, iris):
    X, y = binary_data
    model = LogisticRegression(epochs=20).fit(X, y)
    assert model.coef_.shape == (1, 4) and model.intercept_.shape == (1,)
    assert model.classes_.tolist() == ["ham", "spam"]
    proba = model.predict_proba(X)
    assert proba.shape == (300, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # Column 1 is classes_[1]; predict picks the larger column.
    np.testing.assert_array_equal(model.predict(X), np.where(proba[:, 1] > 0.5, "spam", "ham"))
    assert model.decision_function(X).shape == (300,)

    X3, y3 = iris
    multi = LogisticRegression(epochs=20).fit(X3, y3)
    assert multi.coef_.shape == (3, 4) and multi.intercept_.shape == (3,)
    assert multi.predict_proba(X3).shape == (150, 3)
    assert (multi.predict(X3) == y3).mean() > 0.9


def test_history_records_every_epoch(binary_data):
    X, y = binary_data
    model = LogisticRegression(epochs=7, tol=0.0).fit(
        X[:200], y[:200], X_val=X[200:], y_val=y[200:]
    )
    assert [r["epoch"] for r in model.history_] == list(range(1, model.n_iter_ + 1))
    for record in model.history_:
        assert record["train_loss"] > 0 and record["val_loss"] > 0
        assert record["learning_rate"] > 0 and record["elapsed"] >= 0
    # The recorded training loss is the objective at the end of that epoch.
    if model.stop_reason_ == "max_epochs":
        assert model.history_[-1]["train_loss"] == pytest.approx(model.objective(X[:200], y[:200]))


def test_stop_reason_max_epochs(binary_data):
    X, y = binary_data
    model = LogisticRegression(epochs=3, tol=0.0).fit(X, y)
    assert (model.stop_reason_, model.n_iter_) == ("max_epochs", 3)


def test_stop_reason_converged(binary_data):
    X, y = binary_data
    model = LogisticRegression(batch_size="full", lr_schedule="constant", tol=1e-4).fit(X, y)
    assert model.stop_reason_ == "converged"
    losses = [r["train_loss"] for r in model.history_]
    assert abs(losses[-2] - losses[-1]) / losses[-1] < 1e-4


def test_stop_reason_max_time(binary_data):
    X, y = binary_data
    model = LogisticRegression(batch_size=1, epochs=100_000, tol=0.0, max_time=0.05).fit(X, y)
    assert model.stop_reason_ == "max_time"
    assert model.n_iter_ < 100_000


def test_early_stopping_keeps_the_best_weights(binary_data):
    X, y = binary_data
    # Validation labels flipped: the better the fit, the worse the validation loss.
    flipped = np.where(y[200:] == "spam", "ham", "spam")
    model = LogisticRegression(patience=3, tol=0.0).fit(
        X[:200], y[:200], X_val=X[200:], y_val=flipped
    )
    assert model.stop_reason_ == "early_stopping"
    val_losses = [r["val_loss"] for r in model.history_]
    best = int(np.argmin(val_losses))
    assert model.n_iter_ == best + 1 + 3
    restored = LogisticRegression(penalty="none")
    restored.__dict__.update({k: v for k, v in model.__dict__.items() if k.endswith("_")})
    assert restored.objective(X[200:], flipped) == pytest.approx(val_losses[best], rel=1e-9)


def test_divergence_names_the_learning_rate(binary_data):
    X, y = binary_data
    with pytest.raises(DivergenceError, match=r"learning_rate=1e\+06"):
        LogisticRegression(learning_rate=1e6, lr_schedule="constant").fit(X * 100, y)


def test_same_seed_same_bits_and_other_seed_differs(binary_data):
    X, y = binary_data
    first = LogisticRegression(seed=3, epochs=5, tol=0.0).fit(X, y)
    again = LogisticRegression(seed=3, epochs=5, tol=0.0).fit(X, y)
    other = LogisticRegression(seed=4, epochs=5, tol=0.0).fit(X, y)
    assert np.array_equal(first.coef_, again.coef_) and np.array_equal(
        first.intercept_, again.intercept_
    )
    assert not np.array_equal(first.coef_, other.coef_)


def test_float32_stays_float32_and_agrees(binary_data):
    X, y = binary_data
    single = LogisticRegression(dtype="float32", epochs=30, tol=0.0).fit(X, y)
    double = LogisticRegression(dtype="float64", epochs=30, tol=0.0).fit(X, y)
    assert single.coef_.dtype == np.float32 and single.intercept_.dtype == np.float32
    np.testing.assert_allclose(single.coef_, double.coef_, atol=1e-3)


@pytest.mark.parametrize("solver", ["sgd", "newton"])
def test_save_load_round_trip_is_exact(tmp_path, binary_data, iris, solver):
    for X, y in (binary_data, iris):
        frame = pd.DataFrame(X, columns=[f"c{j}" for j in range(X.shape[1])])
        model = LogisticRegression(solver=solver, epochs=10, class_weight={y[0]: 2.0}).fit(frame, y)
        path = tmp_path / "model.npz"
        model.save(path, metadata={"positive_class": str(y[0])})
        loaded = LogisticRegression.load(path)
        assert np.array_equal(loaded.coef_, model.coef_)
        assert np.array_equal(loaded.intercept_, model.intercept_)
        assert loaded.classes_.tolist() == model.classes_.tolist()
        assert loaded.classes_.dtype == model.classes_.dtype
        assert loaded.get_params() == model.get_params()
        assert loaded.feature_names_in_ == list(frame.columns)
        assert loaded.metadata_ == {"positive_class": str(y[0])}
        # The saved history has no clock time: a refit saves the same bytes (dvc.lock).
        assert loaded.history_ == [
            {key: value for key, value in record.items() if key != "elapsed"}
            for record in model.history_
        ]
        np.testing.assert_array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
        if solver == "newton":
            pd.testing.assert_frame_equal(loaded.summary(), model.summary())
    # Nothing pickled: the arrays load with allow_pickle=False (as load() does).
    with np.load(path, allow_pickle=False) as arrays:
        assert set(arrays.files) >= {"coef", "intercept"}


def test_newton_summary_multiclass_and_names(iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["sl", "sw", "pl", "pw"])
    table = LogisticRegression(solver="newton", alpha=1e-2).fit(frame, y).summary()
    assert table.index.names == ["class", "feature"]
    assert len(table) == 3 * 5
    assert {
        "coef",
        "std_err",
        "z",
        "p_value",
        "ci_low",
        "ci_high",
        "odds_ratio",
        "or_ci_low",
        "or_ci_high",
    } <= set(table.columns)
    assert (table["ci_low"] <= table["coef"]).all() and (table["coef"] <= table["ci_high"]).all()
    np.testing.assert_allclose(table["odds_ratio"], np.exp(table["coef"]))


def test_features_scaled_by_1e4_stay_finite(binary_data):
    X, y = binary_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LogisticRegression(solver="newton", alpha=1e-2).fit(X * 1e4, y)
        proba = model.predict_proba(X * 1e4)
        value = model.objective(X * 1e4, y)
    assert np.isfinite(proba).all() and np.isfinite(value)


def _fit(**kwargs):
    X = kwargs.pop("X", np.zeros((4, 2)))
    y = kwargs.pop("y", np.array([0, 1, 0, 1]))
    validation = {key: kwargs.pop(key) for key in ("X_val", "y_val") if key in kwargs}
    return LogisticRegression(**kwargs).fit(X, y, **validation)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"X": np.zeros((5, 2))}, "same length"),
        ({"X": np.array([[0.0, np.nan]] * 4)}, "NaN or inf"),
        ({"X": np.array([[0.0, np.inf]] * 4)}, "NaN or inf"),
        ({"y": np.array([1, 1, 1, 1])}, "at least two"),
        ({"X_val": np.zeros((0, 2)), "y_val": np.array([])}, "X_val has 0 rows and y_val 0"),
        ({"X_val": np.zeros((3, 2)), "y_val": np.array([0, 1])}, "X_val has 3 rows and y_val 2"),
        ({"penalty": "l3"}, "penalty: got 'l3'; allowed: one of 'l2', 'l1', 'none', 'elasticnet'"),
        ({"solver": "lbfgs"}, "solver: got 'lbfgs'; allowed: one of 'sgd', 'newton', 'proximal'"),
        ({"class_weight": "auto"}, "class_weight: got 'auto'; allowed: null, 'balanced'"),
        ({"batch_size": 0}, "batch_size: got 0; allowed: an integer >= 1 or 'full'"),
        ({"batch_size": -4}, "batch_size: got -4; allowed"),
        ({"learning_rate": 0.0}, "learning_rate: got 0.0; allowed: a number > 0"),
        ({"learning_rate": -1}, "learning_rate: got -1; allowed"),
        ({"epochs": 0}, "epochs: got 0; allowed: an integer >= 1"),
        ({"epoch_loss": "running"}, "epoch_loss: got 'running'; allowed: one of 'full'"),
        ({"alpha": -0.1}, "alpha: got -0.1; allowed: a number >= 0"),
        ({"l1_ratio": 1.5}, r"l1_ratio: got 1.5; allowed: a number in \[0, 1\]"),
        ({"l1_ratio": -0.1}, r"l1_ratio: got -0.1; allowed: a number in \[0, 1\]"),
        ({"solver": "newton", "penalty": "l1"}, "solver: got 'newton' with penalty='l1'; allowed"),
        ({"solver": "newton", "penalty": "elasticnet"}, "got 'newton' with penalty='elasticnet'"),
    ],
)
def test_bad_input_raises_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _fit(**kwargs)


def test_wrong_feature_count_at_predict_time(binary_data):
    X, y = binary_data
    model = LogisticRegression(epochs=2).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but the model was fitted with 4"):
        model.predict(X[:, :3])


def test_callback_sees_every_epoch_record(binary_data):
    X, y = binary_data
    seen = []
    model = LogisticRegression(epochs=6, tol=0.0).fit(
        X[:200], y[:200], X_val=X[200:], y_val=y[200:], callback=lambda r: seen.append(dict(r))
    )
    assert seen == model.history_
    newton_seen = []
    newton = LogisticRegression(solver="newton").fit(X, y, callback=newton_seen.append)
    assert newton_seen == newton.history_


@pytest.mark.parametrize("solver", ["sgd", "newton"])
def test_unpenalised_fit_on_separable_data_says_so(solver):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 3))
    X = X[np.abs(X[:, 0]) > 0.5][:200]  # a margin around the boundary x0 = 0
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(UserWarning, match="perfectly separable"):
        model = LogisticRegression(penalty="none", solver=solver, epochs=50).fit(X, y)
    assert model.separable_ is True
    assert np.isfinite(model.coef_).all()
    assert model.stop_reason_ in ("max_epochs", "converged", "newton_converged")
    penalised = LogisticRegression(penalty="l2", alpha=1e-2, solver=solver).fit(X, y)
    assert penalised.separable_ is None


def test_unpenalised_fit_on_overlapping_classes_is_not_flagged(binary_data):
    X, y = binary_data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = LogisticRegression(penalty="none", solver="newton").fit(X, y)
    assert model.separable_ is False


@pytest.mark.parametrize(
    "n_rows, batch_size, expected",
    [
        (10_000, 32, [0.5] * 5 + [0.25] * 5 + [0.125] * 2),  # 50,000 samples = 5 epochs
        (60_000, 256, [0.5 * 0.5**epoch for epoch in range(12)]),  # at most once an epoch
        (10_000, "full", [0.5] * 12),  # gradient descent: no noise to settle
    ],
)
def test_default_step_schedule_halves_every_50000_samples(n_rows, batch_size, expected):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, 3))
    y = (X[:, 0] + rng.logistic(size=n_rows) > 0).astype(int)
    model = LogisticRegression(
        batch_size=batch_size, learning_rate=0.5, epochs=12, tol=0.0, patience=None
    )
    rates = [record["learning_rate"] for record in model.fit(X, y).history_]
    assert rates == pytest.approx(expected, rel=1e-12)


def test_progressive_loss_changes_the_record_not_the_weights(binary_data):
    X, y = binary_data
    fits = {
        kind: LogisticRegression(epochs=8, tol=0.0, epoch_loss=kind).fit(X, y)
        for kind in ("full", "progressive")
    }
    np.testing.assert_array_equal(fits["full"].coef_, fits["progressive"].coef_)
    np.testing.assert_array_equal(fits["full"].intercept_, fits["progressive"].intercept_)
    full, progressive = ([r["train_loss"] for r in fits[k].history_] for k in fits)
    # Every row's loss is taken before its batch's step, so while J falls the progressive
    # loss runs above J at the epoch's end.
    assert progressive[0] > full[0]


@pytest.mark.parametrize("data", ["binary_data", "iris"])
def test_full_batch_progressive_loss_is_the_previous_epochs_objective(data, request):
    # With one batch, every row is visited at the weights the epoch started from: the
    # progressive loss of epoch e is J after epoch e − 1 (no penalty, which would be
    # taken at the epoch's end), and J(0) = log 2 or log K for epoch 1.
    X, y = request.getfixturevalue(data)
    params = {"batch_size": "full", "penalty": "none", "epochs": 10, "tol": 0.0}
    full = LogisticRegression(**params).fit(X, y).history_
    progressive = LogisticRegression(**params, epoch_loss="progressive").fit(X, y).history_
    assert progressive[0]["train_loss"] == pytest.approx(np.log(max(len(np.unique(y)), 2)))
    assert [r["train_loss"] for r in progressive[1:]] == pytest.approx(
        [r["train_loss"] for r in full[:-1]], rel=1e-12
    )


def test_progressive_loss_settles_on_the_objective(binary_data):
    X, y = binary_data
    params = {"epochs": 300, "tol": 0.0, "learning_rate": 0.05}
    full = LogisticRegression(**params).fit(X, y).history_[-1]["train_loss"]
    model = LogisticRegression(**params, epoch_loss="progressive").fit(X, y)
    assert model.history_[-1]["train_loss"] == pytest.approx(full, rel=1e-3)
    assert model.objective(X, y) == pytest.approx(full, rel=1e-12)
