"""The study's figures: the loss of each batch size, and the regularisation path.

Their data come from :func:`logreg.study.analysis.loss_curves` and
:func:`logreg.study.analysis.regularisation_path`. Drawn on a bare
``matplotlib.figure.Figure`` with the Agg canvas, as in :mod:`logreg.plots`: no pyplot
state, no GUI backend.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def batch_size_figure(curves: dict[str, pd.DataFrame], path: Path) -> None:
    """Mean training loss per batch size against epochs and against seconds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    by_epoch, by_time = fig.subplots(1, 2)
    for batch_size, mean in curves.items():
        by_epoch.plot(mean.index, mean["train_loss"], label=f"batch {batch_size}")
        by_time.plot(mean["elapsed"], mean["train_loss"], label=f"batch {batch_size}")
    by_epoch.set(xlabel="epoch", ylabel="training objective", yscale="log", title="Per epoch")
    by_time.set(xlabel="seconds", ylabel="training objective", yscale="log", title="Per second")
    by_time.set_xscale("log")
    by_epoch.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def regularisation_path_figure(path: pd.DataFrame, out: Path) -> None:
    """Nonzero coefficients and validation scores against α, one line per penalty."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    sparsity, scores = fig.subplots(1, 2)
    for index, (penalty, fits) in enumerate(path.groupby("penalty", sort=False)):
        colour = f"C{index}"
        sparsity.plot(fits.alpha, fits.nonzero, "o-", color=colour, label=penalty)
        scores.plot(fits.alpha, fits.val_pr_auc, "o-", color=colour, label=f"{penalty} PR-AUC")
        scores.plot(
            fits.alpha, fits.val_f1_tuned, "s--", color=colour, label=f"{penalty} F1, tuned"
        )
    sparsity.set(xscale="log", xlabel="α", ylabel="nonzero coefficients", title="Sparsity")
    scores.set(xscale="log", xlabel="α", ylabel="validation score", title="Validation")
    for ax in (sparsity, scores):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
