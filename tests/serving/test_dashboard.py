"""The dashboard over HTTP, in process: sign-in and sessions, the pages, exports, the report, tenant walls.

The app is mounted at /dashboard as in the service, on the session's score store (two batch runs a
week apart, from the `scored` fixture, plus their recent events and funnel counts).
"""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount

from leadradar.features.registry import build_registry
from leadradar.serving.dashboard.messages import MESSAGES
from leadradar.serving.dashboard.routes import Backend, build_dashboard
from leadradar.serving.dashboard.sessions import COOKIE
from leadradar.serving.ranking import ranked_leads, with_grades
from leadradar.serving.reasons import ReasonWriter
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore
from tests.support.dashboard_support import lead_ids_in, manager, session_activity

ROW = re.compile(r'<tr data-lead="([^"]+)">')


def mounted(settings) -> Starlette:
    return Starlette(routes=[Mount("/dashboard", build_dashboard(lambda: Backend.build(settings)))])


@pytest.fixture(scope="module")
def app(settings, small_sim, scored) -> Starlette:
    session_activity(settings, small_sim, scored)
    return mounted(settings)


def signed_in(app: Starlette, settings, tenant: str) -> TestClient:
    client = TestClient(app)
    name, password = manager(settings, tenant)
    r = client.post(
        "/dashboard/login", data={"username": name, "password": password, "next": "/dashboard/"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    return client


@pytest.fixture(scope="module")
def boss(app, settings) -> TestClient:
    return signed_in(app, settings, "t01")


def expected(settings, tenant: str) -> pd.DataFrame:
    store = ScoreStore(settings.score_store_url)
    return with_grades(ranked_leads(store, tenant, limit=None), settings.serving.grade)


def rows(html: str) -> list[str]:
    return ROW.findall(html)


# -- signing in ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard/",
        "/dashboard/funnel",
        "/dashboard/team",
        "/dashboard/leads/t01-L1",
        "/dashboard/export.csv",
        "/dashboard/export.xlsx",
        "/dashboard/report.html",
    ],
)
def test_every_page_sends_a_person_who_is_not_signed_in_to_the_login_page(app, path):
    r = TestClient(app).get(path, follow_redirects=False)
    assert r.status_code == 303
    target = urlparse(r.headers["location"])
    assert target.path == "/dashboard/login" and parse_qs(target.query)["next"] == [path]


