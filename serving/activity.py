"""What a batch run keeps besides scores, for the pages people read: recent events and the funnel to date.

Both come from the same event and stage logs the features were built from, read on the embedded
engine, and only what was known at the run's as_of. A lead without consent at the as_of (features/consent.py, the
rule the batch build applies to its features) has no events listed, and no page lists a consent event.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import pandas as pd
import pyarrow as pa

from leadradar.config import FunnelConfig, Settings
from leadradar.features.consent import consented, set_apart
from leadradar.features.engines import connect, load, to_pandas
from leadradar.features.trainset import Source

EVENT_FIELDS = ["tenant_id", "lead_id", "event_id", "ts", "event_type", "sales_id", "dwell_s", "item_id", "channel"]


@dataclass(frozen=True)
class BatchActivity:
    """The scored leads' last events and each tenant's funnel counts, as of one run."""

    as_of: pd.Timestamp
    events: pd.DataFrame
    funnel: pd.DataFrame


def recent_events(
    events: Source,
    leads: pd.DataFrame,
    as_of: pd.Timestamp,
    per_lead: int,
    settings: Settings,
    consent: pa.Table | None = None,
) -> pd.DataFrame:
    """Each lead's last `per_lead` events at or before `as_of`, newest first (leads: tenant_id, lead_id); none for a
    lead without consent at `as_of` (`consent`: consent events carried aside, beside any among the events)."""
    if leads.empty or per_lead <= 0:
        return pd.DataFrame(columns=EVENT_FIELDS)
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    con = connect("duckdb")
    ev, said = set_apart(load(con, events, "events"), settings, consent)
    keys = leads[["tenant_id", "lead_id"]].drop_duplicates().reset_index(drop=True)
    if settings.privacy.consent_required:
        keys = keys[consented(said, keys["tenant_id"], keys["lead_id"], pd.Series(as_of, index=keys.index), settings)]
        if keys.empty:
            return pd.DataFrame(columns=EVENT_FIELDS)
    ev = ev.filter(ev.ts <= ibis.literal(as_of)).semi_join(
        ibis.memtable(keys.reset_index(drop=True)), ["tenant_id", "lead_id"]
    )
    newest = ibis.window(group_by=[ev.tenant_id, ev.lead_id], order_by=[ibis.desc(ev.ts), ev.event_id])
    ev = ev.mutate(n=ibis.row_number().over(newest))
    ev = ev.filter(ev.n < per_lead).select(*EVENT_FIELDS)
    frame = to_pandas(ev).drop_duplicates(["tenant_id", "lead_id", "event_id"])
    return frame.sort_values(["tenant_id", "lead_id", "ts"], ascending=[True, True, False]).reset_index(drop=True)


def funnel_counts(stages: Source, as_of: pd.Timestamp, funnel: FunnelConfig, tenants: list[str]) -> pd.DataFrame:
    """Per tenant and funnel stage: the leads that reached it by `as_of`, and those lost while there.

    A lead reached every stage up to the furthest it got to (a skipped stage counts as passed), so
    `reached` never grows down the funnel and conversion is `reached[next] / reached[stage]`.
    """
    columns = ["tenant_id", "as_of", "stage", "position", "reached", "lost"]
    if not tenants:
        return pd.DataFrame(columns=columns)
    con = connect("duckdb")
    st = load(con, stages, "stages")
    st = st.filter((st.ts <= ibis.literal(pd.Timestamp(as_of).tz_convert("UTC"))) & st.tenant_id.isin(tenants))
    rows = to_pandas(st.select("tenant_id", "lead_id", "stage", "ts"))
    position = {s: i for i, s in enumerate(funnel.stages)}
    rows["position"] = rows["stage"].map(position)
    rows["is_lost"] = rows["stage"] == funnel.lost
    per_lead = (
        rows.groupby(["tenant_id", "lead_id"]).agg(furthest=("position", "max"), lost=("is_lost", "any")).reset_index()
    )
    out = []
    for tenant in tenants:
        leads = per_lead[per_lead["tenant_id"] == tenant]
        for stage, i in position.items():
            out.append(
                {
                    "tenant_id": tenant,
                    "as_of": pd.Timestamp(as_of),
                    "stage": stage,
                    "position": i,
                    "reached": int((leads["furthest"] >= i).sum()),
                    "lost": int((leads["lost"] & (leads["furthest"] == i)).sum()),
                }
            )
    return pd.DataFrame(out, columns=columns)


def batch_activity(
    events: Source,
    stages: Source,
    scores: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: Settings,
    consent: pa.Table | None = None,
) -> BatchActivity:
    """Recent events of the scored leads (none of a lead without consent at the run) and the funnel of their
    tenants, as of the run; `consent` is the log's consent events carried aside (`RadarLog.consent`)."""
    tenants = sorted(scores["tenant_id"].unique().tolist()) if len(scores) else []
    return BatchActivity(
        pd.Timestamp(as_of),
        recent_events(events, scores, as_of, settings.serving.dashboard.events_per_lead, settings, consent),
        funnel_counts(stages, as_of, settings.funnel, tenants),
    )
