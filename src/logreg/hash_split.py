"""A stratified train/val/test split that does not depend on how the rows are partitioned.

Each row gets a seeded 64-bit hash of its content (:func:`row_hashes`). Within each class
the rows are ranked by that hash: the lowest round(test_size·n_c) go to test, the next
round(val_size·n_c) to val, the rest to train. So the split is a function of the rows
alone: the same whichever files, partitions or order they come in, and a duplicated row
lands in the same split as its twin, so no row is both trained on and tested on.

Exactness. Every class gets exactly its rounded share in each split, up to duplicates:
rows with equal content share a hash, and if they straddle a cut they all go below it.
(A 64-bit hash makes two different rows collide with probability ~n²/2⁶⁵: 3e-5 at 10⁹.)

Over partitions, the class sizes are one pass of counts, and each cut (the k-th smallest
hash of a class) is found by :func:`logreg.order_stats.select` in a few more passes of
small counts; then :func:`assign` labels each partition's rows on its own. One block in
memory goes through the same functions (:func:`split_in_memory`), so both engines split
identically. Hash the rows after their columns have their final dtypes: 3 and 3.0 hash
differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import numpy as np
import pandas as pd

from logreg.order_stats import Gather, select

SPLITS = ("test", "val", "train")  # in hash order within each class


class Cuts(NamedTuple):
    """Per class (rows) and cut (columns: end of test, end of val): the k-th smallest hash."""

    value: np.ndarray  # uint64 (classes, 2): rows with hash ≤ value are below the cut
    empty: np.ndarray  # bool (classes, 2): k = 0, nothing below the cut


def row_hashes(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """A uint64 per row from its values (not its index), keyed by the seed.

    pandas keys only the hashes of text columns (``hash_key``); a numeric column hashes
    the same whatever the key. So the seed is also mixed into every row's hash, through
    SplitMix64's finaliser (a bijection of 64-bit words): equal rows keep equal hashes,
    and another seed orders the rows anew.
    """
    key = f"logreg{seed % 10**10:010d}"  # pandas wants a 16-character key
    hashes = pd.util.hash_pandas_object(frame, index=False, hash_key=key).to_numpy(np.uint64)
    return _mix(hashes ^ _mix(np.array([seed], dtype=np.uint64))[0])


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: every input bit moves about half the output bits."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def class_index(labels: Sequence, classes: Sequence) -> np.ndarray:
    """Each row's position in ``classes`` (all labels must be in it)."""
    return pd.Index(classes).get_indexer(pd.Index(labels))


def split_sizes(class_sizes: np.ndarray, val_size: float, test_size: float) -> np.ndarray:
    """(classes, 2): rows below each cut: k_test = round(test·n_c), then + round(val·n_c).

    Rounded half to even (``np.rint``)."""
    n_test = np.rint(test_size * class_sizes).astype(np.int64)
    n_val = np.rint(val_size * class_sizes).astype(np.int64)
    return np.stack([n_test, n_test + n_val], axis=1)


def too_small_hint(val_size: float, test_size: float) -> str:
    """What to do when a split would miss a class (the end of that error line)."""
    return (
        f"add rows of that class or change prepare.val_size={val_size} / "
        f"prepare.test_size={test_size}"
    )


def find_cuts(gather: Gather, n_classes: int, val_size: float, test_size: float) -> Cuts:
    """The cuts of every class, over the partitions that ``gather`` visits (hashes, class)."""
    sizes = sum(gather(partial(_class_sizes, n_classes=n_classes)))
    ranks = split_sizes(sizes, val_size, test_size)
    return Cuts(select(gather, ranks), ranks <= 0)


def _class_sizes(hashes: np.ndarray, klass: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(klass, minlength=n_classes)


def assign(hashes: np.ndarray, klass: np.ndarray, cuts: Cuts) -> np.ndarray:
    """Each row's split: 0 test, 1 val, 2 train (indices into :data:`SPLITS`)."""
    below = (hashes[:, None] <= cuts.value[klass]) & ~cuts.empty[klass]
    return np.where(below[:, 0], 0, np.where(below[:, 1], 1, 2))


def split_in_memory(
    hashes: np.ndarray, klass: np.ndarray, n_classes: int, val_size: float, test_size: float
) -> np.ndarray:
    """The whole procedure on one block: what a single machine runs."""
    cuts = find_cuts(lambda per_part: [per_part(hashes, klass)], n_classes, val_size, test_size)
    return assign(hashes, klass, cuts)
