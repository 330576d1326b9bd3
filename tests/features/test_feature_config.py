"""Bad feature configuration is refused when loaded, naming what is wrong; the definition hash tracks changes."""

from __future__ import annotations

import ibis
import pandas as pd
import pytest
from pydantic import ValidationError

from leadradar.config import FeatureConfig, Settings
from leadradar.features.cutoffs import as_utc, cadence_cutoffs, cutoff_frame
from leadradar.features.feature import Feature
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.features.trainset import registry_hash, unknown_event_types


def test_an_unknown_event_type_in_the_feature_configuration_is_refused_by_name():
    with pytest.raises(ValidationError, match="card_swipe"):
        Settings(events={"dwell_types": ["card_view", "card_swipe"]})
    with pytest.raises(ValidationError, match="video_call"):
        Settings(events={"two_way_contact": ["phone_call", "video_call"]})


def test_an_event_type_in_an_unknown_family_is_refused_by_name():
    with pytest.raises(ValidationError, match="gossip"):
        Settings(events={"types": {"card_view": "view", "rumour": "gossip"}, "two_way_contact": [], "dwell_types": []})


@pytest.mark.parametrize("windows", [(0, 7), (7, -1), (7, 5000)])
def test_an_impossible_window_is_refused_naming_it(windows):
    with pytest.raises(ValidationError, match=r"1\.\.3650") as err:
        FeatureConfig(windows_days=windows)
    assert str([w for w in windows if w <= 0 or w > 3650]) in str(err.value)


def test_two_features_with_one_name_are_refused():
    f = next(iter(build_registry(Settings())))
    with pytest.raises(ValueError, match=f.name):
        FeatureRegistry([f, f])


def test_a_feature_reading_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="nowhere"):
        Feature(name="x", family="y", source="nowhere", expr=lambda t: t, en="", zh="")


def test_every_feature_has_words_in_both_languages_with_a_value_slot():
    for f in build_registry(Settings()):
        assert "{value}" in f.en and "{value}" in f.zh, f.name
        assert any("\u4e00" <= ch <= "\u9fff" for ch in f.zh), f.name


def test_a_company_can_map_its_own_event_names_and_get_features_for_them():
    types = {**Settings().events.types, "mini_live": "content"}
    reg = build_registry(Settings(events={"types": types}))
    assert "n_mini_live_7d" in reg and "mini live" in reg["n_mini_live_7d"].en


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_the_definition_hash_is_stable_and_moves_with_any_definition():
    base = Settings()
    h = registry_hash(base, build_registry(base))
    assert h == registry_hash(Settings(), build_registry(Settings()))
    other_windows = Settings(features={"windows_days": (1, 7, 30)})
    assert registry_hash(other_windows, build_registry(other_windows)) != h
    other_session = Settings(features={"session_gap_minutes": 20})
    assert registry_hash(other_session, build_registry(other_session)) != h


class _Unread:
    """A settings section that fails when read."""

    def __init__(self, name: str):
        self.name = name

    def __getattr__(self, attr: str):
        raise AssertionError(f"feature definitions read settings.{self.name}.{attr}; add it to DEFINITION_SECTIONS")


@pytest.mark.slow  # about 3 s on 2 cores: left out of `make test-fast`
def test_feature_definitions_read_only_their_sections_of_the_settings():
    """The remembered definition hash is keyed by these sections: a definition reading another would go stale."""
    from leadradar.features.build import _MADE, CompiledQuery
    from leadradar.features.registry import DEFINITION_SECTIONS

    base = Settings()
    others = {name: _Unread(name) for name in Settings.model_fields if name not in DEFINITION_SECTIONS}
    assert {"training", "serving", "store", "privacy", "home"} <= set(others)
    narrowed = base.model_copy(update=others)
    _MADE.clear()
    assert registry_hash(narrowed, build_registry(narrowed)) == registry_hash(base, build_registry(base))
    online = CompiledQuery.of(narrowed, build_registry(narrowed), (), ())  # the online query's file has this key too
    assert online == CompiledQuery.of(base, build_registry(base), (), ())


def test_a_remembered_definition_hash_is_only_given_for_the_same_definitions():
    from dataclasses import replace

    from leadradar.features.build import _MADE
    from leadradar.features.registry import FeatureRegistry

    base = Settings()
    h = registry_hash(base, build_registry(base))
    retrained = Settings(training={"num_boost_round": 7})  # other training, same definitions
    assert registry_hash(retrained, build_registry(retrained)) == h
    registry = build_registry(base)
    assert registry_hash(base, registry.select(registry.names[:20])) != h  # other columns
    first = registry[registry.names[0]]
    by_hand = FeatureRegistry([replace(first, expr=lambda t: first.expr(t) + 1), *list(registry)[1:]])
    assert by_hand.origin is None and registry_hash(base, by_hand) != h
    _MADE.clear()
    assert registry_hash(base, build_registry(base)) == h


