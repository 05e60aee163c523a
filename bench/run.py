"""Benchmark: our NumPy logistic regression against scikit-learn, statsmodels and one pass over X.

Run from the project root (all in one process, so the ratios compare like with like):

    python bench/run.py                 # N=200,000 x D=100, plus N=5·N and a 10-class case
    python bench/run.py --quick         # tiny sizes, a few seconds: checks that it runs
    python bench/run.py --n 200000 --d 100 --repeats 5 --out bench/results/latest.json

It prints a table of medians and the goals of issues 7 and 16 (met? PASS/MISS, by how much), writes
the same figures as JSON, and records the machine it ran on. Timings are medians of
``--repeats`` runs measured with ``time.perf_counter``; on a machine shared with other
work they are noisy, so read the load average printed next to them.

How each figure is measured (every block in interleaved rounds: each round times every
measurement of the block once, so load from other processes hits all of them alike):

- ``X @ v``: one matrix-vector product, the memory-bandwidth floor for touching X once.
- SGD epoch: a fit with ``epochs=2, tol=0``; the epoch is
  ``history_[1]["elapsed"] - history_[0]["elapsed"]`` (the first epoch also carries the
  shuffled copy of X). It includes the per-epoch training loss: J from one pass over X
  (``epoch_loss="full"``, the default), or, in the rows marked "progressive loss", the
  progressive loss, which reuses the batches' logits and needs no pass. The weights,
  and so the time-to-objective epoch counts, are the same with either.
- SGDClassifier epoch: ``partial_fit`` on a warmed-up model (one shuffled pass). The
  B=32 goal holds in every run: besides the ratio of the medians, the worst ratio of
  one round's pair (the two epochs timed back to back) must meet it.
- Time to objective: J* is the best objective of scikit-learn lbfgs at ``tol=1e-12`` and
  our Newton; the target is J*·(1 + 1e-4). For every solver the smallest number of
  epochs/iterations that reaches the target is found first, then a whole ``fit`` capped
  at that number is timed (validation, copies and, for Newton, the Hessian kept for
  ``summary()`` included). Our SGD is timed with each of the two epoch losses.
- Newton + ``summary()`` against ``statsmodels`` ``Logit(y, add_constant(X)).fit().bse``.
- Fixed cost (issue 16): the wall time of a whole ``fit(epochs=1)`` (validation, target
  encoding, weights, the shuffled copy, the auto step and one epoch with its loss)
  minus the SGD epoch B=256 measured in the same rounds; and ``fit(epochs=1)`` on the
  same data given as C- and Fortran-ordered float64, C-ordered float32 and a DataFrame;
  beside them ``X.copy()``, the floor of any pass that writes a full copy of X.
- Memory: the tracemalloc peak of NumPy allocations during a fit, as a multiple of X.
- Where the time goes: the BLAS products of every batch, the loss pass, the shuffled
  copy and Newton's Hessians, each timed alone in the same rounds as the epochs; an
  epoch minus its products and loss pass is its elementwise work and Python.

Multi-threaded BLAS on a machine shared with other work can be erratic (a Hessian that
takes 0.1 s may take seconds); ``--blas-threads 1`` gives steadier, single-core figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logreg.datasets import make_synthetic
from logreg.io import write_json
from logreg.model import LogisticRegression
from logreg.model.equations import (
    objective_value,
    predict_probabilities,
    weighted_cross_entropy_sum,
)
from logreg.model.newton import SKETCH_FRACTION, hessian
from logreg.model.rows import InMemoryRows
from logreg.model.sgd_kernels import shuffled_design

ALPHA = 1e-4  # the L2 strength of every fit; scikit-learn gets C = 1/(α·n)
TARGET_GAP = 1e-4  # time to objective: J ≤ J*·(1 + TARGET_GAP)
SEED = 0
INFORMATIVE = 10  # features that enter the true model; the others are noise
MINORITY = 0.10  # fraction of positives (binary) or of the last class (10-class)
N_CLASSES = 10
LARGE_FACTOR = 5  # the large case has LARGE_FACTOR·N rows (1,000,000 at the default N)
BATCHES: tuple[int | str, ...] = (32, 256, 4096, "full")
DTYPES = ("float64", "float32")
MAX_SGD_EPOCHS = 100  # time-to-objective search for SGD gives up after this many epochs
MAX_SGD_SECONDS = 60.0  # ... or after this long
SGD_SEARCH_FACTOR = 10.0  # ... or after this many times lbfgs's time to the target
MIN_SGD_SECONDS = 2.0
MAX_SKLEARN_ITER = 60

# (key, description, ratio's numerator, denominator, "<=" or ">=", goal)
GOALS = (
    ("sgd256_vs_xv", "SGD epoch B=256 / one X@v pass", "sgd_b256_float64", "xv_float64", "<=", 4.0),
    (
        "sgd256_progressive_vs_xv",
        "  the same, progressive loss",
        "sgd_b256_float64_progressive",
        "xv_float64",
        "<=",
        4.0,
    ),
    (
        "sgd32_vs_sklearn",
        "SGD epoch B=32 / SGDClassifier epoch",
        "sgd_b32_float64",
        "sklearn_sgd",
        "<=",
        0.5,
    ),
    (
        "sgd32_vs_sklearn_every_round",
        "  the same, the worst of the interleaved rounds",
        "sgd_b32_float64",
        "sklearn_sgd",
        "max<=",
        0.5,
    ),
    (
        "sgd32_progressive_vs_sklearn",
        "  the same, progressive loss",
        "sgd_b32_float64_progressive",
        "sklearn_sgd",
        "<=",
        0.5,
    ),
    (
        "tto_sgd_default_vs_lbfgs",
        "time to 1e-4: SGD B=256 default schedule / lbfgs",
        "tto_sgd_default",
        "tto_lbfgs",
        "<=",
        0.5,
    ),
    (
        "tto_sgd_progressive_vs_lbfgs",
        "  the same, progressive loss",
        "tto_sgd_progressive",
        "tto_lbfgs",
        "<=",
        0.5,
    ),
    ("tto_newton_vs_lbfgs", "time to 1e-4: Newton / lbfgs", "tto_newton", "tto_lbfgs", "<=", 1.5),
    (
        "fixed_cost_vs_epoch",
        "fixed cost of a fit / SGD epoch B=256",
        "fixed_cost",
        "fixed_epoch_b256",
        "<=",
        1.0,
    ),
    *(
        (
            f"fit1_{form}_vs_c",
            f"fit(epochs=1) on {text} / on C float64",
            f"fit1_{form}",
            "fit1_c",
            "<=",
            1.1,
        )
        for form, text in (("fortran", "Fortran"), ("float32", "float32"), ("frame", "a DataFrame"))
    ),
    (
        "se_vs_statsmodels",
        "Newton + summary() / statsmodels Logit + bse",
        "newton_summary",
        "statsmodels_bse",
        "<=",
        0.3,
    ),
    *(
        (
            f"float32_speedup_b{batch}",
            f"float32 speed-up, SGD epoch B={batch}",
            f"sgd_b{batch}_float64",
            f"sgd_b{batch}_float32",
            ">=",
            1.4,
        )
        for batch in BATCHES[1:]
    ),
)
MEMORY_GOAL = 2.0  # peak while training, in multiples of X (X itself included)
MEMORY_SLACK = 1.1  # "about 2x": the labels, weights and per-epoch loss add a few percent


@dataclass
class Data:
    """One synthetic problem: X (C-ordered float64), its float32 copy, labels and targets."""

    name: str
    X: np.ndarray
    X32: np.ndarray
    y: np.ndarray
    Y: np.ndarray  # (n, 1) 0/1 or one-hot (n, K), for objective_value
    s: np.ndarray


def make_data(name: str, n: int, d: int, n_classes: int) -> Data:
    frame = make_synthetic(n, d, min(INFORMATIVE, d), n_classes, MINORITY, SEED)
    y = frame.pop("target").to_numpy()
    X = np.ascontiguousarray(frame.to_numpy(dtype=np.float64))
    del frame
    Y = (y == 1)[:, None].astype(float) if n_classes == 2 else np.eye(n_classes)[y]
    return Data(name, X, X.astype(np.float32), y, Y, np.ones(n))


def objective_at(data: Data, coef: np.ndarray, intercept: np.ndarray) -> float:
    """J(W, b) in float64 for coefficients laid out like scikit-learn's (K', D) and (K',)."""
    W = np.asarray(coef, dtype=np.float64).T
    b = np.asarray(intercept, dtype=np.float64)
    return objective_value(data.X, data.Y, data.s, W, b, ALPHA, 0.0)


def ours(**params: Any) -> LogisticRegression:
    return LogisticRegression(alpha=ALPHA, **params)


def sklearn_logistic(data: Data, solver: str, max_iter: int, tol: float = 1e-4) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression as SklearnLogisticRegression

    # scikit-learn 1.8+ spells L2 as l1_ratio=0 (penalty= is deprecated); C = 1/(α·n).
    model = SklearnLogisticRegression(
        C=1.0 / (ALPHA * len(data.y)), l1_ratio=0.0, solver=solver, max_iter=max_iter, tol=tol
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(data.X, data.y)


# ---------------------------------------------------------------------------
# Measurements: each returns {key: {"median_s", "samples_s", ...}}.
# ---------------------------------------------------------------------------


def interleaved(timers: dict[str, Callable[[], float]], rounds: int) -> dict[str, dict[str, Any]]:
    """Median seconds of each timer over rounds that call every timer once.

    Interleaving puts a burst of load from other processes on all the measurements of
    a round, not on one of them, so the ratios between them stay meaningful.
    """
    samples: dict[str, list[float]] = {key: [] for key in timers}
    for _ in range(rounds):
        for key, timer in timers.items():
            samples[key].append(timer())
    return {
        key: {"median_s": statistics.median(values), "samples_s": values}
        for key, values in samples.items()
    }


def wall(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_epochs(
    data: Data,
    repeats: int,
    batches: tuple[int | str, ...],
    dtypes: tuple[str, ...],
    sklearn_key: str = "sklearn_sgd",
    parts: dict[str, Callable[[], float]] | None = None,
    progressive_batches: tuple[int, ...] = (32, 256),
) -> dict[str, dict[str, Any]]:
    """One X@v pass, our SGD epochs and SGDClassifier's epoch, in interleaved rounds.

    Every batch size is timed in each dtype with the full epoch loss, and those in
    ``progressive_batches`` also in float64 with the progressive loss.

    ``parts`` (see part_timers) join the same rounds, so an epoch and its pieces are
    timed under the same load.
    """
    from sklearn.linear_model import SGDClassifier

    timers: dict[str, Callable[[], float]] = {}
    for dtype, X in (("float64", data.X), ("float32", data.X32)):
        v = np.ones((X.shape[1], data.Y.shape[1]), dtype=X.dtype)
        v = v[:, 0] if v.shape[1] == 1 else v
        X @ v  # warm-up: page in X
        timers[f"xv_{dtype}"] = lambda X=X, v=v: min(wall(lambda: X @ v) for _ in range(3))

    def our_epoch(batch: int | str, dtype: str, epoch_loss: str) -> float:
        # Two epochs: the first also holds the shuffled copy of X and the initial loss.
        X = data.X if dtype == "float64" else data.X32
        model = ours(
            batch_size=batch, dtype=dtype, epochs=2, tol=0.0, patience=None, epoch_loss=epoch_loss
        )
        history = model.fit(X, data.y).history_
        return history[1]["elapsed"] - history[0]["elapsed"]

    for batch in batches:
        for dtype in dtypes:
            timers[f"sgd_b{batch}_{dtype}"] = lambda b=batch, t=dtype: our_epoch(b, t, "full")
    for batch in progressive_batches:
        timers[f"sgd_b{batch}_float64_progressive"] = lambda b=batch: our_epoch(
            b, "float64", "progressive"
        )

    sgd = SGDClassifier(loss="log_loss", alpha=ALPHA, max_iter=1, tol=None, random_state=SEED)
    sgd.partial_fit(data.X, data.y, classes=np.unique(data.y))  # warm-up: allocations
    timers[sklearn_key] = lambda: wall(lambda: sgd.partial_fit(data.X, data.y))
    return interleaved(timers | (parts or {}), repeats)


def measure_fixed_cost(data: Data, repeats: int) -> dict[str, dict[str, Any]]:
    """fit(epochs=1) on each form of X, and a 2-epoch fit's second epoch, in the same rounds."""
    import pandas as pd

    forms = {
        "c": data.X,
        "fortran": np.asfortranarray(data.X),
        "float32": data.X32,
        "frame": pd.DataFrame(data.X, copy=False),
    }

    def epoch() -> float:
        history = ours(epochs=2, tol=0.0, patience=None).fit(data.X, data.y).history_
        return history[1]["elapsed"] - history[0]["elapsed"]

    timers = {
        f"fit1_{form}": lambda X=X: wall(lambda: ours(epochs=1).fit(X, data.y))
        for form, X in forms.items()
    }
    # X.copy(): the floor of any pass that writes a full copy of X, the shuffled one included.
    floor = {"copy_floor": lambda: wall(data.X.copy)} | floor_timers(data.X, forms["fortran"])
    results = interleaved(timers | {"fixed_epoch_b256": epoch} | floor, repeats)
    fixed = [
        fit - one
        for fit, one in zip(
            results["fit1_c"]["samples_s"], results["fixed_epoch_b256"]["samples_s"], strict=True
        )
    ]
    results["fixed_cost"] = {"median_s": statistics.median(fixed), "samples_s": fixed}
    del forms
    return results


def floor_timers(X: np.ndarray, X_fortran: np.ndarray) -> dict[str, Callable[[], float]]:
    """What no implementation of the fit's setup can avoid on this machine (print_floors).

    - ``fresh_pages``: writing a fresh buffer the size of X̃ once. Any copy of X pays the
      kernel's page faults and zeroing, whatever it reads.
    - ``gather_epoch``: gathering every batch of 256 rows from X into one buffer that
      stays in cache, in a random order: what a fit without a copy adds to every epoch.
    - ``rowmajor_c``/``rowmajor_fortran``: turning X's rows row-major, 256 at a time,
      into a buffer that stays in cache (no fresh pages): the read any row-wise
      solver makes; their difference is the cost of the layout alone.
    """
    n, D = X.shape
    B = 256
    order = np.random.default_rng(SEED).permutation(n)
    batches = [order[start : start + B] for start in range(0, n, B)]
    buffer = np.empty((B, D))

    def gather_epoch() -> None:
        for rows in batches:
            np.take(X, rows, axis=0, out=buffer[: len(rows)], mode="clip")

    def rowmajor(source: np.ndarray) -> None:
        for start in range(0, n, B):
            block = source[start : start + B]
            np.copyto(buffer[: len(block)].T, block.T)

    return {
        "fresh_pages": lambda: wall(lambda: np.empty((n, D + 1)).fill(0.0)),
        "gather_epoch": lambda: wall(gather_epoch),
        "rowmajor_c": lambda: wall(lambda: rowmajor(X)),
        "rowmajor_fortran": lambda: wall(lambda: rowmajor(X_fortran)),
    }


def first_reaching(losses: list[float], target: float) -> int | None:
    """1-based index of the first loss at or below target, or None."""
    return next((i + 1 for i, loss in enumerate(losses) if loss <= target), None)


def measure_time_to_objective(
    data: Data, repeats: int, *, newton: bool, newton_cholesky: bool
) -> dict[str, dict[str, Any]]:
    """Find each solver's smallest epoch/iteration count to the target, then time those fits."""
    reference = sklearn_logistic(data, "lbfgs", max_iter=10_000, tol=1e-12)
    optimum = objective_at(data, reference.coef_, reference.intercept_)
    if newton:
        ours_newton = ours(solver="newton").fit(data.X, data.y)
        optimum = min(optimum, objective_at(data, ours_newton.coef_, ours_newton.intercept_))
    target = optimum * (1.0 + TARGET_GAP)

    fits: dict[str, Callable[[int], Any]] = {}  # key -> fit capped at k epochs/iterations
    counts: dict[str, int | None] = {}
    notes: dict[str, str] = {}
    solvers = [("tto_lbfgs", "lbfgs")]
    if newton_cholesky:
        solvers.append(("tto_newton_cholesky", "newton-cholesky"))
    for key, solver in solvers:
        fits[key] = lambda k, solver=solver: sklearn_logistic(data, solver, max_iter=k)
        counts[key] = next(
            (
                k
                for k in range(1, MAX_SKLEARN_ITER + 1)
                if objective_at(data, *_coef(fits[key](k))) <= target
            ),
            None,
        )
        notes[key] = f"max_iter={counts[key]}" if counts[key] else "not reached"

    # Our SGD: the history's train_loss is J after each epoch (float64), so one long fit
    # finds the epoch count. The search stops at SGD_SEARCH_FACTOR times lbfgs's time:
    # beyond it the comparison is lost anyway.
    budget = MAX_SGD_SECONDS
    if counts["tto_lbfgs"]:
        lbfgs_time = wall(lambda: fits["tto_lbfgs"](counts["tto_lbfgs"]))
        budget = min(budget, max(MIN_SGD_SECONDS, SGD_SEARCH_FACTOR * lbfgs_time))
    variants: tuple[tuple[str, dict[str, Any]], ...] = (
        ("tto_sgd_default", {}),
        ("tto_sgd_lr05", {"learning_rate": 0.5}),  # the default before learning_rate="auto"
        ("tto_sgd_invscaling", {"lr_schedule": "invscaling"}),
    )
    for key, variant in variants:
        params: dict[str, Any] = {"batch_size": 256, "tol": 0.0, "patience": None, **variant}
        fits[key] = lambda k, p=params: ours(epochs=k, **p).fit(data.X, data.y)
        probe = ours(epochs=MAX_SGD_EPOCHS, max_time=budget, **params).fit(data.X, data.y)
        losses = [record["train_loss"] for record in probe.history_]
        counts[key] = first_reaching(losses, target)
        notes[key] = (
            f"{counts[key]} epochs"
            if counts[key]
            else f"not within {len(losses)} epochs ({probe.history_[-1]['elapsed']:.1f} s): "
            f"best relative gap {min(losses) / optimum - 1:.1e}"
        )
    # The epoch loss changes what is recorded, not the weights: the same epoch count.
    fits["tto_sgd_progressive"] = lambda k: ours(
        epochs=k, batch_size=256, tol=0.0, patience=None, epoch_loss="progressive"
    ).fit(data.X, data.y)
    counts["tto_sgd_progressive"] = counts["tto_sgd_default"]
    notes["tto_sgd_progressive"] = notes["tto_sgd_default"]
    if newton:
        fits["tto_newton"] = lambda k: ours(solver="newton", epochs=k).fit(data.X, data.y)
        counts["tto_newton"] = first_reaching(
            [record["train_loss"] for record in ours_newton.history_], target
        )
        notes["tto_newton"] = f"{counts['tto_newton']} iterations"

    last: dict[str, Any] = {}

    def timer(key: str) -> float:
        k = counts[key]
        return wall(lambda: last.__setitem__(key, fits[key](k)))

    timed = interleaved({key: lambda key=key: timer(key) for key in fits if counts[key]}, repeats)
    out: dict[str, dict[str, Any]] = {}
    for key in fits:
        if key not in timed:
            out[key] = {"median_s": None, "reached": False, "note": notes[key]}
            continue
        value = objective_at(data, last[key].coef_, last[key].intercept_)
        out[key] = timed[key] | {
            "iterations": counts[key],
            "objective": value,
            "relative_gap": value / optimum - 1.0,
            "reached": value <= target,
            "note": notes[key],
        }
    out["optimum"] = {"objective": optimum, "target": target}
    return out


def _coef(model: Any) -> tuple[np.ndarray, np.ndarray]:
    return model.coef_, model.intercept_


def measure_inference(data: Data, repeats: int) -> dict[str, dict[str, Any]]:
    """Our Newton + summary() against statsmodels' Logit with standard errors, interleaved."""
    import statsmodels.api as sm

    errors: dict[str, np.ndarray] = {}

    def ours_errors() -> None:
        model = LogisticRegression(solver="newton", penalty="none").fit(data.X, data.y)
        errors["ours"] = model.summary()["std_err"].to_numpy()

    def statsmodels_errors() -> None:
        result = sm.Logit(data.y, sm.add_constant(data.X)).fit(disp=0)
        errors["statsmodels"] = np.asarray(result.bse)

    out = interleaved(
        {
            "newton_summary": lambda: wall(ours_errors),
            "statsmodels_bse": lambda: wall(statsmodels_errors),
        },
        min(repeats, 3),  # statsmodels takes seconds per fit
    )
    # statsmodels puts the constant first, our table puts the intercept last.
    theirs = np.concatenate([errors["statsmodels"][1:], errors["statsmodels"][:1]])
    out["statsmodels_bse"]["max_relative_difference_of_std_err"] = float(
        np.max(np.abs(errors["ours"] / theirs - 1.0))
    )
    return out


def part_timers(data: Data) -> dict[str, Callable[[], float]]:
    """Where an SGD epoch and a Newton iteration spend their time, piece by piece.

    The pieces are the BLAS calls and passes the solvers make, timed alone: the two
    products of every batch (X̃_b θ and X̃_bᵀR, visited in a random order, as SGD does),
    the per-epoch loss pass, the shuffled copy SGD makes once per fit, and Newton's
    exact and sampled Hessians. An epoch minus its products and loss pass is the cost
    of the elementwise work and of Python between the calls.
    """
    rng = np.random.default_rng(SEED)
    n = len(data.y)
    X_tilde, _ = shuffled_design(data.X, rng.permutation(n), np.dtype(np.float64), True)
    theta = rng.standard_normal((X_tilde.shape[1], 1)) * 0.01
    P = predict_probabilities(data.X @ theta[:-1] + theta[-1])

    def batch_products(batch: int) -> float:
        Z, step = np.empty((batch, 1)), np.empty_like(theta)
        starts = np.arange(0, n, batch)[rng.permutation(-(-n // batch))].tolist()
        started = time.perf_counter()
        for start in starts:
            X_b = X_tilde[start : start + batch]
            R = Z[: len(X_b)]
            np.dot(X_b, theta, out=R)
            np.dot(X_b.T, R, out=step)
        return time.perf_counter() - started

    timers: dict[str, Callable[[], float]] = {
        f"part_products_b{batch}": lambda batch=batch: batch_products(batch) for batch in (32, 256)
    }
    timers["part_loss_pass"] = lambda: wall(
        lambda: weighted_cross_entropy_sum(X_tilde @ theta, data.Y, data.s) / n
    )
    timers["part_shuffled_copy"] = lambda: wall(
        lambda: shuffled_design(data.X, rng.permutation(n), np.dtype(np.float64), True)
    )
    timers["part_gradient_pass"] = lambda: wall(lambda: data.X.T @ (P - data.Y))
    rows = InMemoryRows.of(data.X, data.Y, data.s)
    sample = rows.sample(n // SKETCH_FRACTION, rng)
    W, b = theta[:-1], theta[-1]
    # Each includes the pass that gives P at (W, b), as in newton_solve.
    timers["part_hessian_exact"] = lambda: wall(lambda: hessian(rows, W, b, ALPHA, True))
    timers["part_hessian_sampled"] = lambda: wall(lambda: hessian(sample, W, b, ALPHA, True))
    return timers


def measure_memory(data: Data) -> dict[str, dict[str, Any]]:
    """tracemalloc peak of NumPy allocations during a fit, beyond X itself, over X's size."""

    def peak(fit: Callable[[], Any]) -> int:
        tracemalloc.start()
        try:
            fit()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    X_fortran = np.asfortranarray(data.X)  # made before tracing: what pandas hands over
    cases = {
        "sgd_float64": (
            data.X,
            lambda: ours(batch_size=256, epochs=2, tol=0.0).fit(data.X, data.y),
        ),
        "sgd_float64_fortran": (
            X_fortran,
            lambda: ours(batch_size=256, epochs=2, tol=0.0).fit(X_fortran, data.y),
        ),
        "sgd_float32_from_float64": (
            data.X,
            lambda: ours(batch_size=256, epochs=2, tol=0.0, dtype="float32").fit(data.X, data.y),
        ),
        "sgd_float32": (
            data.X32,
            lambda: ours(batch_size=256, epochs=2, tol=0.0, dtype="float32").fit(data.X32, data.y),
        ),
        "newton": (data.X, lambda: ours(solver="newton", epochs=2).fit(data.X, data.y)),
    }
    out = {}
    for key, (X, fit) in cases.items():
        extra = peak(fit)
        out[key] = {
            "peak_extra_bytes": extra,
            "X_bytes": X.nbytes,
            "peak_total_over_X": 1.0 + extra / X.nbytes,
        }
    return out


# ---------------------------------------------------------------------------
# Machine, goals, table.
# ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import sklearn
    import statsmodels

    cpu = platform.processor()
    memory = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    config = np.show_config(mode="dicts")
    blas = config.get("Build Dependencies", {}).get("blas", {})
    try:
        from threadpoolctl import threadpool_info

        pools = [
            {k: p.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for p in threadpool_info()
        ]
    except ImportError:
        pools = []
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu,
        "memory": memory,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "statsmodels": statsmodels.__version__,
        "numpy_blas": {k: blas.get(k) for k in ("name", "version", "openblas configuration")},
        "threadpools": pools,
    }


def goal_ratio(results: dict[str, Any], top: str, bottom: str, worst: bool) -> float | None:
    """The ratio of the medians, or (``worst``) the largest ratio of one round's pair."""
    a, b = results.get(top, {}), results.get(bottom, {})
    if a.get("median_s") is None or not b.get("median_s"):
        return None
    if worst:
        pairs = zip(a["samples_s"], b["samples_s"], strict=True)
        return max(top_s / bottom_s for top_s, bottom_s in pairs)
    return a["median_s"] / b["median_s"]


def evaluate_goals(results: dict[str, Any], memory: dict[str, Any]) -> list[dict[str, Any]]:
    goals = []
    for key, text, top, bottom, op, goal in GOALS:
        ratio = goal_ratio(results, top, bottom, worst=op.startswith("max"))
        op = op.removeprefix("max")
        if ratio is None:
            status, by = "MISS", "not measured / target not reached"
        elif (ratio <= goal) if op == "<=" else (ratio >= goal):
            status = "PASS"
            by = f"{(goal / ratio - 1) if op == '<=' else (ratio / goal - 1):.0%} margin"
        else:
            status = "MISS"
            by = f"{(ratio / goal - 1) if op == '<=' else (goal / ratio - 1):.0%} over"
        goals.append(
            {
                "key": key,
                "goal": text,
                "ratio": ratio,
                "target": f"{op} {goal:g}",
                "status": status,
                "by": by,
            }
        )
    worst = max(memory.values(), key=lambda m: m["peak_total_over_X"])["peak_total_over_X"]
    goals.append(
        {
            "key": "peak_memory",
            "goal": "peak memory while training / X (worst fit)",
            "ratio": worst,
            "target": f"<= ~{MEMORY_GOAL:g}",
            # "About 2x": labels, weights and the per-epoch loss add a few percent of X.
            "status": "PASS" if worst <= MEMORY_GOAL * MEMORY_SLACK else "MISS",
            "by": f"{worst / MEMORY_GOAL - 1:+.0%} against {MEMORY_GOAL:g}x",
        }
    )
    return goals


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—  "
    if value < 1e-3:
        return f"{value * 1e3:.3f} ms"
    return f"{value * 1e3:.1f} ms" if value < 10 else f"{value:.2f} s "


LABELS = {
    "xv": "one X @ v pass",
    "sklearn_sgd": "sklearn SGDClassifier epoch",
    "sklearn_sgd_ovr": "sklearn SGDClassifier epoch (one-vs-rest)",
    "tto_sgd_default": "to 1e-4: our SGD B=256, default 'step'",
    "tto_sgd_progressive": "to 1e-4: our SGD B=256, 'step', progressive loss",
    "tto_sgd_invscaling": "to 1e-4: our SGD B=256, 'invscaling'",
    "tto_sgd_lr05": "to 1e-4: our SGD B=256, 'step' from lr 0.5",
    "tto_newton": "to 1e-4: our Newton",
    "tto_lbfgs": "to 1e-4: sklearn lbfgs",
    "tto_newton_cholesky": "to 1e-4: sklearn newton-cholesky",
    "newton_summary": "our Newton + summary()",
    "statsmodels_bse": "statsmodels Logit fit + bse",
    "fit1_c": "fit(epochs=1), X C-ordered float64",
    "fit1_fortran": "fit(epochs=1), X Fortran-ordered float64",
    "fit1_float32": "fit(epochs=1), X float32 (fit in float64)",
    "fit1_frame": "fit(epochs=1), X a DataFrame of float64",
    "fixed_epoch_b256": "SGD epoch B=256 (same rounds as fit1)",
    "fixed_cost": "fixed cost: fit(epochs=1) C − that epoch",
    "copy_floor": "X.copy() (same rounds): floor of a full copy",
    "fresh_pages": "writing a fresh buffer the size of X̃ (same rounds)",
    "gather_epoch": "gathering every batch of 256 rows of X, once",
    "rowmajor_c": "rows of C-ordered X made row-major, in cache",
    "rowmajor_fortran": "rows of Fortran-ordered X made row-major, in cache",
}


def label(key: str) -> str:
    if key.startswith("xv_"):
        return f"{LABELS['xv']} ({key[3:]})"
    if key.startswith("sgd_b"):
        batch, dtype, *progressive = key[5:].split("_")
        return f"our SGD epoch B={batch} ({dtype}{', progressive loss' if progressive else ''})"
    return LABELS.get(key, key)


def print_section(title: str, results: dict[str, Any]) -> None:
    print(f"\n== {title} ==")
    xv = results.get("xv_float64", {}).get("median_s")
    print(f"{'measurement':50s} {'median':>11s}   note")
    for key, value in results.items():
        if "median_s" not in value:
            continue
        note = value.get("note", "")
        if key.startswith("sgd_b") and xv and value["median_s"]:
            note = f"{value['median_s'] / xv:5.1f}× X@v(float64)"
        if key.startswith("tto_") and value.get("median_s") is not None:
            note = f"{note}, gap {value['relative_gap']:.1e}"
        if key == "statsmodels_bse":
            note = f"std_err agree to {value['max_relative_difference_of_std_err']:.1e}"
        print(f"{label(key):50s} {fmt_seconds(value['median_s']):>11s}   {note}")


def print_parts(results: dict[str, Any], parts: dict[str, Any]) -> None:
    """The profile: each SGD epoch split into products, loss pass and the rest."""

    def ms(key: str) -> float:
        return parts[key]["median_s"] * 1e3

    print("\nwhere the time goes (pieces timed alone, in the epochs' interleaved rounds):")
    for batch in (32, 256):
        epoch = results[f"sgd_b{batch}_float64"]["median_s"] * 1e3
        products, loss = ms(f"part_products_b{batch}"), ms("part_loss_pass")
        print(
            f"  SGD epoch B={batch} float64 {epoch:6.1f} ms = the batches' two BLAS products "
            f"{products:.1f} + loss pass {loss:.1f} + elementwise and Python "
            f"{epoch - products - loss:.1f}"
        )
        progressive = results[f"sgd_b{batch}_float64_progressive"]["median_s"] * 1e3
        print(
            f"  SGD epoch B={batch} float64, progressive loss {progressive:6.1f} ms = products "
            f"{products:.1f} + elementwise, Python and the loss from the batches' logits "
            f"{progressive - products:.1f}"
        )
    print(f"  SGD's shuffled copy of X, once per fit: {ms('part_shuffled_copy'):.1f} ms")
    print(
        f"  Newton: exact Hessian {ms('part_hessian_exact'):.1f} ms, sampled (1/"
        f"{SKETCH_FRACTION} of the rows) {ms('part_hessian_sampled'):.1f} ms, one gradient pass "
        f"{ms('part_gradient_pass'):.1f} ms"
    )


def print_floors(results: dict[str, Any]) -> None:
    """Issue 16's goals that meet this machine's floors (floor_timers), in the same run."""

    def median(key: str) -> float:
        return results[key]["median_s"]

    epoch, fresh = median("fixed_epoch_b256"), median("fresh_pages")
    print("\nfloors (what any implementation of the same steps pays here, same rounds):")
    print(
        f"  fixed cost: writing a fresh X̃-sized buffer alone is {fresh / epoch:.2f} epochs "
        f"(B=256), X.copy() {median('copy_floor') / epoch:.2f}; a fit without a copy adds "
        f"{median('gather_epoch') / epoch:.2f} epochs of gathers to every epoch"
    )
    progressive = median("sgd_b256_float64_progressive")
    lbfgs = results["tto_lbfgs"].get("median_s")
    for key, schedule in (("tto_sgd_default", "the default schedule"), ("tto_sgd_lr05", "lr 0.5")):
        epochs = results.get(key, {}).get("iterations")
        if epochs and lbfgs:
            floor = epochs * progressive + fresh
            print(
                f"  time to 1e-4, {schedule}: {epochs} epochs of the cheapest epoch (progressive "
                f"loss) plus the fresh buffer = {floor * 1e3:.0f} ms, {floor / lbfgs:.2f}× lbfgs"
            )
    layout = median("rowmajor_fortran") - median("rowmajor_c")
    print(
        f"  Fortran-ordered X: its rows cost {layout * 1e3:.1f} ms more to read row-major than "
        f"C-ordered ones; fit(epochs=1) on C plus that is "
        f"{1 + layout / median('fit1_c'):.2f}× fit(epochs=1) on C"
    )


def print_goals(goals: list[dict[str, Any]]) -> None:
    print("\n== goals (issues 7 and 16), binary case ==")
    print(f"{'goal':50s} {'ratio':>7s}  {'target':>7s}  met?")
    for goal in goals:
        ratio = "—" if goal["ratio"] is None else f"{goal['ratio']:.2f}"
        print(
            f"{goal['goal']:50s} {ratio:>7s}  {goal['target']:>7s}  {goal['status']} ({goal['by']})"
        )


def binary_section(n: int, d: int, repeats: int) -> dict[str, Any]:
    """The main case: everything the goals need, and memory."""
    data = make_data("binary", n, d, 2)
    title = f"binary N={n:,} D={d}, {data.y.mean():.1%} positives"
    results = measure_epochs(data, repeats, BATCHES, DTYPES, parts=part_timers(data))
    parts = {key: results.pop(key) for key in list(results) if key.startswith("part_")}
    results |= measure_time_to_objective(data, repeats, newton=True, newton_cholesky=True)
    results |= measure_inference(data, repeats)
    results |= measure_fixed_cost(data, repeats)
    memory = measure_memory(data)
    print_section(title, results)
    print_parts(results, parts)
    print_floors(results)
    print("\npeak memory while training (tracemalloc, NumPy allocations; X included):")
    for key, value in memory.items():
        size = value["X_bytes"] / 2**20
        print(f"  {key:28s} {value['peak_total_over_X']:.2f}× X ({size:.0f} MiB)")
    return {"title": title, "results": results, "parts": parts, "memory": memory}


def large_section(n: int, d: int, repeats: int) -> dict[str, Any]:
    """Five times the rows: do the ratios hold when X is far beyond the caches?"""
    data = make_data("large", n, d, 2)
    title = f"binary N={n:,} D={d}"
    few = min(repeats, 3)
    results = measure_epochs(data, few, (32, 256), DTYPES)
    # newton-cholesky takes tens of seconds per fit at this size: left out.
    results |= measure_time_to_objective(data, few, newton=True, newton_cholesky=False)
    print_section(title, results)
    return {"title": title, "results": results}


def multiclass_section(n: int, d: int, repeats: int) -> dict[str, Any]:
    """Softmax over N_CLASSES classes; scikit-learn's SGDClassifier fits one-vs-rest."""
    data = make_data("multiclass", n, d, N_CLASSES)
    title = f"{N_CLASSES}-class softmax N={n:,} D={d}"
    results = measure_epochs(data, repeats, (32, 256), DTYPES, sklearn_key="sklearn_sgd_ovr")
    # Newton on 10 classes needs a (10·101)² Hessian from 55 weighted Gram matrices per
    # iteration, seconds each: left out, as is newton-cholesky.
    results |= measure_time_to_objective(data, repeats, newton=False, newton_cholesky=False)
    print_section(title, results)
    return {"title": title, "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="rows of the main binary case")
    parser.add_argument("--d", type=int, default=100, help="features")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: N=2000, D=20, 2 repeats")
    parser.add_argument("--out", default="bench/results/latest.json", help="JSON output")
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="limit BLAS/OpenMP threads (threadpoolctl); default: the libraries' own choice",
    )
    args = parser.parse_args(argv)
    if args.blas_threads is None:
        return run(args)
    # threadpool_limits reaches only the libraries loaded so far: load SciPy's BLAS (under
    # scikit-learn and statsmodels) first, or they would keep all their threads.
    import scipy.linalg  # noqa: F401
    import sklearn.linear_model  # noqa: F401
    import statsmodels.api  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.blas_threads):
        return run(args)


def run(args: argparse.Namespace) -> int:
    n, d, repeats = (2_000, 20, 2) if args.quick else (args.n, args.d, args.repeats)
    started = time.perf_counter()

    info = machine()
    info["load_average_start"] = os.getloadavg()
    print("== machine ==")
    print(f"{info['cpu_model']}, nproc={info['nproc']}, memory {info['memory']}")
    print(
        f"Python {info['python']}, NumPy {info['numpy']} ({info['numpy_blas']['name']} "
        f"{info['numpy_blas']['version']}), scikit-learn {info['scikit_learn']}, "
        f"statsmodels {info['statsmodels']}"
    )
    for pool in info["threadpools"]:
        print(
            f"threadpool: {pool['internal_api']} {pool['version']} {pool['architecture']}, "
            f"{pool['num_threads']} threads"
        )
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in info['load_average_start'])}")

    sections = {
        "binary": binary_section(n, d, repeats),
        "large": large_section(LARGE_FACTOR * n, d, repeats),
        "multiclass": multiclass_section(n, d, repeats),
    }
    memory = sections["binary"].pop("memory")

    goals = evaluate_goals(sections["binary"]["results"], memory)
    print_goals(goals)
    info["load_average_end"] = os.getloadavg()
    # ru_maxrss is in KiB on Linux: the whole process, data sets included.
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    total = time.perf_counter() - started
    print(
        f"\nmax RSS of the process {max_rss / 2**30:.2f} GiB; total {total:.0f} s; load average "
        f"at end: {' '.join(f'{x:.2f}' for x in info['load_average_end'])}"
    )
    print(
        "SGD epoch: second epoch of a 2-epoch fit, from history_ 'elapsed' (it includes the "
        "per-epoch loss pass, except with the progressive loss); medians of interleaved rounds."
    )

    write_json(
        args.out,
        {
            "machine": info,
            "config": {
                "n": n,
                "d": d,
                "repeats": repeats,
                "quick": args.quick,
                "alpha": ALPHA,
                "target_gap": TARGET_GAP,
                "seed": SEED,
                "minority": MINORITY,
                "n_classes_multiclass": N_CLASSES,
                "n_large": LARGE_FACTOR * n,
                "blas_threads": args.blas_threads,
            },
            "sections": sections,
            "memory": memory,
            "max_rss_bytes": max_rss,
            "goals": goals,
            "total_seconds": total,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
