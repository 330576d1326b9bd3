"""Dashboard accounts are per tenant: two companies may each have a `boss`, who signs in as `boss@tenant`;
a name one tenant uses still signs in bare, and a disabled account can be enabled again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.routing import Mount
from typer.testing import CliRunner

from leadradar.cli import app as cli_app
from leadradar.config import Settings
from leadradar.serving.dashboard.routes import Backend, build_dashboard
from leadradar.serving.passwords import hash_password
from leadradar.serving.users import UserStore
from tests.support.dashboard_support import lead_ids_in, session_activity

FIRST, SECOND = "first company's long password", "second company's long password"


@pytest.fixture
def own(tmp_path) -> Settings:
    """Settings on a data directory of this test's own (an empty user table)."""
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    return settings


def cli(settings: Settings, *args: str, stdin: str | None = None):
    return CliRunner().invoke(cli_app, list(args), input=stdin, env={"LEADRADAR_HOME": str(settings.data_dir)})


def test_two_tenants_each_have_a_boss_who_signs_in_as_boss_at_tenant(own):
    users = UserStore(own.score_store_url)
    users.create("t01", "boss", FIRST)
    made = cli(own, "users", "create", "--tenant", "t02", "--name", "boss", "--password-stdin", stdin=SECOND + "\n")
    assert made.exit_code == 0, made.output
    assert "as boss@t02" in made.output
    assert users.verify("boss@t01", FIRST).tenant_id == "t01"
    assert users.verify("boss@t02", SECOND).tenant_id == "t02"
    assert users.verify("boss@t02", FIRST) is None and users.verify("boss@t03", FIRST) is None
    assert users.verify("boss", FIRST) is None  # two tenants use the bare name: it names nobody
    again = cli(own, "users", "create", "--tenant", "t02", "--name", "boss", "--password-stdin", stdin=SECOND + "\n")
    assert again.exit_code == 2 and "of tenant 't02' exists" in again.output


def test_a_name_one_tenant_uses_still_signs_in_bare(own):
    users = UserStore(own.score_store_url)
    users.create("t01", "anna", FIRST)
    assert users.verify("anna", FIRST).tenant_id == "t01" and users.verify("anna@t01", FIRST) is not None
    assert users.get("anna").tenant_id == users.get("anna", "t01").tenant_id == "t01"


def test_the_cli_asks_for_the_tenant_when_a_bare_name_is_shared_and_enable_undoes_disable(own):
    users = UserStore(own.score_store_url)
    users.create("t01", "boss", FIRST)
    users.create("t02", "boss", SECOND)
    shared = cli(own, "users", "disable", "boss")
    assert shared.exit_code == 2 and "t01, t02" in shared.output and "boss@t01" in shared.output
    assert cli(own, "users", "disable", "boss", "--tenant", "t02").exit_code == 0
    assert users.verify("boss@t02", SECOND) is None and users.verify("boss@t01", FIRST) is not None
    enabled = cli(own, "users", "enable", "boss@t02")
    assert enabled.exit_code == 0, enabled.output
    assert users.verify("boss@t02", SECOND).tenant_id == "t02"
    twice = cli(own, "users", "enable", "boss@t02")
    assert twice.exit_code == 2 and "no disabled user" in twice.output


def test_a_user_table_made_before_names_were_per_tenant_keeps_its_accounts(own):
    engine = sa.create_engine(own.score_store_url)
    old = sa.Table(
        "dashboard_users",
        sa.MetaData(),
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
    )
    old.create(engine)
    users = UserStore(own.score_store_url)  # the password settings, before the old row is written
    with engine.begin() as conn:
        conn.execute(
            old.insert().values(
                username="boss",
                tenant_id="t01",
                role="manager",
                password_hash=hash_password(FIRST, users.passwords),
                created_at=datetime.now(UTC),
            )
        )
    engine.dispose()
    users = UserStore(own.score_store_url)
    assert users.verify("boss", FIRST).tenant_id == "t01"
    users.create("t02", "boss", SECOND)
    assert users.verify("boss@t02", SECOND).tenant_id == "t02"
    assert sa.inspect(users.engine).get_pk_constraint("dashboard_users")["constrained_columns"] == [
        "tenant_id",
        "username",
    ]


def test_the_dashboard_signs_boss_at_tenant_into_that_tenant_only(settings, small_sim, scored):
    session_activity(settings, small_sim, scored)
    users = UserStore(settings.score_store_url)
    for tenant, password in (("t01", FIRST), ("t02", SECOND)):
        if users.get("shared-boss", tenant) is None:
            users.create(tenant, "shared-boss", password)
    client = TestClient(Starlette(routes=[Mount("/dashboard", build_dashboard(lambda: Backend.build(settings)))]))
    assert "name@company" in client.get("/dashboard/login").text
    bare = client.post("/dashboard/login", data={"username": "shared-boss", "password": SECOND})
    assert bare.status_code == 401
    r = client.post(
        "/dashboard/login", data={"username": "shared-boss@t02", "password": SECOND}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    page = client.get("/dashboard/")
    assert page.status_code == 200 and lead_ids_in(page.text)
    assert all(lead.startswith("t02-") for lead in lead_ids_in(page.text))
