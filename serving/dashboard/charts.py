"""Charts as inline SVG drawn on the server: no script, no CDN, and they survive being e-mailed.

Each function takes plain numbers and already-worded labels and returns markup that scales to its
container (a `viewBox` with width 100%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

GRADE_COLORS = {"A": "#e03131", "B": "#f08c00", "C": "#1c7ed6", "D": "#adb5bd"}
FAMILY_COLORS = {"view": "#4dabf7", "share": "#9775fa", "contact": "#f03e3e", "content": "#20c997"}
INK, MUTED, GRID = "#212529", "#868e96", "#e9ecef"
FONT = 'font-family="inherit"'


def _svg(width: int, height: int, body: str, label: str) -> Markup:
    return Markup(  # nosec B704 # the body is made here of numbers and escape()d text; the label is escaped
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        f"{body}</svg>"
    )


def _text(
    x: float, y: float, text: str, size: int = 12, anchor: str = "start", fill: str = INK, weight: str = "normal"
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
        f'font-weight="{weight}" {FONT}>{escape(text)}</text>'
    )


def _nice_top(value: float) -> float:
    """The y-axis top for probabilities: a tenth above the largest, at most 100%."""
    return min(1.0, max(0.1, math.ceil((value + 0.02) * 10) / 10))


@dataclass(frozen=True)
class Point:
    label: str  # the x-axis label (a date)
    value: float  # a probability
    tip: str = ""  # hover text
    moved: str = ""  # a live score: the event that moved it, worded (drawn as a diamond with a mark on the axis)


MOVED_COLOR = "#f08c00"


def _moved_mark(x: float, y: float, base: float, tip: str, last: bool) -> str:
    """A live score's point as a diamond, and a tick from it down to the time axis for the event that moved it."""
    r = 5.5 if last else 4.5
    diamond = f"{x:.1f},{y - r:.1f} {x + r:.1f},{y:.1f} {x:.1f},{y + r:.1f} {x - r:.1f},{y:.1f}"
    return (
        f'<g class="moved"><line x1="{x:.1f}" x2="{x:.1f}" y1="{y + r:.1f}" y2="{base:.1f}" stroke="{MOVED_COLOR}" '
        f'stroke-dasharray="2 3" stroke-width="1"/>'
        f'<polygon points="{x - 4:.1f},{base + 7:.1f} {x + 4:.1f},{base + 7:.1f} {x:.1f},{base:.1f}" '
        f'fill="{MOVED_COLOR}"/>'
        f'<polygon points="{diamond}" fill="{MOVED_COLOR}" stroke="#fff" stroke-width="1.5">'
        f"<title>{escape(tip)}</title></polygon></g>"
    )


def history_chart(
    points: Sequence[Point], thresholds: dict[str, float], label: str, width: int = 640, height: int = 230
) -> Markup:
    """A probability over scoring runs and live rescorings, with the grade thresholds as dashed lines and
    each live score's moving event marked on the time axis."""
    left, right, top, bottom = 46, 34, 14, 30
    w, h = width - left - right, height - top - bottom
    ymax = _nice_top(max([p.value for p in points] + [0.0]))
    y = lambda v: top + h - v / ymax * h
    n = len(points)
    x = (lambda i: left + w / 2) if n == 1 else (lambda i: left + i * w / (n - 1))
    parts = []
    for k in range(5):
        v = ymax * k / 4
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 6, y(v) + 4, f"{v * 100:.0f}%", 11, "end", MUTED))
    for grade, t in sorted(thresholds.items()):
        if t <= ymax:
            parts.append(
                f'<line x1="{left}" x2="{left + w}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                f'stroke="{GRADE_COLORS[grade]}" stroke-dasharray="4 4" stroke-width="1"/>'
            )
            parts.append(_text(left + w + 6, y(t) + 4, grade, 11, "start", GRADE_COLORS[grade], "bold"))
    if n > 1:
        area = " ".join(f"{x(i):.1f},{y(p.value):.1f}" for i, p in enumerate(points))
        parts.append(
            f'<polygon points="{x(0):.1f},{y(0):.1f} {area} {x(n - 1):.1f},{y(0):.1f}" fill="#1c7ed6" '
            f'fill-opacity="0.08"/>'
        )
        parts.append(
            f'<polyline points="{area}" fill="none" stroke="#1c7ed6" stroke-width="2.5" stroke-linejoin="round"/>'
        )
    step = max(1, math.ceil(n / 6))
    for i, p in enumerate(points):
        if p.moved:
            parts.append(_moved_mark(x(i), y(p.value), y(0), f"{p.tip or p.label} · {p.moved}", i == n - 1))
        else:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="{4.5 if i == n - 1 else 3}" fill="#1c7ed6" '
                f'stroke="#fff" stroke-width="1.5"><title>{escape(p.tip or p.label)}</title></circle>'
            )
        if i % step == 0 or i == n - 1:
            parts.append(_text(x(i), height - 8, p.label, 11, "middle", MUTED))
    if points:
        last = points[-1]
        parts.append(_text(x(n - 1) - 8, y(last.value) - 10, f"{last.value * 100:.1f}%", 12, "end", INK, "bold"))
    return _svg(width, height, "".join(parts), label)


