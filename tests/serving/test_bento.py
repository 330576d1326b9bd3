"""`leadradar bento build` packages the installed layout and the champion; the Bento serves from its own source.

The served Bento runs from an empty folder with every import logged (PYTHONVERBOSE), so a module it
took from the checkout (the editable install would hand over any module the Bento lacks) shows up.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pandas as pd
import pytest

from leadradar.serving.bento import bento_spec, stage_package
from leadradar.serving.process import free_port
from tests.support.package_layout import REPO, SUBPACKAGE_FOLDERS, installed_layout

TENANT = "t01"
FROM_CHECKOUT = re.compile(rf"{re.escape(str(REPO))}/(?:leadradar|{'|'.join(SUBPACKAGE_FOLDERS)})/\S+\.py")


class BentoServer:
    """`bentoml serve TAG` in its own process group, started from `cwd`, its output in `log`."""

    def __init__(self, tag: str, env: dict[str, str], cwd: Path, log: Path):
        self.tag, self.env, self.cwd, self.log = tag, env, cwd, log
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> BentoServer:
        port = self.url.rsplit(":", 1)[1]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bentoml", "serve", self.tag, "--host", "127.0.0.1", "--port", port],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise AssertionError(f"the Bento did not get ready; its log: {self.log}")

    def stop(self) -> int | None:
        """SIGTERM to the server and its workers, as a container runtime stops it; returns the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
        return self.proc.returncode if self.proc else None

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def bento(trained, settings, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "LEADRADAR_HOME": str(settings.data_dir)}
    built = subprocess.run(
        [sys.executable, "-m", "leadradar.cli", "bento", "build"], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.split("built Bento ")[1].split(";")[0].strip()
    name, version = tag.split(":")
    return {"tag": tag, "env": env, "path": home / "bentos" / name / version}


@pytest.fixture(scope="module")
def served(bento, scored, role_keys, tmp_path_factory):
    """The built Bento on the session's data (registry, scores, keys), served from a folder with nothing in it."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    log = tmp_path_factory.mktemp("served-log") / "bento.log"
    with BentoServer(bento["tag"], {**bento["env"], "PYTHONVERBOSE": "1"}, elsewhere, log) as server:
        yield server


# -- what the build puts in the Bento ----------------------------------------------------------------------------


def test_the_build_context_is_the_package_laid_out_as_the_wheel_installs_it(tmp_path):
    staged = {p.relative_to(tmp_path).as_posix() for p in stage_package(tmp_path)}
    assert staged == installed_layout()


def test_the_bentos_python_packages_are_pyprojects_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["postgres"]
    spec = bento_spec(["leadradar-bundle:any"])
    assert spec["python"]["packages"] == dependencies and spec["python"]["lock_packages"] is False
    assert any(d.startswith("openpyxl") for d in spec["python"]["packages"])


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


def test_the_built_bento_holds_the_installed_package_and_installs_pyprojects_dependencies(bento):
    src = bento["path"] / "src"
    assert sorted(p.name for p in src.iterdir()) == ["bentofile.yaml", "leadradar"]  # BentoML keeps the spec
    package = src / "leadradar"
    files = {p.relative_to(src).as_posix() for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files == installed_layout()
    requirements = (bento["path"] / "env" / "python" / "requirements.txt").read_text().split()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    dependencies = project["dependencies"] + project["optional-dependencies"]["postgres"]
    assert [r for r in requirements if not r.startswith("bentoml==")] == dependencies


# -- the built Bento, served ----------------------------------------------------------------------------------------


def test_the_served_bento_imports_leadradar_from_its_own_source_only(served, bento):
    log = served.log.read_text(errors="replace")
    assert f"{bento['path']}/src/leadradar/serving/service.py" in log
    assert FROM_CHECKOUT.findall(log) == []


def test_the_served_bento_scores_feature_rows_as_the_champion_does_in_process(served, scored, role_keys, settings):
    from leadradar.registry import load_alias

    champion = load_alias(settings)
    sample = scored.features[scored.features["tenant_id"] == TENANT].head(5)
    leads = [
        {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in champion.model.features}}
        for r in sample.to_dict("records")
    ]
    resp = httpx.post(
        served.url + "/v1/score", json={"leads": leads}, headers=role_keys[TENANT, "system"].auth, timeout=60
    )
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model_version"] == champion.ref.version
    funnel = champion.model.predict_funnel(sample, list(settings.funnel.open_stages))
    for k, lead in enumerate(answer["leads"]):
        assert lead["status"] == "scored" and lead["p_close"]
        for horizon, p in lead["p_close"].items():
            assert p == pytest.approx(funnel[f"p_close_{horizon}"].iloc[k], abs=1e-9, rel=0)


def test_the_served_bento_exports_the_ranked_list_to_excel(served, scored, role_keys, settings):
    from openpyxl import load_workbook

    from leadradar.serving.ranking import ranked_leads
    from leadradar.serving.store import ScoreStore

    resp = httpx.get(served.url + "/dashboard/export.xlsx", headers=role_keys[TENANT, "manager"].auth, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/vnd.openxmlformats-officedocument.spreadsheetml")
    sheet = load_workbook(io.BytesIO(resp.content)).active
    expected = ranked_leads(ScoreStore(settings.score_store_url), TENANT, limit=None)
    assert sheet.max_row == len(expected) + 1
    assert [sheet.cell(row=2 + k, column=2).value for k in range(3)] == list(expected["lead_id"].iloc[:3])


def test_stopping_the_served_bento_runs_the_shutdown_hook_that_ends_the_poll_thread(served):
    """Last of the served tests: it stops the module's server."""
    served.stop()
    log = served.log.read_text(errors="replace")
    assert "Completed startup hook: follow_champion" in log
    assert "Completed cleanup hook: stop_following_champion" in log


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
    (tmp_path / "elsewhere").mkdir()
    with BentoServer(bento["tag"], env, tmp_path / "elsewhere", tmp_path / "bento.log") as server:
        info = httpx.get(server.url + "/v1/model", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
    assert info["ready"] and info["version"] == trained["model_version"]
    assert info["source"].startswith("bundled in the Bento")
