"""The feature table in plain pandas: the baseline the DuckDB build is measured against.

Written the way a data scientist would write it in a notebook: read the Parquet files into pandas, clean
the events once (drop exact duplicates, local-time habits, session starts), then for each cutoff keep what
was known by then and group by lead. Readable, vectorised pandas; no DuckDB, no Ibis, no per-row Python.
It computes the same table as `features.build.compute_features` (same rows, columns and values), which
`benchmarks.check_baseline` checks before any figure is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.features.registry import FeatureRegistry, build_registry

KEYS = ["tenant_id", "lead_id"]
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000
EVENT_COLUMNS = [
    "event_id",
    "tenant_id",
    "lead_id",
    "sales_id",
    "ts",
    "event_type",
    "dwell_s",
    "item_id",
    "referrer_lead_id",
]


# ---- the event groups features are declared over ------------------------------------------------------------


def groups(settings: Settings) -> dict[str, list[str]]:
    """Every event type, every family (`fam_<family>`), all configured types (`any`) and `two_way` contacts."""
    ev = settings.events
    out = {t: [t] for t in ev.types}
    out |= {f"fam_{f}": ev.of_family(f) for f in ev.families}
    return out | {"any": list(ev.types), "two_way": list(ev.two_way_contact)}


def dwell_groups(settings: Settings) -> list[str]:
    dwell = set(settings.events.dwell_types)
    return [g for g, types in groups(settings).items() if g != "two_way" and dwell & set(types)]


# ---- reading and cleaning ---------------------------------------------------------------------------------------


@dataclass
class Inputs:
    """Everything read and cleaned once, before the per-cutoff loop."""

    events: pd.DataFrame  # cleaned, sorted by lead and time, with us, night, weekend, session_start
    stages: pd.DataFrame  # known funnel stages with their rank
    items: pd.DataFrame | None
    leads: pd.DataFrame | None
    index: pd.DataFrame  # per lead: first_us, owner, owner_us
    outcomes: pd.DataFrame  # per owned lead that closed: owner, owner_us, closed_us, won


def read_events(path: str | Path, settings: Settings) -> pd.DataFrame:
    """Events without exact duplicates, with UTC microseconds, night/weekend in local time and session starts."""
    fc = settings.features
    ev = pd.read_parquet(path, columns=EVENT_COLUMNS)
    ev["us"] = ev["ts"].astype("datetime64[us, UTC]").astype("int64")
    ev = ev.drop(columns="ts").drop_duplicates()
    local = pd.to_datetime(ev["us"] + int(fc.utc_offset_hours * HOUR_US), unit="us")
    ev["night"] = ((local.dt.hour >= fc.night_start_hour) | (local.dt.hour < fc.night_end_hour)).astype("int64")
    ev["weekend"] = (local.dt.dayofweek >= 5).astype("int64")
    ev = ev.sort_values([*KEYS, "us", "event_id"], ignore_index=True)
    previous = ev.groupby(KEYS, sort=False)["us"].shift()
    gap = fc.session_gap_minutes * 60_000_000
    ev["session_start"] = (previous.isna() | (ev["us"] - previous > gap)).astype("int64")
    ev["zero_dwell"] = (ev["dwell_s"] == 0).astype("int64")
    return ev.drop(columns="event_id")


def read_stages(path: str | Path, settings: Settings) -> pd.DataFrame:
    """CRM stage rows (duplicates dropped) with microseconds and funnel rank; unknown stages are dropped."""
    st = pd.read_parquet(path, columns=[*KEYS, "stage", "ts"])
    st["us"] = st["ts"].astype("datetime64[us, UTC]").astype("int64")
    st = st.drop(columns="ts").drop_duplicates()
    ranks = {name: i for i, name in enumerate(settings.funnel.all_stages)}
    st["rank"] = st["stage"].map(ranks)
    return st.dropna(subset=["rank"]).astype({"rank": "int64"})


def lead_index(ev: pd.DataFrame, st: pd.DataFrame) -> pd.DataFrame:
    """Per lead: first time seen (event or CRM row), owner = salesperson of its first event, and when."""
    first_us = ev.groupby(KEYS)["us"].transform("min")
    at_first = ev[ev["us"] == first_us]
    owners = at_first.groupby(KEYS).agg(owner=("sales_id", "min"), owner_us=("us", "min"))
    crm_first = st.groupby(KEYS)["us"].min().rename("st_first_us")
    index = owners.join(crm_first, how="outer")
    index["first_us"] = index[["owner_us", "st_first_us"]].min(axis=1)
    return index.drop(columns="st_first_us")


def lead_outcomes(st: pd.DataFrame, index: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Per owned lead that closed: when it first closed, and whether that first close was a win."""
    funnel = settings.funnel
    won, lost = funnel.rank(funnel.won), funnel.rank(funnel.lost)
    closed = st[st["rank"].isin([won, lost])]
    per = closed.groupby(KEYS).agg(closed_us=("us", "min"))
    per["won_us"] = closed[closed["rank"] == won].groupby(KEYS)["us"].min()
    per["won"] = (per["won_us"] <= per["closed_us"]).astype("int64")
    return per.join(index[["owner", "owner_us"]], how="inner").dropna(subset=["owner"])


