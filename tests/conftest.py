"""Shared, session-scoped fixtures: one small simulation, one trained champion, one running server."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadradar.config import QUIET_ENVIRONMENT, Settings

for _key, _value in QUIET_ENVIRONMENT.items():
    os.environ.setdefault(_key, _value)
# A test worker of pytest-xdist starts with COLUMNS=80, which the CLI's Rich consoles would keep from import on;
# the tests that need a width give COLUMNS to the command they run.
os.environ.pop("COLUMNS", None)

SMALL = {"tenants": 2, "leads": 10_000, "days": 270, "seed": 3}


@dataclass(frozen=True)
class Sim:
    dir: Path
    events: Path
    stages: Path
    truth: Path
    items: Path
    leads: Path
    arrivals: Path | None = None
    sales: Path | None = None


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
    from leadradar.features.simulator import SimulationConfig, simulate

    out = tmp_path_factory.mktemp("sim")
    paths = simulate(SimulationConfig(**SMALL), settings).write(out)
    return Sim(out, **paths)


@pytest.fixture(scope="session")
def trained(small_sim: Sim, settings: Settings) -> dict:
    """`leadradar train --json` on the small simulation, as another program would drive it."""
    from typer.testing import CliRunner

    from leadradar.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--events", str(small_sim.events), "--stages", str(small_sim.stages), "--json"],
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
    from leadradar.serving.auth import KeyStore

    return KeyStore(settings.score_store_url).create("t01", "system", name="tests")[1]


@pytest.fixture(scope="session")
def server(trained: dict, settings: Settings):
    """The real BentoML service in a subprocess, serving the champion; stopped after the session. It does not
    rescore: events other tests post would otherwise move the ranked lists the tests compare with the batch run
    (tests/serving/test_rescoring.py and the alert tests start servers that do)."""
    from leadradar.serving.process import ServiceProcess

    with ServiceProcess(settings, env={"LEADRADAR_SERVING__RESCORE": "false"}) as svc:
        yield svc


# -- The scoring service's tests (tests/serving/test_service_*.py): scores in the store, keys per role, a bare server --


@dataclass(frozen=True)
class Batch:
    """Two batch runs kept in the session's score store, a week apart; `scores`/`features` are the latest."""

    as_of: object  # pd.Timestamp, UTC
    previous: object
    scores: object  # pd.DataFrame: the latest run, as `leadradar score` keeps it
    features: object  # pd.DataFrame: the latest run's feature rows
    version: str


@dataclass(frozen=True)
class Key:
    token: str
    key_id: str
    tenant: str
    role: str
    sales_id: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def scored(trained: dict, small_sim: Sim, settings: Settings) -> Batch:
    """Every open lead scored at the simulation's end and a week before, and stored, as `leadradar score` does."""
    import pandas as pd

    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulation_end
    from leadradar.registry import load_alias
    from leadradar.serving.scoring import score_batch, store_batch
    from leadradar.serving.store import ScoreStore

    end = pd.Timestamp(simulation_end(SimulationConfig(**SMALL)), tz="UTC").as_unit("us")
    loaded = load_alias(settings)
    store = ScoreStore(settings.score_store_url)
    log = RadarLog(small_sim.events, small_sim.stages, items=small_sim.items, leads=small_sim.leads)
    runs = {}
    for as_of in (end - pd.Timedelta(days=7), end):  # the latest last, so its salesperson context stays
        runs[as_of] = score_batch(log, as_of, settings, loaded)
        store_batch(store, *runs[as_of])
    scores, features = runs[end]
    return Batch(end, end - pd.Timedelta(days=7), scores, features, loaded.ref.version)


