"""The MLflow pyfunc bundle: a saved FunnelModel folder plus the class MLflow loads it with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from leadradar.models.funnel import FunnelModel

ENTRY_POINT = Path(__file__).with_name("pyfunc_entry.py")
ARTIFACT_KEY = "funnel"


class LeadRadarModel(PythonModel):
    """`predict` takes a feature frame and returns the calibrated probability of every target."""

    def load_context(self, context: Any) -> None:
        self.model = FunnelModel.load(Path(context.artifacts[ARTIFACT_KEY]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.predict_targets(model_input)
