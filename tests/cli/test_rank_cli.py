"""`leadradar rank`, `report` and `users` as a person or a script uses them, on the session's two batch runs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.serving.ranking import movers, ranked_leads, with_grades
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore
from tests.support.dashboard_support import lead_ids_in, session_activity


@pytest.fixture(scope="module")
def cli(settings, small_sim, scored):
    session_activity(settings, small_sim, scored)
    env = {"LEADRADAR_HOME": str(settings.data_dir)}

    def run(*args: str, stdin: str | None = None):
        result = CliRunner().invoke(app, list(args), env=env, input=stdin)
        return result

    return run


def expected(settings, tenant: str) -> pd.DataFrame:
    return with_grades(ranked_leads(ScoreStore(settings.score_store_url), tenant, limit=None), settings.serving.grade)


def test_rank_prints_the_top_leads_with_grade_change_and_reason(cli, settings):
    r = cli("rank", "--tenant", "t01", "--limit", "5")
    assert r.exit_code == 0, r.output
    top = expected(settings, "t01").head(5)
    shown = re.findall(r"t01-L\d+", r.stdout.split("rising fastest")[0])
    assert shown[:5] == list(top["lead_id"])
    assert f"{top['p_close'].iloc[0]:.1%}" in r.stdout
    assert "top reason" in r.stdout or f"   1  {top['lead_id'].iloc[0]}: " in r.stdout


def test_rank_shows_the_leads_that_rose_and_fell_most_since_the_last_run(cli, settings):
    r = cli("rank", "--tenant", "t01", "--limit", "1", "--movers", "3")
    assert r.exit_code == 0, r.output
    up, down = movers(expected(settings, "t01"), 3)
    rising, falling = r.stdout.split("rising fastest")[1].split("falling fastest")
    assert re.findall(r"t01-L\d+", rising)[:3] == list(up["lead_id"])
    assert re.findall(r"t01-L\d+", falling)[:3] == list(down["lead_id"])


@pytest.mark.parametrize("option,column", [("--sales", "sales_id"), ("--stage", "stage"), ("--grade", "grade")])
def test_rank_filters_and_the_csv_holds_the_whole_filtered_list(cli, settings, tmp_path, option, column):
    full = expected(settings, "t01")
    value = full[column].value_counts().index[-1]
    out = tmp_path / "leads.csv"
    r = cli("rank", "--tenant", "t01", option, value, "--csv", str(out), "--movers", "0")
    assert r.exit_code == 0, r.output
    frame = pd.read_csv(out, encoding="utf-8-sig")
    want = full[full[column] == value]
    assert list(frame["lead_id"]) == list(want["lead_id"]) and set(frame[column]) == {value}
    assert list(frame["rank"]) == list(want["rank"])  # ranks stay tenant-wide
    assert frame["top_reason"].notna().all()


def test_rank_xlsx_has_the_list_and_its_movers_in_chinese(cli, settings, tmp_path):
    from openpyxl import load_workbook

    out = tmp_path / "leads.xlsx"
    r = cli("rank", "--tenant", "t01", "--xlsx", str(out), "--lang", "zh-CN", "--limit", "3")
    assert r.exit_code == 0, r.output
    assert "已报价" in r.stdout or "需求确认" in r.stdout
    book = load_workbook(out)
    ranked, moving = book.worksheets
    assert ranked["A1"].value == "排名" and ranked.max_row == len(expected(settings, "t01")) + 1
    assert ranked["D2"].value in {settings.funnel.label(s, "zh-CN") for s in settings.funnel.open_stages}
    assert moving.max_row > 1


def test_rank_of_a_tenant_without_scores_says_to_score_first_and_names_the_scored_tenants(cli):
    r = cli("rank", "--tenant", "T01")
    assert r.exit_code == 2 and "leadradar score" in r.output
    assert "tenants with scores: t01, t02" in r.output and len(r.output.strip().splitlines()) == 1


def test_rank_takes_grade_language_and_tenant_as_a_person_types_them(cli):
    exact = cli("rank", "--tenant", "t01", "--grade", "D", "--lang", "zh-CN", "--movers", "0")
    assert exact.exit_code == 0, exact.output
    typed = cli("rank", "--tenant", " t01 ", "--grade", "d", "--lang", "zh_cn", "--movers", "0")
    assert typed.exit_code == 0, typed.output
    assert typed.stdout == exact.stdout and "排名" in typed.stdout
    assert (
        cli("rank", "--tenant", "t01", "--lang", "EN", "--movers", "0").stdout
        == cli("rank", "--tenant", "t01", "--movers", "0").stdout
    )
    for option, value in (("--grade", "E"), ("--lang", "fr")):
        r = cli("rank", "--tenant", "t01", option, value)
        assert r.exit_code == 2 and f"{option} is" in r.output and repr(value) in r.output


def test_rank_and_its_files_never_hold_another_tenants_leads(cli, scored, tmp_path):
    out = tmp_path / "t02.csv"
    r = cli("rank", "--tenant", "t02", "--limit", "50", "--csv", str(out))
    assert r.exit_code == 0, r.output
    seen = lead_ids_in(r.stdout) | lead_ids_in(out.read_text(encoding="utf-8-sig"))
    assert seen and all(lead.startswith("t02-") for lead in seen)


@pytest.mark.parametrize("lang,heading", [("en", "Lead report · t01"), ("zh-CN", "线索报告 · t01")])
def test_report_writes_one_self_contained_html_file(cli, settings, tmp_path, lang, heading):
    out = tmp_path / f"report-{lang}.html"
    r = cli("report", "--tenant", "t01", "--out", str(out), "--lang", lang)
    assert r.exit_code == 0, r.output
    html = out.read_text(encoding="utf-8")
    assert heading in html and html.count("<svg") >= 3
    for banned in ("<script", "<link", "<img", "@import", "url(", "src="):
        assert banned not in html
    top = expected(settings, "t01")
    assert top["lead_id"].iloc[0] in html and f'id="lead-{top["lead_id"].iloc[0]}"' in html
    assert all(lead.startswith("t01-") for lead in lead_ids_in(html))


def test_users_create_keeps_only_a_hash_and_the_person_can_sign_in(cli, settings):
    r = cli(
        "users", "create", "--tenant", "t02", "--name", "cli-boss", "--password-stdin", stdin="a fine long password\n"
    )
    assert r.exit_code == 0, r.output
    users = UserStore(settings.score_store_url)
    assert users.verify("cli-boss", "a fine long password").tenant_id == "t02"
    with users.engine.connect() as conn:
        stored = conn.exec_driver_sql("select password_hash from dashboard_users where username='cli-boss'").scalar()
    assert stored.startswith("$argon2id$") and "a fine long password" not in stored
    again = cli(
        "users", "create", "--tenant", "t02", "--name", "cli-boss", "--password-stdin", stdin="another one 123\n"
    )
    assert again.exit_code == 2 and "exists" in again.output
    short = cli("users", "create", "--tenant", "t02", "--name", "x", "--password-stdin", stdin="short\n")
    assert short.exit_code == 2 and "at least" in short.output
    common = cli("users", "create", "--tenant", "t02", "--name", "x", "--password-stdin", stdin="password1234\n")
    assert common.exit_code == 2 and "most common" in common.output
    listed = cli("users", "list", "--tenant", "t02")
    assert "cli-boss" in listed.stdout and "argon2" not in listed.stdout
    assert cli("users", "disable", "cli-boss").exit_code == 0
    assert users.verify("cli-boss", "a fine long password") is None


def test_a_chinese_csv_has_chinese_headings_and_stages(cli, settings, tmp_path):
    out = tmp_path / "leads-zh.csv"
    r = cli("rank", "--tenant", "t01", "--csv", str(out), "--lang", "zh-CN", "--movers", "0")
    assert r.exit_code == 0, r.output
    frame = pd.read_csv(out, encoding="utf-8-sig")
    assert list(frame.columns[:5]) == ["排名", "线索", "销售", "阶段", "成交概率"]
    assert not [c for c in frame.columns if re.search(r"[A-Za-z]", c)]
    assert set(frame["阶段"]) <= {settings.funnel.label(s, "zh-CN") for s in settings.funnel.open_stages}
    plain = tmp_path / "leads-en.csv"
    assert cli("rank", "--tenant", "t01", "--csv", str(plain), "--movers", "0").exit_code == 0
    english = pd.read_csv(plain, encoding="utf-8-sig")  # for programs: the stable column names and stage codes
    assert list(english.columns[:4]) == ["rank", "lead_id", "sales_id", "stage"]
    assert set(english["stage"]) <= set(settings.funnel.open_stages)


def test_rank_in_chinese_prints_no_english_heading_or_footnote(cli):
    r = cli("rank", "--tenant", "t01", "--lang", "zh-CN", "--limit", "5", "--movers", "3")
    assert r.exit_code == 0, r.output
    assert "排名" in r.stdout and "成交概率" in r.stdout and "以来上升最快" in r.stdout
    words = set(re.findall(r"[A-Za-z]{3,}", re.sub(r"t0\d-[A-Za-z0-9-]+|UTC", "", r.stdout)))
    assert not words, words
