"""Feature rows kept between builds, one Parquet file per cutoff, each with the digest of every input it read.

A row is as of its cutoff: it reads the events and stage rows of the days up to that cutoff, the items and
leads tables, the code and the settings (features/tiles/fingerprints.py). A build recomputes only the cutoffs
whose digest changed (an event on day d re-opens the cutoffs at or after d; one more day after the last cutoff
re-opens none) and copies the others' rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


class KeptRows:
    """A directory of kept rows by cutoff (integer microseconds) and a manifest of their digests."""

    def __init__(self, root: Path):
        self.dir = Path(root)
        self.manifest_path = self.dir / "rows.json"

    def _path(self, cutoff_us: int) -> Path:
        return self.dir / f"rows-{cutoff_us}.parquet"

    def _manifest(self) -> dict[int, str]:
        if not self.manifest_path.exists():
            return {}
        return {int(k): v for k, v in json.loads(self.manifest_path.read_text()).items()}

    def stale(self, digests: dict[int, str]) -> list[int]:
        """The cutoffs whose kept rows are missing or were computed from other inputs."""
        kept = self._manifest()
        return sorted(c for c, d in digests.items() if kept.get(c) != d or not self._path(c).exists())

    def keep(self, table: pa.Table, digests: dict[int, str]) -> None:
        """Keep `table`'s rows of each cutoff in `digests` (and forget cutoffs not in it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        kept = {c: d for c, d in self._manifest().items() if c in digests}
        us = pc.cast(table["cutoff"], pa.int64())
        for c in self.stale(digests):  # each file whole or not at all, for a build reading the directory meanwhile
            tmp = self._path(c).with_suffix(".tmp")
            pq.write_table(table.filter(pc.equal(us, c)), tmp)
            os.replace(tmp, self._path(c))
            kept[c] = digests[c]
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(c): d for c, d in sorted(kept.items())}))
        os.replace(tmp, self.manifest_path)
        for path in self.dir.glob("rows-*.parquet"):
            if int(path.stem.removeprefix("rows-")) not in kept:
                path.unlink(missing_ok=True)

    def chunks(self, cutoffs: list[int]) -> Iterator[pa.Table]:
        """The kept rows of `cutoffs`, a cutoff at a time."""
        for c in cutoffs:
            yield pq.read_table(self._path(c))
