"""The fused SGD loop takes exactly the steps of the plain reference step, batch by batch.

The reference (:func:`logreg.model.equations.sgd_step`) is written with the equations'
gradient, which tests/test_model_math.py checks against finite differences. Here
the same batches are visited in the same seeded order by a loop written in the test,
and the weights after a few epochs must agree with the fast loop's to rounding.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from logreg.model.equations import sgd_step
from logreg.model.newton import newton_solve
from logreg.model.rows import InMemoryRows
from logreg.model.sgd import learning_rate, sgd_solve

PENALTIES = {"none": (0.0, 0.0), "l2": (0.05, 0.0), "l1": (0.05, 1.0), "elasticnet": (0.05, 0.4)}
EPOCHS, LR0, SCHEDULE = 3, 0.1, "invscaling"


def _problem(n_classes: int, weighted: bool, n: int = 150, d: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    true_W = rng.standard_normal((d, n_classes))
    labels = np.argmax(X @ true_W + rng.gumbel(size=(n, n_classes)), axis=1)
    Y = labels[:, None].astype(float) if n_classes == 2 else np.eye(n_classes)[labels]
    s = rng.uniform(0.2, 3.0, size=n) if weighted else np.ones(n)
    return X, Y, s


def reference_fit(rows, *, batch_size, alpha, l1_ratio, momentum, fit_intercept, seed):
    """SGD as the lesson writes it: shuffle, cut batches, visit them in random order."""
    rng = np.random.default_rng(seed)
    n, B = rows.n_rows, min(batch_size, rows.n_rows)
    batches = []
    for block in rows.blocks():  # the fast loop's shuffle: each block's rows once, in order
        batches += _shuffled_batches(block, rng, B)
    W, b, velocity, received, offered = _zero_weights(
        batches[0][0].shape[1], batches[0][1].shape[1]
    )
    lr = LR0
    for epoch in range(EPOCHS):
        lr = learning_rate(SCHEDULE, LR0, epoch, lr, n, B)
        for index in rng.permutation(len(batches)):
            W, b, velocity, received, offered = _reference_step(
                (W, b, velocity, received, offered), batches[index], B, lr,
                alpha=alpha, l1_ratio=l1_ratio, momentum=momentum, fit_intercept=fit_intercept,
            )  # fmt: skip
    return W, b


def _shuffled_batches(block, rng, B):
    order = rng.permutation(block.X.shape[0])
    X, Y, s = block.X[order], block.Y[order], block.s[order]
    return [(X[i : i + B], Y[i : i + B], s[i : i + B]) for i in range(0, len(order), B)]


def _zero_weights(D, K):
    """W, b, the momentum's velocity, the L1 shrinkage received and offered: all zero."""
    W, b = np.zeros((D, K)), np.zeros(K)
    return W, b, (np.zeros_like(W), np.zeros_like(b)), np.zeros_like(W), 0.0


def _reference_step(weights, batch, B, lr, **penalty_and_momentum):
    """One step of equations.sgd_step, with the L1 shrinkage offered so far brought up to date."""
    W, b, velocity, received, offered = weights
    offered += (
        lr * penalty_and_momentum["alpha"] * penalty_and_momentum["l1_ratio"] * len(batch[0]) / B
    )
    W, b, velocity, received = sgd_step(
        W, b, velocity, received, batch, full_batch=B, lr=lr, l1_offered=offered,
        **penalty_and_momentum,
    )  # fmt: skip
    return W, b, velocity, received, offered


def fast_fit(rows, *, batch_size, alpha, l1_ratio, momentum, fit_intercept, seed):
    W, b, record = sgd_solve(
        rows,
        alpha=alpha,
        l1_ratio=l1_ratio,
        fit_intercept=fit_intercept,
        batch_size=batch_size,
        learning_rate0=LR0,
        lr_schedule=SCHEDULE,
        momentum=momentum,
        epochs=EPOCHS,
        epoch_loss="full",
        tol=0.0,
        patience=None,
        max_time=None,
        rng=np.random.default_rng(seed),
    )
    assert record.n_iter == EPOCHS
    return W, b


@pytest.mark.parametrize(
    "batch_size, n_classes, penalty, momentum, weighted, fit_intercept",
    list(
        itertools.product([1, 7, 64], [2, 3], PENALTIES, [0.0, 0.9], [False, True], [True, False])
    ),
)
def test_fast_loop_takes_the_reference_steps(
    batch_size, n_classes, penalty, momentum, weighted, fit_intercept
):
    X, Y, s = _problem(n_classes, weighted)
    alpha, l1_ratio = PENALTIES[penalty]
    options = dict(
        batch_size=batch_size,
        alpha=alpha,
        l1_ratio=l1_ratio,
        momentum=momentum,
        fit_intercept=fit_intercept,
        seed=3,
    )
    rows = InMemoryRows.of(X, Y, s)
    W_fast, b_fast = fast_fit(rows, **options)
    W_ref, b_ref = reference_fit(rows, **options)
    assert np.abs(W_ref).max() > 0.05  # the steps went somewhere
    np.testing.assert_allclose(W_fast, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b_fast, b_ref, rtol=1e-9, atol=1e-12)
    if l1_ratio:  # the L1 step leaves exact zeros, in both
        np.testing.assert_array_equal(W_fast == 0.0, W_ref == 0.0)
    if not fit_intercept:
        assert not b_fast.any()


