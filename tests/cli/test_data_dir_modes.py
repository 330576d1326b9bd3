"""The data directory holds customers' scores, key and password hashes and the dashboard's signing key:
only the user who runs leadradar may read it (folders 0700, databases and the secret 0600)."""

from __future__ import annotations

import stat
from pathlib import Path

from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.serving.auth import KeyStore
from leadradar.serving.dashboard.sessions import SECRET_FILE, load_secret
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_directory_and_its_databases_are_private_to_the_user(tmp_path):
    home = tmp_path / "home"
    result = CliRunner().invoke(
        app,
        ["users", "create", "--tenant", "t01", "--name", "anna", "--password-stdin"],
        input="violet kettle on the roof\n",
        env={"LEADRADAR_HOME": str(home)},
    )
    assert result.exit_code == 0, result.output
    settings = Settings(home=home)
    load_secret(settings)

    for folder in (home, settings.scores_dir, settings.model_cache_dir):
        assert mode(folder) == 0o700, folder
    for name in ("scores.db", "mlflow.db", SECRET_FILE):
        assert mode(home / name) == 0o600, name


def test_databases_made_before_are_tightened_when_the_data_directory_is_prepared(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "scores.db").touch(mode=0o644)
    Settings(home=home).ensure_dirs()
    assert mode(home) == 0o700 and mode(home / "scores.db") == 0o600


def test_each_store_creates_its_sqlite_file_readable_by_this_user_only(tmp_path):
    for store, name in ((ScoreStore, "scores.db"), (KeyStore, "keys.db"), (UserStore, "users.db")):
        path = tmp_path / "elsewhere" / name
        store(f"sqlite:///{path}")
        assert mode(path) == 0o600, name