@pytest.fixture(scope="session")
def role_keys(settings: Settings, scored: Batch) -> dict[tuple[str, str], Key]:
    """A key per (tenant, role) of t01 and t02; a sales key belongs to the tenant's busiest salesperson."""
    from leadradar.serving.auth import KeyStore

    store = KeyStore(settings.score_store_url)
    keys = {}
    for tenant in ("t01", "t02"):
        mine = scored.scores[scored.scores["tenant_id"] == tenant]
        busiest = mine["sales_id"].value_counts().index[0]
        for role in ("system", "manager", "sales"):
            sales_id = busiest if role == "sales" else None
            key_id, token = store.create(tenant, role, name=f"service tests {role}", sales_id=sales_id)
            keys[tenant, role] = Key(token, key_id, tenant, role, sales_id)
    return keys


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the run (tests/support/postgres.py); each test makes its own database."""
    from tests.support.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (Debian: apt-get install postgresql, as .ci/run does)")
    pytest.importorskip("psycopg", reason="psycopg is in the dev extra: pip install -e '.[dev]'")
    with PostgresServer(bin_dir) as pg:
        yield pg


@pytest.fixture(scope="session")
def spark_cluster():
    """A Spark standalone master, a worker and a Spark Connect server on 127.0.0.1 (tests/support/spark_cluster.py)."""
    import shutil

    from tests.support.spark_cluster import SparkCluster

    pytest.importorskip("pyspark.sql.connect.client", reason="Spark Connect needs the spark-connect extra")
    if shutil.which("java") is None:
        pytest.skip("no Java for Spark (Debian: openjdk-17-jre-headless)")
    with SparkCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def bare_server(tmp_path_factory: pytest.TempPathFactory):
    """A server on an empty data directory (no model anywhere), with a 4 KB body limit and no key cache.

    One start serves three configurations that the session server cannot show: no model to answer
    with, a small `max_body_bytes`, and a revoked key refused at once (`key_cache_seconds=0`).
    """
    from leadradar.serving.process import ServiceProcess

    home = tmp_path_factory.mktemp("bare-home")
    env = {
        "LEADRADAR_SERVING__MAX_BODY_BYTES": "4096",
        "LEADRADAR_SERVING__KEY_CACHE_SECONDS": "0",
        "BENTOML_HOME": str(tmp_path_factory.mktemp("bare-bentoml")),  # no bundled model to fall back to
    }
    with ServiceProcess(Settings(home=home), env=env, require_ready=False) as svc:
        yield svc


@pytest.fixture(autouse=True)
def error_answers():
    """Every /v1 error answer a test receives has the one shape the OpenAPI document gives (`ErrorBody`)."""
    from tests.support.error_answers import collected, problems

    with collected() as seen:
        yield seen
    wrong = problems(seen)
    assert not wrong, "error answers outside the documented shape:\n" + "\n".join(wrong)


# -- `make test-fast`: the unit tests, without servers, Spark, notebooks or a trained champion ---------------
SLOW_FIXTURES = {
    *("trained", "server", "scored", "role_keys", "bare_server", "small_sim", "live", "edge", "proxied"),
    "spark_cluster",
}
SLOW_FOLDERS = {"notebooks", "packaging"}


# Files whose tests use the session's trained champion run on one worker, so that it is trained (and scored, and
# served) once, not once per worker.
SESSION_MODEL_FIXTURES = {"small_sim", "trained", "server", "scored", "role_keys"}
SESSION_MODEL_GROUP = "session-model"
GROUPS_KEY = "leadradar/test-groups"  # in pytest's cache: the workers' grouping, read by the controller's scheduler


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark as `slow` what starts a server or Spark, runs a notebook, or needs the session's trained model (a test of
    3 s or more is marked by hand, with its measured time). Then put the files that need the session's model
    first, then the other files holding slow tests (order kept within each),
    so that with `--dist loadfile` the last files a worker takes are short ones instead of one worker finishing a
    long file while the other waits; a worker also leaves that grouping for the controller (`FileGroups`)."""
    model_files: set[Path] = set()
    for item in items:
        folder = item.path.parent.name
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            folder in SLOW_FOLDERS
            or fixtures & SLOW_FIXTURES
            or item.get_closest_marker("server")
            or item.get_closest_marker("spark")
        ):
            item.add_marker(pytest.mark.slow)
        if fixtures & SESSION_MODEL_FIXTURES:
            model_files.add(item.path)
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path not in model_files, item.path not in slow_files))
    cache = getattr(config, "cache", None)  # none with `-p no:cacheprovider`: then a file is a unit, as before
    if hasattr(config, "workerinput") and cache is not None:
        groups = {path.relative_to(config.rootpath).as_posix(): SESSION_MODEL_GROUP for path in model_files}
        cache.set(GROUPS_KEY, groups)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """`--dist loadfile`, except that the files needing the session's model are one unit of work (pytest-xdist's
    own `loadgroup` cannot carry a group under pytest 9, whose test ids it no longer rewrites). The Makefile adds
    `--no-loadscope-reorder`, so that units go out in the order `pytest_collection_modifyitems` gave."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FileGroups(LoadFileScheduling):
        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            if self.groups is None:  # first called once every worker has collected (and written its grouping)
                cache = getattr(config, "cache", None)
                self.groups = cache.get(GROUPS_KEY, {}) if cache is not None else {}
            return str(self.groups.get(path, path))

    return FileGroups(config, log)
