"""The registry as a company runs it: `mlflow server` on PostgreSQL with served artifacts, and its outages.

One small training through the server (the module's `champion`); the rest moves aliases, then stops the server
for good (the outage tests read what was registered from its database directly, no restart needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate, simulation_end
from leadradar.registry import CHAMPION, load_alias, resolve
from leadradar.serving.holder import ModelHolder
from leadradar.serving.scoring import score_batch
from leadradar.training.tracking import register
from tests.support.mlflow_server import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.server]

SIM = SimulationConfig(tenants=1, leads=3000, days=200, seed=5)
# One close model: what the server is tested for is where runs, models and artifacts go, not the targets.
QUICK = {"LEADRADAR_TRAINING__HORIZONS_DAYS": "[30]", "LEADRADAR_TRAINING__TRANSITION_MODELS": "false"}


@dataclass(frozen=True)
class Champion:
    settings: Settings
    env: dict[str, str]
    sim: Path
    version: str


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env)


def versions(server: MlflowServer, settings: Settings) -> list[str]:
    """Registered versions, read from the server's backend store itself (it answers while the server is down)."""
    store = MlflowClient(tracking_uri=server.backend_url, registry_uri=server.backend_url)
    return sorted(v.version for v in store.search_model_versions(f"name='{settings.mlflow.model_name}'"))


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory: pytest.TempPathFactory):
    """`mlflow server` on a database of the session's PostgreSQL, serving its artifacts; the outage tests stop it."""
    database = postgres.create_database("mlflow_registry")
    with MlflowServer(database, tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture(scope="module")
def champion(mlflow_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    """`leadradar train` and `promote` with only the server's URL configured, then one load as the service does."""
    home = tmp_path_factory.mktemp("server-home")
    settings = Settings(
        home=home,
        mlflow={"tracking_uri": mlflow_server.url},
        training={"horizons_days": (30,), "transition_models": False},
    )
    env = {"LEADRADAR_HOME": str(home), "LEADRADAR_MLFLOW__TRACKING_URI": mlflow_server.url, **QUICK}
    sim = tmp_path_factory.mktemp("server-sim")
    simulate(SIM, settings).write(sim)
    trained = run(env, "train", "--events", str(sim / "events.parquet"), "--stages", str(sim / "stages.parquet"))
    assert trained.exit_code == 0, trained.output
    promoted = run(env, "promote", "--json")
    assert promoted.exit_code == 0, promoted.output
    loaded = load_alias(settings)
    assert loaded.source == "registry"
    return Champion(settings, env, sim, loaded.ref.version)


def test_the_champion_trained_through_the_server_scores_from_served_artifacts_and_rolls_back(
    champion: Champion, mlflow_server: MlflowServer
) -> None:
    settings = champion.settings
    assert list(mlflow_server.artifacts.rglob("model.json")), "the bundle is not in the server's artifact store"
    assert not (settings.data_dir / "mlartifacts").exists(), "the client wrote artifacts itself, not through the server"

    loaded = load_alias(settings)
    end = pd.Timestamp(simulation_end(SIM), tz="UTC").as_unit("us")
    scores, _ = score_batch(RadarLog.from_dir(champion.sim), end, settings, loaded)
    assert len(scores) > 100 and scores["model_version"].eq(champion.version).all()

    client = MlflowClient(tracking_uri=mlflow_server.url)
    source = client.get_model_version(settings.mlflow.model_name, champion.version)
    newer = register(client, source.name, source.source, source.run_id, CHAMPION, {"note": "second champion"})
    assert resolve(settings).version == newer.version != champion.version

    rolled = run(champion.env, "rollback", "--reason", "server test")
    assert rolled.exit_code == 0, rolled.output
    assert resolve(settings).version == champion.version
    assert load_alias(settings).ref.version == champion.version


def test_training_while_the_server_is_down_fails_in_one_line_and_registers_nothing(
    champion: Champion, mlflow_server: MlflowServer
) -> None:
    before = versions(mlflow_server, champion.settings)
    mlflow_server.stop()
    sim = champion.sim
    failed = run(champion.env, "train", "--events", f"{sim}/events.parquet", "--stages", f"{sim}/stages.parquet")
    assert failed.exit_code == 2, failed.output
    lines = failed.output.strip().splitlines()
    assert len(lines) == 1 and mlflow_server.url in lines[0] and "unreachable" in lines[0], failed.output
    assert versions(mlflow_server, champion.settings) == before


def test_a_service_started_while_the_server_is_down_serves_its_last_local_copy_and_says_so(
    champion: Champion, mlflow_server: MlflowServer
) -> None:
    mlflow_server.stop()
    holder = ModelHolder(champion.settings, build=lambda loaded: loaded, poll_seconds=0)
    status = holder.status()
    assert status["ready"] and status["version"] == champion.version and status["source"] == "local copy", status
    assert "registry unreachable" in status["problem"], status
