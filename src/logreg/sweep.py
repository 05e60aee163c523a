"""The default study (``make sweep``): batch size × penalty × rebalancing strategy, ranked.

    python -m logreg.sweep                           # 4 × 2 × 5 = 40 jobs, 2 at a time
    python -m logreg.sweep data=spam7 model.alpha=1e-3   # more overrides for every job
    python -m logreg.sweep --from-dir multirun/study-<time>  # re-rank a finished sweep

Checks every job's config first (one line on the first bad one, before any job starts),
then runs the Hydra multirun of :mod:`logreg.run` (joblib launcher, ``--n-jobs`` processes) in
a subprocess: every job runs the four stages in ``<sweep dir>/<job>/`` and is an MLflow
child run of the sweep's parent run. Then it reads each job's ``params.yaml``,
``reports/metrics.json`` and ``.logreg/run.json``, prints the jobs ranked by validation
F1 and the best configuration of each strategy, and writes the table to
``reports/sweep.csv`` and the figure to ``reports/sweep.png`` (test F1 by strategy, one
panel per penalty, one line per batch size).

The study skips evaluate's scikit-learn baseline (``evaluate.baseline=false``): its saga
fits for l1 would take most of the sweep's time and the table does not use them.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from logreg import pipeline, ranking
from logreg.config import load_params, section
from logreg.errors import UserError, cli
from logreg.io import atomic_path, read_json
from logreg.run import check_jobs, conf_dir
from logreg.tracking.runs import read_run_file

STUDY = (
    "train.batch_size=16,64,256,full",
    "model.penalty=l1,l2",
    "rebalance.strategy=none,undersample,oversample,smote,class_weight",
    "evaluate.baseline=false",
)
# The swept keys are columns named as in conf/ (as in ``dvc exp show``).
STRATEGY, PENALTY, BATCH = "rebalance.strategy", "model.penalty", "train.batch_size"
SHOWN = {  # printed column -> header
    "rank": "rank",
    STRATEGY: "strategy",
    PENALTY: "penalty",
    BATCH: "batch",
    "val_f1": "val F1",
    "test_f1": "test F1",
    "test_precision": "precision",
    "test_recall": "recall",
    "test_pr_auc": "PR-AUC",
    "epochs": "epochs",
    "train_time_s": "time s",
    "nonzero_coef": "nonzero",
}


def hydra_command(sweep_dir: str | Path, n_jobs: int, overrides: list[str]) -> list[str]:
    """The ``python -m logreg.run -m`` command of the study with extra ``overrides``."""
    return [
        sys.executable,
        "-m",
        "logreg.run",
        "--multirun",
        f"hydra.sweep.dir='{sweep_dir}'",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={n_jobs}",
        *STUDY,
        *overrides,
    ]


def collect(sweep_dir: str | Path) -> pd.DataFrame:
    """One row per finished job folder of the sweep: its configuration and results."""
    rows = []
    for job in sorted(Path(sweep_dir).iterdir(), key=_job_order):
        if not pipeline.metrics_file(job).is_file() or not (job / pipeline.PARAMS_FILE).is_file():
            continue  # not a job, or a job that failed
        rows.append(job_row(job))
    if not rows:
        raise UserError(f"{sweep_dir}: no finished sweep job (no */{pipeline.metrics_file()})")
    return pd.DataFrame(rows)


def job_row(job: Path) -> dict[str, Any]:
    """A job's swept keys, validation and test scores, epochs, time and sparsity."""
    cfg = load_params(job / pipeline.PARAMS_FILE)
    model, train = section(cfg, "model"), section(cfg, "train")
    metrics = read_json(pipeline.metrics_file(job))
    val, test = metrics["val"], metrics["test"]
    # Seconds and run ids are not in the job's DVC-style outputs: train's run file has them.
    train_run = read_run_file(pipeline.layout(job)["train"].run_file)
    return {
        "job": job.name,
        "data.name": section(cfg, "data")["name"],
        STRATEGY: section(cfg, "rebalance")["strategy"],
        PENALTY: model["penalty"],
        BATCH: str(train["batch_size"]),
        "model.alpha": model["alpha"],
        "val_f1": _score(val, "f1"),
        "val_pr_auc": _score(val, "pr_auc"),
        "test_f1": _score(test, "f1"),
        "test_precision": _score(test, "precision"),
        "test_recall": _score(test, "recall"),
        "test_pr_auc": _score(test, "pr_auc"),
        "test_f1_tuned": (test.get("threshold_tuned") or {}).get("f1", math.nan),
        "epochs": metrics["model"]["epochs"],
        "train_time_s": float(train_run.get("train_time_s", math.nan)),
        "nonzero_coef": metrics["model"]["n_nonzero_coef"],
        "run_id": train_run.get("run_id"),
    }


def rank(results: pd.DataFrame) -> pd.DataFrame:
    """The jobs best first (:mod:`logreg.ranking`, missing scores last), with a ``rank`` column."""
    order = ranking.best_first(results.to_dict("records"), sep="_")
    ranked = results.iloc[order].reset_index(drop=True)
    ranked.insert(0, "rank", np.arange(1, len(ranked) + 1))
    return ranked


