"""Day tiles kept between builds: Parquet segments, and a manifest of each day's event fingerprint and segment.

A build fingerprints every day of the events (features/tiles/fingerprints.py: rows, id hashes, times),
recomputes the tiles of the days whose fingerprint changed (new days, and days that late or removed events
touched) into new segments, and reads days back from the segments that hold their current tiles. Segments
no day points to are deleted; past `MAX_SEGMENTS` the live days are compacted into one. Tiles of one grid (the
cutoffs' time of day) and one set of tile settings live under one key.

Memory follows `features.tiles_partition_events`, not the log: the stale days are computed a run of days of at most
that many events at a time (a first build too, one segment each), compaction copies a segment at a time, and a
build by partitions of leads reads only its partition's tiles (`read` with `where`).

Kept tiles are a cache of the events, never the only copy: a manifest or a segment that cannot be read (a disk
that filled, a file cut short by a crash, an edit by hand) is said in one warning line naming it, and its days are
computed again from the events.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.features.atomic import atomic_write_bytes, naming, written_whole
from leadradar.features.grid import DAY_US
from leadradar.features.locks import exclusive
from leadradar.features.progress import DAY_TILES, step
from leadradar.features.tiles.fingerprints import day_fingerprints
from leadradar.features.tiles.groups import EventsSource, groups_document, read_groups
from leadradar.features.tiles.kept_rows import KeptRows, cutoff_of
from leadradar.features.tiles.partials import day_bucket, day_tiles

TILE_VERSION = 3  # 3: session starts in one session row per lead and day
MAX_SEGMENTS = 16
SEGMENT_NAME = re.compile(r"seg-[0-9a-f]{32}\.parquet")
TILE_KEY = re.compile(r"[0-9a-f]{16}")  # `tile_key`: the folder of one set
MANIFEST = "manifest.json"  # a set's days: fingerprint and segment
GROUPS = "groups.json"  # day fingerprints of the parts of the events: a file's row groups, the store's stretches
BUILD_LOCK = ".build.lock"  # held in the tiles folder by a build, and by `forget_kept`

log = logging.getLogger(__name__)


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
        self.recomputed: list[int] = []

    def _manifest(self) -> dict[int, list]:
        return _read_days(self.dir)

    def _readable(self, days: dict[int, list]) -> dict[int, list]:
        """The days whose segment is there and whole (its Parquet footer reads); the others are dropped, warned once
        per segment, and so computed again."""
        lost: set[str] = set()
        for name, held in _by_segment(days):
            try:
                pq.read_metadata(self.dir / name)
            except (OSError, pa.ArrowException) as exc:
                lost.add(name)
                path = self.dir / name
                log.warning("kept tiles: %s cannot be read (%s); its %d days are computed again", path, exc, len(held))
        return {b: v for b, v in days.items() if v[-1] not in lost}

    def _write_manifest(self, days: dict[int, list]) -> None:
        """The manifest written whole, then every segment no day names removed."""
        _write_days(self.dir, days)
        live = {v[-1] for v in days.values()}
        for segment in self.dir.glob("seg-*.parquet"):
            if segment.name not in live:
                segment.unlink(missing_ok=True)

    def _new_segment(self, table: pa.Table) -> str:
        name = f"seg-{uuid.uuid4().hex}.parquet"
        with naming(self.dir / name):
            pq.write_table(table, self.dir / name)
        return name

    def refresh(
        self, events: ir.Table, unique: bool = False, source: EventsSource | None = None
    ) -> dict[int, list[int]]:
        """Recompute the days whose events changed and drop days with no events left; each day's fingerprint.

        `unique`: the events hold no repeated row (features/tiles/partials.py `without_repeats`). `source`: what the
        events are made of (a Parquet file's row groups, the store's stretches), whose fingerprints are kept
        (features/tiles/groups.py).
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        now = self._fingerprints(events, source)
        kept = self._readable(self._manifest())
        stale = sorted(b for b, fp in now.items() if b not in kept or kept[b][:-1] != fp)
        runs = day_runs(stale, {b: fp[0] for b, fp in now.items()}, self.settings.features.tiles_partition_events)
        segment: dict[int, str] = {}
        source = events
        for k, run in enumerate(runs):  # with nothing kept and one run, every day is stale: no filter to apply
            step(DAY_TILES, f"{len(run):,} days of {len(stale):,} changed ({k + 1} of {len(runs)})", k, len(runs))
            source = self._stale_events(events, run) if kept or len(runs) > 1 else events
            name = self._new_segment(day_tiles(source, self.tod_us, self.settings, unique=unique).to_pyarrow())
            segment |= dict.fromkeys(run, name)
        if source is not events and events.get_backend().name == "duckdb":  # the last run's events, held in memory
            events.get_backend().drop_table("lr_tile_stale_events", force=True)
        days = {b: [*fp, segment.get(b) or kept[b][-1]] for b, fp in now.items()}
        if len({v[-1] for v in days.values()}) > MAX_SEGMENTS:
            whole = self._compacted(days)
            days = {b: [*v[:-1], whole] for b, v in days.items()}
        self._write_manifest(days)
        self.recomputed = stale
        every = max(len(runs), 1)
        step(DAY_TILES, f"{len(stale):,} of {len(now):,} days computed, the others kept", every, every)
        return now

    def _fingerprints(self, events: ir.Table, source: EventsSource | None) -> dict[int, list[int]]:
        """Each day's fingerprint: from the kept and new fingerprints of the source's parts on DuckDB (this source's
        parts are kept, the others' dropped), or from a scan of every event."""
        con = events.get_backend()
        if source is None or con.name != "duckdb":
            return day_fingerprints(events, self.tod_us)
        days, groups = source.day_fingerprints(con, self.tod_us, read_groups(self.dir / GROUPS))
        atomic_write_bytes(groups_document(groups), self.dir / GROUPS)
        return days

    def _stale_events(self, events: ir.Table, stale: list[int]) -> ir.Table:
        """The stale days' events, materialised by one scan, so the tile query's several passes read only them.

        The time range around them comes first, on the events' own times too (`within_times`): an engine skips the
        Parquet row groups or Arrow batches outside it (a nightly build's one new day then reads a few of them, not
        the whole log)."""
        from leadradar.features.engines import materializer, within_times

        lo, hi = self.tod_us + (stale[0] - 1) * DAY_US, self.tod_us + stale[-1] * DAY_US
        few = within_times(events, lo, hi)
        few = few.filter(day_bucket(few.us, self.tod_us).isin(stale))
        return materializer(events.get_backend())("lr_tile_stale_events", few)

    def _compacted(self, days: dict[int, list]) -> str:
        """The live days' tiles copied into one new segment a segment at a time (never all of them in memory)."""
        name = f"seg-{uuid.uuid4().hex}.parquet"
        writer = None
        with naming(self.dir / name):
            try:
                for part in self._parts(days):
                    writer = writer or pq.ParquetWriter(self.dir / name, part.schema)
                    writer.write_table(part)
            finally:
                if writer is not None:
                    writer.close()
        return name

    def update(self, events: ir.Table) -> pa.Table | None:
        """`refresh`, then every day's tiles."""
        self.refresh(events)
        return self.read()

    def read(
        self, where: Callable[[ir.Table], ir.Table] | None = None, con: ibis.BaseBackend | None = None
    ) -> pa.Table | None:
        """Every kept day's tiles (None when there are none); with `where` only the rows it keeps, filtered by `con`
        as the segments are read (a partition of leads: `where` filters the events the same way). A segment whose
        footer reads but whose pages do not (a damaged disk, an edit by hand) raises `DamagedTiles` naming it."""
        days = self._manifest()
        try:
            return self._read(days, where, con)
        except DamagedTiles:
            raise
        except Exception as exc:  # an engine's own error types; told apart by reading each segment whole
            damaged = [name for name, _ in _by_segment(days) if not _whole(self.dir / name)]
            if not damaged:
                raise
            raise DamagedTiles(damaged) from exc

    def drop_damaged(self, names: list[str]) -> None:
        """Damaged segments removed, each said in one warning line, and their days forgotten: computed again."""
        days = self._manifest()
        for name in names:
            held = sum(1 for v in days.values() if v[-1] == name)
            log.warning("kept tiles: %s cannot be read; its %d days are computed again", self.dir / name, held)
        self._write_manifest({b: v for b, v in days.items() if v[-1] not in names})  # which removes the segments

    def _read(
        self, days: dict[int, list], where: Callable[[ir.Table], ir.Table] | None, con: ibis.BaseBackend | None
    ) -> pa.Table | None:
        if where is None:
            parts = list(self._parts(days))
            return pa.concat_tables(parts) if parts else None
        assert con is not None  # nosec B101 # a filter is an engine's expression
        tables = [
            where(con.read_parquet(self.dir / s).filter(lambda t, bs=bs: t.bucket.isin(bs)))
            for s, bs in _by_segment(days)
        ]
        return ibis.union(*tables).to_pyarrow() if tables else None

    def _parts(self, days: dict[int, list]) -> Iterator[pa.Table]:
        for s, bs in _by_segment(days):
            try:
                part = pq.read_table(self.dir / s, filters=[("bucket", "in", bs)])
            except (OSError, pa.ArrowException) as exc:
                raise DamagedTiles([s]) from exc
            yield part


