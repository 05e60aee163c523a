"""Preprocessing learned on the train split only, saved as plain JSON, applied to any table.

:func:`fit` learns, from the train split alone, everything a transform needs:

- the kind of each input column: numbers stay numbers, except the columns listed as
  categorical (``data.categorical``: numeric codes); those, strings, categories and
  booleans-as-text are categorical and one-hot encoded against the categories seen in
  train (the first in sorted order, codes by value, is the reference level and gets no
  column, so the design matrix is not collinear with the intercept; unseen categories
  encode as all zeros, like the reference);
- missing values (``missing``): ``impute`` fills numbers with the train median and
  categories with the train mode; ``drop`` removes every row with a gap, in any split;
- standardisation with the train mean and population std (ddof=0, as scikit-learn's
  ``StandardScaler``); output columns that are constant in train are dropped with a warning.

:func:`transform` applies it, and :func:`inverse_transform` maps features back to input
rows; :meth:`Preprocessing.to_json` / :meth:`Preprocessing.from_json`
store it without pickle, so prediction on new data applies the same transform.
:func:`check_columns` rejects data no transform can fix: a feature with no values, infinite
values, or a column that looks numeric but holds a few non-numeric values (named with
an example value and its row, rather than one-hot encoded into hundreds of columns).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from logreg.errors import UserError
from logreg.frames import RESERVED, TARGET
from logreg.io import write_text

MISSING = ("impute", "drop")
NUMERIC_SHARE = 0.9  # a text column where at least this share parses as numbers "looks numeric"
MANY_CATEGORIES = 100  # more than this in one column is likely an id or free text: warn
FORMAT = "logreg.preprocess/1"
NUMERIC, CATEGORICAL = "numeric", "categorical"


@dataclass
class Column:
    """One input column: its kind, its fill value and (categorical) its train categories."""

    name: str
    kind: str
    fill: float | str
    categories: list[str] = field(default_factory=list)


@dataclass
class Feature:
    """One output column: ``(encoded value - mean) / std``."""

    name: str
    mean: float
    std: float


@dataclass
class Preprocessing:
    """A fitted transform: input columns, output features and the columns dropped as constant.

    ``positive_class`` (binary problems) is the minority class of the train split, recorded
    by the prepare stage so every later stage agrees on it whatever the rebalancing;
    ``classes`` are the train split's labels in sorted order, so a later stage on
    partitions knows them without a pass over the data.
    """

    missing: str
    columns: list[Column]
    features: list[Feature]
    dropped_constant: list[str] = field(default_factory=list)
    positive_class: Any = None
    classes: list[Any] | None = None  # the sorted labels, as the estimator orders them

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def one_hot_groups(self) -> dict[str, list[str]]:
        """Each categorical input column's one-hot features that survived into the output."""
        kept = set(self.feature_names)
        groups = {
            column.name: [
                name
                for name in (one_hot_name(column.name, c) for c in column.categories[1:])
                if name in kept
            ]
            for column in self.columns
            if column.kind == CATEGORICAL
        }
        return {column: names for column, names in groups.items() if names}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Preprocessing:
        if payload.get("format") != FORMAT:
            raise UserError(
                f"preprocessing: expected format '{FORMAT}', got {payload.get('format')!r}"
            )
        return cls(
            missing=payload["missing"],
            columns=[Column(**c) for c in payload["columns"]],
            features=[Feature(**f) for f in payload["features"]],
            dropped_constant=list(payload.get("dropped_constant", [])),
            positive_class=payload.get("positive_class"),
            classes=payload.get("classes"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        return cls.from_dict(json.loads(text))


def write_preprocessing(path: str | os.PathLike[str], prep: Preprocessing) -> None:
    write_text(path, prep.to_json())


def read_preprocessing(path: str | os.PathLike[str]) -> Preprocessing:
    file = Path(path)
    try:
        return Preprocessing.from_json(file.read_text())
    except FileNotFoundError:
        raise UserError(f"{file}: file not found (run the prepare stage first)") from None
    except (UserError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{file}: not a preprocessing file ({exc})") from None


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in RESERVED]


def check_columns(
    frame: pd.DataFrame, where: str = "the data", categorical: Sequence[str] = ()
) -> dict[str, str]:
    """Each feature column's kind (numeric or categorical); a UserError for unusable columns.

    The columns named in ``categorical`` are categorical whatever they hold: numbers there
    are codes (a customer type, a postcode), whose size means nothing.
    """
    names = feature_columns(frame)
    absent = [c for c in categorical if c not in names]
    if absent:
        raise UserError(
            f"data.categorical: column(s) {absent} not among the feature columns of {where}"
        )
    return column_kinds({name: profile(frame[name]) for name in names}, where, categorical)


@dataclass(frozen=True)
class Profile:
    """What :func:`column_kinds` needs of a column; partitions' profiles :func:`merge`.

    ``dtype`` is numeric, category, text or the unsupported dtype's name; the first
    non-number text value and the first infinity keep their row labels for the message.
    """

    name: str
    dtype: str
    present: int
    numbers: int  # present values that are numbers (all of them unless the dtype is text)
    first_text: tuple[Any, Any] | None = None  # (row label, value)
    first_infinite: Any = None  # row label

    def merge(self, other: Profile) -> Profile:
        """Both parts' profile, ``self`` holding the earlier rows."""
        dtype = self.dtype if other.present == 0 else other.dtype if self.present == 0 else None
        if dtype is None:
            dtype = self.dtype if self.dtype == other.dtype else "text"  # as pandas concatenates
        return Profile(
            self.name,
            dtype,
            self.present + other.present,
            self.numbers + other.numbers,
            self.first_text or other.first_text,
            self.first_infinite if self.first_infinite is not None else other.first_infinite,
        )


def profile(values: pd.Series) -> Profile:
    """One column's (or one partition's part of it) :class:`Profile`."""
    name, present = str(values.name), values.notna().to_numpy()
    if _is_numeric(values):
        dtype, numbers = NUMERIC, values.astype(np.float64)
    elif isinstance(values.dtype, pd.CategoricalDtype):
        return Profile(name, "category", int(present.sum()), int(present.sum()))
    elif pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
        dtype = "text"
        numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
    else:
        return Profile(name, str(values.dtype), int(present.sum()), 0)
    parsed = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    is_number = ~np.isnan(parsed)
    bad = present & ~is_number
    infinite = np.isinf(parsed)
    return Profile(
        name,
        dtype,
        int(present.sum()),
        int(is_number.sum()),
        (values.index[int(bad.argmax())], values.iloc[int(bad.argmax())]) if bad.any() else None,
        values.index[int(infinite.argmax())] if infinite.any() else None,
    )


def column_kinds(
    profiles: dict[str, Profile], where: str = "the data", categorical: Sequence[str] = ()
) -> dict[str, str]:
    """Each column's kind from its profile; a UserError for a column no transform can use."""
    kinds = {}
    for name, column in profiles.items():
        if column.present == 0:
            raise UserError(
                f"column '{name}': all values are missing in {where}; drop it (data.drop)"
            )
        kinds[name] = CATEGORICAL if name in categorical else _column_kind(column)
        if kinds[name] == NUMERIC and column.first_infinite is not None:
            raise UserError(
                f"column '{name}': infinite value at {row_label(column.first_infinite)}"
            )
    return kinds


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)


def _column_kind(column: Profile) -> str:
    if column.dtype == NUMERIC:
        return NUMERIC
    if column.dtype == "category":
        return CATEGORICAL
    if column.dtype != "text":
        raise UserError(
            f"column '{column.name}': unsupported type {column.dtype}; drop it (data.drop)"
        )
    share = column.numbers / column.present
    if share == 1.0:
        return NUMERIC
    if share >= NUMERIC_SHARE:
        row, value = column.first_text
        raise UserError(
            f"column '{column.name}' looks numeric ({share:.1%} of values are numbers) but has "
            f"{column.present - column.numbers} non-numeric values, e.g. {value!r} at "
            f"{row_label(row)}; fix them or leave them empty to mark them missing"
        )
    return CATEGORICAL


def row_name(index: pd.Index, position: int) -> str:
    """Name a row for a message: 1-based, header excluded, from the original row number."""
    return row_label(index[position])


def row_label(label: Any) -> str:
    """A row's index label for a message (:func:`row_name`)."""
    if isinstance(label, (int, np.integer)):
        return f"row {int(label) + 1} (1-based, header excluded)"
    return f"row {label!r}"


def fit(
    train: pd.DataFrame, missing: str = "impute", categorical: Sequence[str] = ()
) -> Preprocessing:
    """Learn the transform from the train split (``target``/``sample_weight`` are ignored).

    ``categorical`` names columns to one-hot encode even though they hold numbers.
    """
    check_missing(missing)
    kinds = check_columns(train, where="the train split", categorical=categorical)
    if not kinds:
        raise UserError("no feature columns besides the target")
    columns = []
    for name, kind in kinds.items():
        values = as_kind(train[name], kind)
        if kind == NUMERIC:
            columns.append(Column(name, kind, float(values.median())))
        else:
            columns.append(categorical_column(name, values.value_counts().to_dict()))
    encoded, index, _ = encode(columns, train, missing)
    # Column by column: no full-size matrix or mask beside the encoded columns.
    stats = {
        name: Stats(
            len(values), float(values.mean()), float(values.std()), values.min(), values.max()
        )
        for name, values in encoded.items()
        if len(index)
    }
    return fitted(missing, columns, stats)


def check_missing(missing: str) -> None:
    if missing not in MISSING:
        raise UserError(
            f"prepare.missing: unknown value '{missing}'; choose one of {list(MISSING)}"
        )


def categorical_column(name: str, counts: dict[str, int]) -> Column:
    """A categorical input column from its train categories' counts: the categories in
    :func:`_category_order`, the mode (ties: the first in text order, as pandas') to fill."""
    categories = sorted(counts, key=_category_order)
    most = max(counts.values())
    mode = min(category for category, n in counts.items() if n == most)
    if len(categories) > MANY_CATEGORIES:
        warnings.warn(
            f"column '{name}' has {len(categories)} categories in the train split, "
            f"so one-hot encoding adds {len(categories) - 1} features; if it is an "
            "identifier or free text, drop it (data.drop)",
            stacklevel=3,
        )
    return Column(name, CATEGORICAL, str(mode), categories)


class Stats(NamedTuple):
    """An encoded train column's row count, mean, population std (ddof=0), min and max."""

    n: int
    mean: float
    std: float
    min: float
    max: float


def fitted(missing: str, columns: list[Column], stats: dict[str, Stats]) -> Preprocessing:
    """The transform from the input columns and their encoded columns' statistics: the
    columns constant in train are dropped (with a warning), the others standardised."""
    if not stats:
        raise UserError("prepare.missing=drop: every train row has a missing value")
    is_constant = {name: bool(stat.min == stat.max) for name, stat in stats.items()}
    constant = [name for name, flat in is_constant.items() if flat]
    constant += [c.name for c in columns if c.kind == CATEGORICAL and len(c.categories) == 1]
    if constant:
        warnings.warn(
            f"dropping {len(constant)} column(s) constant in the train split: {constant}",
            stacklevel=3,
        )
    if all(is_constant.values()):
        raise UserError("every feature is constant in the train split; nothing to learn from")
    features = [
        Feature(str(name), stat.mean, stat.std)
        for name, stat in stats.items()
        if not is_constant[name]
    ]
    return Preprocessing(missing, columns, features, constant)


def transform(prep: Preprocessing, frame: pd.DataFrame) -> pd.DataFrame:
    """Standardised float features in ``prep.feature_names`` order, plus ``target`` if present.

    With ``missing="drop"`` rows with a gap are removed; the index of the rows kept is preserved.
    """
    absent = [c.name for c in prep.columns if c.name not in frame.columns]
    if absent:
        raise UserError(f"missing column(s) {absent} that the preprocessing was fitted on")
    encoded, index, keep = encode(prep.columns, frame, prep.missing)
    # Filled column by column into a Fortran-ordered matrix: each output column is
    # contiguous, as the frame's columns (and the Parquet writer) want them.
    values = np.empty((len(index), len(prep.features)), order="F")
    for j, feature in enumerate(prep.features):
        column = encoded.get(feature.name, 0.0)  # a one-hot column absent here is all zeros
        np.subtract(column, feature.mean, out=values[:, j])
        values[:, j] /= feature.std
    out = pd.DataFrame(values, columns=prep.feature_names, index=index, copy=False)
    if TARGET in frame.columns:
        out[TARGET] = frame[TARGET].array[keep]  # positional, keeps the dtype
    return out


def one_hot_name(column: str, category: str) -> str:
    """The output feature that is 1 where ``column`` holds ``category``."""
    return f"{column}={category}"


def inverse_transform(prep: Preprocessing, features: pd.DataFrame) -> pd.DataFrame:
    """Input rows that :func:`transform` maps onto ``features`` (standardised, by name).

    Numbers are un-standardised; a categorical column takes the category whose one-hot
    column is 1, or its reference level when none is. A column dropped as constant in
    train gets its fill value, which is that constant. Used to show the served model's
    input with real rows; imputed gaps come back as the fill value, not as gaps.
    """
    absent = [name for name in prep.feature_names if name not in features.columns]
    if absent:
        raise UserError(f"missing feature column(s) {absent[:5]} of the preprocessing")
    encoded = {
        f.name: features[f.name].to_numpy(dtype=np.float64) * f.std + f.mean for f in prep.features
    }
    raw: dict[str, np.ndarray] = {}
    for column in prep.columns:
        if column.kind == NUMERIC:
            raw[column.name] = encoded.get(column.name, np.full(len(features), column.fill))
            continue
        values = np.full(len(features), column.categories[0], dtype=object)
        for category in column.categories[1:]:
            one_hot = encoded.get(one_hot_name(column.name, category))
            if one_hot is not None:
                values[np.round(one_hot) == 1.0] = category
        raw[column.name] = values
    return pd.DataFrame(raw, index=features.index)


def as_kind(values: pd.Series, kind: str) -> pd.Series:
    if kind == NUMERIC:
        if _is_numeric(values):
            return values.astype(np.float64)
        parsed = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
        bad = parsed.isna() & values.notna()
        if bad.any():
            position = int(np.argmax(bad.to_numpy()))
            raise UserError(
                f"column '{values.name}': non-numeric value {values.iloc[position]!r} at "
                f"{row_name(values.index, position)}"
            )
        return parsed.astype(np.float64)
    return (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: v if v is None else _category_label(v))
    )


