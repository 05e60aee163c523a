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
panel per penalty, one line per batch size). What mattered, each knob's share of the
variance in validation F1 (:mod:`logreg.importance`: an ANOVA for a grid, Optuna's
importances for ``--from-dir`` on a ``search=optuna`` sweep), goes to
``reports/importance.csv``, to the printout and to the sweep's MLflow parent run (the
table as an artifact, a line in its description).

Noise: each row carries its test scores' bootstrap 95 % intervals (``test_f1_low``,
``test_f1_high``, ...), and :func:`noise_against_best` says whether its test F1 differs
from the best-ranked job's by more than the noise. The jobs score the same test rows, so
it reloads each job's model and test split and bootstraps the *paired* difference (the
same resamples for both jobs, :func:`logreg.bootstrap.paired_difference`): outside the
noise when the 95 % interval of the difference excludes 0. Jobs whose test splits
differ (a sweep over ``prepare`` or ``data`` keys) fall back to whether their own
intervals overlap the best's, a far weaker test.

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

from logreg import LogisticRegression, bootstrap, importance, pipeline, ranking
from logreg.config import load_params, section
from logreg.errors import UserError, cli
from logreg.frames import frame_split, read_table
from logreg.io import atomic_path, read_json
from logreg.metrics import positive_scores
from logreg.run import check_jobs, conf_dir
from logreg.schema import check_section
from logreg.stages.train import MODEL_FILE
from logreg.tracking.finished import add_to_parent_run
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
    "test_f1_ci95": "95 % interval",
    "vs_best": "vs #1",
    "test_precision": "precision",
    "test_recall": "recall",
    "test_pr_auc": "PR-AUC",
    "epochs": "epochs",
    "train_time_s": "time s",
    "nonzero_coef": "nonzero",
}
# The knobs whose share of the variance in validation F1 a grid's ANOVA measures; a knob
# with one value in the sweep is left out.
KNOBS = (STRATEGY, PENALTY, BATCH, "model.alpha", "data.name")
MULTIRUN_FILE = "multirun.yaml"  # Hydra's record of a sweep's config, in the sweep folder


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
        **{
            f"test_{name}_{end}": (test.get("ci95") or {}).get(name, {}).get(end, math.nan)
            for name in bootstrap.INTERVAL_METRICS
            for end in ("low", "high")
        },
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


def noise_against_best(ranked: pd.DataFrame, sweep_dir: str | Path) -> pd.DataFrame:
    """``ranked`` with each job's test F1 against the best's: difference, interval, verdict.

    ``vs_best`` is ``best``, ``within noise``, ``better`` or ``worse``;
    ``test_f1_vs_best_low``/``_high`` bound the difference (paired bootstrap on the shared
    test rows, ``noise_test`` = ``paired``), or are blank when the jobs' test splits
    differ and only their intervals are compared (``noise_test`` = ``overlap``).
    """
    out = ranked.copy()
    for column in ("test_f1_vs_best", "test_f1_vs_best_low", "test_f1_vs_best_high"):
        out[column] = math.nan
    out["vs_best"], out["noise_test"] = "", ""
    if out.empty:
        return out
    out.loc[0, "vs_best"] = "best"
    best_scores = _test_scores(Path(sweep_dir) / str(out.loc[0, "job"]))
    options = _evaluate_options(Path(sweep_dir) / str(out.loc[0, "job"]))
    for i in range(1, len(out)):
        row = out.loc[i]
        out.loc[i, "test_f1_vs_best"] = row["test_f1"] - out.loc[0, "test_f1"]
        scores = _test_scores(Path(sweep_dir) / str(row["job"]))
        if best_scores is not None and scores is not None and scores[0].equals(best_scores[0]):
            y = best_scores[1]
            diff = bootstrap.paired_difference(y, scores[2], best_scores[2], **options)
            low, high = diff["low"], diff["high"]
            out.loc[i, ["test_f1_vs_best_low", "test_f1_vs_best_high"]] = low, high
            out.loc[i, "noise_test"] = "paired"
        else:  # its interval against the best's: below (worse), above (better), overlapping
            if math.isnan(row["test_f1_low"]) or math.isnan(out.loc[0, "test_f1_low"]):
                continue
            low = row["test_f1_low"] - out.loc[0, "test_f1_high"]
            high = row["test_f1_high"] - out.loc[0, "test_f1_low"]
            out.loc[i, "noise_test"] = "overlap"
        out.loc[i, "vs_best"] = "worse" if high < 0 else "better" if low > 0 else "within noise"
    return out


