"""Batch scoring: every lead open at a time, scored by the champion, ready to store and rank."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd

from leadradar.config import ServingConfig, Settings
from leadradar.features.build import compute_features
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.trainset import registry_hash
from leadradar.models.explain import Explainer, Explanation, explainer_for
from leadradar.registry import LoadedModel
from leadradar.serving.activity import BatchActivity
from leadradar.serving.certainty import certainty
from leadradar.serving.store import ScoreStore
from leadradar.targets import close_output, close_targets

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["tenant_id", "lead_id", "sales_id", "stage", "as_of", "p_close", "model_name", "model_version"]


def check_definitions(loaded: LoadedModel, settings: Settings) -> list[str]:
    """The model's features, refusing any the registry no longer declares; warns when definitions moved."""
    registry = build_registry(settings)
    wanted = loaded.model.features
    unknown = [f for f in wanted if f not in registry]
    if unknown:
        raise ValueError(
            f"model {loaded.ref.name} v{loaded.ref.version} needs features this code does not declare: {unknown[:5]}"
        )
    trained_hash = loaded.meta.get("definition_hash")
    if trained_hash and trained_hash != registry_hash(settings, registry, settings.query_cache_dir):
        log.warning(
            "feature definitions changed since model v%s was trained (hash %s); scores may drift from training",
            loaded.ref.version,
            trained_hash,
        )
    return wanted


def _stored(explanation: Explanation) -> dict[str, list[dict]]:
    """A lead's reasons as data (feature, value, contribution, and the closed leads' median where the model has
    one), so pages word them in either language."""

    def row(r):
        value = r.value if isinstance(r.value, str) else round(float(r.value), 6)
        out = {"feature": r.feature, "value": value, "contribution": round(r.contribution, 4)}
        return out if r.closed is None else {**out, "closed": round(float(r.closed), 6)}

    return {"for": [row(r) for r in explanation.for_], "against": [row(r) for r in explanation.against]}


def score_frame(
    features: pd.DataFrame,
    loaded: LoadedModel,
    stages: list[str] | None = None,
    explainer: Explainer | None = None,
    n_for: int = 3,
    n_against: int = 2,
    serving: ServingConfig | None = None,
    hide: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The champion's close probability (main target) per row, with its name and version.

    With the funnel's open `stages`, a `detail` JSON column also holds every horizon and the
    lead's transition probability, for ranked lists and reports; with an `explainer`, also the
    lead's reasons for and against (TreeSHAP of the main target): all of them (`reasons`), and with
    `hide`, those people read (`shown`: the feature families in `hide` left out); with `serving`, also the
    interval, the low-confidence and pooled flags and the expected close window.
    """
    probs = loaded.model.predict_targets(features)
    out = features[["tenant_id", "lead_id", "sales_id", "stage", "cutoff"]].rename(columns={"cutoff": "as_of"})
    out["p_close"] = probs[loaded.model.main_target].to_numpy()
    out["model_name"] = loaded.ref.name
    out["model_version"] = loaded.ref.version
    columns = SCORE_COLUMNS
    if stages is not None:
        funnel = loaded.model.predict_funnel(features, stages)
        details: list[dict[str, Any]] = [
            {str(k): (None if v != v else round(float(v), 6)) for k, v in row.items()}
            for row in funnel.to_dict("records")
        ]
        if serving is not None and len(features):
            sure = loaded.model.certainty(features)
            days = [d for d, _ in close_targets(loaded.model.targets_)]
            curve = {d: funnel[close_output(d)].to_numpy() for d in days}
            lo, hi = sure["p_lo"].to_numpy(), sure["p_hi"].to_numpy()
            for detail, extra in zip(
                details,
                certainty(
                    sure["p"].to_numpy(), lo, hi, sure["pooled"].to_numpy(), curve, serving, sure["support"].to_numpy()
                ),
            ):
                detail.update(extra)
        if explainer is not None and len(features):
            full, shown = explainer.explain_both(loaded.model.matrix(features), hide, "en", n_for, n_against)
            for detail, explanation, behaviour in zip(details, full, shown):
                detail["reasons"] = _stored(explanation)
                if hide:
                    detail["shown"] = _stored(behaviour)
        out["detail"] = [json.dumps(d, ensure_ascii=False) for d in details]
        columns = [*SCORE_COLUMNS, "detail"]
    return out[columns].sort_values(["tenant_id", "p_close"], ascending=[True, False]).reset_index(drop=True)


def score_batch(
    log: RadarLog, as_of: pd.Timestamp, settings: Settings, loaded: LoadedModel, tenant: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every lead open at `as_of` (optionally of one tenant); returns (scores, their feature rows).

    Each score's `detail` holds its horizons, transition and reasons (for the pages people read).
    """
    check_definitions(loaded, settings)
    registry = build_registry(settings)
    feats = compute_features(
        log.events, log.stages, [as_of], settings, registry, log.items, leads=log.leads, consent=log.consent
    )
    if tenant is not None:
        feats = feats[feats["tenant_id"] == tenant]
    model = loaded.model
    explainer = explainer_for(model, model.main_target, registry, settings.funnel)
    scores = score_frame(
        feats,
        loaded,
        list(settings.funnel.open_stages),
        explainer,
        settings.serving.reasons_for,
        settings.serving.reasons_against,
        serving=settings.serving,
        hide=settings.serving.hidden_reason_families,
    )
    return scores, feats


def store_batch(
    store: ScoreStore, scores: pd.DataFrame, features: pd.DataFrame, activity: BatchActivity | None = None
) -> int:
    """Keep the scores and the salesperson context the online service reads; with `activity`, also
    the scored leads' recent events and the funnel counts the dashboard shows."""
    store.write_context(features)
    written = store.write(scores)
    if activity is not None:
        store.write_events(activity.events, activity.as_of)
        store.write_funnel(activity.funnel)
    return written


def score_and_store(
    store: ScoreStore,
    log: RadarLog,
    as_of: pd.Timestamp,
    settings: Settings,
    loaded: LoadedModel,
    tenant: str | None = None,
) -> pd.DataFrame:
    """A whole batch run: score the open leads, keep scores, reasons, recent events and the funnel."""
    from leadradar.serving.activity import batch_activity

    scores, feats = score_batch(log, as_of, settings, loaded, tenant)
    activity = batch_activity(log.events, log.stages, scores, as_of, settings, log.consent)
    store_batch(store, scores, feats, activity)
    return scores
