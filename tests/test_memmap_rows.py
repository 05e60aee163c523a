"""A row-major cache on disk as row blocks: the solvers read it as they read arrays."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from logreg.engines.memmap_rows import MemmapRows, write_row_cache
from logreg.errors import UserError
from logreg.model.newton import newton_solve
from logreg.model.rows import Block, InMemoryRows
from logreg.model.sgd import validation_loss


def _blocks(cuts: list[int]) -> list[Block]:
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Y, s = y[:, None].astype(float), np.where(y == 1, 1.0, 1.7)
    edges = [0, *cuts, len(X)]
    return [Block(X[a:b], Y[a:b], s[a:b]) for a, b in itertools.pairwise(edges)]


def _newton(rows):
    return newton_solve(
        rows, alpha=1e-3, fit_intercept=True, max_iter=50, tol=1e-20, max_time=None,
        rng=np.random.default_rng(0),
    )  # fmt: skip


def test_newton_on_the_cache_is_newton_on_the_same_blocks_in_memory(tmp_path):
    blocks = _blocks([100, 101, 400])
    rows = MemmapRows.open(write_row_cache(iter(blocks), tmp_path / "cache"))
    assert rows.sizes == (100, 1, 299, 569 - 400) and rows.n_rows == 569
    first = next(rows.blocks())
    # Paged, not loaded: a plain view of the map (np.memmap operations cost more).
    assert type(first.X) is np.ndarray and isinstance(first.X.base, np.memmap)
    assert first.X.flags.c_contiguous

    W, b, record = _newton(rows)
    W_mem, b_mem, record_mem = _newton(InMemoryRows(tuple(blocks)))
    # The same blocks, the same sums in the same order: the same bits.
    np.testing.assert_array_equal(W, W_mem)
    np.testing.assert_array_equal(b, b_mem)
    np.testing.assert_array_equal(record.hessian, record_mem.hessian)
    assert validation_loss(rows, W, b) == validation_loss(InMemoryRows(tuple(blocks)), W, b)


def test_the_cache_keeps_the_working_dtype(tmp_path):
    rows = MemmapRows.open(write_row_cache(_blocks([300]), tmp_path, dtype=np.float32))
    block = next(rows.blocks())
    assert block.X.dtype == block.Y.dtype == block.s.dtype == np.float32
    np.testing.assert_allclose(block.X, _blocks([300])[0].X, rtol=1e-6)


def test_a_cache_without_its_manifest_is_one_clear_error(tmp_path):
    write_row_cache(_blocks([300]), tmp_path / "cache")
    (tmp_path / "cache" / "rows.json").unlink()  # as if the writer died before the end
    with pytest.raises(UserError, match=r"cache: not a complete row cache \(no rows.json\)"):
        MemmapRows.open(tmp_path / "cache")


def test_sgd_streams_the_cache_as_close_to_the_optimum_as_in_memory(tmp_path):
    from logreg.model.equations import objective_value
    from logreg.model.sgd import sgd_solve

    blocks = _blocks([150, 300, 450])
    alpha = 1e-3

    def sgd(rows):
        return sgd_solve(
            rows, alpha=alpha, l1_ratio=0.0, fit_intercept=True, batch_size=32,
            learning_rate0="auto", lr_schedule="step", momentum=0.0, epochs=300,
            epoch_loss="full", tol=0.0, patience=None, max_time=None,
            rng=np.random.default_rng(0),
        )  # fmt: skip

    X, Y, s = (np.concatenate([getattr(blk, part) for blk in blocks]) for part in ("X", "Y", "s"))
    W_opt, b_opt, _ = _newton(InMemoryRows(tuple(blocks)))
    J_opt = objective_value(X, Y, s, W_opt, b_opt, alpha, 0.0)
    W, b, record = sgd(MemmapRows.open(write_row_cache(blocks, tmp_path / "cache")))
    J = objective_value(X, Y, s, W, b, alpha, 0.0)
    assert record.history[-1]["train_loss"] == pytest.approx(J, rel=1e-12)  # the full loss
    W_mem, b_mem, _ = sgd(InMemoryRows(tuple(blocks)))
    in_memory_gap = objective_value(X, Y, s, W_mem, b_mem, alpha, 0.0) - J_opt
    # SGD's noise floor on breast_cancer at batch 32 is ~2e-3 of J either way.
    assert 0.0 <= J - J_opt <= 1.5 * in_memory_gap and J - J_opt < 5e-3 * J_opt


def test_streamed_sgd_shuffles_each_block_once_and_keeps_the_copy_beside_the_cache(
    tmp_path, monkeypatch
):
    # Streaming SGD copies each block into its shuffled order once per fit, not once per
    # epoch: the copy is kept beside the cache (memory-mapped by every visit), then removed.
    from logreg.model import sgd_kernels
    from logreg.model.sgd import sgd_solve

    copies = []
    shuffled_design = sgd_kernels.shuffled_design
    monkeypatch.setattr(
        sgd_kernels, "shuffled_design", lambda *a, **k: copies.append(1) or shuffled_design(*a, **k)
    )
    blocks = _blocks([150, 300, 450])
    cache = write_row_cache(blocks, tmp_path / "cache")
    kept_during_fit = []

    # Elastic net and momentum: the L1 totals and the velocity pass from block to block.
    settings = {"alpha": 1e-3, "l1_ratio": 0.5, "fit_intercept": True, "batch_size": 32,
                "learning_rate0": "auto", "lr_schedule": "step", "momentum": 0.9, "epochs": 4,
                "epoch_loss": "full", "tol": 0.0, "patience": None, "max_time": None}  # fmt: skip

    def sgd(rows, callback=None):
        rng = np.random.default_rng(0)
        return sgd_solve(rows, rng=rng, streamed=True, callback=callback, **settings)

    W, b, record = sgd(
        MemmapRows.open(cache),
        callback=lambda _: kept_during_fit.append(len(list(cache.glob(".kept-*")))),
    )
    assert record.n_iter == 4 and len(copies) == 4  # 4 blocks, whatever the epochs
    assert kept_during_fit == [4, 4, 4, 4] and not list(cache.glob(".kept-*"))
    # The copies on disk are the copies that streamed SGD keeps in memory: the same steps.
    W_mem, b_mem, record_mem = sgd(InMemoryRows(tuple(blocks)))
    np.testing.assert_array_equal(W, W_mem)
    np.testing.assert_array_equal(b, b_mem)
    assert [r["train_loss"] for r in record.history] == [
        r["train_loss"] for r in record_mem.history
    ]


def _count_designs_of_kept_rows(monkeypatch) -> list:
    """Every design built of a kept copy, as a weak reference, in the order built."""
    import weakref

    from logreg.model.sgd_kernels import BlockDesign

    designs = []
    of_kept_rows = BlockDesign.of_kept_rows.__func__

    def counted(cls, *args, **kwargs):
        design = of_kept_rows(cls, *args, **kwargs)
        designs.append(weakref.ref(design))
        return design

    monkeypatch.setattr(BlockDesign, "of_kept_rows", classmethod(counted))
    return designs


@pytest.mark.parametrize("epoch_loss", ["full", "progressive"])
def test_streamed_sgd_builds_each_blocks_visit_once_per_fit_and_drops_it_after(
    tmp_path, monkeypatch, epoch_loss
):
    # Each block's design of its kept copy, and its batches' views, are built on its
    # first visit and reused by every later epoch (and by the full loss's passes), not
    # rebuilt per visit: 4 designs for 4 blocks, whatever the epochs; none outlives the fit.
    import gc

    from logreg.model.sgd import sgd_solve

    designs = _count_designs_of_kept_rows(monkeypatch)
    cache = write_row_cache(_blocks([150, 300, 450]), tmp_path / "cache")
    settings = {"alpha": 1e-3, "l1_ratio": 0.5, "fit_intercept": True, "batch_size": 32,
                "learning_rate0": "auto", "lr_schedule": "step", "momentum": 0.9, "epochs": 5,
                "epoch_loss": epoch_loss, "tol": 0.0, "patience": None,
                "max_time": None}  # fmt: skip
    built_by_epoch = []
    record = sgd_solve(
        MemmapRows.open(cache), rng=np.random.default_rng(0), streamed=True,
        callback=lambda _: built_by_epoch.append(len(designs)), **settings,
    )[2]  # fmt: skip
    assert record.n_iter == 5 and built_by_epoch == [4, 4, 4, 4, 4]
    gc.collect()
    assert all(design() is None for design in designs)  # the fit's visits are dropped


def test_streamed_sgd_through_the_client_holds_no_kept_copy_between_visits(monkeypatch):
    # Rows whose kept copies are not at hand (fetched from a Dask worker on each read):
    # each visit builds its design anew, so the solver never holds more than one block.
    from logreg.model.sgd import sgd_solve

    class FetchedRows(InMemoryRows):
        kept_at_hand = False

    designs = _count_designs_of_kept_rows(monkeypatch)
    record = sgd_solve(
        FetchedRows(tuple(_blocks([150, 300, 450]))), alpha=1e-3, l1_ratio=0.0,
        fit_intercept=True, batch_size=32, learning_rate0=0.05, lr_schedule="constant",
        momentum=0.0, epochs=3, epoch_loss="full", tol=0.0, patience=None, max_time=None,
        rng=np.random.default_rng(0), streamed=True,
    )[2]  # fmt: skip
    assert record.n_iter == 3 and len(designs) == 3 * (4 + 4)  # each epoch's steps and loss
