"""An alert in words, in zh-CN or en: who, what happened, the probability and its change, why, and a link.

"看了报价页 3分12秒，第 4 次来访" / "viewed the pricing page for 3 min 12 s, 4th visit": event words come from the
settings' event labels (`EventConfig.label`, the words the dashboard uses), durations and percentages from
features/describe.py, reasons from the feature registry's sentences (serving/reasons.py). Group robots get the
`markdown` form, which never names the lead or carries a phone number; the `text` and `html` forms go to one
person (the owner's WeCom app, e-mail) and may name the lead where the data carries a name.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pandas as pd

from leadradar.config import Lang, Settings, get_settings
from leadradar.features.describe import format_value
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.serving.alerts.alert import Alert, Message
from leadradar.serving.alerts.channels import sales_name
from leadradar.serving.lead_view import ITEM_NAME_COLUMNS
from leadradar.serving.reasons import ReasonWriter

# key: (English, 简体中文)
WORDS: dict[str, tuple[str, str]] = {
    "rule.hot_action": ("Hot lead", "高意向线索"),
    "rule.threshold": ("Lead turned hot", "线索升温"),
    "rule.spike": ("Sudden interest", "意向突增"),
    "rule.back_from_dormant": ("Back after a quiet spell", "沉睡线索重新活跃"),
    "rule.going_cold": ("Hot lead going cold", "高意向线索正在降温"),
    "rule.digest": ("Daily digest", "每日简报"),
    "pricing": ("viewed the pricing page", "看了报价页"),
    "item": ("{verb} “{item}”", "{verb}“{item}”"),
    "dwell": ("for {dwell}", "{dwell}"),
    "visit": ("{n} visit", "第 {n} 次来访"),
    "dormant": ("first visit in {days} days", "{days} 天来首次来访"),
    "lead": ("Lead", "线索"),
    "owner": ("Owner", "负责销售"),
    "what": ("What happened", "发生了什么"),
    "p": ("Close probability", "成交概率"),
    "p.change": ("{p} (was {before}, {delta})", "{p}（之前 {before}，{delta}）"),
    "why": ("Why", "原因"),
    "open": ("Open the lead", "查看线索"),
    "sep": ("; ", "，"),
}
# A run of digits as long as a phone number (7 or more, with spaces, dashes or a leading +): masked in group messages.
PHONE = re.compile(r"\+?\d[\d\s-]{5,}\d")
_writers: dict[int, tuple[Settings, ReasonWriter]] = {}


def word(key: str, lang: str, **slots: object) -> str:
    text = WORDS[key][1 if lang == "zh-CN" else 0]
    return text.format(**slots) if slots else text


def mask_phones(text: str) -> str:
    """Digits that could be a phone number, kept only at the ends ("138****5678")."""

    def hide(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group())
        return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else m.group()

    return PHONE.sub(hide, text)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def happened(what: dict[str, Any], lang: str, settings: Settings) -> str:
    """The event in words: the action, on which item, for how long, which visit."""
    parts = []
    event = str(what.get("event_type") or "")
    if event:
        category, item = what.get("item_category"), what.get("item_name")
        label = settings.events.label(event)
        verb = label.verb_zh if lang == "zh-CN" else label.verb_en
        if category in settings.features.pricing_categories:
            parts.append(word("pricing", lang))
        elif item:
            parts.append(word("item", lang, verb=verb, item=item))
        else:
            parts.append(verb)
    dwell = what.get("dwell_s")
    if isinstance(dwell, int | float) and dwell > 0:
        text = word("dwell", lang, dwell=format_value("seconds", float(dwell), lang))
        if parts:
            parts[-1] += " " + text
        else:
            parts.append(text)
    visit = what.get("visit")
    if isinstance(visit, int) and visit > 0:
        parts.append(word("visit", lang, n=visit if lang == "zh-CN" else _ordinal(visit)))
    days = what.get("dormant_days")
    if isinstance(days, int | float) and days > 0:
        parts.append(word("dormant", lang, days=int(days)))
    return word("sep", lang).join(parts)


def probability(alert: Alert, lang: str) -> str:
    """'42%' or '42% (was 18%, +24 pts)'."""
    p = format_value("ratio", alert.p_close, lang)
    if alert.p_before is None:
        return p
    points = round((alert.p_close - alert.p_before) * 100)
    delta = f"{points:+d} pts" if lang == "en" else f"{points:+d} 个百分点"
    return word("p.change", lang, p=p, before=format_value("ratio", alert.p_before, lang), delta=delta)


def reasons(alert: Alert, lang: str, settings: Settings, top: int = 3) -> list[str]:
    """The strongest reasons speaking for closing, in the registry's words."""
    held = _writers.get(id(settings))
    if held is None or held[0] is not settings:
        held = _writers[id(settings)] = (settings, ReasonWriter(build_registry(settings), settings.funnel))
    writer = held[1]
    kept = [r for r in alert.reasons if _push(r) > 0]
    kept.sort(key=lambda r: -_push(r))
    return [writer.sentence(str(r["feature"]), r.get("value"), lang, _closed(r)) for r in kept[:top]]


