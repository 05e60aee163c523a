"""Row blocks on a Dask cluster: the solvers run on them unchanged, to the same answer.

A LocalCluster of two worker processes holds the blocks, so every function a solver
sends (closures over the weights) really crosses a process boundary. The reference is
the same solver on the same rows in memory, and, independently, the gradient of the
objective written out in NumPy, which must vanish at the optimum.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.preprocessing import StandardScaler

from conftest import KillAWorker, local_dask_client
from logreg.engines.dask_rows import DaskRows, sample_counts, sampled_rows
from logreg.model.newton import newton_solve
from logreg.model.rows import Block, InMemoryRows
from logreg.model.sgd import validation_loss

ALPHA = 1e-3


@pytest.fixture(scope="module")
def client():
    with local_dask_client() as client:
        yield client


def _one_hot_or_column(y: np.ndarray) -> np.ndarray:
    classes = np.unique(y)
    if len(classes) == 2:
        return (y == classes[1]).astype(float)[:, None]
    return (y[:, None] == classes[None, :]).astype(float)


def _problem(loader) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    s = np.where(y == y.max(), 2.0, 1.0)  # sample weights, as class weights would give
    return X, _one_hot_or_column(y), s


def _blocks(X, Y, s, cuts) -> list[Block]:
    edges = [0, *cuts, len(X)]
    return [Block(X[a:b], Y[a:b], s[a:b]) for a, b in itertools.pairwise(edges)]


def _solve(rows, seed=0):
    return newton_solve(
        rows, alpha=ALPHA, fit_intercept=True, max_iter=50, tol=1e-20, max_time=None,
        rng=np.random.default_rng(seed),
    )  # fmt: skip


def _gradient(X, Y, s, W, b) -> np.ndarray:
    """∇J, written out: (1/n) X̃ᵀ S (P − Y) + α(W; 0), with σ or softmax for P."""
    Z = X @ W + b
    if Y.shape[1] == 1:
        P = 1.0 / (1.0 + np.exp(-Z))
    else:
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        P = E / E.sum(axis=1, keepdims=True)
    R = s[:, None] * (P - Y) / len(X)
    return np.vstack([X.T @ R + ALPHA * W, R.sum(axis=0)])


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine], ids=["binary", "softmax"])
def test_newton_on_dask_partitions_reaches_the_in_memory_optimum(client, loader):
    X, Y, s = _problem(loader)
    cuts = [50, 51, len(X) // 2]  # uneven partitions, one of a single row
    W, b, record = _solve(DaskRows.scatter(client, _blocks(X, Y, s, cuts)))
    W_mem, b_mem, record_mem = _solve(InMemoryRows.of(X, Y, s))

    assert np.abs(_gradient(X, Y, s, W, b)).max() < 1e-10
    np.testing.assert_allclose(W, W_mem, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, b_mem, rtol=1e-9, atol=1e-12)
    # The same Hessian, up to the order of the additions at weights equal to ~1e-10.
    scale = np.abs(record_mem.hessian).max()
    np.testing.assert_allclose(record.hessian, record_mem.hessian, rtol=0, atol=1e-8 * scale)
    # The first steps are the same; the last, at rounding level, may stop one apart.
    first = [r["train_loss"] for r in record.history[:5]]
    np.testing.assert_allclose(first, [r["train_loss"] for r in record_mem.history[:5]], rtol=1e-12)


def _sketched_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Large enough for Newton's subsampled Hessian (n ≥ 4·50·p)."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(20_000, 5))
    y = (X @ [1.0, -2.0, 0.5, 0.0, 1.5] + rng.logistic(size=20_000) > 2.0).astype(float)
    return X, y[:, None], np.ones(len(y))


SKETCH_CUTS = [7_000, 7_001, 13_000]


def test_the_sketched_hessian_on_partitions_changes_the_path_not_the_optimum(client):
    # The workers draw the sample, per partition: not the rows the in-memory draw takes,
    # so the first steps differ, and the optimum is the same.
    X, Y, s = _sketched_problem()
    rows = DaskRows.scatter(client, _blocks(X, Y, s, SKETCH_CUTS))
    dask_fit, again, other_seed = _solve(rows), _solve(rows), _solve(rows, seed=1)
    memory_fit = _solve(InMemoryRows.of(X, Y, s))
    losses = [[r["train_loss"] for r in fit[2].history] for fit in (dask_fit, again, other_seed)]
    assert losses[0] == losses[1]  # a seed draws the same rows
    assert losses[0][0] != losses[2][0]  # the first step is a sampled one
    np.testing.assert_allclose(dask_fit[0], memory_fit[0], rtol=1e-9)
    np.testing.assert_allclose(dask_fit[1], memory_fit[1], rtol=1e-9)
    assert np.abs(_gradient(X, Y, s, dask_fit[0], dask_fit[1])).max() < 1e-10


def _row_ids(sizes) -> list[Block]:
    """Blocks whose X holds each row's number in the whole table."""
    starts = np.cumsum([0, *sizes])
    return [
        Block(np.arange(a, a + m, dtype=float)[:, None], np.zeros((m, 1)), np.ones(m))
        for a, m in zip(starts[:-1], sizes, strict=True)
    ]


