"""What every run records: the code version, and where the MLflow UI is."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from leadradar.config import Settings


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code that trained, with `+dirty` for uncommitted changes, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from importlib.metadata import version

        return f"leadradar-{version('leadradar')}"


def ui_command(settings: Settings) -> str:
    return (
        f"{Path('.venv/bin/mlflow')} ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_location} --host 127.0.0.1 --port 5000 --workers 1"
    )
