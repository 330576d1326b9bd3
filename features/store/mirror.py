"""A copy of a long SQLite event log in Arrow files, kept by log position: a whole-log read after the first reads only
what was stored since, not the log again (a nightly build from the store read 10.5 M events to use one more day).

SQLite commits one writer at a time, in log order, and counts every event deleted or rewritten (`log_position`): while
that count stays the same, the events up to a log position never change, so the copy is extended by the stretch after
its last position. A moved count (a lead forgotten, retention, an edit by hand), a database replaced under the same
name (the copy's last event is not the store's at that position), or a part that cannot be read starts the copy again
from the whole log. Forgetting and retention also remove the copy at once (`drop`): it holds the deleted events.

The copy holds the stored columns with their names (decoded once, when a stretch is copied; a code's name never
changes), in log order: a night reads it without decoding 10 M names a column again. It is a cache of the store,
never the only copy of an event.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from leadradar.features.atomic import atomic_write_bytes, naming
from leadradar.features.locks import exclusive

MIRROR_VERSION = 3  # 3: names, not the store's codes (2: codes; 1: Parquet parts)
MAX_PARTS = 16  # past this many parts, the copy is rewritten as one when it is next read
MANIFEST = "manifest.json"  # the stretch of the log the copy holds, and its parts in log order
LOCK = ".mirror.lock"
PART_OPTIONS = ipc.IpcWriteOptions(compression=None)  # mapped when read: no copy, no decompression
PART_BATCH = 1 << 20  # rows per batch of a part
PART_NAME = re.compile(r"part-[0-9a-f]{32}\.arrow")
# The stored event columns, in the store's read order (`_EVENT_COLUMNS`), names decoded, then the log position.
SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("event_id", pa.string()),
        ("lead", pa.string()),
        ("sales", pa.string()),
        ("us", pa.int64()),
        ("event_type", pa.string()),
        ("dwell_s", pa.float64()),
        ("item", pa.string()),
        ("referrer", pa.string()),
        ("channel", pa.string()),
        ("arrived_s", pa.int64()),
        ("seq", pa.int64()),
    ]
)

# The stored events in the stretch of the log (after, upto], in log order, as a `SCHEMA` table.
Stretch = Callable[[int, int], pa.Table]
# The id of the event stored at a log position; None when none is.
EventIdAt = Callable[[int], "str | None"]

log = logging.getLogger(__name__)


def mirror_dir(database: Path) -> Path:
    """Where the copy of a SQLite store's log lives: beside its database file."""
    return database.with_name(database.name + ".mirror")


