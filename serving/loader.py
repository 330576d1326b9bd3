"""Load the model an alias points to, keep a local copy, and fall back to it when the registry is away."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient

from leadradar.settings import Settings
from models.bundle import ARTIFACT_KEY
from models.funnel import FunnelModel
from training.registry import CHAMPION, ModelRef, version_for_alias
from training.tracking import configure_mlflow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: FunnelModel
    source: str  # "registry" or "local copy"

    @property
    def meta(self) -> dict:
        return getattr(self.model, "meta_", {})


class NoModelError(RuntimeError):
    """No model to score with: nothing registered under the alias and no local copy."""


def _cache_dir(settings: Settings, ref: ModelRef) -> Path:
    return settings.model_cache_dir / ref.name / ref.version


def _pointer(settings: Settings, alias: str) -> Path:
    return settings.model_cache_dir / f"{settings.mlflow.model_name}@{alias}.json"


def resolve(settings: Settings, alias: str = CHAMPION) -> ModelRef | None:
    """Which version the alias points at now; None if the alias is not set."""
    configure_mlflow(settings)
    return version_for_alias(MlflowClient(), settings.mlflow.model_name, alias)


def fetch(settings: Settings, ref: ModelRef) -> Path:
    """Download a version's bundle into the local cache once; later loads read the copy."""
    target = _cache_dir(settings, ref)
    bundle = target / "bundle"
    if (bundle / "model.json").exists():
        return bundle
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(tmp)))
    found = next(local.rglob("model.json"), None)
    if found is None:
        raise NoModelError(f"{ref.uri} holds no funnel bundle ({ARTIFACT_KEY}/model.json)")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.move(str(found.parent), str(bundle))
    shutil.rmtree(tmp, ignore_errors=True)
    return bundle


def load_alias(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """The model behind the alias; if the registry cannot be reached, the last good local copy."""
    pointer = _pointer(settings, alias)
    try:
        ref = resolve(settings, alias)
    except Exception as exc:  # registry down or unreadable: serve what we had
        log.warning("model registry unreachable (%s); trying the local copy", exc)
        if pointer.exists():
            return _load_local(settings, pointer)
        bundled = _load_bundled()
        if bundled is not None:
            return bundled
        raise NoModelError(f"registry unreachable and no local copy at {pointer}") from exc
    if ref is None:
        bundled = _load_bundled()
        if bundled is not None:
            return bundled
        raise NoModelError(
            f"no model has the alias '{alias}' in {settings.mlflow.model_name}; run `leadradar train` and `promote` first"
        )
    bundle = fetch(settings, ref)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(json.dumps({"name": ref.name, "version": ref.version, "run_id": ref.run_id, "alias": alias}))
    return LoadedModel(ref=ref, model=FunnelModel.load(bundle), source="registry")


def _load_bundled() -> LoadedModel | None:
    """The model a Bento was built with (see serving/bento.py), when running from one."""
    from serving.bento import bundled_model_dir, bundled_ref

    path, info = bundled_model_dir(), bundled_ref()
    if path is None or info is None:
        return None
    ref = ModelRef(info.get("registered_model", ""), info.get("version", ""), info.get("run_id", ""), info.get("alias"))
    return LoadedModel(ref=ref, model=FunnelModel.load(path), source=f"bundled in the Bento ({info['tag']})")


def _load_local(settings: Settings, pointer: Path) -> LoadedModel:
    ref = ModelRef(**json.loads(pointer.read_text()))
    return LoadedModel(ref=ref, model=FunnelModel.load(_cache_dir(settings, ref) / "bundle"), source="local copy")
