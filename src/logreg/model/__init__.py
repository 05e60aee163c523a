"""Logistic regression from scratch in NumPy: the equations, two solvers, and the estimator.

Read it in this order; each module uses only the ones above it:

    equations.py    forward, cross-entropy from logits, penalty, loss_and_gradient, L1 step
    rows.py         RowBlocks: how a solver sees its data (below)
    sgd.py          minibatch SGD: the plain reference step, the schedule, the stopping rules
    sgd_kernels.py  ... the fused, allocation-free loop that takes the reference's steps
    newton.py       Newton/IRLS with the Hessian, over the same equations
    fista.py        full-batch proximal gradient for L1/elastic net (the textbook method)
    prox_newton.py  proximal Newton for L1/elastic net: Newton's model, solved with the L1 term
    parameters.py   the rule of every parameter, shared with the config schema
    inference.py    summary(): Wald standard errors, intervals, odds ratios
    persistence.py  save/load: .npz weights and .json metadata, no pickle
    estimator.py    LogisticRegression: fit, predict, objective, summary, save, load

The row-block interface (:class:`~logreg.model.rows.RowBlocks`). A solver never holds
"the data"; it holds an object with

    n_rows              the number of rows n, the denominator of J
    blocks()            each Block(X, Y, s) once, in a fixed order; SGD shuffles each
                        block's rows and takes contiguous batches from it
    map(of, *extra)     of(block, *its extras) per block, kept with the block: Newton's
                        logits Z = XW + b, computed once per step and reused
    sum(of, *extra)     Σ over blocks of the same: J's data term, Xᵀ S(P − Y), XᵀSX;
                        what Newton, the validation loss and inference need
    sample(m, rng)      m random rows, as RowBlocks: Newton's sketched Hessian

X is (m, D) features, Y (m, K') targets, s (m,) sample weights.
:class:`~logreg.model.rows.InMemoryRows` holds the arrays, as one block or several;
:class:`logreg.engines.dask_rows.DaskRows` keeps each block on a Dask worker, where
``map`` and ``sum`` run (tests/test_dask_rows.py: Newton reaches the same optimum).
"""

from logreg.model.estimator import LogisticRegression
from logreg.model.sgd import DivergenceError

__all__ = ["DivergenceError", "LogisticRegression"]
