"""The pipeline as ``dvc repro`` runs it: the four stages in order, and every stage's paths.

:func:`layout` is the one list of the stages' path arguments. ``dvc.yaml``'s commands
name the same paths (``tests/test_run_sweep.py`` keeps the two equal), and
:func:`run_stages` runs the stages in-process with every path inside a folder: a Hydra
job's (:mod:`logreg.run`). Readers of a finished folder (:mod:`logreg.sweep`) find its
files here too.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logreg.io import write_json
from logreg.stages import evaluate, prepare, rebalance, train

PARAMS_FILE = "params.yaml"  # every stage's --params: the composed config
STAGES = {"prepare": prepare, "rebalance": rebalance, "train": train, "evaluate": evaluate}


def layout(folder: str | Path = "") -> dict[str, Any]:
    """Each stage's paths inside ``folder`` (relative, as in dvc.yaml, by default)."""
    root = Path(folder)
    raw, prepared, rebalanced = root / "data/raw", root / "data/prepared", root / "data/rebalanced"
    models, reports = root / "models", root / "reports"
    run_file = root / ".logreg/run.json"  # not a DVC output: run id and seconds
    return {
        "prepare": prepare.Paths(raw_dir=raw, out_dir=prepared, report=reports / "data.json"),
        "rebalance": rebalance.Paths(
            train=prepared / "train.parquet",
            preprocess=prepared / "preprocess.json",
            out=rebalanced / "train.parquet",
            report=reports / "rebalance.json",
        ),
        "train": train.Paths(
            train=rebalanced / "train.parquet",
            val=prepared / "val.parquet",
            preprocess=prepared / "preprocess.json",
            model_dir=models,
            history=reports / "history.csv",
            run_file=run_file,
        ),
        "evaluate": evaluate.Paths(
            model_dir=models,
            train=prepared / "train.parquet",
            val=prepared / "val.parquet",
            test=prepared / "test.parquet",
            rebalanced=rebalanced / "train.parquet",
            reports_dir=reports,
            run_file=run_file,
        ),
    }


def metrics_file(folder: str | Path = "") -> Path:
    """evaluate's metrics in ``folder``: what a finished run leaves to compare and rank."""
    return layout(folder)["evaluate"].reports_dir / evaluate.METRICS_FILE


def timings_file(folder: str | Path = "") -> Path:
    """Where :func:`run_stages` records when the job ran and each stage's seconds.

    Beside train's run file, untracked: clock times change on every run.
    """
    return Path(folder) / ".logreg/timings.json"


def run_stages(params: Mapping[str, Any], folder: str | Path) -> dict[str, Any]:
    """prepare, rebalance, train and evaluate on checked ``params``; returns the metrics.

    ``params`` holds every section, checked (:func:`logreg.schema.validate`): the stages
    check nothing again. The job's process, its start and end (epoch seconds) and each
    stage's seconds go to :func:`timings_file`, where ``bench/sweep.py`` reads where a
    sweep's time goes.
    """
    paths = layout(folder)
    started_at, seconds = time.time(), {}
    metrics: dict[str, Any] = {}
    for name, stage in STAGES.items():
        started = time.perf_counter()
        metrics = stage.run(params, paths[name])
        seconds[name] = time.perf_counter() - started
    record = {"pid": os.getpid(), "started_at": started_at, "ended_at": time.time()}
    write_json(timings_file(folder), record | {"stage_s": seconds})
    return metrics
