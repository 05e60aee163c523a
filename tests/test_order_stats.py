"""Exact order statistics over partitions (logreg/order_stats.py) against np.sort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from logreg import order_stats
from logreg.order_stats import column_keys, from_keys, medians, select, sortable_keys


def _gather_over(parts):
    return lambda per_partition: [per_partition(keys, group) for keys, group in parts]


def test_keys_sort_as_the_values_and_invert():
    values = np.array([-np.inf, -1e300, -2.5, -0.0, 0.0, 1e-320, 3.0, 7e200, np.inf])
    keys = sortable_keys(values)
    assert (np.diff(keys.astype(object)) > 0).all()  # strictly increasing, as unsigned ints
    np.testing.assert_array_equal(from_keys(keys).view(np.uint64), values.view(np.uint64))


@pytest.mark.parametrize("kind", ["normal", "one binade", "ties", "few"])
def test_the_kth_smallest_of_partitioned_groups_is_np_sorts(kind, monkeypatch):
    monkeypatch.setattr(order_stats, "FEW", 50)  # force several digit passes on small data
    rng = np.random.default_rng(0)
    n = 20_000
    values = {
        "normal": rng.normal(size=n) * 1e3,
        "one binade": 1.0 + rng.random(n),  # every value shares sign and exponent
        "ties": rng.integers(0, 3, size=n).astype(float),  # thousands of equal keys
        "few": rng.normal(size=n),
    }[kind]
    group = rng.integers(0, 3, size=n)
    if kind == "few":
        group[group == 2] = 1  # group 2 empty: its ranks must be 0
    keys = sortable_keys(values)
    parts = [(keys[a:b], group[a:b]) for a, b in [(0, 7), (7, 9_000), (9_000, n)]]
    sizes = np.bincount(group, minlength=3)
    ranks = np.stack([np.minimum([1, 2, 3], sizes), (sizes + 1) // 2, sizes], axis=1)
    found = from_keys(select(_gather_over(parts), ranks))
    for g in range(3):
        ordered = np.sort(values[group == g])
        for slot, rank in enumerate(ranks[g]):
            if rank > 0:
                assert found[g, slot] == ordered[rank - 1]


def test_a_rank_above_the_count_is_an_error():
    keys = sortable_keys(np.arange(5.0))
    with pytest.raises(ValueError, match="rank 6 of group 0 exceeds its 5 keys"):
        select(_gather_over([(keys, np.zeros(5, dtype=int))]), np.array([[6]]))


def test_medians_of_partitioned_columns_with_gaps_are_pandas(monkeypatch):
    monkeypatch.setattr(order_stats, "FEW", 30)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10, 2, size=5_001),  # heavy tail, odd count
            "age": rng.integers(18, 90, size=5_001).astype(float),  # ties
            "gaps": np.where(rng.random(5_001) < 0.5, np.nan, rng.normal(size=5_001)),
            "empty": np.full(5_001, np.nan),
        }
    )
    frame.loc[4_000:, "age"] = np.nan  # an even count of values left
    parts = [column_keys(frame.to_numpy()[a:b]) for a, b in [(0, 1), (1, 2_500), (2_500, 5_001)]]
    found = medians(_gather_over(parts), frame.shape[1])
    expected = frame.median().to_numpy()
    np.testing.assert_array_equal(found[:3], expected[:3])
    assert np.isnan(found[3]) and np.isnan(expected[3])