def noise_summary(ranked: pd.DataFrame) -> str:
    """Which jobs' test F1 differs from the best's by more than the noise; '' without verdicts."""
    judged = ranked[ranked["vs_best"].isin(["within noise", "worse", "better"])]
    if judged.empty:
        return ""
    method = (
        "a paired bootstrap 95 % interval of the difference on the same test rows excludes 0"
        if (judged["noise_test"] == "paired").all()
        else "their 95 % intervals do not overlap (or, for jobs on the same test rows, a "
        "paired bootstrap interval of the difference excludes 0)"
    )
    beyond = judged[judged["vs_best"] != "within noise"]
    text = (
        f"noise: {len(beyond)} of the {len(judged)} other jobs differ from #1's test F1 "
        f"({ranked.loc[0, 'test_f1']:.3f}, 95 % {ranked.loc[0, 'test_f1_low']:.3f}-"
        f"{ranked.loc[0, 'test_f1_high']:.3f}) by more than the noise ({method})"
    )
    if len(beyond):
        text += ": " + ", ".join(
            f"#{row['rank']} {row['vs_best']} by {abs(row['test_f1_vs_best']):.3f}"
            for _, row in beyond.iterrows()
        )
    if len(beyond) < len(judged):
        text += "; every other job is within the noise of #1"
    return text + "."


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
    ranked = ranked.copy()
    if "test_f1_low" in ranked:
        ranked["test_f1_ci95"] = [
            "-" if math.isnan(low) else f"{low:.3f}-{high:.3f}"
            for low, high in zip(ranked["test_f1_low"], ranked["test_f1_high"], strict=True)
        ]
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


def searched_distributions(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The distributions an Optuna search drew its trials from; None for a grid.

    Read from Hydra's record of the sweep, ``multirun.yaml``, else a job's
    ``.hydra/hydra.yaml``: the sweeper's ``params`` and the command line's sweeps, turned
    into distributions by the sweeper's own :func:`search_space`. None without a record.
    """
    from omegaconf import OmegaConf

    sweep_dir = Path(sweep_dir)
    records = [sweep_dir / MULTIRUN_FILE, *sorted(sweep_dir.glob("*/.hydra/hydra.yaml"))]
    record = next((path for path in records if path.is_file()), None)
    if record is None:
        return None
    hydra_cfg = OmegaConf.load(record).hydra
    if "optuna" not in str(hydra_cfg.sweeper.get("_target_", "")).lower():
        return None
    from hydra_plugins.logreg_optuna_sweeper._core import search_space

    params = OmegaConf.to_container(hydra_cfg.sweeper.get("params") or {})
    _, space = search_space(params, list(hydra_cfg.overrides.task))
    return space


def what_mattered(results: pd.DataFrame, sweep_dir: str | Path) -> pd.DataFrame:
    """:func:`logreg.importance.optuna_shares` for a search, else the grid's ANOVA shares."""
    distributions = searched_distributions(sweep_dir)
    if distributions is not None:
        return importance.optuna_shares(results, distributions, "val_f1")
    return importance.anova_shares(results, [k for k in KNOBS if k in results], "val_f1")


def importance_line(shares: pd.DataFrame) -> str:
    """The parent run's description line: each term's share, largest first."""
    terms = ", ".join(f"`{row.term}` {row.share:.1%}" for row in shares.itertuples())
    return f"- what mattered (share of the variance in val F1): {terms or 'nothing varied'}"


def record_importance(sweep_dir: Path, results: pd.DataFrame, table: Path, line: str) -> None:
    """Add the importance table and its line to the sweep's MLflow parent run, if tracked."""
    for job in results["job"]:
        parent = add_to_parent_run(pipeline.layout(sweep_dir / job)["train"].run_file, table, line)
        if parent is not None:
            print(f"mlflow: added {table.name} to the sweep run {parent}", file=sys.stderr)
        return  # every job has the same parent: the first one tells


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


def _test_scores(job: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray] | None:
    """A binary job's test frame, labels (positive = True) and P(positive); None otherwise."""
    paths = pipeline.layout(job)["evaluate"]
    model_path = paths.model_dir / MODEL_FILE
    if not model_path.is_file() or not paths.test.is_file():
        return None
    model = LogisticRegression.load(model_path)
    positive = getattr(model, "metadata_", {}).get("positive_class")
    if len(model.classes_) != 2 or positive is None:
        return None
    frame = read_table(paths.test)
    test = frame_split(frame, source=str(paths.test))
    scores = positive_scores(model.predict_proba(test.X), model.classes_, positive)
    return frame, test.y == positive, scores


def _evaluate_options(job: Path) -> dict[str, int]:
    """The job's ``evaluate.n_bootstrap`` and ``evaluate.seed`` (the schema's defaults)."""
    options = check_section("evaluate", load_params(job / pipeline.PARAMS_FILE).get("evaluate", {}))
    return {"n_resamples": options["n_bootstrap"], "seed": options["seed"]}


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
    parser.add_argument(
        "--importance", default="reports/importance.csv", help="what mattered (CSV)"
    )
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
    ranked = noise_against_best(rank(results), sweep_dir)
    write_csv(ranked, args.out)
    comparison_figure(results, args.figure)
    shares = what_mattered(results, sweep_dir)
    write_csv(shares, args.importance)
    record_importance(sweep_dir, results, Path(args.importance), importance_line(shares))
    print(format_table(ranked))
    print()
    print(summary(ranked))
    noise = noise_summary(ranked)
    if noise:
        print(noise)
    print(importance.format_shares(shares))
    print(
        f"sweep: {len(ranked)} jobs in {sweep_dir}, {time.perf_counter() - started:.0f} s; "
        f"wrote {args.out}, {args.figure} and {args.importance}"
    )


if __name__ == "__main__":
    main()
