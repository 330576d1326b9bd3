"""The audit log against the real server and the command line: sign-ins, exports and key revocations are
kept per tenant, read by that tenant's managers only, and a failed sign-in under an unknown name keeps no name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leadradar.cli import app as cli
from leadradar.serving.audit import AUDIT, AuditLog
from tests.support.dashboard_support import manager

pytestmark = pytest.mark.server
UNKNOWN_NAME = "13912345678"  # a phone number typed into the name field


def run(settings, *args: str):
    # Wide enough that no cell wraps: which entries the table holds depends on the tests run before it.
    result = CliRunner().invoke(cli, list(args), env={"LEADRADAR_HOME": str(settings.data_dir), "COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    return result


@contextmanager
def dashboard(server, settings, tenant: str) -> Iterator[httpx.Client]:
    """A browser signed in as the tenant's manager."""
    with httpx.Client(base_url=server.url, timeout=60, follow_redirects=True) as client:
        name, password = manager(settings, tenant)
        r = client.post("/dashboard/login", data={"username": name, "password": password, "next": "/dashboard/"})
        assert r.status_code == 200 and "/dashboard/login" not in str(r.url), r.text[:300]
        yield client


@pytest.fixture(scope="module")
def acts(server, settings, role_keys) -> dict:
    """A wrong password and a sign-in by t01's manager, a CSV export, a key created and revoked on the
    command line, and a sign-in under a name no account has."""
    name, _ = manager(settings, "t01")
    wrong = httpx.post(server.url + "/dashboard/login", data={"username": name, "password": "not the password"})
    assert wrong.status_code == 401
    unknown = httpx.post(server.url + "/dashboard/login", data={"username": UNKNOWN_NAME, "password": "whatever 123"})
    assert unknown.status_code == 401
    with dashboard(server, settings, "t01") as boss:
        assert boss.get("/dashboard/export.csv?grade=A").status_code == 200
    created = run(settings, "keys", "create", "--tenant", "t01", "--role", "system", "--name", "audit test")
    token = created.stdout.strip().splitlines()[-1]
    key_id = token.split("_")[1]
    run(settings, "keys", "revoke", key_id)
    return {"name": name, "key_id": key_id}


def test_the_audit_log_keeps_a_sign_in_an_export_and_a_key_revocation(server, role_keys, acts):
    r = httpx.get(server.url + "/v1/audit", headers=role_keys["t01", "manager"].auth, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["tenant_id"] == "t01"
    seen = {(e["action"], e["actor"], e["target"], e["detail"]) for e in body["entries"]}
    assert ("sign_in_failed", acts["name"], "password", "wrong") in seen
    assert ("sign_in", acts["name"], "password", None) in seen
    assert ("export", acts["name"], "csv", "grade=A") in seen
    revoked = [e for e in body["entries"] if e["action"] == "key_revoked" and e["target"] == f"key:{acts['key_id']}"]
    assert revoked and revoked[0]["actor"].startswith("cli") and revoked[0]["detail"] == "system"
    assert any(e["action"] == "key_created" and e["target"] == f"key:{acts['key_id']}" for e in body["entries"])
    times = [e["at"] for e in body["entries"]]
    assert times == sorted(times, reverse=True)


def test_a_manager_of_another_tenant_cannot_read_them(server, settings, role_keys, acts):
    r = httpx.get(server.url + "/v1/audit", headers=role_keys["t02", "manager"].auth, timeout=30)
    assert r.status_code == 200
    assert r.json()["tenant_id"] == "t02"
    text = r.text
    assert acts["name"] not in text and acts["key_id"] not in text
    with dashboard(server, settings, "t02") as other:
        page = other.get("/dashboard/audit")
        assert page.status_code == 200
        assert acts["name"] not in page.text and acts["key_id"] not in page.text
        assert "boss-t02" in page.text  # its own sign-in is there


@pytest.mark.parametrize("role", ["system", "sales"])
def test_only_manager_keys_read_the_audit_log(server, role_keys, role):
    r = httpx.get(server.url + "/v1/audit", headers=role_keys["t01", role].auth, timeout=30)
    assert r.status_code == 403
    assert httpx.get(server.url + "/v1/audit", timeout=30).status_code == 401


def test_the_dashboard_page_words_the_log_in_both_languages(server, settings, acts):
    with dashboard(server, settings, "t01") as boss:
        en = boss.get("/dashboard/audit?lang=en").text
        zh = boss.get("/dashboard/audit?lang=zh-CN").text
    assert "the lead list as CSV" in en and "API key revoked" in en and acts["key_id"] in en
    assert "线索列表（CSV）" in zh and "吊销 API 密钥" in zh


def test_leadradar_audit_prints_the_tenants_log(settings, acts):
    rows = json.loads(run(settings, "audit", "--tenant", "t01", "--json", "--limit", "500").stdout)["entries"]
    assert {"sign_in", "sign_in_failed", "export", "key_created", "key_revoked"} <= {r["action"] for r in rows}
    table = run(settings, "audit", "--tenant", "t01").stdout
    assert acts["key_id"] in table and "key_revoked" in table


def test_a_failed_sign_in_under_an_unknown_name_keeps_no_name_and_no_tenant(settings, acts):
    log = AuditLog(settings.score_store_url)
    with log.engine.connect() as conn:
        rows = conn.execute(sa.select(AUDIT)).mappings().all()
    assert rows
    assert not any(UNKNOWN_NAME in str(value) for row in rows for value in row.values())
    assert any(r["action"] == "sign_in_failed" and r["tenant_id"] is None and r["actor"] == "?" for r in rows)
