"""Under- and over-sampling by hash rank: exact class sizes, whatever the partitioning.

The class sizes to reach come from the global class counts, by the same rules as on one
machine (:func:`logreg.rebalance.under_targets`, :func:`~logreg.rebalance.over_targets`).
Which rows are kept, or copied once more, is decided by each row's seeded content hash
(:func:`logreg.hash_split.row_hashes`, keyed by ``rebalance.seed``):

- undersampling keeps, in each class c, the t_c rows of smallest hash;
- oversampling copies every row of class c ⌊t_c/n_c⌋ times, and the r_c = t_c mod n_c
  rows of smallest hash once more.

The cut in each class is the t_c-th (or r_c-th) smallest hash, found over the partitions
by :func:`logreg.order_stats.select`; then every partition resamples its own rows. The
result is exact (t_c rows per class, up to duplicated rows at a cut), seeded, and the
same for any partitioning of the same rows: a random sample, as the hash is random.
"""

from __future__ import annotations

import numpy as np

from logreg.order_stats import Gather, select


def cuts(gather: Gather, ranks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the hash at rank ``ranks[c]`` (1-based; none below it when 0)."""
    found = select(gather, np.asarray(ranks, dtype=np.int64)[:, None])[:, 0]
    return np.where(np.asarray(ranks) > 0, found, np.uint64(0)), np.asarray(ranks) > 0


def kept(hashes: np.ndarray, klass: np.ndarray, cut: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Rows at or below their class's cut (a bool mask)."""
    value, present = cut
    return present[klass] & (hashes <= value[klass])


def undersample_cut(
    gather: Gather, sizes: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The cut for keeping ``targets[c]`` of ``sizes[c]`` rows: apply it with :func:`kept`."""
    return cuts(gather, np.minimum(targets, sizes))


def oversample_copies(
    hashes: np.ndarray,
    klass: np.ndarray,
    sizes: np.ndarray,
    targets: np.ndarray,
    extra: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """How many times each row appears: ⌊t_c/n_c⌋, plus one for the rows below ``extra``."""
    whole = np.asarray(targets) // np.maximum(sizes, 1)
    return whole[klass] + kept(hashes, klass, extra)


def extra_copies_cut(
    gather: Gather, sizes: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The cut below which a row gets one copy more: r_c = t_c mod n_c rows per class."""
    return cuts(gather, np.asarray(targets) % np.maximum(sizes, 1))
