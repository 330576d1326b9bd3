"""What leads that closed looked like, learnt at training time, so a reason can say how a lead compares.

"viewed the pricing page 3 times in the last 7 days — closed leads: 1.5 on median": the figure is the median
(with the quartiles) of the feature over the training rows whose main label is 1, the lead won within the horizon
after the cutoff. It is kept with the model (model.json, `closed_profile`), so a score is compared with the leads
the model that gave it learnt from, never with today's data. Only behaviour speaks this way (the lead's own events,
items, categories and referrals): a manager knows the stage and the CRM attributes already.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import FunnelConfig
from leadradar.features.describe import format_value
from leadradar.features.feature import Feature

QUANTILES = {"q25": 0.25, "q50": 0.5, "q75": 0.75}
# Fewer closed rows than this and a median is an anecdote: the profile stays empty and reasons do not compare.
MIN_CLOSED_ROWS = 20
# Sources of behaviour: what the lead did, which is what a reason should tell the manager.
BEHAVIOUR_SOURCES = frozenset({"activity", "items", "categories", "referrals"})
WORDS = {"en": " — closed leads: {value} on median", "zh-CN": "（已成交线索中位数：{value}）"}


def closed_profile(frame: pd.DataFrame, features: list[str], categorical: list[str], label: str) -> dict[str, Any]:
    """Per numeric feature, the quartiles over the rows whose `label` is 1: `{"rows": n, "features": {...}}`."""
    if label not in frame:
        return {}
    closed = frame[frame[label] == 1]
    if len(closed) < MIN_CLOSED_ROWS:
        return {"rows": int(len(closed)), "features": {}}
    out: dict[str, dict[str, float]] = {}
    for name in features:
        if name in categorical or name not in closed or not pd.api.types.is_numeric_dtype(closed[name]):
            continue
        values = closed[name].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if len(values) >= MIN_CLOSED_ROWS:
            qs = np.quantile(values, list(QUANTILES.values()))
            out[name] = {k: round(float(q), 6) for k, q in zip(QUANTILES, qs)}
    return {"rows": int(len(closed)), "features": out}


def closed_median(profile: dict[str, Any] | None, feature: Feature) -> float | None:
    """The closed leads' median of a behaviour feature, where the profile has one."""
    if not profile or feature.source not in BEHAVIOUR_SOURCES:
        return None
    entry = (profile.get("features") or {}).get(feature.name)
    return None if entry is None else float(entry["q50"])


def compared(feature: Feature, median: float | None, lang: str, funnel: FunnelConfig | None = None) -> str:
    """The words appended to a reason: how closed leads stood on this feature ('' without a figure)."""
    if median is None or feature.kind in ("category", "rank"):
        return ""
    kind = "number" if feature.kind == "count" else feature.kind  # "1.5 on median", not a rounded "2"
    return WORDS["zh-CN" if lang == "zh-CN" else "en"].format(value=format_value(kind, median, lang, feature, funnel))
