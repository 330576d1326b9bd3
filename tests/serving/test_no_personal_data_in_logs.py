"""A full flow against the real server and the command line, then a grep of the server's log file and the
commands' output: no password, API key, phone number, name tried at sign-in or free text a request carried."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from typer.testing import CliRunner

from leadradar.cli import app as cli
from tests.support.dashboard_support import manager

pytestmark = pytest.mark.server
PHONE = "13812345678"
NAME_TRIED = "wang.xiaoming"
PASSWORD_TRIED = "Hunter2-tests-only-secret"
FREE_TEXT = "客户王小明说下周签约 call him on 13987654321"
# A mainland mobile number, an international one, or a landline with its area code.
PHONE_LIKE = re.compile(r"(?<!\d)(?:1[3-9]\d{9}|\+\d{8,15}|0\d{2,3}-?\d{7,8})(?!\d)")


def events(lead_id: str) -> list[dict]:
    now = datetime.now(UTC)
    return [
        {
            "event_id": f"pd-{i}",
            "ts": (now - timedelta(days=i)).isoformat(),
            "event_type": "chat_message" if i % 2 else "card_view",
            "sales_id": "s-pd",
            "item_id": FREE_TEXT[:60],
            "channel": "wecom",
            "lead_id": lead_id,
        }
        for i in range(1, 4)
    ]


@pytest.fixture(scope="module")
def flow(server, settings, role_keys) -> dict:
    """Score, rank, the dashboard with a wrong and a right sign-in, every page and export, the CLI: what it saw."""
    system, boss_key = role_keys["t01", "system"], role_keys["t01", "manager"]
    url = server.url
    good = {"leads": [{"lead_id": f"L-{PHONE}", "events": events(f"L-{PHONE}"), "attributes": {"industry": FREE_TEXT}}]}
    bad = {"leads": [{"lead_id": "L-1", "events": [{**events("L-1")[0], "event_type": FREE_TEXT}]}]}
    assert httpx.post(url + "/v1/score", json=good, headers=system.auth, timeout=60).status_code == 200
    assert httpx.post(url + "/v1/score", json=bad, headers=system.auth, timeout=60).status_code == 422
    assert httpx.post(url + "/v1/rank", json={}, headers=boss_key.auth, timeout=60).status_code == 200
    wrong_key = {"Authorization": f"Bearer lr_abcdef_{PASSWORD_TRIED}"}
    assert httpx.post(url + "/v1/rank", json={}, headers=wrong_key, timeout=60).status_code == 401
    name, password = manager(settings, "t01")
    with httpx.Client(base_url=url, timeout=60, follow_redirects=True) as browser:
        for tried in ({"username": NAME_TRIED, "password": PASSWORD_TRIED}, {"username": name, "password": "x" * 12}):
            assert browser.post("/dashboard/login", data=tried).status_code == 401
        assert browser.post("/dashboard/login", data={"api_key": f"lr_0a0b0c_{PASSWORD_TRIED}"}).status_code == 401
        assert browser.post("/dashboard/login", data={"username": name, "password": password}).status_code == 200
        for path in ("/", "/funnel", "/team", f"/leads/L-{PHONE}", "/export.csv", "/export.xlsx", "/report.html"):
            assert browser.get("/dashboard" + path).status_code in (200, 404), path
        assert browser.get("/dashboard/audit").status_code == 200
    runner, env = CliRunner(), {"LEADRADAR_HOME": str(settings.data_dir)}
    outputs = [runner.invoke(cli, args, env=env).output for args in (["rank", "--tenant", "t01"], ["keys", "list"])]
    outputs.append(runner.invoke(cli, ["audit", "--tenant", "t01", "--limit", "500"], env=env).output)
    secrets = [PASSWORD_TRIED, password, system.token, boss_key.token, NAME_TRIED, PHONE, FREE_TEXT, FREE_TEXT[:8]]
    return {"log": server.log_file.read_text(errors="replace"), "cli": "\n".join(outputs), "secrets": secrets}


def test_the_server_log_holds_no_password_key_name_phone_or_free_text(flow):
    leaked = [s for s in flow["secrets"] if s in flow["log"]]
    assert not leaked, leaked
    assert not PHONE_LIKE.findall(flow["log"])


def test_the_command_line_prints_no_password_key_name_phone_or_free_text(flow):
    leaked = [s for s in flow["secrets"] if s in flow["cli"]]
    assert not leaked, leaked
    assert not PHONE_LIKE.findall(flow["cli"])
