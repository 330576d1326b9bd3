"""`leadradar bento`: a Bento that carries the champion model and its configuration, for a container.

The champion's bundle goes into BentoML's model store (with the settings it was served with),
and `bentofile.yaml` builds the service around it. In a container whose MLflow registry is out of
reach, the service loads this bundled model instead (serving/loader.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from leadradar.config import Settings
from leadradar.registry import BENTO_MODEL_TAG, CHAMPION, fetch, resolve

ROOT = Path(__file__).resolve().parent.parent


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
    import tempfile

    import bentoml
    import yaml

    model_tag = bundle_champion(settings, alias)
    spec = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    spec["models"] = [model_tag]
    with tempfile.TemporaryDirectory() as tmp:
        bentofile = Path(tmp) / "bentofile.yaml"
        bentofile.write_text(yaml.safe_dump(spec))
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=str(ROOT))
    return str(bento.tag)
