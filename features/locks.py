"""A lock per folder, held across processes: two writers of one folder of files would lose one side's work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from leadradar.errors import InputError


@contextlib.contextmanager
def exclusive(folder: Path, name: str) -> Iterator[None]:
    """Wait for, then hold, the lock file `name` in `folder` (created if missing); released on exit or death."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = open(folder / name, "w")  # noqa: SIM115 - held until the lock is released
    except OSError as exc:
        raise InputError(f"{folder}: cannot write here ({exc.strerror}); name a folder this user can write") from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