@pytest.mark.parametrize("n_classes, penalty", [(2, "l1"), (3, "elasticnet"), (2, "l2")])
def test_fast_loop_on_several_blocks_takes_the_reference_steps(n_classes, penalty):
    # Blocks of 40, 40, 40 and 30 rows: each block shuffled on its own, the batches of
    # every block visited in one random order, the short last batch of each block
    # weighted by its share m/B. The interface that Dask partitions will stand behind.
    X, Y, s = _problem(n_classes, weighted=True)
    alpha, l1_ratio = PENALTIES[penalty]
    options = dict(
        batch_size=16, alpha=alpha, l1_ratio=l1_ratio, momentum=0.5, fit_intercept=True, seed=1
    )
    rows = InMemoryRows.of(X, Y, s, block_rows=40)
    assert [block.X.shape[0] for block in rows.blocks()] == [40, 40, 40, 30]
    W_fast, b_fast = fast_fit(rows, **options)
    W_ref, b_ref = reference_fit(rows, **options)
    np.testing.assert_allclose(W_fast, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b_fast, b_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_newton_on_several_blocks_reaches_the_one_block_optimum(n_classes):
    # Newton sums the gradient and the Hessian over blocks: how many blocks hold the rows
    # must not move the optimum or the Hessian kept for inference. Both stop at the
    # estimator's default tolerance, where J is flat to rounding: θ is pinned to ~1e-8.
    X, Y, s = _problem(n_classes, weighted=True, n=400)
    options = dict(alpha=0.01, fit_intercept=True, max_iter=50, tol=1e-14, max_time=None)
    one = newton_solve(InMemoryRows.of(X, Y, s), rng=np.random.default_rng(0), **options)
    many = newton_solve(
        InMemoryRows.of(X, Y, s, block_rows=64), rng=np.random.default_rng(0), **options
    )
    assert one[2].stop_reason == many[2].stop_reason == "newton_converged"
    np.testing.assert_allclose(many[0], one[0], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(many[1], one[1], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(many[2].hessian, one[2].hessian, rtol=1e-7, atol=1e-12)


def streamed_reference_fit(rows, *, batch_size, alpha, l1_ratio, momentum, fit_intercept, seed):
    """Streaming SGD as written: each block's rows shuffled once and cut into batches;
    then each epoch, the blocks in random order and each block's batches in random order."""
    rng = np.random.default_rng(seed)
    n, B = rows.n_rows, min(batch_size, rows.n_rows)
    batches_of = [_shuffled_batches(block, rng, B) for block in rows.blocks()]
    W, b, velocity, received, offered = _zero_weights(
        batches_of[0][0][0].shape[1], batches_of[0][0][1].shape[1]
    )
    lr = LR0
    for epoch in range(EPOCHS):
        lr = learning_rate(SCHEDULE, LR0, epoch, lr, n, B)
        for block_index in rng.permutation(len(batches_of)):
            batches = batches_of[block_index]
            for index in rng.permutation(len(batches)):
                W, b, velocity, received, offered = _reference_step(
                    (W, b, velocity, received, offered), batches[index], B, lr,
                    alpha=alpha, l1_ratio=l1_ratio, momentum=momentum, fit_intercept=fit_intercept,
                )  # fmt: skip
    return W, b


@pytest.mark.parametrize(
    "batch_size, n_classes, penalty, momentum, fit_intercept",
    list(
        itertools.product([1, 7, 64], [2, 3], ["l2", "l1", "elasticnet"], [0.0, 0.9], [True, False])
    ),
)
def test_streamed_epochs_take_the_reference_steps(
    batch_size, n_classes, penalty, momentum, fit_intercept
):
    X, Y, s = _problem(n_classes, weighted=True)
    alpha, l1_ratio = PENALTIES[penalty]
    options = dict(
        batch_size=batch_size, alpha=alpha, l1_ratio=l1_ratio, momentum=momentum,
        fit_intercept=fit_intercept, seed=5,
    )  # fmt: skip
    rows = InMemoryRows.of(X, Y, s, block_rows=40)  # 4 blocks: 40, 40, 40, 30 rows
    W, b, record = sgd_solve(
        rows, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, batch_size=batch_size,
        learning_rate0=LR0, lr_schedule=SCHEDULE, momentum=momentum, epochs=EPOCHS,
        epoch_loss="progressive", tol=0.0, patience=None, max_time=None,
        rng=np.random.default_rng(5), streamed=True,
    )  # fmt: skip
    W_ref, b_ref = streamed_reference_fit(rows, **options)
    assert record.n_iter == EPOCHS and np.abs(W_ref).max() > 0.05
    np.testing.assert_allclose(W, W_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, b_ref, rtol=1e-9, atol=1e-12)
