"""A tenant with a Chinese id whose leads carry ids that break files, links and terminals if handled raw.

Its batch is t01's latest run with the tenant and lead ids replaced, written straight into the session's
score store: the ids come from a CRM, so the store may hold any text.
"""

from __future__ import annotations

import pandas as pd

from leadradar.config import Settings
from leadradar.serving.store import ScoreStore

TENANT = "公司甲"
# Spreadsheet formulas (OWASP's CSV injection starts), path pieces, Rich markup, and two plain ones.
FORMULAS = ["=1+1", '=HYPERLINK("http://example.invalid","x")', "+8613800138000", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
PATHS = ["a/b", "../x"]
MARKUP = ["[bold]x", "[/]", "[link=http://example.invalid]y[/link]"]
LEADS = [*FORMULAS, *PATHS, *MARKUP, "plain-1", "plain-2"]
FORMULA_SALES_ID = "@sales"
# XML reads a carriage return back as a line feed, so that is how a workbook gives the last one back.
FORMULAS_FROM_XLSX = [v.replace("\r", "\n") for v in FORMULAS]


def hostile_batch(settings: Settings, scored) -> pd.DataFrame:
    """The tenant's scores in the session store (written on first use); `scored` is the session's `Batch`."""
    store = ScoreStore(settings.score_store_url)
    rows = scored.scores[scored.scores["tenant_id"] == "t01"].head(len(LEADS)).copy()
    rows["tenant_id"] = TENANT
    rows["lead_id"] = LEADS
    rows.loc[rows.index[0], "sales_id"] = FORMULA_SALES_ID
    if not store.runs(TENANT):
        store.write(rows)
    return rows
