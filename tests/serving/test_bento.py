"""`leadradar bento build` packages service and champion; the Bento serves with the registry out of reach."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from leadradar.serving.process import free_port


@pytest.fixture(scope="module")
def bento(trained, settings, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "LEADRADAR_HOME": str(settings.data_dir)}
    built = subprocess.run(
        [sys.executable, "-m", "leadradar.cli", "bento", "build"], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.split("built Bento ")[1].split(";")[0].strip()
    return {"tag": tag, "env": env}


def test_the_bento_holds_the_champion_and_its_settings(bento, trained):
    listed = subprocess.run(
        [sys.executable, "-m", "bentoml", "models", "list", "-o", "json"],
        env=bento["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    models = json.loads(listed.stdout)
    assert [m["tag"].split(":")[0] for m in models] == ["leadradar-bundle"]
    got = subprocess.run(
        [sys.executable, "-m", "bentoml", "get", bento["tag"], "-o", "json"],
        env=bento["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    info = json.loads(got.stdout)
    assert info["service"] == "leadradar.serving.service:LeadRadar"
    assert any(m["tag"].startswith("leadradar-bundle:") for m in info["models"])


def test_the_bento_serves_its_bundled_model_when_the_registry_is_away(bento, trained, tmp_path):
    from leadradar.config import Settings
    from leadradar.serving.auth import KeyStore

    home = tmp_path / "container-home"
    key = KeyStore(Settings(home=home).score_store_url).create("t01", "manager")[1]
    env = {
        **bento["env"],
        "LEADRADAR_HOME": str(home),
        "LEADRADAR_MLFLOW__TRACKING_URI": f"sqlite:///{tmp_path}/nowhere/mlflow.db",
    }
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bentoml", "serve", bento["tag"], "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        info = httpx.get(
            f"http://127.0.0.1:{port}/v1/model", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()
        assert info["ready"] and info["version"] == trained["model_version"]
        assert info["source"].startswith("bundled in the Bento")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
