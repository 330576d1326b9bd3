"""Day tiles kept between builds: Parquet segments, and a manifest of each day's event fingerprint and segment.

A build fingerprints every day of the events (features/tiles/fingerprints.py: rows, id hashes, times),
recomputes the tiles of the days whose fingerprint changed (new days, and days that late or removed events
touched) into one new segment, and reads days back from the segments that hold their current tiles. Segments
no day points to are deleted; past `MAX_SEGMENTS` the live days are compacted into one. Tiles of one grid (the
cutoffs' time of day) and one set of tile settings live under one key.
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
from leadradar.features.grid import DAY_US
from leadradar.features.tiles.fingerprints import day_fingerprints
from leadradar.features.tiles.partials import day_bucket, day_tiles

TILE_VERSION = 3  # 3: session starts in one session row per lead and day
MAX_SEGMENTS = 16


def tile_key(settings: Settings, tod_us: int) -> str:
    """Tiles depend on the grid and on these settings only; a change of either starts a new set."""
    fc, ev = settings.features, settings.events
    spec = [TILE_VERSION, tod_us, list(ev.types), fc.session_gap_minutes, fc.utc_offset_hours]
    spec += [fc.night_start_hour, fc.night_end_hour]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


class TileStore:
    """One directory of kept day tiles; `refresh` brings them up to date with the events, `read` returns them."""

    def __init__(self, root: Path, settings: Settings, tod_us: int):
        self.settings, self.tod_us = settings, tod_us
        self.dir = Path(root) / tile_key(settings, tod_us)
        self.manifest_path = self.dir / "manifest.json"
        self.recomputed: list[int] = []

    def _manifest(self) -> dict[int, list]:
        """Per day: [*event fingerprint, segment file]."""
        if not self.manifest_path.exists():
            return {}
        doc = json.loads(self.manifest_path.read_text())
        return {int(k): v for k, v in doc["days"].items()} if doc.get("version") == TILE_VERSION else {}

    def _write_manifest(self, days: dict[int, list]) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": TILE_VERSION, "days": {str(k): v for k, v in sorted(days.items())}}))
        os.replace(tmp, self.manifest_path)
        live = {v[-1] for v in days.values()}
        for path in self.dir.glob("seg-*.parquet"):
            if path.name not in live:
                path.unlink(missing_ok=True)

    def _new_segment(self, table: pa.Table) -> str:
        name = f"seg-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, self.dir / name)
        return name

    def refresh(self, events: ir.Table, unique: bool = False) -> dict[int, list[int]]:
        """Recompute the days whose events changed and drop days with no events left; each day's fingerprint.

        `unique`: the events hold no repeated row (features/tiles/partials.py `without_repeats`).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        now = day_fingerprints(events, self.tod_us)
        kept = self._manifest()
        stale = sorted(b for b, fp in now.items() if b not in kept or kept[b][:-1] != fp)
        segment = ""
        if stale:  # with nothing kept, every day is stale: no filter to apply
            source = self._stale_events(events, stale) if kept else events
            segment = self._new_segment(day_tiles(source, self.tod_us, self.settings, unique=unique).to_pyarrow())
        days = {b: [*fp, segment if b in stale else kept[b][-1]] for b, fp in now.items()}
        if len({v[-1] for v in days.values()}) > MAX_SEGMENTS:
            whole = self._new_segment(self._read(days))
            days = {b: [*v[:-1], whole] for b, v in days.items()}
        self._write_manifest(days)
        self.recomputed = stale
        return now

    def _stale_events(self, events: ir.Table, stale: list[int]) -> ir.Table:
        """The stale days' events, materialised by one scan, so the tile query's several passes read only them.

        The time range around them comes first: an engine skips the Parquet row groups outside it (a nightly
        build's one new day then reads a few of them, not the whole log)."""
        from leadradar.features.engines import materializer

        lo, hi = self.tod_us + (stale[0] - 1) * DAY_US, self.tod_us + stale[-1] * DAY_US
        few = events.filter((events.us > lo) & (events.us <= hi), day_bucket(events.us, self.tod_us).isin(stale))
        return materializer(events.get_backend())("lr_tile_stale_events", few)

    def update(self, events: ir.Table) -> pa.Table | None:
        """`refresh`, then every day's tiles."""
        self.refresh(events)
        return self.read()

    def read(self) -> pa.Table | None:
        """Every kept day's tiles (None when there are none)."""
        return self._read(self._manifest())

    def _read(self, days: dict[int, list]) -> pa.Table | None:
        by_segment: dict[str, list[int]] = defaultdict(list)
        for b, v in days.items():
            by_segment[v[-1]].append(b)
        parts = [pq.read_table(self.dir / s, filters=[("bucket", "in", bs)]) for s, bs in sorted(by_segment.items())]
        return pa.concat_tables(parts) if parts else None
