"""What the kept tiles and rows under a `features.tiles_dir` hold, read back as a test checks it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq


def kept_leads(root: Path) -> set[str]:
    """Every lead id named by a kept file under `root`: the Parquet tile segments and the Arrow rows files."""
    leads: set[str] = set()
    for path in Path(root).rglob("*.parquet"):
        leads |= set(pq.read_table(path, columns=["lead_id"])["lead_id"].to_pylist())
    for path in Path(root).rglob("*.arrow"):
        leads |= set(ipc.open_file(pa.OSFile(str(path))).read_all()["lead_id"].to_pylist())
    return leads
