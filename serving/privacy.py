"""Forgetting a lead and dropping old data everywhere the project keeps it (PIPL: deletion, retention).

`forget_lead` is what `leadradar forget` and `DELETE /v1/leads/{id}` run: the event store's rows
(features/store/forget.py), the score store's batch and live scores and kept timeline, Parquet files under the
data directory that hold the lead, and whatever other stores registered a callback (`register_forgetter`: the
alerts keep their own tables), then one audit row that names the lead by its salted hash only.
`apply_retention` drops what is older than `privacy.retention_days` in both stores and the kept feature tiles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from leadradar.config import Settings
from leadradar.errors import BadValueError
from leadradar.features.atomic import written_whole
from leadradar.features.cutoffs import epoch_us
from leadradar.features.store.event_store import EventStore
from leadradar.features.store.forget import forget_events, purge_before, secure_delete, truncate_log
from leadradar.features.tiles.store import forget_kept, purge_kept_before
from leadradar.serving.alerts.outbox import Outbox
from leadradar.serving.audit import AuditLog
from leadradar.serving.score_feedback import ScoreFeedback
from leadradar.serving.store import FUNNEL_COUNTS, LEAD_EVENTS, LIVE_SCORES, SCORES, ScoreStore

log = logging.getLogger(__name__)

# Other stores' deletion: name → callback(tenant, lead) returning how many rows it deleted.
Forgetter = Callable[[str, str], int]
FORGETTERS: dict[str, Forgetter] = {}


def register_forgetter(name: str, forget: Forgetter) -> None:
    """Have `forget_lead` also call `forget(tenant, lead)` (the alerts' tables, a feedback store, ...)."""
    FORGETTERS[name] = forget


@dataclass(frozen=True)
class ForgetReport:
    """What was deleted, as counts per place; `lead_hash` is how the audit log and the forgotten list name it."""

    tenant_id: str
    lead_hash: str
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


def forget_lead(
    settings: Settings,
    events: EventStore,
    scores: ScoreStore,
    audit: AuditLog,
    tenant: str,
    lead: str,
    actor: str,
) -> ForgetReport:
    """Delete every trace of one lead of one tenant and record the act (by hash) in the audit log.

    The ids are trimmed as the rules trim the events' (a request's " L1 " is the stored "L1"); an empty one is
    refused: it names no lead, and "0 rows deleted" would read as done."""
    tenant, lead = tenant.strip(), lead.strip()
    if not tenant:
        raise BadValueError("the tenant id is empty: name the company the lead belongs to")
    if not lead:
        raise BadValueError("the lead id is empty: name the lead to forget, as its events name it")
    done = forget_events(events, tenant, lead)
    deleted = {f"events.{k}": v for k, v in asdict(done).items() if k != "lead_hash"}
    deleted |= {f"scores.{k}": v for k, v in forget_scores(scores, tenant, lead).items()}
    kept = Path(settings.features.tiles_dir) if settings.features.tiles_dir else None
    deleted["files"] = forget_in_files(settings.data_dir, tenant, lead, skip=kept)
    deleted["feedback"] = ScoreFeedback(settings.score_store_url).forget(tenant, lead)
    deleted["alerts"] = Outbox(settings.score_store_url, settings.alerts.rules).forget(tenant, lead)
    for name, forget in FORGETTERS.items():
        deleted[name] = forget(tenant, lead)
    if kept is not None:  # last: it waits for a build holding the kept tiles, when everything else is deleted
        deleted["kept_features"] = forget_kept(kept, tenant, lead)
    audit.record("deleted", tenant, actor, "lead", f"lead_hash={done.lead_hash}")
    log.info("forgot a lead of %s (hash %s): %d rows", tenant, done.lead_hash[:12], sum(deleted.values()))
    return ForgetReport(tenant, done.lead_hash, deleted)


def forget_scores(store: ScoreStore, tenant: str, lead: str) -> dict[str, int]:
    """Delete a lead's batch scores, live scores and kept events from the score store."""
    out = {}
    with store.engine.begin() as conn:
        secure_delete(conn, True)
        for name, table in (("batch", SCORES), ("live", LIVE_SCORES), ("timeline", LEAD_EVENTS)):
            out[name] = conn.execute(
                table.delete().where(table.c.tenant_id == tenant, table.c.lead_id == lead)
            ).rowcount
        secure_delete(conn, False)
    truncate_log(store.engine)
    return out


def forget_in_files(folder: Path, tenant: str, lead: str, skip: Path | None = None) -> int:
    """Rewrite each Parquet file under `folder` with `tenant_id` and `lead_id` columns without the lead's rows; not
    those under `skip` (kept tiles: `forget_kept` takes the lead out of them with their manifests, under the build's
    lock; taken out here, their manifests would still vouch for its days and a build would read it as absent)."""
    removed = 0
    skipped = skip.resolve() if skip is not None else None
    for path in sorted(folder.rglob("*.parquet")):
        if skipped is not None and skipped in path.resolve().parents:
            continue
        try:
            names = pq.read_schema(path).names
        except (OSError, ValueError):
            continue
        if "tenant_id" not in names or "lead_id" not in names:
            continue
        table = pq.read_table(path)
        frame = table.to_pandas()
        hit = (frame["tenant_id"].astype(str) == tenant) & (frame["lead_id"].astype(str) == lead)
        if hit.any():
            with written_whole(path) as tmp:  # flushed, then renamed over: never half a file, no leftover
                pq.write_table(table.filter(~hit.to_numpy()), tmp)
            removed += int(hit.sum())
    return removed


def apply_retention(
    settings: Settings, events: EventStore, scores: ScoreStore, now: pd.Timestamp | None = None
) -> dict[str, int]:
    """Delete events, quarantined items, scores, alerts and kept feature tiles older than `privacy.retention_days`
    (nothing when None)."""
    days = settings.privacy.retention_days
    if days is None:
        return {}
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now).tz_convert("UTC")
    cutoff = now - pd.Timedelta(days=days)
    out = {f"events.{k}": v for k, v in purge_before(events, cutoff).items()}
    out |= {f"scores.{k}": v for k, v in purge_scores_before(scores, cutoff).items()}
    out["alerts"] = Outbox(settings.score_store_url, settings.alerts.rules).purge_before(cutoff.to_pydatetime())
    if settings.features.tiles_dir:  # kept day tiles and rows: made from the deleted days' events
        out["kept_features"] = purge_kept_before(Path(settings.features.tiles_dir), epoch_us(cutoff))
    return out


def purge_scores_before(store: ScoreStore, cutoff: pd.Timestamp) -> dict[str, int]:
    """Batch runs as of, live scores given, kept events that happened, and funnel counts before `cutoff`."""
    when = cutoff.to_pydatetime().astimezone(UTC)
    out = {}
    with store.engine.begin() as conn:
        secure_delete(conn, True)
        for name, table, column in (
            ("batch", SCORES, SCORES.c.as_of),
            ("live", LIVE_SCORES, LIVE_SCORES.c.scored_at),
            ("timeline", LEAD_EVENTS, LEAD_EVENTS.c.ts),
            ("funnel", FUNNEL_COUNTS, FUNNEL_COUNTS.c.as_of),
        ):
            out[name] = conn.execute(table.delete().where(column < when)).rowcount
        secure_delete(conn, False)
    truncate_log(store.engine)
    return out
