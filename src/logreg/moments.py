"""Column means and standard deviations from partitions, merged without a second pass.

Each partition gives (n, mean, M2) per column, M2 = Σ(x − mean)². Two such summaries
merge exactly (Chan, Golub and LeVeque 1979):

    n = n_a + n_b      δ = mean_b − mean_a      mean = mean_a + δ·n_b/n
    M2 = M2_a + M2_b + δ²·n_a·n_b/n

and the population standard deviation is √(M2/n), as ``np.std`` gives it. Unlike
Σx² − n·mean², the update subtracts no large sums. What it still loses is the rounding
of each partial mean: a column at 1e8 with a spread of 1e-3 would keep only 7 digits of
its deviation. So every partition summarises x − c for one shift c per column that all
partitions share (the median, known from the pass before): near c, the partial means
are small and exact enough, and the merged deviation is that of a two-pass computation.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import reduce
from typing import NamedTuple

import numpy as np


class Moments(NamedTuple):
    n: int
    mean: np.ndarray
    m2: np.ndarray


def moments(matrix: np.ndarray, shift: np.ndarray | float = 0.0) -> Moments:
    """One partition's summary of ``matrix − shift``: rows are samples, columns features."""
    centred = matrix - shift
    mean = centred.mean(axis=0) if len(centred) else np.zeros(centred.shape[1])
    return Moments(len(centred), mean, ((centred - mean) ** 2).sum(axis=0))


def merge(a: Moments, b: Moments) -> Moments:
    n = a.n + b.n
    if n == 0:
        return a
    delta = b.mean - a.mean
    return Moments(n, a.mean + delta * (b.n / n), a.m2 + b.m2 + delta**2 * (a.n * b.n / n))


def mean_std(
    parts: Iterable[Moments], shift: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The columns' mean and population standard deviation, from summaries about ``shift``."""
    total = reduce(merge, parts)
    return shift + total.mean, np.sqrt(total.m2 / max(total.n, 1))
