"""The drift notice: when the drift job finds a tenant's inputs or score moved past the settings' thresholds, the
tenant's managers hear of it through the one outbox (stored, retried, on the Rules page's digest channels).

A tenant is told when its drift calls for a retrain by the same rule the job uses (the score drifted, or at least
`lifecycle.drift_features_to_retrain` features did), so a single noisy feature does not page anyone. The dedup key
is (tenant, model version, local day): the nightly job and any re-run on the same day store one notice; a new model
version, or the next day with drift still there, store another. Managers are the people on the tenant's digest
channels (`digest = true`, with their `recipient`); a notice is never addressed to a salesperson.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

import pandas as pd

from leadradar.config import Lang, Settings
from leadradar.serving.alerts.alert import NOTICE_RULES, Alert, Message
from leadradar.serving.alerts.channels import PERSONAL_KINDS, name_of
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.alerts.restraint import Decided, local_day, quiet_until
from leadradar.serving.drift import SCORE, describe

RULE = NOTICE_RULES[0]
# Drifted columns a notice names, strongest first; the health page has the whole table.
NAMED = 5

WORDS: dict[str, tuple[str, str]] = {
    "title": ("Model v{version} no longer fits {tenant}'s leads", "模型 v{version} 与 {tenant} 的线索出现偏差"),
    "lead": (
        "Since training, {n} of the model's inputs moved past the drift threshold (PSI > {threshold}):",
        "自训练以来，模型有 {n} 项输入超过漂移阈值（PSI > {threshold}）：",
    ),
    "score": ("The score itself drifted: treat close probabilities with care.", "成交概率本身已漂移，请谨慎参考。"),
    "retrain": ("Retrain: {what}", "重新训练：{what}"),
    "open": ("Open the model health page", "查看模型健康页"),
}


def _w(key: str, lang: str, **slots: object) -> str:
    text = WORDS[key][1 if lang == "zh-CN" else 0]
    return text.format(**slots) if slots else text


def drifted_tenants(table: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
    """Per tenant whose drift calls for action: its drifted rows, strongest first."""
    if table.empty:
        return {}
    out = {}
    for tenant, rows in table[table["drifted"]].groupby("tenant_id", sort=True):
        features = rows[rows["column"] != SCORE]
        if (rows["column"] == SCORE).any() or len(features) >= settings.lifecycle.drift_features_to_retrain:
            out[str(tenant)] = rows.sort_values("psi", ascending=False, na_position="last")
    return out


def drift_alerts(
    table: pd.DataFrame, model_version: str, now: datetime, settings: Settings, retrain: str | None = None
) -> list[Alert]:
    """One notice per tenant whose drift calls for action, keyed by tenant, model version and local day."""
    day = local_day(now, settings.lifecycle.timezone)
    alerts = []
    for tenant, rows in drifted_tenants(table, settings).items():
        named = rows.head(NAMED)
        what: dict[str, Any] = {
            "model_version": str(model_version),
            "drifted": len(rows),
            "score_drifted": bool((rows["column"] == SCORE).any()),
            "columns": [
                {k: _plain(r[k]) for k in ("column", "psi", "median_reference", "median_current")}
                for _, r in named.iterrows()
            ],
            "retrain": retrain,
        }
        key = f"{tenant}|{RULE}|v{model_version}|{day}"
        alerts.append(Alert(tenant, "", "", RULE, now, 0.0, None, "", key, what))  # type: ignore[arg-type]
    return alerts


def _plain(value: Any) -> Any:
    """A table cell as JSON keeps it (numpy floats and NaN are not JSON)."""
    if isinstance(value, str) or value is None:
        return value
    number = float(value)
    return None if number != number else number


def manager_targets(settings: Settings, tenant: str) -> list[Target]:
    """The tenant's digest channels (the managers'); a personal one only with its configured recipient."""
    out = []
    for i, cfg in enumerate(settings.alerts.channels.tenants.get(tenant, [])):
        if not cfg.digest or (cfg.kind in PERSONAL_KINDS and not cfg.recipient):
            continue
        out.append(Target(name_of(cfg, i), cfg.kind, cfg.recipient or None, cfg.language))
    return out


def notify_drift(
    settings: Settings,
    table: pd.DataFrame,
    model_version: str,
    now: datetime,
    retrain: str | None = None,
    outbox: Outbox | None = None,
) -> list[int]:
    """Store today's drift notices in the outbox (held past quiet hours); the ids stored now (none if already)."""
    alerts = drift_alerts(table, model_version, now, settings, retrain)
    if not alerts:
        return []
    outbox = outbox or Outbox(settings.score_store_url, settings.alerts.rules)
    deliver_at = quiet_until(now, settings.alerts.rules, settings.lifecycle.timezone) or now
    decided = [Decided(a, "instant", deliver_at, "drift notice") for a in alerts]
    return outbox.record(decided, lambda a: manager_targets(settings, a.tenant_id), now)


def notice_message(alert: Alert, lang: str, settings: Settings) -> Message:
    """The notice in words: which inputs moved (the features' own sentences), whether a retrain ran, a link."""
    language: Lang = "zh-CN" if lang == "zh-CN" else "en"
    what = alert.what
    link = f"{settings.alerts.channels.dashboard_url.rstrip('/')}/health"
    columns: list[dict[str, Any]] = list(what.get("columns") or [])  # type: ignore[call-overload]
    version, threshold = what.get("model_version"), settings.lifecycle.psi_threshold
    title = _w("title", language, version=version, tenant=alert.tenant_id)
    words = "zh" if language == "zh-CN" else "en"
    lines = [
        f"{describe(pd.Series(c), settings, words)} (PSI {c['psi']:.2f})"
        if c.get("psi") is not None
        else describe(pd.Series(c), settings, words)
        for c in columns
    ]
    head = [_w("lead", language, n=what.get("drifted", len(columns)), threshold=f"{threshold:g}")]
    tail = [_w("score", language)] if what.get("score_drifted") else []
    tail += [_w("retrain", language, what=what["retrain"])] if what.get("retrain") else []
    markdown = "\n".join(
        [f"### {title}", *head, *(f"- {x}" for x in lines), *tail, f"[{_w('open', language)}]({link})"]
    )
    text = "\n".join([title, *head, *(f"- {x}" for x in lines), *tail, link])
    e = html.escape
    page = (
        f"<html><body><h3>{e(title)}</h3><p>{e(head[0])}</p><ul>{''.join(f'<li>{e(x)}</li>' for x in lines)}</ul>"
        + "".join(f"<p>{e(x)}</p>" for x in tail)
        + f'<p><a href="{e(link)}">{e(_w("open", language))}</a></p></body></html>'
    )
    return Message(title=title, markdown=markdown, text=text, html=page, link=link, lang=language)
