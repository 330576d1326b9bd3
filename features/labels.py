"""Labels look forward from the cutoff: did the lead win, or move past its stage, within a horizon."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.grid import DAY_US
from leadradar.targets import Targets, close_label

KEY = ["tenant_id", "lead_id", "cutoff_us"]


def label_query(spine: ir.Table, stages: ir.Table, settings: Settings) -> ir.Table:
    """y_close_<h>d = won in (cutoff, cutoff + h]; y_advance_<H>d = reached a later open stage or won.

    `stages` is the prepared stage table (integer microseconds and funnel rank).
    """
    funnel = settings.funnel
    won = funnel.all_stages.index(funnel.won)
    targets = Targets.from_settings(settings)
    horizons = targets.horizons_days
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
        cols[close_label(h)] = (out.won_us.notnull() & (out.won_us <= limit)).cast("int8")
    advance_limit = out.cutoff_us + targets.main_days * DAY_US
    cols[targets.advance_label] = (out.advance_us.notnull() & (out.advance_us <= advance_limit)).cast("int8")
    return out.select(*KEY, **cols)


def unfinished_as_missing(labels: ir.Table, settings: Settings, known_until_us: int) -> ir.Table:
    """Labels as floats, each close label whose window is not over by `known_until_us` missing: a lead that has
    not won yet within a window still open is unknown, not a negative."""
    targets = Targets.from_settings(settings)
    cols = {c: labels[c].cast("float64") for c in targets.label_columns}
    for h in targets.horizons_days:
        late = labels.cutoff_us + h * DAY_US > known_until_us
        cols[close_label(h)] = ibis.ifelse(late, ibis.null("float64"), cols[close_label(h)])
    return labels.mutate(**cols)