def test_events_of_types_outside_the_configuration_are_counted_not_dropped_silently():
    t = ibis.memtable(pd.DataFrame({"event_type": ["card_view", "card_swipe", "card_swipe", "poke"]}))
    assert unknown_event_types(t, Settings()) == {"card_swipe": 2, "poke": 1}


def test_cutoffs_of_one_build_must_share_a_time_of_day():
    with pytest.raises(ValueError, match="time of day"):
        cutoff_frame([pd.Timestamp("2026-03-02", tz="UTC"), pd.Timestamp("2026-03-09 10:00", tz="UTC")])


def test_a_cutoff_without_a_zone_is_refused_not_guessed():
    with pytest.raises(ValueError, match="no time zone"):
        as_utc("2026-03-02 10:00")


def test_weekly_cutoffs_fall_on_the_anchor_day_and_daily_ones_every_day():
    start, end = pd.Timestamp("2026-03-03 12:00", tz="UTC"), pd.Timestamp("2026-03-31", tz="UTC")
    weekly = cadence_cutoffs(start, end, FeatureConfig(cadence="weekly"))
    assert [c.day for c in weekly] == [9, 16, 23, 30] and all(c.weekday() == 0 for c in weekly)
    daily = cadence_cutoffs(start, end, FeatureConfig(cadence="daily"))
    assert len(daily) == 28 and daily[0] == pd.Timestamp("2026-03-04", tz="UTC")


@pytest.mark.slow  # about 7 s on 2 cores: left out of `make test-fast`
def test_the_definition_hash_is_the_same_in_every_process():
    import subprocess
    import sys

    code = (
        "from leadradar.features.trainset import registry_hash; "
        "from leadradar.features.registry import build_registry; "
        "from leadradar.config import Settings; s = Settings(); print(registry_hash(s, build_registry(s)))"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(hashes) == 1, hashes


def test_engagement_features_follow_their_half_lives_and_are_left_out_without_any():
    names = build_registry(Settings(features={"engagement_half_lives_days": (14, 2)})).names
    assert {"engagement_2d", "engagement_14d", "engaged_days_14d", "engagement_trend"} <= set(names)
    assert not [n for n in build_registry(Settings(features={"engagement_half_lives_days": ()})).names if "engag" in n]
    with pytest.raises(ValidationError, match=r"\[0\]"):
        FeatureConfig(engagement_half_lives_days=(0, 7))


def test_a_duckdb_memory_cap_too_small_is_one_line_from_compute_features_too(tmp_path):
    """The Python API (notebooks) gives the CLI's line: the cap, and the engine that needs less of it."""
    from leadradar.errors import ResourceError
    from leadradar.features.build import compute_features
    from leadradar.features.simulator import SimulationConfig, simulate

    sim = simulate(SimulationConfig(tenants=1, leads=2000, days=200, seed=1), Settings()).write(tmp_path)
    capped = Settings(features={"duckdb_memory_limit": "60MB"})
    cutoffs = [pd.Timestamp("2026-01-19", tz="UTC") + pd.Timedelta(days=7 * k) for k in range(20)]
    with pytest.raises(ResourceError, match=r"features.duckdb_memory_limit = 60MB \(Out of Memory.*--engine tiles"):
        compute_features(sim["events"], sim["stages"], cutoffs, capped, build_registry(capped), sim["items"])


def test_the_definition_hash_is_kept_for_the_next_process_and_made_again_when_unreadable(tmp_path, monkeypatch, caplog):
    """A service's start, a `train` or a `score` reads the hash a process made before instead of compiling the query
    (about a second and a half); a damaged file is made again, and other definitions get their own."""
    from leadradar.features import build as build_module
    from leadradar.features import trainset as trainset_module

    settings = Settings(home=tmp_path)
    cache = settings.query_cache_dir
    made = registry_hash(settings, build_registry(settings), cache)
    (kept,) = sorted(cache.glob("hash-*.txt"))
    assert kept.read_text() == made
    monkeypatch.setattr(build_module, "_MADE", {})  # as a new process

    def refuse(*args, **kwargs):
        raise AssertionError("compiled again")

    with monkeypatch.context() as m:
        m.setattr(trainset_module, "feature_query", refuse)
        assert registry_hash(settings, build_registry(settings), cache) == made
    kept.write_text("not a hash")
    monkeypatch.setattr(build_module, "_MADE", {})
    assert registry_hash(settings, build_registry(settings), cache) == made
    assert "unreadable" in caplog.text and kept.read_text() == made
    other = Settings(home=tmp_path, features={"windows_days": (1, 7, 30)})
    assert registry_hash(other, build_registry(other), cache) != made
    assert len(sorted(cache.glob("hash-*.txt"))) == 2
