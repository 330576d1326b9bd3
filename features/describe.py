"""Feature values in words: a lead's value formatted by its kind, filled into the registry's sentence.

Everything a salesperson or boss reads about a feature comes from its registry declaration (the
`en`/`zh` templates with a `{value}` slot) and these formatting rules, in English or Simplified
Chinese. The rules are pure functions of (kind, value, language), so a reason reads the same in a
notebook, a batch report and the scoring service.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from leadradar.config import LANGS

if TYPE_CHECKING:
    from leadradar.config import FunnelConfig
    from leadradar.features.feature import Feature

MISSING = {"en": "no data", "zh-CN": "无数据"}
SLOT = "{value}"

# English plurals that follow the value in the registry's templates; "1 visits" reads as "1 visit".
_SINGULAR = {
    "visits": "visit",
    "days": "day",
    "items": "item",
    "lines": "line",
    "leads": "lead",
    "stages": "stage",
    "actions": "action",
    "people": "person",
}
_WORD = re.compile(r"\s*(\S+)")


def check_lang(lang: str) -> str:
    """The language if we write it, else a ValueError naming the ones we do."""
    if lang not in LANGS:
        raise ValueError(f"language {lang!r} is not supported; use one of {', '.join(map(repr, LANGS))}")
    return lang


def is_missing(value: Any) -> bool:
    """None, NaN and pandas' NA/NaT all mean the lead has no value."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        return bool(value != value)  # NaN-likes (numpy floats, pd.NA raises TypeError)
    except TypeError:
        return True


def _trim(x: float, decimals: int) -> str:
    """`x` with at most `decimals` decimals and no trailing zeros: 4.50 -> '4.5', 3.00 -> '3'."""
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _round(x: float) -> int:
    """Half away from zero, as people round (Python's round() gives round(2.5) == 2)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _plural(n: float, one: str, many: str) -> str:
    return one if n == 1 else many


def _count(value: float, lang: str) -> str:
    return f"{_round(value):,}"


def _seconds(value: float, lang: str) -> str:
    """45 s, 2 min 5 s, 1 h 3 min (seconds dropped once there are hours); 2.5 s under ten seconds."""
    zh = lang == "zh-CN"
    if value < 10 and _round(value) != round(value, 1):
        return f"{_trim(value, 1)}{'秒' if zh else ' s'}"
    total = _round(value)
    if total < 3600:
        m, s = divmod(total, 60)
        if zh:
            return (f"{m}分" if m else "") + (f"{s}秒" if s or not m else "")
        return " ".join([*([f"{m} min"] if m else []), *([f"{s} s"] if s or not m else [])])
    h, m = divmod(_round(value / 60), 60)
    if zh:
        return f"{h}小时" + (f"{m}分" if m else "")
    return f"{h} h" + (f" {m} min" if m else "")


def _hours(value: float, lang: str) -> str:
    """Minutes under an hour, whole hours under two days, whole days from 48 hours on."""
    zh = lang == "zh-CN"
    if value < 1:
        m = max(1, _round(value * 60))
        return f"{m}分钟" if zh else f"{m} {_plural(m, 'minute', 'minutes')}"
    h = _round(value)
    if h < 48:
        return f"{h}小时" if zh else f"{h} {_plural(h, 'hour', 'hours')}"
    d = _round(value / 24)
    return f"{d}天" if zh else f"{d:,} days"


def _days(value: float, lang: str) -> str:
    """One decimal under ten days ('4.5 days'), whole days from ten on."""
    text = _trim(value, 1) if abs(value) < 10 else f"{_round(value):,}"
    if lang == "zh-CN":
        return f"{text}天"
    return f"{text} {'day' if text == '1' else 'days'}"


def _percent(value: float, lang: str) -> str:
    """Whole percent; one decimal for a non-zero share under one percent ('0.4%')."""
    pct = value * 100
    return f"{_trim(pct, 1)}%" if 0 < abs(pct) < 1 else f"{_round(pct)}%"


def _number(value: float, lang: str) -> str:
    """At most two decimals ('2.33', '1.5', '3'); two significant digits below one ('0.042')."""
    if value != 0 and abs(value) < 1:
        text = f"{value:.2g}"
        return "0" if "e" in text else text
    return _trim(value, 2)


_FORMAT = {
    "count": _count,
    "seconds": _seconds,
    "hours": _hours,
    "days": _days,
    "ratio": _percent,
    "share": _percent,
    "number": _number,
}


def format_value(
    kind: str,
    value: Any,
    lang: str,
    registry_feature: Feature | None = None,
    funnel: FunnelConfig | None = None,
) -> str:
    """A feature value as a person reads it, by the feature's kind; `funnel` names stages for `rank`.

    Missing and non-finite values read as "no data" / "无数据".
    """
    check_lang(lang)
    if is_missing(value):
        return MISSING[lang]
    if kind == "category":
        return str(value)
    if kind == "rank":
        return _stage(value, lang, funnel, registry_feature)
    fmt = _FORMAT.get(kind)
    if fmt is None:
        where = f" of feature {registry_feature.name!r}" if registry_feature else ""
        raise ValueError(f"unknown kind {kind!r}{where}; expected one of {sorted([*_FORMAT, 'category', 'rank'])}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        where = f"feature {registry_feature.name!r}" if registry_feature else f"a {kind} value"
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        return MISSING[lang]
    try:
        return fmt(x, lang)
    except (OverflowError, ValueError):  # a finite value too large to round for words: show it as is
        return f"{x:g}"


def _stage(value: Any, lang: str, funnel: FunnelConfig | None, feature: Feature | None) -> str:
    """A stage rank as the funnel's stage name in the language ('qualified' / '需求确认')."""
    name = feature.name if feature else "a rank feature"
    if funnel is None:
        raise ValueError(f"{name} holds a funnel stage rank; pass the funnel (settings.funnel) to name the stage")
    stages = funnel.all_stages
    rank = int(round(float(value)))
    if not 0 <= rank < len(stages):
        raise ValueError(f"{name} = {value!r} is not a stage rank; the funnel has ranks 0..{len(stages) - 1}")
    return funnel.label(stages[rank], lang)


