"""Turn a raw simulation into contract tables (Arrow): events, stages, truth, items, leads, salespeople."""

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
from leadradar.features.simulator.world import ITEM_KINDS, World

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


# Display names for the catalogue, in English and Chinese: a CRM's item table carries such names.
ITEM_WORDS = {
    "product": ("product", "产品"),
    "article": ("article", "文章"),
    "video": ("video", "视频"),
}
# People's names for leads and salespeople, chosen from the row's position (no draw from the random stream).
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "洋",
    "艳",
    "勇",
    "军",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "霞",
    "平",
    "刚",
    "桂英",
    "建华",
    "晓东",
    "文博",
    "雨桐",
    "子涵",
    "思远",
    "一鸣",
    "欣怡",
    "浩然",
    "梓萱",
]


def person_name(i: int, salt: int = 0) -> str:
    """A plausible Chinese name for the i-th person, the same on every run."""
    return SURNAMES[(i * 7 + salt) % len(SURNAMES)] + GIVEN[(i // len(SURNAMES) + i * 3 + salt) % len(GIVEN)]


def item_names(w: World) -> tuple[list[str], list[str]]:
    """Each item's name in English and Chinese: 'Line 2 article 3' / '产品线2 文章3', the pricing page 'Price list'."""
    en: list[str] = []
    zh: list[str] = []
    seen: dict[tuple[int, int, int], int] = {}
    for tenant, line, kind in zip(w.item_tenant.tolist(), w.item_line.tolist(), w.item_kind.tolist()):
        if ITEM_KINDS[kind] == "pricing":
            en.append("Price list")
            zh.append("价目表")
            continue
        n = seen[tenant, line, kind] = seen.get((tenant, line, kind), 0) + 1
        word_en, word_zh = ITEM_WORDS[ITEM_KINDS[kind]]
        en.append(f"Line {line + 1} {word_en} {n}")
        zh.append(f"产品线{line + 1} {word_zh}{n}")
    return en, zh


def items_table(raw: RawSimulation) -> pa.Table:
    """The catalogue: the contract's columns, then each item's name in English (`name`) and Chinese (`name_zh`)."""
    w = raw.world
    en, zh = item_names(w)
    contract = pa.Table.from_arrays(
        [_dict_strings(w.item_tenant, w.tenant_ids), pa.array(w.item_ids), pa.array(w.item_category)],
        schema=ITEM_SCHEMA,
    )
    return contract.append_column("name", pa.array(en)).append_column("name_zh", pa.array(zh))


def sales_table(raw: RawSimulation) -> pa.Table:
    """The salespeople a CRM lists: tenant, id and name."""
    w = raw.world
    return pa.table(
        {
            "tenant_id": _dict_strings(w.sales_tenant, w.tenant_ids),
            "sales_id": pa.array(w.sales_ids),
            "name": pa.array([person_name(k, salt=11) for k in range(len(w.sales_ids))]),
        }
    )


def leads_table(raw: RawSimulation, rng: np.random.Generator) -> pa.Table:
    """Static lead attributes a CRM keeps: the contact's name, where the lead came from, industry, region."""
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
            "name": pa.array([person_name(i) for i in range(n)]),
        }
    )
