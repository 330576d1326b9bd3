"""`leadradar bento`: a Bento that carries the champion model and its configuration, for a container.

The champion's bundle goes into BentoML's model store (with the settings it was served with),
and `bentofile.yaml` builds the service around it. In a container whose MLflow registry is out of
reach, the service loads this bundled model instead (serving/loader.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from leadradar.settings import Settings
from serving.loader import fetch, resolve
from training.registry import CHAMPION

ROOT = Path(__file__).resolve().parent.parent
BENTO_MODEL_TAG = "leadradar-bundle"


def bundle_champion(settings: Settings, alias: str = CHAMPION) -> str:
    """Copy the alias's bundle and the settings into BentoML's model store; returns the model tag."""
    import bentoml

    ref = resolve(settings, alias)
    if ref is None:
        raise LookupError(f"no model has the alias '{alias}'; train and promote one first")
    bundle = fetch(settings, ref)
    labels = {"registered_model": ref.name, "version": ref.version, "alias": alias}
    with bentoml.models.create(BENTO_MODEL_TAG, labels=labels, metadata={"run_id": ref.run_id}) as model:
        shutil.copytree(bundle, Path(model.path) / "bundle")
        (Path(model.path) / "settings.json").write_text(settings.model_dump_json(indent=1))
    return str(model.tag)


def build_bento(settings: Settings, alias: str = CHAMPION) -> str:
    """Bundle the champion and build the Bento from bentofile.yaml; returns the Bento's tag."""
    import bentoml
    import yaml

    import tempfile

    model_tag = bundle_champion(settings, alias)
    spec = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    spec["models"] = [model_tag]
    with tempfile.TemporaryDirectory() as tmp:
        bentofile = Path(tmp) / "bentofile.yaml"
        bentofile.write_text(yaml.safe_dump(spec))
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(ROOT))
    return str(bento.tag)


def bundled_model_dir() -> Path | None:
    """The bundle inside a Bento's model store, when the service runs from a built Bento."""
    try:
        import bentoml

        model = bentoml.models.get(f"{BENTO_MODEL_TAG}:latest")
    except Exception:
        return None
    path = Path(model.path) / "bundle"
    return path if (path / "model.json").exists() else None


def bundled_ref() -> dict | None:
    try:
        import bentoml

        model = bentoml.models.get(f"{BENTO_MODEL_TAG}:latest")
    except Exception:
        return None
    return {**model.info.labels, "run_id": model.info.metadata.get("run_id", ""), "tag": str(model.tag),
            "settings": json.loads((Path(model.path) / "settings.json").read_text())}
