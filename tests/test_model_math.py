"""The loss and its gradient, checked against finite differences and textbook identities."""

import itertools
import warnings

import numpy as np
import pytest

from logreg.model.equations import (
    cross_entropy,
    loss_and_gradient,
    objective_value,
    predict_probabilities,
    sigmoid,
    softmax,
)

PENALTIES = {"none": (0.0, 0.0), "l2": (0.3, 0.0), "l1": (0.3, 1.0), "elasticnet": (0.3, 0.4)}


def _problem(n_classes: int, weighted: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    n, d = 40, 5
    X = rng.standard_normal((n, d))
    labels = rng.integers(0, n_classes, size=n)
    Y = labels[:, None].astype(float) if n_classes == 2 else np.eye(n_classes)[labels]
    s = rng.uniform(0.2, 3.0, size=n) if weighted else np.ones(n)
    K = Y.shape[1]
    # Weights kept away from zero so |W| is differentiable where we probe it.
    W = rng.choice([-1.0, 1.0], size=(d, K)) * rng.uniform(0.2, 1.0, size=(d, K))
    b = rng.standard_normal(K)
    return X, Y, s, W, b


@pytest.mark.parametrize(
    "n_classes, penalty, weighted, fit_intercept",
    list(itertools.product([2, 3], PENALTIES, [False, True], [False, True])),
)
def test_gradient_matches_central_differences(n_classes, penalty, weighted, fit_intercept):
    X, Y, s, W, b = _problem(n_classes, weighted)
    if not fit_intercept:
        b = np.zeros_like(b)
    alpha, l1_ratio = PENALTIES[penalty]
    _, grad_W, grad_b = loss_and_gradient(X, Y, s, W, b, alpha, l1_ratio)

    h = 1e-6
    numeric_W = np.zeros_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        numeric_W[index] = (
            objective_value(X, Y, s, W + step, b, alpha, l1_ratio)
            - objective_value(X, Y, s, W - step, b, alpha, l1_ratio)
        ) / (2 * h)
    np.testing.assert_allclose(grad_W, numeric_W, rtol=1e-6, atol=1e-8)
    if fit_intercept:
        numeric_b = np.array(
            [
                (
                    objective_value(X, Y, s, W, b + h * e, alpha, l1_ratio)
                    - objective_value(X, Y, s, W, b - h * e, alpha, l1_ratio)
                )
                / (2 * h)
                for e in np.eye(len(b))
            ]
        )
        np.testing.assert_allclose(grad_b, numeric_b, rtol=1e-6, atol=1e-8)


def test_cross_entropy_equals_negative_log_probability_of_the_observed_class():
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((30, 1))
    y = rng.integers(0, 2, size=30)
    p = 1 / (1 + np.exp(-Z[:, 0]))
    expected = -np.where(y == 1, np.log(p), np.log(1 - p))
    np.testing.assert_allclose(cross_entropy(Z, y[:, None].astype(float)), expected, rtol=1e-12)

    Z3 = rng.standard_normal((30, 4))
    y3 = rng.integers(0, 4, size=30)
    P3 = np.exp(Z3) / np.exp(Z3).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(
        cross_entropy(Z3, np.eye(4)[y3]), -np.log(P3[np.arange(30), y3]), rtol=1e-12
    )


def test_two_class_softmax_is_the_sigmoid_of_the_logit_difference():
    z = np.linspace(-8, 8, 17)
    P = softmax(np.column_stack([np.zeros_like(z), z]))
    np.testing.assert_allclose(P[:, 1], sigmoid(z), rtol=1e-12)


def test_extreme_logits_stay_finite_and_silent():
    Z = np.array([[-1e4], [-50.0], [0.0], [50.0], [1e4]])
    Y = np.array([[1.0], [0.0], [1.0], [1.0], [0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses = cross_entropy(Z, Y)
        probabilities = predict_probabilities(Z)
        multi = cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
        softmax_probabilities = softmax(np.array([[1e4, -1e4, 0.0]]))
    assert np.isfinite(losses).all() and np.isfinite(multi).all()
    # A wrong prediction at logit ±1e4 costs about 1e4 nats; a right one costs nothing.
    np.testing.assert_allclose(losses, [1e4, 0.0, np.log(2), 0.0, 1e4], atol=1e-12, rtol=1e-12)
    np.testing.assert_allclose(multi, [2e4])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(softmax_probabilities, [[1.0, 0.0, 0.0]])


@pytest.mark.parametrize(
    "n_classes, penalty, weighted, momentum",
    list(itertools.product([2, 3], ["none", "l2"], [False, True], [0.0, 0.9])),
)
def test_full_batch_sgd_is_gradient_descent_on_the_checked_gradient(
    n_classes, penalty, weighted, momentum
):
    # One batch per epoch: each epoch must be exactly θ ← θ − lr·∇J (or heavy ball,
    # v ← μv + ∇J, θ ← θ − lr·v), with ∇J from loss_and_gradient, which the
    # finite-difference test above checks. This pins the fused hot loop to the textbook.
    from logreg import LogisticRegression

    X, Y, s, _, _ = _problem(n_classes, weighted, seed=1)
    labels = Y[:, 0] if n_classes == 2 else Y.argmax(axis=1)
    alpha, _ = PENALTIES[penalty]
    lr, epochs = 0.3, 12
    model = LogisticRegression(
        penalty=penalty,
        alpha=alpha,
        batch_size="full",
        learning_rate=lr,
        lr_schedule="constant",
        momentum=momentum,
        epochs=epochs,
        tol=0.0,
        patience=None,
    ).fit(X, labels, sample_weight=s)

    W, b = np.zeros((X.shape[1], Y.shape[1])), np.zeros(Y.shape[1])
    velocity_W, velocity_b = np.zeros_like(W), np.zeros_like(b)
    for _ in range(epochs):
        _, grad_W, grad_b = loss_and_gradient(X, Y, s, W, b, alpha, 0.0)
        velocity_W, velocity_b = momentum * velocity_W + grad_W, momentum * velocity_b + grad_b
        W, b = W - lr * velocity_W, b - lr * velocity_b
    np.testing.assert_allclose(model.coef_, W.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.intercept_, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_objective_at_zero_weights_is_log_of_the_class_count(n_classes):
    # SGD takes its initial loss from this identity instead of a pass over X.
    X, Y, s, W, b = _problem(n_classes, weighted=True)
    zero_W, zero_b = np.zeros_like(W), np.zeros_like(b)
    value = objective_value(X, Y, s, zero_W, zero_b, 0.3, 0.5)
    assert value == pytest.approx(np.log(n_classes) * s.sum() / len(s), rel=1e-12)
