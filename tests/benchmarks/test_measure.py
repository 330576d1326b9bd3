"""The benchmarks' measuring of a fresh process (benchmarks/common.py `measure`)."""

from __future__ import annotations

from benchmarks.common import measure


def test_a_workers_peak_is_its_own_and_not_the_memory_its_parent_held_when_it_started_it():
    """Linux carries a forked copy's high-water mark over the exec: the kernel's figure for the worker was at least
    what the parent held (5,258 MB in every run of a benchmark that had ingested 10 M events itself)."""
    held = bytearray(600 * 2**20)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))
    small = measure("benchmarks.common:cpu_model")
    big = measure("tests.benchmarks.test_measure:hold", {"mb": 300})
    assert small.ok and big.ok, (small.error, big.error)
    assert small.peak_rss_mb < 300 <= big.peak_rss_mb < 600
    del held


def hold(mb: int) -> dict:
    data = bytearray(mb * 2**20)
    data[::4096] = b"\x01" * len(range(0, len(data), 4096))
    return {"held": len(data)}
