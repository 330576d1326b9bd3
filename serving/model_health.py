"""What the lifecycle ledger says about the served model: its schedule (last and next runs, their outcomes),
the retrain history, and the latest drift and matured-calibration checks. `/v1/model` and the health page read it.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from leadradar.config import Settings
from leadradar.ledger import JobRun, Ledger


def _run(run: JobRun | None, tenant_id: str | None = None) -> dict[str, Any] | None:
    if run is None:
        return None
    out = asdict(run)
    if tenant_id is not None:
        for key in ("table", "bands", "errors"):
            if isinstance(out["detail"].get(key), list):
                out["detail"][key] = [r for r in out["detail"][key] if r.get("tenant_id") in (tenant_id, "*")]
    return out


def lifecycle_status(
    settings: Settings, tenant_id: str | None = None, history: int | None = None, ledger: Ledger | None = None
) -> dict[str, Any]:
    """The schedule, the retrain history (newest first) and the last drift and calibration runs, for one tenant.
    A caller that asks often passes the ledger it holds: opening one costs an engine and a check of its tables."""
    held = ledger is not None
    ledger = ledger if ledger is not None else Ledger(settings.lifecycle_url)
    try:
        last_drift = ledger.runs("drift", limit=1)
        last_calibration = ledger.runs("calibration", limit=1)
        return {
            "scheduler": settings.lifecycle.scheduler,
            "timezone": settings.lifecycle.timezone,
            "schedule": [
                {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                for row in ledger.schedule()
            ],
            "retrains": [
                {
                    "finished_at": r.finished_at.isoformat(),
                    "outcome": r.outcome,
                    "summary": r.summary,
                    "trigger": r.detail.get("trigger"),
                    "verdict": r.detail.get("verdict") or {},
                }
                for r in ledger.runs("retrain", limit=history or settings.lifecycle.history_rows)
            ],
            "drift": _run(last_drift[0] if last_drift else None, tenant_id),
            "calibration": _run(last_calibration[0] if last_calibration else None, tenant_id),
        }
    finally:
        if not held:
            ledger.close()


def model_lifecycle(settings: Settings, history: int = 5, ledger: Ledger | None = None) -> dict[str, Any]:
    """For `/v1/model`: the schedule with last and next runs, and the last retrain decisions (no tenant's tables)."""
    status = lifecycle_status(settings, history=history, ledger=ledger)
    for retrain in status["retrains"]:
        verdict = retrain.pop("verdict")
        retrain["challenger_metrics"] = verdict.get("challenger_metrics", {})
        retrain["champion_metrics"] = verdict.get("champion_metrics", {})
    return {k: status[k] for k in ("scheduler", "timezone", "schedule", "retrains")}


class HeldLedger:
    """The lifecycle ledger a service reads at each `/v1/model`: opened at first use and then kept (opening one
    costs an engine and a check of its tables). One out of reach at that use is tried again at the next, so the
    service starts without it, as it did when each request opened its own."""

    def __init__(self, url: str):
        self.url = url
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def get(self) -> Ledger:
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.url)
            return self._ledger

    def close(self) -> None:
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
