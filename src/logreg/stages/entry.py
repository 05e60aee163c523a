"""The command line every stage shares: its paths as flags, its params sections checked once.

A stage names its paths in a dataclass, one field per flag (``raw_dir`` is
``--raw-dir``), annotated with its help (``Annotated[Path, "folder for ..."]``); a field
that defaults to None is an optional flag. :func:`parse` turns ``argv`` into those
paths, and the params file into plain sections, the ones the stage reads checked by
:func:`logreg.schema.validate`. That is the stage's edge: the functions it calls check
no config again.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from logreg import schema
from logreg.config import DEFAULT_PARAMS, load_params, plain

P = TypeVar("P")


def parse(
    argv: Sequence[str] | None, paths: type[P], sections: Sequence[str], prog: str, doc: str
) -> tuple[dict[str, Any], P]:
    """The stage's params (its ``sections`` checked) and its paths, from its command line."""
    params_file, parsed = parse_paths(argv, paths, prog, doc)
    return read_params(params_file, sections), parsed


def parse_paths(
    argv: Sequence[str] | None, paths: type[P], prog: str = "", doc: str = ""
) -> tuple[Path, P]:
    """``--params`` and the stage's paths; argparse exits 2 with its usage on a bad flag."""
    parser = argparse.ArgumentParser(prog=prog or None, description=doc.split("\n")[0])
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="composed params file")
    hints = typing.get_type_hints(paths, include_extras=True)
    for field in dataclasses.fields(paths):  # type: ignore[arg-type]
        required = field.default is dataclasses.MISSING
        parser.add_argument(
            _flag(field.name), required=required, help=hints[field.name].__metadata__[0]
        )
    args = vars(parser.parse_args(argv))
    params_file = Path(args.pop("params"))
    return params_file, paths(**{k: None if v is None else Path(v) for k, v in args.items()})


def read_params(params_file: str | Path, sections: Sequence[str]) -> dict[str, Any]:
    """Every section of the params file as plain values; ``sections`` checked, defaults filled."""
    cfg = load_params(params_file)
    checked = schema.validate(cfg, sections, str(params_file))
    return {**plain(cfg, params_file), **checked}


def argv(paths: Any) -> list[str]:
    """The flags that :func:`parse_paths` reads back as ``paths`` (an unset optional left out)."""
    words = []
    for field in dataclasses.fields(paths):
        value = getattr(paths, field.name)
        if value is not None:
            words += [_flag(field.name), str(value)]
    return words


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
