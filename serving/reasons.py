"""Reasons kept with a batch score, worded at display time in the reader's language.

A batch run stores each reason as (feature, value, contribution) in the score's `detail`; the
registry's sentences turn them into words here, so the same stored run reads in English or Chinese.
A writer built with `hidden` families (the funnel, by default in Settings) reads the reasons chosen for
people (`shown`, behaviour only); one without reads the full ones (`reasons`), as the API gives them.
A run stored before `shown` existed has its hidden reasons filtered out here instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from leadradar.config import FunnelConfig
from leadradar.features.describe import describe
from leadradar.features.registry import FeatureRegistry
from leadradar.models.profile import compared


@dataclass(frozen=True)
class WordedReason:
    """One reason as a person reads it, with the direction and the size of its push (log-odds)."""

    text: str
    direction: str
    contribution: float
    feature: str


def parse_detail(detail: str | dict | None) -> dict[str, Any]:
    """A score's `detail` JSON as a dict; empty for rows stored without one."""
    if detail is None or (isinstance(detail, float) and detail != detail):
        return {}
    if isinstance(detail, dict):
        return detail
    try:
        return json.loads(detail)
    except (TypeError, ValueError):
        return {}


class ReasonWriter:
    """Words for stored reasons, from the feature registry and the funnel's stage names."""

    def __init__(self, registry: FeatureRegistry, funnel: FunnelConfig, hidden: tuple[str, ...] = ()):
        self.registry = registry
        self.funnel = funnel
        self.hidden = hidden

    def stored(self, detail: str | dict | None) -> dict[str, list[dict]]:
        """The stored reasons this writer words: the shown ones when it hides families, else all."""
        info = parse_detail(detail)
        if not self.hidden:
            return info.get("reasons") or {}
        if "shown" in info:
            return info["shown"] or {}
        return {
            side: [r for r in rows if not self._is_hidden(r["feature"])]
            for side, rows in (info.get("reasons") or {}).items()
        }

    def _is_hidden(self, feature: str) -> bool:
        return feature in self.registry and self.registry[feature].family in self.hidden

    def sentence(self, feature: str, value: Any, lang: str, closed: float | None = None) -> str:
        """The feature's sentence with the value, and how leads that closed compare where the score kept their
        median; a feature this code no longer declares reads as its name."""
        if feature not in self.registry:
            return feature.replace("_", " ")
        f = self.registry[feature]
        return describe(f, value, lang, self.funnel) + compared(f, closed, lang, self.funnel)

    def reasons(self, detail: str | dict | None, lang: str) -> dict[str, list[WordedReason]]:
        """`{"for": [...], "against": [...]}`, strongest first, in `lang`."""
        stored = self.stored(detail)
        return {
            side: [
                WordedReason(
                    self.sentence(r["feature"], r.get("value"), lang, r.get("closed")),
                    side,
                    float(r.get("contribution", 0.0)),
                    r["feature"],
                )
                for r in stored.get(side, [])
            ]
            for side in ("for", "against")
        }

    def strongest(
        self, detail: str | dict | None, lang: str, skip: tuple[str, ...] = (), prefer: str = "for"
    ) -> WordedReason | None:
        """The strongest reason on the `prefer` side ("for" or "against"), else on the other; None without reasons.

        Features in `skip` (say, the stage a list shows in its own column) give way to the next
        reason on the same side, and speak only when their side has no other.
        """
        stored = self.stored(detail)
        sides = ("for", "against") if prefer == "for" else ("against", "for")
        for side in sides:
            kept = stored.get(side) or []
            if kept:
                r = next((r for r in kept if r["feature"] not in skip), kept[0])
                return WordedReason(
                    self.sentence(r["feature"], r.get("value"), lang, r.get("closed")),
                    side,
                    float(r.get("contribution", 0.0)),
                    r["feature"],
                )
        return None

    def top(self, detail: str | dict | None, lang: str, skip: tuple[str, ...] = (), prefer: str = "for") -> str:
        """The words of `strongest`; '' without reasons."""
        reason = self.strongest(detail, lang, skip, prefer)
        return reason.text if reason else ""
