"""API keys: stored hashed, each bound to one tenant and one role (and a salesperson for `sales`).

A key reads `lr_<key id>_<secret>`. Only SHA-256 of the secret is stored (the secret is 32 random
bytes, so a slow hash adds nothing); the key id finds the row, and the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cachetools import TTLCache

from leadradar.errors import BadValueError

ROLES = ("system", "manager", "sales")
# What each role may do; the tenant check comes on top of this.
PERMISSIONS = {
    "score": {"system", "manager"},
    "rank": {"system", "manager", "sales"},
    "model": {"system", "manager", "sales"},
    "dashboard": {"manager"},
    "audit": {"manager"},
    "write_events": {"system"},
    "quarantine": {"system", "manager"},
    "lead": {"system", "manager", "sales"},
    "forget": {"system", "manager"},
    "alert_feedback": {"system", "manager", "sales"},
    "score_feedback": {"system", "manager", "sales"},
}

METADATA = sa.MetaData()
KEYS = sa.Table(
    "api_keys",
    METADATA,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("sales_id", sa.String(128)),
    sa.Column("name", sa.String(200)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's tenant, role and (for sales keys) salesperson."""

    key_id: str
    tenant_id: str
    role: str
    sales_id: str | None = None

    def may(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer <key>` header, else None: the one reading of that header,
    so the API, its key gate and the dashboard accept the same headers (scheme in any case, spaces around)."""
    parts = (authorization or "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


def request_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key a request presents: `X-Api-Key` when sent, else the Bearer token."""
    return (x_api_key or "").strip() or bearer_token(authorization)


def parse_token(token: str) -> tuple[str, str] | None:
    parts = token.strip().split("_")
    if len(parts) != 3 or parts[0] != "lr" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


_UNSEEN = object()  # not in the key cache (None there is a token known to be invalid)


class KeyStore:
    """Keys in SQL (the score store's database by default); verified keys (and unknown tokens) are cached
    for `cache_seconds`, at most `cache_size` of them (cachetools' TTLCache drops the expired and the oldest)."""

    def __init__(self, url: str, cache_seconds: float = 30.0, cache_size: int = 4096):
        from leadradar.serving.store import engine_for

        self.engine = engine_for(url)
        METADATA.create_all(self.engine)
        self.cache_seconds = cache_seconds
        self._cache: TTLCache[str, Principal | None] = TTLCache(maxsize=cache_size, ttl=cache_seconds)
        self._lock = threading.Lock()

    def create(
        self, tenant_id: str, role: str, name: str | None = None, sales_id: str | None = None
    ) -> tuple[str, str]:
        """A new key; returns (key id, the full key). The full key is shown once and never stored."""
        if role not in ROLES:
            raise BadValueError(f"role must be one of {ROLES}, got {role!r}")
        if role == "sales" and not sales_id:
            raise BadValueError("a sales key needs the salesperson it belongs to (--sales)")
        if not tenant_id:
            raise BadValueError("a key needs a tenant")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32).replace("_", "-")
        with self.engine.begin() as conn:
            conn.execute(
                KEYS.insert().values(
                    key_id=key_id,
                    secret_sha256=_digest(secret),
                    tenant_id=tenant_id,
                    role=role,
                    sales_id=sales_id,
                    name=name,
                    created_at=datetime.now(UTC),
                    revoked_at=None,
                )
            )
        return key_id, f"lr_{key_id}_{secret}"

    def verify(self, token: str | None) -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else."""
        if not token:
            return None
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        cache_key = _digest(token)
        with self._lock:
            cached = self._cache.get(cache_key, _UNSEEN)  # one look: an entry can expire between `in` and `[]`
        if cached is None or isinstance(cached, Principal):
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(KEYS).where(KEYS.c.key_id == key_id)).mappings().first()
        principal = None
        if row and row["revoked_at"] is None and hmac.compare_digest(row["secret_sha256"], _digest(secret)):
            principal = Principal(key_id, row["tenant_id"], row["role"], row["sales_id"])
        with self._lock:
            self._cache[cache_key] = principal
        return principal

    def active(self, key_id: str) -> Principal | None:
        """The principal of an unrevoked key by its id (for sessions begun with that key), else None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(KEYS).where(KEYS.c.key_id == key_id)).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        return Principal(key_id, row["tenant_id"], row["role"], row["sales_id"])

    def revoke(self, key_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                KEYS.update()
                .where((KEYS.c.key_id == key_id) & KEYS.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            ).rowcount
        with self._lock:
            self._cache.clear()
        return bool(done)

    def list(self, tenant_id: str | None = None) -> list[dict]:
        q = sa.select(
            KEYS.c.key_id,
            KEYS.c.tenant_id,
            KEYS.c.role,
            KEYS.c.sales_id,
            KEYS.c.name,
            KEYS.c.created_at,
            KEYS.c.revoked_at,
        ).order_by(KEYS.c.created_at)
        if tenant_id:
            q = q.where(KEYS.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]