@lru_cache(maxsize=4096)
def template_parts(feature: Feature, lang: str) -> tuple[str, str, str, str | None]:
    """The template split at its one `{value}` slot, the sentence for a value of 1, and for 0 if declared."""
    zh = check_lang(lang) == "zh-CN"
    template = feature.zh if zh else feature.en
    if template.count(SLOT) != 1 or "{" in template.replace(SLOT, "") or "}" in template.replace(SLOT, ""):
        raise ValueError(f"feature {feature.name!r}: the {lang} template {template!r} needs exactly one {SLOT}")
    before, after = template.split(SLOT)
    one = before + "1" + after if zh else _one(before, after)
    return before, after, one, feature.zh0 if zh else feature.en0


def _one(before: str, after: str) -> str:
    """English for a value of 1: '1 times' reads 'once', the first plural within two words loses its s."""
    pos = 0
    for i in range(2):
        m = _WORD.match(after, pos)
        if m is None:
            break
        word = m.group(1).rstrip(",.;:")  # "1 days, weighted ..." reads "1 day, weighted ..."
        end = m.start(1) + len(word)
        if word == "times" and i == 0:
            return f"{before.rstrip()} once{after[end:]}".strip()
        if word in _SINGULAR:
            return f"{before}1{after[: m.start(1)]}{_SINGULAR[word]}{after[end:]}"
        pos = m.end()
    return f"{before}1{after}"


def fill(parts: tuple[str, str, str, str | None], value_text: str) -> str:
    """Template parts with a formatted value in the slot (or the declared sentence for 1 and for 0)."""
    before, after, one, zero = parts
    if value_text == "0" and zero:
        return zero
    return one if value_text == "1" else before + value_text + after


def describe(feature: Feature, value: Any, lang: str, funnel: FunnelConfig | None = None) -> str:
    """The feature's sentence in `lang`, filled with the lead's formatted value."""
    text = format_value(feature.kind, value, lang, feature, funnel)
    return fill(template_parts(feature, lang), text)
