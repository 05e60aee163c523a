"""The table contract between stages.

Prepared and rebalanced splits are Parquet tables of standardised float feature
columns plus two reserved columns: ``target`` (the original class labels) and, in
the rebalanced training split, ``sample_weight`` (ones unless the ``class_weight``
strategy set them). Every stage reads and writes tables through this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from logreg.errors import UserError
from logreg.io import atomic_path

TARGET = "target"
WEIGHT = "sample_weight"
RESERVED = (TARGET, WEIGHT)


@dataclass(frozen=True)
class Split:
    """One split as arrays: ``X`` (n, d) float, ``y`` (n,) labels, ``sample_weight`` (n,)."""

    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray
    feature_names: list[str]


def plain_label(label: Any) -> Any:
    """A NumPy scalar label as its Python value, so it reads 1 (not np.int64(1)) and serialises."""
    return label.item() if isinstance(label, np.generic) else label


def class_counts(y: Any) -> dict[str, int]:
    """Rows per class, keyed by the label as text, in label order (for reports)."""
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    return {str(plain_label(label)): int(n) for label, n in zip(labels, counts, strict=True)}


def minority_class(y: Any) -> Any:
    """The least frequent label (ties go to the label that sorts last): the positive class."""
    labels, counts = np.unique(np.asarray(y), return_counts=True)
    return plain_label(labels[counts == counts.min()][-1])


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run the earlier pipeline stages first)") from None
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"{path}: not a readable Parquet file ({exc})") from None


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def to_split(frame: pd.DataFrame, source: str = "table") -> Split:
    """Separate features, labels and weights; weights default to ones."""
    if TARGET not in frame.columns:
        raise UserError(f"{source}: missing the '{TARGET}' column")
    feature_names = [c for c in frame.columns if c not in RESERVED]
    weights = (
        frame[WEIGHT].to_numpy(dtype=np.float64)
        if WEIGHT in frame.columns
        else np.ones(len(frame), dtype=np.float64)
    )
    return Split(
        X=frame[feature_names].to_numpy(dtype=np.float64),
        y=frame[TARGET].to_numpy(),
        sample_weight=weights,
        feature_names=feature_names,
    )


def read_split(path: str | os.PathLike[str]) -> Split:
    return to_split(read_table(path), source=str(path))
