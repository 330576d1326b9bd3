"""The training set: one row per (lead, cutoff) open at the cutoff, features as of it, labels after it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import TooLittleDataError
from leadradar.features.build import KEY, META, QKEY, feature_query, finish, lead_schema, unbound_inputs
from leadradar.features.consent import counts_only_frame, set_apart
from leadradar.features.cutoffs import cadence_cutoffs
from leadradar.features.engines import connect, feature_input, load, load_cutoffs, materializer, to_pandas
from leadradar.features.labels import label_query
from leadradar.features.radar_log import RadarLog, Source
from leadradar.features.registry import FeatureRegistry, build_registry, definition_hash
from leadradar.targets import Targets, close_label


@dataclass
class TrainingSet:
    frame: pd.DataFrame
    features: list[str]
    labels: list[str]
    first_cutoff: pd.Timestamp
    last_cutoff: pd.Timestamp
    data_until: pd.Timestamp
    definition_hash: str
    categorical: list[str] = field(default_factory=list)
    unknown_event_types: dict[str, int] = field(default_factory=dict)

    @property
    def window(self) -> dict[str, str]:
        return {
            "first_cutoff": self.first_cutoff.isoformat(),
            "last_cutoff": self.last_cutoff.isoformat(),
            "data_until": self.data_until.isoformat(),
        }


def registry_hash(settings: Settings, registry: FeatureRegistry) -> str:
    """Hash of the compiled feature query: changes whenever any definition or setting it uses changes."""
    t = unbound_inputs(settings)
    q = feature_query(t["events"], t["stages"], t["cutoffs"], settings, registry, t["items"], leads=t["leads"])
    return definition_hash(str(ibis.to_sql(q.table, dialect="duckdb")), registry.names)


def _until(table: ir.Table, until: pd.Timestamp | None) -> ir.Table:
    return table if until is None else table.filter(table.ts <= until.to_pydatetime())


def unknown_event_types(events: ir.Table, settings: Settings) -> dict[str, int]:
    """Events whose type the configuration does not name: counted and reported, never silently dropped."""
    odd = events.filter(~events.event_type.isin(list(settings.events.types)))
    counts = odd.group_by("event_type").aggregate(n=odd.count()).to_pyarrow().to_pylist()
    return {r["event_type"]: int(r["n"]) for r in counts}


def _time(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def data_bounds(events: ir.Table, stages: ir.Table) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """First CRM row and the last thing known in either log; None when there is no CRM row."""
    first = _time(stages.ts.min().to_pyarrow().as_py())
    if first is None:
        return None
    ends = [_time(t.ts.max().to_pyarrow().as_py()) for t in (events, stages)]
    return first, max(t for t in ends if t is not None)


def _named(source: Source, kind: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else f"the {kind} table"


def build_training_set(
    log: RadarLog,
    settings: Settings,
    until: pd.Timestamp | None = None,
    engine: str | None = None,
    registry: FeatureRegistry | None = None,
    min_history_days: int = 7,
    cutoff_range: tuple[pd.Timestamp, pd.Timestamp] | None = None,
) -> TrainingSet:
    """Features and labels for every cadence cutoff whose main label window ends by `until`.

    Everything after `until` is dropped before any feature is computed. Labels of longer horizons
    whose window is not complete by `until` are left missing, not guessed as negatives.
    """
    registry = registry or build_registry(settings)
    fc = settings.features
    con = connect(engine or fc.engine, fc)
    ev, consent = set_apart(_until(load(con, log.events, "events"), until), settings, log.consent)
    st = _until(load(con, log.stages, "stages"), until)
    it = load(con, log.items, "items") if log.items is not None else None
    ld = load(con, log.leads, "leads", lead_schema(settings)) if log.leads is not None else None
    bounds = data_bounds(ev, st)
    if bounds is None:
        raise TooLittleDataError(
            f"{_named(log.stages, 'stages')} has no stage rows"
            + (f" at or before {until:%Y-%m-%d %H:%M} UTC; choose a later cutoff" if until is not None else "")
            + "; a training set needs the leads' CRM stage history"
        )
    first, last = bounds
    data_until = until if until is not None else last
    horizon = timedelta(days=settings.training.horizon_days)
    cutoffs = cadence_cutoffs(first + timedelta(days=min_history_days), data_until - horizon, settings.features)
    if cutoff_range is not None:
        cutoffs = [c for c in cutoffs if cutoff_range[0] <= c <= cutoff_range[1]]
    if len(cutoffs) < (1 if cutoff_range is not None else 3):
        raise TooLittleDataError(
            f"only {len(cutoffs)} cutoffs fit between {first:%Y-%m-%d} and {data_until:%Y-%m-%d}"
            f" with a {settings.training.horizon_days}-day horizon; supply a longer history, a later cutoff"
            " or a shorter horizon"
        )
    inputs = (feature_input(ev, "events"), feature_input(st, "stages"), load_cutoffs(con, cutoffs), settings)
    items = feature_input(it, "items") if it is not None else None
    if (engine or fc.engine) == "tiles":
        frame = _tiled_with_labels(inputs, registry, con, items, ld)
    else:
        q = feature_query(*inputs, registry, items, stage=materializer(con), leads=ld)
        labels = label_query(q.spine, q.stages, settings)
        frame = finish(to_pandas(q.table.inner_join(labels, QKEY)))
    frame = counts_only_frame(frame.sort_values(KEY, kind="stable").reset_index(drop=True), consent, settings, registry)
    targets = Targets.from_settings(settings)
    for col in targets.label_columns:
        frame[col] = frame[col].astype("float64")
    for h in targets.horizons_days:
        late = frame["cutoff"] + timedelta(days=h) > data_until
        frame.loc[late, close_label(h)] = float("nan")
    return TrainingSet(
        frame=frame,
        features=registry.names,
        labels=targets.label_columns,
        first_cutoff=cutoffs[0],
        last_cutoff=cutoffs[-1],
        data_until=pd.Timestamp(data_until),
        definition_hash=registry_hash(settings, registry),
        categorical=registry.categorical(),
        unknown_event_types=unknown_event_types(ev, settings),
    )


def _tiled_with_labels(inputs: tuple, registry: FeatureRegistry, con: Any, items: Any, leads: Any) -> pd.DataFrame:
    """The tiles engine's feature table, and the labels on the spine of a reference query with no features."""
    from leadradar.features.tiles.build import reference_events, reference_stage, tiled_frame

    events, stages, cutoffs, settings = inputs
    features = tiled_frame(feature_query, events, stages, cutoffs, settings, registry, con, items, leads)
    q = feature_query(
        reference_events(events), stages, cutoffs, settings, registry.select([]), items, reference_stage(con), leads
    )
    labels = finish(to_pandas(label_query(q.spine, q.stages, settings)))
    return features.merge(labels, on=KEY, how="inner", validate="one_to_one")


__all__ = ["META", "TrainingSet", "build_training_set", "registry_hash"]
