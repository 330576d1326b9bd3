"""What every training run records in MLflow, logged one way for radar logs and for tables; the MLflow UI."""

from __future__ import annotations

import logging
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

from leadradar.config import Settings
from leadradar.models.bundle import ARTIFACT_KEY, ENTRY_POINT
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHALLENGER, CHAMPION, ModelRef, configure_mlflow, crown, set_alias, version_for_alias

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the code that trained, with `+dirty` for uncommitted changes, else the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(  # nosec B607 # git from PATH, as a developer runs it; fixed arguments
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # nosec B607 # the same git, fixed arguments
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


@dataclass
class RunRecord:
    """What one training run logs: tags, parameters, metrics, JSON documents and files, and the bundle's extras."""

    tags: dict[str, str]
    params: dict[str, Any]
    metrics: dict[str, float]
    documents: dict[str, Any] = field(default_factory=dict)  # artifact path → JSON-able value
    bundle_extra: dict[str, Any] = field(default_factory=dict)
    version_tags: dict[str, str] = field(default_factory=dict)
    bundle_files: dict[str, str] = field(default_factory=dict)  # file name → path, copied into the bundle
    companions: dict[str, FunnelModel] = field(default_factory=dict)  # folder in the bundle → a model kept beside


def record_run(
    settings: Settings,
    model: FunnelModel,
    record: RunRecord,
    example: pd.DataFrame,
    write_files: Callable[[Path], None],
    alias: str,
    run_name: str | None = None,
) -> ModelRef:
    """Log a run (with the code version) and the model bundle; register and alias it only once all of it is logged.

    `write_files(folder)` writes the run's files (plots, feature lists) into `folder`, logged at the run's root.
    The registered version's `run_id` names the run.
    """
    configure_mlflow(settings)
    version = code_version()
    synthetic = synthetic_example(example)
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=run_name) as run:
        out = Path(tmp)
        mlflow.set_tags({**record.tags, "code_version": version})
        mlflow.log_params(record.params)
        mlflow.log_metrics(record.metrics)
        for artifact, value in record.documents.items():
            mlflow.log_dict(value, artifact)
        (out / "files").mkdir()
        write_files(out / "files")
        mlflow.log_artifacts(str(out / "files"))
        bundle = model.save(out / "bundle", {**record.bundle_extra, "code_version": version}, record.bundle_files)
        for folder, companion in record.companions.items():
            companion.save(bundle / folder)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(ENTRY_POINT),
            artifacts={ARTIFACT_KEY: str(bundle)},
            pip_requirements=["leadradar"],
            signature=infer_signature(synthetic, model.predict_targets(synthetic)),
            input_example=synthetic,
        )
        run_id = run.info.run_id
    tags = {**record.version_tags, "code_version": version}
    return register(MlflowClient(), settings.mlflow.model_name, info.model_uri, run_id, alias, tags)


def synthetic_example(frame: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """An input example no lead is in (PIPL): numbers at spread quantiles of each column, any other column at its
    most frequent value (a stage, a channel). Each row is a column-wise composite, not a row that happened."""
    out: dict[str, object] = {}
    qs = [(k + 1) / (rows + 1) for k in range(rows)]
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            out[name] = pd.Series([bool(col.mode().iloc[0]) if col.notna().any() else False] * rows, dtype=col.dtype)
        elif pd.api.types.is_numeric_dtype(col):
            values = (
                col.quantile(qs, interpolation="nearest").to_numpy() if col.notna().any() else [float("nan")] * rows
            )
            out[name] = pd.Series(values).astype(col.dtype, errors="ignore")
        else:
            mode = col.mode()
            out[name] = pd.Series([mode.iloc[0] if len(mode) else None] * rows).astype(col.dtype, errors="ignore")
    return pd.DataFrame(out, columns=frame.columns)


def register(
    client: MlflowClient, name: str, model_uri: str, run_id: str, alias: str, tags: dict[str, str]
) -> ModelRef:
    """A new registered version with its alias, or nothing: a failure after registering removes the version."""
    mv = mlflow.register_model(model_uri, name, tags=tags)
    ref = ModelRef(name, str(mv.version), run_id)
    try:
        if alias == CHAMPION:
            return crown(client, ref)
        if alias == CHALLENGER:
            note_unjudged_challenger(client, ref)
        return set_alias(client, ref, alias)
    except Exception:
        client.delete_model_version(ref.name, ref.version)
        raise


def note_unjudged_challenger(client: MlflowClient, ref: ModelRef) -> None:
    """Taking `challenger` from a version the gate never judged is recorded on both versions and warned about:
    two `train` runs at once would otherwise silently take the alias from each other."""
    current = version_for_alias(client, ref.name, CHALLENGER)
    if current is None or current.version == ref.version:
        return
    if "gate.verdict" in client.get_model_version(ref.name, current.version).tags:
        return
    client.set_model_version_tag(ref.name, ref.version, "challenger.replaced", current.version)
    client.set_model_version_tag(ref.name, current.version, "challenger.replaced_by", ref.version)
    log.warning(
        "%s v%s takes the challenger alias from v%s, which the promotion gate never judged (another `train` "
        "at the same time, or a retrain before `promote`); v%s stays registered: `leadradar models` shows both",
        ref.name,
        ref.version,
        current.version,
        current.version,
    )
