"""`leadradar alerts simulate`: the stored history replayed through the rules and restraint before alerting is on.

For the last `since` of the event store (ending at its newest event), every session of every lead is scored by
the champion as of the moment it settled, through the online query rescoring uses (one call per lead, its session
ends as cutoffs); the lead's rules are judged at each of those moments exactly as the live path judges them, and
restraint decides over all leads in time order. The live path also scores mid-session; the rules only read the
score after a session, so the difference is limited to where a threshold crossing inside a session is timed.

It reports, per rule and salesperson, instant alerts per day; the share of leads won in the period that were
alerted (instantly) before they were won; and the median time from a won lead's first alert to its win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.build import finish
from leadradar.features.consent import consented, stored_consent
from leadradar.features.contract import EVENT_SCHEMA
from leadradar.features.store.event_store import EventStore
from leadradar.serving.alerts.alert import Alert
from leadradar.serving.alerts.restraint import Decided, decide
from leadradar.serving.alerts.rules import evaluate, sessions
from leadradar.serving.engine import Engine
from leadradar.serving.scoring import score_frame


@dataclass
class Replay:
    """What the rules and restraint would have done over a period."""

    start: pd.Timestamp
    end: pd.Timestamp
    decided: list[Decided] = field(default_factory=list)
    sales: set[tuple[str, str]] = field(default_factory=set)  # salespeople whose leads had events in the period
    wins: dict[tuple[str, str], pd.Timestamp] = field(default_factory=dict)
    sessions: int = 0

    @property
    def days(self) -> float:
        return max((self.end - self.start) / pd.Timedelta(days=1), 1e-9)

    def instant(self) -> list[Alert]:
        return [d.alert for d in self.decided if d.route == "instant"]

    def summary(self) -> dict[str, Any]:
        """The figures `alerts simulate --json` prints and `make bench-alerts` records."""
        instant = self.instant()
        first: dict[tuple[str, str], pd.Timestamp] = {}
        for a in sorted(instant, key=lambda a: a.at):
            first.setdefault((a.tenant_id, a.lead_id), pd.Timestamp(a.at))
        before = {k: won - first[k] for k, won in self.wins.items() if k in first and first[k] < won}
        lead_days = sorted(t / pd.Timedelta(days=1) for t in before.values())
        per_rule: dict[str, int] = {}
        per_sales: dict[str, int] = {}
        for a in instant:
            per_rule[a.rule] = per_rule.get(a.rule, 0) + 1
            per_sales[f"{a.tenant_id}/{a.sales_id}"] = per_sales.get(f"{a.tenant_id}/{a.sales_id}", 0) + 1
        routes = {r: sum(d.route == r for d in self.decided) for r in ("instant", "digest", "dropped")}
        return {
            "since": self.start.isoformat(),
            "until": self.end.isoformat(),
            "days": round(self.days, 3),
            "sessions": self.sessions,
            "salespeople": len(self.sales),
            "alerts": routes,
            "alerts_per_sales_per_day": round(len(instant) / max(len(self.sales), 1) / self.days, 4),
            "alerts_per_day_by_rule": {r: round(n / self.days, 3) for r, n in sorted(per_rule.items())},
            "alerts_per_day_by_sales": {s: round(n / self.days, 3) for s, n in sorted(per_sales.items())},
            "wins": len(self.wins),
            "wins_alerted_before_close": round(len(before) / len(self.wins), 4) if self.wins else None,
            "median_lead_time_days": round(float(pd.Series(lead_days).median()), 3) if lead_days else None,
        }


def replay(
    settings: Settings, store: EventStore, engine: Engine, since: timedelta, tenant: str | None = None
) -> Replay:
    """Replay the last `since` of the store (one tenant or all) through scoring, the rules and restraint."""
    rules = settings.alerts.rules
    quiet = pd.Timedelta(minutes=rules.session_quiet_minutes)
    tenants = [tenant] if tenant else store.tenants()
    found: list[Alert] = []
    end = None
    for t in tenants:
        ev = store.events(t).to_pandas()
        if ev.empty:
            continue
        end_t = pd.Timestamp(ev["ts"].max())
        end = end_t if end is None else max(end, end_t)
    if end is None:
        raise LookupError("the event store holds no events" + (f" of tenant {tenant!r}" if tenant else ""))
    start = end - pd.Timedelta(since)
    result = Replay(start, end)
    for t in tenants:
        found += _tenant(settings, store, engine, t, start, end, quiet, result)
    before: list[Decided] = []
    horizon = timedelta(hours=max(rules.cooldown_hours, 48.0))
    for at, group in _by_time(found):
        recent = [d for d in before if d.alert.at >= at - horizon or d.deliver_at >= at - horizon]
        decided = decide(group, at, recent, rules, settings.lifecycle.timezone)
        before = [*recent, *decided]
        result.decided += decided
    return result


def _by_time(found: Sequence[Alert]) -> list[tuple[datetime, list[Alert]]]:
    groups: dict[datetime, list[Alert]] = {}
    for a in sorted(found, key=lambda a: a.at):
        groups.setdefault(a.at, []).append(a)
    return list(groups.items())


def _tenant(
    settings: Settings,
    store: EventStore,
    engine: Engine,
    tenant: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    quiet: pd.Timedelta,
    result: Replay,
) -> list[Alert]:
    """One tenant's alerts as the rules find them at each session end in [start, end]."""
    rules = settings.alerts.rules
    events = store.events(tenant, until=end).to_pandas()
    stages = store.stages(tenant, until=end)
    stage_frame = stages.to_pandas()
    won = stage_frame[(stage_frame["stage"] == settings.funnel.won) & (stage_frame["ts"] > start)]
    for lead, ts in won.groupby("lead_id")["ts"].min().items():
        result.wins[tenant, str(lead)] = pd.Timestamp(ts)
    active = events.loc[events["ts"] > start - quiet, "lead_id"].unique()
    events = events[events["lead_id"].isin(active)]
    pricing = _pricing(settings, store, tenant)
    said = stored_consent(store, tenant, settings, end) if settings.privacy.consent_required else None
    found: list[Alert] = []
    for lead, mine in events.groupby("lead_id", sort=False):
        mine = mine.reset_index(drop=True)
        ends = [s.end + quiet for s in sessions(mine, quiet) if s.end + quiet > start - pd.Timedelta(days=2)]
        ends = [e for e in ends if e <= end + quiet]
        if not ends:
            continue
        result.sales.add((tenant, str(mine["sales_id"].iloc[-1])))
        history = _scores(settings, engine, tenant, str(lead), mine, stages, ends)
        last = None
        allowed = (
            consented(said, [tenant] * len(ends), [str(lead)] * len(ends), ends, settings)
            if said is not None
            else [True] * len(ends)
        )
        for now, consenting in zip(ends, allowed):
            if now > start:
                result.sessions += 1
            if now > start and consenting:  # no alert for a lead without consent then (privacy.consent_required)
                found += evaluate(
                    tenant,
                    str(lead),
                    history,
                    mine,
                    now,
                    rules,
                    two_way=settings.events.two_way_contact,
                    pricing_items=pricing,
                    since=last,
                )
            last = now
    return found


