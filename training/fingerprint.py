"""Which data a set of tuned parameters belongs to: a fingerprint of the data and the window it covers.

Parameters tuned on one log are no evidence for another, so an Optuna study is keyed by the fingerprint
of the data it was tuned on (training/tuning.py) and `train` reads only a study of its own data's fingerprint.
For radar logs the fingerprint is over the log's parts (events, stages, items, leads), not the training set's
feature values: DuckDB's parallel float sums differ in the last bits from one build to the next.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from leadradar.features.radar_log import RadarLog, read_parquet_part

LOG_PARTS = ("events", "stages", "items", "leads")  # the truth is the simulator's answer key, not data


@dataclass(frozen=True)
class DataKey:
    """The rows a model learns from, named: `fingerprint` (hex) over their content, `window` in words."""

    fingerprint: str
    window: str

    @property
    def short(self) -> str:
        return self.fingerprint[:12]


def rows_fingerprint(frame: pd.DataFrame, *context: str) -> str:
    """SHA-256 over every row's content, whatever the row and column order (a query's row order is not stable),
    and over `context` (the label, horizon, window: what else makes the same rows a different problem)."""
    columns = sorted(frame.columns)
    rows = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy(np.uint64)
    digest = hashlib.sha256()
    digest.update("\x1f".join([*columns, *context]).encode())
    digest.update(np.sort(rows).tobytes())
    return digest.hexdigest()


def key_for(frame: pd.DataFrame, window: dict[str, str] | str, *context: str) -> DataKey:
    """The data key of a training set's rows and its window (a TrainingSet's `window`, or a table's split)."""
    words = window if isinstance(window, str) else ", ".join(f"{k} {v}" for k, v in sorted(window.items()))
    return DataKey(rows_fingerprint(frame, words, *context), words)


def log_key(log: RadarLog, window: dict[str, str], *context: str) -> DataKey:
    """The data key of a radar log: every part's rows, the training set's window and `context` (horizon, ...)."""
    parts = []
    for part in LOG_PARTS:
        source = getattr(log, part)
        if source is None:
            continue
        table = read_parquet_part(Path(source), part) if not isinstance(source, pa.Table | pd.DataFrame) else source
        frame = table.to_pandas() if isinstance(table, pa.Table) else table
        parts.append(f"{part} {rows_fingerprint(frame)}")
    return key_for(pd.DataFrame({"part": parts}), window, *context)
