"""The funnel model's outputs: horizons that never fall, each lead's own transition, the chained close."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from leadradar.models.funnel import FunnelModel
from leadradar.targets import TargetSpec

STAGES = ["new", "engaged", "contacted", "qualified", "proposal"]


@pytest.fixture(scope="module")
def fitted() -> tuple[FunnelModel, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 6000
    stage = rng.choice(STAGES, n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    rank = pd.Series(stage).map({s: i for i, s in enumerate(STAGES)}).to_numpy()
    x = rng.normal(size=n)
    p30 = 1 / (1 + np.exp(-(-4 + 0.9 * rank + x)))
    frame = pd.DataFrame(
        {"x": x, "stage_rank": rank.astype(float), "stage": stage, "lead_id": np.arange(n).astype(str)}
    )
    frame["y7"] = (rng.random(n) < p30 * 0.4).astype(float)
    frame["y30"] = np.maximum(frame["y7"], (rng.random(n) < p30).astype(float))
    frame["yadv"] = (rng.random(n) < 1 / (1 + np.exp(-(-1 + x)))).astype(float)
    targets = [TargetSpec("close_7d", "y7"), TargetSpec("close_30d", "y30")]
    targets += [TargetSpec(f"advance_{s}", "yadv", stage=s) for s in STAGES]
    model = FunnelModel(
        targets,
        ["x", "stage_rank"],
        params={"objective": "binary", "verbosity": -1, "min_data_in_leaf": 20},
        num_boost_round=200,
        early_stopping_rounds=20,
        main_target="close_30d",
    )
    model.fit(frame.iloc[:4000], frame.iloc[4000:])
    return model, frame.iloc[4000:]


def test_close_probability_never_falls_as_the_horizon_grows(fitted):
    model, frame = fitted
    out = model.predict_funnel(frame, STAGES)
    assert (out["p_close_7d"] <= out["p_close_30d"] + 1e-12).all()
    raw = model.predict_targets(frame)
    assert (out["p_close_30d"] >= raw["close_30d"] - 1e-12).all()


def test_each_lead_gets_the_transition_of_its_own_stage(fitted):
    model, frame = fitted
    out = model.predict_funnel(frame, STAGES)
    raw = model.predict_targets(frame)
    for s in STAGES:
        at = (frame["stage"] == s).to_numpy()
        np.testing.assert_allclose(out.loc[at, "p_advance"], raw.loc[at, f"advance_{s}"])


def test_the_chained_close_multiplies_the_transitions_from_here_to_the_win(fitted):
    model, frame = fitted
    out = model.predict_funnel(frame, STAGES)
    raw = model.predict_targets(frame)
    row = frame[frame["stage"] == "contacted"].index[0]
    expected = raw.loc[row, ["advance_contacted", "advance_qualified", "advance_proposal"]].prod()
    assert out.loc[row, "p_close_chained"] == pytest.approx(expected)


def test_save_and_load_give_the_same_answers(fitted, tmp_path):
    model, frame = fitted
    again = FunnelModel.load(model.save(tmp_path / "bundle"))
    pd.testing.assert_frame_equal(model.predict_targets(frame), again.predict_targets(frame))
    assert again.predict_proba(frame).shape == (len(frame), 2)
