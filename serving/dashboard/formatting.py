"""Numbers, changes and times as the dashboard prints them, per language and the company's clock."""

from __future__ import annotations

import datetime as dt
import math
from datetime import timedelta, timezone

import pandas as pd

from leadradar.features.describe import format_value
from leadradar.serving.dashboard.messages import WEEKDAYS


def pct(p: float | None, digits: int = 1) -> str:
    """0.4231 → '42.3%'; '–' for nothing."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p * 100:.{digits}f}%"


def points(change: float | None) -> str:
    """A change of probability in percentage points, signed: '+3.1', '−0.4'; '' for none."""
    if change is None or (isinstance(change, float) and math.isnan(change)):
        return ""
    value = change * 100
    if abs(value) < 0.05:
        return "0.0"
    return f"{value:+.1f}".replace("-", "−")


def count(n: float | int) -> str:
    return f"{int(round(n)):,}"


def decimal(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


class Clock:
    """Times in the company's UTC offset (China keeps UTC+8 all year), written per language."""

    def __init__(self, offset_hours: float, lang: str):
        self.tz = timezone(timedelta(hours=offset_hours))
        self.offset = f"{'+' if offset_hours >= 0 else '−'}{abs(offset_hours):g}"
        self.lang = lang

    def local(self, value: pd.Timestamp | dt.datetime) -> dt.datetime:
        ts = pd.Timestamp(value)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts
        return ts.tz_convert(self.tz).to_pydatetime()

    def date(self, value: pd.Timestamp | dt.datetime | None) -> str:
        if value is None or pd.isna(value):
            return "–"
        d = self.local(value)
        return f"{d.year}年{d.month}月{d.day}日" if self.lang == "zh-CN" else d.strftime("%-d %b %Y")

    def datetime(self, value: pd.Timestamp | dt.datetime | None) -> str:
        if value is None or pd.isna(value):
            return "–"
        return f"{self.date(value)} {self.local(value):%H:%M}"

    def day(self, value: pd.Timestamp | dt.datetime) -> str:
        """A timeline day heading: 'Sun 27 Sep' / '9月27日 周日'."""
        d = self.local(value)
        weekday = WEEKDAYS[self.lang if self.lang in WEEKDAYS else "en"][d.weekday()]
        return f"{d.month}月{d.day}日 {weekday}" if self.lang == "zh-CN" else f"{weekday} {d:%-d %b}"

    def short(self, value: pd.Timestamp | dt.datetime) -> str:
        """An axis label: '27 Sep' / '9/27'."""
        d = self.local(value)
        return f"{d.month}/{d.day}" if self.lang == "zh-CN" else d.strftime("%-d %b")

    def time(self, value: pd.Timestamp | dt.datetime) -> str:
        return f"{self.local(value):%H:%M}"


def seconds(value: float | None, lang: str) -> str:
    """A dwell time in the registry's words: '2 min 5 s' / '2分5秒'."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value <= 0:
        return ""
    return format_value("seconds", value, lang)
