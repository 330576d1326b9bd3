"""Two `promote` (or `rollback`) at once are serialised by the lifecycle ledger's lock: while one holds it the other
waits, and gives up with a one-line error after `lifecycle.promote_wait_seconds`; the alias is not touched."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from leadradar.config import Settings
from leadradar.ledger import Ledger
from leadradar.training.promotion import PROMOTE_LOCK, PromotionError, alias_lock, promote, rollback


def _settings(tmp_path: Path, wait: float) -> Settings:
    return Settings(home=tmp_path, lifecycle={"promote_wait_seconds": wait})


def test_a_promote_or_rollback_while_another_holds_the_lock_gives_up_without_moving_anything(tmp_path: Path):
    settings = _settings(tmp_path, 0.3)
    ledger = Ledger(settings.lifecycle_url)
    held = ledger.acquire(PROMOTE_LOCK, timedelta(minutes=5))
    assert held is not None
    try:
        for move in (lambda: promote(settings), lambda: rollback(settings)):
            with pytest.raises(PromotionError, match="another promotion or rollback is under way"):
                move()
    finally:
        ledger.release(held)
        ledger.close()


def test_a_second_holder_waits_until_the_first_releases_and_never_overlaps(tmp_path: Path):
    settings = _settings(tmp_path, 10.0)
    inside: list[str] = []
    spans: list[tuple[float, float]] = []

    def hold(name: str) -> None:
        with alias_lock(settings):
            start = time.monotonic()
            inside.append(name)
            time.sleep(0.4)
            spans.append((start, time.monotonic()))

    Ledger(settings.lifecycle_url).close()  # its tables exist before two threads race to create them
    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(inside) == ["a", "b"]
    first, second = sorted(spans)
    assert second[0] >= first[1]  # the second began only after the first ended
