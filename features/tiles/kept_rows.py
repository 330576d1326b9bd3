"""Feature rows kept between builds, one Arrow file per cutoff, each with the digest of every input it read.

A row is as of its cutoff: it reads the events and stage rows of the days up to that cutoff, the items and
leads tables, the code and the settings (features/tiles/fingerprints.py). A build recomputes only the cutoffs
whose digest changed (an event on day d re-opens the cutoffs at or after d; one more day after the last cutoff
re-opens none) and copies the others' rows.

The files are uncompressed Arrow IPC, memory-mapped when read, not Parquet: a nightly build reads every kept row
back. At 10.6 M events (8 cutoffs, 487 k rows) they take 812 MB against 165 MB of Parquet, and an increment took
1.3-1.5 s against 1.6-2.1 s (reading Parquet, 0.43 s, was a quarter of it; LZ4-compressed IPC read slower still).
A reader's table keeps its file mapped: a later build replaces a file by renaming over it, never in place.
Kept rows are a cache of the inputs: a manifest or a file that cannot be read is said in one warning line naming
it, and its cutoffs are computed again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from leadradar.features.atomic import atomic_write_bytes, naming

log = logging.getLogger(__name__)
ROWS_NAME = re.compile(r"rows-(-?[0-9]+)\.arrow")


class KeptRows:
    """A directory of kept rows by cutoff (integer microseconds) and a manifest of their digests."""

    def __init__(self, root: Path):
        self.dir = Path(root)
        self.manifest_path = self.dir / "rows.json"
        self._said: set[Path] = set()  # files found unreadable, said once by this instance (a build asks twice)

    def _path(self, cutoff_us: int) -> Path:
        return self.dir / f"rows-{cutoff_us}.arrow"  # as ROWS_NAME reads it

    def _manifest(self) -> dict[int, str]:
        """Each kept cutoff's digest; none from a manifest that cannot be read (warned)."""
        try:
            kept = {int(k): v for k, v in json.loads(self.manifest_path.read_text()).items()}
            if not all(isinstance(v, str) for v in kept.values()):
                raise ValueError("a digest is not a string")
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            self._say(self.manifest_path, exc, "every cutoff is computed again")
            return {}
        return kept

    def stale(self, digests: dict[int, str]) -> list[int]:
        """The cutoffs whose kept rows are missing, cannot be read (warned) or were computed from other inputs."""
        kept = self._manifest()
        return sorted(c for c, d in digests.items() if kept.get(c) != d or not self._readable(c))

    def _readable(self, cutoff_us: int) -> bool:
        """The cutoff's file is there and whole: its footer and every batch's layout read (mapped, the values are not
        read; 30 ms for 8 cutoffs of 487 k rows)."""
        path = self._path(cutoff_us)
        try:
            with pa.memory_map(str(path)) as source:
                ipc.open_file(source).read_all().validate()
        except FileNotFoundError:
            return False
        except (OSError, pa.ArrowException) as exc:
            self._say(path, exc, "its cutoff is computed again")
            return False
        return True

    def _say(self, path: Path, exc: Exception, then: str) -> None:
        if path not in self._said:
            self._said.add(path)
            log.warning("kept rows: %s cannot be read (%s); %s", path, exc, then)

    def keep(self, chunks: Iterable[pa.Table], digests: dict[int, str]) -> None:
        """Keep the rows of each stale cutoff in `digests` from `chunks` (of leads, every cutoff in each), written
        as they come, so memory follows a chunk; forget cutoffs not in `digests`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        kept = {c: d for c, d in self._manifest().items() if c in digests}
        stale = self.stale(digests)
        with naming(self.dir), ExitStack() as open_files:  # a file's footer, written on closing, names the folder
            writers: dict[int, ipc.RecordBatchFileWriter] = {}
            for chunk in chunks:
                us = pc.cast(chunk["cutoff"], pa.int64())
                for c in stale:
                    with naming(self._tmp(c)):
                        if c not in writers:
                            writers[c] = open_files.enter_context(ipc.new_file(self._tmp(c), chunk.schema))
                        writers[c].write_table(chunk.filter(pc.equal(us, c)))
        for c in stale:  # each file whole or not at all, for a build reading the directory meanwhile
            os.replace(self._tmp(c), self._path(c))
            kept[c] = digests[c]
        self._write_manifest(kept)

    def drop(self, cutoffs: Iterable[int]) -> None:
        """Forget the kept rows of these cutoffs, files and digests: rows that lost some of their inputs' data
        (deletion, retention), which the next build computes again if it asks for them."""
        gone = set(cutoffs)
        if gone:
            self._write_manifest({c: d for c, d in self._manifest().items() if c not in gone})

    def _write_manifest(self, kept: dict[int, str]) -> None:
        """The digests of `kept`, then every rows file not among them removed (a forgotten cutoff's, an older
        format's, or a failed build's)."""
        atomic_write_bytes(json.dumps({str(c): d for c, d in sorted(kept.items())}).encode(), self.manifest_path)
        live = {self._path(c).name for c in kept}
        for path in self.dir.glob("rows-*"):
            if path.name not in live:
                path.unlink(missing_ok=True)

    def _tmp(self, cutoff_us: int) -> Path:
        return self._path(cutoff_us).with_suffix(".tmp")

    def chunks(self, cutoffs: list[int]) -> Iterator[pa.Table]:
        """The kept rows of `cutoffs`, a cutoff at a time."""
        for c in cutoffs:
            with pa.memory_map(str(self._path(c))) as source:
                yield ipc.open_file(source).read_all()


def cutoff_of(path: Path) -> int | None:
    """The cutoff (integer microseconds) a kept rows file holds, by its name; None for another file."""
    match = ROWS_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else None
