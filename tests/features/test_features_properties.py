"""Invariances every feature must have: input order, re-sent events, and other tenants' data."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from tests.support.parity import assert_same_features
from tests.support.strategies import CUTOFF, after, before, event_rows, events_table, stage_rows, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
ONLINE = OnlineFeatures(SETTINGS, REGISTRY)
PROFILE = hsettings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
any_time = st.one_of(before, after)


def features(events: pa.Table, stages: pa.Table):
    return ONLINE.compute(events, stages, [CUTOFF])


@PROFILE
@given(
    rows=st.lists(event_rows(any_time), min_size=1, max_size=30),
    stage_list=st.lists(stage_rows(any_time), max_size=8),
    data=st.data(),
)
def test_shuffled_input_gives_the_same_features(rows, stage_list, data):
    ev, sg = events_table(rows), stages_table(stage_list)
    perm = data.draw(st.permutations(list(range(ev.num_rows))))
    sperm = data.draw(st.permutations(list(range(sg.num_rows))))
    assert_same_features(
        features(ev, sg), features(ev.take(pa.array(perm, pa.int64())), sg.take(pa.array(sperm, pa.int64()))), REGISTRY
    )


@PROFILE
@given(
    rows=st.lists(event_rows(any_time), min_size=1, max_size=30),
    stage_list=st.lists(stage_rows(any_time), max_size=8),
    data=st.data(),
)
def test_re_sent_events_change_nothing(rows, stage_list, data):
    ev, sg = events_table(rows), stages_table(stage_list)
    again = data.draw(st.lists(st.integers(0, ev.num_rows - 1), min_size=1, max_size=10))
    resent = pa.concat_tables([ev, ev.take(pa.array(again, pa.int64()))])
    assert_same_features(features(ev, sg), features(resent, stages_table(stage_list + stage_list[:2])), REGISTRY)


@PROFILE
@given(
    rows=st.lists(event_rows(any_time), min_size=1, max_size=25),
    stage_list=st.lists(stage_rows(any_time), max_size=6),
    other=st.lists(event_rows(any_time), min_size=1, max_size=25),
    other_stages=st.lists(stage_rows(any_time), max_size=6),
)
def test_another_tenants_data_never_changes_a_tenants_features(rows, stage_list, other, other_stages):
    mine = [{**r, "tenant_id": "ta"} for r in rows]
    mine_stages = [{**r, "tenant_id": "ta"} for r in stage_list]
    theirs = [{**r, "tenant_id": "tb"} for r in other]  # same lead, sales and item ids, another company
    theirs_stages = [{**r, "tenant_id": "tb"} for r in other_stages]
    alone = features(events_table(mine, "a"), stages_table(mine_stages))
    together = features(
        pa.concat_tables([events_table(mine, "a"), events_table(theirs, "b")]),
        stages_table(mine_stages + theirs_stages),
    )
    assert_same_features(alone, together[together["tenant_id"] == "ta"], REGISTRY)
