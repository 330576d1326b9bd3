"""`leadradar retrain`: train a challenger on the event store up to now, gate it, promote or keep the champion.

One at a time: a lock row in the lifecycle ledger (leadradar/ledger.py) lets one retrain run and tells the others
so. Safe to kill: the challenger is registered only once all of it is logged (training/tracking.py), and a
killed holder's lock is taken over by the next run. Every decision is kept with both models' figures.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.store import EventStore
from leadradar.ledger import Ledger
from leadradar.training.pipeline import train_from_logs
from leadradar.training.promotion import promote

LOCK = "retrain"


@dataclass
class RetrainOutcome:
    outcome: str  # promoted, kept, busy, failed
    summary: str
    trigger: str
    challenger: dict[str, Any] = field(default_factory=dict)
    verdict: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> bool:
        return self.outcome in ("promoted", "kept")


def store_log(settings: Settings, until: pd.Timestamp | None) -> RadarLog:
    """The radar log the event store holds up to `until`, as the service saw it."""
    store = EventStore.open(settings)
    try:
        return RadarLog.from_store(store, until=until)
    finally:
        store.close()


def retrain(
    settings: Settings, now: pd.Timestamp | None = None, trigger: str = "manual", log: RadarLog | None = None
) -> RetrainOutcome:
    """Train on everything known by `now`, run the promotion gate on the challenger's holdout, record the decision.

    Returns `busy` at once when another retrain holds the lock.
    """
    ledger = Ledger(settings.lifecycle_url)
    started = datetime.now(UTC)
    lease = ledger.acquire(LOCK, timedelta(minutes=settings.lifecycle.lock_lease_minutes))
    if lease is None:
        held = ledger.holder(LOCK)
        where = f"pid {held.pid} on {held.host} since {held.acquired_at:%Y-%m-%d %H:%M} UTC" if held else "another run"
        ledger.close()
        return RetrainOutcome("busy", f"another retrain is running ({where}); nothing to do", trigger)
    try:
        until = now if now is not None else pd.Timestamp.now(tz="UTC")
        data = log if log is not None else store_log(settings, until)
        result = train_from_logs(data, settings, until=until)
        verdict = promote(settings, log=data)
        outcome = RetrainOutcome(
            "promoted" if verdict.promoted else "kept",
            f"v{result.model_version}: {verdict.reason}",
            trigger,
            challenger={"version": result.model_version, "run_id": result.run_id, "window": result.window},
            verdict=asdict(verdict),
        )
    except Exception as exc:
        ledger.record(LOCK, "failed", f"{type(exc).__name__}: {exc}"[:500], started, {"trigger": trigger})
        ledger.release(lease)
        ledger.close()
        raise
    ledger.record(LOCK, outcome.outcome, outcome.summary, started, asdict(outcome))
    ledger.release(lease)
    ledger.close()
    return outcome
