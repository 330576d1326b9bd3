"""A small tmpfs, mounted by the test that fills it (root only, as CI runs), so a full disk is real, not mocked."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    """`where` as a tmpfs of `size` (mount's notation: 1m, 300k) for the block; skips the test where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("mounting the small tmpfs this test fills needs root (CI runs as root)")
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def grow(disk: Path, size: str) -> None:
    """The mounted tmpfs made `size`, its files kept: space freed under a command that found the disk full."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True, capture_output=True)
