"""How sure a score is and when the lead may close, as data (interval, flags, window) and in the reader's words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from leadradar.config import ServingConfig
from leadradar.serving.dashboard.messages import translator
from leadradar.serving.reasons import parse_detail
from leadradar.serving.schemas import CloseWindow
from leadradar.targets import close_window

# The detail keys a score carries them under, and the columns a ranked list shows them in.
CERTAINTY_KEYS = ("p_lo", "p_hi", "low_confidence", "pooled", "close_from_days", "close_to_days")


def certainty(
    p: np.ndarray,
    lo: np.ndarray | None,
    hi: np.ndarray | None,
    pooled: np.ndarray,
    curve: dict[int, np.ndarray],
    serving: ServingConfig,
    support: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Per lead: the interval (None without one), low confidence (the width the data left open, `support`, or the
    whole interval without it, wider than the setting), pooled, and the expected close window in days."""
    start, end = close_window(curve, serving.close_window_min_p)
    out, wide = [], serving.low_confidence_width
    for k in range(len(p)):
        has = lo is not None and hi is not None and lo[k] == lo[k]
        p_lo = float(lo[k]) if has and lo is not None else None
        p_hi = float(hi[k]) if has and hi is not None else None
        open_width = float(support[k]) if support is not None and has else (p_hi or 0.0) - (p_lo or 0.0)
        out.append(
            {
                "p_lo": p_lo,
                "p_hi": p_hi,
                "low_confidence": bool(has and open_width > wide),
                "pooled": bool(pooled[k]),
                "close_from_days": int(start[k]) if end[k] else None,
                "close_to_days": int(end[k]) if end[k] else None,
            }
        )
    return out


def window_text(start: Any, end: Any, lang: str) -> str:
    """The expected close window in words: "within 7 days", "in 8–30 days", or that none is named."""
    t = translator(lang)
    if end is None or end != end:
        return t("window.none")
    if not start:
        return t("window.within", end=int(end))
    return t("window.range", start=int(start), end=int(end))


def certainty_words(detail: Any, lang: str) -> dict[str, Any]:
    """A stored score's interval, flags and close window worded for a page (empty text where it has none)."""
    info, t = parse_detail(detail), translator(lang)
    lo, hi = info.get("p_lo"), info.get("p_hi")
    return {
        "range_text": t("certainty.range", lo=f"{lo:.0%}", hi=f"{hi:.0%}") if lo is not None and hi is not None else "",
        "low_confidence": bool(info.get("low_confidence")),
        "low_confidence_text": t("certainty.low"),
        "pooled": bool(info.get("pooled")),
        "pooled_text": t("certainty.pooled"),
        "window_text": window_text(info.get("close_from_days"), info.get("close_to_days"), lang)
        if "close_to_days" in info
        else "",
    }


def with_certainty(frame: pd.DataFrame, lang: str) -> pd.DataFrame:
    """A ranked frame with its scores' interval, flags and close window as columns (read from `detail`)."""
    infos = [parse_detail(d) for d in frame["detail"]] if "detail" in frame and len(frame) else []
    out = frame.copy()
    for key in CERTAINTY_KEYS:
        out[key] = [info.get(key) for info in infos] if infos else pd.Series(dtype=object)
    out["close_window"] = (
        [window_text(i.get("close_from_days"), i.get("close_to_days"), lang) for i in infos] if infos else ""
    )
    return out


def _value(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and v != v) else v


def close_window_of(start: Any, end: Any, lang: str) -> CloseWindow | None:
    """The expected close window for the API, worded in `lang`; None where none is named."""
    start, end = _value(start), _value(end)
    if end is None:
        return None
    return CloseWindow(from_days=int(start or 0), to_days=int(end), text=window_text(start, end, lang))


def ranked_certainty(row: Mapping[Any, Any], lang: str) -> dict[str, Any]:
    """A ranked row's interval, flags and close window as /v1/rank answers them."""
    return {
        "p_lo": _value(row.get("p_lo")),
        "p_hi": _value(row.get("p_hi")),
        "low_confidence": _value(row.get("low_confidence")),
        "pooled": _value(row.get("pooled")),
        "expected_close": close_window_of(row.get("close_from_days"), row.get("close_to_days"), lang),
    }
