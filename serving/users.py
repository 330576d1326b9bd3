"""People who sign in to the dashboard: a user name and a password, bound to one tenant and one role.

Machines use API keys (serving/auth.py); a person should not have to paste one. Passwords are kept
only as Argon2id hashes (serving/passwords.py: what is refused, how it is hashed), and a failed
look-up costs the same as a wrong password so that timing does not tell which names exist.
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
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
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


class UserStore:
    """Dashboard accounts in SQL (the score store's database by default)."""

    def __init__(self, url: str, passwords: PasswordConfig | None = None):
        self.engine = engine_for(url)
        self.passwords = passwords or get_settings().serving.dashboard.passwords
        METADATA.create_all(self.engine)

    def create(self, tenant_id: str, username: str, password: str, role: str = "manager") -> User:
        """A new account; refuses a taken name, a weak password (`PasswordConfig`) or an unknown role."""
        if not NAME.match(username or ""):
            raise BadValueError(f"user name {username!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
        if role not in ROLES:
            raise BadValueError(f"role must be one of {ROLES}, got {role!r}")
        if not tenant_id:
            raise BadValueError("a user needs a tenant")
        self._check_strength(password, username)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(USERS.c.username).where(USERS.c.username == username)).first():
                raise BadValueError(f"user {username!r} exists; use `leadradar users password` to change the password")
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
        return self.get(username)  # type: ignore[return-value]

    def set_password(self, username: str, password: str) -> bool:
        """A new password (ends the user's sessions); False if there is no such user."""
        self._check_strength(password, username)
        with self.engine.begin() as conn:
            done = conn.execute(
                USERS.update()
                .where(USERS.c.username == username)
                .values(password_hash=hash_password(password, self.passwords))
            ).rowcount
        return bool(done)

    def get(self, username: str) -> User | None:
        """The active account of that name, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).mappings().first()
        return _user(row) if row and row["disabled_at"] is None else None

    def verify(self, username: str, password: str) -> User | None:
        """The account if the password is right and the account active; None otherwise."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).mappings().first()
        ok = check_password(password, row["password_hash"] if row else unknown_user_hash(self.passwords))
        return _user(row) if row and ok and row["disabled_at"] is None else None

    def disable(self, username: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                USERS.update()
                .where((USERS.c.username == username) & USERS.c.disabled_at.is_(None))
                .values(disabled_at=datetime.now(UTC))
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