def read_inputs(events, stages, settings: Settings, items=None, leads=None) -> Inputs:
    """Read the Parquet files and do the work every cutoff shares: clean events, stages, owners, outcomes."""
    ev = read_events(events, settings)
    st = read_stages(stages, settings)
    it = pd.read_parquet(items, columns=["tenant_id", "item_id", "category"]) if items is not None else None
    attrs = list(settings.features.lead_attributes)
    ld = pd.read_parquet(leads, columns=[*KEYS, *attrs]) if leads is not None else None
    index = lead_index(ev, st)
    return Inputs(ev, st, it, ld, index, lead_outcomes(st, index, settings))


# ---- per cutoff: the spine and the funnel -----------------------------------------------------------------------


def open_leads(data: Inputs, cutoff_us: int, settings: Settings) -> pd.DataFrame:
    """Leads seen by the cutoff whose latest stage by then is open: owner, stage and the funnel features."""
    funnel = settings.funnel
    won = funnel.rank(funnel.won)
    spine = data.index[data.index["first_us"] <= cutoff_us].copy()
    st = data.stages[data.stages["us"] <= cutoff_us]
    open_st = st[st["rank"] < won]
    asof = st.groupby(KEYS).agg(stage_since_us=("us", "max"), crm_first_us=("us", "min"), n_rows=("us", "size"))
    asof["last_rank"] = st.sort_values(["us", "rank"]).groupby(KEYS)["rank"].last()  # ties: the later stage
    asof["max_open_rank"] = open_st.groupby(KEYS)["rank"].max()
    asof["open_stages_seen"] = open_st.groupby(KEYS)["rank"].nunique()
    spine = spine.join(asof)
    spine["stage_rank"] = spine["last_rank"].fillna(0).astype("int64")
    spine = spine[spine["stage_rank"] < won].copy()
    spine["stage"] = spine["stage_rank"].map(dict(enumerate(funnel.all_stages)))
    spine["sales_id"] = spine["owner"].where(spine["owner_us"] <= cutoff_us)
    since = spine["stage_since_us"].fillna(spine["first_us"])
    created = spine["crm_first_us"].fillna(spine["first_us"])
    spine["days_in_stage"] = (cutoff_us - since) / DAY_US
    spine["days_since_created"] = (cutoff_us - created) / DAY_US
    spine["stage_changes"] = (spine["n_rows"] - 1).fillna(0)
    spine["stages_skipped"] = (spine["max_open_rank"] - spine["open_stages_seen"] + 1).fillna(0)
    return spine


# ---- per cutoff: the lead's own events --------------------------------------------------------------------------


