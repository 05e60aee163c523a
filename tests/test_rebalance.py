"""Rebalancing strategies: counts follow the ratio's arithmetic, weights n/(K·n_c)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from logreg import preprocess, schema
from logreg.errors import UserError
from logreg.rebalance import STRATEGIES, rebalance, report


def imbalanced(counts: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """Standardised-looking features and a ``target`` column with the given class sizes."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[label] * n for label, n in counts.items()])
    frame = pd.DataFrame(rng.standard_normal((len(labels), 3)), columns=["a", "b", "c"])
    frame["target"] = labels
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def sizes(frame: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in frame["target"].value_counts().sort_index().items()}


def rows(frame: pd.DataFrame) -> set[tuple]:
    return set(map(tuple, frame[["a", "b", "c", "target"]].itertuples(index=False)))


@pytest.mark.parametrize(
    ("strategy", "ratio", "expected"),
    [
        ("undersample", 1.0, {"maj": 10, "min": 10}),
        ("undersample", 0.5, {"maj": 20, "min": 10}),  # 10 / 0.5
        ("undersample", 0.3, {"maj": 33, "min": 10}),  # floor(10 / 0.3)
        ("oversample", 1.0, {"maj": 100, "min": 100}),
        ("oversample", 0.5, {"maj": 100, "min": 50}),  # 0.5 · 100
        ("oversample", 0.3, {"maj": 100, "min": 30}),  # 0.3 · 100 = 30.000000000000004 in floats
        ("smote", 0.25, {"maj": 100, "min": 25}),
        ("oversample", 0.05, {"maj": 100, "min": 10}),  # already above the ratio: untouched
        ("none", 1.0, {"maj": 100, "min": 10}),
        ("class_weight", 1.0, {"maj": 100, "min": 10}),
    ],
)
def test_class_counts_follow_the_ratio(strategy, ratio, expected):
    out = rebalance(imbalanced({"maj": 100, "min": 10}), strategy, ratio, k_neighbors=5, seed=0)
    assert sizes(out) == expected
    assert list(out.columns) == ["a", "b", "c", "target", "sample_weight"]


def test_multiclass_uses_the_same_rule_per_class():
    frame = imbalanced({"a": 60, "b": 20, "c": 5})
    over = rebalance(frame, "oversample", ratio=0.5, seed=0)
    assert sizes(over) == {"a": 60, "b": 30, "c": 30}  # each at least 0.5 · 60
    under = rebalance(frame, "undersample", ratio=0.5, seed=0)
    assert sizes(under) == {"a": 10, "b": 10, "c": 5}  # each at most 5 / 0.5
    smote = rebalance(frame, "smote", ratio=1.0, k_neighbors=3, seed=0)
    assert sizes(smote) == {"a": 60, "b": 60, "c": 60}


def test_weights_are_ones_except_class_weight():
    frame = imbalanced({"maj": 100, "min": 10})
    for strategy in ("none", "undersample", "oversample", "smote"):
        out = rebalance(frame, strategy, ratio=0.5, seed=0)
        assert (out["sample_weight"] == 1.0).all(), strategy
    out = rebalance(frame, "class_weight")
    n, k = 110, 2
    expected = frame["target"].map({"maj": n / (k * 100), "min": n / (k * 10)})
    np.testing.assert_allclose(out["sample_weight"], expected)
    pd.testing.assert_frame_equal(out.drop(columns="sample_weight"), frame)
    # every class carries the same total weight, n / K
    np.testing.assert_allclose(out.groupby("target")["sample_weight"].sum(), n / k)


def test_samplers_reuse_or_interpolate_the_original_rows():
    frame = imbalanced({"maj": 100, "min": 10})
    original = rows(frame)
    assert rows(rebalance(frame, "undersample", seed=0)) <= original
    over = rebalance(frame, "oversample", seed=0)
    assert rows(over) == original  # every row kept, copies only of existing rows
    smote = rebalance(frame, "smote", seed=0)
    assert original <= rows(smote)
    new = smote.loc[~smote[["a", "b", "c", "target"]].apply(tuple, axis=1).isin(original)]
    minority = frame.loc[frame["target"] == "min", ["a", "b", "c"]]
    assert (new["target"] == "min").all() and len(new) == 90
    # SMOTE interpolates between minority rows: new points stay inside their bounding box
    values = new[["a", "b", "c"]]
    assert ((values >= minority.min() - 1e-12) & (values <= minority.max() + 1e-12)).all().all()


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_seed_same_output(strategy):
    frame = imbalanced({"maj": 100, "min": 10})
    first = rebalance(frame, strategy, ratio=0.5, seed=3)
    pd.testing.assert_frame_equal(first, rebalance(frame, strategy, ratio=0.5, seed=3))


