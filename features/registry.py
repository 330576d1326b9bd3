"""The feature registry: every feature declared once, with its meaning in English and Chinese.

A feature is a name, a family, the source table it reads, an optional window, one Ibis expression,
and description templates. The training set, online scoring, the reasons people read and the
definition hash that travels with a model all come from these declarations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import ibis.expr.types as ir

from leadradar.config import Settings

Kind = Literal["count", "seconds", "hours", "days", "ratio", "share", "rank", "category", "number"]
SOURCES = ("activity", "items", "categories", "referrals", "funnel", "sales", "attributes")


@dataclass(frozen=True)
class Feature:
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

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"feature {self.name!r} reads unknown source {self.source!r}; sources: {SOURCES}")

    def describe(self, value_text: str, lang: str) -> str:
        template = self.zh if lang == "zh-CN" else self.en
        return template.format(value=value_text)


class FeatureRegistry:
    """An ordered, name-unique collection of features, built from the settings."""

    def __init__(self, features: Iterable[Feature]):
        self._features: dict[str, Feature] = {}
        for f in features:
            if f.name in self._features:
                raise ValueError(f"feature {f.name!r} is declared twice")
            self._features[f.name] = f

    def __iter__(self) -> Iterator[Feature]:
        return iter(self._features.values())

    def __len__(self) -> int:
        return len(self._features)

    def __getitem__(self, name: str) -> Feature:
        return self._features[name]

    def __contains__(self, name: object) -> bool:
        return name in self._features

    @property
    def names(self) -> list[str]:
        return list(self._features)

    def of_source(self, source: str) -> list[Feature]:
        return [f for f in self if f.source == source]

    def categorical(self) -> list[str]:
        return [f.name for f in self if f.kind == "category"]

    def select(self, names: Iterable[str]) -> FeatureRegistry:
        """The sub-registry a model was trained on, in its order."""
        return FeatureRegistry(self._features[n] for n in names)


def window_label(w: int | None) -> tuple[str, str]:
    """How a window reads: ('in the last 7 days', '近7天') or ('in all', '累计')."""
    if w is None:
        return "so far", "累计"
    if w == 1:
        return "in the last day", "近1天"
    return f"in the last {w} days", f"近{w}天"


def window_suffix(w: int | None) -> str:
    return "all" if w is None else f"{w}d"


def build_registry(settings: Settings) -> FeatureRegistry:
    """All features the settings declare, family by family."""
    from leadradar.features.families import FAMILIES

    feats: list[Feature] = []
    for declare in FAMILIES:
        feats.extend(declare(settings))
    return FeatureRegistry(feats)


def definition_hash(sql: str, names: list[str]) -> str:
    """A short hash of the compiled feature query and the column order: it changes when a definition does."""
    digest = hashlib.sha256()
    digest.update(sql.encode())
    digest.update("\x00".join(names).encode())
    return digest.hexdigest()[:16]
