"""Stage ``rebalance``: resample or weight the training split only.

Run it as DVC does::

    python -m logreg.stages.rebalance --params params.yaml \\
        --train data/prepared/train.parquet --preprocess data/prepared/preprocess.json \\
        --out data/rebalanced/train.parquet --report reports/rebalance.json

Reads the ``rebalance`` section of ``params.yaml`` (strategy, ratio, k_neighbors, seed;
see :mod:`logreg.rebalance`). Writes the rebalanced table, always with a
``sample_weight`` column, and class counts before and after to the report. The
preprocessing tells SMOTE which columns are one-hot indicators of a category.
"""

from __future__ import annotations

import argparse

from logreg import rebalance as rb
from logreg import schema
from logreg.config import load_params
from logreg.errors import UserError, cli
from logreg.frames import read_table, write_table
from logreg.io import write_json
from logreg.preprocess import read_preprocessing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logreg.stages.rebalance", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--params", required=True, help="composed params.yaml")
    parser.add_argument("--train", required=True, help="prepared train split (Parquet)")
    parser.add_argument(
        "--preprocess", default=None, help="preprocess.json from prepare (its one-hot groups)"
    )
    parser.add_argument("--out", required=True, help="rebalanced train split (Parquet)")
    parser.add_argument("--report", required=True, help="JSON report: class counts before/after")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    options = schema.validate(load_params(args.params), ("rebalance",), args.params)["rebalance"]
    train = read_table(args.train)
    groups = read_preprocessing(args.preprocess).one_hot_groups() if args.preprocess else None
    try:
        balanced = rb.rebalance(train, **options, one_hot_groups=groups)
    except UserError as exc:
        raise UserError(f"{args.train}: {exc}") from None
    write_table(balanced, args.out)
    write_json(args.report, rb.report(train, balanced, options["strategy"], options["ratio"]))


if __name__ == "__main__":
    main()
