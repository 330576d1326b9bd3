"""The baseline for the serving benchmark: a minimal FastAPI + LightGBM app on the same model bundle.

No keys, no tenants, no reasons, no model lifecycle: one booster and its calibrator behind one route.
Run: python -m benchmarks.serving_baseline BUNDLE_DIR PORT
"""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from leadradar.models.funnel import FunnelModel


class Lead(BaseModel):
    lead_id: str
    features: dict[str, float | int | str | None]


class Body(BaseModel):
    leads: list[Lead]


def make_app(bundle: Path) -> FastAPI:
    model = FunnelModel.load(bundle)
    target = model.targets_[model.main_target]
    app = FastAPI()

    @app.post("/score")
    def score(body: Body) -> dict:
        X = model.encoder_.transform_records([lead.features for lead in body.leads])
        p = target.predict(X)
        return {"leads": [{"lead_id": lead.lead_id, "p_close": float(pi)} for lead, pi in zip(body.leads, p)]}

    return app


if __name__ == "__main__":
    uvicorn.run(make_app(Path(sys.argv[1])), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", workers=1)
