"""The MLflow model registry: versions, the `champion` and `challenger` aliases, and lookups."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def version_for_alias(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return ModelRef(name=name, version=str(mv.version), run_id=mv.run_id, alias=alias)


def set_alias(client: MlflowClient, ref: ModelRef, alias: str) -> ModelRef:
    client.set_registered_model_alias(ref.name, alias, ref.version)
    return ModelRef(ref.name, ref.version, ref.run_id, alias)
