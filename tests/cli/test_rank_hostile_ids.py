"""`leadradar rank` on ids as a CRM may send them: Rich markup is shown as written, formulas are text in the files."""

from __future__ import annotations

import io

import pandas as pd
from openpyxl import load_workbook
from typer.testing import CliRunner

from leadradar.cli import app
from tests.support.hostile_ids import FORMULAS, FORMULAS_FROM_XLSX, LEADS, MARKUP, TENANT, hostile_batch


def test_rank_prints_lead_ids_holding_rich_markup_as_written(settings, scored):
    hostile_batch(settings, scored)
    r = CliRunner().invoke(
        app,
        ["rank", "--tenant", TENANT, "--limit", str(len(LEADS)), "--movers", "0"],
        env={"LEADRADAR_HOME": str(settings.data_dir), "COLUMNS": "200"},
    )
    assert r.exit_code == 0, r.output
    assert TENANT in r.stdout
    for lead in MARKUP:
        assert lead in r.stdout


def test_rank_writes_formula_looking_ids_as_text_in_csv_and_xlsx(settings, scored, tmp_path):
    hostile_batch(settings, scored)
    out_csv, out_xlsx = tmp_path / "leads.csv", tmp_path / "leads.xlsx"
    r = CliRunner().invoke(
        app,
        ["rank", "--tenant", TENANT, "--csv", str(out_csv), "--xlsx", str(out_xlsx), "--movers", "0"],
        env={"LEADRADAR_HOME": str(settings.data_dir)},
    )
    assert r.exit_code == 0, r.output
    written = pd.read_csv(out_csv, encoding="utf-8-sig", keep_default_na=False)["lead_id"]
    assert {f"'{v}" for v in FORMULAS} <= set(written) and not set(FORMULAS) & set(written)
    sheet = load_workbook(io.BytesIO(out_xlsx.read_bytes())).worksheets[0]
    cells = [c for c in sheet["B"][1:] if c.value in FORMULAS_FROM_XLSX]
    assert len(cells) == len(FORMULAS) and {c.data_type for c in cells} == {"s"}