def test_different_seed_draws_different_rows():
    frame = imbalanced({"maj": 100, "min": 10})
    a = rebalance(frame, "undersample", seed=0)
    b = rebalance(frame, "undersample", seed=1)
    assert rows(a) != rows(b)


def test_smote_clips_k_neighbors_and_rejects_a_single_row_class():
    frame = imbalanced({"maj": 50, "min": 3})
    with pytest.warns(UserWarning, match=r"k_neighbors=5 clipped to 2: class 'min' has 3 rows"):
        out = rebalance(frame, "smote", ratio=1.0, k_neighbors=5, seed=0)
    assert sizes(out) == {"maj": 50, "min": 50}
    with pytest.raises(UserError, match=r"smote: class 'min' has 1 row.*at least 2"):
        rebalance(imbalanced({"maj": 50, "min": 1}), "smote")


def test_bad_options_name_the_key():
    # The options are checked once, at the edge, against the schema's rules.
    def check(strategy, ratio=1.0, k_neighbors=5):
        options = {"strategy": strategy, "ratio": ratio, "k_neighbors": k_neighbors, "seed": 0}
        schema.check_section("rebalance", options)

    with pytest.raises(UserError, match=r"rebalance\.strategy: got 'adasyn'; allowed: .*'smote'"):
        check("adasyn")
    for ratio in (0, 1.5, -1, "half"):
        with pytest.raises(UserError, match=r"rebalance\.ratio"):
            check("oversample", ratio=ratio)
    with pytest.raises(UserError, match=r"rebalance\.k_neighbors"):
        check("smote", k_neighbors=0)
    frame = imbalanced({"maj": 20, "min": 5})
    with pytest.raises(UserError, match=r"already has a 'sample_weight'"):
        rebalance(rebalance(frame, "none"), "none")


def test_report_counts_before_and_after():
    frame = imbalanced({"maj": 100, "min": 10})
    out = rebalance(frame, "oversample", ratio=0.5, seed=0)
    summary = report(frame, out, "oversample", 0.5)
    assert summary["before"] == {"rows": 110, "classes": {"maj": 100, "min": 10}}
    assert summary["after"]["classes"] == {"maj": 100, "min": math.ceil(0.5 * 100)}
    assert summary["after"]["weight"] == {"maj": 100.0, "min": 50.0}
    assert summary["strategy"] == "oversample"


def prepared_with_a_category(seed: int = 0) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A prepared (standardised, one-hot) train split whose minority class mixes colours."""
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame(
        {
            "size": rng.normal(10.0, 3.0, 120),
            "colour": rng.choice(["blue", "green", "red"], 120),
            "target": ["min"] * 12 + ["maj"] * 108,
        }
    )
    prep = preprocess.fit(raw)
    return preprocess.transform(prep, raw), prep.one_hot_groups()


def test_smote_gives_synthetic_rows_a_category_not_a_blend_of_indicators():
    frame, groups = prepared_with_a_category()
    assert groups == {"colour": ["colour=green", "colour=red"]}
    indicators = frame[groups["colour"]]
    levels = {c: {indicators[c].min(), indicators[c].max()} for c in groups["colour"]}

    blended = rebalance(frame, "smote", seed=0)  # without the groups: plain SMOTE
    assert (
        not blended[groups["colour"]]
        .isin(levels["colour=green"] | levels["colour=red"])
        .all(axis=None)
    )

    out = rebalance(frame, "smote", seed=0, one_hot_groups=groups)
    assert sizes(out) == {"maj": 108, "min": 108}
    assert list(out.columns) == [*frame.columns, "sample_weight"]
    for column, values in levels.items():
        assert set(out[column]) <= values  # every indicator is the standardised 0 or 1
    active = out[groups["colour"]].to_numpy() == [max(levels[c]) for c in groups["colour"]]
    assert (active.sum(axis=1) <= 1).all()  # at most one colour per row, none = blue
    minority = frame.loc[frame["target"] == "min", "size"]
    new_sizes = out.loc[len(frame) :, "size"]
    assert new_sizes.between(minority.min() - 1e-12, minority.max() + 1e-12).all()
    # The categories of the new rows come from the minority rows' own colours.
    seen = {tuple(row) for row in frame.loc[frame["target"] == "min", groups["colour"]].to_numpy()}
    assert {tuple(row) for row in out.loc[len(frame) :, groups["colour"]].to_numpy()} <= seen


def test_one_hot_groups_must_name_columns_of_the_split():
    frame, groups = prepared_with_a_category()
    with pytest.raises(UserError, match=r"lacks the one-hot column\(s\) \['colour=red'\]"):
        rebalance(frame.drop(columns="colour=red"), "smote", one_hot_groups=groups)
