"""Compare two or more runs on one page: ``reports/compare.md``, the page to paste into a review.

    make compare                                       # the last two finished MLflow runs
    python -m logreg.compare <run id> <run id>         # MLflow runs, by id
    python -m logreg.compare exp-a1b2c exp-d3e4f       # DVC experiments, by name (dvc exp list)
    python -m logreg.compare --last 3                  # the last three finished runs

Each name is an MLflow run id in the project's store (``mlflow`` section of params.yaml,
else ``$MLFLOW_TRACKING_URI``, else ``mlflow.db``), else a DVC experiment or any Git
revision DVC can read. The page lists the params that differ, the test metrics with
their 95 % bootstrap intervals where the run has them (— where not), and links two
figures in ``reports/compare/``: the test PR curves overlaid, and the training and
validation losses per epoch overlaid. Sweep parent runs and the baseline are not runs
of the pipeline and are skipped by ``--last``.
"""

from __future__ import annotations

import argparse
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from logreg.config import load_params
from logreg.errors import UserError, cli
from logreg.io import atomic_path, write_text
from logreg.tracking.runs import flatten

MISSING = "—"
# (row label, flat metric key, the name of its bootstrap interval or None, format)
METRICS = (
    ("test F1", "test/f1", "f1", ".3f"),
    ("test precision", "test/precision", "precision", ".3f"),
    ("test recall", "test/recall", "recall", ".3f"),
    ("test PR-AUC", "test/pr_auc", "pr_auc", ".3f"),
    ("test F1, tuned threshold", "test/threshold_tuned/f1", None, ".3f"),
    ("tuned threshold", "test/threshold_tuned/threshold", None, ".3f"),
    ("val F1", "val/f1", None, ".3f"),
    ("nonzero coefficients", "model/n_nonzero_coef", None, ".0f"),
)
# Where an interval may be, for metric m: metrics.json's test.ci95.m.{low,high} (flattened
# with "/", as MLflow logs nested metrics too), or MLflow's flat test_m_ci95_{low,high}.
INTERVAL_KEYS = ("test/ci95/{name}/{end}", "test_{name}_ci95_{end}", "test/{name}_ci95_{end}")


@dataclass
class Run:
    """One side of the comparison, read from MLflow or DVC."""

    name: str  # as given on the command line
    label: str  # run name or experiment name, for legends and headers
    source: str  # "MLflow run" or "DVC" (an experiment or a Git revision)
    params: dict[str, str]  # flat: "model.penalty" -> "l1"
    metrics: dict[str, float]  # flat, "/"-joined: "test/f1"
    history: pd.DataFrame  # train_loss, val_loss per epoch (index)
    pr: pd.DataFrame | None  # recall, precision of the test split


# ----------------------------------------------------------------------------- pure core


def differing_params(runs: Sequence[Run]) -> pd.DataFrame:
    """The params whose values are not the same in every run; a row per key, a column per run."""
    keys = sorted(set().union(*(run.params for run in runs)))
    table = pd.DataFrame(
        {run.label: [run.params.get(key, MISSING) for key in keys] for run in runs}, index=keys
    )
    differs = [len(set(values)) > 1 for values in table.itertuples(index=False)]
    return table[differs].rename_axis("param")


def interval(metrics: Mapping[str, float], name: str) -> tuple[float, float] | None:
    """The 95 % interval of test ``name`` when the run logged one."""
    for pattern in INTERVAL_KEYS:
        low, high = (metrics.get(pattern.format(name=name, end=end)) for end in ("low", "high"))
        if low is not None and high is not None:
            return float(low), float(high)
    return None


def metrics_table(runs: Sequence[Run]) -> pd.DataFrame:
    """A row per metric of :data:`METRICS`, a column per run: "value [low, high]"."""
    rows = {}
    for label, key, ci_name, spec in METRICS:
        cells = []
        for run in runs:
            value = run.metrics.get(key)
            cell = MISSING if value is None or math.isnan(value) else format(value, spec)
            if ci_name is not None:
                bounds = interval(run.metrics, ci_name)
                low, high = (format(bound, spec) for bound in bounds) if bounds else (None, None)
                cell += f" [{low}, {high}]" if bounds else f" [{MISSING}]"
            cells.append(cell)
        rows[label] = cells
    return pd.DataFrame.from_dict(rows, orient="index", columns=[run.label for run in runs])


def markdown_table(table: pd.DataFrame, first: str, code: bool = True) -> list[str]:
    """``table`` as markdown lines, its index (as code) the first column, headed ``first``."""
    lines = [
        "| " + " | ".join([first, *map(str, table.columns)]) + " |",
        "|---" * (len(table.columns) + 1) + "|",
    ]
    for key, row in table.iterrows():
        name = f"`{key}`" if code else str(key)
        lines.append("| " + " | ".join([name, *map(str, row)]) + " |")
    return lines


def render(runs: Sequence[Run], figure_dir: str) -> str:
    """The markdown page: which runs, the differing params, the metrics, the two figures."""
    params = differing_params(runs)
    lines = [
        f"# Comparing {len(runs)} runs",
        "",
        "Generated by `python -m logreg.compare " + " ".join(r.name for r in runs) + "`.",
        "",
        "| run | source | id or name |",
        "|---|---|---|",
        *(f"| {r.label} | {r.source} | `{r.name}` |" for r in runs),
        "",
        "## Params that differ",
        "",
    ]
    if params.empty:
        lines.append("None: the runs have the same params.")
    else:
        lines += markdown_table(params, "param")
    lines += [
        "",
        "## Metrics",
        "",
        "At threshold 0.5 unless the row says tuned; in brackets the 95 % bootstrap interval "
        f"of the test split, {MISSING} when the run has none.",
        "",
        *markdown_table(metrics_table(runs), "metric", code=False),
        "",
        "## Curves",
        "",
        f"![PR curves, test split]({figure_dir}/pr_curves.png)",
        "",
        f"![Loss per epoch]({figure_dir}/loss_curves.png)",
        "",
    ]
    return "\n".join(lines)