def _category_label(value: Any) -> str:
    """A category as text; the code 33 read as 33.0 (its column has gaps) is still '33'."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _category_order(label: str) -> tuple[int, float, str]:
    """Numeric codes in numeric order (2 before 10), then text in alphabetical order."""
    try:
        value = float(label)
    except ValueError:
        return (1, 0.0, label)
    return (0, value, label) if math.isfinite(value) else (1, 0.0, label)


def encode(
    columns: list[Column], frame: pd.DataFrame, missing: str
) -> tuple[dict[str, np.ndarray], pd.Index, np.ndarray]:
    """Numbers as float, categories one-hot (no column for the reference level), gaps handled.

    Returns the encoded columns by name, the original index of their rows and the
    boolean mask of the rows of ``frame`` they come from (all True unless
    ``missing="drop"``).
    """
    typed = {c.name: as_kind(frame[c.name], c.kind) for c in columns}
    if missing == "drop":
        gaps = np.zeros(len(frame), dtype=bool)
        for values in typed.values():
            gaps |= values.isna().to_numpy()
        keep = ~gaps
        typed = {name: values[keep] for name, values in typed.items()}
        index = frame.index[keep]
    else:
        typed = {c.name: typed[c.name].fillna(c.fill) for c in columns}
        keep = np.ones(len(frame), dtype=bool)
        index = frame.index
    parts: dict[str, np.ndarray] = {}
    for column in columns:
        values = typed[column.name]
        if column.kind == NUMERIC:
            parts[column.name] = values.to_numpy(dtype=np.float64)
            continue
        for category in column.categories[1:]:
            name = one_hot_name(column.name, category)
            if name in parts:
                raise UserError(
                    f"column '{column.name}': one-hot column '{name}' clashes with another"
                )
            parts[name] = (values == category).to_numpy(dtype=np.float64)
    return parts, index, keep