class DamagedTiles(Exception):
    """Kept segments that cannot be read whole; a build drops them (`TileStore.drop_damaged`) and tries again."""

    def __init__(self, names: list[str]):
        super().__init__(f"damaged kept tile segments: {', '.join(names)}")
        self.names = names


def _whole(path: Path) -> bool:
    """Whether every page of a Parquet file reads."""
    try:
        pq.read_table(path)
    except (OSError, pa.ArrowException):
        return False
    return True


def prune_sets(root: Path, current: Path, keep: int) -> list[Path]:
    """Remove the sets of kept tiles under `root` built least recently beyond `keep` (by their manifest's time, the
    current one always kept): those of a cutoff time or tile settings no build has used since. The removed ones."""
    sets = [d for d in Path(root).iterdir() if d.is_dir() and TILE_KEY.fullmatch(d.name) and d != current]
    sets.sort(key=_last_built, reverse=True)
    removed = sets[max(keep - 1, 0) :]
    for d in removed:
        log.info("kept tiles: removed %s, last built %s (features.tiles_kept_sets = %d)", d, _last_built(d), keep)
        shutil.rmtree(d, ignore_errors=True)
    return removed


def forget_kept(root: Path, tenant: str, lead: str) -> int:
    """One lead's rows taken out of every kept tile segment under `root`, and every kept rows file that holds it
    removed (deletion on request): they are made from its events, which forgetting deletes. How many rows went."""

    def of_lead(table: pa.Table) -> pa.ChunkedArray:
        return pc.and_(pc.equal(table["tenant_id"], tenant), pc.equal(table["lead_id"], lead))

    return _take_out(Path(root), of_lead, of_lead)


