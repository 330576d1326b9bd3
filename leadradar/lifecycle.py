"""The lifecycle jobs wired together: retrain (training/), drift and matured calibration (serving/), on a schedule.

Training and serving do not import each other, so the jobs meet here, beside the command line: a drift check
that calls for a retrain runs it (at most once per `lifecycle.drift_retrain_every_hours`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog, read_parquet_part
from leadradar.features.store import EventStore
from leadradar.ledger import Ledger
from leadradar.registry import load_alias
from leadradar.serving.alerts.drift_notice import notify_drift
from leadradar.serving.drift import drift_table, drift_windows, retrain_reason
from leadradar.serving.matured import matured_week
from leadradar.serving.privacy import apply_retention
from leadradar.serving.schedule import Job, JobResult, LifecycleScheduler
from leadradar.serving.store import ScoreStore
from leadradar.training.retrain import RetrainOutcome, retrain, store_log

logger = logging.getLogger(__name__)


def retrain_job(settings: Settings, trigger: str = "schedule", now: pd.Timestamp | None = None) -> RetrainOutcome:
    """One retrain; it keeps its own record in the ledger."""
    return retrain(settings, now=now, trigger=trigger)


def drift_check(settings: Settings, now: pd.Timestamp | None = None, log: RadarLog | None = None) -> JobResult:
    """The champion's drift per tenant; a retrain when it calls for one and none ran for drift lately."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    log = log if log is not None else store_log(settings, now)
    champion = load_alias(settings)
    windows = drift_windows(log, champion.model, settings, now)
    table = drift_table(windows.reference, windows.current, windows.columns, settings)
    why = retrain_reason(table, settings)
    drifted = table[table["drifted"]] if not table.empty else table
    detail = {
        "model_version": champion.ref.version,
        "drift_days": settings.lifecycle.drift_days,
        "table": table.to_dict("records"),
        "retrain": None,
    }
    if why is None:
        summary = f"no drift calling for a retrain ({len(drifted)} drifted columns)"
        return JobResult("ok", summary, detail)
    if recently_retrained_for_drift(settings, now):
        detail["retrain"] = "rate-limited"
        detail["notices"] = notify(settings, table, champion.ref.version, now, "rate-limited: one ran lately")
        return JobResult("drift", f"{why}; a drift retrain ran within the last hours, not again yet", detail)
    outcome = retrain(settings, now=now, trigger=f"drift: {why}", log=log)
    detail["retrain"] = asdict(outcome)
    detail["notices"] = notify(settings, table, champion.ref.version, now, f"{outcome.outcome} ({outcome.summary})")
    return JobResult("drift", f"{why}; retrain: {outcome.outcome} ({outcome.summary})", detail)


def notify(settings: Settings, table: pd.DataFrame, version: str, now: pd.Timestamp, retrain: str) -> list[int]:
    """The managers' drift notices through the alert outbox; a failing outbox must not fail the drift check."""
    try:
        return notify_drift(settings, table, str(version), now.to_pydatetime(), retrain)
    except Exception:
        logger.exception("storing the drift notices failed")
        return []


def recently_retrained_for_drift(settings: Settings, now: pd.Timestamp) -> bool:
    ledger = Ledger(settings.lifecycle_url)
    try:
        since = now.to_pydatetime() - timedelta(hours=settings.lifecycle.drift_retrain_every_hours)
        return any(
            str(r.detail.get("trigger", "")).startswith("drift") and r.started_at >= since
            for r in ledger.runs("retrain", limit=50)
        )
    finally:
        ledger.close()


def calibration_check(settings: Settings, now: pd.Timestamp | None = None, log: RadarLog | None = None) -> JobResult:
    """The week of scores given one horizon ago against the closes since; flagged above the error threshold."""
    now = now if now is not None else pd.Timestamp.now(tz="UTC")
    log = log if log is not None else store_log(settings, now)
    stages = log.stages
    if isinstance(stages, pd.DataFrame):
        frame = stages
    elif isinstance(stages, pa.Table):
        frame = stages.to_pandas()
    else:
        frame = read_parquet_part(Path(stages), "stages").to_pandas()
    tenants = sorted(frame["tenant_id"].astype(str).unique())
    store = ScoreStore(settings.score_store_url)
    bands, errors = matured_week(store, frame, tenants, now, settings)
    if errors.empty:
        return JobResult("ok", "no scores have matured yet (none given one horizon ago)", {})
    flagged = errors[errors["flagged"]]
    detail = {"bands": bands.to_dict("records"), "errors": errors.to_dict("records")}
    if flagged.empty:
        return JobResult(
            "ok", f"realised calibration error within {settings.lifecycle.calibration_error_threshold}", detail
        )
    worst = flagged.sort_values("ece").iloc[-1]
    return JobResult("flagged", f"realised calibration error {worst['ece']:.3f} for {worst['tenant_id']}", detail)


def retention_job(settings: Settings, now: pd.Timestamp | None = None) -> JobResult:
    """Delete what is older than `privacy.retention_days` from the event and score stores."""
    store = EventStore.open(settings)
    try:
        deleted = apply_retention(settings, store, ScoreStore(settings.score_store_url), now)
    finally:
        store.close()
    summary = f"kept the last {settings.privacy.retention_days} days: {sum(deleted.values())} rows deleted"
    return JobResult("ok", summary, deleted)


def scheduler_for(settings: Settings, blocking: bool = True) -> LifecycleScheduler:
    """The lifecycle jobs on their cron lines (retention only when `privacy.retention_days` is set)."""
    lc = settings.lifecycle

    def weekly() -> None:
        retrain_job(settings)

    jobs = [
        Job("retrain", lc.retrain_cron, weekly),
        Job("drift", lc.drift_cron, lambda: drift_check(settings)),
        Job("calibration", lc.calibration_cron, lambda: calibration_check(settings)),
    ]
    if settings.privacy.retention_days is not None:
        jobs.append(Job("retention", settings.privacy.retention_cron, lambda: retention_job(settings)))
    return LifecycleScheduler(settings, jobs, blocking=blocking)
