"""Target names, labels and the horizon curve come from one place (leadradar.targets)."""

from __future__ import annotations

import numpy as np

from leadradar.config import Settings
from leadradar.targets import Targets, TargetSpec, close_curve, close_days, close_targets


def test_targets_follow_the_settings_horizons_with_the_main_one_included() -> None:
    settings = Settings()
    settings.training.horizons_days = (7, 90)
    settings.training.horizon_days = 30
    targets = Targets.from_settings(settings)
    assert targets.horizons_days == (7, 30, 90)
    assert targets.main == "close_30d" and targets.main_label == "y_close_30d"
    assert targets.label_columns == ["y_close_7d", "y_close_30d", "y_close_90d", "y_advance_30d"]
    names = [s.name for s in targets.specs()]
    assert names[:3] == ["close_7d", "close_30d", "close_90d"]
    assert names[3:] == [f"advance_{s}" for s in settings.funnel.open_stages]


def test_transitions_look_as_far_as_the_main_horizon_and_close_models_as_their_own() -> None:
    targets = Targets.from_settings(Settings())
    assert targets.horizon_of(TargetSpec("close_7d", "y_close_7d")) == 7
    assert targets.horizon_of(TargetSpec("advance_new", "y_advance_30d", stage="new")) == targets.main_days


def test_without_transition_models_only_close_targets_remain() -> None:
    settings = Settings()
    settings.training.transition_models = False
    assert all(s.stage is None for s in Targets.from_settings(settings).specs())


def test_only_close_names_parse_to_a_horizon() -> None:
    assert close_days("close_90d") == 90
    assert [close_days(n) for n in ("advance_new", "close_chained", "close_30", "xclose_30d")] == [None] * 4
    assert close_targets(["advance_new", "close_90d", "close_7d"]) == [(7, "close_7d"), (90, "close_90d")]


def test_the_close_curve_never_falls_as_the_horizon_grows() -> None:
    probs = {"close_7d": np.array([0.3, 0.1]), "close_30d": np.array([0.2, 0.4]), "close_90d": np.array([0.25, 0.5])}
    curve = close_curve(probs, probs)
    np.testing.assert_allclose(curve[7], [0.3, 0.1])
    np.testing.assert_allclose(curve[30], [0.3, 0.4])
    np.testing.assert_allclose(curve[90], [0.3, 0.5])