def by_type(frame: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Counts and dwell per lead and event type, one column per (statistic, type)."""
    stats = (
        frame.groupby([*KEYS, "event_type"])
        .agg(
            n=("event_type", "size"),
            dsum=("dwell_s", "sum"),
            dn=("dwell_s", "count"),
            dmax=("dwell_s", "max"),
        )
        .unstack("event_type")
    )
    types = list(settings.events.types)
    return stats.reindex(columns=pd.MultiIndex.from_product([["n", "dsum", "dn", "dmax"], types]))


def window_features(known: pd.DataFrame, w: int | None, settings: Settings) -> pd.DataFrame:
    """Counts, dwell, sessions and active days per lead over the last `w` days (all known events if None)."""
    sfx = "all" if w is None else f"{w}d"
    win = known if w is None else known[known["age"] < w]
    stats = by_type(win, settings)
    cols: dict[str, pd.Series] = {}
    dwell = set(dwell_groups(settings))
    for group, types in groups(settings).items():
        if group in ("any", "two_way"):
            continue
        cols[f"n_{group}_{sfx}"] = stats["n"][types].sum(axis=1)
        if group in dwell:
            total, count = stats["dsum"][types].sum(axis=1), stats["dn"][types].sum(axis=1)
            cols[f"dwell_sum_{group}_{sfx}"] = total
            cols[f"dwell_mean_{group}_{sfx}"] = total / count.replace(0, np.nan)
            cols[f"dwell_max_{group}_{sfx}"] = stats["dmax"][types].max(axis=1)
    out = pd.DataFrame(cols)
    if w is None or w >= 7:
        per_lead = win.groupby(KEYS).agg(sessions=("session_start", "sum"), days=("age", "nunique"))
        out[f"sessions_{sfx}"] = per_lead["sessions"]
        out[f"active_days_{sfx}"] = per_lead["days"]
    return out


def recency_and_habits(known: pd.DataFrame, cutoff_us: int, settings: Settings) -> pd.DataFrame:
    """Hours since the last event of each family and contact, momentum, and when and how the lead looks."""
    ev = settings.events
    last = known.groupby([*KEYS, "event_type"])["us"].max().unstack("event_type")
    last = last.reindex(columns=list(ev.types))
    hours = lambda us: (cutoff_us - us) / HOUR_US
    cols = {"hours_since_last_any": hours(last.max(axis=1))}
    for family in ev.families:
        cols[f"hours_since_last_{family}"] = hours(last[ev.of_family(family)].max(axis=1))
    cols["hours_since_two_way_contact"] = hours(last[list(ev.two_way_contact)].max(axis=1))
    out = pd.DataFrame(cols)

    # A share counts the same events above and below the fraction bar: the configured types. (The DuckDB build counts
    # events of unknown types in night, weekend and zero-dwell but not in the total, so a share can pass 1.)
    typed = known["event_type"].isin(list(ev.types)).astype("int64")
    known = known.assign(
        typed=typed,
        this_week=typed * (known["age"] < 7),
        last_week=typed * ((known["age"] >= 7) & (known["age"] < 14)),
        night=typed * known["night"],
        weekend=typed * known["weekend"],
        zero_dwell=typed * known["zero_dwell"],
    )
    per = known.groupby(KEYS).agg(
        first_us=("us", "min"),
        n_any=("typed", "sum"),
        sessions=("session_start", "sum"),
        night=("night", "sum"),
        weekend=("weekend", "sum"),
        zero_dwell=("zero_dwell", "sum"),
        this_week=("this_week", "sum"),
        last_week=("last_week", "sum"),
    )
    n_any = per["n_any"].replace(0, np.nan)
    contacts = known[(known["age"] < 30) & known["event_type"].isin(list(ev.two_way_contact))]
    out["n_two_way_contact_30d"] = contacts.groupby(KEYS).size()
    out["hours_since_first_event"] = hours(per["first_us"])
    out["momentum_7d"] = (per["this_week"] + 1) / (per["last_week"] + 1)
    out["events_per_session"] = per["n_any"] / per["sessions"].replace(0, np.nan)
    out["night_share"] = per["night"] / n_any
    out["weekend_share"] = per["weekend"] / n_any
    out["zero_dwell_share"] = per["zero_dwell"] / n_any
    return out


def engagement(known: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Events and active days decayed by their age in days (features/families/engagement.py), and the trend."""
    lives = settings.features.engagement_half_lives_days
    if not lives:
        return pd.DataFrame(index=pd.MultiIndex.from_arrays([[], []], names=KEYS))
    typed = known["event_type"].isin(list(settings.events.types)).astype("float64")
    days = known.assign(n=typed).groupby([*KEYS, "age"])["n"].sum().reset_index()
    weight = lambda h: np.exp(days["age"].astype("float64") * (-np.log(2) / h))
    cols = {f"engagement_{h}d": (days["n"] * weight(h)).groupby([days[k] for k in KEYS]).sum() for h in lives}
    mid = lives[len(lives) // 2]
    cols[f"engaged_days_{mid}d"] = weight(mid).groupby([days[k] for k in KEYS]).sum()
    out = pd.DataFrame(cols)
    if len(lives) > 1:
        short, long = lives[0], lives[-1]
        out["engagement_trend"] = (
            out[f"engagement_{short}d"] / out[f"engagement_{long}d"].replace(0, np.nan) * (long / short)
        )
    return out


def content(known: pd.DataFrame, items: pd.DataFrame | None, settings: Settings) -> pd.DataFrame:
    """Distinct and repeated items, pricing-page views, and how focused reading is on one product line."""
    pricing = list(settings.features.pricing_categories)
    seen = known[known["item_id"].notna()]
    if items is not None:
        seen = seen.merge(items, on=["tenant_id", "item_id"], how="left")
    else:
        seen = seen.assign(category=pd.Series(pd.NA, index=seen.index, dtype="str"))
    per = seen.groupby(KEYS).agg(n=("item_id", "size"), distinct=("item_id", "nunique"))
    out = pd.DataFrame({"distinct_items_all": per["distinct"], "repeat_item_views_all": per["n"] - per["distinct"]})
    out["distinct_items_30d"] = seen[seen["age"] < 30].groupby(KEYS)["item_id"].nunique()
    on_pricing = seen[seen["category"].isin(pricing)]
    for w in (7, 30, None):
        sfx = "all" if w is None else f"{w}d"
        rows = on_pricing if w is None else on_pricing[on_pricing["age"] < w]
        out[f"pricing_views_{sfx}"] = rows.groupby(KEYS).size()
    lines = seen[seen["category"].notna() & ~seen["category"].isin(pricing)]
    per_line = lines.groupby([*KEYS, "category"])["dwell_s"].sum(min_count=1)
    by_lead = per_line.groupby(level=KEYS)
    out = out.join(
        pd.DataFrame(
            {
                "top_category_share": by_lead.max() / by_lead.sum().replace(0, np.nan),
                "n_categories": by_lead.size(),
            }
        ),
        how="outer",
    )
    return out


def sharing(known: pd.DataFrame) -> pd.DataFrame:
    """Visits and new leads that each lead's shares brought to the card (keyed by the referrer)."""
    referred = known[known["referrer_lead_id"].notna()]
    referred = referred.assign(recent=(referred["age"] < 30).astype("int64"))
    per = referred.groupby(["tenant_id", "referrer_lead_id"]).agg(
        referred_visits_30d=("recent", "sum"),
        referred_visits_all=("lead_id", "size"),
        referred_leads_all=("lead_id", "nunique"),
    )
    return per.rename_axis(KEYS)


# ---- per cutoff: context beyond the lead ------------------------------------------------------------------------


def sales_context(spine: pd.DataFrame, data: Inputs, cutoff_us: int, settings: Settings) -> pd.DataFrame:
    """The owner's smoothed win rate and closed leads, the tenant's win rate, the owner's open leads now."""
    m = settings.features.sales_prior_strength
    oc = data.outcomes
    known = oc[(oc["closed_us"] <= cutoff_us) & (oc["owner_us"] <= cutoff_us)].reset_index()
    by_sales = known.groupby(["tenant_id", "owner"]).agg(s_wins=("won", "sum"), s_closed=("won", "size"))
    by_sales = by_sales.rename_axis(["tenant_id", "sales_id"])
    by_tenant = known.groupby("tenant_id").agg(t_wins=("won", "sum"), t_closed=("won", "size"))
    workload = spine.dropna(subset=["sales_id"]).groupby(["tenant_id", "sales_id"]).size().rename("s_open")
    rows = spine[["sales_id"]].reset_index()
    rows = rows.merge(by_sales.reset_index(), on=["tenant_id", "sales_id"], how="left")
    rows = rows.merge(by_tenant.reset_index(), on="tenant_id", how="left")
    rows = rows.merge(workload.reset_index(), on=["tenant_id", "sales_id"], how="left")
    rows[["s_wins", "s_closed", "t_wins", "t_closed"]] = rows[["s_wins", "s_closed", "t_wins", "t_closed"]].fillna(0)
    tenant_rate = (rows["t_wins"] + 1) / (rows["t_closed"] + 2)
    rows["sales_win_rate"] = (rows["s_wins"] + m * tenant_rate) / (rows["s_closed"] + m)
    rows["sales_closed_leads"] = rows["s_closed"]
    rows["sales_open_leads"] = rows["s_open"]  # no owner yet: missing
    rows["tenant_win_rate"] = tenant_rate
    return rows.set_index(KEYS)[["sales_win_rate", "sales_closed_leads", "sales_open_leads", "tenant_win_rate"]]


def attributes(spine: pd.DataFrame, leads: pd.DataFrame | None, settings: Settings) -> pd.DataFrame:
    names = list(settings.features.lead_attributes)
    if leads is None:
        return pd.DataFrame({f"attr_{n}": pd.Series(pd.NA, index=spine.index, dtype="str") for n in names})
    attrs = leads.set_index(KEYS)[names].astype("str")
    return attrs.add_prefix("attr_")


# ---- the table --------------------------------------------------------------------------------------------------


def features_at(data: Inputs, cutoff: pd.Timestamp, settings: Settings, registry: FeatureRegistry) -> pd.DataFrame:
    """One row per lead open at `cutoff`: metadata, then every registry feature, from events known by then."""
    cutoff = pd.Timestamp(cutoff).tz_convert("UTC").as_unit("us")
    cutoff_us = (cutoff - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    spine = open_leads(data, cutoff_us, settings)
    known = data.events[data.events["us"] <= cutoff_us].copy()
    known["age"] = (cutoff_us - known["us"]) // DAY_US  # whole days before the cutoff
    windows = [*settings.features.windows_days, None]
    parts = [window_features(known, w, settings) for w in windows]
    parts += [recency_and_habits(known, cutoff_us, settings), engagement(known, settings)]
    parts += [content(known, data.items, settings), sharing(known)]
    parts += [sales_context(spine, data, cutoff_us, settings), attributes(spine, data.leads, settings)]
    table = spine
    for part in parts:
        table = table.join(part, how="left")
    table = table.reset_index()
    table["cutoff"] = cutoff
    cols = {name: table[name] for name in ("tenant_id", "lead_id", "cutoff", "sales_id", "stage")}
    for f in registry:
        col = table[f.name]
        if f.kind == "category":
            cols[f.name] = col.astype("str")
        else:
            col = col.astype("float64")
            cols[f.name] = col.fillna(f.default) if f.default is not None else col
    return pd.DataFrame(cols)


def pandas_features(
    events, stages, cutoffs: list, settings: Settings, registry: FeatureRegistry | None = None, items=None, leads=None
) -> pd.DataFrame:
    """The feature table for every cutoff, from Parquet paths: the same contract as `compute_features`."""
    registry = registry or build_registry(settings)
    data = read_inputs(events, stages, settings, items, leads)
    frames = [features_at(data, c, settings, registry) for c in sorted(set(cutoffs))]
    table = pd.concat(frames, ignore_index=True)
    table["cutoff"] = table["cutoff"].astype("datetime64[us, UTC]")
    return table
