"""Build the as-of feature table: one Ibis expression, run on DuckDB, Spark or a request's events."""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from features.grid import Grid, build_grid
from features.registry import FeatureRegistry
from features.spine import build_spine, prepare_stages
from leadradar.settings import Settings

KEY = ["tenant_id", "lead_id", "cutoff"]
META = ["tenant_id", "lead_id", "cutoff", "sales_id", "stage"]


def _joined(spine: ir.Table, part: ir.Table) -> ir.Table:
    """Rows of a per-day partial at or before each cutoff, with `age` in days before the cutoff."""
    keys = spine.select(*KEY, "cutoff_us", "K").view()
    part = part.view()
    j = keys.inner_join(part, ["tenant_id", "lead_id", part.bucket <= keys.K])
    return j.mutate(age=j.K - j.bucket)


def source_rows(source: str, spine: ir.Table, grid: Grid, settings: Settings) -> ir.Table:
    if source == "activity":
        return _joined(spine, grid.activity)
    if source == "items":
        return _joined(spine, grid.items)
    if source == "categories":
        rows = _joined(spine, grid.items)
        rows = rows.filter(rows.category.notnull() & ~rows.category.isin(list(settings.features.pricing_categories)))
        return rows.group_by([*KEY, "category"]).aggregate(
            cutoff_us=rows.cutoff_us.max(), cat_dwell=rows.dwell_sum.sum(), cat_n=rows.n.sum()
        )
    if source == "referrals":
        return _joined(spine, grid.referrals)
    raise ValueError(f"no rows for source {source!r}")


@dataclass(frozen=True)
class FeatureQuery:
    """The unexecuted feature table and the spine it hangs on (labels reuse the spine)."""

    table: ir.Table
    spine: ir.Table
    stages: ir.Table


def feature_query(
    events: ir.Table,
    stages: ir.Table,
    cutoffs: ir.Table,
    settings: Settings,
    registry: FeatureRegistry,
    items: ir.Table | None = None,
) -> FeatureQuery:
    """One row per lead open at each cutoff: metadata, then every registry feature in order."""
    grid = build_grid(events, cutoffs, settings, items)
    st = prepare_stages(stages, settings.funnel)
    spine = build_spine(grid.events, st, grid.cutoffs, settings.funnel)
    out = spine
    for source in ("activity", "items", "categories", "referrals"):
        feats = registry.of_source(source)
        if not feats:
            continue
        rows = source_rows(source, spine, grid, settings)
        agg = rows.group_by(KEY).aggregate(**{f.name: f.expr(rows) for f in feats})
        out = out.left_join(agg, KEY).select(out, *[agg[f.name] for f in feats])
    row_level = {f.name: f.expr(out) for f in registry.of_source("funnel")}
    if row_level:
        out = out.mutate(**row_level)
    filled = {
        f.name: out[f.name].fill_null(f.default) if f.default is not None else out[f.name]
        for f in registry
    }
    table = out.select(*META, **{name: filled[name].cast(_dtype(registry, name)) for name in registry.names})
    return FeatureQuery(table=table, spine=spine, stages=st)


def _dtype(registry: FeatureRegistry, name: str) -> str:
    return "string" if registry[name].kind == "category" else "float64"


def unbound_inputs(settings: Settings, with_items: bool = True) -> dict[str, ir.Table]:
    """Named, schema-only tables: the same query compiles to SQL once and runs on any data."""
    from features.contract import EVENT_SCHEMA, ITEM_SCHEMA, STAGE_SCHEMA

    tables = {
        "events": ibis.table(ibis.Schema.from_pyarrow(EVENT_SCHEMA), name="lr_events"),
        "stages": ibis.table(ibis.Schema.from_pyarrow(STAGE_SCHEMA), name="lr_stages"),
        "cutoffs": ibis.table({"cutoff": "timestamp('UTC', 6)"}, name="lr_cutoffs"),
    }
    if with_items:
        tables["items"] = ibis.table(ibis.Schema.from_pyarrow(ITEM_SCHEMA), name="lr_items")
    return tables


def compute_features(
    events,
    stages,
    cutoffs: list,
    settings: Settings,
    registry: FeatureRegistry,
    items=None,
    engine: str | None = None,
):
    """Execute the feature query for the given cutoffs on an engine; a pandas frame, one row per open lead."""
    from features.cutoffs import cutoff_frame
    from features.engines import connect, load, to_pandas

    con = connect(engine or settings.features.engine)
    ev, st = load(con, events, "events"), load(con, stages, "stages")
    it = load(con, items, "items") if items is not None else None
    cut = ibis.memtable(cutoff_frame(cutoffs))
    return to_pandas(feature_query(ev, st, cut, settings, registry, it).table)