def test_the_partitions_draws_sample_every_row_alike():
    # A uniform sample without replacement: each of the 60 rows in 12/60 of the draws,
    # whatever its block, never twice in one draw (the client draws only the counts).
    sizes = [10, 30, 0, 20]
    blocks, n, k, draws = _row_ids(sizes), sum(sizes), 12, 5_000
    rng = np.random.default_rng(0)
    seen = np.zeros(n)
    for _ in range(draws):
        counts, seed = sample_counts(sizes, k, rng)
        assert sum(counts) == k and all(0 <= c <= m for c, m in zip(counts, sizes, strict=True))
        draw = enumerate(zip(blocks, counts, strict=True))
        rows = [sampled_rows(block, (c, (seed, i))) for i, (block, c) in draw]
        ids = np.concatenate([r.X[:, 0] for r in rows]).astype(int)
        assert len(np.unique(ids)) == k and np.all(np.diff(ids) > 0)  # in row order
        seen[ids] += 1
    spread = 4 * np.sqrt(k / n * (1 - k / n) / draws)
    np.testing.assert_allclose(seen / draws, k / n, atol=spread)
    # A task run twice (a rerun after its worker died) draws the same rows.
    first, second = (sampled_rows(blocks[1], (7, (123, 1))) for _ in range(2))
    np.testing.assert_array_equal(first.X, second.X)


def test_a_sample_of_cached_partitions_is_a_row_cache_beside_theirs(client, tmp_path):
    from logreg.engines.dask_train import open_cached
    from logreg.engines.memmap_rows import write_row_cache

    X, Y, s = _sketched_problem()
    folders = [
        str(write_row_cache([block], tmp_path / f"part-{i:05d}"))
        for i, block in enumerate(_blocks(X, Y, s, SKETCH_CUTS))
    ]
    cached = DaskRows.load(client, str, folders, open=open_cached)
    sample = cached.sample(5_000, np.random.default_rng(4))
    assert sum(sample.sizes) == 5_000
    assert [part.result() for part in sample.parts] == [f"{f}.sample" for f in folders]
    ids = {tuple(row) for block in sample.blocks() for row in block.X}
    assert len(ids) == 5_000 and ids <= {tuple(row) for row in X}  # rows of X, none twice
    # Newton on the cached rows, its sample read from disk: the in-memory optimum.
    W, b, _ = _solve(cached)
    W_mem, b_mem, _ = _solve(InMemoryRows.of(X, Y, s))
    np.testing.assert_allclose(W, W_mem, rtol=1e-9)
    np.testing.assert_allclose(b, b_mem, rtol=1e-9)


def test_partitions_read_by_the_workers_from_parquet_files(client, tmp_path):
    X, Y, s = _problem(load_breast_cancer)
    paths = []
    for i, block in enumerate(_blocks(X, Y, s, [100, 300])):
        frame = pd.DataFrame(block.X).rename(columns=str).assign(y=block.Y[:, 0], s=block.s)
        paths.append(tmp_path / f"part-{i}.parquet")
        frame.to_parquet(paths[-1])

    def read(path) -> Block:
        frame = pd.read_parquet(path)
        features = frame.drop(columns=["y", "s"]).to_numpy()
        return Block(features, frame[["y"]].to_numpy(), frame["s"].to_numpy())

    rows = DaskRows.load(client, read, paths)
    assert rows.sizes == (100, 200, len(X) - 300)
    W, b, _ = _solve(rows)
    assert np.abs(_gradient(X, Y, s, W, b)).max() < 1e-10
    # The validation loss is a map-reduce too: Σ s·CE / n over the partitions.
    Z = X @ W + b
    cross_entropy = np.logaddexp(0.0, Z[:, 0]) - Y[:, 0] * Z[:, 0]
    assert validation_loss(rows, W, b) == pytest.approx(
        (s * cross_entropy).sum() / len(X), rel=1e-12
    )


