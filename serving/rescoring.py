"""Scores that follow the events: a thread in the service rescores each lead whose events landed.

It follows the event store by log position (`moves_since`), from the position kept in the score store by the
last run (serving/positions.py: a restart after `kill -9` rescores what landed meanwhile; the log's end on a
first start), checking it every `serving.rescore_poll_seconds`. Each tick rescores every lead with new events
once, however many events it got, unless that lead was rescored less than `serving.rescore_interval_seconds`
ago (then it waits for a later tick): coalescing, at most one rescoring per lead per interval, while a
lead quiet until now is rescored at once. Its features come from its stored history as of now by the
online query a scoring request uses; the model served scores them; the scores are appended to the score
store with the newest event that moved each lead. A burst makes ticks longer, so scores fall behind and
catch up; nothing is skipped. Started and stopped by the service's lifecycle hooks (serving/service.py),
like the champion poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import pandas as pd
import pyarrow as pa

from leadradar.config import Settings
from leadradar.features.build import finish, lead_schema
from leadradar.features.consent import consented_leads, split_consent
from leadradar.features.store.event_store import EventStore, Moved
from leadradar.serving.engine import Engine
from leadradar.serving.positions import Positions
from leadradar.serving.scoring import score_frame
from leadradar.serving.store import ScoreStore

log = logging.getLogger(__name__)


def rescoring_worker(settings: Settings, worker_index: int | None) -> bool:
    """Whether this service process rescores: `serving.rescore` on, and only its first worker
    (every process that rescores would rescore every lead)."""
    return settings.serving.rescore and worker_index in (None, 1)  # BentoML counts workers from 1


class Rescorer:
    """Follows the event store and keeps live scores; `tick()` is one pass, `start()` runs passes in a thread."""

    def __init__(
        self,
        settings: Settings,
        events: EventStore,
        scores: ScoreStore,
        engine: Callable[[], Engine | None],
        since: int | None = None,
        positions: Positions | None = None,
        after: Callable[[list[tuple[str, str]], pd.Timestamp], object] | None = None,
    ):
        self.settings = settings
        self.events = events
        self.scores = scores
        self.engine = engine
        self.after = after  # alerting (serving/alerts/live.py): told the leads each tick rescored
        self.interval = settings.serving.rescore_interval_seconds
        self.poll = settings.serving.rescore_poll_seconds
        self.positions = positions
        self.seq = self._resume() if since is None else since
        self.saved: int | None = None  # the first tick keeps its position, so a kill right after start loses nothing
        # Leads whose latest rescoring found no consent (privacy.consent_required): they raise no alert.
        self.unconsented: set[tuple[str, str]] = set()
        # Leads with events not yet in a score (their newest event), and when each lead was last rescored.
        self.pending: dict[tuple[str, str], Moved] = {}
        self._from: dict[tuple[str, str], int] = {}  # the log position before each pending lead's first event
        self._last: dict[tuple[str, str], pd.Timestamp] = {}
        self.rescored = 0
        self.ticks = 0
        self.problem: str | None = None
        self._catalog: dict[str, tuple[float, pd.DataFrame | None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rescoring", daemon=True)
        self._thread.start()
        log.info("rescoring leads as their events land, from log position %d", self.seq)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread after the tick under way, so no half-written batch is left behind."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("the rescoring thread did not end within %.0f s", timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
                self.problem = None
            except Exception as exc:  # a database that went away: keep the position, try again next tick
                self.problem = f"rescoring failed at log position {self.seq}: {exc}"
                log.exception("rescoring failed at log position %d; retrying", self.seq)
            self._stop.wait(max(0.0, self.poll - (time.monotonic() - started)))

    # -- one pass ---------------------------------------------------------------------------------

    def tick(self, now: pd.Timestamp | None = None) -> int:
        """Rescore, as of `now`, every lead with events stored since its last rescoring that was not rescored
        within `interval` of `now` (the others wait for a later pass); how many scores were written.

        Without a model to score with, the position stays, so those leads are rescored once one is served.
        """
        engine = self.engine()
        if engine is None:
            return 0
        when = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
        end = self.events.last_seq()  # the whole log stored before this pass: each lead that moved in it once
        while self.seq < end:
            upto, moved = self.events.moves_since(self.seq, self.settings.serving.rescore_read_events)
            if upto <= self.seq:
                break
            for m in moved:
                self.pending[m.tenant_id, m.lead_id] = m
                self._from.setdefault((m.tenant_id, m.lead_id), self.seq)
            self.seq = upto
        gap = pd.Timedelta(seconds=self.interval)
        self._last = {k: t for k, t in self._last.items() if when - t < gap}
        by_tenant: dict[str, list[Moved]] = {}
        for key, m in self.pending.items():
            if key not in self._last:
                by_tenant.setdefault(m.tenant_id, []).append(m)
        size = self.settings.serving.rescore_batch_leads
        written = 0
        for tenant, moves in by_tenant.items():
            for start in range(0, len(moves), size):
                batch = moves[start : start + size]
                written += self.rescore(engine, tenant, batch, when)
                for m in batch:
                    del self.pending[m.tenant_id, m.lead_id]
                    self._from.pop((m.tenant_id, m.lead_id), None)
                    self._last[m.tenant_id, m.lead_id] = when
        if self.after is not None:
            moved_keys = [key for moves in by_tenant.values() for key in ((m.tenant_id, m.lead_id) for m in moves)]
            self.after([key for key in moved_keys if key not in self.unconsented], when)
        self.ticks += 1
        self.rescored += written
        self._save()
        return written

    def _resume(self) -> int:
        """Where the last run stopped (every lead before it rescored), or the log's end when none was kept."""
        last = self.events.last_seq()
        kept = self.positions.get() if self.positions is not None else None
        return last if kept is None else min(kept, last)

    def _save(self) -> None:
        """Keep the position before the oldest lead still waiting, when it moved."""
        safe = min(self._from.values(), default=self.seq)
        if self.positions is not None and safe != self.saved:
            self.positions.put(safe)
            self.saved = safe

    def rescore(self, engine: Engine, tenant: str, moves: Sequence[Moved], now: pd.Timestamp) -> int:
        """Score these leads of one tenant from their stored history as of `now` and append the scores.

        A lead that is no longer open (won or lost) gets no live score: its last one stays its history.
        """
        leads = [m.lead_id for m in moves]
        stages = self.events.stages(tenant, leads=leads, until=now)
        if engine.tiles is not None and not self.settings.privacy.consent_required:
            # From the kept histories: consent is not required, so every lead consents.
            self.unconsented.difference_update((tenant, lead) for lead in leads)
            records = engine.stored_records(stages, leads, tenant, now.to_pydatetime(), self._attributes(tenant, leads))
        else:
            events = self.events.events(tenant, leads=leads, until=now)
            consenting = consented_leads(split_consent(events, self.settings)[1], tenant, leads, now, self.settings)
            for lead in leads:  # no alert for a lead without consent (privacy.consent_required)
                if consenting is None or lead in consenting:
                    self.unconsented.discard((tenant, lead))
                else:
                    self.unconsented.add((tenant, lead))
            attributes = self._attributes(tenant, leads)
            records = engine.feature_records(events, stages, tenant, now.to_pydatetime(), attributes)
        if not records:
            return 0
        features = finish(pd.DataFrame.from_records(records))
        serving = self.settings.serving
        scored = score_frame(
            features,
            engine.loaded,
            list(self.settings.funnel.open_stages),
            engine.explainer,
            serving.reasons_for,
            serving.reasons_against,
            serving=serving,
            hide=serving.hidden_reason_families,
        )
        by_lead = {m.lead_id: m for m in moves}
        scored["scored_at"] = now  # the instant its features are as of: a score given then, never rewritten
        scored["grade"] = scored["p_close"].map(serving.grade)
        scored["moved_by"] = scored["lead_id"].map(lambda lead: by_lead[lead].event_id)
        scored["moved_at"] = scored["lead_id"].map(lambda lead: by_lead[lead].ts)
        return self.scores.write_live(scored)

    def _attributes(self, tenant: str, leads: list[str]) -> pa.Table | None:
        """The leads' CRM attributes from the store's catalogue (read again at most every context_cache_seconds)."""
        names = list(self.settings.features.lead_attributes)
        if not names:
            return None
        hit = self._catalog.get(tenant)
        if hit is None or time.monotonic() - hit[0] > self.settings.serving.context_cache_seconds:
            hit = (time.monotonic(), self.events.catalog("leads", tenant))
            self._catalog[tenant] = hit
        catalog = hit[1]
        if catalog is None or catalog.empty:
            return None
        rows = catalog[catalog["lead_id"].astype(str).isin(leads)]
        if rows.empty:
            return None
        schema = lead_schema(self.settings)
        columns = {
            n: [None if pd.isna(v) else str(v) for v in rows[n]] if n in rows else [None] * len(rows)
            for n in schema.names
        }
        return pa.Table.from_pydict(columns, schema=schema)

    def status(self) -> dict:
        return {
            "running": self.running,
            "position": self.seq,
            "ticks": self.ticks,
            "rescored": self.rescored,
            "pending": len(self.pending),
            "every_s": self.interval,
            "problem": self.problem,
        }
