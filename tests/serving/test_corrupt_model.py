"""A truncated model artifact is not loaded: the model served before keeps serving and the holder says why
(what `/v1/model` shows as `problem`). LightGBM itself aborts the process on such a file, so this can fail."""

from __future__ import annotations

import shutil

import mlflow
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.registry import configure_mlflow, resolve
from leadradar.serving.holder import ModelHolder

ALIAS = "corrupt-test"


def test_a_truncated_booster_file_is_refused_and_the_old_model_keeps_serving(trained: dict, settings: Settings):
    configure_mlflow(settings)
    client = MlflowClient()
    good = resolve(settings)
    assert good is not None
    client.set_registered_model_alias(good.name, ALIAS, good.version)
    holder = ModelHolder(settings, lambda loaded: loaded, poll_seconds=0, alias=ALIAS)
    assert holder.loaded is not None and holder.loaded.ref.version == good.version

    mv = mlflow.register_model(client.get_model_version(good.name, good.version).source, good.name)
    try:
        bundle = settings.model_cache_dir / good.name / str(mv.version) / "bundle"
        shutil.copytree(settings.model_cache_dir / good.name / good.version / "bundle", bundle)
        booster = next(bundle.glob("close_*.txt"))
        booster.write_bytes(booster.read_bytes()[: booster.stat().st_size // 2])
        client.set_registered_model_alias(good.name, ALIAS, str(mv.version))

        assert holder.refresh() is False
        assert holder.loaded.ref.version == good.version and holder.current is holder.loaded
        assert "truncated or corrupt" in holder.status()["problem"]
    finally:
        client.delete_registered_model_alias(good.name, ALIAS)
        client.delete_model_version(good.name, str(mv.version))
        shutil.rmtree(settings.model_cache_dir / good.name / str(mv.version), ignore_errors=True)