def test_a_worker_killed_mid_fit_changes_nothing(tmp_path):
    # Blocks read from files (not scattered) can be read again: when a worker dies, Dask
    # reruns the lost tasks from their inputs, and the fit goes on to the same optimum.
    X, Y, s = _problem(load_breast_cancer)
    paths = []
    for i, block in enumerate(_blocks(X, Y, s, [150, 300, 450])):
        paths.append(tmp_path / f"part-{i}.npz")
        np.savez(paths[-1], X=block.X, Y=block.Y, s=block.s)

    def read(path) -> Block:
        with np.load(path) as arrays:
            return Block(arrays["X"], arrays["Y"], arrays["s"])

    undisturbed = _solve(InMemoryRows(tuple(read(p) for p in paths)))
    with local_dask_client() as client:
        rows = DaskRows.load(client, read, paths)
        kill_once = KillAWorker(client)
        W, b, record = newton_solve(
            rows, alpha=ALPHA, fit_intercept=True, max_iter=50, tol=1e-20, max_time=None,
            rng=np.random.default_rng(0), callback=kill_once,
        )  # fmt: skip
        assert kill_once.replaced(), "a worker died after the first step"
    # The same optimum; not bit for bit, as workers run BLAS on one thread.
    np.testing.assert_allclose(W, undisturbed[0], rtol=1e-8)
    np.testing.assert_allclose(b, undisturbed[1], rtol=1e-8)
    scale = np.abs(undisturbed[2].hessian).max()
    np.testing.assert_allclose(record.hessian, undisturbed[2].hessian, rtol=0, atol=1e-8 * scale)


def test_l1_by_proximal_newton_on_dask_partitions_reaches_the_in_memory_optimum(client):
    from logreg.model.prox_newton import prox_newton_solve

    X, Y, s = _problem(load_breast_cancer)
    settings = {
        "alpha": 0.01, "l1_ratio": 1.0, "fit_intercept": True, "max_iter": 100, "tol": 1e-12,
        "max_time": None,
    }  # fmt: skip
    W, b, _ = prox_newton_solve(
        DaskRows.scatter(client, _blocks(X, Y, s, [200, 201])),
        rng=np.random.default_rng(0),
        **settings,
    )
    W_mem, b_mem, _ = prox_newton_solve(
        InMemoryRows.of(X, Y, s), rng=np.random.default_rng(0), **settings
    )
    np.testing.assert_array_equal(W == 0, W_mem == 0)
    np.testing.assert_allclose(W, W_mem, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(b, b_mem, rtol=1e-8)


def test_sgd_streams_dask_partitions_as_it_streams_memory(client):
    from logreg.model.sgd import sgd_solve

    X, Y, s = _problem(load_breast_cancer)
    blocks = _blocks(X, Y, s, [100, 101, 400])

    def sgd(rows, validation):
        return sgd_solve(
            rows, alpha=1e-3, l1_ratio=0.5, fit_intercept=True, batch_size=16,
            learning_rate0="auto", lr_schedule="step", momentum=0.9, epochs=5,
            epoch_loss="full", tol=0.0, patience=None, max_time=None,
            rng=np.random.default_rng(0), validation=validation, streamed=True,
        )  # fmt: skip

    on_dask = sgd(DaskRows.scatter(client, blocks), DaskRows.scatter(client, blocks[:2]))
    in_memory = sgd(InMemoryRows(tuple(blocks)), InMemoryRows(tuple(blocks[:2])))
    np.testing.assert_array_equal(on_dask[0], in_memory[0])  # the same steps, bit for bit
    np.testing.assert_array_equal(on_dask[1], in_memory[1])
    losses = [[r["val_loss"] for r in fit[2].history] for fit in (on_dask, in_memory)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-12)  # map-reduced on the workers
