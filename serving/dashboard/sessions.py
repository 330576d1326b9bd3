"""Browser sessions for the dashboard: a signed cookie after signing in, checked on every page.

The cookie holds who signed in (a user name or an API key id), the tenant, the role, a fingerprint
and an expiry, signed with HMAC-SHA256. It is HttpOnly (no script reads it), SameSite=Lax (other
sites' forms do not carry it, so sign-out and sign-in cannot be forged) and Secure when configured.
Each request re-checks the account: a disabled user, a changed password or a revoked key ends the
session at once. Machines may skip the cookie and send a manager API key as `Authorization: Bearer`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from leadradar.config import Settings
from leadradar.serving.auth import PERMISSIONS, KeyStore, bearer_token
from leadradar.serving.users import UserStore

COOKIE = "lr_session"
LANG_COOKIE = "lr_lang"
SECRET_FILE = "dashboard-secret"  # nosec B105 # the name of the file the secret is kept in, not a secret


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
    """Makes and reads the signed cookie value; it says nothing about whether the account still exists."""

    def __init__(self, secret: bytes, hours: float):
        self.secret = secret
        self.max_age = int(hours * 3600)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, f"v1.{payload}".encode(), hashlib.sha256).digest())

    def issue(self, viewer: Viewer, fingerprint: str, now: float | None = None) -> str:
        now = time.time() if now is None else now
        body = {
            "t": viewer.tenant_id,
            "n": viewer.name,
            "k": viewer.kind,
            "r": viewer.role,
            "f": fingerprint,
            "e": int(now + self.max_age),
            "j": secrets.token_hex(8),
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"v1.{payload}.{self._sign(payload)}"

    def read(self, value: str | None, now: float | None = None) -> tuple[Viewer, str] | None:
        """(viewer, fingerprint) from a genuine, unexpired cookie; None for anything else."""
        if not value or value.count(".") != 2:
            return None
        version, payload, signature = value.split(".")
        if version != "v1" or not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            body = json.loads(_unb64(payload))
        except ValueError:
            return None
        if body.get("e", 0) < (time.time() if now is None else now):
            return None
        return Viewer(body["t"], body["n"], body["k"], body["r"]), body["f"]


class LoginThrottle:
    """At most `attempts` failed sign-ins per (name, address) within `window` seconds."""

    def __init__(self, attempts: int, window: float):
        self.attempts, self.window = attempts, window
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> list[float]:
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def allowed(self, name: str, address: str) -> bool:
        with self._lock:
            return len(self._recent((name, address), time.monotonic())) < self.attempts

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._failures[(name, address)] = [*self._recent((name, address), now), now]

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self._failures.pop((name, address), None)


class Gate:
    """Signs people in and tells, for each request, who is looking (or nobody)."""

    def __init__(self, signer: SessionSigner, users: UserStore, keys: KeyStore, throttle: LoginThrottle):
        self.signer, self.users, self.keys, self.throttle = signer, users, keys, throttle

    @staticmethod
    def may_view(role: str) -> bool:
        return role in PERMISSIONS["dashboard"]

    def with_password(self, username: str, password: str) -> tuple[Viewer, str] | None:
        user = self.users.verify(username, password)
        if user is None:
            return None
        viewer = Viewer(user.tenant_id, user.username, "user", user.role)
        return viewer, self.signer.issue(viewer, user.fingerprint)

    def with_key(self, token: str) -> tuple[Viewer, str] | None:
        principal = self.keys.verify(token)
        if principal is None:
            return None
        viewer = Viewer(principal.tenant_id, principal.key_id, "key", principal.role)
        return viewer, self.signer.issue(viewer, principal.key_id)

    def from_cookie(self, value: str | None) -> Viewer | None:
        """The viewer of a genuine cookie whose account is still active, unchanged and allowed."""
        read = self.signer.read(value)
        if read is None:
            return None
        viewer, fingerprint = read
        if viewer.kind == "user":
            user = self.users.get(viewer.name)
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
