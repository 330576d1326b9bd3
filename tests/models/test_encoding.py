"""The online fast path (records → matrix) against the frame path, and the errors it names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadradar.models.encoding import FeatureEncoder, FeatureValueError, MissingFeaturesError

ENCODER = FeatureEncoder(["a", "b", "c"], ["c"]).fit(pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, 1.5], "c": ["x", "y"]}))
GOOD = {"a": 1, "b": None, "c": "x"}

value = st.one_of(
    st.none(), st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans()
)
record = st.fixed_dictionaries(
    {"a": value, "b": value, "c": st.one_of(st.none(), st.sampled_from(["x", "y", "unseen"]))}
)


@given(st.lists(record, max_size=30))
@settings(max_examples=60, deadline=None)
def test_records_give_the_same_matrix_as_a_frame(records):
    frame = pd.DataFrame(records, columns=["a", "b", "c"]).astype({"a": object, "b": object})
    expected = ENCODER.transform(frame.astype({"a": float, "b": float})) if records else np.empty((0, 3))
    np.testing.assert_array_equal(ENCODER.transform_records(records), expected)


def test_numbers_sent_as_text_and_booleans_are_read_as_numbers():
    X = ENCODER.transform_records([{"a": "2.5", "b": True, "c": "y"}])
    np.testing.assert_array_equal(X, [[2.5, 1.0, 1.0]])


@pytest.mark.parametrize(
    "bad, feature, reason",
    [
        ({"a": "abc", "b": 1, "c": "x"}, "a", "'abc' is not a number"),
        ({"a": 1, "b": float("inf"), "c": "x"}, "b", "not a finite number"),
        ({"a": float("nan"), "b": "oops", "c": "x"}, "a", "not a finite number"),
        ({"a": 10**400, "b": 1, "c": None}, "a", "is not a number"),
    ],
)
def test_the_first_bad_value_is_named_by_record_and_feature(bad, feature, reason):
    with pytest.raises(FeatureValueError, match=reason) as caught:
        ENCODER.transform_records([GOOD, GOOD, bad])
    assert caught.value.record == 2
    assert caught.value.feature == feature


def test_a_record_lacking_features_is_named():
    with pytest.raises(KeyError, match=r"record 1 lacks features \['b', 'c'\]") as caught:
        ENCODER.transform_records([GOOD, {"a": 1}])
    assert isinstance(caught.value, MissingFeaturesError)
    assert (caught.value.record, caught.value.missing) == (1, ["b", "c"])


def test_a_model_of_one_feature_reads_its_records_too():
    one = FeatureEncoder(["a"]).fit(pd.DataFrame({"a": [1.0]}))
    np.testing.assert_array_equal(one.transform_records([{"a": 2}, {"a": None}]), [[2.0], [np.nan]])
    with pytest.raises(MissingFeaturesError):
        one.transform_records([{"b": 1}])


def test_a_frame_of_every_column_kind_reads_as_each_column_alone():
    """NumPy numeric columns are taken as they are, the others (nullable, text) through `pd.to_numeric`: the
    matrix is what `pd.to_numeric` gives column by column."""
    frame = pd.DataFrame(
        {
            "f": [1.5, np.nan, -2.0],
            "i": np.array([3, 0, -1], np.int64),
            "u": np.array([1, 2, 3], np.uint8),
            "flag": [True, False, True],
            "nullable": pd.array([1, None, 4], dtype="Int64"),
            "text": ["2.5", "oops", None],
            "kind": ["x", "unseen", None],
            "f32": np.array([0.25, 1.0, np.nan], np.float32),
        }
    )
    names = ["text", "f", "kind", "i", "u", "flag", "nullable", "f32"]
    enc = FeatureEncoder(names, ["kind"]).fit(pd.DataFrame({n: frame[n] for n in names}).assign(kind=["x", "y", "y"]))
    expected = np.column_stack(
        [
            pd.to_numeric(frame[n], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if n != "kind"
            else [0.0, np.nan, np.nan]
            for n in names
        ]
    )
    np.testing.assert_array_equal(enc.transform(frame), expected)