def _closed(reason: dict[str, object]) -> float | None:
    """The closed leads' median a stored reason carries, if any."""
    value = reason.get("closed")
    return float(value) if isinstance(value, int | float) else None


def _push(reason: dict[str, object]) -> float:
    """A stored reason's contribution (log-odds); 0 when it has none."""
    try:
        return float(reason.get("contribution") or 0.0)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def item_facts(events: EventStore, tenant_id: str, item_id: str | None) -> dict[str, str]:
    """`item_name` (where the tenant's item catalogue names it) and `item_category` for an alert's `what`."""
    catalog = events.catalog("items", tenant_id) if item_id else None
    if catalog is None or "item_id" not in catalog:
        return {}
    rows = catalog[catalog["item_id"].astype(str) == item_id]
    if rows.empty:
        return {}
    row = rows.iloc[-1]
    facts = {"item_category": str(row["category"])} if "category" in rows and pd.notna(row["category"]) else {}
    name = next((c for c in ITEM_NAME_COLUMNS if c in rows and pd.notna(row[c])), None)
    return facts | ({"item_name": str(row[name])} if name else {})


def render(alert: Alert, lang: str, link: str, *, settings: Settings | None = None) -> Message:
    """The alert as a `Message` in `lang` ("en" or "zh-CN"), every form of it."""
    settings = settings or get_settings()
    language: Lang = "zh-CN" if lang == "zh-CN" else "en"
    lang = language
    owner = str(alert.what.get("sales_name") or sales_name(settings.alerts.channels, alert.sales_id, alert.tenant_id))
    lead_name = alert.what.get("lead_name")
    who_group = mask_phones(alert.lead_id)
    who_person = f"{lead_name} ({alert.lead_id})" if lead_name else alert.lead_id
    title = f"{word('rule.' + alert.rule, lang)} · {who_group}"
    what = happened(alert.what, lang, settings)
    p = probability(alert, lang)
    why = reasons(alert, lang, settings)
    colon = "：" if lang == "zh-CN" else ": "

    def lines(who: str) -> list[tuple[str, str]]:
        rows = [(word("lead", lang), who), (word("owner", lang), owner)]
        rows += [(word("what", lang), what)] if what else []
        return [*rows, (word("p", lang), p)]

    markdown = "\n".join(
        [f"### {title}", *(f"> {k}{colon}{v}" for k, v in lines(who_group))]
        + ([f"**{word('why', lang)}**"] + [f"- {r}" for r in why] if why else [])
    )
    markdown = mask_phones(markdown)
    if not PHONE.search(link):  # a link naming a phone-number lead id stays out of the group
        markdown += f"\n[{word('open', lang)}]({link})"
    text = "\n".join(
        [f"{word('rule.' + alert.rule, lang)} · {who_person}", *(f"{k}{colon}{v}" for k, v in lines(who_person))]
        + ([f"{word('why', lang)}{colon}"] + [f"- {r}" for r in why] if why else [])
        + [f"{word('open', lang)}{colon}{link}"]
    )
    e = html.escape
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in lines(who_person))
    why_html = f"<p>{e(word('why', lang))}</p><ul>{''.join(f'<li>{e(r)}</li>' for r in why)}</ul>" if why else ""
    page = (
        f"<html><body><h3>{e(word('rule.' + alert.rule, lang))} · {e(who_person)}</h3><table>{body}</table>"
        f'{why_html}<p><a href="{e(link)}">{e(word("open", lang))}</a></p></body></html>'
    )
    return Message(title=title, markdown=markdown, text=text, html=page, link=link, lang=language)
