"""What the dashboard, report and rank tests share: the batch run's activity, manager accounts, lead ids."""

from __future__ import annotations

import re

from leadradar.config import Settings
from leadradar.serving.activity import BatchActivity, batch_activity
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore

LEAD_ID = re.compile(r"\bt0\d-L\d+\b")
PASSWORD = "tests-only password 1"
_ACTIVITY: dict[str, BatchActivity] = {}


def session_activity(settings: Settings, small_sim, scored) -> BatchActivity:
    """Recent events and funnel counts of the session's latest run, kept in the session store (once)."""
    key = str(settings.data_dir)
    if key not in _ACTIVITY:
        activity = batch_activity(small_sim.events, small_sim.stages, scored.scores, scored.as_of, settings)
        store = ScoreStore(settings.score_store_url)
        store.write_events(activity.events, activity.as_of)
        store.write_funnel(activity.funnel)
        _ACTIVITY[key] = activity
    return _ACTIVITY[key]


def manager(settings: Settings, tenant: str) -> tuple[str, str]:
    """A dashboard account of `tenant` (created on first use): (user name, password)."""
    users = UserStore(settings.score_store_url)
    name = f"boss-{tenant}"
    if users.get(name) is None:
        users.create(tenant, name, PASSWORD)
    return name, PASSWORD


def lead_ids_in(text: str) -> set[str]:
    """Every simulated lead id a page or file shows."""
    return set(LEAD_ID.findall(text))
