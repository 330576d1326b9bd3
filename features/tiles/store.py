"""Day tiles kept between builds: Parquet segments, and a manifest of each day's event fingerprint and segment.

A build fingerprints every day of the events (rows and a sum of row hashes), recomputes the tiles of the
days whose fingerprint changed (new days, and days that late or removed events touched) into one new
segment, and reads every day back from the segment that holds its current tiles. Segments no day points
to are deleted; past `MAX_SEGMENTS` the live days are compacted into one. Tiles of one grid (the cutoffs'
time of day) and one set of tile settings live under one key.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import defaultdict
from pathlib import Path

import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.features.tiles.partials import day_fingerprints, day_tiles

TILE_VERSION = 2
MAX_SEGMENTS = 16


def tile_key(settings: Settings, tod_us: int) -> str:
    """Tiles depend on the grid and on these settings only; a change of either starts a new set."""
    fc, ev = settings.features, settings.events
    spec = [TILE_VERSION, tod_us, list(ev.types), fc.session_gap_minutes, fc.utc_offset_hours]
    spec += [fc.night_start_hour, fc.night_end_hour]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


class TileStore:
    """One directory of kept day tiles; `update` brings them up to date with the events and returns them all."""

    def __init__(self, root: Path, settings: Settings, tod_us: int):
        self.settings, self.tod_us = settings, tod_us
        self.dir = Path(root) / tile_key(settings, tod_us)
        self.manifest_path = self.dir / "manifest.json"
        self.recomputed: list[int] = []

    def _manifest(self) -> dict[int, list]:
        """Per day: [event rows, hash sum, segment file]."""
        if not self.manifest_path.exists():
            return {}
        return {int(k): v for k, v in json.loads(self.manifest_path.read_text())["days"].items()}

    def _write_manifest(self, days: dict[int, list]) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": TILE_VERSION, "days": {str(k): v for k, v in sorted(days.items())}}))
        os.replace(tmp, self.manifest_path)
        live = {v[2] for v in days.values()}
        for path in self.dir.glob("seg-*.parquet"):
            if path.name not in live:
                path.unlink(missing_ok=True)

    def _new_segment(self, table: pa.Table) -> str:
        name = f"seg-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, self.dir / name)
        return name

    def update(self, events: ir.Table) -> pa.Table | None:
        """Recompute the days whose events changed, drop days with no events left, and read every day back."""
        self.dir.mkdir(parents=True, exist_ok=True)
        prints = day_fingerprints(events, self.tod_us).to_pyarrow()
        columns = (prints[c].to_pylist() for c in ("bucket", "rows", "hsum"))
        now = {int(b): [int(r), int(h)] for b, r, h in zip(*columns, strict=True)}
        kept = self._manifest()
        stale = sorted(b for b, fp in now.items() if kept.get(b, [None, None])[:2] != fp)
        segment = ""
        if stale:  # with nothing kept, every day is stale: no filter to apply
            fresh = day_tiles(events, self.tod_us, self.settings, days=stale if kept else None)
            segment = self._new_segment(fresh.to_pyarrow())
        days = {b: [*fp, segment if b in stale else kept[b][2]] for b, fp in now.items()}
        if len({v[2] for v in days.values()}) > MAX_SEGMENTS:
            whole = self._new_segment(self._read(days))
            days = {b: [*v[:2], whole] for b, v in days.items()}
        self._write_manifest(days)
        self.recomputed = stale
        return self.read()

    def read(self) -> pa.Table | None:
        """Every kept day's tiles (None when there are none)."""
        return self._read(self._manifest())

    def _read(self, days: dict[int, list]) -> pa.Table | None:
        by_segment: dict[str, list[int]] = defaultdict(list)
        for b, (_, _, segment) in days.items():
            by_segment[segment].append(b)
        parts = [pq.read_table(self.dir / s, filters=[("bucket", "in", bs)]) for s, bs in sorted(by_segment.items())]
        return pa.concat_tables(parts) if parts else None