def test_signing_in_sets_an_httponly_samesite_cookie_that_expires(app, settings):
    client = TestClient(app)
    name, password = manager(settings, "t01")
    r = client.post(
        "/dashboard/login",
        data={"username": name, "password": password, "next": "/dashboard/team"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/team"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert f"Max-Age={int(settings.serving.dashboard.session_hours * 3600)}" in cookie
    assert "Path=/dashboard/" in cookie and "Secure" not in cookie
    assert client.get("/dashboard/team").status_code == 200


def test_the_secure_flag_is_set_when_configured(settings, scored):
    secure = settings.model_copy(deep=True)
    secure.serving.dashboard.cookie_secure = True
    name, password = manager(settings, "t01")
    r = TestClient(mounted(secure)).post(
        "/dashboard/login", data={"username": name, "password": password}, follow_redirects=False
    )
    assert "Secure" in r.headers["set-cookie"]


def test_a_wrong_password_is_refused_and_repeated_failures_pause_sign_in(app, settings):
    client = TestClient(app)
    # An account of its own: the pause is kept in the database, for every backend, until the window ends.
    name, password = "paused-t02", "tests-only password 2"
    UserStore(settings.score_store_url).create("t02", name, password)
    statuses = [
        client.post("/dashboard/login", data={"username": name, "password": "not it at all"}).status_code
        for _ in range(settings.serving.dashboard.login_attempts)
    ]
    assert statuses == [401] * settings.serving.dashboard.login_attempts
    paused = client.post("/dashboard/login", data={"username": name, "password": password})
    assert paused.status_code == 429 and COOKIE not in paused.headers.get("set-cookie", "")


def test_only_manager_accounts_and_keys_open_the_dashboard(app, role_keys):
    client = TestClient(app)
    for role in ("system", "sales"):
        r = client.post("/dashboard/login", data={"api_key": role_keys["t01", role].token})
        assert r.status_code == 401 and "Only manager accounts" in r.text
    r = client.post("/dashboard/login", data={"api_key": role_keys["t01", "manager"].token}, follow_redirects=False)
    assert r.status_code == 303 and COOKIE in r.headers["set-cookie"]
    # Machines send the key itself.
    assert TestClient(app).get("/dashboard/export.csv", headers=role_keys["t01", "manager"].auth).status_code == 200
    assert TestClient(app).get("/dashboard/export.csv", headers=role_keys["t01", "system"].auth).status_code == 401


def test_a_session_ends_when_the_password_changes_or_the_account_is_disabled(app, settings):
    users = UserStore(settings.score_store_url)
    users.create("t01", "short-lived", "first password 123")
    client = TestClient(app)
    client.post("/dashboard/login", data={"username": "short-lived", "password": "first password 123"})
    assert client.get("/dashboard/").status_code == 200
    users.set_password("short-lived", "second password 456")
    r = client.get("/dashboard/", follow_redirects=False)
    assert r.status_code == 303 and "msg=expired" in r.headers["location"]
    client.post("/dashboard/login", data={"username": "short-lived", "password": "second password 456"})
    assert client.get("/dashboard/").status_code == 200
    users.disable("short-lived")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


def test_a_forged_or_expired_cookie_is_refused(app, settings, boss):
    backend = Backend.build(settings)
    value = boss.cookies[COOKIE]
    version, payload, signature = value.split(".")
    forged = payload.replace(payload[:8], payload[:7] + ("A" if payload[7] != "A" else "B"))
    client = TestClient(app)
    client.cookies.set(COOKIE, f"{version}.{forged}.{signature}", path="/dashboard/")
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303
    assert backend.gate.signer.read(value) is not None
    assert backend.gate.signer.read(value, now=2**40) is None


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/elsewhere", "/dashboard\\..\\x"])
def test_signing_in_never_redirects_off_the_dashboard(app, settings, target):
    name, password = manager(settings, "t01")
    r = TestClient(app).post(
        "/dashboard/login", data={"username": name, "password": password, "next": target}, follow_redirects=False
    )
    assert r.headers["location"] == "/dashboard/"


def test_signing_out_clears_the_cookie(app, settings):
    client = signed_in(app, settings, "t01")
    r = client.post("/dashboard/logout", follow_redirects=False)
    assert r.status_code == 303 and f'{COOKIE}=""' in r.headers["set-cookie"]
    assert client.get("/dashboard/", follow_redirects=False).status_code == 303


# -- the pages ----------------------------------------------------------------------------------


def test_the_top_row_is_the_lead_with_the_highest_stored_probability(boss, settings):
    html = boss.get("/dashboard/").text
    top = expected(settings, "t01")
    assert rows(html)[:20] == list(top["lead_id"][:20])
    assert f'data-p="{top["p_close"].iloc[0]:.6f}"' in html


@pytest.mark.parametrize("column,param", [("sales_id", "sales"), ("stage", "stage"), ("grade", "grade")])
def test_a_filter_narrows_the_table_to_its_leads_in_rank_order(boss, settings, column, param):
    full = expected(settings, "t01")
    value = full[column].value_counts().index[-1]  # the rarest value: a visible narrowing
    html = boss.get("/dashboard/", params={param: value, "lang": "en"}).text
    want = full[full[column] == value]
    assert rows(html) == list(want["lead_id"][:50])
    assert f"{len(want):,} leads" in html


def test_a_grade_typed_in_lower_case_into_the_address_filters_as_its_capital(boss, settings):
    full = expected(settings, "t01")
    grade = full["grade"].value_counts().index[-1]  # the rarest: a visible narrowing
    want = full[full["grade"] == grade]
    html = boss.get("/dashboard/", params={"grade": grade.lower(), "lang": "en"}).text
    assert rows(html) == list(want["lead_id"][:50]) and f"{len(want):,} leads" in html


def test_the_language_switch_changes_headings_and_stage_names(boss):
    en = boss.get("/dashboard/", params={"lang": "en"}).text
    zh = boss.get("/dashboard/", params={"lang": "zh-CN"}).text
    assert "Who to call today" in en and "Close probability" in en and "proposal" in en
    assert "今日重点跟进" in zh and "成交概率" in zh and "已报价" in zh and "Who to call today" not in zh
    assert "销售漏斗（累计）" in boss.get("/dashboard/funnel").text  # the choice is kept in a cookie
    assert "Who to call today" in boss.get("/dashboard/", params={"lang": "EN"}).text  # as a person types it
    assert "今日重点跟进" in boss.get("/dashboard/", params={"lang": "zh"}).text


def test_a_lead_page_shows_history_reasons_and_recent_events_in_both_languages(boss, settings, scored):
    store = ScoreStore(settings.score_store_url)
    top = expected(settings, "t01").iloc[0]
    writer = ReasonWriter(build_registry(settings), settings.funnel, settings.serving.hidden_reason_families)
    for lang in ("en", "zh-CN"):
        html = boss.get(f"/dashboard/leads/{top['lead_id']}", params={"lang": lang}).text
        reasons = writer.reasons(top["detail"], lang)
        assert reasons["for"] or reasons["against"]
        for r in reasons["for"] + reasons["against"]:
            assert str(_escape(r.text)) in html
        assert html.count("<circle") >= len(store.history("t01", top["lead_id"]))  # a point per run
        events = store.events("t01", top["lead_id"])
        assert len(events) > 0
        verb = settings.events.label(events["event_type"].iloc[0])
        assert (verb.verb_zh if lang == "zh-CN" else verb.verb_en) in html


def test_funnel_and_team_pages_show_every_stage_and_salesperson(boss, settings, scored):
    funnel = boss.get("/dashboard/funnel", params={"lang": "en"}).text
    for stage in settings.funnel.stages:
        assert f"<b>{settings.funnel.label(stage, 'en')}</b>" in funnel
    team = boss.get("/dashboard/team").text
    mine = expected(settings, "t01")
    for sales in mine["sales_id"].unique():
        assert f'data-sales="{sales}"' in team
    assert f"{mine['p_close'].sum():,.1f}" in team  # expected wins, all salespeople


def test_exports_carry_the_filtered_list_with_reasons(boss, settings):
    from openpyxl import load_workbook

    full = expected(settings, "t01")
    sales = full["sales_id"].iloc[0]
    r = boss.get("/dashboard/export.csv", params={"sales": sales, "lang": "en"})
    assert r.content.startswith("\ufeff".encode()) and "attachment" in r.headers["content-disposition"]
    frame = pd.read_csv(io.BytesIO(r.content), encoding="utf-8-sig")
    assert list(frame.columns[:7]) == ["rank", "lead_id", "sales_id", "stage", "p_close", "grade", "change"]
    assert {"top_reason", "p_lo", "p_hi", "lead_name", "sales_name"} <= set(frame.columns)
    assert list(frame["lead_id"]) == list(full[full["sales_id"] == sales]["lead_id"])
    assert frame["top_reason"].notna().mean() > 0.9
    book = load_workbook(io.BytesIO(boss.get("/dashboard/export.xlsx", params={"lang": "zh-CN"}).content))
    sheet = book.active
    assert [c.value for c in sheet[1]][:5] == ["排名", "线索", "销售", "阶段", "成交概率"]
    assert sheet.max_row == len(full) + 1 and sheet["E2"].number_format == "0.0%"


def test_the_report_is_one_self_contained_file(boss, settings):
    html = boss.get("/dashboard/report.html").text
    assert "<svg" in html and "<style>" in html
    for banned in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert banned not in html
    assert not re.findall(r'(?:href|src)="https?://', html)
    assert expected(settings, "t01")["lead_id"].iloc[0] in html
    for panel in ("health-model", "health-drift", "health-calibration", "health-feedback", "health-retrains"):
        assert f'id="{panel}"' in html, f"the report has no {panel} panel of the health page"


def test_a_company_without_scores_yet_gets_pages_that_say_so(app, settings):
    client = signed_in(app, settings, "t09")
    assert "run `leadradar score` first" in client.get("/dashboard/", params={"lang": "en"}).text
    assert "kept by `leadradar score`" in client.get("/dashboard/funnel", params={"lang": "en"}).text
    assert client.get("/dashboard/team").status_code == 200
    assert client.get("/dashboard/report.html").status_code == 200
    assert client.get("/dashboard/leads/t01-L0000001").status_code == 404
    assert pd.read_csv(io.BytesIO(client.get("/dashboard/export.csv").content), encoding="utf-8-sig").empty


# -- tenant walls -------------------------------------------------------------------------------


def test_another_tenants_lead_is_not_found(boss, scored):
    theirs = scored.scores[scored.scores["tenant_id"] == "t02"]["lead_id"].iloc[0]
    r = boss.get(f"/dashboard/leads/{theirs}")
    assert r.status_code == 404
    assert "t02-s" not in r.text


@pytest.mark.parametrize("tenant,other", [("t01", "t02"), ("t02", "t01")])
def test_a_manager_never_sees_another_tenants_leads_on_any_page_or_export(settings, app, scored, tenant, other):
    from openpyxl import load_workbook

    one_page = settings.model_copy(deep=True)
    one_page.serving.dashboard.page_size = 100_000  # every lead of the list on one page
    client = signed_in(mounted(one_page), settings, tenant)
    mine = expected(settings, tenant)
    theirs = set(scored.scores[scored.scores["tenant_id"] == other]["lead_id"])
    pages = []
    for lang in ("en", "zh-CN"):
        pages += [
            client.get(f"/dashboard/{name}", params={"lang": lang}).text
            for name in ("", "funnel", "team", "report.html")
        ]
    pages += [client.get("/dashboard/", params={"sales": s}).text for s in mine["sales_id"].unique()]
    pages += [client.get("/dashboard/", params={"grade": g}).text for g in "ABCD"]
    pages += [client.get(f"/dashboard/leads/{lead}").text for lead in mine["lead_id"][:5]]
    pages.append(client.get("/dashboard/export.csv").content.decode("utf-8-sig"))
    book = load_workbook(io.BytesIO(client.get("/dashboard/export.xlsx").content))
    pages.append(" ".join(str(c.value) for row in book.active.iter_rows() for c in row))
    seen = set().union(*(lead_ids_in(p) for p in pages))
    assert seen == set(mine["lead_id"])  # all of mine, on the one-page list
    assert all(f"{other}-s" not in p for p in pages)  # nor their salespeople
    for lead in list(theirs)[:5]:  # asking for theirs by id finds nothing but the id asked for
        r = client.get(f"/dashboard/leads/{lead}")
        assert r.status_code == 404 and lead_ids_in(r.text) == {lead} and f"{other}-s" not in r.text


def test_every_message_reads_in_both_languages_with_the_same_slots():
    slots = re.compile(r"\{(\w+)\}")
    for key, (en, zh) in MESSAGES.items():
        assert en and zh, key
        assert set(slots.findall(en)) == set(slots.findall(zh)), key
    from importlib.resources import files

    used = set()
    for template in files("leadradar.serving.dashboard").joinpath("templates").iterdir():
        used |= set(re.findall(r"""t\(["']([\w.]+)["']""", template.read_text()))
    assert used <= set(MESSAGES), used - set(MESSAGES)


def _escape(text: str) -> str:
    from markupsafe import escape

    return escape(text)
