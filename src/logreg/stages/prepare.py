"""Stage ``prepare``: load the data source, split it, fit preprocessing on train only.

Run it as DVC does::

    python -m logreg.stages.prepare --params params.yaml --raw-dir data/raw \\
        --out-dir data/prepared --report reports/data.json

Reads the ``data``, ``prepare`` and ``engine`` sections of ``params.yaml``. Writes the
loaded table to ``<raw-dir>/<data.name>.parquet``, then the stratified
``train``/``val``/``test`` splits (:mod:`logreg.hash_split`) and ``preprocess.json`` to
``<out-dir>``, and rows, features and class counts per split to the report. Every file
is written atomically. With ``engine=dask`` each table is a folder of partitions, written
by the cluster's workers (:mod:`logreg.engines.dask_prepare`), with the same rows,
preprocessing and report.

:func:`prepare_splits` does the work on a frame; :func:`run` loads, checks the data and
writes, given checked params and :class:`Paths`; :func:`main` is the command line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd

from logreg import hash_split, preprocess
from logreg.datasets import load_dataset
from logreg.errors import UserError, cli
from logreg.frames import RESERVED, TARGET, class_counts, minority_class, plain_label, write_table
from logreg.io import write_json
from logreg.preprocess import Preprocessing
from logreg.stages import entry

SPLITS = ("train", "val", "test")
SPLIT_CODE = {name: hash_split.SPLITS.index(name) for name in SPLITS}  # hash_split.assign's codes
MAX_CLASSES = 100  # more distinct target values than this is almost surely not a class label


def check_target(frame: pd.DataFrame, target: str) -> None:
    """A UserError for a target column that is absent, has gaps or holds fewer than two classes."""
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:10]))
        raise UserError(f"target column '{target}' (data.target) not found; columns are {shown}")
    clashes = [c for c in RESERVED if c in frame.columns and c != target]
    if clashes:
        raise UserError(f"feature column(s) {clashes} use reserved names; rename or drop them")
    labels = frame[target]
    empty = labels.isna().to_numpy()
    if labels.dtype == object or pd.api.types.is_string_dtype(labels):
        blank = labels.astype("string").str.strip().eq("").fillna(True).to_numpy(dtype=bool)
        empty = empty | blank
    if empty.any():
        raise UserError(
            f"target column '{target}' has {int(empty.sum())} empty value(s), the first at "
            f"{preprocess.row_name(frame.index, int(empty.argmax()))}; fill or remove those rows"
        )
    n_classes = labels.nunique()
    if n_classes < 2:
        raise UserError(
            f"target column '{target}' has a single class ({plain_label(labels.iloc[0])!r}); "
            "a classifier needs at least two"
        )
    if n_classes > MAX_CLASSES:
        raise UserError(
            f"target column '{target}' has {n_classes} distinct values; it looks continuous, "
            "not a class label (data.target)"
        )


def check_features(frame: pd.DataFrame, target: str, categorical: Sequence[str] = ()) -> None:
    """A UserError for a feature column no preprocessing can use, or a bad data.categorical."""
    if target in categorical:
        raise UserError(
            f"data.categorical: lists the target column '{target}'; it names feature columns"
        )
    preprocess.check_columns(frame.drop(columns=target), categorical=categorical)


def split_frame(
    frame: pd.DataFrame, val_size: float, test_size: float, seed: int
) -> dict[str, pd.DataFrame]:
    """Stratified train/val/test split by seeded row hashes (:mod:`logreg.hash_split`), as
    the dask engine splits; a UserError if any split would miss a class."""
    counts = frame[TARGET].value_counts()
    hint = hash_split.too_small_hint(val_size, test_size)
    if counts.min() < len(SPLITS):
        raise UserError(
            f"split too small to hold every class: class {plain_label(counts.idxmin())!r} has "
            f"{counts.min()} row(s), but train, val and test each need one; {hint}"
        )
    classes = np.unique(frame[TARGET].to_numpy())
    klass = hash_split.class_index(frame[TARGET], classes)
    split = hash_split.split_in_memory(
        hash_split.row_hashes(frame, seed), klass, len(classes), val_size, test_size
    )
    splits = {name: frame.take(np.flatnonzero(split == SPLIT_CODE[name])) for name in SPLITS}
    check_classes(splits, set(counts.index), hint)
    return splits


def check_classes(splits: dict[str, pd.DataFrame], classes: set[Any], hint: str) -> None:
    for name, split in splits.items():
        absent = classes - set(split[TARGET].unique())
        if absent:
            raise UserError(
                f"split too small to hold every class: the {name} split ({len(split)} rows) "
                f"has no row of class(es) {sorted(map(str, absent))}; {hint}"
            )


def prepare_splits(
    frame: pd.DataFrame,
    target: str,
    val_size: float = 0.2,
    test_size: float = 0.2,
    missing: str = "impute",
    seed: int = 0,
    categorical: Sequence[str] = (),
) -> tuple[dict[str, pd.DataFrame], Preprocessing, dict[str, Any]]:
    """Split the raw table, fit preprocessing on train, transform all three; plus the report.

    ``frame`` has passed :func:`check_target` and :func:`check_features`. ``categorical``
    names the numeric columns that hold codes, to one-hot encode. Binary problems record
    the train split's minority class as ``prep.positive_class``.
    """
    raw_splits = split_raw(frame, target, val_size, test_size, seed)
    return transform_splits(raw_splits, missing, categorical)


def split_raw(
    frame: pd.DataFrame, target: str, val_size: float, test_size: float, seed: int
) -> dict[str, pd.DataFrame]:
    """The raw table's train, val and test rows, the target column named ``target``.

    Each split is a copy: the raw table can be freed once they are made.
    """
    labelled = frame.rename(columns={target: TARGET}).reset_index(drop=True)
    return split_frame(labelled, val_size, test_size, seed)


def transform_splits(
    raw_splits: dict[str, pd.DataFrame], missing: str = "impute", categorical: Sequence[str] = ()
) -> tuple[dict[str, pd.DataFrame], Preprocessing, dict[str, Any]]:
    """Preprocessing fitted on the train split, the three splits transformed, the report.

    Takes the raw splits out of ``raw_splits`` as it transforms them: each is freed
    once transformed, so not all of both are held at once.
    """
    classes = set().union(*(split[TARGET].unique() for split in raw_splits.values()))
    raw = {
        "rows": sum(len(split) for split in raw_splits.values()),
        "columns": raw_splits["train"].shape[1] - 1,
    }
    prep = preprocess.fit(raw_splits["train"], missing, categorical)
    splits = {
        name: preprocess.transform(prep, raw_splits.pop(name)).reset_index(drop=True)
        for name in SPLITS
    }
    prep.classes = [plain_label(c) for c in np.unique(splits["train"][TARGET].to_numpy())]
    if len(classes) == 2:
        prep.positive_class = minority_class(splits["train"][TARGET].to_numpy())
    if missing == "drop":
        hint = "prepare.missing=drop removed too many rows; use prepare.missing=impute"
        check_classes(splits, classes, hint)
    report: dict[str, Any] = {"raw": raw}
    for name, split in splits.items():
        report[name] = {
            "rows": len(split),
            "features": len(prep.features),
            "classes": class_counts(split[TARGET]),
        }
    return splits, prep, report


@dataclass(frozen=True, kw_only=True)
class Paths:
    raw_dir: Annotated[Path, "folder for <data.name>.parquet"]
    out_dir: Annotated[Path, "folder for the splits and preprocess.json"]
    report: Annotated[Path, "JSON report: rows, features, classes"]


SECTIONS = ("data", "prepare", "engine")


def run(params: Mapping[str, Any], paths: Paths) -> None:
    """Load the source, check it, write the raw table, then the splits, preprocessing, report."""
    data, options = params["data"], params["prepare"]
    if params["engine"]["name"] == "dask":  # the same outputs, as partition folders
        from logreg.engines.cluster import engine_client
        from logreg.engines.dask_prepare import prepare_on_dask

        with engine_client(params["engine"]) as client:
            prep, report = prepare_on_dask(
                client, data, options, params["engine"]["partition_rows"],
                paths.raw_dir / f"{data['name']}.parquet", paths.out_dir,
            )  # fmt: skip
        preprocess.write_preprocessing(paths.out_dir / "preprocess.json", prep)
        write_json(paths.report, report)
        return
    frame, target = load_dataset(data)
    source = data.get("path") or f"data.name={data['name']}"
    categorical = [str(c) for c in data["categorical"]]
    try:  # a problem with the data names its source
        check_target(frame, target)
        check_features(frame, target, categorical)
        write_table(frame, paths.raw_dir / f"{data['name']}.parquet")
        raw_splits = split_raw(
            frame, target, options["val_size"], options["test_size"], options["seed"]
        )
        del frame  # the splits hold every row: the raw table goes before the transforms
        splits, prep, report = transform_splits(raw_splits, options["missing"], categorical)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    for name in SPLITS:
        write_table(splits.pop(name), paths.out_dir / f"{name}.parquet")  # each freed once written
    preprocess.write_preprocessing(paths.out_dir / "preprocess.json", prep)
    write_json(paths.report, report)


@cli
def main(argv: list[str] | None = None) -> None:
    run(*entry.parse(argv, Paths, SECTIONS, "logreg.stages.prepare", __doc__))


if __name__ == "__main__":
    main()
