"""The BentoML service sales systems call: the champion model behind typed HTTP endpoints."""

from __future__ import annotations

import logging
import bentoml
import numpy as np
from pydantic import BaseModel, Field

from leadradar.settings import get_settings
from serving.loader import LoadedModel, NoModelError, load_alias

log = logging.getLogger(__name__)
SETTINGS = get_settings()


class LeadFeatures(BaseModel):
    tenant_id: str = Field(min_length=1, max_length=64)
    lead_id: str = Field(min_length=1, max_length=128)
    features: dict[str, float | int | bool | str | None] = Field(
        description="every feature the model was trained on, by name; null for a value that is missing"
    )


class LeadScore(BaseModel):
    tenant_id: str
    lead_id: str
    p_close: float = Field(description="calibrated probability of winning within the model's horizon")
    model_name: str
    model_version: str


@bentoml.service(
    name="leadradar",
    workers=SETTINGS.serving.workers,
    traffic={"timeout": 30},
)
class LeadRadar:
    def __init__(self) -> None:
        self.settings = get_settings()
        self.loaded: LoadedModel | None = None
        try:
            self.loaded = load_alias(self.settings)
            log.info("serving %s v%s (%s)", self.loaded.ref.name, self.loaded.ref.version, self.loaded.source)
        except NoModelError as exc:
            log.error("no model to serve: %s", exc)

    def __is_ready__(self) -> bool:
        return self.loaded is not None

    def _model(self) -> LoadedModel:
        if self.loaded is None:
            raise bentoml.exceptions.ServiceUnavailable("no model is loaded; train one and give it the champion alias")
        return self.loaded

    @bentoml.api(route="/score")
    def score(self, leads: list[LeadFeatures]) -> list[LeadScore]:
        """Close probability for each lead from its feature row."""
        loaded = self._model()
        limit = self.settings.serving.max_leads_per_request
        if len(leads) > limit:
            raise bentoml.exceptions.InvalidArgument(f"{len(leads)} leads in one request; the limit is {limit}")
        try:
            X = loaded.model.encoder_.transform_records([lead.features for lead in leads])
        except KeyError as exc:
            raise bentoml.exceptions.InvalidArgument(f"leads: {exc.args[0]}") from None
        except (TypeError, ValueError) as exc:
            raise bentoml.exceptions.InvalidArgument(f"leads: a feature value is not a number ({exc})") from None
        p = loaded.model.targets_[loaded.model.main_target].predict(X) if len(leads) else np.empty(0)
        return [
            LeadScore(
                tenant_id=lead.tenant_id, lead_id=lead.lead_id, p_close=float(pi),
                model_name=loaded.ref.name, model_version=loaded.ref.version,
            )
            for lead, pi in zip(leads, p)
        ]
