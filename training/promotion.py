"""The promotion gate: the challenger becomes champion only if it beats it on the same, latest holdout.

Both models are scored on the challenger's own test period (the most recent labelled cutoffs),
rebuilt from the data sources its run recorded. The challenger must have a lower log loss and an
AUC no more than `training.promotion_auc_tolerance` below the champion's. A version refit on all
labelled rows has seen that period, so the gate scores the backtest model kept in its bundle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.features.radar_log import RadarLog
from leadradar.registry import (
    CHALLENGER,
    CHAMPION,
    ModelRef,
    configure_mlflow,
    crown,
    load_version,
    uncrown,
    version_for_alias,
)
from leadradar.targets import Targets
from leadradar.training.metrics import classification_metrics


@dataclass
class Verdict:
    promoted: bool
    reason: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=float, ensure_ascii=False)


class PromotionError(UserError, RuntimeError):
    """Nothing to promote, or the holdout cannot be rebuilt."""


def beats(challenger: dict[str, float], champion: dict[str, float], auc_tolerance: float) -> tuple[bool, str]:
    """The gate's rule, on the same rows: lower log loss, and AUC not lower by more than the tolerance."""
    ll_c, ll_k = challenger["logloss"], champion["logloss"]
    auc_c, auc_k = challenger["auc"], champion["auc"]
    if not ll_c < ll_k:
        return False, f"log loss {ll_c:.5f} is not lower than the champion's {ll_k:.5f}"
    if auc_c < auc_k - auc_tolerance:
        return False, f"AUC {auc_c:.4f} is more than {auc_tolerance} below the champion's {auc_k:.4f}"
    return True, f"log loss {ll_c:.5f} < {ll_k:.5f} and AUC {auc_c:.4f} vs {auc_k:.4f} (tolerance {auc_tolerance})"


def holdout_for(
    settings: Settings, run_tags: dict[str, str], run_params: dict[str, str], log: RadarLog | None = None
) -> tuple[pd.DataFrame, str]:
    """The challenger's test rows with their label column, rebuilt from the sources its run recorded
    (or from `log`, the radar log it was just trained on: `leadradar retrain` reads the event store)."""
    kind = run_tags.get("data.kind", "logs")
    if kind == "table":
        from leadradar.training.table import table_holdout

        return table_holdout(run_tags, settings)
    from leadradar.features.trainset import build_training_set

    paths = {k: run_tags.get(f"data.{k}") for k in ("events", "stages", "items", "leads")}
    readable = bool(paths["events"] and paths["stages"] and Path(str(paths["events"])).exists())
    if log is None and not readable:
        raise PromotionError(
            f"the challenger's run does not name readable data sources (events: {paths['events']});"
            " train the challenger again on data that is still there"
        )
    first, last = pd.Timestamp(run_tags["split.test_from"]), pd.Timestamp(run_tags["split.test_to"])
    until = pd.Timestamp(run_tags["window.data_until"])
    if log is None:
        log = RadarLog(paths["events"], paths["stages"], items=paths["items"], leads=paths["leads"])
    ts = build_training_set(log, settings, until=until, cutoff_range=(first, last))
    label = Targets.from_settings(settings).main_label
    frame = ts.frame[ts.frame[label].notna()]
    return frame, label


def promote(settings: Settings, log: RadarLog | None = None) -> Verdict:
    """Move `champion` to the challenger if it passes the gate; otherwise leave everything as it is.

    `log` is the radar log the challenger was trained on, when its run names no files (the event store)."""
    configure_mlflow(settings)
    client = MlflowClient()
    name = settings.mlflow.model_name
    challenger = version_for_alias(client, name, CHALLENGER)
    if challenger is None:
        raise PromotionError(f"{name} has no challenger; train a model first")
    champion = version_for_alias(client, name, CHAMPION)
    if champion is None:
        crown(client, challenger)
        return Verdict(True, "no champion yet: the challenger becomes the first champion", asdict(challenger), None)
    if champion.version == challenger.version:
        return Verdict(False, "the challenger already is the champion", asdict(challenger), asdict(champion))
    run = client.get_run(challenger.run_id)
    frame, label = holdout_for(settings, run.data.tags, run.data.params, log)
    y = frame[label].to_numpy(int)
    metrics = {}
    for role, ref in (("challenger", challenger), ("champion", champion)):
        served = load_version(settings, ref)
        # A refit model has trained on the holdout; its backtest model, kept in the bundle, has not.
        model = served.companion("backtest") or served
        missing = [f for f in model.features if f not in frame.columns]
        if missing:
            raise PromotionError(f"the {role} v{ref.version} needs features this code no longer builds: {missing[:5]}")
        p = model.targets_[model.main_target].predict(model.matrix(frame))
        metrics[role] = classification_metrics(y, p, settings.training.ece_bins)
    ok, why = beats(metrics["challenger"], metrics["champion"], settings.training.promotion_auc_tolerance)
    holdout = {
        "rows": len(frame),
        "positives": int(y.sum()),
        "label": label,
        "from": run.data.tags.get("split.test_from"),
        "to": run.data.tags.get("split.test_to"),
    }
    if ok:
        crown(client, challenger)
    return Verdict(ok, why, asdict(challenger), asdict(champion), metrics["challenger"], metrics["champion"], holdout)


def rollback(settings: Settings) -> tuple[ModelRef, ModelRef]:
    """Put the previous champion back; returns (restored, replaced)."""
    configure_mlflow(settings)
    return uncrown(MlflowClient(), settings.mlflow.model_name)
