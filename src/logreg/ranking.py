"""How a sweep's jobs are ranked, defined once: validation F1, then validation PR-AUC.

F1 is taken at the threshold 0.5, and PR-AUC breaks ties; a job without a score ranks
below every job with one, and equal jobs keep their order. Binary runs report ``f1`` and
``pr_auc``, multiclass runs ``f1_macro`` and ``pr_auc_macro``: :func:`score` reads
either. The sweep's parent run tags its best child by this order
(:class:`logreg.run.SweepParentRun`), and ``python -m logreg.sweep`` ranks its table by
it (``reports/sweep.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RANK_BY = ("f1", "pr_auc")  # validation scores, the first decides, the next breaks ties
SPLIT = "val"


def score(metrics: Mapping[str, Any], name: str) -> float | None:
    """Binary ``name`` or its multiclass ``name_macro``; None when absent."""
    value = metrics.get(name, metrics.get(f"{name}_macro"))
    return None if value is None else float(value)


def rank_key(metrics: Mapping[str, Any], sep: str = "/") -> tuple[float, ...]:
    """A job's place from its flat metrics, higher is better; a missing score is lowest.

    ``sep`` joins split and score: ``val/f1`` as MLflow logs them, ``val_f1`` as
    ``python -m logreg.sweep`` names its columns.
    """
    values = (score(metrics, f"{SPLIT}{sep}{name}") for name in RANK_BY)
    return tuple(-math.inf if v is None or math.isnan(v) else v for v in values)


def best_first(jobs: Sequence[Mapping[str, Any]], sep: str = "/") -> list[int]:
    """The jobs' indices, best first (:func:`rank_key`); equal jobs keep their order."""
    keys = [rank_key(job, sep) for job in jobs]
    return sorted(range(len(jobs)), key=keys.__getitem__, reverse=True)  # reverse is stable


def best(jobs: Sequence[Mapping[str, Any]], sep: str = "/") -> int | None:
    """The index of the job ranked first; None when no job has the first score."""
    order = best_first(jobs, sep)
    if not order or rank_key(jobs[order[0]], sep)[0] == -math.inf:
        return None
    return order[0]
