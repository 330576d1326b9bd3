"""Windows over day tiles for many (lead, cutoff) queries at once: prefix-sum differences and range maxima.

A query's window is a range of a lead's tiles, found by one `searchsorted` over (lead, day) keys; sums
are differences of per-lead prefix sums, maxima and minima one `reduceat` over the ranges. No cutoff is
ever joined to the days it covers.
"""

from __future__ import annotations

import math

import numpy as np

from leadradar.features.grid import HOUR_US
from leadradar.features.tiles.dense import DayTiles
from leadradar.features.tiles.ops import Decayed, HoursSince, Max, Min, Ratio, Sum, TileOp


def segmented_cumsum(values: np.ndarray, starts: np.ndarray, exact: bool = True) -> np.ndarray:
    """Running sums restarting at each segment start, so rounding stays at the size of one lead's sums.

    One trailing 0 is appended, so that index -1 reads 0. `exact=False` is for whole numbers (exact in float64).
    """
    x = values.astype(np.longdouble if exact else np.float64)
    if len(starts) > 1:
        totals = np.add.reduceat(x, starts)
        x[starts[1:]] -= totals[:-1]
    out = np.zeros(len(values) + 1, dtype=x.dtype)
    np.cumsum(x, out=out[:-1])
    return out


def range_reduce(ufunc: np.ufunc, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """ufunc over values[lo:hi] for each pair (NaN where the range is empty); pairs sorted by lo stay linear."""
    if len(lo) == 0:
        return np.empty(0)
    padded = np.append(values, np.nan)
    idx = np.empty(2 * len(lo), dtype=np.intp)
    idx[0::2], idx[1::2] = lo, hi
    out = ufunc.reduceat(padded, idx)[0::2]
    out[hi <= lo] = np.nan
    return out


class TileWindows:
    """The queries (lead code, cutoff's day K, cutoff microseconds) over one set of day tiles."""

    def __init__(self, tiles: DayTiles, lead: np.ndarray, day: np.ndarray, cutoff_us: np.ndarray):
        self.tiles = tiles
        self.cutoff_us = cutoff_us.astype(np.float64)
        self.b0 = int(tiles.bucket.min()) - 1 if len(tiles) else 0
        self.span = (int(tiles.bucket.max()) - self.b0 + 1) if len(tiles) else 1
        self.keys = tiles.lead * self.span + (tiles.bucket - self.b0)
        self.q_lead = lead.astype(np.int64)
        self.day = day.astype(np.int64)
        self._pos: dict[int | None, np.ndarray] = {}
        self._prefix: dict[str, np.ndarray] = {}
        lead_starts = np.flatnonzero(np.r_[True, tiles.lead[1:] != tiles.lead[:-1]]) if len(tiles) else np.zeros(0)
        self.lead_starts = lead_starts.astype(np.intp)

    def pos(self, age: int | None) -> np.ndarray:
        """Index just past the lead's last tile older than `age` days before the cutoff (None: its first tile)."""
        if age not in self._pos:
            rel = np.zeros_like(self.day) if age is None else np.clip(self.day - age - self.b0, 0, self.span - 1)
            self._pos[age] = np.searchsorted(self.keys, self.q_lead * self.span + rel, side="right")
        return self._pos[age]

    def column(self, name: str) -> np.ndarray:
        """A tile column (empty when there are no tiles: every window is then empty)."""
        return self.tiles.columns[name] if len(self.tiles) else np.empty(0)

    def prefix(self, column: str) -> np.ndarray:
        if column not in self._prefix:
            exact = column.startswith("dsum__")  # the one fractional column; counts are exact in float64
            self._prefix[column] = segmented_cumsum(self.column(column), self.lead_starts, exact=exact)
        return self._prefix[column]

    def window_sum(self, column: str, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The column summed over tiles [lo, hi) of each query's lead, from the lead's running sums."""
        running, first = self.prefix(column), self.pos(None)
        upper = np.where(hi > first, running[hi - 1], 0)
        lower = np.where(lo > first, running[lo - 1], 0)
        return (upper - lower).astype(np.float64)

    def decayed_sum(self, column: str, half_life: float) -> np.ndarray:
        """Each query's tiles up to its cutoff, weighted by age as the reference weighs them, summed per query.

        Term by term (one term per query and tile it covers), not by a scaled prefix sum, whose weights would
        overflow float64 once a lead's history is some thousand half-lives long.
        """
        lo, hi = self.pos(None), self.pos(0)
        counts = np.maximum(hi - lo, 0)
        query = np.repeat(np.arange(len(lo)), counts)
        tile = np.arange(int(counts.sum())) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
        age = (self.day[query] - self.tiles.bucket[tile]).astype(np.float64)
        terms = self.column(column)[tile] * np.exp(age * (-math.log(2) / half_life))
        return np.bincount(query, weights=terms, minlength=len(lo)).astype(np.float64)

    def evaluate(self, op: TileOp) -> np.ndarray:
        """The op's value for every query (NaN where it is missing)."""
        if isinstance(op, Sum):
            lo, hi = self.pos(op.end), self.pos(op.start)
            total = self.window_sum(op.column, lo, hi)
            if op.present is not None:
                total[self.window_sum(op.present, lo, hi) == 0] = np.nan
            return total
        if isinstance(op, Max):
            return range_reduce(np.fmax, self.column(op.column), self.pos(op.end), self.pos(0))
        if isinstance(op, Min):
            return range_reduce(np.fmin, self.column(op.column), self.pos(None), self.pos(0))
        if isinstance(op, Ratio):
            num, den = self.evaluate(op.num) + op.add, self.evaluate(op.den) + op.add
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(den == 0, np.nan, num / np.where(den == 0, 1.0, den))
        if isinstance(op, Decayed):
            return self.decayed_sum(op.column, op.half_life)
        if isinstance(op, HoursSince):
            return (self.cutoff_us - self.evaluate(op.of)) / HOUR_US
        raise TypeError(f"unknown tile op {op!r}")
