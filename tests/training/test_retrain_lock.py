"""The retrain lock: one holder at a time, taken over from a dead or expired holder."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from leadradar.ledger import Ledger


def test_a_second_holder_is_refused_while_the_first_lives_and_gets_it_after_release(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    first, second = Ledger(url), Ledger(url)
    lease = first.acquire("retrain", timedelta(hours=1))
    assert lease is not None
    assert second.acquire("retrain", timedelta(hours=1)) is None
    first.release(lease)
    assert second.acquire("retrain", timedelta(hours=1)) is not None


def test_a_lock_whose_holder_died_on_this_host_is_taken_over_at_once(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    code = (
        "from datetime import timedelta; from leadradar.ledger import Ledger; "
        f"Ledger({url!r}).acquire('retrain', timedelta(hours=4))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    held = Ledger(url).holder("retrain")
    assert held is not None and held.expires_at > datetime.now(UTC)
    assert Ledger(url).acquire("retrain", timedelta(hours=1)) is not None


def test_an_expired_lease_is_taken_over_even_from_another_host(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    old = ledger.acquire("retrain", timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1))
    assert old is not None
    with ledger.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE lifecycle_locks SET host = 'elsewhere'")
    assert ledger.acquire("retrain", timedelta(minutes=5)) is not None
