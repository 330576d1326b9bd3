"""The health page: is the served model still true? Version and age, training window, backtest figures with
intervals, the latest drift table in words, the matured calibration plot beside the scores people called wrong
(per model version), the retrain history and schedule.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from leadradar.config import Settings
from leadradar.registry import load_alias
from leadradar.serving.dashboard.charts import GRID, INK, MUTED, _svg, _text
from leadradar.serving.drift import describe
from leadradar.serving.model_health import lifecycle_status
from leadradar.serving.score_feedback import ScoreFeedback

FIGURES = ("auc", "logloss", "brier", "ece")
TOP_DRIFTING = 10


def calibration_chart(bands: list[dict[str, Any]], label: str, size: int = 320) -> Markup:
    """Predicted (x) against realised (y) closes per band, with the interval as a vertical bar; the diagonal
    is a perfectly calibrated model."""
    pad = 36
    span = size - 2 * pad

    def xy(p: float, q: float) -> tuple[float, float]:
        return pad + p * span, size - pad - q * span

    top = max([0.1, *[b["realised_high"] for b in bands], *[b["predicted"] for b in bands]])
    top = min(1.0, top * 1.1)
    scale = 1 / top
    x0, y0 = xy(0, 0)
    x1, y1 = xy(1, 1)
    parts = [
        f'<rect x="{x0}" y="{y1}" width="{span}" height="{span}" fill="none" stroke="{GRID}"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}" stroke="{MUTED}" stroke-dasharray="4 3"/>',
        _text(x0, y0 + 16, "0%", 10, fill=MUTED),
        _text(x1, y0 + 16, f"{top:.0%}", 10, "end", fill=MUTED),
        _text(x0 - 4, y1 + 4, f"{top:.0%}", 10, "end", fill=MUTED),
    ]
    for b in bands:
        cx, cy = xy(b["predicted"] * scale, b["realised"] * scale)
        _, lo = xy(0, b["realised_low"] * scale)
        _, hi = xy(0, b["realised_high"] * scale)
        parts.append(f'<line x1="{cx:.1f}" y1="{lo:.1f}" x2="{cx:.1f}" y2="{hi:.1f}" stroke="{INK}"/>')
        tip = escape(f"{b['predicted']:.1%} → {b['realised']:.1%} ({b['closes']}/{b['leads']})")
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#1c7ed6"><title>{tip}</title></circle>')
    return _svg(size, size, "".join(parts), label)


def model_card(settings: Settings) -> dict[str, Any]:
    """The champion's version, age, window and backtest figures; a problem sentence when there is none."""
    try:
        loaded = load_alias(settings)
    except Exception as exc:
        return {"problem": str(exc)}
    meta = loaded.meta
    window = meta.get("window") or {}
    metrics = meta.get("test_metrics") or {}
    until = pd.Timestamp(window["data_until"]) if window.get("data_until") else None
    return {
        "version": loaded.ref.version,
        "source": loaded.source,
        "window": window,
        "age_days": (pd.Timestamp.now(tz="UTC") - until).days if until is not None else None,
        "figures": [
            {"name": k, "value": metrics[k], "lo": metrics.get(f"{k}_lo"), "hi": metrics.get(f"{k}_hi")}
            for k in FIGURES
            if k in metrics
        ],
    }


def health_page(settings: Settings, tenant_id: str, lang: str, label: str) -> dict[str, Any]:
    """Everything the health page shows for one tenant."""
    status = lifecycle_status(settings, tenant_id)
    drift = status["drift"]
    rows = [r for r in (drift or {}).get("detail", {}).get("table", []) if r.get("tenant_id") == tenant_id]
    drifting = [
        {**r, "words": describe(pd.Series(r), settings, "zh" if lang.startswith("zh") else "en")}
        for r in rows[:TOP_DRIFTING]
    ]
    calibration = status["calibration"]
    detail = (calibration or {}).get("detail", {})
    bands = [b for b in detail.get("bands", []) if b.get("tenant_id") == tenant_id]
    errors = [e for e in detail.get("errors", []) if e.get("tenant_id") == tenant_id]
    return {
        "model": model_card(settings),
        "status": status,
        "drift": drift,
        "drifting": drifting,
        "calibration": calibration,
        "bands": bands,
        "error": errors[0] if errors else None,
        "chart": calibration_chart(bands, label) if bands else None,
        "feedback": ScoreFeedback(settings.score_store_url).counts(tenant_id),
    }