def _scores(
    settings: Settings,
    engine: Engine,
    tenant: str,
    lead: str,
    events: pd.DataFrame,
    stages: pa.Table,
    cutoffs: list[pd.Timestamp],
) -> pd.DataFrame:
    """The lead scored by the champion as of each cutoff, by the online query rescoring uses."""
    columns: list[str]
    rows: list[tuple]
    ev = pa.Table.from_pandas(events[EVENT_SCHEMA.names], schema=EVENT_SCHEMA, preserve_index=False)
    st = stages.filter(pc.equal(stages["lead_id"], lead))
    columns, rows = [], []
    for cutoff in cutoffs:  # one build's cutoffs share a time of day; a lead's session ends do not
        columns, some = engine.online.compute_rows(ev, st, [cutoff], engine.items, None)
        rows += some
    if not rows:
        return pd.DataFrame(columns=["as_of", "p_close", "sales_id", "grade", "detail"])
    records = [dict(zip(columns, row)) for row in rows]
    engine._with_context(records, tenant)
    features = finish(pd.DataFrame.from_records(records))
    scored = score_frame(features, engine.loaded)
    scored["grade"] = scored["p_close"].map(settings.serving.grade)
    scored["detail"] = None
    scored["as_of"] = pd.to_datetime(scored["as_of"], utc=True)
    return scored.sort_values("as_of").reset_index(drop=True)


def _pricing(settings: Settings, store: EventStore, tenant: str) -> frozenset[str]:
    catalog = store.catalog("items", tenant)
    if catalog is None or not {"item_id", "category"} <= set(catalog.columns):
        return frozenset()
    return frozenset(catalog.loc[catalog["category"].isin(list(settings.features.pricing_categories)), "item_id"])


def champion_engine(settings: Settings, store: EventStore) -> Engine:
    """The champion as the service loads it, to score the replayed sessions with."""
    from leadradar.features.online import OnlineFeatures
    from leadradar.features.registry import build_registry
    from leadradar.registry import load_alias
    from leadradar.serving.engine import ContextCache, load_items
    from leadradar.serving.store import ScoreStore

    loaded = load_alias(settings)
    registry = build_registry(settings)
    context = ContextCache(ScoreStore(settings.score_store_url), settings.serving.context_cache_seconds)
    online = OnlineFeatures(settings, registry)
    return Engine(loaded, settings, registry, online, context, load_items(settings, loaded), store)
