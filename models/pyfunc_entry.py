"""Models-from-code entry point: MLflow runs this file to build the pyfunc (no pickled objects)."""

import mlflow.models

from leadradar.models.bundle import LeadRadarModel

mlflow.models.set_model(LeadRadarModel())
