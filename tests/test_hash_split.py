"""The partition-independent stratified split (logreg/hash_split.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logreg import order_stats
from logreg.hash_split import assign, class_index, find_cuts, row_hashes, split_in_memory

VAL, TEST = 0.2, 0.2


def _imbalanced(n=20_000, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    frame["region"] = rng.choice(["north", "south", "east"], size=n)
    frame["y"] = np.where(rng.random(n) < 0.06, "Yes", "No")  # 6 % positives, as Caravan
    return frame


def _partitioned_split(frame: pd.DataFrame, seed: int, cuts: list[int]) -> np.ndarray:
    """The passes over partitions, each seeing only its rows, as a Dask prepare would."""
    classes = sorted(frame["y"].unique())
    parts = np.split(np.arange(len(frame)), cuts)
    per_part = [
        (row_hashes(frame.iloc[p], seed), class_index(frame["y"].iloc[p], classes)) for p in parts
    ]
    gather = lambda per_partition: [per_partition(h, k) for h, k in per_part]  # noqa: E731
    found = find_cuts(gather, len(classes), VAL, TEST)
    return np.concatenate([assign(h, k, found) for h, k in per_part])


def test_each_class_gets_exactly_its_rounded_share():
    frame = _imbalanced()
    klass = class_index(frame["y"], ["No", "Yes"])
    split = split_in_memory(row_hashes(frame, 0), klass, 2, VAL, TEST)
    for c in (0, 1):
        n_c = int((klass == c).sum())
        counts = np.bincount(split[klass == c], minlength=3)
        expected_test, expected_val = round(TEST * n_c), round(VAL * n_c)
        assert counts.tolist() == [expected_test, expected_val, n_c - expected_test - expected_val]


def test_the_split_is_the_same_whatever_the_partitions_and_row_order(monkeypatch):
    monkeypatch.setattr(order_stats, "FEW", 10)  # several digit passes, as at scale
    frame = _imbalanced()
    klass = class_index(frame["y"], ["No", "Yes"])
    whole = split_in_memory(row_hashes(frame, 7), klass, 2, VAL, TEST)
    for cuts in ([1, 2, 9_000], [5_000, 10_000, 15_000, 19_999]):
        np.testing.assert_array_equal(_partitioned_split(frame, 7, cuts), whole)
    shuffled = np.random.default_rng(1).permutation(len(frame))
    again = split_in_memory(row_hashes(frame.iloc[shuffled], 7), klass[shuffled], 2, VAL, TEST)
    np.testing.assert_array_equal(again, whole[shuffled])


def test_the_seed_chooses_the_split():
    frame = _imbalanced(n=2_000)
    klass = class_index(frame["y"], ["No", "Yes"])
    first, second = (split_in_memory(row_hashes(frame, s), klass, 2, VAL, TEST) for s in (0, 1))
    assert (first != second).mean() > 0.3  # most rows move; the counts do not
    np.testing.assert_array_equal(np.bincount(first), np.bincount(second))


def test_a_duplicated_row_lands_with_its_twin():
    frame = _imbalanced(n=500)
    doubled = pd.concat([frame, frame.iloc[:100]], ignore_index=True)
    klass = class_index(doubled["y"], ["No", "Yes"])
    split = split_in_memory(row_hashes(doubled, 3), klass, 2, VAL, TEST)
    np.testing.assert_array_equal(split[:100], split[500:])


@pytest.mark.parametrize("n_rows", [1, 3, 11])
def test_tiny_classes(n_rows):
    frame = pd.DataFrame({"x": np.arange(n_rows, dtype=float), "y": ["a"] * n_rows})
    split = split_in_memory(row_hashes(frame, 0), np.zeros(n_rows, dtype=int), 1, VAL, TEST)
    k_test = round(TEST * n_rows)
    assert np.bincount(split, minlength=3).tolist() == [
        k_test, round(VAL * n_rows), n_rows - k_test - round(VAL * n_rows),
    ]  # fmt: skip


def test_the_seed_chooses_the_split_of_numeric_rows_too():
    # pandas keys only text columns' hashes: an all-number table must still move with the seed
    frame = _imbalanced(n=2_000).drop(columns="region")
    klass = class_index(frame["y"], ["No", "Yes"])
    numbers = frame.assign(y=klass)
    first, second = (split_in_memory(row_hashes(numbers, s), klass, 2, VAL, TEST) for s in (0, 1))
    assert (first != second).mean() > 0.3
