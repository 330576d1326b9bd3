"""The simulator: deterministic, on contract, realistic enough, and its truth is exact."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from leadradar.config import DEFAULT_EVENT_TYPES, Settings
from leadradar.features.contract import EVENT_SCHEMA, STAGE_SCHEMA
from leadradar.features.simulator import SimulationConfig, SimulationResult, simulate
from leadradar.features.simulator.dynamics import BROWSING, BUYING, DORMANT, intent, mode_matrix, stage_step
from leadradar.features.simulator.truth import advance_probabilities, close_probabilities

SMALL = {"tenants": 2, "leads": 4000, "days": 200, "seed": 5}
TABLES = ("events", "stages", "truth", "items", "leads")


@pytest.fixture(scope="module")
def cfg() -> SimulationConfig:
    return SimulationConfig(**SMALL)


@pytest.fixture(scope="module")
def sim(cfg: SimulationConfig) -> SimulationResult:
    return simulate(cfg, Settings())


@pytest.fixture(scope="module")
def events(sim: SimulationResult) -> pd.DataFrame:
    return sim.events.to_pandas()


@pytest.fixture(scope="module")
def stages(sim: SimulationResult) -> pd.DataFrame:
    return sim.stages.to_pandas()


@pytest.fixture(scope="module")
def truth(sim: SimulationResult) -> pd.DataFrame:
    return sim.truth.to_pandas()


def _start_end(cfg: SimulationConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(cfg.start, tz="UTC")
    return start, start + pd.Timedelta(days=cfg.days)


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(cfg: SimulationConfig, sim: SimulationResult):
    again = simulate(cfg, Settings())
    for name in TABLES:
        assert getattr(again, name).equals(getattr(sim, name)), f"{name} differs between two runs with one seed"


def test_different_seed_gives_different_events(sim: SimulationResult):
    other = simulate(SimulationConfig(**{**SMALL, "seed": SMALL["seed"] + 1}), Settings())
    assert not other.events.equals(sim.events)


# --- contract ------------------------------------------------------------------------------


def test_events_and_stages_match_the_contract_schemas(sim: SimulationResult):
    assert sim.events.schema.equals(EVENT_SCHEMA)
    assert sim.stages.schema.equals(STAGE_SCHEMA)


def test_every_stage_name_is_a_configured_funnel_stage(stages: pd.DataFrame):
    assert set(stages["stage"]) <= set(Settings().funnel.all_stages)
    assert "won" in set(stages["stage"])


def test_every_event_type_is_a_configured_type(events: pd.DataFrame):
    seen = set(events["event_type"])
    assert seen <= set(Settings().events.types)
    assert {"card_view", "card_share"} <= seen


def test_timestamps_are_tz_aware_utc(sim: SimulationResult):
    for table in (sim.events, sim.stages):
        ts_type = table.schema.field("ts").type
        assert pa.types.is_timestamp(ts_type)
        assert ts_type.tz == "UTC"
    assert sim.truth.schema.field("cutoff").type.tz == "UTC"


# --- realism -------------------------------------------------------------------------------


def test_human_activity_is_heavy_tailed(events: pd.DataFrame):
    """Most leads touch the card a few times; the top 1 % touch it twenty times as often or more.

    Counted on human events: re-sent copies (same event_id) and zero-dwell bot views left out.
    """
    human = events.drop_duplicates("event_id")
    human = human[~((human["event_type"] == "card_view") & (human["dwell_s"] == 0))]
    per_lead = human.groupby("lead_id").size()
    median = per_lead.median()
    assert median <= 3
    assert per_lead.quantile(0.99) >= 20 * median


def test_thirty_day_win_rate_of_open_leads_is_a_few_percent(cfg: SimulationConfig, truth: pd.DataFrame):
    start, _ = _start_end(cfg)
    later = truth[truth["cutoff"] > start + pd.Timedelta(days=60)]
    assert len(later) > 1000
    assert 0.02 <= later["p_close_30d"].mean() <= 0.06


# --- the truth is exact ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(cfg: SimulationConfig, truth: pd.DataFrame, stages: pd.DataFrame) -> pd.DataFrame:
    """Truth rows whose 30-day window closes inside the simulation, with the label realised in the stages."""
    _, end = _start_end(cfg)
    rows = truth[truth["cutoff"] + pd.Timedelta(days=30) <= end].reset_index(drop=True)
    rows["row"] = np.arange(len(rows))
    won = stages.loc[stages["stage"] == "won", ["tenant_id", "lead_id", "ts"]]
    hits = rows[["row", "tenant_id", "lead_id", "cutoff"]].merge(won, on=["tenant_id", "lead_id"])
    hits = hits[(hits["ts"] > hits["cutoff"]) & (hits["ts"] <= hits["cutoff"] + pd.Timedelta(days=30))]
    rows["y"] = rows["row"].isin(hits["row"]).astype(float)
    return rows


def test_realised_thirty_day_wins_are_calibrated_to_the_truth_in_every_decile(labelled: pd.DataFrame):
    assert len(labelled) > 10_000
    assert labelled["y"].sum() > 100
    p = labelled["p_close_30d"]
    bins = pd.qcut(p.rank(method="first"), 10, labels=False)
    for b, group in labelled.groupby(bins):
        n, mean_p, observed = len(group), group["p_close_30d"].mean(), group["y"].mean()
        tolerance = 4 * np.sqrt(mean_p * (1 - mean_p) / n) + 0.005
        assert abs(observed - mean_p) <= tolerance, f"decile {b}: observed {observed:.4f}, truth {mean_p:.4f}"


def test_realised_thirty_day_win_rate_matches_the_mean_truth(labelled: pd.DataFrame):
    """Within 3 standard errors, clustered by lead.

    Weekly cutoffs with a 30-day horizon put one win into ~4 rows of the same lead, so the rows are
    not independent; the naive binomial error understates the spread by ~1.7x here.
    """
    residual = labelled["y"] - labelled["p_close_30d"]
    n = len(labelled)
    clustered_se = np.sqrt((residual.groupby(labelled["lead_id"]).sum() ** 2).sum()) / n
    assert abs(residual.mean()) <= 3 * clustered_se


def test_close_probabilities_grow_with_the_horizon(truth: pd.DataFrame):
    assert (truth["p_close_7d"] <= truth["p_close_30d"] + 1e-12).all()
    assert (truth["p_close_30d"] <= truth["p_close_90d"] + 1e-12).all()
    assert (truth["p_close_7d"] < truth["p_close_90d"]).any()


# --- an independent Monte Carlo of the hidden chain ------------------------------------------

# (z, offset, stage index, mode) with win and advance probabilities well inside (0, 1).
CASES = [
    (1.5, 0.3, 4, BUYING),
    (0.5, 0.0, 3, BROWSING),
    (2.0, -0.2, 2, BUYING),
    (-0.5, 0.4, 4, DORMANT),
    (1.0, 0.5, 0, BUYING),
]
PATHS = 20_000


def _monte_carlo(cfg: SimulationConfig, days: int, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Walk the chain forward the way engine.py does (mode first, then stage); won-by-day and advanced-by-day rates."""
    rng = np.random.default_rng(seed)
    z = np.array([c[0] for c in CASES])
    offset = np.array([c[1] for c in CASES])
    start_stage = np.array([c[2] for c in CASES])
    n_open = len(cfg.stage_base)
    won, lost = n_open, n_open + 1
    k = len(CASES)
    stage = np.repeat(start_stage[:, None], PATHS, axis=1)
    mode = np.repeat(np.array([c[3] for c in CASES])[:, None], PATHS, axis=1)
    advanced = np.zeros((k, PATHS), dtype=bool)
    cum_mode = np.cumsum(mode_matrix(z, cfg), axis=2)  # (case, from, to)
    cases = np.arange(k)[:, None]
    for _ in range(days):
        u = rng.random((k, PATHS))
        mode = (u[..., None] >= cum_mode[cases, mode]).sum(axis=-1)
        mode = np.minimum(mode, 2)
        step = stage_step(intent(z[:, None], mode, cfg), mode, offset[:, None], cfg)
        open_ = stage < won
        s = np.where(open_, stage, 0)
        pick = (cases, np.arange(PATHS)[None, :], s)
        p_lost, p_one, p_two = step.lost[pick], step.advance_one[pick], step.advance_two[pick]
        u = rng.random((k, PATHS))
        new = stage.copy()
        new[u < p_lost] = lost
        one = (u >= p_lost) & (u < p_lost + p_one)
        two = (u >= p_lost + p_one) & (u < p_lost + p_one + p_two)
        new[one] += 1
        new[two] += 2
        stage = np.where(open_, new, stage)
        advanced |= (stage > start_stage[:, None]) & (stage != lost)
    return (stage == won).mean(axis=1), advanced.mean(axis=1)