def purge_kept_before(root: Path, cutoff_us: int) -> int:
    """Retention: the kept tiles of every day that began before `cutoff_us` (its events are deleted) and the kept
    rows of cutoffs before it. A day is taken as beginning at midnight UTC, before the grid's time of day, so a day
    that straddles the cutoff goes too. How many rows went."""

    def early_days(tiles: pa.Table) -> pa.ChunkedArray:
        return pc.less(pc.multiply(pc.subtract(tiles["bucket"], 1), DAY_US), cutoff_us)

    def early_rows(rows: pa.Table) -> pa.ChunkedArray:
        return pc.less(pc.cast(rows["cutoff"], pa.int64()), cutoff_us)

    return _take_out(Path(root), early_days, early_rows)


def _take_out(root: Path, tiles: Picked, rows: Picked) -> int:
    """The tile rows `tiles` picks taken out of every kept segment under `root`, and every kept rows file holding a
    row `rows` picks removed; the days and cutoffs they touched forgotten by the manifests, so a build computes
    them again from its events (a file out of our reach may still hold what the store no longer does: its build
    must not read back tiles without it). A file that cannot be read is removed, as a cache. Rows taken out."""
    if not root.is_dir():
        return 0
    removed = 0
    with exclusive(root, BUILD_LOCK):
        for set_dir in sorted(d for d in root.iterdir() if d.is_dir() and TILE_KEY.fullmatch(d.name)):
            days: set[int] = set()
            for path in sorted(set_dir.glob("seg-*.parquet")):
                table = _kept_file(path)
                if table is None:
                    continue
                picked = tiles(table)
                if pc.any(picked).as_py():
                    taken = table.filter(picked)
                    days |= set(taken["bucket"].to_pylist())
                    removed += taken.num_rows
                    with written_whole(path) as tmp:
                        pq.write_table(table.filter(pc.invert(picked)), tmp)
            _forget_days(set_dir, days)
            kept, cutoffs = KeptRows(set_dir / "rows"), []
            for path in sorted(kept.dir.glob("rows-*.arrow")):
                table, cutoff = _kept_file(path), cutoff_of(path)
                n = int(pc.sum(rows(table)).as_py() or 0) if table is not None else 0
                if n and cutoff is not None:
                    cutoffs.append(cutoff)
                    removed += n
            kept.drop(cutoffs)
    return removed


