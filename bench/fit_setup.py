"""Where a default SGD fit spends its time before the first step (issue 16's profile).

Run from the project root:

    python bench/fit_setup.py                  # N=200,000 x D=100, float64, batch 256
    python bench/fit_setup.py --n 20000 --repeats 3

Each step of ``LogisticRegression.fit``'s setup is timed alone, on the same data, in
interleaved rounds with a whole SGD epoch (the second epoch of a 2-epoch fit) and with
``X.copy()``, the floor of any pass that writes a full copy of X; the table gives the
medians and each step as a fraction of the epoch. The steps are the estimator's own
functions, called in the order ``fit`` calls them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from logreg.datasets import make_synthetic
from logreg.model import LogisticRegression
from logreg.model.estimator import distinct_labels
from logreg.model.rows import Block
from logreg.model.sgd import BlockSmoothness, auto_learning_rate
from logreg.model.sgd_kernels import BlockDesign, LoopState, residual_coefficients, shuffled_design

B = 256


def wall(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    frame = make_synthetic(args.n, args.d, min(10, args.d), 2, 0.10, 0)
    y = frame.pop("target").to_numpy()
    X = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
    forms = {"Fortran": np.asfortranarray(X), "float32": X.astype(np.float32)}
    frame = pd.DataFrame(X, copy=False)
    model = LogisticRegression(epochs=1)
    model._check_X(X, fitting=True, finite=False)
    model.classes_, index = distinct_labels(y)
    Y = model._encode_targets(index)
    s = model._sample_weights(index, None)
    order = np.random.default_rng(0).permutation(len(y))
    dtype = np.dtype(np.float64)
    design = BlockDesign(Block(X, Y, s), order, True, B)

    def epoch() -> float:
        history = LogisticRegression(epochs=2, tol=0.0).fit(X, y).history_
        return history[1]["elapsed"] - history[0]["elapsed"]

    steps: dict[str, Callable[[], float]] = {
        "SGD epoch B=256 (second of a 2-epoch fit)": epoch,
        "fit(epochs=1), whole": lambda: wall(lambda: LogisticRegression(epochs=1).fit(X, y)),
        "  _check_X (C float64)": lambda: wall(
            lambda: model._check_X(X, fitting=True, finite=False)
        ),
        "  _check_X (DataFrame)": lambda: wall(
            lambda: model._check_X(frame, fitting=True, finite=False)
        ),
        "  classes and indices (distinct_labels)": lambda: wall(lambda: distinct_labels(y)),
        "  ... np.unique(y, return_inverse=True)": lambda: wall(
            lambda: np.unique(y, return_inverse=True)
        ),
        "  targets Y": lambda: wall(lambda: model._encode_targets(index)),
        "  sample weights s": lambda: wall(lambda: model._sample_weights(index, None)),
        "  permutation": lambda: wall(lambda: np.random.default_rng(0).permutation(len(y))),
        "  shuffled copy X̃, C float64": lambda: wall(
            lambda: shuffled_design(X, order, dtype, True, 0.5, s)
        ),
        **{
            f"  shuffled copy X̃, {form}": lambda X=X_form: wall(
                lambda: shuffled_design(X, order, dtype, True, 0.5, s)
            )
            for form, X_form in forms.items()
        },
        "  Y, s shuffled, residual coefficients": lambda: wall(
            lambda: residual_coefficients(Y[order], s[order], B)
        ),
        "  auto step (sample's Gram, eigenvalue)": lambda: wall(
            lambda: auto_learning_rate(
                [BlockSmoothness.of(design, len(y))], 1, 0.5, len(y), B, 1e-4
            )
        ),
        "  batch views": lambda: wall(
            lambda: design.batches(
                LoopState(np.zeros((args.d + 1, 1)), args.d, B, {1.0, design.last_share})
            )
        ),
        "X.copy() (floor of a copy pass)": lambda: wall(X.copy),
        "X @ v (one read of X)": lambda: wall(lambda: X @ np.ones(args.d)),
    }
    samples: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(args.repeats):
        for key, step in steps.items():
            samples[key].append(step())
    medians = {key: statistics.median(values) for key, values in samples.items()}
    epoch_s = medians["SGD epoch B=256 (second of a 2-epoch fit)"]
    print(
        f"N={args.n:,} D={args.d} float64 B={B}, {args.repeats} interleaved rounds, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'step':45s} {'median':>9s} {'/ epoch':>8s}")
    for key, value in medians.items():
        print(f"{key:45s} {value * 1e3:7.1f} ms {value / epoch_s:7.2f}")
    fixed = medians["fit(epochs=1), whole"] - epoch_s
    print(f"{'fixed cost: fit(epochs=1) - epoch':45s} {fixed * 1e3:7.1f} ms {fixed / epoch_s:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
