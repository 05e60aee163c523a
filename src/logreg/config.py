"""Reading the composed parameters at the stage entry points.

``params.yaml`` is the composition of ``conf/`` (see ``logreg.params``). Stages check
and read only their own sections from it (and a label or two, as dvc.yaml lists), so
DVC's per-key params tracking matches what each stage really uses. Only entry points
call this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from logreg.errors import UserError

DEFAULT_PARAMS = "params.yaml"


def load_params(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> DictConfig:
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: params file not found")
    try:
        cfg = OmegaConf.load(file)
    except Exception as exc:
        raise UserError(f"{file}: not valid YAML ({exc})") from None
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{file}: expected a mapping of sections at the top level")
    return cfg


def plain(cfg: DictConfig, source: str | os.PathLike[str] = DEFAULT_PARAMS) -> dict[str, Any]:
    """Every section as plain values, interpolations resolved; a broken one is a user error."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as exc:
        raise UserError(f"{source}: {str(exc).splitlines()[0]}") from None


def section(cfg: DictConfig, key: str, source: str = DEFAULT_PARAMS) -> dict[str, Any]:
    """One top-level section as a plain dict; a missing section is a user error."""
    if key not in cfg:
        raise UserError(f"{source}: missing section '{key}'")
    value = OmegaConf.to_container(cfg[key], resolve=True)
    if not isinstance(value, dict):
        raise UserError(f"{source}: section '{key}' must be a mapping")
    return value