def best_per(ranked: pd.DataFrame, key: str = STRATEGY) -> pd.DataFrame:
    """The best-ranked row of each value of ``key``, best first."""
    return ranked.drop_duplicates(subset=key, keep="first").reset_index(drop=True)


def summary(ranked: pd.DataFrame) -> str:
    """Which strategy won, with which setting, and by how much over the runner-up strategy."""
    best = best_per(ranked)
    top = best.iloc[0]
    text = f"best: {_setting(top)}: val F1 {top['val_f1']:.3f}, test F1 {top['test_f1']:.3f}"
    if len(best) > 1:
        second = best.iloc[1]
        text += (
            f"; the best other strategy, {_setting(second)}, is "
            f"{top['val_f1'] - second['val_f1']:.3f} behind on val F1 ({second['val_f1']:.3f}) "
            f"and {top['test_f1'] - second['test_f1']:+.3f} on test F1 ({second['test_f1']:.3f})"
        )
    return text


def _setting(row: pd.Series) -> str:
    return f"{row[STRATEGY]} ({row[PENALTY]}, batch {row[BATCH]})"


def format_table(ranked: pd.DataFrame) -> str:
    """The ranked table as fixed-width text, three decimals."""
    shown = ranked[[c for c in SHOWN if c in ranked]].rename(columns=SHOWN)
    return shown.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")


def write_csv(ranked: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        ranked.to_csv(tmp, index=False)


def comparison_figure(results: pd.DataFrame, path: str | Path) -> None:
    """Test F1 by strategy: one panel per penalty, one line per batch size."""
    from matplotlib.figure import Figure

    strategies = list(dict.fromkeys(results[STRATEGY]))  # in the study's order
    penalties = list(dict.fromkeys(results[PENALTY]))
    batches = sorted(dict.fromkeys(results[BATCH]), key=_batch_order)
    fig = Figure(figsize=(4.5 * len(penalties), 4), layout="constrained")
    axes = fig.subplots(1, len(penalties), sharey=True, squeeze=False)[0]
    x = np.arange(len(strategies))
    for ax, penalty in zip(axes, penalties, strict=True):
        for batch in batches:
            rows = results[(results[PENALTY] == penalty) & (results[BATCH] == batch)]
            f1 = rows.groupby(STRATEGY)["test_f1"].max().reindex(strategies)
            ax.plot(x, f1.to_numpy(dtype=float), marker="o", label=str(batch))
        ax.set_xticks(x, strategies, rotation=20)
        ax.set(title=f"penalty {penalty}", xlabel="rebalancing strategy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test F1 (threshold 0.5)")
    axes[-1].legend(title="batch size")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})


def run_study(sweep_dir: Path, n_jobs: int, overrides: list[str]) -> None:
    """Check every job's config (one line on the first bad one), then run the multirun."""
    check_jobs([*STUDY, *overrides], multirun=True, config_dir=conf_dir())
    command = hydra_command(sweep_dir, n_jobs, overrides)
    print("sweep:", " ".join(command[1:]), file=sys.stderr, flush=True)
    returncode = subprocess.run(command, check=False).returncode
    if returncode != 0:
        raise UserError(
            f"the sweep failed (exit {returncode}, the error is above); the jobs that "
            f"finished are in {sweep_dir} (rank them with --from-dir {sweep_dir})"
        )


def _score(split: dict[str, Any], name: str) -> float:
    """Binary ``name`` or its multiclass ``name_macro``; NaN when absent."""
    value = ranking.score(split, name)
    return math.nan if value is None else value


def _job_order(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (sys.maxsize, path.name)


def _batch_order(batch: str) -> float:
    return float(batch) if batch.isdigit() else math.inf  # "full" last


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logreg.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every job (data=spam7)")
    parser.add_argument("--n-jobs", type=int, default=2, help="jobs in parallel (processes)")
    parser.add_argument(
        "--sweep-dir", default=None, help="Hydra sweep folder (default multirun/study-<time>)"
    )
    parser.add_argument(
        "--from-dir", default=None, help="rank this finished sweep folder; run no jobs"
    )
    parser.add_argument("--out", default="reports/sweep.csv", help="ranked table (CSV)")
    parser.add_argument("--figure", default="reports/sweep.png", help="comparison figure (PNG)")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    if args.from_dir:
        if args.overrides:
            raise UserError("--from-dir ranks a finished sweep: it takes no overrides")
        sweep_dir = Path(args.from_dir)
        if not sweep_dir.is_dir():
            raise UserError(f"{sweep_dir}: --from-dir is not a folder")
    else:
        sweep_dir = Path(args.sweep_dir or time.strftime("multirun/study-%Y-%m-%d_%H-%M-%S"))
        run_study(sweep_dir, args.n_jobs, args.overrides)
    results = collect(sweep_dir)
    ranked = rank(results)
    write_csv(ranked, args.out)
    comparison_figure(results, args.figure)
    print(format_table(ranked))
    print()
    print(summary(ranked))
    print(
        f"sweep: {len(ranked)} jobs in {sweep_dir}, {time.perf_counter() - started:.0f} s; "
        f"wrote {args.out} and {args.figure}"
    )


if __name__ == "__main__":
    main()
