"""The study's figure: the training loss of each batch size, per epoch and per second.

Its data come from :func:`logreg.study.analysis.loss_curves`. Drawn on a bare
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
