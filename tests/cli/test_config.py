"""Settings: defaults run locally; environment and a TOML file override them; bad values are refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from leadradar.config import DEFAULT_EVENT_TYPES, Settings, language


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LEADRADAR_* variable from the session or the shell leaks in; relative paths land in tmp_path."""
    for key in list(os.environ):
        if key.startswith("LEADRADAR_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_keep_everything_under_a_local_data_directory(tmp_path: Path):
    s = Settings()
    assert s.data_dir == (tmp_path / ".leadradar").resolve()
    assert s.training.horizon_days == 30


def test_leadradar_home_moves_data_dir_tracking_uri_and_score_store_under_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    home = tmp_path / "elsewhere" / "lr"
    monkeypatch.setenv("LEADRADAR_HOME", str(home))
    s = Settings()
    assert s.data_dir == home.resolve()
    assert s.tracking_uri == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert s.score_store_url == f"sqlite:///{home.resolve() / 'scores.db'}"
    assert s.artifact_location == (home.resolve() / "mlartifacts").as_uri()
    assert s.model_cache_dir.parent == home.resolve()


def test_explicit_tracking_and_store_urls_win_over_the_home_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LEADRADAR_HOME", str(tmp_path / "lr"))
    monkeypatch.setenv("LEADRADAR_MLFLOW__TRACKING_URI", "postgresql://db/mlflow")
    monkeypatch.setenv("LEADRADAR_SERVING__SCORE_STORE_URL", "postgresql://db/scores")
    s = Settings()
    assert s.tracking_uri == "postgresql://db/mlflow"
    assert s.score_store_url == "postgresql://db/scores"


def test_nested_environment_variable_overrides_one_field_and_keeps_its_siblings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEADRADAR_TRAINING__HORIZON_DAYS", "14")
    s = Settings()
    assert s.training.horizon_days == 14
    assert s.training.test_fraction == 0.2
    assert s.training.lgbm_params["objective"] == "binary"


def _write_toml(path: Path) -> Path:
    path.write_text(
        "[training]\nhorizon_days = 21\n\n[features]\nwindows_days = [3, 14]\n\n[serving]\nport = 4100\n",
        encoding="utf-8",
    )
    return path


def test_a_toml_file_named_by_leadradar_config_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LEADRADAR_CONFIG", str(_write_toml(tmp_path / "lr.toml")))
    s = Settings()
    assert s.training.horizon_days == 21
    assert s.features.windows_days == (3, 14)
    assert s.serving.port == 4100
    assert s.training.validation_fraction == 0.15  # untouched by the file


def test_environment_beats_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("LEADRADAR_CONFIG", str(_write_toml(tmp_path / "lr.toml")))
    monkeypatch.setenv("LEADRADAR_TRAINING__HORIZON_DAYS", "14")
    s = Settings()
    assert s.training.horizon_days == 14
    assert s.serving.port == 4100


def test_a_missing_config_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("LEADRADAR_CONFIG", str(missing))
    with pytest.raises(FileNotFoundError, match="LEADRADAR_CONFIG") as info:
        Settings()
    assert str(missing) in str(info.value)


def test_an_event_type_with_an_unknown_family_is_refused_by_name():
    types = {**DEFAULT_EVENT_TYPES, "poke": "nudge"}
    with pytest.raises(ValidationError) as info:
        Settings(events={"types": types})
    assert "poke" in str(info.value) and "nudge" in str(info.value)


def test_a_two_way_contact_type_that_is_not_configured_is_refused_by_name():
    types = {k: v for k, v in DEFAULT_EVENT_TYPES.items() if k != "meeting"}
    with pytest.raises(ValidationError, match="meeting"):
        Settings(events={"types": types})


def test_a_company_can_map_its_own_event_types_onto_families():
    types = {**DEFAULT_EVENT_TYPES, "poster_scan": "view"}
    s = Settings(events={"types": types})
    assert "poster_scan" in s.events.of_family("view")


@pytest.mark.parametrize("bad", [0, -7, 3651])
def test_feature_windows_outside_one_to_3650_days_are_refused(bad: int):
    with pytest.raises(ValidationError, match=str(bad)):
        Settings(features={"windows_days": (7, bad)})


def test_feature_windows_at_the_limits_are_accepted_sorted_and_unique():
    s = Settings(features={"windows_days": (3650, 1, 7, 7)})
    assert s.features.windows_days == (1, 7, 3650)


def test_bad_window_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEADRADAR_FEATURES__WINDOWS_DAYS", "[7, 0]")
    with pytest.raises(ValidationError, match=r"1\.\.3650"):
        Settings()


def test_a_negative_count_of_leads_answered_in_place_is_refused_and_zero_sends_every_request_to_a_thread(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("LEADRADAR_SERVING__INLINE_LEADS", "-3")
    with pytest.raises(ValidationError, match="inline_leads"):
        Settings()
    monkeypatch.setenv("LEADRADAR_SERVING__INLINE_LEADS", "0")
    assert Settings().serving.inline_leads == 0


@pytest.mark.parametrize(
    "typed,meant",
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en"),
        ("zh-CN", "zh-CN"),
        ("zh", "zh-CN"),
        (" zh_cn ", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("fr", None),
        ("zh-TW", None),
        ("", None),
        ("english", None),
    ],
)
def test_a_language_is_read_as_a_person_types_it_and_one_we_do_not_write_is_none(typed: str, meant: str | None):
    assert language(typed) == meant