@pytest.fixture(scope="module")
def monte_carlo(cfg: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    return _monte_carlo(cfg, days=30)


def _recursion_at_cases(table: np.ndarray) -> np.ndarray:
    return np.array([table[i, c[2], c[3]] for i, c in enumerate(CASES)])


def _assert_within_binomial_error(simulated: np.ndarray, exact: np.ndarray) -> None:
    se = np.sqrt(exact * (1 - exact) / PATHS)
    assert ((exact > 0.02) & (exact < 0.98)).all(), "pick cases whose probability is not degenerate"
    assert (np.abs(simulated - exact) <= 4 * se).all(), f"Monte Carlo {simulated} vs recursion {exact}"


def test_close_probabilities_match_a_monte_carlo_of_the_hidden_chain(cfg, monte_carlo):
    z = np.array([c[0] for c in CASES])
    offset = np.array([c[1] for c in CASES])
    exact = _recursion_at_cases(close_probabilities(z, offset, (30,), cfg)[30])
    _assert_within_binomial_error(monte_carlo[0], exact)


def test_advance_probabilities_match_a_monte_carlo_of_the_hidden_chain(cfg, monte_carlo):
    z = np.array([c[0] for c in CASES])
    offset = np.array([c[1] for c in CASES])
    exact = _recursion_at_cases(advance_probabilities(z, offset, 30, cfg))
    _assert_within_binomial_error(monte_carlo[1], exact)


# --- the noise a real log has ---------------------------------------------------------------


def test_some_events_are_resent_with_the_same_id(events: pd.DataFrame):
    assert events["event_id"].duplicated().any()


def test_bot_bursts_of_zero_dwell_card_views_exist(events: pd.DataFrame):
    """At least one lead has 8 or more zero-dwell card views within 60 seconds."""
    bot = events[(events["event_type"] == "card_view") & (events["dwell_s"] == 0)].drop_duplicates("event_id")
    bot = bot.sort_values(["lead_id", "ts"]).reset_index(drop=True)
    ahead = bot.shift(-7)
    burst = (ahead["lead_id"] == bot["lead_id"]) & (ahead["ts"] - bot["ts"] <= pd.Timedelta(seconds=60))
    assert burst.any()


def test_the_log_is_in_arrival_order_not_event_time_order(events: pd.DataFrame):
    assert not events["ts"].is_monotonic_increasing


def test_every_row_has_its_arrival_and_late_events_and_resends_arrive_after_they_happened(
    sim: SimulationResult, events: pd.DataFrame
):
    arrivals = sim.arrivals.to_pandas()
    assert len(arrivals) == len(events)
    assert (arrivals["event_id"].to_numpy() == events["event_id"].to_numpy()).all()
    assert arrivals["arrived_at"].is_monotonic_increasing
    delay = arrivals["arrived_at"] - events["ts"]
    assert (delay >= pd.Timedelta(0)).all()
    late = delay > pd.Timedelta(minutes=1)
    assert 0.01 < late.mean() < 0.05
    assert (delay[events["event_id"].duplicated()] > pd.Timedelta(0)).all()


@pytest.fixture(scope="module")
def referrals(events: pd.DataFrame) -> pd.DataFrame:
    """One row per referred lead: its tenant, its referrer, and its first event time."""
    referred = events.loc[events["referrer_lead_id"].notna(), ["tenant_id", "lead_id", "referrer_lead_id"]]
    referred = referred.drop_duplicates("lead_id")
    first = events.groupby("lead_id", as_index=False)["ts"].min().rename(columns={"ts": "first_ts"})
    return referred.merge(first, on="lead_id")


def test_referred_leads_exist_and_their_referrer_is_a_lead_of_the_same_tenant(
    referrals: pd.DataFrame, sim: SimulationResult
):
    assert len(referrals) > 50
    leads = sim.leads.to_pandas()[["tenant_id", "lead_id"]].rename(
        columns={"tenant_id": "referrer_tenant", "lead_id": "referrer_lead_id"}
    )
    joined = referrals.merge(leads, on="referrer_lead_id", how="left")
    assert joined["referrer_tenant"].notna().all(), "a referrer is not a known lead"
    assert (joined["referrer_tenant"] == joined["tenant_id"]).all()


def test_the_referrer_shared_the_card_before_the_referred_lead_first_appears(
    referrals: pd.DataFrame, events: pd.DataFrame, cfg: SimulationConfig
):
    """Allowing for device clock skew: both leads' clocks may be off by ~skew_sd_seconds each."""
    shares = events[events["event_type"] == "card_share"].groupby("lead_id")["ts"].min()
    first_share = referrals["referrer_lead_id"].map(shares)
    assert first_share.notna().all(), "a referrer never shared the card"
    skew = pd.Timedelta(seconds=6 * cfg.skew_sd_seconds)
    assert (first_share < referrals["first_ts"] + skew).all()
    assert (first_share < referrals["first_ts"]).mean() > 0.99


# --- configuration ------------------------------------------------------------------------


def test_an_event_type_the_settings_do_not_know_is_refused_by_name():
    types = {k: v for k, v in DEFAULT_EVENT_TYPES.items() if k != "meeting"}
    settings = Settings(events={"types": types, "two_way_contact": ("phone_call", "chat_message")})
    with pytest.raises(ValueError, match="meeting"):
        simulate(SimulationConfig(**SMALL), settings)
