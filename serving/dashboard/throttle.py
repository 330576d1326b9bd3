"""How much sign-in work gets through: failure budgets shared by every worker, and password checks off the loop.

Failed sign-ins are counted in SQL (the score store's database, which every worker opens), per (name,
address) and per address across names, and forgotten once older than the window. Password checks
(scrypt) run in worker threads, a few at a time, so bad sign-ins never stall the event loop or take the
cores that scoring needs.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa

from leadradar.serving.store import engine_for

NAME_CHARS = 80
ADDRESS_CHARS = 64
T = TypeVar("T")

METADATA = sa.MetaData()
FAILURES = sa.Table(
    "dashboard_login_failures",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(NAME_CHARS), nullable=False),
    sa.Column("address", sa.String(ADDRESS_CHARS), nullable=False),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Index("ix_dashboard_login_failures_address", "address", "at"),
)


def address_key(address: str) -> str:
    """The address a budget counts by: an IPv6 address by its /64 (one subscriber's share), others as they are."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:ADDRESS_CHARS]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """At most `attempts` failed sign-ins per (name, address) and `address_attempts` per address, within
    `window` seconds; the count lives in SQL so every worker sees the same one."""

    def __init__(
        self,
        url: str,
        attempts: int,
        address_attempts: int,
        window: float,
        clock: Callable[[], float] = time.time,
    ):
        self.engine = engine_for(url)
        METADATA.create_all(self.engine)
        self.attempts, self.address_attempts, self.window, self.clock = attempts, address_attempts, window, clock

    def attempt(self, name: str, address: str) -> bool:
        """Count one attempt as failed until `succeeded` says otherwise; False (and nothing counted) once
        the name or the address has used its budget. Entries older than the window go first."""
        name, address, now = name[:NAME_CHARS], address_key(address), self.clock()
        since = now - self.window
        count = sa.select(sa.func.count()).select_from(FAILURES)
        with self.engine.begin() as conn:
            conn.execute(FAILURES.delete().where(FAILURES.c.at <= since))
            recent = (FAILURES.c.address == address) & (FAILURES.c.at > since)
            if conn.execute(count.where(recent)).scalar_one() >= self.address_attempts:
                return False
            if conn.execute(count.where(recent & (FAILURES.c.name == name))).scalar_one() >= self.attempts:
                return False
            conn.execute(FAILURES.insert().values(name=name, address=address, at=now))
        return True

    def succeeded(self, name: str, address: str) -> None:
        """A right password clears that name's failures from that address (not the address's others)."""
        with self.engine.begin() as conn:
            conn.execute(
                FAILURES.delete().where(
                    (FAILURES.c.name == name[:NAME_CHARS]) & (FAILURES.c.address == address_key(address))
                )
            )

    def size(self) -> int:
        """Failures kept right now (every one younger than the window after the next attempt)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(FAILURES)).scalar_one()


class Busy(Exception):
    """More sign-ins are waiting for a password check than the queue holds."""


class CheckPool:
    """Runs password checks in worker threads, `concurrency` at a time per event loop, `queue` waiting;
    one more is refused with `Busy` at once instead of waiting for minutes."""

    def __init__(self, concurrency: int, queue: int):
        self.concurrency, self.queue = concurrency, queue
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    def _limiter(self) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.concurrency)
        return limiter

    async def run(self, check: Callable[..., T], *args: object) -> T:
        """`check(*args)` in a thread of its own limiter (never the default pool the endpoints share)."""
        limiter = self._limiter()
        if limiter.available_tokens < 1 and limiter.statistics().tasks_waiting >= self.queue:
            raise Busy
        return await anyio.to_thread.run_sync(check, *args, limiter=limiter)
