"""The prepare stage with engine=dask gives the numpy engine's outputs, on a real cluster.

A LocalCluster of two worker processes serves every test (the stage connects to it via
``engine.address``); ``engine.partition_rows`` is small, so every table is several
partitions. The reference is the same stage with engine=numpy on the same data: the
same rows in each split in the same order, the same preprocess.json (medians and
categories exactly, means and standard deviations to 1e-12) and the same report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from logreg.engines.partitions import part_paths, part_rows
from logreg.frames import read_table
from logreg.stages import prepare

CONF = Path(__file__).resolve().parents[1] / "conf"
PREPARE = {"val_size": 0.2, "test_size": 0.2, "missing": "impute", "seed": 0}
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


def engine(cluster, partition_rows=500, **extra):
    return {
        "name": "dask",
        "address": cluster.scheduler_address,
        "n_workers": 2,
        "threads_per_worker": 1,
        "memory_limit": "2GiB",
        "partition_rows": partition_rows,
        **extra,
    }


def run_stage(folder: Path, data: dict, engine_: dict | None = None, **options) -> dict:
    params = {"data": data, "prepare": {**PREPARE, **options}}
    if engine_:
        params["engine"] = engine_
    OmegaConf.save(OmegaConf.create(params), folder / "params.yaml")
    prepare.main(
        [
            "--params",
            str(folder / "params.yaml"),
            "--raw-dir",
            str(folder / "data/raw"),
            "--out-dir",
            str(folder / "data/prepared"),
            "--report",
            str(folder / "reports/data.json"),
        ]
    )
    return json.loads((folder / "reports/data.json").read_text())


def both_engines(tmp_path: Path, cluster, data: dict, **options) -> tuple[Path, Path]:
    numpy_dir, dask_dir = tmp_path / "numpy", tmp_path / "dask"
    numpy_dir.mkdir()
    dask_dir.mkdir()
    run_stage(numpy_dir, data, **options)
    run_stage(dask_dir, data, engine(cluster), **options)
    return numpy_dir, dask_dir


def assert_same_outputs(numpy_dir: Path, dask_dir: Path, partition_rows: int = 500) -> None:
    report = (Path("reports") / "data.json", Path("data/prepared/preprocess.json"))
    numpy_report, dask_report = (
        json.loads((d / report[0]).read_text()) for d in (numpy_dir, dask_dir)
    )
    assert dask_report == numpy_report
    ours, theirs = (json.loads((d / report[1]).read_text()) for d in (dask_dir, numpy_dir))
    assert (
        ours["classes"] == theirs["classes"] and ours["positive_class"] == theirs["positive_class"]
    )
    assert ours["columns"] == theirs["columns"]  # kinds, medians, categories: exactly
    assert [f["name"] for f in ours["features"]] == [f["name"] for f in theirs["features"]]
    for key in ("mean", "std"):
        np.testing.assert_allclose(
            [f[key] for f in ours["features"]], [f[key] for f in theirs["features"]],
            rtol=1e-12, atol=1e-12,
        )  # fmt: skip
    assert {k: v for k, v in ours.items() if k != "features"} == {
        k: v for k, v in theirs.items() if k != "features"
    }
    for name in SPLITS:
        path = Path("data/prepared") / f"{name}.parquet"
        assert (numpy_dir / path).is_file() and (dask_dir / path).is_dir()
        assert all(part_rows(p) <= partition_rows for p in part_paths(dask_dir / path))
        expected, got = read_table(numpy_dir / path), read_table(dask_dir / path)
        assert list(got.columns) == list(expected.columns)
        np.testing.assert_array_equal(got["target"], expected["target"])  # same rows, same order
        features = [c for c in got.columns if c != "target"]
        np.testing.assert_allclose(got[features], expected[features], rtol=1e-12, atol=1e-12)


def test_caravan_prepared_on_dask_equals_the_numpy_engine(tmp_path, cluster):
    caravan = OmegaConf.to_container(OmegaConf.load(CONF / "data/caravan.yaml"))
    numpy_dir, dask_dir = tmp_path / "numpy", tmp_path / "dask"
    numpy_dir.mkdir()
    dask_dir.mkdir()
    run_stage(numpy_dir, caravan)
    run_stage(dask_dir, caravan, engine(cluster, partition_rows=2000))
    assert_same_outputs(numpy_dir, dask_dir, partition_rows=2000)
    raw = dask_dir / "data/raw/caravan.parquet"
    assert len(part_paths(raw)) == 3  # 5,822 rows in parts of 2,000
    pd.testing.assert_frame_equal(
        read_table(raw), read_table(numpy_dir / "data/raw/caravan.parquet")
    )


@pytest.mark.parametrize("name", ["breast_cancer", "iris"])
def test_sklearn_tables_prepared_on_dask_equal_the_numpy_engine(tmp_path, cluster, name):
    data = {"name": name, "source": "sklearn", "target": "target"}
    assert_same_outputs(*both_engines(tmp_path, cluster, data, seed=5))


def mixed_table(n: int, seed: int) -> pd.DataFrame:
    """Numbers with gaps and ties (exact medians matter), a text category with gaps, codes."""
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, n).round(2),
            "visits": rng.integers(0, 40, n).astype(float),
            "region": rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "plan": rng.integers(1, 5, n),  # codes, declared categorical
            "y": np.where(rng.random(n) < 0.08, "churn", "stay"),
        }
    )
    table.loc[rng.random(n) < 0.05, "amount"] = np.nan
    table.loc[rng.random(n) < 0.03, "region"] = None
    return table


@pytest.mark.parametrize("missing", ["impute", "drop"])
def test_csv_files_with_categories_and_gaps_prepare_alike(tmp_path, cluster, missing):
    folder = tmp_path / "logs"
    folder.mkdir()
    for day, n in enumerate([1500, 700, 1801]):
        mixed_table(n, day).to_csv(folder / f"day{day}.csv", index=False)
    data = {
        "name": "logs", "source": "file", "path": str(folder), "target": "y",
        "categorical": ["plan"], "drop": [],
    }  # fmt: skip
    numpy_dir, dask_dir = both_engines(tmp_path, cluster, data, missing=missing)
    assert_same_outputs(numpy_dir, dask_dir)
    prep = json.loads((dask_dir / "data/prepared/preprocess.json").read_text())
    columns = {c["name"]: c for c in prep["columns"]}
    train_raw = read_table(numpy_dir / "data/raw/logs.parquet")  # reference medians, by pandas
    assert columns["region"]["categories"] == ["east", "north", "south", "west"]
    assert columns["plan"]["categories"] == ["1", "2", "3", "4"]
    assert columns["amount"]["fill"] != train_raw["amount"].median()  # train rows only
    assert len(part_paths(dask_dir / "data/raw/logs.parquet")) == 9  # 3+2+4 parts


def test_synthetic_rows_are_the_same_on_both_engines(tmp_path, cluster):
    data = {
        "name": "synthetic", "source": "synthetic", "n_samples": 140_000, "n_features": 3,
        "n_informative": 2, "n_classes": 3, "minority_fraction": 0.05, "seed": 2,
    }  # fmt: skip
    numpy_dir, dask_dir = tmp_path / "numpy", tmp_path / "dask"
    numpy_dir.mkdir()
    dask_dir.mkdir()
    run_stage(numpy_dir, data)
    run_stage(dask_dir, data, engine(cluster, partition_rows=50_000))  # parts cut chunks
    assert_same_outputs(numpy_dir, dask_dir, partition_rows=50_000)
    raw = read_table(dask_dir / "data/raw/synthetic.parquet")
    pd.testing.assert_frame_equal(raw, read_table(numpy_dir / "data/raw/synthetic.parquet"))
    assert (raw["target"] == 2).sum() == 7_000


def test_a_corrupt_parquet_file_among_many_is_named(tmp_path, cluster, capsys):
    folder = tmp_path / "tables"
    folder.mkdir()
    for i in range(4):
        mixed_table(300, i).to_parquet(folder / f"t{i}.parquet", index=False)
    whole = (folder / "t2.parquet").read_bytes()
    (folder / "t2.parquet").write_bytes(whole[: len(whole) // 2])  # truncated
    data = {"name": "tables", "source": "file", "path": str(folder), "target": "y"}
    with pytest.raises(SystemExit) as exit_info:
        run_stage(tmp_path, data, engine(cluster))
    line = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(line.splitlines()) == 1, line
    assert re.search(r"t2\.parquet: not a readable Parquet file", line), line
    assert not (tmp_path / "data/prepared").exists()
    assert not (tmp_path / "data/raw/tables.parquet").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_partition_too_big_for_a_worker_names_both_sizes(tmp_path, cluster, capsys):
    data = {"name": "breast_cancer", "source": "sklearn", "target": "target"}
    with pytest.raises(SystemExit):
        run_stage(tmp_path, data, engine(cluster, partition_rows=100_000_000))
    line = capsys.readouterr().err.strip()
    assert re.search(
        r"engine\.partition_rows=100000000: a partition of 100000000 rows × 31 columns needs "
        r"about [\d.]+ [TG]iB .* above engine\.memory_limit \([\d.]+ [GM]iB per worker "
        r"thread\); set engine\.partition_rows to \d+ or fewer",
        line,
    ), line
    assert not (tmp_path / "data/raw/breast_cancer.parquet").exists()


DATA_ERRORS = [
    "empty target", "one class", "all-NaN feature", "numeric with text", "split too small",
    "missing target", "categorical not a column", "categorical target", "header only",
]  # fmt: skip


@pytest.mark.parametrize("case", DATA_ERRORS)
def test_bad_data_gives_the_numpy_engines_line_on_dask(tmp_path, cluster, capsys, case):
    from test_prepare_stage import BAD_DATA, fails, prepare_argv

    make, message = BAD_DATA[case]
    data = make(tmp_path)
    OmegaConf.save(
        OmegaConf.create({"data": data, "prepare": PREPARE, "engine": engine(cluster, 7)}),
        tmp_path / "params.yaml",
    )
    line = fails(capsys, prepare.main, prepare_argv(tmp_path))  # several parts of 7 rows
    assert re.search(message, line), line
    assert not (tmp_path / "data/prepared").exists() and not (tmp_path / "reports").exists()
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.slow  # a LocalCluster of its own: 10-30 s on a shared 2-core machine
def test_the_real_entry_point_says_one_line_when_a_worker_finds_a_bad_file(tmp_path):
    # The stage starts its own LocalCluster: the workers' stderr is the command's.
    from test_prepare_stage import prepare_argv, run_module

    folder = tmp_path / "tables"
    folder.mkdir()
    for i in range(3):
        mixed_table(100, i).to_parquet(folder / f"t{i}.parquet", index=False)
    (folder / "t1.parquet").write_bytes(b"PAR1 not really")
    data = {"name": "tables", "source": "file", "path": str(folder), "target": "y"}
    dask = {"name": "dask", "address": None, "n_workers": 2, "threads_per_worker": 1,
            "memory_limit": "1GiB", "partition_rows": 50}  # fmt: skip
    OmegaConf.save(
        OmegaConf.create({"data": data, "prepare": PREPARE, "engine": dask}),
        tmp_path / "params.yaml",
    )
    done = run_module("logreg.stages.prepare", prepare_argv(tmp_path), tmp_path)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "Port 8787" not in line]
    assert len(lines) == 1 and "t1.parquet: not a readable Parquet file" in lines[0], done.stderr


def test_the_partition_size_check_by_hand():
    from logreg.engines.dask_prepare import MEMORY_FACTOR, check_partition_memory
    from logreg.errors import UserError

    assert MEMORY_FACTOR == 6  # the figures below are worked out for it
    check_partition_memory(1000, 10, 480_000)  # 1000 × 10 × 8 B × 6 = 480,000 B: fits exactly
    check_partition_memory(10**9, 10, 0)  # no limit set
    with pytest.raises(UserError) as error:
        check_partition_memory(1001, 10, 480_000)
    message = str(error.value)
    assert message.startswith("engine.partition_rows=1001: a partition of 1001 rows × 10 columns")
    assert "set engine.partition_rows to 1000 or fewer" in message  # 480,000 // 480


def _days_with_visits(folder: Path, visits: list) -> dict:
    """CSV files day0.csv, ... whose 'visits' column is ``visits[i]`` in file i: 'number',
    'text' or 'empty' (every value missing); a data section reading them."""
    folder.mkdir()
    for day, kind in enumerate(visits):
        table = mixed_table(300, day)
        if kind == "text":
            table["visits"] = np.where(table["visits"] > 20, "many", "few")
        elif kind == "empty":
            table["visits"] = np.nan
        table.to_csv(folder / f"day{day}.csv", index=False)
    return {"name": "days", "source": "file", "path": str(folder), "target": "y"}


@pytest.mark.parametrize(
    ("visits", "bad", "kinds"),
    [
        (["number", "number", "text"], "day2", ("text", "number")),
        (["text", "number"], "day1", ("number", "text")),
        (["empty", "number", "text"], "day2", ("text", "number")),  # kind set by day1
        (["empty", "text", "number"], "day2", ("number", "text")),
    ],
    ids=["number-then-text", "text-then-number", "empty-number-text", "empty-text-number"],
)
def test_a_column_of_two_kinds_across_csv_files_is_one_line(
    tmp_path, cluster, capsys, visits, bad, kinds
):
    data = _days_with_visits(tmp_path / "days", visits)
    for engine_ in (None, engine(cluster, 100)):  # the numpy engine's line, then Dask's
        with pytest.raises(SystemExit) as exit_info:
            run_stage(tmp_path, data, engine_)
        line = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2 and len(line.splitlines()) == 1, line
        assert re.search(
            rf"{bad}\.csv: column 'visits' holds {kinds[0]} .* but {kinds[1]} in ", line
        ), line
        assert not (tmp_path / "data/prepared").exists()
        assert not (tmp_path / "data/raw").exists() or not list((tmp_path / "data/raw").iterdir())
        assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("later", ["number", "text"])
def test_a_column_empty_in_the_first_file_takes_the_kind_of_the_others(tmp_path, cluster, later):
    data = _days_with_visits(tmp_path / "days", ["empty", later, later])
    numpy_dir, dask_dir = both_engines(tmp_path, cluster, data)
    assert_same_outputs(numpy_dir, dask_dir)
    raw = read_table(dask_dir / "data/raw/days.parquet")
    assert raw["visits"].iloc[:300].isna().all()
    kind = {"number": "numeric", "text": "categorical"}[later]
    prep = json.loads((dask_dir / "data/prepared/preprocess.json").read_text())
    assert {c["name"]: c["kind"] for c in prep["columns"]}["visits"] == kind
