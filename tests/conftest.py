"""Shared, session-scoped fixtures: one small simulation, one trained champion, one running server."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadradar.settings import QUIET_ENVIRONMENT, Settings

for _key, _value in QUIET_ENVIRONMENT.items():
    os.environ.setdefault(_key, _value)

SMALL = {"tenants": 2, "leads": 10_000, "days": 270, "seed": 3}


@dataclass(frozen=True)
class Sim:
    dir: Path
    events: Path
    stages: Path
    truth: Path
    items: Path
    leads: Path


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory (MLflow, scores, model cache) for the session, exported as LEADRADAR_HOME."""
    path = tmp_path_factory.mktemp("leadradar-home")
    os.environ["LEADRADAR_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory, settings: Settings) -> Sim:
    from features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("sim")
    paths = simulate(SimulationConfig(**SMALL), settings).write(out)
    return Sim(out, **paths)


@pytest.fixture(scope="session")
def trained(small_sim: Sim, settings: Settings) -> dict:
    """`leadradar train --json` on the small simulation, as another program would drive it."""
    from typer.testing import CliRunner

    from leadradar.cli import app

    result = CliRunner().invoke(
        app, ["train", "--events", str(small_sim.events), "--stages", str(small_sim.stages), "--json"],
        env={"LEADRADAR_HOME": str(settings.data_dir)},
    )
    assert result.exit_code == 0, result.output
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    promoted = CliRunner().invoke(app, ["promote", "--json"], env={"LEADRADAR_HOME": str(settings.data_dir)})
    trained["promotion"] = json.loads(promoted.stdout.strip().splitlines()[-1])
    return trained


@pytest.fixture(scope="session")
def system_key(settings: Settings) -> str:
    """A `system` key of tenant t01, as a CRM would hold."""
    from serving.auth import KeyStore

    return KeyStore(settings.score_store_url).create("t01", "system", name="tests")[1]


@pytest.fixture(scope="session")
def server(trained: dict, settings: Settings):
    """The real BentoML service in a subprocess, serving the champion; stopped after the session."""
    from serving.process import ServiceProcess

    with ServiceProcess(settings) as svc:
        yield svc
