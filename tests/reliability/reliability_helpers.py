"""Helpers of the reliability tests: configs, stage commands and one-line error checks."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from logreg import pipeline
from logreg.params import compose
from logreg.stages import entry

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
TINY_DATA = {
    "name": "synthetic",
    "source": "synthetic",
    "n_samples": 400,
    "n_features": 4,
    "n_informative": 2,
    "n_classes": 2,
    "minority_fraction": 0.2,
    "seed": 0,
}
_COMPOSED: dict[str, Any] = {}


def composed() -> dict[str, Any]:
    """conf/ composed with no overrides (once per process): the project's real defaults."""
    if not _COMPOSED:
        _COMPOSED.update(compose(CONF))
    return copy.deepcopy(_COMPOSED)


def tiny_params(**sections: dict[str, Any]) -> dict[str, Any]:
    """The composed config on tiny synthetic data, no tracking; ``sections`` update it.

    A ``data`` section replaces the tiny one whole: each source has its own keys.
    """
    params = composed()
    params["data"] = dict(TINY_DATA)
    params["mlflow"] = {**params["mlflow"], "enabled": False}
    params["train"] = {**params["train"], "epochs": 20}
    params["evaluate"] = {"baseline": False}
    for name, values in sections.items():
        params[name] = dict(values) if name == "data" else {**params.get(name, {}), **values}
    return params


def write_params(folder: Path, params: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a stage subprocess: no debug flags, no tracking URI, no network."""
    drop = ("LOGREG_DEBUG", "HYDRA_FULL_ERROR", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "DVC_ROOT")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env |= {"MLFLOW_DISABLE_TELEMETRY": "true", "NO_PROXY": "127.0.0.1,localhost"}
    return env | extra


@dataclass
class Done:
    """A finished command: its exit code, output and wall-clock seconds."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def run_command(
    args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Done:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.perf_counter() - started
    return Done(done.returncode, done.stdout, done.stderr, seconds)


def stage_command(stage: str, folder: Path) -> list[str]:
    """``-m logreg.stages.<stage>`` with dvc.yaml's paths, all inside ``folder``."""
    params = ["--params", str(folder / pipeline.PARAMS_FILE)]
    return ["-m", f"logreg.stages.{stage}", *params, *entry.argv(pipeline.layout(folder)[stage])]


def one_line_error(done: Done) -> str:
    """The single ``error: ...`` line of a command that failed as a user error (exit 2)."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]
