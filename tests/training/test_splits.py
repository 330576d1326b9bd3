"""Time splits: the latest cutoffs test, a gap of one horizon before each evaluation period."""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadradar.training.splits import rolling_origin, time_split

FIRST = pd.Timestamp("2026-01-05", tz="UTC")  # a Monday


def weekly(n: int) -> list[pd.Timestamp]:
    return [FIRST + pd.Timedelta(weeks=i) for i in range(n)]


def assert_gapped_and_ordered(split, cutoffs: list[pd.Timestamp], horizon_days: int) -> None:
    gap = pd.Timedelta(days=horizon_days)
    train, validation, test = split.train, split.validation, split.test
    assert train and validation and test
    assert all(c + gap <= validation[0] for c in train)
    assert all(c + gap <= test[0] for c in validation)
    assert train == sorted(train) and validation == sorted(validation) and test == sorted(test)
    assert max(train) < min(validation) and max(validation) < min(test)
    assert not (set(train) & set(validation) or set(validation) & set(test) or set(train) & set(test))
    assert test[-1] == max(cutoffs)
    assert set(train) | set(validation) | set(test) <= set(cutoffs)


def test_a_year_of_weekly_cutoffs_splits_with_a_horizon_gap_before_each_evaluation_period():
    cutoffs = weekly(52)
    split = time_split(cutoffs, horizon_days=30, validation_fraction=0.15, test_fraction=0.2)
    assert_gapped_and_ordered(split, cutoffs, 30)
    assert split.test == cutoffs[-11:]  # ceil(52 * 0.2) latest cutoffs
    assert len(split.validation) == 8  # ceil(52 * 0.15)
    # Exactly the cutoffs whose 30-day window would cross into the next period are dropped.
    assert len(cutoffs) - len(split.train) - len(split.validation) - len(split.test) == 2 * 4


def test_test_holds_the_latest_cutoffs_whatever_the_input_order():
    cutoffs = weekly(52)
    shuffled = cutoffs + cutoffs[:10]
    random.Random(0).shuffle(shuffled)
    assert time_split(shuffled, 30, 0.15, 0.2) == time_split(cutoffs, 30, 0.15, 0.2)


def test_too_few_cutoffs_are_refused_with_a_message_about_the_gaps():
    with pytest.raises(ValueError, match=r"too few.*30-day gaps"):
        time_split(weekly(8), horizon_days=30, validation_fraction=0.15, test_fraction=0.2)


def test_no_cutoffs_at_all_are_refused_with_a_value_error():
    with pytest.raises(ValueError, match="too few"):
        time_split([], horizon_days=30, validation_fraction=0.15, test_fraction=0.2)


def test_masks_mark_each_row_by_its_cutoff_period():
    cutoffs = weekly(52)
    split = time_split(cutoffs, 30, 0.15, 0.2)
    rows = pd.Series([*cutoffs, cutoffs[-1]])
    masks = split.masks(rows)
    assert masks["test"].sum() == len(split.test) + 1
    assert masks["train"].sum() == len(split.train)
    assert not (masks["train"] & masks["test"]).any()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 80),
    horizon_days=st.integers(1, 120),
    validation_fraction=st.floats(0.01, 0.45),
    test_fraction=st.floats(0.01, 0.45),
)
def test_split_is_gapped_or_refused_exactly_when_the_history_is_too_short(
    n, horizon_days, validation_fraction, test_fraction
):
    cutoffs = weekly(n)
    n_test = max(1, math.ceil(n * test_fraction))
    n_val = max(1, math.ceil(n * validation_fraction))
    gap_weeks = math.ceil(horizon_days / 7)  # cutoffs lost to each gap, counting the period's first
    fits = n - n_test - n_val - 2 * gap_weeks + 2 >= 1
    if not fits:
        with pytest.raises(ValueError, match=f"{horizon_days}-day gaps"):
            time_split(cutoffs, horizon_days, validation_fraction, test_fraction)
        return
    split = time_split(cutoffs, horizon_days, validation_fraction, test_fraction)
    assert_gapped_and_ordered(split, cutoffs, horizon_days)
    assert split.test == cutoffs[-n_test:]
    assert len(split.validation) == n_val


def test_rolling_origin_fits_each_fold_only_on_cutoffs_a_horizon_before_it():
    cutoffs = weekly(13)
    folds = rolling_origin(cutoffs, horizon_days=30, folds=3, min_fit_cutoffs=2)
    assert len(folds) == 3
    gap = pd.Timedelta(days=30)
    for fold in folds:
        assert len(fold.fit) >= 2
        assert all(c + gap <= fold.predict[0] for c in fold.fit)
        assert [c for c in cutoffs if c + gap <= fold.predict[0]] == fold.fit  # every such cutoff, none other
    predicted = [c for fold in folds for c in fold.predict]
    assert predicted == sorted(predicted) and predicted[-1] == cutoffs[-1]
    assert predicted[0] == cutoffs[6]  # the first cutoff with two cutoffs 30 days (5 weeks) before it


def test_eight_weekly_cutoffs_are_enough_for_a_rolling_origin_but_not_for_a_time_split():
    with pytest.raises(ValueError):
        time_split(weekly(8), 30, 0.15, 0.2)
    assert rolling_origin(weekly(8), 30, folds=3, min_fit_cutoffs=2)
    assert not rolling_origin(weekly(6), 30, folds=3, min_fit_cutoffs=2)
