"""Write reports/study.md, the lesson's four questions answered on this checkout's runs.

    make study    # python -m logreg.study, after `make run`; `make sweep` adds the strategies

Reads the pipeline's outputs (prepared and rebalanced splits, ``reports/metrics.json``,
and ``reports/sweep.csv`` and ``reports/importance.csv`` when the default sweep has run) and writes
``reports/study.md`` with its figures in ``reports/study/``. Every number in the
document is computed when the command runs, on the default data.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from logreg.config import load_params, section
from logreg.errors import UserError, cli
from logreg.frames import minority_class, read_split
from logreg.io import read_json, write_text
from logreg.preprocess import read_preprocessing
from logreg.study.analysis import (
    batch_size_study,
    batch_size_summary,
    category_effects,
    l1_kept_features,
    likelihood_check,
    loss_curves,
    odds_reading,
    regularisation_path,
    strongest_evidence,
    sweep_summary,
    wald_table,
)
from logreg.study.document import render
from logreg.study.figures import batch_size_figure, regularisation_path_figure


@cli
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m logreg.study", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--rebalanced", default="data/rebalanced/train.parquet")
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--out", default="reports/study.md")
    args = parser.parse_args(argv)

    cfg = load_params(args.params)
    model_params = section(cfg, "model", args.params)
    train_params = section(cfg, "train", args.params)
    dataset = str(section(cfg, "data", args.params).get("name", "the default data"))
    prepared = Path(args.prepared)
    train, val, test = (
        read_split(prepared / f"{name}.parquet") for name in ("train", "val", "test")
    )
    rebalanced = read_split(args.rebalanced)
    if len(np.unique(train.y)) != 2:
        raise UserError(f"{prepared}: the study needs a binary target (data={dataset})")
    positive = minority_class(train.y)
    metrics_path = Path(args.reports) / "metrics.json"
    if not metrics_path.is_file():
        raise UserError(f"{metrics_path}: not found; run `make run` first")
    metrics = read_json(metrics_path)
    sweep_path = Path(args.reports) / "sweep.csv"
    sweep = pd.read_csv(sweep_path) if sweep_path.is_file() else None
    importance_path = Path(args.reports) / "importance.csv"
    importance = pd.read_csv(importance_path) if importance_path.is_file() else None

    figure_dir = Path(args.out).parent / "study"
    histories, finals = batch_size_study(
        rebalanced,
        val,
        test,
        positive,
        {k: model_params[k] for k in ("penalty", "alpha", "l1_ratio", "fit_intercept")},
        train_params["learning_rate"],
    )
    batch_size_figure(loss_curves(histories), figure_dir / "batch_size_loss.png")
    penalty_path, path_coefficients = regularisation_path(rebalanced, val, positive)
    regularisation_path_figure(penalty_path, figure_dir / "regularisation_path.png")
    # The evaluate stage's PR figure is a DVC output (not in git); the study keeps a copy.
    shutil.copyfile(Path(args.reports) / "figures" / "pr_curve.png", figure_dir / "pr_curve.png")
    prep = read_preprocessing(prepared / "preprocess.json")
    table = wald_table(rebalanced, float(model_params["alpha"]), prep)
    evidence = strongest_evidence(table)
    n_positive_test = int(metrics["test"]["tp"] + metrics["test"]["fn"])
    document = render(
        dataset=dataset,
        coefficients=evidence,
        reading=odds_reading(evidence),
        vif=table["vif"].drop(index="intercept"),
        categories=category_effects(table, rebalanced, prep, positive),
        metrics=metrics,
        likelihood=likelihood_check(train, positive),
        batch_sizes=batch_size_summary(finals),
        penalty_path=penalty_path,
        l1_kept=l1_kept_features(penalty_path, path_coefficients),
        sweep=None if sweep is None or not len(sweep) else sweep_summary(sweep, n_positive_test),
        figure_dir=figure_dir.name,
        importance=importance,
    )
    write_text(args.out, document)
    print(f"study: wrote {args.out} and {figure_dir}/")


if __name__ == "__main__":
    main()
