"""Windows over day tiles for many (lead, cutoff) queries at once: prefix-sum differences and range maxima.

A query's window is a range of a lead's tiles, found by one `searchsorted` over (lead, day) keys; sums
are differences of per-lead prefix sums, maxima and minima one `reduceat` over the ranges. No cutoff is
ever joined to the days it covers. A `TilePlan` compiles a feature list's ops once, so that all their sums
are one stacked array operation and each distinct op is computed once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from leadradar.features.grid import HOUR_US
from leadradar.features.tiles.dense import DayTiles
from leadradar.features.tiles.ops import Decayed, HoursSince, Max, Min, Ratio, Sum, TileOp


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

    def run(self, plan: TilePlan) -> np.ndarray:
        """The plan's ops (rows) for every query (columns): its window sums and maxima a few stacked array
        operations, then the steps built on them, one array operation per kind."""
        x = np.empty((len(plan.steps), len(self.q_lead)))
        for group in plan.sums:
            x[group.slots] = self._sums(group)
        for end, (slots, columns) in plan.maxima.items():
            x[slots] = self._maxima(columns, end)
        for slot, op in plan.single:
            if isinstance(op, Min):
                x[slot] = range_reduce(np.fmin, self.column(op.column), self.pos(None), self.pos(0))
            elif isinstance(op, Decayed):
                x[slot] = self.decayed_sum(op.column, op.half_life)
        value, present = plan.present.args
        x[plan.present.slots] = np.where(x[present] == 0, np.nan, x[value])
        (of,) = plan.hours.args
        x[plan.hours.slots] = (self.cutoff_us - x[of]) / HOUR_US
        num, den = plan.ratios.args
        top, bottom = x[num] + plan.ratio_add, x[den] + plan.ratio_add
        with np.errstate(divide="ignore", invalid="ignore"):
            x[plan.ratios.slots] = np.where(bottom == 0, np.nan, top / np.where(bottom == 0, 1.0, bottom))
        return x[plan.outputs]

    def _sums(self, group: SumGroup) -> np.ndarray:
        """The group's window sums: its columns' running sums, each op's bounds picked from them.

        Whole numbers take one running sum over all leads, exact in float64 (a window is the difference of two
        points inside its lead's range); fractional ones restart at each lead, so rounding stays at one lead's size.
        """
        if not len(self.tiles):
            return np.zeros((len(group.slots), len(self.q_lead)))
        at = np.stack([self.pos(age) for age in group.ages])
        hi, lo = at[group.start], at[group.end]
        if not group.fractional:
            whole = _cumsum_rows([self.column(c) for c in group.columns])
            return whole[group.column, hi] - whole[group.column, lo]
        running = _segmented_cumsum_rows(np.stack([self.column(c) for c in group.columns]), self.lead_starts)
        first = self.pos(None)
        upper = np.where(hi > first, running[group.column, hi - 1], 0)
        lower = np.where(lo > first, running[group.column, lo - 1], 0)
        return (upper - lower).astype(np.float64)

    def _maxima(self, columns: list[str], end: int | None) -> np.ndarray:
        """Range maxima over the days of age < end of many columns: one `reduceat` over them stacked."""
        lo, hi = self.pos(end), self.pos(0)
        if not len(self.tiles) or not len(lo):
            return np.full((len(columns), len(lo)), np.nan)
        values = np.stack([self.column(c) for c in columns])
        padded = np.concatenate([values, np.full((len(columns), 1), np.nan)], axis=1)
        idx = np.empty(2 * len(lo), dtype=np.intp)
        idx[0::2], idx[1::2] = lo, hi
        out = np.fmax.reduceat(padded, idx, axis=1)[:, 0::2]
        out[:, hi <= lo] = np.nan
        return out


@dataclass
class SumGroup:
    """Plain window sums that share a precision: their slots, the columns they read, and each one's column and
    window bounds as indices into `columns` and `ages` (the distinct ages their windows start and end at).
    `fractional`: dwell sums, summed in long double a lead at a time; otherwise whole numbers."""

    fractional: bool
    slots: list[int]
    ops: list[Sum]

    def __post_init__(self) -> None:
        self.columns = sorted({op.column for op in self.ops})
        self.ages: list[int | None] = sorted({a for op in self.ops for a in (op.start, op.end)}, key=_age_order)
        self.column = np.array([self.columns.index(op.column) for op in self.ops], np.intp)[:, None]
        self.start = np.array([self.ages.index(op.start) for op in self.ops], np.intp)
        self.end = np.array([self.ages.index(op.end) for op in self.ops], np.intp)


@dataclass(frozen=True)
class BuiltSteps:
    """Steps of one kind built on others: their slots, and each argument's slots, one array per argument."""

    slots: np.ndarray
    args: tuple[np.ndarray, ...]


def _age_order(age: int | None) -> float:
    return math.inf if age is None else age


class TilePlan:
    """Tile ops compiled once into numbered steps (rows of `TileWindows.run`'s matrix), each distinct op once:
    plain window sums (by precision) and maxima (by window) first, then by kind the steps built on them."""

    def __init__(self, ops: list[TileOp]):
        self.steps: list[TileOp] = []
        self._slot: dict[TileOp, int] = {}
        self._args: dict[int, tuple[int, ...]] = {}
        self.outputs = np.array([self._add(op) for op in ops], np.intp)
        kinds: dict[type, list[int]] = {}
        for k, op in enumerate(self.steps):
            kinds.setdefault(type(op), []).append(k)
        plain = [k for k in kinds.get(Sum, []) if not self._args[k]]
        self.sums = [
            SumGroup(fractional, mine, [self.steps[k] for k in mine])  # type: ignore[misc]
            for fractional in (True, False)
            if (mine := [k for k in plain if self.steps[k].column.startswith("dsum__") == fractional])  # type: ignore[union-attr]
        ]
        maxima: dict[int | None, tuple[list[int], list[str]]] = {}
        for k in kinds.get(Max, []):
            op = self.steps[k]
            assert isinstance(op, Max)  # nosec B101 # narrowed for the type checker
            slots, columns = maxima.setdefault(op.end, ([], []))
            slots.append(k)
            columns.append(op.column)
        self.maxima = maxima
        self.single = [(k, self.steps[k]) for t in (Min, Decayed) for k in kinds.get(t, [])]
        self.present = self._built([k for k in kinds.get(Sum, []) if self._args[k]], 2)
        self.hours = self._built(kinds.get(HoursSince, []), 1)
        self.ratios = self._built(kinds.get(Ratio, []), 2)
        adds = [op.add for op in self.steps if isinstance(op, Ratio)]
        self.ratio_add = np.array(adds, np.float64)[:, None]
        del self._slot, self._args

    def _built(self, slots: list[int], width: int) -> BuiltSteps:
        args = tuple(np.array([self._args[k][i] for k in slots], np.intp) for i in range(width))
        return BuiltSteps(np.array(slots, np.intp), args)

    def _add(self, op: TileOp) -> int:
        if op in self._slot:
            return self._slot[op]
        args: tuple[int, ...] = ()
        if isinstance(op, Sum) and op.present is not None:
            args = self._add(Sum(op.column, op.start, op.end)), self._add(Sum(op.present, op.start, op.end))
        elif isinstance(op, Ratio):
            args = self._add(op.num), self._add(op.den)
        elif isinstance(op, HoursSince):
            args = (self._add(op.of),)
        elif not isinstance(op, Sum | Max | Min | Decayed):
            raise TypeError(f"unknown tile op {op!r}")
        self.steps.append(op)
        k = self._slot[op] = len(self.steps) - 1
        self._args[k] = args
        return k


def _cumsum_rows(columns: list[np.ndarray]) -> np.ndarray:
    """Each column's running sum in float64 as a row, after a leading 0: window [lo, hi) is row[hi] - row[lo]."""
    out = np.zeros((len(columns), len(columns[0]) + 1))
    for row, column in zip(out, columns, strict=True):
        np.cumsum(column, out=row[1:])
    return out


def _segmented_cumsum_rows(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Running sums of each row in long double, restarting at each segment (lead) start, so rounding stays at the
    size of one lead's sums. One trailing 0 per row, so that index -1 reads 0."""
    x: np.ndarray = values.astype(np.longdouble)
    if len(starts) > 1:
        totals = np.add.reduceat(x, starts, axis=1)
        x[:, starts[1:]] -= totals[:, :-1]
    out = np.zeros((x.shape[0], x.shape[1] + 1), dtype=x.dtype)
    np.cumsum(x, axis=1, out=out[:, :-1])
    return out
