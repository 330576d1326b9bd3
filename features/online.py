"""Online features: the batch feature query, compiled once, run on a request's own events.

The query is the same Ibis expression as batch, from the same registry; only the executor
differs. A scoring request holds a few hundred rows, where an embedded SQLite answers in about a
millisecond (DuckDB's fixed cost per expression makes this wide query take ~150 ms at that size).
A parity test holds online equal to batch.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.build import compiled_query, finish, lead_schema
from leadradar.features.contract import CUTOFF_SCHEMA, FEATURE_EVENT_SCHEMA, FEATURE_ITEM_SCHEMA, FEATURE_STAGE_SCHEMA
from leadradar.features.cutoffs import cutoff_frame, epoch_us
from leadradar.features.registry import FeatureRegistry

BASE_INPUTS = {
    "lr_events": FEATURE_EVENT_SCHEMA,
    "lr_stages": FEATURE_STAGE_SCHEMA,
    "lr_items": FEATURE_ITEM_SCHEMA,
    "lr_cutoffs": CUTOFF_SCHEMA,
}
SQL_TYPES = {pa.string(): "TEXT", pa.int64(): "INTEGER", pa.float64(): "REAL"}


def with_us(table: pa.Table) -> pa.Table:
    """A contract table with its `ts` as integer UTC microseconds, the feature query's time."""
    ts = table["ts"]
    if ts.type != pa.timestamp("us", tz="UTC"):
        ts = ts.cast(pa.timestamp("us", tz="UTC"))
    return table.append_column("us", pc.cast(ts, pa.int64()))


def _cutoff_table(cutoffs: Sequence[pd.Timestamp]) -> pa.Table:
    """The cutoffs as the query's input; one (a scoring request's) without pandas, which costs a millisecond."""
    if len(cutoffs) == 1:
        return pa.table({"cutoff_us": pa.array([epoch_us(cutoffs[0])], pa.int64())})
    return pa.Table.from_pandas(cutoff_frame(list(cutoffs)), preserve_index=False)


class OnlineFeatures:
    """Compile once per process (or read what a process compiled before from `cache`); `compute` is then cheap
    enough for a scoring request."""

    def __init__(
        self,
        settings: Settings,
        registry: FeatureRegistry,
        skip: tuple[str, ...] = (),
        given: tuple[str, ...] = (),
        cache: Path | None = None,
    ):
        """`skip` names intermediate tables not to fill (the registry reads none of their columns); `given` those
        the caller fills (`compute_rows(given=...)`) instead of the query."""
        compiled = compiled_query(settings, registry, skip, given, cache)
        self.stages = compiled.stages
        self.inputs = {**BASE_INPUTS, "lr_leads": lead_schema(settings), **compiled.provided}
        self.sql = compiled.sql
        self.names = registry.names
        self.categorical = set(registry.categorical())
        self._local = threading.local()

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(":memory:", check_same_thread=True)
            for name, schema in self.inputs.items():
                cols = ", ".join(f'"{f.name}" {SQL_TYPES[f.type]}' for f in schema)
                con.execute(f"CREATE TEMP TABLE {name} ({cols})")
            # Stage tables live as long as the connection: refilling them keeps SQLite's
            # prepared statements valid, where DROP/CREATE would recompile every query.
            for name, sql in self.stages:
                con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
                con.execute(f"DELETE FROM {name}")  # nosec B608 # empty, as each call finds it (an aggregate makes a row)
            self._local.con = con
        return con

    def compute_rows(
        self,
        events: pa.Table,
        stages: pa.Table | None,
        cutoffs: Sequence[pd.Timestamp],
        items: pa.Table | None = None,
        leads: pa.Table | None = None,
        given: dict[str, pa.Table] | None = None,
    ) -> tuple[list[str], list[tuple]]:
        """Column names and raw rows of the feature query over the given contract tables (with `ts`)."""
        con = self._con()
        data = {
            "lr_events": with_us(events),
            "lr_stages": with_us(stages) if stages is not None else None,
            "lr_items": items,
            "lr_cutoffs": _cutoff_table(cutoffs),
            "lr_leads": leads,
            **(given or {}),
        }
        # A given table that is the very object the last request of this thread loaded stays loaded (a kept lead's
        # item rows, reused while its events keep their days); `held` keeps it alive, so identity cannot be reused.
        held: dict[str, pa.Table] = self._local.__dict__.setdefault("held", {})
        filled: list[str] = []  # emptied again after the query: each call finds its tables empty but the held ones
        try:
            for name, schema in self.inputs.items():
                table = data[name]
                if name in held:
                    if table is held[name]:
                        continue
                    del held[name]
                    con.execute(f"DELETE FROM {name}")  # nosec B608 # the compiled query's own table names
                if table is None or table.num_rows == 0:
                    continue
                cols = table.select(schema.names).cast(schema).to_pydict()
                marks = ", ".join("?" * len(schema.names))
                insert = f"INSERT INTO {name} VALUES ({marks})"  # nosec B608 # the compiled query's own table names; values are bound
                if given and name in given:
                    held[name] = table
                else:
                    filled.append(name)
                con.executemany(insert, zip(*(cols[n] for n in schema.names)))
            for name, sql in self.stages:
                filled.append(name)
                con.execute(f"INSERT INTO {name} {sql}")  # nosec B608 # the compiled query's own table names
            cur = con.execute(self.sql)
            return [d[0] for d in cur.description], cur.fetchall()
        except BaseException:
            filled += held
            held.clear()
            raise
        finally:
            for name in filled:
                con.execute(f"DELETE FROM {name}")  # nosec B608 # the compiled query's own table names

    def compute(
        self,
        events: pa.Table,
        stages: pa.Table | None,
        cutoffs: Sequence[pd.Timestamp],
        items: pa.Table | None = None,
        leads: pa.Table | None = None,
    ) -> pd.DataFrame:
        """Feature rows for the leads open at each cutoff, in the batch shape (one row per open lead)."""
        names, rows = self.compute_rows(events, stages, cutoffs, items, leads)
        n_meta = len(names) - len(self.names)
        meta = pd.DataFrame.from_records([r[:n_meta] for r in rows], columns=names[:n_meta])
        numeric = [n for n in self.names if n not in self.categorical]
        idx = [names.index(n) for n in numeric]
        matrix = np.array([[r[i] for i in idx] for r in rows], dtype=np.float64).reshape(len(rows), len(idx))
        values = pd.DataFrame(matrix, columns=numeric)
        for name in self.categorical:
            values[name] = pd.Series([r[names.index(name)] for r in rows], dtype="string")
        return finish(pd.concat([meta, values[self.names]], axis=1))
