"""A stratified train/val/test split that does not depend on how the rows are partitioned.

Each row gets a seeded 64-bit hash of its content (:func:`row_hashes`). Within each class
the rows are ranked by that hash: the lowest round(test_size·n_c) go to test, the next
round(val_size·n_c) to val, the rest to train. So the split is a function of the rows
alone: the same whichever files, partitions or order they come in, and a duplicated row
lands in the same split as its twin, so no row is both trained on and tested on.

Exactness. Every class gets exactly its rounded share in each split, up to duplicates:
rows with equal content share a hash, and if they straddle a cut they all go below it.
(A 64-bit hash makes two different rows collide with probability ~n²/2⁶⁵: 3e-5 at 10⁹.)

Over partitions the ranks are found in two passes that return only small counts:

1. :func:`hash_histogram`: per class, how many hashes fall in each of 2¹⁶ bins of their
   top 16 bits; summed over partitions, it gives the class sizes and the bin that holds
   each cut's k-th smallest hash (:func:`cut_bins`);
2. :func:`hashes_in_bins`: the hashes in just those bins (about n_c/65,536 per cut);
   their k-th smallest is the cut (:func:`cut_values`).

Then :func:`assign` labels each row of a partition on its own. One block in memory goes
through the same functions, so both engines split identically. Hash the rows after
their columns have their final dtypes: 3 and 3.0 hash differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

BITS = 16  # histogram bins: the top bits of a hash
SPLITS = ("test", "val", "train")  # in hash order within each class


class Cuts(NamedTuple):
    """Per class (rows) and cut (columns: end of test, end of val): the k-th smallest hash."""

    value: np.ndarray  # uint64 (classes, 2): rows with hash ≤ value are below the cut
    empty: np.ndarray  # bool (classes, 2): k = 0, nothing below the cut


def row_hashes(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A uint64 per row from its values (not its index), keyed by the seed."""
    key = f"logreg{seed % 10**10:010d}"  # pandas wants a 16-character key
    return pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy(np.uint64)


def class_index(labels: Sequence, classes: Sequence) -> np.ndarray:
    """Each row's position in ``classes`` (all labels must be in it)."""
    return pd.Index(classes).get_indexer(pd.Index(labels))


def hash_histogram(hashes: np.ndarray, klass: np.ndarray, n_classes: int) -> np.ndarray:
    """Pass 1, per partition: (classes, 2¹⁶) counts of hashes per top-16-bit bin."""
    top = (hashes >> np.uint64(64 - BITS)).astype(np.int64)
    flat = klass.astype(np.int64) * 2**BITS + top
    return np.bincount(flat, minlength=n_classes * 2**BITS).reshape(n_classes, 2**BITS)


def split_sizes(class_sizes: np.ndarray, val_size: float, test_size: float) -> np.ndarray:
    """(classes, 2): rows below each cut: k_test = round(test·n_c), then + round(val·n_c).

    Rounded half to even (``np.rint``)."""
    n_test = np.rint(test_size * class_sizes).astype(np.int64)
    n_val = np.rint(val_size * class_sizes).astype(np.int64)
    return np.stack([n_test, n_test + n_val], axis=1)


def cut_bins(histogram: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each class and cut: the bin holding the k-th smallest hash, and its rank in it."""
    cumulative = histogram.cumsum(axis=1)
    bins = np.stack([np.searchsorted(cumulative[c], np.maximum(ks[c], 1)) for c in range(len(ks))])
    below = np.where(bins > 0, np.take_along_axis(cumulative, np.maximum(bins - 1, 0), 1), 0)
    return bins, ks - below  # the rank is 1-based; ≤ 0 where k = 0


def hashes_in_bins(hashes: np.ndarray, klass: np.ndarray, bins: np.ndarray) -> list[np.ndarray]:
    """Pass 2, per partition: for each (class, cut), the hashes of that class in that bin."""
    top = (hashes >> np.uint64(64 - BITS)).astype(np.int64)
    return [
        hashes[(klass == c) & (top == bins[c, j])]
        for c in range(bins.shape[0])
        for j in range(bins.shape[1])
    ]


def cut_values(found: list[list[np.ndarray]], bins: np.ndarray, ranks: np.ndarray) -> Cuts:
    """The k-th smallest hash per (class, cut), from every partition's :func:`hashes_in_bins`."""
    value = np.zeros(bins.shape, dtype=np.uint64)
    for i, (c, j) in enumerate(np.ndindex(bins.shape)):
        if ranks[c, j] > 0:
            candidates = np.sort(np.concatenate([part[i] for part in found]))
            value[c, j] = candidates[ranks[c, j] - 1]
    return Cuts(value, ranks <= 0)


def assign(hashes: np.ndarray, klass: np.ndarray, cuts: Cuts) -> np.ndarray:
    """Each row's split: 0 test, 1 val, 2 train (indices into :data:`SPLITS`)."""
    below = (hashes[:, None] <= cuts.value[klass]) & ~cuts.empty[klass]
    return np.where(below[:, 0], 0, np.where(below[:, 1], 1, 2))


def split_in_memory(
    hashes: np.ndarray, klass: np.ndarray, n_classes: int, val_size: float, test_size: float
) -> np.ndarray:
    """The whole procedure on one block: what a single machine runs."""
    histogram = hash_histogram(hashes, klass, n_classes)
    bins, ranks = cut_bins(histogram, split_sizes(histogram.sum(axis=1), val_size, test_size))
    cuts = cut_values([hashes_in_bins(hashes, klass, bins)], bins, ranks)
    return assign(hashes, klass, cuts)
