"""Labels look forward from the cutoff: did the lead win, or move past its stage, within a horizon."""

from __future__ import annotations

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.grid import DAY_US

KEY = ["tenant_id", "lead_id", "cutoff_us"]


def label_query(spine: ir.Table, stages: ir.Table, settings: Settings) -> ir.Table:
    """y_close_<h>d = won in (cutoff, cutoff + h]; y_advance_<H>d = reached a later open stage or won.

    `stages` is the prepared stage table (integer microseconds and funnel rank).
    """
    funnel = settings.funnel
    won = funnel.all_stages.index(funnel.won)
    horizons = sorted(set(settings.training.horizons_days) | {settings.training.horizon_days})
    keys = spine.select(*KEY, "stage_rank").view()
    stages = stages.view()
    j = keys.inner_join(stages, ["tenant_id", "lead_id"])
    j = j.filter((j.us > j.cutoff_us) & (j.us <= j.cutoff_us + max(horizons) * DAY_US))
    firsts = j.group_by(KEY).aggregate(
        won_us=j.us.min(where=j.rank == won),
        advance_us=j.us.min(where=(j.rank > j.stage_rank) & (j.rank <= won)),
    )
    out = keys.left_join(firsts, KEY).select(keys, firsts.won_us, firsts.advance_us)
    cols = {}
    for h in horizons:
        limit = out.cutoff_us + h * DAY_US
        cols[f"y_close_{h}d"] = (out.won_us.notnull() & (out.won_us <= limit)).cast("int8")
    h = settings.training.horizon_days
    cols[f"y_advance_{h}d"] = (out.advance_us.notnull() & (out.advance_us <= out.cutoff_us + h * DAY_US)).cast("int8")
    return out.select(*KEY, **cols)


def label_columns(settings: Settings) -> list[str]:
    horizons = sorted(set(settings.training.horizons_days) | {settings.training.horizon_days})
    return [f"y_close_{h}d" for h in horizons] + [f"y_advance_{settings.training.horizon_days}d"]
