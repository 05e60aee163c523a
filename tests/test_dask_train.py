"""The train stage on Dask: the same estimator, fitted on partitions held by the workers.

The references are independent of the Dask path: the numpy engine's ``fit`` on the
whole table, streaming SGD on the same blocks in this process, scikit-learn for the
L1 optimum, and hand-written checks of the files the stage writes. A LocalCluster of
two single-threaded worker processes is shared by the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression
from sklearn.preprocessing import StandardScaler

from conftest import KillAWorker, local_dask_client
from logreg import LogisticRegression, preprocess
from logreg.engines.dask_epochs import PartitionChains
from logreg.engines.dask_rows import DaskRows
from logreg.engines.dask_train import (
    cache_block,
    check_part_sizes,
    class_counts,
    fit_on_cluster,
    load_rows,
    open_cached,
    read_block,
)
from logreg.engines.partitions import part_paths, write_parts
from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT
from logreg.model.rows import InMemoryRows
from logreg.model.sgd import sgd_solve
from logreg.model.sgd_kernels import BlockDesign
from logreg.preprocess import write_preprocessing
from logreg.stages import train

PART_ROWS = 100  # breast_cancer's 569 rows: 6 partitions, the last short


@pytest.fixture(scope="module")
def client():
    with local_dask_client() as client:
        yield client


def table(loader=load_breast_cancer, weighted: bool = True) -> pd.DataFrame:
    X, y = loader(return_X_y=True)
    frame = pd.DataFrame(StandardScaler().fit_transform(X)).rename(columns=lambda c: f"x{c}")
    frame[TARGET] = np.asarray(["malignant", "benign", "third"])[y]  # breast_cancer: 0 is malignant
    if weighted:  # as rebalance's class weights write them
        frame[WEIGHT] = np.where(y == 0, 2.0, 1.0)
    return frame


def partitioned(frame: pd.DataFrame, path) -> list:
    write_parts((frame.iloc[i : i + PART_ROWS] for i in range(0, len(frame), PART_ROWS)), path)
    return part_paths(path)


def numpy_fit(frame: pd.DataFrame, val: pd.DataFrame | None = None, **params):
    X = frame.drop(columns=[TARGET, WEIGHT], errors="ignore")
    s = frame[WEIGHT] if WEIGHT in frame else None
    extra = {}
    if val is not None:
        extra = {"X_val": val.drop(columns=[TARGET, WEIGHT], errors="ignore"), "y_val": val[TARGET]}
    return LogisticRegression(**params).fit(X, frame[TARGET], sample_weight=s, **extra)


def dask_fit(client, parts, val_parts=None, cache_dir=None, chains=1, callback=None, **params):
    model_params = {k: params.pop(k) for k in ("penalty", "alpha", "solver") if k in params}
    dtype = np.float64 if model_params.get("solver") != "sgd" else params.get("dtype", "float64")
    classes, _ = class_counts(client, parts)
    return fit_on_cluster(
        client, parts, val_parts, classes, model_params, params, dtype=dtype,
        cache_dir=cache_dir, chains=chains, callback=callback,
    )  # fmt: skip


NEWTON = {"solver": "newton", "penalty": "l2", "alpha": 1e-3, "tol": 1e-10}


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine], ids=["binary", "softmax"])
@pytest.mark.parametrize("cached", [True, False], ids=["row-cache", "in-memory"])
def test_newton_on_dask_equals_the_numpy_engine(client, tmp_path, loader, cached):
    frame = table(loader)
    parts = partitioned(frame, tmp_path / "train.parquet")
    assert len(parts) > 1
    on_dask = dask_fit(client, parts, cache_dir=tmp_path / "cache" if cached else None, **NEWTON)
    in_memory = numpy_fit(frame, **NEWTON)

    np.testing.assert_array_equal(on_dask.classes_, in_memory.classes_)
    np.testing.assert_allclose(on_dask.coef_, in_memory.coef_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(on_dask.intercept_, in_memory.intercept_, rtol=1e-8, atol=1e-12)
    errors = on_dask.summary()["std_err"].to_numpy()
    np.testing.assert_allclose(errors, in_memory.summary()["std_err"].to_numpy(), rtol=1e-6)
    assert on_dask.feature_names_in_ == in_memory.feature_names_in_
    assert on_dask.n_samples_fit_ == len(frame) and on_dask.stop_reason_ == "newton_converged"


def test_proximal_on_dask_reaches_the_l1_optimum(client, tmp_path):
    frame = table(weighted=False)
    parts = partitioned(frame, tmp_path / "train.parquet")
    alpha = 0.01
    on_dask = dask_fit(client, parts, solver="proximal", penalty="l1", alpha=alpha, tol=1e-9)
    in_memory = numpy_fit(frame, solver="proximal", penalty="l1", alpha=alpha, tol=1e-9)
    # scikit-learn's optimum of the same J: C = 1/(α·n), intercept unpenalised by saga.
    reference = SklearnLogisticRegression(
        l1_ratio=1.0, C=1.0 / (alpha * len(frame)), solver="saga", tol=1e-12, max_iter=100_000
    ).fit(frame.drop(columns=TARGET), frame[TARGET])

    np.testing.assert_allclose(on_dask.coef_, reference.coef_, atol=1e-4)
    np.testing.assert_allclose(on_dask.intercept_, reference.intercept_, atol=1e-4)
    np.testing.assert_array_equal(on_dask.coef_ == 0, reference.coef_ == 0)
    assert 0 < np.count_nonzero(on_dask.coef_) < on_dask.coef_.size  # exact zeros, not all
    np.testing.assert_allclose(on_dask.coef_, in_memory.coef_, rtol=1e-8, atol=1e-12)


SGD = {
    "solver": "sgd", "penalty": "elasticnet", "alpha": 1e-3, "batch_size": 16,
    "momentum": 0.9, "epochs": 6, "tol": 0.0, "patience": 3, "seed": 7,
}  # fmt: skip


def streamed_reference(parts, val_parts, classes, dtype="float64", epochs=6):
    """Streaming SGD in this process, over the same parts read into blocks here."""
    blocks = tuple(read_block(p, classes, dtype, unit_weights=False) for p in parts)
    val = tuple(read_block(p, classes, dtype, unit_weights=True) for p in val_parts)
    return sgd_solve(
        InMemoryRows(blocks), alpha=1e-3, l1_ratio=0.5, fit_intercept=True, batch_size=16,
        learning_rate0="auto", lr_schedule="step", momentum=0.9, epochs=epochs,
        epoch_loss="full", tol=0.0, patience=3, max_time=None, rng=np.random.default_rng(7),
        validation=InMemoryRows(val), streamed=True,
    )  # fmt: skip


@pytest.mark.parametrize("cached", [True, False], ids=["row-cache", "in-memory"])
def test_one_sgd_chain_on_the_workers_is_streaming_sgd(client, tmp_path, cached):
    frame = table()
    parts = partitioned(frame.iloc[:450], tmp_path / "train.parquet")
    val_parts = partitioned(frame.iloc[450:], tmp_path / "val.parquet")
    cache = tmp_path / "cache" if cached else None
    model = dask_fit(client, parts, val_parts, cache_dir=cache, **SGD)
    W, b, record = streamed_reference(parts, val_parts, model.classes_)

    np.testing.assert_array_equal(model.coef_, W.T)  # the same steps, bit for bit
    np.testing.assert_array_equal(model.intercept_, b)
    assert [r["val_loss"] for r in model.history_] == pytest.approx(
        [r["val_loss"] for r in record.history], rel=1e-12
    )
    assert model.stop_reason_ == record.stop_reason
    assert model.learning_rate_ == record.learning_rate


def test_k_chains_reach_the_neighbourhood_of_the_optimum(client, tmp_path):
    frame = table(weighted=False)
    parts = partitioned(frame, tmp_path / "train.parquet")
    settings = {"penalty": "l2", "alpha": 1e-2}
    optimum = numpy_fit(frame, solver="newton", **settings)
    X, y = frame.drop(columns=TARGET), frame[TARGET]
    best = optimum.objective(X, y)
    sgd = {"solver": "sgd", "batch_size": 16, "epochs": 60, "tol": 0.0, "patience": None}
    two = dask_fit(client, parts, chains=2, **settings, **sgd)
    one = dask_fit(client, parts, chains=1, **settings, **sgd)
    assert two.n_iter_ == one.n_iter_ == 60
    # Within 1 % of J's minimum (J at θ = 0 is 0.69, 7 times it), as one chain is.
    gaps = [(model.objective(X, y) - best) / best for model in (one, two)]
    print(f"J above its minimum: one chain {gaps[0]:.2e}, two chains {gaps[1]:.2e}")
    assert 0 < gaps[1] < 1e-2 and 0 < gaps[0] < 1e-2
    # Not the single chain's weights: averaging changes the iterates.
    assert not np.array_equal(one.coef_, two.coef_)


@pytest.mark.slow  # its own cluster, a worker's death and restart: 10-30 s
def test_a_worker_killed_mid_sgd_changes_nothing(tmp_path):
    # Its own cluster: this test kills one of the workers.
    frame = table()
    parts = partitioned(frame.iloc[:450], tmp_path / "train.parquet")
    val_parts = partitioned(frame.iloc[450:], tmp_path / "val.parquet")
    with local_dask_client() as client:
        kill_once = KillAWorker(client)
        model = dask_fit(
            client, parts, val_parts, cache_dir=tmp_path / "cache", callback=kill_once, **SGD
        )
        assert kill_once.replaced(), "a worker died after the first epoch"
    W, b, _ = streamed_reference(parts, val_parts, model.classes_)
    np.testing.assert_array_equal(model.coef_, W.T)
    np.testing.assert_array_equal(model.intercept_, b)


def test_a_partition_too_big_for_a_worker_names_both_sizes(tmp_path):
    parts = partitioned(table(), tmp_path / "train.parquet")
    check_part_sizes(parts, 33, np.float64, memory_limit=10**6)  # 100 rows: 53 kB
    with pytest.raises(UserError, match=r"part-00000.parquet: .*52,800 bytes.*1,000 bytes.*"
                       r"engine.partition_rows"):  # fmt: skip
        check_part_sizes(parts, 33, np.float64, memory_limit=1000)


def test_proximal_in_memory_matches_scikit_learn_elastic_net():
    frame = table(weighted=False)
    X, y = frame.drop(columns=TARGET), frame[TARGET]
    alpha, ratio = 0.01, 0.5
    model = LogisticRegression(
        solver="proximal", penalty="elasticnet", alpha=alpha, l1_ratio=ratio, tol=1e-10
    ).fit(X, y)
    reference = SklearnLogisticRegression(
        C=1.0 / (alpha * len(X)), l1_ratio=ratio, solver="saga",
        tol=1e-12, max_iter=100_000,
    ).fit(X, y)  # fmt: skip
    np.testing.assert_allclose(model.coef_, reference.coef_, atol=1e-4)
    np.testing.assert_array_equal(model.coef_ == 0, reference.coef_ == 0)


def stage_project(root, frame: pd.DataFrame, engine: dict, **model) -> None:
    """A project whose rebalanced train and val splits are partition folders."""
    partitioned(frame.iloc[:450], root / "data/rebalanced/train.parquet")
    partitioned(frame.iloc[450:].drop(columns=WEIGHT), root / "data/prepared/val.parquet")
    features = frame.drop(columns=[TARGET, WEIGHT]).assign(target=frame[TARGET])
    write_preprocessing(root / "data/prepared/preprocess.json", preprocess.fit(features))
    params = {
        "data": {"name": "tiny"},
        "model": {"penalty": "l2", "alpha": 1e-3, "l1_ratio": 0.5, "solver": "newton",
                  "fit_intercept": True, **model},
        "train": {"batch_size": 16, "learning_rate": "auto", "lr_schedule": "step",
                  "momentum": 0.0, "epochs": 8, "tol": 1e-7, "patience": None,
                  "max_time": None, "dtype": "float64", "seed": 0},
        "mlflow": {"enabled": False, "tracking_uri": None, "experiment_name": "stages"},
        "engine": engine,
    }  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run_train_stage(root) -> LogisticRegression:
    train.main(
        [
            "--params", str(root / "params.yaml"),
            "--train", str(root / "data/rebalanced/train.parquet"),
            "--val", str(root / "data/prepared/val.parquet"),
            "--preprocess", str(root / "data/prepared/preprocess.json"),
            "--model-dir", str(root / "models"), "--history", str(root / "reports/history.csv"),
        ]
    )  # fmt: skip
    return LogisticRegression.load(root / "models/model.npz")


@pytest.mark.parametrize("solver", ["newton", "sgd"])
def test_the_train_stage_on_dask_writes_the_numpy_engines_model(client, isolated_tracking, solver):
    frame = table()
    dask_engine = {"name": "dask", "address": client.scheduler.address, "partition_rows": 100}
    stage_project(isolated_tracking / "dask", frame, dask_engine, solver=solver)
    stage_project(isolated_tracking / "numpy", frame, {"name": "numpy"}, solver=solver)
    on_dask = run_train_stage(isolated_tracking / "dask")
    on_numpy = run_train_stage(isolated_tracking / "numpy")

    assert on_dask.metadata_ == on_numpy.metadata_  # features, classes, positive class, prep
    assert on_dask.metadata_["positive_class"] == "malignant"
    if solver == "newton":  # the optimum, up to the order of the additions
        np.testing.assert_allclose(on_dask.coef_, on_numpy.coef_, rtol=1e-8)
    else:  # the resident path's shuffle is not streaming's: both near J's minimum
        assert on_dask.n_iter_ == on_numpy.n_iter_ == 8
        np.testing.assert_allclose(on_dask.coef_, on_numpy.coef_, atol=0.1)
    history = pd.read_csv(isolated_tracking / "dask/reports/history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "val_loss", "learning_rate"]
    assert len(history) == on_dask.n_iter_
    # The row cache beside the training split is gone.
    assert [p.name for p in (isolated_tracking / "dask/data/rebalanced").iterdir()] == [
        "train.parquet"
    ]


def test_a_chain_task_rerun_takes_the_same_steps(tmp_path):
    # What a rerun after a worker's death relies on: the task leaves its input as it was.
    from logreg.engines.dask_epochs import Carry, _chain_steps

    parts = partitioned(table(), tmp_path / "train.parquet")
    block = read_block(parts[0], np.array(["benign", "malignant"]), np.float64, False)
    kept = BlockDesign.shuffled(block, np.random.default_rng(1), True, 16).kept_rows
    D = block.X.shape[1]
    carry = Carry(
        np.full((D + 1, 1), 0.01), np.full((D + 1, 1), 0.02), 0.003, np.zeros((D, 1)),
        np.random.default_rng(5), 0.0,
    )  # fmt: skip
    settings = {"fit_intercept": True, "B": 16, "shares": {1.0, 0.25}, "lr": 0.05, "l2": 1e-3,
                "l1": 1e-3, "momentum": 0.9}  # fmt: skip
    first, again = _chain_steps(kept, carry, **settings), _chain_steps(kept, carry, **settings)
    for field in ("theta", "velocity", "l1_received"):
        np.testing.assert_array_equal(getattr(first, field), getattr(again, field))
    assert first.progressive_sum == again.progressive_sum
    np.testing.assert_array_equal(carry.theta, 0.01)  # the input is untouched


def test_a_chain_task_builds_each_partitions_design_once_per_fit(tmp_path, monkeypatch):
    # A worker keeps each kept copy's design (its logits' and residual coefficients'
    # buffers, not its rows) for the fit's later visits, and a task rerun with that
    # cache takes the same steps as without it; the fit's end drops it.
    from logreg.engines import dask_epochs
    from logreg.engines.dask_epochs import Carry, _drop_designs, _run_steps, _shuffle_once

    designs = []
    of_kept_rows = BlockDesign.of_kept_rows.__func__
    monkeypatch.setattr(
        BlockDesign, "of_kept_rows",
        classmethod(lambda cls, *a, **k: designs.append(1) or of_kept_rows(cls, *a, **k)),
    )  # fmt: skip
    classes = np.array(["benign", "malignant"])
    kept = []
    for part in partitioned(table(), tmp_path / "train.parquet")[:3]:
        folder = cache_block(part, classes, np.float64, False, tmp_path / "cache")
        settings = {"open": open_cached, "fit_intercept": True, "B": 16, "n": 300}
        kept.append(_shuffle_once(folder, np.random.default_rng(5), **settings)[0])
    D = open_cached(kept[0]).X.shape[1] - 1
    carry = Carry(
        np.full((D + 1, 1), 0.01), np.full((D + 1, 1), 0.02), 0.003, np.zeros((D, 1)),
        np.random.default_rng(5), 0.0,
    )  # fmt: skip
    settings = {"open": open_cached, "fit_intercept": True, "B": 16, "shares": {1.0, 0.25},
                "lr": 0.05, "l2": 1e-3, "l1": 1e-3, "momentum": 0.9}  # fmt: skip
    first = _run_steps(kept, carry, fit_key="fit", **settings)
    assert len(designs) == 3
    again = _run_steps(kept, carry, fit_key="fit", **settings)
    assert len(designs) == 3  # the designs of the first visits, reused
    other = _run_steps(kept, carry, fit_key="another fit", **settings)
    assert len(designs) == 6  # another fit's designs are its own
    for result in (again, other):
        for field in ("theta", "velocity", "l1_received"):
            np.testing.assert_array_equal(getattr(result, field), getattr(first, field))
        assert result.progressive_sum == first.progressive_sum
    # The worker holds each design's buffers, never the rows of its kept copy.
    assert all(design.X_tilde is None for design in dask_epochs._DESIGNS.values())
    _drop_designs("fit")
    _drop_designs("another fit")
    assert not dask_epochs._DESIGNS


def test_the_workers_drop_a_fits_designs_when_it_ends(client, tmp_path):
    from logreg.engines import dask_epochs

    def designs_on_workers() -> int:
        return sum(client.run(lambda: len(dask_epochs._DESIGNS)).values())

    parts = partitioned(table().iloc[:450], tmp_path / "train.parquet")
    during = []
    dask_fit(
        client, parts, cache_dir=tmp_path / "cache",
        callback=lambda _: during.append(designs_on_workers()), **SGD,
    )  # fmt: skip
    assert during and all(count == len(parts) for count in during)  # one per partition
    assert designs_on_workers() == 0


def test_a_shuffle_task_rerun_keeps_the_same_copy(tmp_path):
    # The one shuffle per fit of a cached partition, run twice as after a worker's death:
    # the same folder (named by the task's inputs), the same bytes, the generator untouched.
    from logreg.engines.dask_epochs import _shuffle_once

    parts = partitioned(table(), tmp_path / "train.parquet")
    folder = cache_block(parts[0], np.array(["benign", "malignant"]), np.float64, False,
                         tmp_path / "cache")  # fmt: skip
    rng = np.random.default_rng(5)
    settings = {"open": open_cached, "fit_intercept": True, "B": 16, "n": 100}
    first = _shuffle_once(folder, rng, **settings)
    kept_bytes = {path.name: path.read_bytes() for path in Path(first[0]).iterdir()}
    again = _shuffle_once(folder, rng, **settings)
    assert again[0] == first[0] and Path(first[0]).parent == Path(folder)
    assert {path.name: path.read_bytes() for path in Path(again[0]).iterdir()} == kept_bytes
    assert again[2].bit_generator.state == first[2].bit_generator.state
    assert rng.bit_generator.state == np.random.default_rng(5).bit_generator.state
    # The copy is the block's rows, shuffled: X̃ = [X, 1]/2 in the copy's order.
    block, kept = open_cached(folder), open_cached(first[0])
    order = np.random.default_rng(5).permutation(block.X.shape[0])
    np.testing.assert_array_equal(kept.X, np.hstack([block.X[order], np.ones((len(order), 1))]) / 2)
    np.testing.assert_array_equal(kept.Y, block.Y[order])


def test_the_clients_memory_does_not_grow_with_the_rows(client, tmp_path):
    # Four partitions of 1,000 rows, then of 16,000: what the client allocates while the
    # cluster fits (weights, sums, futures) must not follow the data (0.96 → 15.4 MB of X).
    # The client's own noise (messages, heartbeats) is a few hundred kB on a busy machine.
    # Not Newton on large data: its sketched Hessian draws its rows on the client (8
    # bytes a row), which the two engines share so that both draw the same rows.
    import tracemalloc

    rng = np.random.default_rng(0)
    peaks = []
    for rows in (1_000, 16_000):
        X = rng.standard_normal((4 * rows, 30))
        frame = pd.DataFrame(X).rename(columns=lambda c: f"x{c}")
        frame[TARGET] = np.where(X[:, 0] + rng.logistic(size=len(X)) > 1, "yes", "no")
        path = tmp_path / f"{rows}.parquet"
        write_parts((frame.iloc[i : i + rows] for i in range(0, len(frame), rows)), path)
        parts = part_paths(path)
        classes, _ = class_counts(client, parts)
        repeats = []
        for _ in range(2):  # tracemalloc sees every thread: the least of two is the fits' own
            tracemalloc.start()
            for solver in ("sgd", "proximal"):
                fit_on_cluster(
                    client, parts, None, classes, {"solver": solver, "penalty": "l1"},
                    {"epochs": 2, "batch_size": 256, "tol": 0.0}, dtype=np.float64,
                    cache_dir=tmp_path / f"cache-{rows}",
                )  # fmt: skip
            repeats.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        peaks.append(min(repeats))
    data_growth = 4 * 15_000 * 30 * 8  # bytes of X the second table adds
    assert peaks[1] - peaks[0] < 0.05 * data_growth, peaks


class KillInsideATask:
    """A block opener that kills its own worker process (SIGKILL) inside the ``at``-th task
    that opens a block, cluster-wide, counted in a file; then opens blocks as usual."""

    def __init__(self, counter, at: int) -> None:
        self.counter, self.at = counter, at

    def __call__(self, folder: str):
        with open(self.counter, "ab") as count:  # O_APPEND: one byte per call, atomically
            count.write(b".")
        if os.path.getsize(self.counter) == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        return open_cached(folder)


@pytest.mark.slow  # its own cluster, a worker's death and restart: 20-100 s on a busy machine
def test_a_worker_killed_inside_an_sgd_chain_changes_nothing(tmp_path):
    # Killed in the middle of an epoch's chain: Dask reruns the lost tasks (the blocks'
    # reads and the chain's steps held by the dead worker) from their inputs.
    frame = table()
    parts = partitioned(frame.iloc[:450], tmp_path / "train.parquet")
    val_parts = partitioned(frame.iloc[450:], tmp_path / "val.parquet")
    classes = np.array(["benign", "malignant"])
    with local_dask_client() as client:
        pids = set(client.run(os.getpid).values())
        rows = load_rows(client, parts, classes, np.float64, tmp_path / "train")
        validation = load_rows(client, val_parts, classes, np.float64, tmp_path / "val", True)
        # The opens before the kill: the row counts (5), the one shuffle (5), epoch 1's
        # chain (5 kept copies, one task), its loss pass (5), then 2 into epoch 2's chain.
        killer = KillInsideATask(tmp_path / "opens", at=5 + 5 + 5 + 5 + 2)
        rows = DaskRows(client, rows.parts, rows.sizes, open=killer)
        model = LogisticRegression(**SGD).fit_rows(
            rows, classes, validation, visits=PartitionChains
        )
        assert not pids <= set(client.run(os.getpid).values()), "a worker died"
    W, b, _ = streamed_reference(parts, val_parts, classes)
    np.testing.assert_array_equal(model.coef_, W.T)
    np.testing.assert_array_equal(model.intercept_, b)


def test_the_train_stage_on_dask_logs_the_numpy_engines_datasets(client, isolated_tracking):
    from mlflow.tracking import MlflowClient

    from logreg.frames import read_table, write_table
    from logreg.tracking.runs import DIGEST_CHARS

    frame = table()
    dask_engine = {"name": "dask", "address": client.scheduler.address, "partition_rows": 100}
    splits = ("data/rebalanced/train.parquet", "data/prepared/val.parquet")
    for engine in ("dask", "numpy"):
        root = isolated_tracking / engine
        stage_project(root, frame, dask_engine if engine == "dask" else {"name": "numpy"})
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["mlflow"] |= {"enabled": True, "experiment_name": engine}
        (root / "params.yaml").write_text(yaml.safe_dump(params))
        if engine == "numpy":  # the same splits, each written as one file
            for split in splits:
                rows = read_table(root / split)
                shutil.rmtree(root / split)
                write_table(rows, root / split)
        run_train_stage(root)

    store = MlflowClient(f"sqlite:///{isolated_tracking / 'mlflow.db'}")
    logged = {}
    for engine in ("dask", "numpy"):
        (run,) = store.search_runs([store.get_experiment_by_name(engine).experiment_id])
        logged[engine] = {
            (i.dataset.name, {t.key: t.value for t in i.tags}["mlflow.data.context"]): i.dataset
            for i in run.inputs.dataset_inputs
        }
    keys = {("tiny/train", "train"), ("tiny/val", "validation")}
    assert set(logged["dask"]) == set(logged["numpy"]) == keys
    n_features = frame.shape[1] - 2
    for key, rows, split in zip(sorted(keys), (450, 119), splits, strict=True):
        ours, reference = logged["dask"][key], logged["numpy"][key]
        assert ours.schema == reference.schema
        columns = json.loads(ours.schema)["mlflow_colspec"]
        assert [c["name"] for c in columns] == [*frame.columns[:n_features], TARGET]
        assert ours.profile == reference.profile
        assert json.loads(ours.profile) == {
            "num_rows": rows, "num_elements": rows * (n_features + 1), "targets": TARGET,
        }  # fmt: skip
        # The digests, by hand: a file's SHA-256; a folder's, of its parts' names and SHA-256s.
        folder = isolated_tracking / "dask" / split
        listing = "".join(
            f"{part.name} {hashlib.sha256(part.read_bytes()).hexdigest()}\n"
            for part in sorted(folder.glob("part-*.parquet"))
        )
        assert ours.digest == hashlib.sha256(listing.encode()).hexdigest()[:DIGEST_CHARS]
        file = (isolated_tracking / "numpy" / split).read_bytes()
        assert reference.digest == hashlib.sha256(file).hexdigest()[:DIGEST_CHARS]
        assert str(folder) in ours.source
