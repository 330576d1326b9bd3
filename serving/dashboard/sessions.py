"""Browser sessions for the dashboard: a signed cookie after signing in, checked on every page.

The cookie holds who signed in (a user name or an API key id), the tenant, the role, a fingerprint,
an expiry and a session id, signed with HMAC-SHA256. It is HttpOnly (no script reads it), SameSite=Lax
and Secure when configured. The session id must name an open session in the session ledger (SQL, every
worker shares it): signing out or an idle spell ends it, so a copied cookie ends with it. Each request
also re-checks the account: a disabled user, a changed password or a revoked key ends the session at
once. Machines may skip the cookie and send a manager API key as `Authorization: Bearer`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import sqlalchemy as sa

from leadradar.config import Settings
from leadradar.serving.auth import PERMISSIONS, KeyStore, bearer_token
from leadradar.serving.dashboard.throttle import LoginThrottle
from leadradar.serving.store import engine_for
from leadradar.serving.users import UserStore

COOKIE = "lr_session"
LANG_COOKIE = "lr_lang"
SECRET_FILE = "dashboard-secret"  # nosec B105 # the name of the file the secret is kept in, not a secret

METADATA = sa.MetaData()
SESSIONS = sa.Table(
    "dashboard_sessions",
    METADATA,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("seen_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
)


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a signed-in person or a manager key, always of one tenant."""

    tenant_id: str
    name: str
    kind: str  # "user" or "key"
    role: str


def load_secret(settings: Settings) -> bytes:
    """The signing key: from settings, else a random one kept (0600) under the data directory."""
    configured = settings.serving.dashboard.session_secret
    if configured:
        return configured.encode()
    path = settings.data_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    for _ in range(50):  # another worker may be writing it right now
        text = path.read_text().strip()
        if text:
            return text.encode()
        time.sleep(0.02)
    raise RuntimeError(f"the dashboard secret file {path} is empty; delete it to make a new one")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Makes and reads the signed cookie value; it says nothing about whether the session or account still exists."""

    def __init__(self, secret: bytes, hours: float):
        self.secret = secret
        self.max_age = int(hours * 3600)

    def _sign(self, payload: str) -> bytes:
        return _b64(hmac.new(self.secret, f"v1.{payload}".encode(), hashlib.sha256).digest()).encode()

    def issue(self, viewer: Viewer, fingerprint: str, now: float | None = None) -> Ticket:
        """A new session for `viewer`: its id (kept server-side) and the signed cookie value carrying it."""
        now = time.time() if now is None else now
        ticket = Ticket(viewer, fingerprint, secrets.token_urlsafe(24), now + self.max_age)
        body = {
            "t": viewer.tenant_id,
            "n": viewer.name,
            "k": viewer.kind,
            "r": viewer.role,
            "f": fingerprint,
            "e": int(ticket.expires_at),
            "j": ticket.session_id,
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return replace(ticket, cookie=f"v1.{payload}.{self._sign(payload).decode()}")

    def read(self, value: str | None, now: float | None = None) -> Ticket | None:
        """The ticket of a genuine, unexpired cookie; None for anything else (any bytes, any characters)."""
        if not value or value.count(".") != 2:
            return None
        version, payload, signature = value.split(".")
        if version != "v1" or not hmac.compare_digest(signature.encode("utf-8", "replace"), self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
        except ValueError:
            return None
        if body.get("e", 0) < (time.time() if now is None else now):
            return None
        viewer = Viewer(body["t"], body["n"], body["k"], body["r"])
        return Ticket(viewer, body["f"], body["j"], float(body["e"]), value)


@dataclass(frozen=True)
class Ticket:
    """One session as its cookie carries it: who, the account's fingerprint, the session id, the expiry."""

    viewer: Viewer
    fingerprint: str
    session_id: str
    expires_at: float
    cookie: str = ""


