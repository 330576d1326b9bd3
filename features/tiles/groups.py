"""Day fingerprints of a Parquet events file kept per row group, under a digest of the group's bytes.

A nightly build given a file that grew by a day fingerprinted every event of it again: at 10.6 M events 0.69 s of
a 1.5 s increment. A file its exporter writes again each night, the log in arrival order, has its earlier row groups
byte for byte as they were (DuckDB's ordered COPY: 23 of 24 groups; pyarrow given the rows in the same chunks: all
but the last), so each group's per-day fingerprints are kept under a digest of its bytes and of the query that reads
it, and a build scans only the groups it has not seen. A group corrected in place has other bytes and is scanned
again: kept fingerprints never stand for data they were not computed from. The same rows laid out by another writer
(other pages) are scanned whole, as before. Day fingerprints are sums (features/tiles/fingerprints.py), so a day's is
the sum of its groups'.

A folder of files (a nightly export's, a file per night) is kept by file (`EventsFolder`): a file written once is
never fingerprinted again, whatever wrote it, and one written again has other bytes.

A log read from the store's copy (features/store/mirror.py) is kept the same way by its stretches: each part of the
copy never changes once written, so its fingerprints are kept under its name (and how its times were taken) and a
night fingerprints only the part stored since (`EventsBlocks`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from leadradar.features.engines import scan_files
from leadradar.features.radar_log import parquet_files
from leadradar.features.tiles.fingerprints import fingerprint_rows

GROUPS_VERSION = 1
FILE = "lr_file"  # a folder's scan: the file each row is from
ROW_NUMBER = "file_row_number"  # DuckDB's row number of a Parquet scan: a group's rows are a range of it
GROUP = "lr_group"  # a row's group, carried through the view
SCAN_VIEW = "lr_events_groups"

log = logging.getLogger(__name__)

# A group's fingerprints: per day (bucket), [rows, sum of row hashes, sum of times].
DayPrints = dict[int, list[int]]
# How a build makes its events of an engine's table of some of their rows: view(table, keep), `keep` columns of the
# table carried through (the build's own calls: features/build.py `events_source`).
View = Callable[[ir.Table, tuple[str, ...]], ir.Table]


@dataclass(frozen=True)
class EventsFile:
    """A Parquet events file and how a build makes its events of it: `view(scan, keep)` of the engine's scan of the
    file, the same calls as the build's own (`keep`: columns of the scan to carry through). Given to a tiles build,
    its day fingerprints are kept per row group."""

    path: Path
    view: View

    def day_fingerprints(
        self, con: ibis.BaseBackend, tod_us: int, kept: dict[str, DayPrints]
    ) -> tuple[DayPrints, dict[str, DayPrints]]:
        return file_day_fingerprints(self, con, tod_us, kept)


@dataclass(frozen=True)
class EventsBlocks:
    """An events table in memory made of stretches that never change under their keys (the store's copy of its log:
    `RadarLog.event_blocks`, (key, rows) in order), and how a build makes its events of an engine's table of some of
    its rows (`view(table, keep)`, as for `EventsFile`). Given to a tiles build, each stretch's day fingerprints are
    kept: a night fingerprints the stretch stored since, not the log."""

    table: pa.Table
    blocks: tuple[tuple[str, int], ...]
    view: View

    def day_fingerprints(
        self, con: ibis.BaseBackend, tod_us: int, kept: dict[str, DayPrints]
    ) -> tuple[DayPrints, dict[str, DayPrints]]:
        """The table's day fingerprints, and each stretch's by key; the stretches `kept` holds are not scanned."""
        starts = _starts([rows for _, rows in self.blocks])
        scan = con.create_view(SCAN_VIEW, ibis.memtable(self._with_block(0, 0, 0)), overwrite=True)
        try:
            made = recipe(self.view, scan, tod_us, None)
            keys = [_digest(made, f"{key}:{rows}") for key, rows in self.blocks]
            fresh = _fresh(keys, kept)
            scanned: dict[int, DayPrints] = {b: {} for b in fresh}
            if fresh:
                rows = pa.concat_tables([self._with_block(b, starts[b], starts[b + 1]) for b in fresh])
                scan = con.create_view(SCAN_VIEW, ibis.memtable(rows), overwrite=True)
                scanned = _by_group(fingerprint_rows(self.view(scan, (GROUP,)), tod_us, by=(GROUP,)), scanned)
        finally:
            con.drop_view(SCAN_VIEW, force=True)
        return _summed(keys, kept, scanned)

    def _with_block(self, block: int, start: int, stop: int) -> pa.Table:
        rows = self.table.slice(start, stop - start)
        return rows.append_column(GROUP, pa.array(np.full(rows.num_rows, block, dtype=np.int64)))


@dataclass(frozen=True)
class EventsFolder:
    """A folder of Parquet events files (a nightly export's files, a day or a batch each) and how a build makes its
    events of the engine's scan of them (`view`, as for `EventsFile`). Given to a tiles build, each file's day
    fingerprints are kept under a digest of its bytes: a night fingerprints the files written since, whatever wrote
    them; a file written again (corrected, or compacted with others) is fingerprinted again."""

    path: Path
    view: View

    def day_fingerprints(
        self, con: ibis.BaseBackend, tod_us: int, kept: dict[str, DayPrints]
    ) -> tuple[DayPrints, dict[str, DayPrints]]:
        """The folder's day fingerprints, and each file's by key; the files `kept` holds are not scanned."""
        files = parquet_files(self.path)
        try:
            made = recipe(self.view, scan_files(con, files, SCAN_VIEW), tod_us, None)
            with ThreadPoolExecutor(max_workers=2) as pool:  # hashing frees the interpreter
                keys = list(pool.map(partial(_file_key, recipe_digest=made), files))
            fresh = _fresh(keys, kept)
            scanned: dict[int, DayPrints] = {i: {} for i in fresh}
            if fresh:
                scan = scan_files(con, [files[i] for i in fresh], SCAN_VIEW, filename=FILE)
                query = fingerprint_rows(self.view(scan, (FILE,)), tod_us, by=(FILE,))
                scanned = _by_group(query, scanned, FILE, {str(files[i]): i for i in fresh})
        finally:
            con.drop_view(SCAN_VIEW, force=True)
        return _summed(keys, kept, scanned)


EventsSource = EventsFile | EventsBlocks | EventsFolder


def file_day_fingerprints(
    file: EventsFile, con: ibis.BaseBackend, tod_us: int, kept: dict[str, DayPrints]
) -> tuple[DayPrints, dict[str, DayPrints]]:
    """The file's day fingerprints, and each of its row groups' by key (to keep for the next build): the groups
    `kept` holds are not scanned."""
    meta = pq.read_metadata(file.path)
    scan = con.read_parquet(str(file.path), table_name=SCAN_VIEW, **{ROW_NUMBER: True})
    try:
        keys = group_keys(file.path, meta, recipe(file.view, scan, tod_us, meta))
        scanned = _scanned(file, scan, tod_us, meta, _fresh(keys, kept))
    finally:
        con.drop_view(SCAN_VIEW, force=True)
    return _summed(keys, kept, scanned)


def _starts(rows: list[int]) -> list[int]:
    """Each part's first row, and the rows of all after the last."""
    return [0, *accumulate(rows)]


def _fresh(keys: list[str], kept: dict[str, DayPrints]) -> list[int]:
    """The places of the parts to scan: one for each key not kept (parts of equal keys are one scan)."""
    return sorted({k: i for i, k in enumerate(keys) if k not in kept}.values())


def _summed(
    keys: list[str], kept: dict[str, DayPrints], scanned: dict[int, DayPrints]
) -> tuple[DayPrints, dict[str, DayPrints]]:
    """Each part's fingerprints (kept, or scanned now by its place) by key, and the day fingerprints they add up to."""
    parts = {k: kept[k] if k in kept else scanned[i] for i, k in enumerate(keys) if k in kept or i in scanned}
    days: DayPrints = {}
    for k in keys:
        for b, fp in parts[k].items():
            days[b] = [a + x for a, x in zip(days.get(b, [0, 0, 0]), fp, strict=True)]
    return days, parts


def _by_group(
    query: ir.Table, out: dict[int, DayPrints], by: str = GROUP, place: dict[str, int] | None = None
) -> dict[int, DayPrints]:
    """A `fingerprint_rows(..., by=(by,))` query's rows into `out`, per part and day: the part is the column's value,
    or its place in `place` (a folder's file names)."""
    for r in query.to_pyarrow().to_pylist():
        part = r[by] if place is None else place[r[by]]
        out[part][int(r["bucket"])] = [int(r["rows"]), int(r["hsum"]), int(r["usum"])]
    return out


def _digest(recipe_digest: str, what: str) -> str:
    return hashlib.sha256(f"{recipe_digest}:{what}".encode()).hexdigest()[:32]


def recipe(view: View, scan: ir.Table, tod_us: int, meta: pq.FileMetaData | None) -> str:
    """What a part's fingerprints follow besides its bytes: the query that makes them (the view's filters, casts
    and settings compiled to SQL), the grid, the file's schema (a folder's files: each file's, in its key) and the
    engine's version (its hash function)."""
    sql = ibis.to_sql(fingerprint_rows(view(scan, ()), tod_us), dialect="duckdb")
    spec = [GROUPS_VERSION, duckdb.__version__, _columns(meta) if meta is not None else None, tod_us, str(sql)]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def _columns(meta: pq.FileMetaData) -> list[list]:
    return [[c.path, c.physical_type, str(c.logical_type), c.max_definition_level] for c in meta.schema]


def _file_key(path: Path, recipe_digest: str) -> str:
    """A folder's file by the digests of its row groups' bytes, its schema and the folder's recipe."""
    meta = pq.read_metadata(path)
    made = _digest(recipe_digest, json.dumps(_columns(meta)))
    return _digest(made, ",".join(group_keys(path, meta, made, threads=1)))


def group_keys(path: Path, meta: pq.FileMetaData, recipe_digest: str, threads: int = 2) -> list[str]:
    """Per row group, a digest of its column chunks' bytes (pages, their headers and dictionaries) and the recipe;
    the groups read in `threads` threads (hashing frees the interpreter)."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        view = memoryview(data)

        def digest(g: int) -> str:
            group = meta.row_group(g)
            h = hashlib.sha256(f"{recipe_digest}:{group.num_rows}".encode())
            for c in range(group.num_columns):
                chunk = group.column(c)
                start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                h.update(view[start : start + chunk.total_compressed_size])
            return h.hexdigest()[:32]

        try:
            if threads <= 1:
                return [digest(g) for g in range(meta.num_row_groups)]
            with ThreadPoolExecutor(max_workers=threads) as pool:
                return list(pool.map(digest, range(meta.num_row_groups)))
        finally:
            view.release()


def _scanned(
    file: EventsFile, scan: ir.Table, tod_us: int, meta: pq.FileMetaData, groups: list[int]
) -> dict[int, DayPrints]:
    """The fingerprints of these row groups (sorted), by one scan of their ranges of rows: DuckDB skips the others'
    pages, and each row's group is found from its row number by a search over the groups' first rows."""
    out: dict[int, DayPrints] = {g: {} for g in groups}
    if not groups:
        return out
    starts = _starts([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    number = scan[ROW_NUMBER]
    runs: list[list[int]] = []
    for g in groups:
        if runs and runs[-1][-1] == g - 1:
            runs[-1].append(g)
        else:
            runs.append([g])
    if len(groups) < meta.num_row_groups:
        scan = scan.filter(ibis.or_(*((number >= starts[r[0]]) & (number < starts[r[-1] + 1]) for r in runs)))

    def group_of(lo: int, hi: int) -> ir.IntegerValue:
        if hi - lo == 1:
            return ibis.literal(groups[lo], "int64")
        mid = (lo + hi) // 2
        return ibis.ifelse(number < starts[groups[mid]], group_of(lo, mid), group_of(mid, hi))

    rows = file.view(scan.mutate(**{GROUP: group_of(0, len(groups))}), (GROUP,))
    return _by_group(fingerprint_rows(rows, tod_us, by=(GROUP,)), out)


def read_groups(path: Path) -> dict[str, DayPrints]:
    """Kept group fingerprints; none from a file that is not there, and none (warned) from one that cannot be read."""
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != GROUPS_VERSION:
            return {}
        return {str(k): {int(b): [int(x) for x in fp] for b, fp in days.items()} for k, days in doc["groups"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("kept tiles: %s cannot be read (%s); every part of the events is fingerprinted again", path, exc)
        return {}


def groups_document(groups: dict[str, DayPrints]) -> bytes:
    """The kept group fingerprints as `read_groups` reads them."""
    doc = {"version": GROUPS_VERSION, "groups": {k: {str(b): fp for b, fp in d.items()} for k, d in groups.items()}}
    return json.dumps(doc).encode()
