"""Exact order statistics of values spread over partitions, in a few passes of small counts.

The k-th smallest of n values needs no sort of all of them. Map each value to a 64-bit
key whose unsigned order is the values' order (:func:`sortable_keys`), then find the key
digit by digit, 12 bits at a time, as a radix sort would: each pass, every partition
counts its keys per next digit among those that match the digits found so far
(:func:`digit_counts`); the summed counts say which digit holds the k-th key, and its
rank there. Once the keys left are few (≤ :data:`FEW`), one last pass returns them
(:func:`matching_keys`) and the driver picks the k-th. Each pass returns at most
groups × slots × 4,096 counts, and there are at most six: 64 bits / 12, fewer in
practice, since a digit usually leaves few keys.

Groups are independent problems solved together (a column's median, a class's cut);
slots are the ranks wanted in a group (the two middle values of an even count). The
driver gives :func:`select` a ``gather`` that applies a per-partition function to every
partition and returns the list of results: a loop in memory, a map on Dask workers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

DIGIT = 12
FEW = 65_536  # keys left in a (group, slot) that the last pass may return whole

Gather = Callable[[Callable[[np.ndarray, np.ndarray], Any]], list[Any]]


def sortable_keys(values: np.ndarray) -> np.ndarray:
    """float64 → uint64 with the same order (−0.0 before +0.0; no NaN)."""
    bits = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    negative = (bits >> np.uint64(63)).astype(bool)
    return np.where(negative, ~bits, bits | np.uint64(1 << 63))


def from_keys(keys: np.ndarray) -> np.ndarray:
    """The inverse of :func:`sortable_keys`."""
    keys = np.asarray(keys, dtype=np.uint64)
    was_positive = (keys >> np.uint64(63)).astype(bool)
    bits = np.where(was_positive, keys & np.uint64((1 << 63) - 1), ~keys)
    return bits.view(np.float64)


def _matches(keys: np.ndarray, prefix: np.uint64, depth: int) -> np.ndarray:
    if depth == 0:
        return np.ones(len(keys), dtype=bool)
    return (keys >> np.uint64(64 - depth)) == prefix


def digit_counts(
    keys: np.ndarray, group: np.ndarray, prefix: np.ndarray, depth: int, active: np.ndarray
) -> np.ndarray:
    """Per partition: (groups, slots, 2¹²) counts of the next digit of the matching keys."""
    counts = np.zeros((*prefix.shape, 1 << DIGIT), dtype=np.int64)
    width = min(DIGIT, 64 - depth)
    of_group = _grouper(keys, group)
    for g, s in zip(*np.nonzero(active), strict=True):
        mine = of_group(g)
        mine = mine[_matches(mine, prefix[g, s], depth)]
        digit = (mine >> np.uint64(64 - depth - width)) & np.uint64((1 << width) - 1)
        counts[g, s, : 1 << width] = np.bincount(digit.astype(np.int64), minlength=1 << width)
    return counts


def matching_keys(
    keys: np.ndarray,
    group: np.ndarray,
    prefix: np.ndarray,
    depth: np.ndarray,
    wanted: np.ndarray,
) -> list[np.ndarray]:
    """Per partition: for each wanted (group, slot), its keys that match the digits found."""
    of_group = _grouper(keys, group)
    return [
        (mine := of_group(g))[_matches(mine, prefix[g, s], int(depth[g, s]))]
        for g, s in zip(*np.nonzero(wanted), strict=True)
    ]


def _grouper(keys: np.ndarray, group: np.ndarray) -> Callable[[int], np.ndarray]:
    """``g -> keys[group == g]``; a slice when ``group`` is sorted (as :func:`column_keys`
    gives it), so many groups cost one pass over the keys, not one pass each."""
    if np.all(group[:-1] <= group[1:]):
        return lambda g: keys[slice(*np.searchsorted(group, [g, g + 1]))]
    return lambda g: keys[group == g]


def select(gather: Gather, ranks: np.ndarray) -> np.ndarray:
    """The keys of 1-based ``ranks`` (groups, slots) over every partition's (keys, group).

    A rank ≤ 0 selects nothing (its key is 0). Raises ValueError for a rank above its
    group's count.
    """
    ranks = np.asarray(ranks, dtype=np.int64).copy()
    prefix = np.zeros(ranks.shape, dtype=np.uint64)
    depth = np.zeros(ranks.shape, dtype=np.int64)
    left = np.full(ranks.shape, -1, dtype=np.int64)  # keys matching the prefix, once known
    active = ranks > 0
    while True:
        refine = active & ((left < 0) | (left > FEW)) & (depth < 64)
        if not refine.any():
            break
        level = int(depth[refine].max())
        assert (depth[refine] == level).all()  # all refine together: one digit per pass
        count = partial(digit_counts, prefix=prefix.copy(), depth=level, active=refine)
        counts = sum(gather(count))
        width = min(DIGIT, 64 - level)
        for g, s in zip(*np.nonzero(refine), strict=True):
            cumulative = counts[g, s].cumsum()
            if ranks[g, s] > cumulative[-1]:
                raise ValueError(
                    f"rank {ranks[g, s]} of group {g} exceeds its {cumulative[-1]} keys"
                )
            digit = int(np.searchsorted(cumulative, ranks[g, s]))
            ranks[g, s] -= cumulative[digit - 1] if digit > 0 else 0
            left[g, s] = counts[g, s, digit]
            prefix[g, s] = (prefix[g, s] << np.uint64(width)) | np.uint64(digit)
            depth[g, s] = level + width
    # All 64 bits found: the key is its prefix (however many equal keys share it).
    result = np.where(active & (depth == 64), prefix, np.uint64(0))
    collect = active & (depth < 64)
    if collect.any():
        found = gather(partial(matching_keys, prefix=prefix, depth=depth, wanted=collect))
        for i, (g, s) in enumerate(zip(*np.nonzero(collect), strict=True)):
            candidates = np.sort(np.concatenate([part[i] for part in found]))
            result[g, s] = candidates[ranks[g, s] - 1]
    return result


def column_keys(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A partition's numeric columns as (keys, column): every value that is not NaN,
    column after column (so ``column`` is sorted)."""
    values = matrix.T[~np.isnan(matrix.T)]  # column-major order
    counts = (~np.isnan(matrix)).sum(axis=0)
    return sortable_keys(values), np.repeat(np.arange(matrix.shape[1]), counts)


def medians(gather: Gather, n_columns: int) -> np.ndarray:
    """Each column's exact median (the mean of the two middle values when the count is
    even, as pandas and NumPy take it), NaN for a column with no values; ``gather``
    visits the partitions' :func:`column_keys`."""
    counts = sum(gather(partial(_column_counts, n_columns=n_columns)))
    middle = np.stack([(counts + 1) // 2, counts // 2 + 1], axis=1) * (counts > 0)[:, None]
    values = from_keys(select(gather, middle))
    return np.where(counts > 0, values.mean(axis=1), np.nan)


def _column_counts(keys: np.ndarray, column: np.ndarray, n_columns: int) -> np.ndarray:
    return np.bincount(column, minlength=n_columns)
