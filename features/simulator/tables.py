"""Turn a raw simulation into contract tables (Arrow): events, stages, truth, items, leads."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.features.contract import EVENT_SCHEMA, ITEM_SCHEMA, STAGE_SCHEMA, TS_TYPE
from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.dynamics import N_MODES
from leadradar.features.simulator.emission import DAY_US
from leadradar.features.simulator.engine import RawSimulation
from leadradar.features.simulator.noise import arrivals, skew_offsets
from leadradar.features.simulator.truth import advance_probabilities, close_probabilities

MODE_NAMES = ("browsing", "buying", "dormant")
# When each row of events.parquet reached the log (arrivals.parquet): what `leadradar ingest` stores as arrival.
ARRIVAL_SCHEMA = pa.schema(
    [
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("arrived_at", TS_TYPE, nullable=False),
    ]
)


def _dict_strings(codes: np.ndarray, names: list[str], null_mask: np.ndarray | None = None) -> pa.Array:
    """Strings from integer codes without a Python loop per row."""
    if null_mask is None:
        indices = pa.array(codes, type=pa.int32())
    else:
        indices = pa.array(np.where(null_mask, 0, codes), type=pa.int32(), mask=null_mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string())).cast(pa.string())


def lead_ids(raw: RawSimulation) -> list[str]:
    tenants = raw.world.tenant_ids
    return [f"{tenants[t]}-L{i:07d}" for i, t in enumerate(raw.leads.tenant.tolist())]


def events_table(
    raw: RawSimulation, event_types: list[str], cfg: SimulationConfig, rng: np.random.Generator
) -> tuple[pa.Table, pa.Table]:
    """The events in the order they reach the log (re-sends included), and when each row arrived (`ARRIVAL_SCHEMA`)."""
    cols = {k: np.concatenate([getattr(b, k) for b in raw.events]) for k in raw.events[0].__dict__}
    ts = cols["ts"] + skew_offsets(raw.leads.n, cfg, rng)[cols["lead"]]
    order, arrived = arrivals(ts, cfg, rng)
    lead, ids = cols["lead"][order], lead_ids(raw)
    referrer, item = cols["referrer"][order], cols["item"][order]
    event_id = pc.binary_join_element_wise("ev", pa.array(order, type=pa.int64()).cast(pa.string()), "")
    arrays = [
        event_id,
        _dict_strings(raw.leads.tenant[lead], raw.world.tenant_ids),
        _dict_strings(lead, ids),
        _dict_strings(raw.leads.sales[lead], raw.world.sales_ids),
        pa.array(ts[order], type=TS_TYPE),
        _dict_strings(cols["etype"][order], event_types),
        pa.array(cols["dwell"][order], from_pandas=True, type=pa.float64()),
        _dict_strings(item, raw.world.item_ids, item < 0),
        _dict_strings(referrer, ids, referrer < 0),
        _dict_strings(cols["channel"][order], list(cfg.channel_mix)),
    ]
    events = pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
    arrival = pa.Table.from_arrays(
        [events["tenant_id"], events["event_id"], pa.array(arrived, type=TS_TYPE)], schema=ARRIVAL_SCHEMA
    )
    return events, arrival


def stages_table(raw: RawSimulation, stage_names: list[str], rng: np.random.Generator) -> pa.Table:
    lead = np.concatenate(raw.stage_rows.lead)
    stage = np.concatenate(raw.stage_rows.stage)
    ts = np.concatenate(raw.stage_rows.ts)
    order = np.lexsort((stage, ts))
    lead, stage, ts = lead[order], stage[order], ts[order]
    won = stage == raw.n_open
    value = np.where(won, np.round(np.exp(rng.normal(np.log(60_000), 0.8, lead.shape[0])), -2), np.nan)
    arrays = [
        _dict_strings(raw.leads.tenant[lead], raw.world.tenant_ids),
        _dict_strings(lead, lead_ids(raw)),
        _dict_strings(stage, stage_names),
        pa.array(ts, type=TS_TYPE),
        pa.array(value, from_pandas=True, type=pa.float64()),
    ]
    return pa.Table.from_arrays(arrays, schema=STAGE_SCHEMA)


def truth_table(raw: RawSimulation, stage_names: list[str], cfg: SimulationConfig) -> pa.Table:
    """One row per (lead, cutoff) open at the cutoff: exact label probabilities and the hidden state."""
    L = raw.leads
    close = close_probabilities(L.z, L.offset, tuple(cfg.horizons_days), cfg)
    advance = advance_probabilities(L.z, L.offset, cfg.advance_horizon_days, cfg)
    ids = lead_ids(raw)
    parts: dict[str, list] = {"lead": [], "cutoff": [], "stage": [], "mode": []}
    for snap in raw.snapshots:
        parts["lead"].append(snap.lead)
        parts["cutoff"].append(np.full(snap.lead.shape[0], raw.start_us + snap.day * DAY_US))
        parts["stage"].append(snap.stage.astype(np.int64))
        parts["mode"].append(snap.mode.astype(np.int64))
    lead, cutoff, stage, mode = (np.concatenate(parts[k]) for k in ("lead", "cutoff", "stage", "mode"))
    columns = {
        "tenant_id": _dict_strings(L.tenant[lead], raw.world.tenant_ids),
        "lead_id": _dict_strings(lead, ids),
        "cutoff": pa.array(cutoff, type=TS_TYPE),
        "stage": _dict_strings(stage, stage_names),
    }
    for h in cfg.horizons_days:
        columns[f"p_close_{h}d"] = pa.array(close[h][lead, stage, mode])
    columns[f"p_advance_{cfg.advance_horizon_days}d"] = pa.array(advance[lead, stage, mode])
    columns["hidden_mode"] = _dict_strings(mode, list(MODE_NAMES[:N_MODES]))
    columns["hidden_intent"] = pa.array(L.z[lead])
    return pa.table(columns)


def items_table(raw: RawSimulation) -> pa.Table:
    w = raw.world
    return pa.Table.from_arrays(
        [_dict_strings(w.item_tenant, w.tenant_ids), pa.array(w.item_ids), pa.array(w.item_category)],
        schema=ITEM_SCHEMA,
    )


def leads_table(raw: RawSimulation, rng: np.random.Generator) -> pa.Table:
    """Static lead attributes a CRM keeps: where the lead came from, industry, region."""
    L = raw.leads
    n = L.n
    sources = ["referral", "moments", "qr_poster", "search", "exhibition"]
    organic = np.where(rng.random(n) < 1 / (1 + np.exp(-(L.z - 1.5))), 4, rng.integers(1, 4, n))
    source = np.where(L.referrer >= 0, 0, organic)
    industries = ["manufacturing", "retail", "healthcare", "education", "finance", "logistics"]
    regions = ["east", "south", "north", "central", "west"]
    return pa.table(
        {
            "tenant_id": _dict_strings(L.tenant, raw.world.tenant_ids),
            "lead_id": pa.array(lead_ids(raw)),
            "source": _dict_strings(source, sources),
            "industry": _dict_strings(rng.integers(0, len(industries), n), industries),
            "region": _dict_strings(rng.integers(0, len(regions), n), regions),
        }
    )
