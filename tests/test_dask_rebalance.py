"""The rebalance stage on Dask against the numpy engine, on a partitioned train split.

A 2-worker LocalCluster (processes) rewrites the partitions. The references are the
numpy engine's rules (class sizes from :mod:`logreg.rebalance`), its class weights,
its SMOTE on the same rows, and the geometry of SMOTE itself: a synthetic row lies on
the segment between two rows of its class.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import local_dask_client
from logreg import rebalance as rb
from logreg.engines.cluster import connect
from logreg.engines.dask_rebalance import rebalance_parts
from logreg.engines.partitions import part_paths, part_rows, write_parts
from logreg.errors import UserError
from logreg.frames import TARGET, WEIGHT, read_table
from logreg.stages import rebalance as stage


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    with connect(None, n_workers=2, threads_per_worker=1, memory_limit="1GiB") as client:
        yield client


def _train(n=3_000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
    frame[TARGET] = rng.choice(["no", "yes"], size=n, p=[0.92, 0.08])
    return frame


def _partitioned(frame: pd.DataFrame, path, rows: int):
    write_parts([frame.iloc[i : i + rows] for i in range(0, len(frame), rows)], path)
    return path


OPTIONS = {"ratio": 0.5, "k_neighbors": 5, "seed": 7}


@pytest.mark.parametrize("strategy", ["undersample", "oversample"])
def test_resampled_class_counts_are_exact_and_independent_of_the_partitioning(
    client, tmp_path, strategy
):
    train = _train()
    counts = train[TARGET].value_counts().to_dict()
    rule = rb.under_targets if strategy == "undersample" else rb.over_targets
    expected = {str(k): v for k, v in sorted(rule(counts, 0.5).items())}
    outputs = []
    for rows in (500, 1_100):
        source = _partitioned(train, tmp_path / f"in{rows}", rows)
        out = tmp_path / f"out{rows}"
        report = rebalance_parts(client, source, out, {"strategy": strategy, **OPTIONS}, 400)
        assert report["after"]["classes"] == expected
        assert report["before"]["classes"] == {k: int(v) for k, v in sorted(counts.items())}
        assert all(part_rows(p) <= 400 for p in part_paths(out))
        result = read_table(out)
        assert result[TARGET].value_counts().to_dict() == {
            "no": expected["no"],
            "yes": expected["yes"],
        }
        outputs.append(result.sort_values(list(result.columns)).reset_index(drop=True))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])  # the same rows, any partitioning


def test_class_weights_equal_the_numpy_engines(client, tmp_path):
    train = _train()
    source = _partitioned(train, tmp_path / "in", 700)
    report = rebalance_parts(
        client, source, tmp_path / "out", {"strategy": "class_weight", **OPTIONS}, 700
    )
    ours = read_table(tmp_path / "out")
    numpy_engine = rb.rebalance(train, "class_weight")
    np.testing.assert_allclose(ours[WEIGHT], numpy_engine[WEIGHT], rtol=1e-15)
    # n / (K·n_c), by hand
    n_yes = (train[TARGET] == "yes").sum()
    assert ours.loc[ours[TARGET] == "yes", WEIGHT].iloc[0] == pytest.approx(
        len(train) / (2 * n_yes)
    )
    _assert_same_report(report, rb.report(train, numpy_engine, "class_weight", 0.5))


def test_smote_rows_lie_between_minority_rows_and_match_the_numpy_engine(client, tmp_path):
    train = _train(seed=3)
    source = _partitioned(train, tmp_path / "in", 500)
    options = {"strategy": "smote", **OPTIONS}
    report = rebalance_parts(client, source, tmp_path / "out", options, 500)
    ours = read_table(tmp_path / "out")
    numpy_engine = rb.rebalance(train, **options)
    _assert_same_report(report, rb.report(train, numpy_engine, "smote", 0.5))
    pd.testing.assert_frame_equal(ours, numpy_engine)  # same rows, same synthetic rows
    # Independently of imbalanced-learn: each synthetic row is x + λ(x' − x) for two
    # minority rows x, x' and some λ in [0, 1].
    minority = train.loc[train[TARGET] == "yes", list("abcd")].to_numpy()
    synthetic = ours.iloc[len(train) :]
    assert (synthetic[TARGET] == "yes").all()
    assert len(synthetic) == rb.over_targets(train[TARGET].value_counts().to_dict(), 0.5)[
        "yes"
    ] - len(minority)
    for row in synthetic[list("abcd")].to_numpy()[:50]:
        assert _on_a_segment(row, minority)


def _assert_same_report(ours: dict, reference: dict) -> None:
    """Equal reports; the weight sums up to the order of the additions."""
    assert ours["after"].pop("weight") == pytest.approx(reference["after"].pop("weight"), rel=1e-12)
    assert ours == reference


def _on_a_segment(point: np.ndarray, rows: np.ndarray) -> bool:
    """Is ``point`` on a segment between ``rows[i]`` and ``rows[j]``? (least squares in λ)"""
    for x in rows:
        direction = rows - x  # (m, d)
        squared = np.einsum("ij,ij->i", direction, direction)
        lam = np.divide(
            direction @ (point - x), squared, out=np.zeros(len(rows)), where=squared > 0
        )
        ok = (lam >= -1e-12) & (lam <= 1 + 1e-12)
        residual = np.linalg.norm(x + lam[:, None] * direction - point, axis=1)
        if np.any(ok & (residual < 1e-9)):
            return True
    return False


def test_smote_nc_on_one_hot_columns_matches_the_numpy_engine(client, tmp_path):
    rng = np.random.default_rng(5)
    train = _train(seed=5)
    level = rng.integers(0, 3, size=len(train))  # a category: reference level 0, then 2 indicators
    train.insert(4, "colour_1", np.where(level == 1, 1.3, -0.7))  # standardised 0/1
    train.insert(5, "colour_2", np.where(level == 2, 1.4, -0.6))
    groups = {"colour": ["colour_1", "colour_2"]}
    source = _partitioned(train, tmp_path / "in", 400)
    options = {"strategy": "smote", **OPTIONS}
    rebalance_parts(client, source, tmp_path / "out", options, 1_000, groups)
    ours = read_table(tmp_path / "out")
    pd.testing.assert_frame_equal(ours, rb.rebalance(train, **options, one_hot_groups=groups))
    synthetic = ours.iloc[len(train) :]
    # A synthetic row takes a category, never a blend of indicators.
    assert set(synthetic["colour_1"]) <= {1.3, -0.7} and set(synthetic["colour_2"]) <= {1.4, -0.6}
    minority = train.loc[train[TARGET] == "yes", list("abcd")].to_numpy()
    for row in synthetic[list("abcd")].to_numpy()[:20]:
        assert _on_a_segment(row, minority)


def test_a_clipped_k_neighbors_is_said_on_the_driver(client, tmp_path):
    train = _train(n=400, seed=1)
    source = _partitioned(train, tmp_path / "in", 100)
    n_minority = int((train[TARGET] == "yes").sum())
    options = {**OPTIONS, "strategy": "smote", "k_neighbors": n_minority + 3}
    with pytest.warns(UserWarning, match=f"clipped to {n_minority - 1}"):
        rebalance_parts(client, source, tmp_path / "out", options, 100)


def test_smote_that_does_not_fit_stops_naming_the_alternatives(client, tmp_path):
    train = _train()
    source = _partitioned(train, tmp_path / "in", 500)
    out = tmp_path / "out"
    with pytest.raises(UserError, match="undersample, oversample or class_weight") as error:
        rebalance_parts(
            client, source, out, {"strategy": "smote", **OPTIONS}, 500, memory_limit=40_000
        )
    assert "(250 rows of float64 columns)" in str(error.value)
    assert not out.exists()


def test_the_stage_writes_the_numpy_engines_report(tmp_path):
    train = _train()
    source = _partitioned(train, tmp_path / "train.parquet", 500)
    params = {
        "rebalance": {"strategy": "none", **OPTIONS},
        "engine": {
            "name": "dask",
            "address": None,
            "n_workers": 1,
            "threads_per_worker": 1,
            "memory_limit": "1GiB",
            "partition_rows": 600,
        },
    }
    paths = stage.Paths(train=source, out=tmp_path / "out.parquet", report=tmp_path / "report.json")
    stage.run(params, paths)
    ours = read_table(paths.out)
    expected = rb.rebalance(train, "none")
    pd.testing.assert_frame_equal(ours, expected)
    _assert_same_report(
        json.loads(paths.report.read_text()), rb.report(train, expected, "none", 0.5)
    )
    assert [part_rows(p) for p in part_paths(paths.out)] == [500] * 6


def test_a_corrupt_partition_is_named_and_nothing_is_written(client, tmp_path):
    source = _partitioned(_train(), tmp_path / "in", 500)
    (source / "part-00003.parquet").write_bytes(b"PAR1 not really")
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"part-00003\.parquet: not a readable Parquet file"):
        rebalance_parts(client, source, out, {"strategy": "undersample", **OPTIONS}, 500)
    assert not out.exists() and list(tmp_path.iterdir()) == [source]


@pytest.fixture(scope="module")
def threaded_client():
    """Workers as threads of this process, so a warnings filter set by a test reaches them."""
    with local_dask_client(processes=False) as client:
        yield client


@pytest.mark.parametrize("strategy", ["none", "class_weight", "undersample", "oversample", "smote"])
def test_a_wide_table_is_rebalanced_without_a_fragmentation_warning(
    threaded_client, tmp_path, strategy
):
    # A part is read one block per column (frames.LEAN_FRAME); pandas warns on every
    # column inserted into a frame of more than 100 blocks.
    train = _train(n=600)
    wide = pd.concat(
        [train.drop(columns=TARGET).add_prefix("w0_")]
        + [train[list("abcd")].add_prefix(f"w{i}_") for i in range(1, 40)]
        + [train[[TARGET]]],
        axis=1,
    )
    assert wide.shape[1] > 150
    source = _partitioned(wide, tmp_path / "in", 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.PerformanceWarning)
        rebalance_parts(
            threaded_client, source, tmp_path / "out", {"strategy": strategy, **OPTIONS}, 200
        )
    ours = read_table(tmp_path / "out")
    assert list(ours.columns) == [*wide.columns, WEIGHT]
    if strategy in ("none", "class_weight", "smote"):  # the numpy engine's rows and weights
        pd.testing.assert_frame_equal(ours, rb.rebalance(wide, strategy, **OPTIONS))
    else:  # rows of the input, each with weight 1
        assert (ours[WEIGHT] == 1.0).all()
        rows = pd.util.hash_pandas_object(ours.drop(columns=WEIGHT), index=False)
        assert rows.isin(pd.util.hash_pandas_object(wide, index=False)).all()
