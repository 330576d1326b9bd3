"""Hypothesis strategies for small radar logs around a cutoff."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st

from leadradar.config import DEFAULT_EVENT_TYPES
from leadradar.features.contract import EVENT_SCHEMA, STAGE_SCHEMA

CUTOFF = pd.Timestamp("2026-03-02 09:30:15", tz="UTC")
TENANTS = ["ta", "tb"]
LEADS = ["L1", "L2", "L3", "L4"]
SALES = ["s1", "s2", "s3"]
ITEMS = ["ta-pricing", "ta-p1-01", "ta-p1-02", "ta-a2-01", "tb-p1-01"]
TYPES = sorted(DEFAULT_EVENT_TYPES)
STAGES = ["new", "engaged", "contacted", "qualified", "proposal", "won", "lost"]

# Seconds relative to the cutoff; 0 is the cutoff itself (which counts as known).
before = st.one_of(st.just(0), st.integers(-60 * 86400, 0), st.integers(-3600, 0))
after = st.one_of(st.just(1), st.integers(1, 40 * 86400))


def event_rows(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "tenant_id": st.sampled_from(TENANTS),
            "lead_id": st.sampled_from(LEADS),
            "sales_id": st.sampled_from(SALES),
            "offset_s": offsets,
            "micro": st.integers(0, 999_999),
            "event_type": st.sampled_from(TYPES),
            "dwell_s": st.one_of(
                st.none(), st.just(0.0), st.floats(0, 3000, allow_nan=False).map(lambda x: round(x, 1))
            ),
            "item_id": st.one_of(st.none(), st.sampled_from(ITEMS)),
            "referrer_lead_id": st.one_of(st.none(), st.sampled_from(LEADS)),
            "channel": st.sampled_from(["mini_program", "h5", None]),
        }
    )


def stage_rows(offsets: st.SearchStrategy[int]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {
            "tenant_id": st.sampled_from(TENANTS),
            "lead_id": st.sampled_from(LEADS),
            "stage": st.sampled_from(STAGES),
            "offset_s": offsets,
        }
    )


def events_table(rows: list[dict], id_prefix: str = "e") -> pa.Table:
    data = {name: [] for name in EVENT_SCHEMA.names}
    for i, r in enumerate(rows):
        ts = CUTOFF + pd.Timedelta(seconds=r["offset_s"], microseconds=r.get("micro", 0) if r["offset_s"] else 0)
        data["event_id"].append(r.get("event_id", f"{id_prefix}{i}"))
        data["ts"].append(ts.to_pydatetime())
        for k in (
            "tenant_id",
            "lead_id",
            "sales_id",
            "event_type",
            "dwell_s",
            "item_id",
            "referrer_lead_id",
            "channel",
        ):
            data[k].append(r[k])
    return pa.Table.from_pydict(data, schema=EVENT_SCHEMA)


def stages_table(rows: list[dict]) -> pa.Table:
    data = {
        "tenant_id": [r["tenant_id"] for r in rows],
        "lead_id": [r["lead_id"] for r in rows],
        "stage": [r["stage"] for r in rows],
        "ts": [(CUTOFF + pd.Timedelta(seconds=r["offset_s"])).to_pydatetime() for r in rows],
        "deal_value": [None] * len(rows),
    }
    return pa.Table.from_pydict(data, schema=STAGE_SCHEMA)
