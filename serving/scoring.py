"""Batch scoring: every lead open at a time, scored by the champion, ready to store and rank."""

from __future__ import annotations

import json
import logging

import pandas as pd

from features.build import compute_features
from features.registry import build_registry
from features.trainset import Source, registry_hash
from leadradar.settings import Settings
from serving.loader import LoadedModel
from serving.store import ScoreStore

log = logging.getLogger(__name__)

SCORE_COLUMNS = ["tenant_id", "lead_id", "sales_id", "stage", "as_of", "p_close", "model_name", "model_version"]


def check_definitions(loaded: LoadedModel, settings: Settings) -> list[str]:
    """The model's features, refusing any the registry no longer declares; warns when definitions moved."""
    registry = build_registry(settings)
    wanted = loaded.model.features
    unknown = [f for f in wanted if f not in registry]
    if unknown:
        raise ValueError(f"model {loaded.ref.name} v{loaded.ref.version} needs features this code does not declare: {unknown[:5]}")
    trained_hash = loaded.meta.get("definition_hash")
    if trained_hash and trained_hash != registry_hash(settings, registry):
        log.warning(
            "feature definitions changed since model v%s was trained (hash %s); scores may drift from training",
            loaded.ref.version, trained_hash,
        )
    return wanted


def score_frame(features: pd.DataFrame, loaded: LoadedModel, stages: list[str] | None = None) -> pd.DataFrame:
    """The champion's close probability (main target) per row, with its name and version.

    With the funnel's open `stages`, a `detail` JSON column also holds every horizon and the
    lead's transition probability, for ranked lists and reports.
    """
    probs = loaded.model.predict_targets(features)
    out = features[["tenant_id", "lead_id", "sales_id", "stage", "cutoff"]].rename(columns={"cutoff": "as_of"})
    out["p_close"] = probs[loaded.model.main_target].to_numpy()
    out["model_name"] = loaded.ref.name
    out["model_version"] = loaded.ref.version
    columns = SCORE_COLUMNS
    if stages is not None:
        funnel = loaded.model.predict_funnel(features, stages)
        out["detail"] = [json.dumps({k: (None if v != v else round(float(v), 6)) for k, v in row.items()})
                         for row in funnel.to_dict("records")]
        columns = [*SCORE_COLUMNS, "detail"]
    return out[columns].sort_values(["tenant_id", "p_close"], ascending=[True, False]).reset_index(drop=True)


def score_batch(
    events: Source,
    stages: Source,
    as_of: pd.Timestamp,
    settings: Settings,
    loaded: LoadedModel,
    items: Source | None = None,
    tenant: str | None = None,
    leads: Source | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every lead open at `as_of` (optionally of one tenant); returns (scores, their feature rows)."""
    check_definitions(loaded, settings)
    feats = compute_features(events, stages, [as_of], settings, build_registry(settings), items, leads=leads)
    if tenant is not None:
        feats = feats[feats["tenant_id"] == tenant]
    return score_frame(feats, loaded, list(settings.funnel.open_stages)), feats


def store_batch(store: ScoreStore, scores: pd.DataFrame, features: pd.DataFrame) -> int:
    """Keep the scores and the salesperson context the online service reads."""
    store.write_context(features)
    return store.write(scores)
