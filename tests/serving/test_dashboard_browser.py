"""A manager uses the dashboard in a real browser: headless Chromium on the running service.

Debian's /usr/bin/chromium (installed by .ci/run) driven by Playwright; `playwright install` is never
run. Screenshots go to pytest's temporary folder and their paths are printed (`pytest -s` shows them).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from leadradar.serving.ranking import ranked_leads
from leadradar.serving.store import ScoreStore
from tests.support.dashboard_support import manager, session_activity

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium (Debian: apt-get install chromium, as .ci/run does)")
    profile = tempfile.mkdtemp(prefix="leadradar-chromium-")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            locale="en-US",
            viewport={"width": 1366, "height": 900},
        )
        context.set_default_timeout(20_000)
        try:
            yield context, context.new_page()
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dashboard-screenshots")


def snap(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def test_a_manager_signs_in_filters_switches_language_and_reads_a_lead(
    server, settings, small_sim, scored, browser_page, shots
):
    session_activity(settings, small_sim, scored)
    name, password = manager(settings, "t01")
    context, page = browser_page
    ranked = ranked_leads(ScoreStore(settings.score_store_url), "t01", limit=None)

    page.goto(f"{server.url}/dashboard")
    assert page.locator("#page-title").inner_text() == "Sign in"
    snap(page, shots, "01-login")
    page.fill("#username", name)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#ranked")
    session = next(c for c in context.cookies() if c["name"] == "lr_session")
    assert session["httpOnly"] and session["sameSite"] == "Lax" and session["path"] == "/dashboard/"

    # The top row is the lead with the highest stored probability.
    first = page.locator("#ranked tbody tr").first
    assert first.get_attribute("data-lead") == ranked["lead_id"].iloc[0]
    assert float(first.locator("td.p").get_attribute("data-p")) == pytest.approx(ranked["p_close"].iloc[0], abs=1e-6)
    snap(page, shots, "02-board-en")

    # A salesperson filter narrows the table to that salesperson's leads.
    sales = ranked["sales_id"].value_counts().index[-1]
    page.select_option("#filter-sales", sales)
    page.click("#filter-apply")
    page.wait_for_url(f"**sales={sales}**")
    cells = page.locator("#ranked tbody td.sales").all_inner_texts()
    theirs = int((ranked["sales_id"] == sales).sum())
    assert cells and set(cells) == {sales} and len(cells) == min(theirs, settings.serving.dashboard.page_size)
    assert f"{theirs:,} leads" in page.locator(".pager").inner_text() and theirs < len(ranked)
    snap(page, shots, "03-board-filtered")

    # The language switch changes the headings.
    assert page.locator("#page-title").inner_text() == "Who to call today"
    page.click("#lang-switch")
    page.wait_for_url("**lang=zh-CN**")
    assert page.locator("#page-title").inner_text() == "今日重点跟进"
    assert "成交概率" in page.locator("#ranked thead").inner_text()
    page.goto(f"{server.url}/dashboard/")  # the choice is kept
    assert page.locator("#page-title").inner_text() == "今日重点跟进"
    snap(page, shots, "04-board-zh")

    # A lead page shows its reasons in words.
    page.locator("#ranked tbody tr").first.locator("td.lead a").click()
    page.wait_for_selector("#reasons")
    reasons = page.locator("#reasons li").all_inner_texts()
    assert reasons and any("\u4e00" <= ch <= "\u9fff" for ch in "".join(reasons))
    assert page.locator("#history svg circle").count() >= 1
    assert page.locator("#activity .ev").count() >= 1
    snap(page, shots, "05-lead-zh")
    page.click("#lang-switch")
    page.wait_for_selector("#reasons")
    english = page.locator("#reasons li").all_inner_texts()
    assert len(english) == len(reasons) and english != reasons
    snap(page, shots, "06-lead-en")

    page.goto(f"{server.url}/dashboard/funnel")
    assert page.locator("#funnel-chart svg rect").count() == len(settings.funnel.stages)
    snap(page, shots, "07-funnel-en")
    page.goto(f"{server.url}/dashboard/team?lang=zh-CN")
    snap(page, shots, "08-team-zh")


def sign_in(page, server, settings, tenant: str = "t01") -> None:
    """Open the board signed in as the tenant's manager (signing in when the context has no session)."""
    name, password = manager(settings, tenant)
    page.goto(f"{server.url}/dashboard/?lang=en")
    if page.locator("#username").count():
        page.fill("#username", name)
        page.fill("#password", password)
        page.click("#login-submit")
    page.wait_for_selector("#ranked")


def overflow(page) -> tuple[int, int]:
    """(document width, viewport width): equal when nothing scrolls sideways."""
    width, viewport = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return width, viewport


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_on_a_390_px_phone_the_leads_and_a_lead_page_never_scroll_sideways(
    server, settings, small_sim, scored, browser_page, shots, lang
):
    session_activity(settings, small_sim, scored)
    context, _ = browser_page
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        sign_in(page, server, settings)
        page.goto(f"{server.url}/dashboard/?lang={lang}")
        page.wait_for_selector("#ranked")
        assert overflow(page) == (390, 390)
        rows = page.locator("#ranked tbody tr")
        heights = [rows.nth(i).bounding_box()["height"] for i in range(min(5, rows.count()))]
        assert heights and max(heights) < 115  # a card of three short lines, not a squeezed table row
        snap(page, shots, f"phone-board-{lang}")
        rows.first.locator("td.lead a").click()
        page.wait_for_selector("#reasons")
        assert overflow(page) == (390, 390)
        snap(page, shots, f"phone-lead-{lang}")
    finally:
        page.close()


def test_the_english_funnel_page_fits_a_1400_px_screen(server, settings, small_sim, scored, browser_page, shots):
    session_activity(settings, small_sim, scored)
    context, _ = browser_page
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 900})
    try:
        sign_in(page, server, settings)
        page.goto(f"{server.url}/dashboard/funnel?lang=en")
        page.wait_for_selector("#funnel-table")
        assert overflow(page) == (1400, 1400)
        box = page.locator("#funnel-table").bounding_box()
        panel = page.locator("#funnel-table").locator("xpath=..").bounding_box()
        assert box["x"] + box["width"] <= panel["x"] + panel["width"] + 0.5  # the table stays inside its panel
        snap(page, shots, "funnel-1400-en")
    finally:
        page.close()
