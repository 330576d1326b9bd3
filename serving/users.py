"""People who sign in to the dashboard: a user name and a password, bound to one tenant and one role.

Machines use API keys (serving/auth.py); a person should not have to paste one. Passwords are kept
only as Argon2id hashes (serving/passwords.py: what is refused, how it is hashed), and a failed
look-up costs the same as a wrong password so that timing does not tell which names exist.

A name is unique within its tenant, not across tenants: two companies may each have a `boss`. A person
signs in as `name` while the name is used by one tenant only, and as `name@tenant` always.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from leadradar.config import PasswordConfig, get_settings
from leadradar.errors import BadValueError
from leadradar.serving.auth import ROLES
from leadradar.serving.passwords import check_password, hash_password, unknown_user_hash, weakness
from leadradar.serving.store import engine_for

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

METADATA = sa.MetaData()
USERS = sa.Table(
    "dashboard_users",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class User:
    """A person's account; `fingerprint` changes with the password, ending sessions made before."""

    username: str
    tenant_id: str
    role: str
    fingerprint: str


def _user(row) -> User:
    return User(
        row["username"], row["tenant_id"], row["role"], hashlib.sha256(row["password_hash"].encode()).hexdigest()[:16]
    )


class AmbiguousUserError(BadValueError):
    """A bare user name that more than one tenant uses."""


def _widen_key(engine: sa.Engine) -> None:
    """A user table made before names were per tenant (keyed by name alone) gets the (tenant, name) key."""
    inspector = sa.inspect(engine)
    if "dashboard_users" not in inspector.get_table_names():
        return
    if inspector.get_pk_constraint("dashboard_users").get("constrained_columns") != ["username"]:
        return
    with engine.begin() as conn:
        old = sa.Table("dashboard_users", sa.MetaData(), autoload_with=conn)
        rows = [dict(r) for r in conn.execute(sa.select(old)).mappings()]  # people: a small table
        old.drop(conn)
        USERS.create(conn)
        if rows:
            conn.execute(USERS.insert(), rows)


class UserStore:
    """Dashboard accounts in SQL (the score store's database by default)."""

    def __init__(self, url: str, passwords: PasswordConfig | None = None):
        self.engine = engine_for(url)
        self.passwords = passwords or get_settings().serving.dashboard.passwords
        _widen_key(self.engine)
        METADATA.create_all(self.engine)

    def create(self, tenant_id: str, username: str, password: str, role: str = "manager") -> User:
        """A new account; refuses a name the tenant already has, a weak password (`PasswordConfig`) or an unknown
        role. Another tenant's account of the same name is no obstacle."""
        if not NAME.match(username or ""):
            raise BadValueError(f"user name {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise BadValueError(f"role must be one of {ROLES}, got {role!r}")
        if not tenant_id:
            raise BadValueError("a user needs a tenant")
        self._check_strength(password, username)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(USERS.c.username).where(self._is(username, tenant_id))).first():
                raise BadValueError(
                    f"user {username!r} of tenant {tenant_id!r} exists; "
                    f"`leadradar users password {username} --tenant {tenant_id}` changes the password"
                )
            conn.execute(
                USERS.insert().values(
                    username=username,
                    tenant_id=tenant_id,
                    role=role,
                    password_hash=hash_password(password, self.passwords),
                    created_at=datetime.now(UTC),
                    disabled_at=None,
                )
            )
        return self.get(username, tenant_id)  # type: ignore[return-value]

    @staticmethod
    def _is(username: str, tenant_id: str) -> sa.ColumnElement[bool]:
        return (USERS.c.username == username) & (USERS.c.tenant_id == tenant_id)

    def _rows(self, login: str, tenant_id: str | None = None) -> list[sa.RowMapping]:
        """Accounts `login` may mean: `name` of `tenant_id`, or without a tenant `name` (any tenant) and
        `name@tenant` (the part after the last `@` as the tenant, since names may hold `@` themselves)."""
        if tenant_id is not None:
            where = self._is(login, tenant_id)
        else:
            where = USERS.c.username == login
            if "@" in login:
                name, tenant = login.rsplit("@", 1)
                where = where | self._is(name, tenant)
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(USERS).where(where)).mappings())

    def _one(self, login: str, tenant_id: str | None = None) -> sa.RowMapping | None:
        """The one account `login` names; None for none; AmbiguousUserError when several tenants share the name."""
        rows = self._rows(login, tenant_id)
        if len(rows) > 1:
            tenants = ", ".join(sorted(r["tenant_id"] for r in rows))
            raise AmbiguousUserError(
                f"user name {login!r} is used by tenants {tenants}: name one, e.g. {login}@{rows[0]['tenant_id']}"
                " (or --tenant)"
            )
        return rows[0] if rows else None

    def set_password(self, username: str, password: str, tenant_id: str | None = None) -> bool:
        """A new password (ends the user's sessions); False if there is no such user."""
        row = self._one(username, tenant_id)
        if row is None:
            return False
        self._check_strength(password, row["username"])
        with self.engine.begin() as conn:
            done = conn.execute(
                USERS.update()
                .where(self._is(row["username"], row["tenant_id"]))
                .values(password_hash=hash_password(password, self.passwords))
            ).rowcount
        return bool(done)

    def get(self, username: str, tenant_id: str | None = None) -> User | None:
        """The active account of that name (of that tenant, or `name@tenant`, or a name one tenant uses), or None."""
        try:
            row = self._one(username, tenant_id)
        except AmbiguousUserError:
            return None
        return _user(row) if row and row["disabled_at"] is None else None

    def verify(self, login: str, password: str) -> User | None:
        """The account if the password is right and the account active; None otherwise (also for a name several
        tenants share: the person then signs in as `name@tenant`)."""
        try:
            row = self._one(login)
        except AmbiguousUserError:
            row = None
        ok = check_password(password, row["password_hash"] if row else unknown_user_hash(self.passwords))
        return _user(row) if row and ok and row["disabled_at"] is None else None

    def disable(self, username: str, tenant_id: str | None = None) -> bool:
        """Disable an active account; False if there is none of that name."""
        return self._set_disabled(username, tenant_id, datetime.now(UTC))

    def enable(self, username: str, tenant_id: str | None = None) -> bool:
        """Let a disabled account sign in again (with its old password); False if there is no disabled one."""
        return self._set_disabled(username, tenant_id, None)

    def _set_disabled(self, username: str, tenant_id: str | None, when: datetime | None) -> bool:
        row = self._one(username, tenant_id)
        if row is None or (row["disabled_at"] is None) == (when is None):
            return False
        with self.engine.begin() as conn:
            done = conn.execute(
                USERS.update().where(self._is(row["username"], row["tenant_id"])).values(disabled_at=when)
            ).rowcount
        return bool(done)

    def list(self, tenant_id: str | None = None) -> list[dict]:
        q = sa.select(
            USERS.c.username, USERS.c.tenant_id, USERS.c.role, USERS.c.created_at, USERS.c.disabled_at
        ).order_by(USERS.c.created_at)
        if tenant_id:
            q = q.where(USERS.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def _check_strength(self, password: str, username: str) -> None:
        problem = weakness(password, username, self.passwords)
        if problem:
            raise BadValueError(problem)
