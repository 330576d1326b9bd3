"""Exports and links with ids as a CRM may send them: formulas stay text, a Chinese tenant id downloads, an id
with `/` or `..` links to its own page. Against the real server, for a tenant `公司甲` whose leads carry such ids."""

from __future__ import annotations

import csv
import io
import re
from urllib.parse import quote, unquote

import httpx
import pandas as pd
import pytest
from openpyxl import load_workbook

from leadradar.serving.auth import KeyStore
from leadradar.serving.export import csv_bytes, looks_like_formula, xlsx_bytes
from tests.support.hostile_ids import (
    FORMULA_SALES_ID,
    FORMULAS,
    FORMULAS_FROM_XLSX,
    LEADS,
    PATHS,
    TENANT,
    hostile_batch,
)

HREF = re.compile(r'href="([^"]*/leads/[^"]*)"')


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": range(1, len(FORMULAS) + 2),
            "lead_id": [*FORMULAS, "plain"],
            "sales_id": FORMULA_SALES_ID,
            "p_close": 0.25,
            "change": -0.05,
            "top_reason": "=cmd|' /C calc'!A0",
        }
    )


def csv_cells(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_cells(content: bytes, column: str) -> list:
    sheet = load_workbook(io.BytesIO(content)).worksheets[0]
    heading = {c.value: c.column_letter for c in sheet[1]}
    return list(sheet[heading[column]][1:])


# -- the files themselves ------------------------------------------------------------------------


def test_formula_looking_text_is_written_to_csv_with_a_leading_quote_and_numbers_stay_numbers():
    rows = csv_cells(csv_bytes(frame()))
    assert [r["lead_id"] for r in rows] == [f"'{v}" for v in FORMULAS] + ["plain"]
    assert {r["sales_id"] for r in rows} == {f"'{FORMULA_SALES_ID}"}
    assert all(r["top_reason"].startswith("'=") for r in rows)
    assert {r["change"] for r in rows} == {"-0.05"}  # a negative number is a number, not a formula


def test_formula_looking_text_is_a_string_cell_in_the_workbook_never_a_formula():
    content = xlsx_bytes(frame(), "en")
    leads = xlsx_cells(content, "Lead")
    assert [c.value for c in leads] == [*FORMULAS_FROM_XLSX, "plain"]
    assert {c.data_type for c in leads} == {"s"}
    assert {c.data_type for c in xlsx_cells(content, "Top reason")} == {"s"}
    assert {c.data_type for c in xlsx_cells(content, "Change")} == {"n"}


def test_what_counts_as_a_formula_start_follows_owasp():
    assert all(looks_like_formula(v) for v in ("=1", "+1", "-1", "@x", "\tx", "\rx"))
    assert not any(looks_like_formula(v) for v in ("1", "a=1", "公司甲", -1.0, None, " =1"))


# -- the running server: a manager of 公司甲 ---------------------------------------------------------


@pytest.fixture(scope="module")
def boss(server, settings, scored) -> httpx.Client:
    hostile_batch(settings, scored)
    _, token = KeyStore(settings.score_store_url).create(TENANT, "manager", name="export safety tests")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        yield client


@pytest.mark.parametrize("path,kind", [("export.csv", "leads"), ("export.xlsx", "leads"), ("report.html", "report")])
def test_a_chinese_tenant_id_downloads_every_export_named_after_the_tenant(boss, path, kind):
    r = boss.get(f"/dashboard/{path}")
    assert r.status_code == 200, r.text[:300]
    disposition = r.headers["content-disposition"]
    ascii_name = re.search(r'filename="([^"]+)"', disposition).group(1)
    utf8_name = unquote(re.search(r"filename\*=UTF-8''(\S+)", disposition).group(1))
    ext = path.rsplit(".", 1)[1]
    assert re.fullmatch(rf"{kind}-{re.escape(TENANT)}-\d{{8}}\.{ext}", utf8_name)
    assert ascii_name.isascii() and ascii_name.endswith(f".{ext}") and ascii_name.startswith(f"{kind}-")
    assert quote(TENANT) in disposition


def test_formula_looking_ids_come_out_as_text_in_the_dashboards_csv_and_xlsx(boss):
    rows = csv_cells(boss.get("/dashboard/export.csv").content)
    shown = {r["lead_id"] for r in rows}
    assert {f"'{v}" for v in FORMULAS} <= shown and not set(FORMULAS) & shown
    assert f"'{FORMULA_SALES_ID}" in {r["sales_id"] for r in rows}

    cells = xlsx_cells(boss.get("/dashboard/export.xlsx").content, "Lead")
    formulas = [c for c in cells if c.value in FORMULAS_FROM_XLSX]
    assert len(formulas) == len(FORMULAS) and {c.data_type for c in formulas} == {"s"}
    assert len(cells) == len(LEADS)


def test_lead_links_quote_slashes_and_dots_and_lead_to_that_leads_page(boss):
    board = boss.get("/dashboard/")
    assert board.status_code == 200
    hrefs = set(HREF.findall(board.text))
    for lead in PATHS:
        link = f"/dashboard/leads/{quote(lead, safe='')}"
        assert link in hrefs, sorted(hrefs)
        page = boss.get(link)
        assert page.status_code == 200, (lead, page.status_code, page.text[:200])
        assert f"{lead}</h1>" in page.text
    assert boss.get(f"/dashboard/leads/{quote('a/b/c', safe='')}").status_code == 404
