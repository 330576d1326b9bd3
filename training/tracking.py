"""MLflow set-up and what every run records: the code version and where the MLflow UI is."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

import mlflow

from leadradar.settings import Settings, quiet_environment


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store and make sure the experiment exists; returns its id."""
    quiet_environment()
    settings.ensure_dirs()
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if exp is None:
        exp_id = mlflow.create_experiment(settings.mlflow.experiment, artifact_location=settings.artifact_location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code that trained, with `+dirty` for uncommitted changes, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import version

        return f"leadradar-{version('leadradar')}"


def ui_command(settings: Settings) -> str:
    return (
        f"{Path('.venv/bin/mlflow')} ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_location} --host 127.0.0.1 --port 5000 --workers 1"
    )
