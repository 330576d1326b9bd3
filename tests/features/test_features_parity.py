"""One definition, three executions: DuckDB, Spark (local, a standalone cluster, Spark Connect) and online (SQLite)
agree on simulated data; on the cluster, the training set (features and labels) as the executors write it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from leadradar.config import FeatureConfig, Settings
from leadradar.errors import BadValueError
from leadradar.features.build import compute_features
from leadradar.features.engines import connected, read_parquet
from leadradar.features.online import OnlineFeatures
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import build_training_set, write_training_set
from leadradar.training.table import read_table
from tests.cli.test_cli_errors import cli
from tests.support.parity import KEY, assert_same_features

# Whole builds on three engines (Spark among them): in `make test`, left out of `make test-fast`.
pytestmark = pytest.mark.slow

SETTINGS = Settings()
REGISTRY = build_registry(SETTINGS)
# Odd times of day on purpose: the day grid must follow the cutoffs, not midnight.
CUTOFFS = [pd.Timestamp("2026-03-09 07:15:30", tz="UTC"), pd.Timestamp("2026-04-20 07:15:30", tz="UTC")]
# The cluster builds' training sets stop here: four weekly cutoffs keep Spark's work small.
UNTIL = pd.Timestamp("2026-03-10", tz="UTC")


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("parity")
    result = simulate(SimulationConfig(tenants=2, leads=1500, days=120, seed=21), SETTINGS)
    return {name: str(path) for name, path in result.write(out).items()}


@pytest.fixture(scope="module")
def duck(sim) -> pd.DataFrame:
    return compute_features(sim["events"], sim["stages"], CUTOFFS, SETTINGS, REGISTRY, sim["items"], leads=sim["leads"])


def test_duckdb_and_online_sqlite_agree_on_every_row(sim, duck):
    online = OnlineFeatures(SETTINGS, REGISTRY).compute(
        *(pq.read_table(sim[k]) for k in ("events", "stages")),
        CUTOFFS,
        pq.read_table(sim["items"]),
        pq.read_table(sim["leads"]),
    )
    assert len(duck) > 500
    assert_same_features(duck, online, REGISTRY)


def test_daily_cadence_cutoffs_agree_too(sim):
    days = [CUTOFFS[0] + pd.Timedelta(days=d) for d in range(0, 6)]
    a = compute_features(sim["events"], sim["stages"], days, SETTINGS, REGISTRY, sim["items"], leads=sim["leads"])
    b = OnlineFeatures(SETTINGS, REGISTRY).compute(
        *(pq.read_table(sim[k]) for k in ("events", "stages")),
        days,
        pq.read_table(sim["items"]),
        pq.read_table(sim["leads"]),
    )
    assert a["cutoff"].nunique() == 6
    assert_same_features(a, b, REGISTRY)


def test_one_leads_request_equals_its_batch_row(sim, duck):
    """What a scoring request sends: the lead's events, visits its shares brought, its stages and attributes."""
    online = OnlineFeatures(SETTINGS, REGISTRY)
    events, stages = pq.read_table(sim["events"]), pq.read_table(sim["stages"])
    items, leads = pq.read_table(sim["items"]), pq.read_table(sim["leads"])
    local = REGISTRY.select([f.name for f in REGISTRY if f.source != "sales"])
    at = duck[duck["cutoff"] == CUTOFFS[1]]
    busy = at.sort_values("n_fam_view_all").tail(10)
    for lead in pd.concat([busy, at.sample(20, random_state=2)])["lead_id"].unique():
        mine = pc.or_kleene(pc.equal(events["lead_id"], lead), pc.equal(events["referrer_lead_id"], lead))
        req = online.compute(
            events.filter(pc.fill_null(mine, False)),
            stages.filter(pc.equal(stages["lead_id"], lead)),
            [CUTOFFS[1]],
            items,
            leads.filter(pc.equal(leads["lead_id"], lead)),
        )
        assert_same_features(at[at["lead_id"] == lead], req[req["lead_id"] == lead], local)


@pytest.mark.spark
def test_spark_and_duckdb_agree_on_every_row(sim, duck):
    spark = compute_features(
        sim["events"], sim["stages"], CUTOFFS, SETTINGS, REGISTRY, sim["items"], engine="spark", leads=sim["leads"]
    )
    assert_same_features(duck, spark, REGISTRY)


@pytest.fixture(scope="module")
def duck_set(sim) -> pd.DataFrame:
    """The DuckDB training set up to UNTIL: four weekly cutoffs, 90-day labels still open (missing)."""
    log = RadarLog.from_paths(sim["events"], sim["stages"], beside=("items", "leads"))
    frame = build_training_set(log, SETTINGS, until=UNTIL, engine="duckdb").frame
    assert frame["cutoff"].nunique() >= 3 and frame["y_close_30d"].sum() > 0 and frame["y_close_90d"].isna().all()
    return frame


