"""`leadradar models`: the champion and the challenger side by side, from the registry and their runs.

What someone deciding on a promotion needs at a glance: version, when and on what window each trained,
test figures, where its LightGBM parameters came from, and what the gate last said about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.registry import CHALLENGER, CHAMPION, configure_mlflow, version_for_alias

SHOWN_METRICS = ("auc", "logloss", "ece", "brier", "lift_top10")


@dataclass
class Entry:
    alias: str
    version: str
    run_id: str
    registered: str
    window: dict[str, str]
    metrics: dict[str, float]
    params_source: str
    gate: dict[str, str] = field(default_factory=dict)
    rollback: dict[str, str] = field(default_factory=dict)


def lineup(settings: Settings) -> list[Entry]:
    """The versions behind `champion` and `challenger` (an alias not set is left out)."""
    configure_mlflow(settings)
    client = MlflowClient()
    name = settings.mlflow.model_name
    entries = []
    for alias in (CHAMPION, CHALLENGER):
        ref = version_for_alias(client, name, alias)
        if ref is None:
            continue
        mv = client.get_model_version(name, ref.version)
        run = client.get_run(ref.run_id)
        tags, run_tags = dict(mv.tags), run.data.tags
        entries.append(
            Entry(
                alias=alias,
                version=ref.version,
                run_id=ref.run_id,
                registered=_iso(mv.creation_timestamp) if mv.creation_timestamp else "",
                window=_window(run_tags, tags),
                metrics={
                    k: run.data.metrics[m] for k in SHOWN_METRICS for m in (f"test_{k}",) if m in run.data.metrics
                },
                params_source=run_tags.get("params_source", "defaults"),
                gate={k.removeprefix("gate."): v for k, v in tags.items() if k.startswith("gate.")},
                rollback={k.removeprefix("rollback."): v for k, v in tags.items() if k.startswith("rollback.")},
            )
        )
    return entries


def _window(run_tags: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """What a version trained on: its cutoffs, or for a table model (`train --table`) how the table was split."""
    window = {k.removeprefix("window."): v for k, v in {**run_tags, **tags}.items() if k.startswith("window.")}
    if run_tags.get("data.kind") == "table":
        window["split"] = run_tags.get("split.kind", "")
    return window


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")
