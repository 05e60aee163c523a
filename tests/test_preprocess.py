"""Preprocessing: every statistic comes from the train split, the JSON round-trips exactly."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from logreg import preprocess
from logreg.errors import UserError
from logreg.preprocess import Preprocessing


def mixed_frames():
    """A train and a val table with numbers, categories, gaps and a class column."""
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 40).round(1),
            "income": rng.lognormal(10, 1, 40),
            "color": rng.choice(["red", "green", "blue"], 40),
            "target": rng.choice(["no", "yes"], 40),
        }
    )
    train.loc[[3, 7], "age"] = np.nan
    train.loc[[5], "color"] = np.nan
    val = pd.DataFrame(
        {
            "age": [np.nan, 30.0, 50.0],
            "income": [1.0, 2.0, 3.0],
            "color": ["purple", None, "red"],  # purple never seen in train
            "target": ["no", "yes", "no"],
        }
    )
    return train, val


def test_scaler_statistics_are_the_train_splits_own():
    train, _ = mixed_frames()
    train = train.dropna(subset=["age"])
    prep = preprocess.fit(train[["age", "income", "target"]])
    stats = {f.name: (f.mean, f.std) for f in prep.features}
    for column in ("age", "income"):
        assert stats[column][0] == pytest.approx(train[column].mean(), rel=1e-12)
        assert stats[column][1] == pytest.approx(train[column].std(ddof=0), rel=1e-12)
    out = preprocess.transform(prep, train[["age", "income", "target"]])
    np.testing.assert_allclose(out[["age", "income"]].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out[["age", "income"]].std(ddof=0), 1.0, rtol=1e-12)
    assert out["target"].tolist() == train["target"].tolist()


def test_impute_fills_with_train_median_and_mode():
    train, val = mixed_frames()
    prep = preprocess.fit(train)
    median = train["age"].median()  # pandas skips the gaps
    filled = train["age"].fillna(median)
    out = preprocess.transform(prep, val)
    expected = (median - filled.mean()) / filled.std(ddof=0)
    assert out["age"].iloc[0] == pytest.approx(expected, rel=1e-12)
    mode = train["color"].mode().iloc[0]
    columns = {c.name: c for c in prep.columns}
    assert columns["color"].fill == mode
    assert columns["age"].fill == median


def test_one_hot_uses_train_categories_with_the_first_as_reference():
    train, val = mixed_frames()
    prep = preprocess.fit(train)
    categories = sorted(train["color"].dropna().unique())
    assert prep.feature_names == ["age", "income"] + [f"color={c}" for c in categories[1:]]
    out = preprocess.transform(prep, val)
    filled = train["color"].fillna(train["color"].mode().iloc[0])
    for category in categories[1:]:
        dummy = (filled == category).astype(float)
        zero = (0.0 - dummy.mean()) / dummy.std(ddof=0)
        one = (1.0 - dummy.mean()) / dummy.std(ddof=0)
        # purple (unseen) encodes as all zeros; the gap takes the train mode; red is red
        assert out[f"color={category}"].iloc[0] == pytest.approx(zero)
        expected_gap = one if category == train["color"].mode().iloc[0] else zero
        assert out[f"color={category}"].iloc[1] == pytest.approx(expected_gap)
        assert out[f"color={category}"].iloc[2] == pytest.approx(one if category == "red" else zero)


def test_drop_missing_removes_rows_with_gaps_everywhere():
    train, val = mixed_frames()
    prep = preprocess.fit(train, missing="drop")
    complete = train.dropna()
    out = preprocess.transform(prep, train)
    assert list(out.index) == list(complete.index)
    stats = {f.name: (f.mean, f.std) for f in prep.features}
    assert stats["age"][0] == pytest.approx(complete["age"].mean(), rel=1e-12)
    assert stats["age"][1] == pytest.approx(complete["age"].std(ddof=0), rel=1e-12)
    assert list(preprocess.transform(prep, val).index) == [2]


def test_constant_columns_are_dropped_with_a_warning_naming_them():
    train, _ = mixed_frames()
    train["flat"] = 7.0
    train["one_level"] = "same"
    with pytest.warns(UserWarning, match=r"\['flat', 'one_level'\]"):
        prep = preprocess.fit(train)
    assert "flat" not in prep.feature_names
    assert not any(name.startswith("one_level") for name in prep.feature_names)
    assert prep.dropped_constant == ["flat", "one_level"]


def test_json_round_trip_gives_the_same_transform():
    train, val = mixed_frames()
    prep = preprocess.fit(train)
    text = prep.to_json()
    payload = json.loads(text)  # plain JSON: a dict of lists, strings and numbers
    assert payload["format"] == "logreg.preprocess/1"
    restored = Preprocessing.from_json(json.dumps(payload))
    assert restored == prep
    pd.testing.assert_frame_equal(
        preprocess.transform(restored, val), preprocess.transform(prep, val)
    )


def test_read_and_write_preprocessing(tmp_path):
    train, _ = mixed_frames()
    prep = preprocess.fit(train)
    path = tmp_path / "preprocess.json"
    preprocess.write_preprocessing(path, prep)
    assert preprocess.read_preprocessing(path) == prep
    with pytest.raises(UserError, match=r"missing\.json: file not found"):
        preprocess.read_preprocessing(tmp_path / "missing.json")


def test_numeric_text_is_parsed_as_numbers():
    frame = pd.DataFrame({"n": ["1.5", " 2", "3e0", None], "target": [0, 1, 0, 1]})
    prep = preprocess.fit(frame)
    assert prep.columns[0].kind == "numeric" and prep.columns[0].fill == 2.0


def test_a_mostly_numeric_column_is_reported_with_value_and_row():
    values = [str(v) for v in range(30)]
    values[17] = "?"
    frame = pd.DataFrame({"dose": values, "target": [0, 1] * 15})
    with pytest.raises(UserError, match=r"column 'dose' looks numeric .* '\?' at row 18 "):
        preprocess.check_columns(frame)


def test_a_mostly_text_column_is_categorical():
    frame = pd.DataFrame({"code": ["a", "b", "c", "1"] * 5, "target": [0, 1] * 10})
    assert preprocess.check_columns(frame) == {"code": "categorical"}


def test_unusable_columns_are_named():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "gap": [np.nan] * 3, "target": [0, 1, 0]})
    with pytest.raises(UserError, match=r"column 'gap': all values are missing"):
        preprocess.check_columns(frame)
    frame = pd.DataFrame({"a": [1.0, np.inf, 3.0], "target": [0, 1, 0]})
    with pytest.raises(UserError, match=r"column 'a': infinite value at row 2 "):
        preprocess.check_columns(frame)
    frame = pd.DataFrame({"when": pd.to_datetime(["2020-01-01"] * 3), "target": [0, 1, 0]})
    with pytest.raises(UserError, match=r"column 'when': unsupported type"):
        preprocess.check_columns(frame)


def test_train_only_gap_and_bad_options():
    train, val = mixed_frames()
    with pytest.raises(UserError, match=r"prepare\.missing: unknown value 'mean'"):
        preprocess.fit(train, missing="mean")
    prep = preprocess.fit(train)
    with pytest.raises(UserError, match=r"missing column\(s\) \['income'\]"):
        preprocess.transform(prep, val.drop(columns="income"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean fit warns about nothing
        preprocess.fit(train)


def test_drop_mode_keeps_targets_aligned_with_a_repeated_index():
    frame = pd.DataFrame(
        {"a": [1.0, np.nan, 3.0, 4.0], "target": ["x", "y", "z", "w"]}, index=[0, 0, 1, 1]
    )
    prep = preprocess.fit(frame, missing="drop")
    assert preprocess.transform(prep, frame)["target"].tolist() == ["x", "z", "w"]


def test_inverse_transform_recovers_the_input_rows():
    train, _ = mixed_frames()
    train["flat"] = 7.0
    complete = train.dropna()
    with pytest.warns(UserWarning, match="flat"):
        prep = preprocess.fit(train)
    features = preprocess.transform(prep, complete).drop(columns="target")
    raw = preprocess.inverse_transform(prep, features)
    assert list(raw.columns) == ["age", "income", "color", "flat"]
    np.testing.assert_allclose(raw["age"], complete["age"], rtol=1e-12)
    np.testing.assert_allclose(raw["income"], complete["income"], rtol=1e-12)
    assert raw["color"].tolist() == complete["color"].tolist()  # blue, the reference, too
    assert (raw["flat"] == 7.0).all()
    again = preprocess.transform(prep, raw)
    np.testing.assert_allclose(again.to_numpy(), features.to_numpy(), atol=1e-12)


def test_inverse_transform_names_a_missing_feature():
    train, _ = mixed_frames()
    prep = preprocess.fit(train)
    features = preprocess.transform(prep, train).drop(columns=["target", "income"])
    with pytest.raises(UserError, match=r"missing feature column\(s\) \['income'\]"):
        preprocess.inverse_transform(prep, features)


def test_declared_codes_are_one_hot_in_numeric_order_whatever_their_dtype():
    train = pd.DataFrame(
        {
            "kind": [10, 2, 2, 33, 10, 2, 33, 2],  # codes: 10 is not five times 2
            "size": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "target": list("abababab"),
        }
    )
    prep = preprocess.fit(train, categorical=["kind"])
    assert {c.name: c.kind for c in prep.columns} == {"kind": "categorical", "size": "numeric"}
    # The reference level is the smallest code, and 10 sorts after 2 (not as text).
    assert prep.feature_names == ["kind=10", "kind=33", "size"]
    assert prep.one_hot_groups() == {"kind": ["kind=10", "kind=33"]}
    # The same codes as floats (a column with a gap reads as float), as text, or as ints
    # encode alike; the gap takes the train mode (2) and an unseen code is the reference.
    expected = preprocess.transform(prep, pd.DataFrame({"kind": [33, 10, 2, 2], "size": 1.0}))
    for codes in ([33.0, 10.0, np.nan, 7.0], ["33", "10", None, "7"]):
        out = preprocess.transform(prep, pd.DataFrame({"kind": codes, "size": 1.0}))
        pd.testing.assert_frame_equal(out, expected)
    one_hot = expected[["kind=10", "kind=33"]].to_numpy()
    dummies = pd.get_dummies(train["kind"]).astype(float)[[10, 33]]
    standardised = (np.array([[0, 1], [1, 0], [0, 0], [0, 0]]) - dummies.mean().to_numpy()) / (
        dummies.std(ddof=0).to_numpy()
    )
    np.testing.assert_allclose(one_hot, standardised, rtol=1e-12)
    # Undeclared, the same column is a number.
    assert "kind" in preprocess.fit(train).feature_names


def test_declared_categorical_columns_must_be_features():
    train, _ = mixed_frames()
    with pytest.raises(UserError, match=r"data\.categorical: column\(s\) \['shape'\] not among"):
        preprocess.fit(train, categorical=["shape", "age"])


def test_a_column_with_very_many_categories_is_warned_about():
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(300)],  # an identifier, one per row
            "age": rng.normal(40, 10, 300),
            "target": rng.choice(["no", "yes"], 300),
        }
    )
    with pytest.warns(UserWarning, match=r"column 'customer_id' has 300 categories .* adds 299"):
        preprocess.fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a handful of categories: no warning
        preprocess.fit(train.assign(customer_id=train.customer_id.str[:3]))
