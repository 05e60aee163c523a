"""Stage ``rebalance``: resample or weight the training split only.

Run it as DVC does::

    python -m logreg.stages.rebalance --params params.yaml \\
        --train data/prepared/train.parquet --preprocess data/prepared/preprocess.json \\
        --out data/rebalanced/train.parquet --report reports/rebalance.json

Reads the ``rebalance`` section of ``params.yaml`` (strategy, ratio, k_neighbors, seed;
see :mod:`logreg.rebalance`). Writes the rebalanced table, always with a
``sample_weight`` column, and class counts before and after to the report. The
preprocessing tells SMOTE which columns are one-hot indicators of a category.

With ``engine=dask`` the train split may be a partition folder, and the output is one:
:mod:`logreg.engines.dask_rebalance` rewrites each partition on a worker, with the class
sizes and the report of the numpy engine.

:func:`rebalance_split` does the work on a frame; :func:`run` reads and writes, given
checked params and :class:`Paths`; :func:`main` is the command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd

from logreg import rebalance as rb
from logreg.engines.partitions import part_paths
from logreg.errors import UserError, cli
from logreg.frames import read_table, write_table
from logreg.io import write_json
from logreg.preprocess import read_preprocessing
from logreg.stages import entry

SECTIONS = ("rebalance", "engine")


@dataclass(frozen=True, kw_only=True)
class Paths:
    train: Annotated[Path, "prepared train split (Parquet)"]
    preprocess: Annotated[Path | None, "preprocess.json from prepare (its one-hot groups)"] = None
    out: Annotated[Path, "rebalanced train split (Parquet)"]
    report: Annotated[Path, "JSON report: class counts before/after"]


def rebalance_split(
    train: pd.DataFrame,
    options: Mapping[str, Any],
    one_hot_groups: dict[str, list[str]] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The rebalanced training split and the report of its class counts before and after."""
    balanced = rb.rebalance(train, **options, one_hot_groups=one_hot_groups)
    return balanced, rb.report(train, balanced, options["strategy"], options["ratio"])


def run(params: Mapping[str, Any], paths: Paths) -> None:
    """Read the prepared training split, rebalance it, write it and the report."""
    part_paths(paths.train)  # a missing split is named first: it is what the user must make
    groups = read_preprocessing(paths.preprocess).one_hot_groups() if paths.preprocess else None
    engine = params.get("engine") or {"name": "numpy"}
    if engine["name"] == "dask":
        _run_on_dask(params["rebalance"], engine, paths, groups)
        return
    train = read_table(paths.train)
    try:
        balanced, report = rebalance_split(train, params["rebalance"], groups)
    except UserError as exc:
        raise UserError(f"{paths.train}: {exc}") from None
    write_table(balanced, paths.out)
    write_json(paths.report, report)


def _run_on_dask(
    options: Mapping[str, Any],
    engine: Mapping[str, Any],
    paths: Paths,
    groups: dict[str, list[str]] | None,
) -> None:
    """The same outputs, partition by partition on a Dask cluster (engines.dask_rebalance)."""
    from logreg.engines.cluster import engine_client
    from logreg.engines.dask_rebalance import rebalance_parts

    with engine_client(engine) as client:
        try:
            report = rebalance_parts(
                client,
                paths.train,
                paths.out,
                options,
                engine["partition_rows"],
                groups,
            )
        except UserError as exc:
            if str(paths.train) in str(exc):  # a part named already
                raise
            raise UserError(f"{paths.train}: {exc}") from None
    write_json(paths.report, report)


@cli
def main(argv: list[str] | None = None) -> None:
    run(*entry.parse(argv, Paths, SECTIONS, "logreg.stages.rebalance", __doc__))


if __name__ == "__main__":
    main()
