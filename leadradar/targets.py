"""What the models predict, named once: close within each horizon, and moving past each open stage.

Labels (`y_close_30d`), model targets (`close_30d`), outputs (`p_close_30d`) and the rule that a close
probability never falls as the horizon grows all come from here, so labels, training, promotion, the
funnel model, batch scoring and the online engine cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from leadradar.config import Settings

CLOSE_NAME = re.compile(r"^close_(\d+)d$")


@dataclass(frozen=True)
class TargetSpec:
    """What one model predicts: a label column, optionally only for leads at one stage."""

    name: str
    label: str
    stage: str | None = None


def close_target(days: int) -> str:
    return f"close_{days}d"


def close_label(days: int) -> str:
    return f"y_close_{days}d"


def close_output(days: int) -> str:
    """The column a boss reads for a horizon: `p_close_30d`."""
    return f"p_{close_target(days)}"


def advance_target(stage: str) -> str:
    return f"advance_{stage}"


def advance_label(days: int) -> str:
    return f"y_advance_{days}d"


def close_days(name: str) -> int | None:
    """The horizon of a close target (`close_30d` → 30); None for any other target."""
    m = CLOSE_NAME.match(name)
    return int(m.group(1)) if m else None


def close_targets(names: Iterable[str]) -> list[tuple[int, str]]:
    """A model's close targets as (days, name), shortest horizon first."""
    return sorted((d, n) for n in names if (d := close_days(n)) is not None)


def close_curve(probs: Mapping[str, np.ndarray], names: Iterable[str]) -> dict[int, np.ndarray]:
    """Close probability per horizon, never falling as the horizon grows (a running maximum).

    Each horizon has its own model, so on its own a 90-day answer could fall below the 30-day one.
    """
    curve: dict[int, np.ndarray] = {}
    running: np.ndarray | None = None
    for days, name in close_targets(names):
        p = np.asarray(probs[name], dtype=np.float64)
        running = p if running is None else np.maximum(running, p)
        curve[days] = running
    return curve


def close_window(curve: Mapping[int, np.ndarray], min_p: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The expected close window per lead, as (from_days, to_days): the horizon by which, if the lead closes within
    the longest horizon, it has more likely than not closed (the median of its close time read off the curve).

    Leads whose longest-horizon probability is below `min_p` get (0, 0): too unlikely to name a window.
    A curve that rises earlier never gets a later window.
    """
    days = sorted(curve)
    if not days:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    last = np.asarray(curve[days[-1]], dtype=np.float64)
    end = np.full(len(last), days[-1], dtype=int)
    start = np.full(len(last), days[-2] + 1 if len(days) > 1 else 0, dtype=int)
    for before, d in reversed(list(zip([0, *days[:-1]], days))):
        reached = np.asarray(curve[d], dtype=np.float64) >= 0.5 * last
        end = np.where(reached, d, end)
        start = np.where(reached, before + 1 if before else 0, start)
    none = ~(last >= max(min_p, 1e-12))
    return np.where(none, 0, start), np.where(none, 0, end)


@dataclass(frozen=True)
class Targets:
    """The targets a settings object asks for: close per horizon, then one transition per open stage."""

    horizons_days: tuple[int, ...]
    main_days: int
    open_stages: tuple[str, ...]
    transitions: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> Targets:
        tc = settings.training
        return cls(
            horizons_days=tuple(sorted(set(tc.horizons_days) | {tc.horizon_days})),
            main_days=tc.horizon_days,
            open_stages=settings.funnel.open_stages,
            transitions=tc.transition_models,
        )

    @property
    def main(self) -> str:
        return close_target(self.main_days)

    @property
    def main_label(self) -> str:
        return close_label(self.main_days)

    @property
    def advance_label(self) -> str:
        """Transitions look as far ahead as the main horizon."""
        return advance_label(self.main_days)

    @property
    def label_columns(self) -> list[str]:
        return [close_label(d) for d in self.horizons_days] + [self.advance_label]

    def specs(self) -> list[TargetSpec]:
        """The close model for every horizon, then one transition model per open stage."""
        specs = [TargetSpec(close_target(d), close_label(d)) for d in self.horizons_days]
        if self.transitions:
            specs += [TargetSpec(advance_target(s), self.advance_label, stage=s) for s in self.open_stages]
        return specs

    def horizon_of(self, spec: TargetSpec) -> int:
        """How far a target's label looks ahead: its own horizon for close models, the main one for transitions."""
        days = close_days(spec.name)
        return self.main_days if days is None else days
