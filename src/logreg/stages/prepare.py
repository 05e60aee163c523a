"""Stage ``prepare``: load the data source, split it, fit preprocessing on train only.

Run it as DVC does::

    python -m logreg.stages.prepare --params params.yaml --raw-dir data/raw \\
        --out-dir data/prepared --report reports/data.json

Reads the ``data`` and ``prepare`` sections of ``params.yaml``. Writes the loaded table
to ``<raw-dir>/<data.name>.parquet``, then the stratified ``train``/``val``/``test``
splits and ``preprocess.json`` to ``<out-dir>``, and rows, features and class counts
per split to the report. Every file is written atomically.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from logreg import preprocess, schema
from logreg.config import load_params
from logreg.datasets import load_dataset
from logreg.errors import UserError, cli
from logreg.frames import RESERVED, TARGET, class_counts, minority_class, plain_label, write_table
from logreg.io import write_json
from logreg.preprocess import Preprocessing

SPLITS = ("train", "val", "test")
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
    """Stratified train/val/test split; a UserError if any split would miss a class."""
    from sklearn.model_selection import train_test_split  # slow to import: only when used

    counts = frame[TARGET].value_counts()
    hint = (
        f"add rows of that class or change prepare.val_size={val_size} / "
        f"prepare.test_size={test_size}"
    )
    if counts.min() < len(SPLITS):
        raise UserError(
            f"split too small to hold every class: class {plain_label(counts.idxmin())!r} has "
            f"{counts.min()} row(s), but train, val and test each need one; {hint}"
        )
    try:
        rest, test = train_test_split(
            frame, test_size=test_size, stratify=frame[TARGET], random_state=seed
        )
        train, val = train_test_split(
            rest, test_size=val_size / (1 - test_size), stratify=rest[TARGET], random_state=seed
        )
    except ValueError as exc:
        raise UserError(f"split too small to hold every class ({exc}); {hint}") from None
    splits = {"train": train, "val": val, "test": test}
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

    ``categorical`` names the numeric columns that hold codes, to one-hot encode.
    Binary problems record the train split's minority class as ``prep.positive_class``.
    """
    check_target(frame, target)
    check_features(frame, target, categorical)
    labelled = frame.rename(columns={target: TARGET}).reset_index(drop=True)
    raw_splits = split_frame(labelled, val_size, test_size, seed)
    prep = preprocess.fit(raw_splits["train"], missing, categorical)
    splits = {
        name: preprocess.transform(prep, split).reset_index(drop=True)
        for name, split in raw_splits.items()
    }
    if labelled[TARGET].nunique() == 2:
        prep.positive_class = minority_class(splits["train"][TARGET].to_numpy())
    if missing == "drop":
        hint = "prepare.missing=drop removed too many rows; use prepare.missing=impute"
        check_classes(splits, set(labelled[TARGET].unique()), hint)
    report: dict[str, Any] = {"raw": {"rows": len(frame), "columns": frame.shape[1] - 1}}
    for name, split in splits.items():
        report[name] = {
            "rows": len(split),
            "features": len(prep.features),
            "classes": class_counts(split[TARGET]),
        }
    return splits, prep, report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logreg.stages.prepare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--params", required=True, help="composed params.yaml")
    parser.add_argument("--raw-dir", required=True, help="folder for <data.name>.parquet")
    parser.add_argument(
        "--out-dir", required=True, help="folder for the splits and preprocess.json"
    )
    parser.add_argument("--report", required=True, help="JSON report: rows, features, classes")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    params = schema.validate(load_params(args.params), ("data", "prepare"), args.params)
    data, options = params["data"], params["prepare"]
    frame, target = load_dataset(data)
    source = data.get("path") or f"data.name={data['name']}"
    categorical = [str(c) for c in data["categorical"]]
    try:
        check_target(frame, target)
        check_features(frame, target, categorical)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    write_table(frame, Path(args.raw_dir) / f"{data['name']}.parquet")
    try:
        splits, prep, report = prepare_splits(frame, target, categorical=categorical, **options)
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    out_dir = Path(args.out_dir)
    for name in SPLITS:
        write_table(splits[name], out_dir / f"{name}.parquet")
    preprocess.write_preprocessing(out_dir / "preprocess.json", prep)
    write_json(args.report, report)


if __name__ == "__main__":
    main()