class SessionLedger:
    """The sessions that are open, in SQL (shared by every worker): signing out or staying idle past
    `idle_seconds` removes one, and its cookie, however copied, opens nothing after that."""

    def __init__(self, url: str, idle_seconds: float, clock: Callable[[], float] = time.time):
        self.engine = engine_for(url)
        METADATA.create_all(self.engine)
        self.idle_seconds, self.clock = idle_seconds, clock
        # Last-seen times are written at most this often: a page view is not a database write.
        self.touch_seconds = min(60.0, idle_seconds / 10)

    def open(self, ticket: Ticket) -> None:
        """Record a new session (and forget ended ones on the way)."""
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                SESSIONS.delete().where((SESSIONS.c.expires_at < now) | (SESSIONS.c.seen_at < now - self.idle_seconds))
            )
            conn.execute(
                SESSIONS.insert().values(
                    session_id=ticket.session_id,
                    tenant_id=ticket.viewer.tenant_id,
                    name=ticket.viewer.name,
                    kind=ticket.viewer.kind,
                    created_at=now,
                    seen_at=now,
                    expires_at=ticket.expires_at,
                )
            )

    def alive(self, ticket: Ticket) -> bool:
        """True for an open session used within the idle time (and mark it used); an idle one is ended."""
        now = self.clock()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(SESSIONS.c.seen_at, SESSIONS.c.expires_at).where(SESSIONS.c.session_id == ticket.session_id)
            ).first()
        if row is None or row.expires_at < now:
            return False
        if now - row.seen_at > self.idle_seconds:
            self.end(ticket.session_id)
            return False
        if now - row.seen_at > self.touch_seconds:
            with self.engine.begin() as conn:
                conn.execute(SESSIONS.update().where(SESSIONS.c.session_id == ticket.session_id).values(seen_at=now))
        return True

    def end(self, session_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(SESSIONS.delete().where(SESSIONS.c.session_id == session_id))


class Gate:
    """Signs people in and tells, for each request, who is looking (or nobody)."""

    def __init__(
        self, signer: SessionSigner, users: UserStore, keys: KeyStore, throttle: LoginThrottle, ledger: SessionLedger
    ):
        self.signer, self.users, self.keys, self.throttle, self.ledger = signer, users, keys, throttle, ledger

    @staticmethod
    def may_view(role: str) -> bool:
        return role in PERMISSIONS["dashboard"]

    def check_password(self, username: str, password: str) -> tuple[Viewer, str] | None:
        """(viewer, fingerprint) for a right password, else None. Slow on purpose (scrypt): run it in a thread."""
        user = self.users.verify(username, password)
        if user is None:
            return None
        return Viewer(user.tenant_id, user.username, "user", user.role), user.fingerprint

    def check_key(self, token: str) -> tuple[Viewer, str] | None:
        """(viewer, fingerprint) for a valid, unrevoked key, else None."""
        principal = self.keys.verify(token)
        if principal is None:
            return None
        return Viewer(principal.tenant_id, principal.key_id, "key", principal.role), principal.key_id

    def open_session(self, viewer: Viewer, fingerprint: str) -> str:
        """A new server-side session for a checked viewer; returns the cookie value."""
        ticket = self.signer.issue(viewer, fingerprint)
        self.ledger.open(ticket)
        return ticket.cookie

    def end_session(self, value: str | None) -> None:
        """Sign-out: the session of this cookie ends for every copy of it."""
        ticket = self.signer.read(value)
        if ticket is not None:
            self.ledger.end(ticket.session_id)

    def from_cookie(self, value: str | None) -> Viewer | None:
        """The viewer of a genuine cookie of an open session whose account is still active, unchanged and allowed."""
        ticket = self.signer.read(value)
        if ticket is None or not self.ledger.alive(ticket):
            return None
        viewer, fingerprint = ticket.viewer, ticket.fingerprint
        if viewer.kind == "user":
            user = self.users.get(viewer.name, viewer.tenant_id)
            ok = user is not None and user.fingerprint == fingerprint and user.tenant_id == viewer.tenant_id
            role = user.role if user else ""
        else:
            principal = self.keys.active(viewer.name)
            ok = principal is not None and principal.tenant_id == viewer.tenant_id
            role = principal.role if principal else ""
        return Viewer(viewer.tenant_id, viewer.name, viewer.kind, role) if ok and self.may_view(role) else None

    def from_bearer(self, authorization: str | None) -> Viewer | None:
        """A manager key sent by a machine as `Authorization: Bearer <key>`."""
        token = bearer_token(authorization)
        principal = self.keys.verify(token) if token else None
        if principal is None or not self.may_view(principal.role):
            return None
        return Viewer(principal.tenant_id, principal.key_id, "key", principal.role)
