"""The promotion gate: the challenger becomes champion only if it beats it on the same, latest holdout.

Both models are scored on the challenger's own test period (the most recent labelled cutoffs),
rebuilt from the data sources its run recorded. The challenger must have a lower log loss and an
AUC no more than `training.promotion_auc_tolerance` below the champion's. A version refit on all
labelled rows has seen that period, so the gate scores the backtest model kept in its bundle. A person who
knows better may force it, with a reason. Every verdict and rollback is recorded (training/verdicts.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.features.radar_log import RadarLog
from leadradar.ledger import Ledger
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
from leadradar.training.verdicts import now, record_rollback, record_verdict, who

# The ledger lock that serialises moves of the champion alias (not retrain's: a retrain promotes inside its own).
PROMOTE_LOCK = "promote"


@dataclass
class Verdict:
    promoted: bool
    reason: str
    challenger: dict[str, Any]
    champion: dict[str, Any] | None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)
    forced: bool = False
    by: str = ""
    why: str | None = None  # the reason the person gave, if any
    at: str = field(default_factory=now)
    record_run_id: str | None = None

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
    if log is None and not readable and run_tags.get("data.source") == "event store":
        from leadradar.features.store import EventStore

        store = EventStore.open(settings)
        try:
            as_seen = run_tags.get("data.time") != "event time"  # runs from before the tag were as seen
            log = RadarLog.from_store(store, until=pd.Timestamp(run_tags["window.data_until"]), as_seen=as_seen)
        finally:
            store.close()
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


def promote(
    settings: Settings,
    force: bool = False,
    why: str | None = None,
    by: str | None = None,
    log: RadarLog | None = None,
) -> Verdict:
    """Move `champion` to the challenger if it passes the gate (or `force`, which needs `why`); otherwise leave
    everything as it is. The verdict is recorded on the challenger's version and as an MLflow run.

    `log` is the radar log the challenger was trained on, when its run names no files (the event store)."""
    if force and not (why or "").strip():
        raise PromotionError("--force needs --reason: say why the gate's verdict should be overruled")
    with alias_lock(settings):
        configure_mlflow(settings)
        client = MlflowClient()
        verdict = judge(settings, client, force, log)
        verdict.by, verdict.why = by or who(), why
        if verdict.promoted:
            crown(client, ModelRef(**verdict.challenger))
        if verdict.challenger.get("version") != (verdict.champion or {}).get("version"):
            verdict.record_run_id = record_verdict(client, asdict(verdict))
    return verdict


@contextmanager
def alias_lock(settings: Settings) -> Iterator[None]:
    """One promotion or rollback at a time (the lifecycle ledger's lock row, as retrain's): two at once would each
    judge against a champion the other is replacing. A second one waits up to `lifecycle.promote_wait_seconds`."""
    ledger = Ledger(settings.lifecycle_url)
    lease_for = timedelta(minutes=settings.lifecycle.lock_lease_minutes)
    deadline = time.monotonic() + settings.lifecycle.promote_wait_seconds
    try:
        lease = ledger.acquire(PROMOTE_LOCK, lease_for)
        while lease is None:
            if time.monotonic() >= deadline:
                held = ledger.holder(PROMOTE_LOCK)
                where = f"pid {held.pid} on {held.host}" if held else "another process"
                raise PromotionError(f"another promotion or rollback is under way ({where}); try again when it ends")
            time.sleep(0.2)
            lease = ledger.acquire(PROMOTE_LOCK, lease_for)
        try:
            yield
        finally:
            ledger.release(lease)
    finally:
        ledger.close()


def judge(settings: Settings, client: MlflowClient, force: bool, log: RadarLog | None = None) -> Verdict:
    """The gate's verdict on the challenger against the champion; nothing is moved here."""
    name = settings.mlflow.model_name
    challenger = version_for_alias(client, name, CHALLENGER)
    if challenger is None:
        from leadradar.training.table_scoring import other_models_hint

        raise PromotionError(f"{name} has no challenger; train a model first{other_models_hint(settings)}")
    champion = version_for_alias(client, name, CHAMPION)
    if champion is None:
        return Verdict(True, "no champion yet: the challenger becomes the first champion", asdict(challenger), None)
    if champion.version == challenger.version:
        return Verdict(False, "the challenger already is the champion", asdict(challenger), asdict(champion))
    try:
        metrics, holdout = compare(settings, client, challenger, champion, log)
    except PromotionError as exc:
        if not force:
            raise
        return Verdict(True, f"forced without the gate: {exc}", asdict(challenger), asdict(champion), forced=True)
    ok, why = beats(metrics["challenger"], metrics["champion"], settings.training.promotion_auc_tolerance)
    return Verdict(
        ok or force,
        why if ok or not force else f"forced over the gate, which said: {why}",
        asdict(challenger),
        asdict(champion),
        metrics["challenger"],
        metrics["champion"],
        holdout,
        forced=force and not ok,
    )


def compare(
    settings: Settings, client: MlflowClient, challenger: ModelRef, champion: ModelRef, log: RadarLog | None = None
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """Both models' figures on the challenger's holdout, and which rows those were."""
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
    holdout = {
        "rows": len(frame),
        "positives": int(y.sum()),
        "label": label,
        "from": run.data.tags.get("split.test_from"),
        "to": run.data.tags.get("split.test_to"),
    }
    return metrics, holdout


def rollback(settings: Settings, why: str | None = None, by: str | None = None) -> tuple[ModelRef, ModelRef]:
    """Put the previous champion back, recorded on both versions and as an MLflow run; returns (restored, replaced)."""
    with alias_lock(settings):
        configure_mlflow(settings)
        client = MlflowClient()
        restored, replaced = uncrown(client, settings.mlflow.model_name)
        record_rollback(client, restored, replaced, by or who(), why)
    return restored, replaced
