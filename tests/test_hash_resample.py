"""Under- and over-sampling by hash rank (logreg/hash_resample.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from logreg import order_stats
from logreg.hash_resample import extra_copies_cut, kept, oversample_copies, undersample_cut
from logreg.hash_split import class_index, row_hashes
from logreg.rebalance import over_targets, under_targets


def _data(n=6_000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 3)), columns=list("abc"))
    frame["y"] = rng.choice(["No", "Yes", "Maybe"], size=n, p=[0.85, 0.1, 0.05])
    classes = sorted(frame["y"].unique())
    return frame, classes, class_index(frame["y"], classes)


def _parts(hashes, klass, edges):
    return [(hashes[a:b], klass[a:b]) for a, b in itertools.pairwise(edges)]


def _gather(parts):
    return lambda per_partition: [per_partition(h, k) for h, k in parts]


def test_undersampling_keeps_exactly_the_targets_for_any_partitioning(monkeypatch):
    monkeypatch.setattr(order_stats, "FEW", 20)
    frame, classes, klass = _data()
    hashes = row_hashes(frame, seed=5)
    sizes = np.bincount(klass)
    counts = dict(zip(classes, sizes.tolist(), strict=True))
    targets = np.array([under_targets(counts, 0.5)[c] for c in classes])
    masks = []
    for edges in ([0, 6_000], [0, 1, 2_000, 2_001, 6_000]):
        parts = _parts(hashes, klass, edges)
        cut = undersample_cut(_gather(parts), sizes, targets)
        masks.append(np.concatenate([kept(h, k, cut) for h, k in parts]))
    np.testing.assert_array_equal(masks[0], masks[1])
    np.testing.assert_array_equal(np.bincount(klass[masks[0]], minlength=3), targets)
    # The kept rows of a class are its smallest hashes: a uniform random sample.
    for c in range(3):
        mine = np.sort(hashes[klass == c])
        assert hashes[(klass == c) & masks[0]].max() == mine[targets[c] - 1]


def test_oversampling_reaches_exactly_the_targets():
    frame, classes, klass = _data()
    hashes = row_hashes(frame, seed=5)
    sizes = np.bincount(klass)
    counts = dict(zip(classes, sizes.tolist(), strict=True))
    targets = np.array([over_targets(counts, 0.7)[c] for c in classes])
    parts = _parts(hashes, klass, [0, 3_000, 6_000])
    extra = extra_copies_cut(_gather(parts), sizes, targets)
    copies = np.concatenate([oversample_copies(h, k, sizes, targets, extra) for h, k in parts])
    np.testing.assert_array_equal(np.bincount(klass, weights=copies, minlength=3), targets)
    assert copies.min() >= 1  # every row stays; the grown classes gain copies
