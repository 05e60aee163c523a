"""Means and standard deviations merged from partitions (logreg/moments.py) against NumPy."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from logreg.moments import mean_std, moments


def test_merged_partitions_give_numpys_mean_and_std():
    rng = np.random.default_rng(0)
    # A large offset, where Σx² − n·mean² would lose most of its digits.
    matrix = 1e8 + rng.normal(size=(10_000, 3)) * [1.0, 1e-3, 50.0]
    edges = [0, 1, 2, 4_000, 4_000, 10_000]  # partitions of 1 row, and an empty one
    shift = np.median(matrix[:100], axis=0)  # any value near the data, shared by all parts
    parts = [moments(matrix[a:b], shift) for a, b in itertools.pairwise(edges)]
    mean, std = mean_std(parts, shift)
    # The reference: exact rational arithmetic on the float data.
    for j in range(matrix.shape[1]):
        column = [Fraction(x) for x in matrix[:, j]]
        exact_mean = sum(column) / len(column)
        exact_std = math.sqrt(sum((x - exact_mean) ** 2 for x in column) / len(column))
        assert mean[j] == pytest.approx(float(exact_mean), rel=1e-15)
        assert std[j] == pytest.approx(exact_std, rel=1e-12)
    # Without the shift, the partial means' rounding shows in the narrow column.
    unshifted = mean_std([moments(matrix[a:b]) for a, b in itertools.pairwise(edges)])[1]
    assert abs(unshifted[1] / std[1] - 1) > 1e-9
