"""A store's fault told apart from our bug: a database out of reach is a 503 with `Retry-After`, a full disk a 507.

Neither is the request's fault, and neither left anything of it behind (a store answers only after its
transaction commits), so the client sends the same request again later; re-sent events count as duplicates.
"""

from __future__ import annotations

import errno
import sqlite3

import sqlalchemy as sa

DISK_FULL_WORDS = ("database or disk is full", "no space left on device")


def store_fault(exc: BaseException, retry_after: int) -> tuple[int, str] | None:
    """The status and message for a store that failed under a request (507 disk full, 503 unreachable); None for
    anything else, which is our bug."""
    if disk_full(exc):
        return 507, "the store's disk is full: nothing of this request was stored; send it again once space is freed"
    if unreachable(exc):
        return 503, f"a store's database is out of reach: nothing of this request was stored; retry in {retry_after} s"
    return None


def disk_full(exc: BaseException) -> bool:
    """SQLite's SQLITE_FULL (wrapped by SQLAlchemy or raw from the driver's executemany), PostgreSQL's disk full,
    or ENOSPC from a file write, anywhere in the chain of causes."""
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            return True
        said = str(link.orig if isinstance(link, sa.exc.DBAPIError) else link).lower()
        if isinstance(link, (sa.exc.DBAPIError, sqlite3.Error)) and any(w in said for w in DISK_FULL_WORDS):
            return True
    return False


def unreachable(exc: BaseException) -> bool:
    """A database connection refused, lost or not yet accepting (a restart), as SQLAlchemy reports it."""
    return any(
        isinstance(link, (sa.exc.OperationalError, sa.exc.InterfaceError, sqlite3.OperationalError))
        or (isinstance(link, sa.exc.DBAPIError) and link.connection_invalidated)
        for link in _chain(exc)
    )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in seen and len(seen) < 10:
        seen.append(link)
        link = link.__cause__ or link.__context__
    return seen