def pr_figure(runs: Sequence[Run]) -> Any:
    """The runs' test PR curves on one axis; a run without one is named in the title."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for run in runs:
        if run.pr is not None:
            ax.plot(run.pr["recall"], run.pr["precision"], label=run.label)
    missing = [run.label for run in runs if run.pr is None]
    title = "Precision-recall, test split" + (
        f" (no curve: {', '.join(missing)})" if missing else ""
    )
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def loss_figure(runs: Sequence[Run]) -> Any:
    """Training (solid) and validation (dashed) loss per epoch, one colour per run."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), layout="constrained")
    ax = fig.subplots()
    for index, run in enumerate(runs):
        colour = f"C{index}"
        for column, style in (("train_loss", "-"), ("val_loss", "--")):
            if column in run.history and run.history[column].notna().any():
                curve = run.history[column].dropna()
                kind = column.split("_")[0]
                ax.plot(curve.index, curve, style, color=colour, label=f"{run.label} ({kind})")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title="Loss per epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


# ----------------------------------------------------------------------------- reading runs


def read_mlflow(run_id: str, tracking_uri: str | None) -> Run | None:
    """The MLflow run ``run_id``, or None when the store has no such run."""
    from logreg.tracking.finished import find_run, read_run

    if find_run(run_id, tracking_uri) is None:
        return None
    run = read_run(run_id, tracking_uri)
    history = run["history"].rename(columns={"train/loss": "train_loss", "val/loss": "val_loss"})
    return Run(run_id, run["name"], "MLflow run", run["params"], run["metrics"], history, run["pr"])


def read_experiment(name: str, reports: str = "reports") -> Run | None:
    """The DVC experiment (or Git revision) ``name``: params.yaml, metrics, plots, history."""
    import dvc.api
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    try:
        params = dvc.api.params_show(rev=name)
        metrics = dvc.api.metrics_show(f"{reports}/metrics.json", rev=name)
    except (DvcException, SCMError):
        return None
    return Run(
        name,
        name,
        "DVC",
        {key: _param_text(value) for key, value in flatten(params).items()},
        {k: float(v) for k, v in flatten(metrics, sep="/").items() if _is_number(v)},
        _csv_at(f"{reports}/history.csv", name, index="epoch"),
        _csv_at(f"{reports}/plots/pr.csv", name),
    )


def _csv_at(path: str, rev: str, index: str | None = None) -> pd.DataFrame | None:
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        text = dvc.api.read(path, rev=rev)
    except (DvcException, FileNotFoundError):
        return None if index is None else pd.DataFrame()
    frame = pd.read_csv(io.StringIO(text))
    return frame.set_index(index) if index else frame


def _param_text(value: Any) -> str:
    """A params.yaml value as MLflow logs it (None as ``null``), so the two sources agree."""
    return "null" if value is None else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def resolve(name: str, tracking_uri: str | None) -> Run:
    """An MLflow run id, else a DVC experiment; one clear line when it is neither."""
    run = read_mlflow(name, tracking_uri) or read_experiment(name)
    if run is None:
        raise UserError(
            f"{name}: neither an MLflow run id in the store nor a DVC experiment "
            "(see `dvc exp list` or the MLflow UI for the names)"
        )
    return run


def _mlflow_section(params_file: Path) -> dict[str, Any]:
    if not params_file.is_file():
        return {}
    return dict(load_params(params_file).get("mlflow") or {})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logreg.compare", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="MLflow run ids or DVC experiment names")
    parser.add_argument("--last", type=int, default=None, help="the last N finished MLflow runs")
    parser.add_argument("--params", default="params.yaml", help="its mlflow section: the store")
    parser.add_argument("--out", default="reports/compare.md")
    return parser


@cli
def main(argv: list[str] | None = None) -> None:
    from logreg.tracking.finished import latest_run_ids

    args = _parser().parse_args(argv)
    mlflow_cfg = _mlflow_section(Path(args.params))
    uri = mlflow_cfg.get("tracking_uri")
    names = list(args.runs)
    if args.last is not None:
        names += latest_run_ids(args.last, mlflow_cfg.get("experiment_name") or "logreg", uri)
    if len(names) < 2:
        raise UserError(
            f"compare needs two or more runs; got {len(names)} (give run ids or experiment "
            "names, or --last 2 for the last two finished MLflow runs)"
        )
    runs = [resolve(name, uri) for name in names]
    labels = [run.label for run in runs]
    for run in runs:  # headers and legends must tell the runs apart
        if labels.count(run.label) > 1:
            run.label = f"{run.label} ({run.name[:8]})"
    out = Path(args.out)
    figure_dir = out.parent / out.stem
    figure_dir.mkdir(parents=True, exist_ok=True)
    for figure, name in (
        (pr_figure(runs), "pr_curves.png"),
        (loss_figure(runs), "loss_curves.png"),
    ):
        with atomic_path(figure_dir / name) as tmp:
            figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    write_text(out, render(runs, figure_dir.name))
    print(f"compare: wrote {out} and {figure_dir}/ ({', '.join(r.label for r in runs)})")


if __name__ == "__main__":
    main()