# The rows of a kept table (day tiles, or feature rows) to take out.
Picked = Callable[[pa.Table], pa.ChunkedArray]


def _kept_file(path: Path) -> pa.Table | None:
    """A kept segment or rows file read whole; None, and the file removed, when it cannot be read (a cache)."""
    try:
        if path.suffix == ".arrow":  # uncompressed: mapped, only the columns a pick reads leave the disk
            with pa.memory_map(str(path)) as source:
                return ipc.open_file(source).read_all()
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        log.warning("kept tiles: %s cannot be read (%s); removed, a build computes what it held again", path, exc)
        path.unlink(missing_ok=True)
        return None


def _forget_days(set_dir: Path, days: set[int]) -> None:
    """These days dropped from a set's manifest: the next build computes their tiles again (and removes a segment
    no day names any more)."""
    if days and (set_dir / MANIFEST).exists():
        _write_days(set_dir, {b: v for b, v in _read_days(set_dir).items() if b not in days})


def _read_days(set_dir: Path) -> dict[int, list]:
    """A set's manifest, per day: [*event fingerprint, segment file]; none from a manifest that cannot be read
    (warned)."""
    path = set_dir / MANIFEST
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != TILE_VERSION:
            return {}
        days = {int(k): v for k, v in doc["days"].items()}
        if not all(_is_day_entry(v) for v in days.values()):
            raise ValueError("a day's entry is not [fingerprint..., segment file]")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("kept tiles: %s cannot be read (%s); every day is computed again", path, exc)
        return {}
    return days


def _write_days(set_dir: Path, days: dict[int, list]) -> None:
    """A set's manifest written whole (renamed over the last)."""
    doc = {"version": TILE_VERSION, "days": {str(k): v for k, v in sorted(days.items())}}
    atomic_write_bytes(json.dumps(doc).encode(), set_dir / MANIFEST)


def _last_built(d: Path) -> float:
    try:
        return (d / MANIFEST).stat().st_mtime
    except OSError:
        return 0.0


def _by_segment(days: dict[int, list]) -> list[tuple[str, list[int]]]:
    """Each segment that holds live days, with those days."""
    by_segment: dict[str, list[int]] = defaultdict(list)
    for b, v in days.items():
        by_segment[v[-1]].append(b)
    return sorted(by_segment.items())


def _is_day_entry(value: object) -> bool:
    """[*integer fingerprint, segment file name], as `refresh` writes it."""
    if not isinstance(value, list) or not value or not isinstance(value[-1], str):
        return False
    return SEGMENT_NAME.fullmatch(value[-1]) is not None and all(isinstance(x, int) for x in value[:-1])


def day_runs(days: list[int], rows: dict[int, int], limit: int) -> list[list[int]]:
    """`days` (sorted) cut into runs of at most `limit` rows each by `rows` per day (a bigger day alone)."""
    runs: list[list[int]] = []
    total = 0
    for b in days:
        if not runs or total + rows[b] > limit:
            runs.append([])
            total = 0
        runs[-1].append(b)
        total += rows[b]
    return runs
