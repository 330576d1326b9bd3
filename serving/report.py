"""The e-mailed HTML report: the dashboard's content and charts in one self-contained file.

It renders the same page data with the same templates; styles and SVG charts are inline, there is
no script and nothing is fetched, so it reads the same in a mail client, a browser or offline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from leadradar.serving.dashboard.formatting import Clock
from leadradar.serving.dashboard.health import health_page
from leadradar.serving.dashboard.messages import translator
from leadradar.serving.dashboard.pagedata import PageData
from leadradar.serving.dashboard.render import render


def report_html(data: PageData, tenant: str, lang: str, top: int = 25) -> str:
    """The report of one tenant's latest scoring run, in `lang`, ending with the model's health page."""
    content = data.report(tenant, lang, top)
    clock = Clock(data.settings.features.utc_offset_hours, lang)
    health = health_page(data.settings, tenant, lang, translator(lang)("health.calibration_chart"))
    generated = clock.datetime(datetime.now(UTC))
    return render("report.html", lang, r=content, health=health, generated=generated, base=None, viewer=None, nav="")


def write_report(data: PageData, tenant: str, lang: str, out: Path, top: int = 25) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_html(data, tenant, lang, top), encoding="utf-8")
    return out