def assert_same_training_set(duck: pd.DataFrame, other: pd.DataFrame) -> None:
    """Same columns in the same order, the features equal as the engines compute them, the labels exactly."""
    assert list(other.columns) == list(duck.columns)
    assert_same_features(duck, other, REGISTRY)
    labels = [c for c in duck.columns if c.startswith("y_")]
    ordered = [f.sort_values(KEY).reset_index(drop=True)[labels] for f in (duck, other)]
    pd.testing.assert_frame_equal(*ordered)


def tenant_parts(out: Path) -> set[str]:
    """The `tenant_id=…` folders that hold Parquet parts the executors wrote."""
    return {p.parent.name for p in out.glob("tenant_id=*/part-*.parquet")}


@pytest.mark.spark
def test_a_standalone_cluster_writes_the_duckdb_training_set_from_its_executors_and_stops_its_session(
    sim, duck_set, spark_cluster, tmp_path
):
    from pyspark.sql import SparkSession

    on_cluster = Settings(features={"engine": "spark", "spark_master": spark_cluster.master})
    log = RadarLog.from_paths(sim["events"], sim["stages"], beside=("items", "leads"))
    earlier = tmp_path / "set.parquet" / "tenant_id=gone"  # an earlier build's folder: replaced whole
    earlier.mkdir(parents=True)
    (earlier / "part-00000-old.snappy.parquet").write_bytes(b"old")
    (tmp_path / "set.parquet" / "_SUCCESS").touch()
    written = write_training_set(log, on_cluster, tmp_path / "set.parquet", until=UNTIL)
    assert not earlier.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["set.parquet"]
    assert SparkSession.getActiveSession() is None, "the build left its cluster session running"
    assert re.search(r"Registering app leadradar$", spark_cluster.tail("master", 400), re.M), "it did not run there"
    assert written.parts and written.rows == len(duck_set)
    assert tenant_parts(tmp_path / "set.parquet") == {f"tenant_id={t}" for t in duck_set["tenant_id"].unique()}
    assert_same_training_set(duck_set, read_parquet(tmp_path / "set.parquet"))


@pytest.mark.spark
def test_features_build_on_spark_connect_writes_the_duckdb_training_set_and_releases_its_session(
    sim, duck_set, spark_cluster, tmp_path
):
    """Through the CLI, configured by the environment: the Connect server's executors write the parts, and the
    session the build opened is closed on the server (its id, reused, is refused as closed, not reattached)."""
    from pyspark.errors import PySparkException
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    remote = f"{spark_cluster.remote}/;session_id={uuid.uuid4()}"
    out = tmp_path / "set.parquet"
    args = ["features", "build", "--engine", "spark", "--events", sim["events"], "--stages", sim["stages"]]
    env = {"LEADRADAR_FEATURES__SPARK_MASTER": remote}
    built = cli(*args, "--out", out, "--until", UNTIL.isoformat(), home=tmp_path / "home", env=env)
    assert built.returncode == 0, built.stderr
    assert f"{len(duck_set):,} rows" in built.stderr + built.stdout
    assert tenant_parts(out) == {f"tenant_id={t}" for t in duck_set["tenant_id"].unique()}
    assert_same_training_set(duck_set, read_table(out))  # what `train --table` reads
    again = ConnectSession.builder.remote(remote).create()
    try:
        with pytest.raises(PySparkException, match="SESSION_CLOSED"):
            again.range(1).collect()
    finally:
        again.stop()


def test_a_spark_build_refuses_a_folder_holding_other_files_and_leaves_it_as_it_was(sim, tmp_path):
    """Spark's own overwrite emptied the folder `--out` named: `--out data` took the events with it."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.parquet").write_bytes(Path(sim["events"]).read_bytes())
    log = RadarLog.from_paths(sim["events"], sim["stages"])
    with pytest.raises(BadValueError, match=r"data holds files a Spark build did not write \(events\.parquet\)"):
        write_training_set(log, Settings(features={"engine": "spark"}), data, until=UNTIL)
    assert (data / "events.parquet").read_bytes() == Path(sim["events"]).read_bytes()


def test_tiles_engine_and_duckdb_agree_on_every_row(sim, duck):
    """Day tiles and prefix sums (features/tiles/) against the reference query, at odd times of day."""
    tiles = compute_features(
        sim["events"], sim["stages"], CUTOFFS, SETTINGS, REGISTRY, sim["items"], engine="tiles", leads=sim["leads"]
    )
    assert_same_features(duck, tiles, REGISTRY)


@pytest.mark.spark
def test_spark_sessions_take_the_adaptive_setting():
    """Off by default (the feature query's few hundred stages re-planned one by one cost more than they save)."""
    with connected("spark", FeatureConfig()) as con:
        assert con._session.conf.get("spark.sql.adaptive.enabled") == "false"
    with connected("spark", FeatureConfig(spark_adaptive=True)) as con:
        assert con._session.conf.get("spark.sql.adaptive.enabled") == "true"
