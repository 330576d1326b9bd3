"""One feature's declaration: its name, meaning, source, window and topic, and how windows are named.

A feature is a name, a family, the source table it reads, an optional window, one Ibis expression,
description templates, and the topic it speaks to. Families declare features with this; the
registry (features/registry.py) collects them, so declaring a feature never imports the collection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import ibis.expr.types as ir

from leadradar.features.tiles.ops import TileOp

Kind = Literal["count", "seconds", "hours", "days", "ratio", "share", "rank", "category", "number"]
SOURCES = ("activity", "items", "categories", "referrals", "funnel", "sales", "attributes")


def window_label(w: int | None) -> tuple[str, str]:
    """How a window reads: ('in the last 7 days', '近7天') or ('so far', '累计')."""
    if w is None:
        return "so far", "累计"
    if w == 1:
        return "in the last day", "近1天"
    return f"in the last {w} days", f"近{w}天"


def window_suffix(w: int | None) -> str:
    """The end of a windowed feature's name: `7d`, or `all` for all time."""
    return "all" if w is None else f"{w}d"


@dataclass(frozen=True)
class Feature:
    """A declared feature; explanations group features by `topic` and never read meaning out of `name`."""

    name: str
    family: str
    source: str
    expr: Callable[[ir.Table], ir.Value] = field(repr=False, compare=False)
    en: str
    zh: str
    kind: Kind = "count"
    window_days: int | None = None
    default: float | None = 0.0  # value for a lead with no rows in the source; None keeps it missing
    # The sentence for a count of zero ("has not viewed the pricing page in the last 7 days").
    en0: str | None = None
    zh0: str | None = None
    # The name without its window ("pricing_views" of "pricing_views_7d"); empty means the name itself.
    stem: str = ""
    # What the feature speaks to, one reason per topic (models/explain.py); empty means `<family>:<stem>`.
    topic: str = ""
    # The same value from day tiles (features/tiles/ops.py), for the fast build; None: only the Ibis expression.
    tile: TileOp | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"feature {self.name!r} reads unknown source {self.source!r}; sources: {SOURCES}")
        if not self.name.startswith(self.stem):
            raise ValueError(f"feature {self.name!r} does not start with its stem {self.stem!r}")
        if not self.stem:
            object.__setattr__(self, "stem", self.name)
        if not self.topic:
            object.__setattr__(self, "topic", f"{self.family}:{self.stem}")

    @classmethod
    def over(cls, stem: str, window_days: int | None, **declaration: Any) -> Feature:
        """A feature over a window, named `<stem>_<7d|all>` from the declaration rather than spelled by hand."""
        return cls(name=f"{stem}_{window_suffix(window_days)}", stem=stem, window_days=window_days, **declaration)