class LogMirror:
    """One store's copy; `table` brings it up to a log position and returns it whole."""

    def __init__(self, folder: Path):
        self.dir = Path(folder)

    def table(
        self, top: int, rewrites: int, stretch: Stretch, event_id_at: EventIdAt
    ) -> tuple[pa.Table, list[tuple[str, int]]]:
        """The stored events up to log position `top`, in log order, while `rewrites` events were ever deleted or
        rewritten, and the parts they are, in order, with their rows (a part never changes once written); what the
        copy lacks is read by `stretch`, and kept (in a folder only this user can open: it holds what the database
        holds).

        The stretch is read from the database in a second thread while the parts are read: they decompress without
        Python's lock, the database's rows with it, so a night's stretch costs little more than the parts alone."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with exclusive(self.dir, LOCK):
            doc = self._manifest()
            if not self._holds_start(doc, top, rewrites, event_id_at):
                doc = None
            upto = int(doc["upto"]) if doc is not None else 0
            with ThreadPoolExecutor(1, thread_name_prefix="log-stretch") as pool:
                later = pool.submit(stretch, upto, top) if top > upto else None
                kept = self._parts(doc["parts"]) if doc is not None else None
                new = later.result() if later is not None else None
            if doc is not None and kept is None:  # a part cannot be read: the copy starts again from the whole log
                doc, new = None, (stretch(0, top) if top > 0 else None)
            parts = list(doc["parts"]) if doc is not None else []
            tables = kept if doc is not None and kept is not None else []
            if new is not None and new.num_rows:
                parts.append(self._write(new))
                tables.append(new)
            whole = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
            if len(parts) > MAX_PARTS:
                parts, tables = [self._write(whole)], [whole]
            last = [int(whole["seq"][-1].as_py()), whole["event_id"][-1].as_py()] if whole.num_rows else None
            self._write_manifest({"version": MIRROR_VERSION, "rewrites": rewrites, "upto": top, "last": last}, parts)
            return whole, [(name, table.num_rows) for name, table in zip(parts, tables, strict=True)]

    def _holds_start(self, doc: dict | None, top: int, rewrites: int, event_id_at: EventIdAt) -> bool:
        """Whether the copy still holds the start of the log as it is: not when there is none, another count of
        rewrites, or another database (its last event is not the store's at that position)."""
        if doc is None or doc["rewrites"] != rewrites or doc["upto"] > top:
            return False
        last = doc["last"]
        if last is not None and event_id_at(last[0]) != last[1]:
            log.warning("event store copy: %s is not a copy of this database's log; it is read again", self.dir)
            return False
        return True

    def _parts(self, names: list[str]) -> list[pa.Table] | None:
        """The copy's parts read whole, one table each; None (warned) when one cannot be read."""
        tables = []
        for name in names:
            try:
                with pa.memory_map(str(self.dir / name)) as source:
                    table = ipc.open_file(source).read_all()
                table.validate()
                if not table.schema.equals(SCHEMA):
                    raise ValueError(f"its columns are not the copy's: {', '.join(table.schema.names)}")
                bounded_offsets(table)
                tables.append(table)
            except (OSError, ValueError, pa.ArrowException) as exc:
                log.warning("event store copy: %s cannot be read (%s); the log is read again", self.dir / name, exc)
                return None
        return tables

    def _write(self, table: pa.Table) -> str:
        """A part as an Arrow file, uncompressed, in batches the size of Parquet's row groups (a name column's `take`
        over one 10.8 M-row batch took twice as long when the copy held codes). Names, not codes, and mapped when read:
        10.6 M events' parts (1.1 GB on disk beside a 1.27 GB database) read in about 0.1 s with their offsets
        checked, against 0.34-0.51 s LZ4-compressed (583 MB) and about 2.2 s for codes read and decoded (444 MB)."""
        name = f"part-{uuid.uuid4().hex}.arrow"
        with naming(self.dir / name), ipc.new_file(self.dir / name, SCHEMA, options=PART_OPTIONS) as writer:
            writer.write_table(table, max_chunksize=PART_BATCH)
        return name

    def _manifest(self) -> dict | None:
        """The manifest as written; None when there is none, or (warned) when it cannot be read."""
        path = self.dir / MANIFEST
        try:
            doc = json.loads(path.read_text())
            if doc.get("version") != MIRROR_VERSION:
                return None
            if not all(isinstance(doc[k], int) for k in ("rewrites", "upto")):
                raise ValueError("its log positions are not integers")
            if not all(isinstance(p, str) and PART_NAME.fullmatch(p) for p in doc["parts"]):
                raise ValueError("a part is not a file this copy writes")
            if doc["last"] is not None and not _is_position(doc["last"]):
                raise ValueError("its last event is not [log position, event id]")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("event store copy: %s cannot be read (%s); the log is read again", path, exc)
            return None
        return doc

    def _write_manifest(self, doc: dict, parts: list[str]) -> None:
        """The manifest written whole (renamed over the last), then every part it does not name removed."""
        atomic_write_bytes(json.dumps({**doc, "parts": parts}).encode(), self.dir / MANIFEST)
        for part in self.dir.glob("part-*"):  # an older version's parts too
            if part.name not in parts:
                part.unlink(missing_ok=True)


def bounded_offsets(table: pa.Table) -> None:
    """Raise ValueError unless every text value of a part lies within its column's data: a mapped file's damaged
    offsets would otherwise send a reader outside it. The layout check (`validate`) reads only the first and last
    of a batch's; the whole check (`validate(full=True)`, which also decodes every name as UTF-8) took 0.9-1.0 s at
    10.6 M events, this 0.09 s."""
    for name, column in zip(table.column_names, table.columns, strict=True):
        if not pa.types.is_string(column.type):
            continue
        for chunk in column.chunks:
            offsets = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1, chunk.offset * 4)
            data = chunk.buffers()[2]
            size = data.size if data is not None else 0
            if len(offsets) and (offsets[0] < 0 or offsets[-1] > size or bool(np.any(offsets[1:] < offsets[:-1]))):
                raise ValueError(f"its column {name} holds text beyond its data")


def drop(folder: Path) -> None:
    """The copy removed (forgetting, retention: it holds the deleted events), waiting for a reader that holds it."""
    if folder.is_dir():
        with exclusive(folder, LOCK):
            for path in folder.iterdir():
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.name != LOCK:
                    path.unlink(missing_ok=True)


def _is_position(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str)
