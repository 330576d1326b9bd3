"""Cutoffs: the instants a training row or a score is computed as of."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from leadradar.config import FeatureConfig

DAY = timedelta(days=1)


def as_utc(value: str | datetime | pd.Timestamp) -> pd.Timestamp:
    """Parse a cutoff; a time without a zone is refused rather than guessed."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        raise ValueError(f"cutoff {value!r} has no time zone; write it as UTC, e.g. 2026-03-02T00:00:00Z")
    return ts.tz_convert("UTC").as_unit("us")


def epoch_us(t: str | datetime | pd.Timestamp) -> int:
    """UTC microseconds of an instant (no zone means UTC); exact for every year a timestamp holds, where
    `Timestamp.value` overflows outside 1677-2262."""
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
    return int(ts.as_unit("us").asm8.view("i8"))


def cadence_cutoffs(first: pd.Timestamp, last: pd.Timestamp, cfg: FeatureConfig) -> list[pd.Timestamp]:
    """Cutoffs at midnight UTC between `first` and `last` inclusive, daily or on the weekly anchor day."""
    day = first.tz_convert("UTC").normalize()
    if day < first:
        day += DAY
    if cfg.cadence == "weekly":
        day += timedelta(days=(cfg.weekly_anchor_weekday - day.weekday()) % 7)
    step = DAY if cfg.cadence == "daily" else 7 * DAY
    out = []
    while day <= last:
        out.append(day.as_unit("us"))
        day += step
    return out


def cutoff_frame(cutoffs: list[pd.Timestamp]) -> pd.DataFrame:
    """Cutoffs as a table of UTC microseconds, checked to share one time of day (the day grid needs it)."""
    if not cutoffs:
        raise ValueError("no cutoffs: the data window is shorter than one cadence step")
    times = {c.tz_convert("UTC").time() for c in cutoffs}
    if len(times) != 1:
        raise ValueError(f"cutoffs of one build must share a time of day, got {sorted(times)}")
    series = pd.Series(sorted(set(cutoffs)), dtype="datetime64[us, UTC]")
    return pd.DataFrame({"cutoff_us": series.astype("int64")})


def now_utc() -> pd.Timestamp:
    return pd.Timestamp(datetime.now(UTC)).floor("s").as_unit("us")
