"""What the promotion gate decided, and every rollback, recorded where the models are: as tags on the model
versions concerned and as an MLflow run of its own, so any change of champion can be audited later.

Tags on a version (`gate.*` on the challenger judged, `rollback.*` on the versions a rollback moves) answer
"why is this the champion?" from the registry alone; the run keeps the figures as metrics and the whole
verdict as `verdict.json`, searchable by `tags.kind = 'promotion'` or `'rollback'`.
"""

from __future__ import annotations

import getpass
import socket
from datetime import UTC, datetime
from typing import Any

import mlflow
from mlflow import MlflowClient

from leadradar.registry import ModelRef

# The figures of both models a verdict keeps as tags (all of them go to the run's metrics).
TAGGED_METRICS = ("logloss", "auc", "pr_auc", "brier", "ece", "lift_top10")
MAX_TAG = 5000


def who() -> str:
    """The person (login and machine) behind a promotion or rollback from this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _set_tags(client: MlflowClient, name: str, version: str, tags: dict[str, Any]) -> None:
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value)[:MAX_TAG])


def verdict_tags(verdict: dict[str, Any]) -> dict[str, str]:
    """The `gate.*` tags of one verdict (a `promotion.Verdict` as a dict)."""
    holdout = verdict.get("holdout") or {}
    tags = {
        "gate.verdict": "forced" if verdict["forced"] else "promoted" if verdict["promoted"] else "refused",
        "gate.reason": verdict["reason"],
        "gate.by": verdict["by"],
        "gate.why": verdict.get("why") or "",
        "gate.at": verdict["at"],
        "gate.champion_version": (verdict.get("champion") or {}).get("version", ""),
        **{f"gate.holdout_{k}": v for k, v in holdout.items()},
    }
    for role in ("challenger", "champion"):
        figures = verdict.get(f"{role}_metrics") or {}
        tags |= {f"gate.{role}.{k}": f"{figures[k]:.6g}" for k in TAGGED_METRICS if k in figures}
    return {k: str(v) for k, v in tags.items()}


def record_verdict(client: MlflowClient, verdict: dict[str, Any]) -> str:
    """Tag the judged challenger with the verdict and log it as a `promotion` run; returns the run id."""
    challenger = verdict["challenger"]
    tags = verdict_tags(verdict)
    _set_tags(client, challenger["name"], challenger["version"], tags)
    with mlflow.start_run(run_name=f"promotion v{challenger['version']}") as run:
        mlflow.set_tags(
            {
                "kind": "promotion",
                "model_name": challenger["name"],
                "challenger_version": challenger["version"],
                **{k: v[:MAX_TAG] for k, v in tags.items()},
            }
        )
        for role in ("challenger", "champion"):
            figures = verdict.get(f"{role}_metrics") or {}
            mlflow.log_metrics({f"{role}_{k}": float(v) for k, v in figures.items()})
        mlflow.log_dict(verdict, "verdict.json")
    return run.info.run_id


def record_rollback(
    client: MlflowClient, restored: ModelRef, replaced: ModelRef, by: str, why: str | None
) -> dict[str, str]:
    """Tag both versions a rollback moved and log it as a `rollback` run; returns what was recorded."""
    record = {
        "rollback.at": now(),
        "rollback.by": by,
        "rollback.why": why or "",
        "rollback.restored_version": restored.version,
        "rollback.replaced_version": replaced.version,
    }
    _set_tags(client, restored.name, restored.version, record)
    _set_tags(client, replaced.name, replaced.version, record)
    with mlflow.start_run(run_name=f"rollback v{replaced.version} → v{restored.version}"):
        mlflow.set_tags({"kind": "rollback", "model_name": restored.name, **record})
    return record
