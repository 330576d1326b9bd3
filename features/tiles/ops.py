"""What a feature computes from day tiles, as data: window sums, ranges' maxima and minima, ratios, decayed sums,
hours since.

A window is a range of ages in days before the cutoff, [start, end): `Sum("n__any", 0, 7)` is the last 7
days, `Sum("n__any", 7, 14)` the 7 before them, `end=None` all time. Columns are the day-tile columns of
features/tiles/dense.py (the same names as the activity partials of features/grid.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sum:
    """The sum of a tile column over the days whose age lies in [start, end); 0 when there are none.

    With `present`, the sum is missing where that column sums to 0 (as SQL's sum of only nulls is).
    """

    column: str
    start: int = 0
    end: int | None = None
    present: str | None = None


@dataclass(frozen=True)
class Max:
    """The largest non-missing value of a tile column over the days of age < end; missing when there is none."""

    column: str
    end: int | None = None


@dataclass(frozen=True)
class Min:
    """The smallest non-missing value of a tile column over all days up to the cutoff."""

    column: str


@dataclass(frozen=True)
class Ratio:
    """(num + add) / (den + add); missing when the denominator is 0."""

    num: Sum
    den: Sum
    add: float = 0.0


@dataclass(frozen=True)
class Decayed:
    """A tile column summed over every day up to the cutoff, each day halved per `half_life` days of its age."""

    column: str
    half_life: float


@dataclass(frozen=True)
class HoursSince:
    """Hours from a time (a tile column of microseconds) to the cutoff."""

    of: Max | Min


TileOp = Sum | Max | Min | Ratio | Decayed | HoursSince