@dataclass(frozen=True)
class FunnelBar:
    label: str
    reached: int
    conversion: str  # worded rate to the next stage ('' for the last)
    note: str = ""  # e.g. 'lost here 120'


def funnel_chart(bars: Sequence[FunnelBar], label: str, width: int = 640) -> Markup:
    """The funnel as centred bars, widest at the top, with the rate on to the next stage between bars."""
    row, gap, left, right = 34, 22, 110, 120
    height = len(bars) * row + max(0, len(bars) - 1) * gap + 10
    w = width - left - right
    most = max([b.reached for b in bars] + [1])
    parts = []
    for i, b in enumerate(bars):
        top = 5 + i * (row + gap)
        bw = max(2.0, b.reached / most * w)
        x0 = left + (w - bw) / 2
        shade = 0.95 - 0.55 * i / max(1, len(bars) - 1)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{bw:.1f}" height="{row}" rx="4" '
            f'fill="#1c7ed6" fill-opacity="{shade:.2f}"/>'
        )
        parts.append(_text(left - 10, top + row / 2 + 4, b.label, 13, "end", INK, "bold"))
        inside = bw > 70
        parts.append(
            _text(
                left + w / 2 if inside else x0 + bw + 6,
                top + row / 2 + 5,
                f"{b.reached:,}",
                13,
                "middle" if inside else "start",
                "#fff" if inside and shade > 0.5 else INK,
                "bold",
            )
        )
        if b.note:
            parts.append(_text(left + w + 10, top + row / 2 + 4, b.note, 11, "start", MUTED))
        if b.conversion and i < len(bars) - 1:
            parts.append(_text(left + w / 2, top + row + gap / 2 + 5, f"↓ {b.conversion}", 12, "middle", "#495057"))
    return _svg(width, height, "".join(parts), label)


def grade_chart(counts: dict[str, int], label: str, width: int = 320) -> Markup:
    """Leads per grade as horizontal bars in the grade colours."""
    row, left, right = 26, 26, 56
    grades = ["A", "B", "C", "D"]
    height = len(grades) * row + 4
    most = max([counts.get(g, 0) for g in grades] + [1])
    w = width - left - right
    parts = []
    for i, g in enumerate(grades):
        n = counts.get(g, 0)
        top = 2 + i * row
        parts.append(_text(4, top + row / 2 + 4, g, 13, "start", GRADE_COLORS[g], "bold"))
        parts.append(
            f'<rect x="{left}" y="{top + 4}" width="{max(1.5, n / most * w):.1f}" height="{row - 8}" rx="3" '
            f'fill="{GRADE_COLORS[g]}"/>'
        )
        parts.append(_text(left + max(1.5, n / most * w) + 6, top + row / 2 + 4, f"{n:,}", 12, "start", INK))
    return _svg(width, height, "".join(parts), label)


@dataclass(frozen=True)
class Mark:
    days_before: float  # days before the run's as_of
    family: str


def activity_chart(
    marks: Sequence[Mark],
    rows: dict[str, str],
    days: int,
    ticks: Sequence[tuple[float, str]],
    label: str,
    width: int = 640,
) -> Markup:
    """Events of the last `days` days: one row per event family, a dot per day sized by its count."""
    row, left, right, top = 26, 78, 14, 6
    height = top + len(rows) * row + 22
    w = width - left - right
    x = lambda d: left + (days - d) / days * w
    per_day: dict[tuple[str, int], int] = {}
    for m in marks:
        if 0 <= m.days_before <= days and m.family in rows:
            key = (m.family, int(m.days_before))
            per_day[key] = per_day.get(key, 0) + 1
    parts = []
    for i, name in enumerate(rows.values()):
        cy = top + i * row + row / 2
        parts.append(f'<line x1="{left}" x2="{left + w}" y1="{cy:.1f}" y2="{cy:.1f}" stroke="{GRID}"/>')
        parts.append(_text(left - 8, cy + 4, name, 12, "end", INK))
    families = list(rows)
    for (family, day), n in sorted(per_day.items()):
        cy = top + families.index(family) * row + row / 2
        r = min(10.0, 3.0 + 2.2 * math.sqrt(n - 1))
        parts.append(
            f'<circle cx="{x(day + 0.5):.1f}" cy="{cy:.1f}" r="{r:.1f}" fill="{FAMILY_COLORS.get(family, MUTED)}" '
            f'fill-opacity="0.85"><title>{n}</title></circle>'
        )
    for d, text in ticks:
        parts.append(
            f'<line x1="{x(d):.1f}" x2="{x(d):.1f}" y1="{top}" y2="{top + len(rows) * row}" stroke="{GRID}" '
            f'stroke-dasharray="2 3"/>'
        )
        parts.append(_text(x(d), height - 6, text, 11, "middle", MUTED))
    return _svg(width, height, "".join(parts), label)


def bar(fraction: float, color: str = "#1c7ed6") -> Markup:
    """A small inline bar for a table cell (a fraction of its column's largest)."""
    f = max(0.0, min(1.0, fraction))
    return Markup(  # nosec B704 # a clamped number and a colour from our own palette, nothing from input
        f'<span class="bar"><span style="width:{f * 100:.1f}%;background:{color}"></span></span>'
    )
