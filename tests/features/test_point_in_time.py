"""Point-in-time correctness: nothing that happens after a cutoff changes a row computed as of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from leadradar.config import Settings
from leadradar.features.build import compute_features
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from tests.support.strategies import CUTOFF, after, before, event_rows, events_table, stage_rows, stages_table

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
ONLINE = OnlineFeatures(SETTINGS, REGISTRY)


def features(events: pa.Table, stages: pa.Table) -> pd.DataFrame:
    return ONLINE.compute(events, stages, [CUTOFF]).sort_values(["tenant_id", "lead_id"]).reset_index(drop=True)


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a[["tenant_id", "lead_id", "sales_id", "stage"]].equals(b[["tenant_id", "lead_id", "sales_id", "stage"]])
    np.testing.assert_allclose(
        a[REGISTRY.names].to_numpy(float), b[REGISTRY.names].to_numpy(float), rtol=1e-12, atol=1e-9
    )


def mutate(rows: list[dict], data: st.DataObject) -> list[dict]:
    """Alter some rows after the cutoff: new type, dwell, item, referrer, owner, later time."""
    return [data.draw(event_rows(after)) if data.draw(st.booleans()) else r for r in rows]


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    known=st.lists(event_rows(before), min_size=1, max_size=25),
    later=st.lists(event_rows(after), max_size=25),
    stages_known=st.lists(stage_rows(before), max_size=6),
    stages_later=st.lists(stage_rows(after), max_size=6),
    data=st.data(),
)
def test_event_after_cutoff_never_changes_features(known, later, stages_known, stages_later, data):
    base_events = events_table(known, "k")
    reference = features(base_events, stages_table(stages_known))

    added = pa.concat_tables([base_events, events_table(later, "a")])
    assert_same_rows(reference, features(added, stages_table(stages_known + stages_later)))

    kept = [r for r in later if data.draw(st.booleans())]
    altered = mutate(kept, data)
    changed = pa.concat_tables([base_events, events_table(altered, "a")])
    assert_same_rows(reference, features(changed, stages_table(stages_known + stages_later[: len(stages_later) // 2])))


@hsettings(max_examples=5, deadline=None)
@given(
    known=st.lists(event_rows(before), min_size=3, max_size=25),
    later=st.lists(event_rows(after), min_size=1, max_size=25),
    stages_known=st.lists(stage_rows(before), max_size=6),
)
def test_batch_engine_agrees_that_later_events_change_nothing(known, later, stages_known):
    stages = stages_table(stages_known)
    reg = REGISTRY
    a = compute_features(events_table(known, "k"), stages, [CUTOFF], SETTINGS, reg)
    b = compute_features(
        pa.concat_tables([events_table(known, "k"), events_table(later, "a")]), stages, [CUTOFF], SETTINGS, reg
    )
    a, b = (x.sort_values(["tenant_id", "lead_id"]).reset_index(drop=True) for x in (a, b))
    assert_same_rows(a, b)
