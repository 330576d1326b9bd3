"""The audit log: who signed in (or failed to), created or revoked a key, exported or deleted what, and when.

One row per act, per tenant, in the score store's database (SQLite by default, PostgreSQL by URL), read
newest first by that tenant's managers only (the dashboard's audit page, `GET /v1/audit`) and by
operators (`leadradar audit --tenant T`). Rows hold ids and names of accounts, never a password, a key,
a phone number or text a person typed: a failed sign-in under a name no account has keeps no name (a
password typed into the name field is the usual case) and no tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import sqlalchemy as sa

from leadradar.serving.auth import KeyStore, parse_token
from leadradar.serving.store import engine_for
from leadradar.serving.users import UserStore

# What can happen, and the codes the dashboard words in both languages (messages.py: `audit.action.<action>`,
# `audit.target.<target>`, `audit.detail.<detail>`); a target or detail not among them is shown as it is.
ACTIONS = ("sign_in", "sign_in_failed", "key_created", "key_revoked", "export", "deleted")
HOW = {"user": "password", "key": "api_key"}

METADATA = sa.MetaData()
AUDIT = sa.Table(
    "audit_log",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("tenant_id", sa.String(64)),  # None: an act no tenant can be told (a name no account has)
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(200)),
    sa.Column("detail", sa.String(500)),
    sa.Index("ix_audit_tenant_id", "tenant_id", "id"),
)


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    tenant_id: str | None
    actor: str
    action: str
    target: str | None
    detail: str | None


class Someone(Protocol):
    """A signed-in viewer of the dashboard (serving/dashboard/sessions.py `Viewer`)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...


def actor_of(viewer: Someone) -> str:
    """A person by user name, a machine by key id (never the key)."""
    return viewer.name if viewer.kind == "user" else f"key:{viewer.name}"


class AuditLog:
    """Append-only rows in SQL; nothing here updates or deletes one."""

    def __init__(self, url: str):
        self.engine = engine_for(url)
        METADATA.create_all(self.engine)

    def record(
        self, action: str, tenant_id: str | None, actor: str, target: str | None = None, detail: str | None = None
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"audit action must be one of {ACTIONS}, got {action!r}")
        with self.engine.begin() as conn:
            conn.execute(
                AUDIT.insert().values(
                    at=datetime.now(UTC), tenant_id=tenant_id, actor=actor, action=action, target=target, detail=detail
                )
            )

    def read(self, tenant_id: str, limit: int = 200) -> list[AuditEntry]:
        """The tenant's last `limit` rows, newest first; another tenant's rows never."""
        q = sa.select(AUDIT).where(AUDIT.c.tenant_id == tenant_id).order_by(AUDIT.c.id.desc()).limit(max(limit, 0))
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        return [
            AuditEntry(
                _utc(r["at"]), r["tenant_id"], r["actor"], r["action"], r["target"], r["detail"]
            )  # SQLite gives naive times back
            for r in rows
        ]

    # -- the dashboard's sign-in and exports ---------------------------------------------------------

    def signed_in(self, viewer: Someone) -> None:
        self.record("sign_in", viewer.tenant_id, actor_of(viewer), HOW[viewer.kind])

    def refused(self, viewer: Someone) -> None:
        """A right key or password whose account may not open the dashboard (not a manager)."""
        self.record("sign_in_failed", viewer.tenant_id, actor_of(viewer), HOW[viewer.kind], "not_manager")

    def sign_in_failed(self, users: UserStore, keys: KeyStore, username: str, key: str) -> None:
        """A wrong password or key, kept under the tenant of the account it was tried on, if one exists."""
        if key:
            parsed = parse_token(key)
            principal = keys.active(parsed[0]) if parsed else None
            if principal is None:
                self.record("sign_in_failed", None, "?", "api_key", "unknown")
            else:
                self.record("sign_in_failed", principal.tenant_id, f"key:{principal.key_id}", "api_key", "wrong")
            return
        user = users.get(username) if username else None
        if user is None:
            self.record("sign_in_failed", None, "?", "password", "unknown")
        else:
            self.record("sign_in_failed", user.tenant_id, user.username, "password", "wrong")

    def exported(self, viewer: Someone, what: str, filters: str = "") -> None:
        self.record("export", viewer.tenant_id, actor_of(viewer), what, filters or None)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
