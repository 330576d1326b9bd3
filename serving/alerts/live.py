"""Alerting beside rescoring: after each rescoring tick, the leads it rescored are watched until their session
settles (`session_quiet_minutes` with no new rescoring), then judged by the rules, restrained, and stored in the
outbox, from where the delivery worker sends them. The rules and restraint are the ones `alerts simulate` replays.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta

import pandas as pd

from leadradar.config import Settings
from leadradar.features.consent import consenting_in_store
from leadradar.features.store.event_store import EventStore
from leadradar.serving.alerts.outbox import Outbox, Target
from leadradar.serving.alerts.restraint import decide
from leadradar.serving.alerts.rules import evaluate
from leadradar.serving.store import ScoreStore

log = logging.getLogger(__name__)


class Alerter:
    """`targets(tenant, sales_id)` names where an instant alert of that salesperson goes."""

    def __init__(
        self,
        settings: Settings,
        events: EventStore,
        scores: ScoreStore,
        outbox: Outbox,
        targets: Callable[[str, str], list[Target]],
    ):
        self.settings = settings
        self.rules = settings.alerts.rules
        self.events = events
        self.scores = scores
        self.outbox = outbox
        self.targets = targets
        self.watching: dict[tuple[str, str], pd.Timestamp] = {}
        self.found = 0
        self._pricing: dict[str, tuple[float, frozenset[str]]] = {}

    def after_rescoring(self, leads: Iterable[tuple[str, str]], now: pd.Timestamp) -> int:
        """Watch the leads just rescored; judge those whose session settled by `now`. How many alerts were stored."""
        for key in leads:
            self.watching[key] = now
        quiet = pd.Timedelta(minutes=self.rules.session_quiet_minutes)
        ready = [key for key, at in self.watching.items() if now - at >= quiet]
        if not ready:
            return 0
        by_tenant: dict[str, list[str]] = {}
        for tenant, lead in ready:
            by_tenant.setdefault(tenant, []).append(lead)
            del self.watching[tenant, lead]
        stored = 0
        for tenant, leads_ in by_tenant.items():
            try:
                stored += self.judge(tenant, leads_, now)
            except Exception:  # a failing alert path must not stop rescoring; those leads wait for their next session
                log.exception("alerting failed for %d leads of tenant %s", len(leads_), tenant)
        self.found += stored
        return stored

    def judge(self, tenant: str, leads: list[str], now: pd.Timestamp) -> int:
        """Rules, restraint and the outbox for these leads of one tenant, as of `now`."""
        rules = self.rules
        since = now - pd.Timedelta(hours=rules.stale_hours)
        consenting = consenting_in_store(self.events, tenant, leads, now, self.settings)
        if consenting is not None:  # consent withdrawn while the session settled: no alert either
            leads = [lead for lead in leads if lead in consenting]
            if not leads:
                return 0
        events = self.events.events(tenant, leads=leads, until=now).to_pandas()
        found = []
        for lead, mine in events.groupby("lead_id", sort=False):
            history = self.scores.score_history(tenant, str(lead), grade=self.settings.serving.grade)
            found += evaluate(
                tenant,
                str(lead),
                history,
                mine,
                now,
                rules,
                two_way=self.settings.events.two_way_contact,
                pricing_items=self.pricing(tenant),
                since=since,
            )
        known = self.outbox.known([a.dedup_key for a in found])
        found = [a for a in found if a.dedup_key not in known]
        if not found:
            return 0
        at = now.to_pydatetime()
        before = self.outbox.decided_since(tenant, at - timedelta(hours=max(rules.cooldown_hours, 48.0)))
        decided = decide(found, at, before, rules, self.settings.lifecycle.timezone)
        return len(self.outbox.record(decided, lambda a: self.targets(a.tenant_id, a.sales_id), at))

    def pricing(self, tenant: str) -> frozenset[str]:
        """The tenant's pricing-page item ids (read again at most every context_cache_seconds)."""
        hit = self._pricing.get(tenant)
        if hit is None or time.monotonic() - hit[0] > self.settings.serving.context_cache_seconds:
            catalog = self.events.catalog("items", tenant)
            ids: frozenset[str] = frozenset()
            if catalog is not None and {"item_id", "category"} <= set(catalog.columns):
                pricing = list(self.settings.features.pricing_categories)
                ids = frozenset(catalog.loc[catalog["category"].isin(pricing), "item_id"].astype(str))
            hit = (time.monotonic(), ids)
            self._pricing[tenant] = hit
        return hit[1]
