"""The MLflow model registry: versions, the `champion` and `challenger` aliases, the champion history."""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"


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


def model_version(client: MlflowClient, name: str, version: str) -> ModelRef:
    mv = client.get_model_version(name, version)
    return ModelRef(name=name, version=str(mv.version), run_id=mv.run_id)


def set_alias(client: MlflowClient, ref: ModelRef, alias: str) -> ModelRef:
    client.set_registered_model_alias(ref.name, alias, ref.version)
    return ModelRef(ref.name, ref.version, ref.run_id, alias)


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that were champion before the current one, oldest first."""
    tags = client.get_registered_model(name).tags
    raw = tags.get(HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def crown(client: MlflowClient, ref: ModelRef) -> ModelRef:
    """Make `ref` the champion, remembering the one it replaces so a rollback can bring it back."""
    current = version_for_alias(client, ref.name, CHAMPION)
    if current is not None and current.version != ref.version:
        history = champion_history(client, ref.name) + [current.version]
        client.set_registered_model_tag(ref.name, HISTORY_TAG, ",".join(history))
    crowned = set_alias(client, ref, CHAMPION)
    challenger = version_for_alias(client, ref.name, CHALLENGER)
    if challenger is not None and challenger.version == ref.version:
        client.delete_registered_model_alias(ref.name, CHALLENGER)
    return crowned


def uncrown(client: MlflowClient, name: str) -> tuple[ModelRef, ModelRef]:
    """Put the previous champion back; returns (restored, replaced)."""
    history = champion_history(client, name)
    current = version_for_alias(client, name, CHAMPION)
    if not history or current is None:
        raise LookupError(f"{name} has no previous champion to roll back to")
    previous = model_version(client, name, history[-1])
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[:-1]))
    return set_alias(client, previous, CHAMPION), current
