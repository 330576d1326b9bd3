"""Day tiles kept between builds: Parquet partitioned by day, and a manifest of each day's event fingerprint.

A build fingerprints every day of the events (rows and a sum of row hashes), recomputes the tiles of the
days whose fingerprint changed (new days, and days that late or removed events touched) and reads the
rest back. Tiles of one grid (the cutoffs' time of day) and one set of tile settings live under one key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.dataset as ds

from leadradar.config import Settings
from leadradar.features.tiles.partials import day_fingerprints, day_tiles

TILE_VERSION = 1
PARTITIONING = ds.partitioning(pa.schema([("bucket", pa.int64())]), flavor="hive")


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
        self.days_dir = self.dir / "days"
        self.manifest_path = self.dir / "manifest.json"
        self.recomputed: list[int] = []

    def _manifest(self) -> dict[int, list[int]]:
        if not self.manifest_path.exists():
            return {}
        return {int(k): v for k, v in json.loads(self.manifest_path.read_text())["days"].items()}

    def _write_manifest(self, days: dict[int, list[int]]) -> None:
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": TILE_VERSION, "days": {str(k): v for k, v in sorted(days.items())}}))
        os.replace(tmp, self.manifest_path)

    def update(self, events: ir.Table) -> pa.Table | None:
        """Recompute the days whose events changed, drop days with no events left, and read every day back."""
        self.dir.mkdir(parents=True, exist_ok=True)
        prints = day_fingerprints(events, self.tod_us).to_pyarrow()
        columns = (prints[c].to_pylist() for c in ("bucket", "rows", "hsum"))
        now = {int(b): [int(r), int(h)] for b, r, h in zip(*columns, strict=True)}
        kept = self._manifest()
        stale = sorted(b for b, fp in now.items() if kept.get(b) != fp)
        for b in [*stale, *(b for b in kept if b not in now)]:
            shutil.rmtree(self.days_dir / f"bucket={b}", ignore_errors=True)
        if stale:
            fresh = day_tiles(events, self.tod_us, self.settings, days=stale).to_pyarrow()
            ds.write_dataset(
                fresh,
                self.days_dir,
                format="parquet",
                partitioning=PARTITIONING,
                basename_template=f"tiles-{os.getpid()}-{{i}}.parquet",
                existing_data_behavior="overwrite_or_ignore",
            )
        self._write_manifest(now)
        self.recomputed = stale
        return self.read()

    def read(self) -> pa.Table | None:
        """Every kept day's tiles (None when there are none)."""
        days = list(self._manifest())
        if not days or not self.days_dir.exists():
            return None
        data = ds.dataset(self.days_dir, format="parquet", partitioning=PARTITIONING)
        return data.to_table(filter=ds.field("bucket").isin(days))
