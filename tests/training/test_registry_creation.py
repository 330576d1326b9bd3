"""A new SQLite registry is made whole or not at all: a process killed while MLflow builds its schema leaves nothing
that a later run cannot open; a half-made file from before is moved aside when it holds no work."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.store.db.base_sql_model import Base
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.registry import configure_mlflow

# The migration before the one that adds `logged_models` (mlflow/store/db_migrations/versions/400f98739977_*).
BEFORE_LOGGED_MODELS = "0584bdc529eb"

CREATE = """
import sys
from leadradar.cli import app
from leadradar.config import Settings
from leadradar.registry import configure_mlflow
configure_mlflow(Settings(home=sys.argv[1]))
"""


def schema_files(data_dir: Path) -> list[Path]:
    """The registry file, or the one it is being built in, once MLflow has written to it (a file renamed away
    between the listing and the look is not counted)."""
    written = []
    for path in data_dir.glob("*mlflow.db*"):
        with contextlib.suppress(FileNotFoundError):
            if not path.name.endswith(".lock") and path.stat().st_size > 0:
                written.append(path)
    return written


def half_made(settings: Settings, *, with_run: bool) -> Path:
    """A registry file as an older version left it when killed among MLflow's migrations (seen in CI): the
    migration that adds `logged_models` had run and was not yet recorded, later tables were missing."""
    settings.ensure_dirs()
    path = settings.data_dir / "mlflow.db"
    store = SqlAlchemyStore(f"sqlite:///{path}", settings.artifact_location)
    if with_run:
        store.create_run("0", "someone", 0, [], "kept run")
    store.engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE webhook_events")
        db.execute("UPDATE alembic_version SET version_num = ?", (BEFORE_LOGGED_MODELS,))
    db.close()
    return path


def tables(path: Path) -> set[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


@pytest.mark.slow
def test_the_registry_file_is_never_seen_half_made_while_mlflow_builds_its_schema(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    registry = settings.data_dir / "mlflow.db"
    child = subprocess.Popen([sys.executable, "-c", CREATE, str(settings.data_dir)])
    looks = []
    while child.poll() is None:
        if registry.exists() and registry.stat().st_size > 0:
            looks.append(set(Base.metadata.tables) - tables(registry))
        time.sleep(0.01)
    assert child.returncode == 0 and looks, "the registry was never made"
    assert all(not missing for missing in looks), f"seen with tables missing: {[m for m in looks if m][:1]}"


@pytest.mark.slow
def test_kill_9_while_mlflow_builds_its_schema_leaves_a_registry_the_next_run_opens(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    child = subprocess.Popen([sys.executable, "-c", CREATE, str(settings.data_dir)])
    deadline = time.monotonic() + 120
    while not (settings.data_dir.exists() and schema_files(settings.data_dir)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert schema_files(settings.data_dir), "MLflow never started its schema"
    time.sleep(0.3)  # MLflow's migrations take seconds: the kill lands among them
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL, "the schema was built before the kill: nothing was tested"
    experiment = configure_mlflow(settings)
    assert MlflowClient().get_experiment(experiment).name == settings.mlflow.experiment
    assert not list(settings.data_dir.glob(".mlflow.db.creating-*"))
    for name in ("mlflow.db", "mlflow.db.lock"):
        assert stat.S_IMODE((settings.data_dir / name).stat().st_mode) == 0o600, name


def test_a_half_made_registry_holding_no_run_is_moved_aside_and_made_again(tmp_path, caplog) -> None:
    settings = Settings(home=tmp_path / "home")
    half_made(settings, with_run=False)
    experiment = configure_mlflow(settings)
    assert MlflowClient().get_experiment(experiment).name == settings.mlflow.experiment
    aside = list(settings.data_dir.glob("mlflow.db.half-made-*"))
    assert len(aside) == 1 and str(aside[0]) in caplog.text and "logged_models already exists" in caplog.text


def test_a_half_made_registry_with_runs_in_it_is_left_and_named_in_one_line(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    path = half_made(settings, with_run=True)
    size = path.stat().st_size
    with pytest.raises(
        UserError, match=r"MLflow cannot open this registry .*logged_models already exists.* holds runs"
    ):
        configure_mlflow(settings)
    assert path.stat().st_size == size and not list(settings.data_dir.glob("mlflow.db.half-made-*"))


def test_a_registry_file_that_is_not_a_database_is_left_and_named_in_one_line(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    path = settings.data_dir / "mlflow.db"
    path.write_text("a backup script wrote its log here\n")
    result = CliRunner().invoke(app, ["models"], env={"LEADRADAR_HOME": str(settings.data_dir)})
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"{path} is not a database SQLite can read (file is not a database)" in lines[0]
    assert path.read_text() == "a backup script wrote its log here\n"


def test_a_whole_registry_recorded_at_an_older_schema_is_one_line_with_the_upgrade_command(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    path = settings.data_dir / "mlflow.db"
    SqlAlchemyStore(f"sqlite:///{path}", settings.artifact_location).engine.dispose()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (BEFORE_LOGGED_MODELS,))
    db.close()
    result = CliRunner().invoke(app, ["models"], env={"LEADRADAR_HOME": str(settings.data_dir)})
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert f"found version {BEFORE_LOGGED_MODELS}" in lines[0] and f"mlflow db upgrade sqlite:///{path}" in lines[0]


def contents(path: Path) -> tuple[list, dict, list]:
    """The schema as SQLite keeps it, every other table's rows, and the experiments without their times."""
    with sqlite3.connect(path) as db:
        schema = sorted(db.execute("SELECT type, name, sql FROM sqlite_master"))
        names = [name for kind, name, _ in schema if kind == "table" and name != "experiments"]
        rows = {name: sorted(map(repr, db.execute(f'SELECT * FROM "{name}"'))) for name in names}
        experiments = list(db.execute("SELECT experiment_id, name, artifact_location FROM experiments"))
    db.close()
    return schema, rows, experiments


def test_a_registry_made_from_the_process_image_is_the_one_mlflows_migrations_make(tmp_path, monkeypatch) -> None:
    """After a process's first new registry, the next start from its image: the same file MLflow's migrations build,
    the Default experiment at the new file's own place, and the same experiment ids after."""
    from leadradar import registry

    monkeypatch.setattr(registry, "_EMPTY_IMAGE", [])
    migrated, from_image = Settings(home=tmp_path / "migrated"), Settings(home=tmp_path / "from-image")
    first = configure_mlflow(migrated)
    assert registry._EMPTY_IMAGE, "no image kept after the first registry"
    second = configure_mlflow(from_image)
    schema, rows, experiments = contents(migrated.data_dir / "mlflow.db")
    schema2, rows2, experiments2 = contents(from_image.data_dir / "mlflow.db")
    assert schema2 == schema and rows2 == rows and first == second
    assert experiments[0] == (0, "Default", f"{migrated.artifact_location}/0")
    assert experiments2[0] == (0, "Default", f"{from_image.artifact_location}/0")
    assert [e[:2] for e in experiments2] == [e[:2] for e in experiments]
    assert stat.S_IMODE((from_image.data_dir / "mlflow.db").stat().st_mode) == 0o600
    client = MlflowClient(tracking_uri=from_image.tracking_uri)
    run = client.create_run(second)
    assert client.get_run(run.info.run_id).info.artifact_uri.startswith(from_image.artifact_location)
