"""/v1/score and /v1/rank carry each score's interval, its flags and the expected close window."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from leadradar.registry import load_alias
from leadradar.serving.auth import KeyStore

pytestmark = pytest.mark.server
TENANT = "t01"


def feature_leads(rows: pd.DataFrame, features: list[str]) -> list[dict]:
    return [
        {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in features}}
        for r in rows.to_dict("records")
    ]


def score(server, body: dict, token: str) -> dict:
    resp = httpx.post(server.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_scores_carry_an_ordered_interval_and_a_close_window_in_the_asked_language(server, scored, settings, role_keys):
    features = load_alias(settings).model.features
    sample = scored.features[scored.features["tenant_id"] == TENANT].head(40)
    for lang, word in (("en", "day"), ("zh-CN", "天")):
        answer = score(
            server, {"leads": feature_leads(sample, features), "lang": lang}, role_keys[TENANT, "system"].token
        )
        for lead in answer["leads"]:
            p = lead["p_close"][f"{settings.training.horizon_days}d"]
            assert lead["p_lo"] <= p <= lead["p_hi"]
            # the flag reads the width the data left open, a part of the whole interval
            assert not lead["low_confidence"] or lead["p_hi"] - lead["p_lo"] > settings.serving.low_confidence_width
            window = lead["expected_close"]
            if window is not None:
                assert 0 <= window["from_days"] <= window["to_days"] and word in window["text"]


def test_a_new_tenant_is_served_the_pooled_score_flagged_as_pooled(server, scored, settings, role_keys):
    features = load_alias(settings).model.features
    sample = scored.features[scored.features["tenant_id"] == TENANT].head(20)
    body = {"leads": feature_leads(sample, features), "explain": False}
    _, token = KeyStore(settings.score_store_url).create("t-brand-new", "system", name="certainty tests")
    new = score(server, body, token)
    assert all(lead["pooled"] is True for lead in new["leads"])
    known = score(server, body, role_keys[TENANT, "system"].token)
    model = load_alias(settings).model
    own = not model.targets_[model.main_target].tenants.pooled(TENANT)
    assert all(lead["pooled"] is (not own) for lead in known["leads"])


def test_rank_carries_the_interval_flags_and_window_of_each_lead(server, scored, settings, role_keys):
    resp = httpx.post(
        server.url + "/v1/rank",
        json={"page_size": 20, "lang": "zh-CN"},
        headers=role_keys[TENANT, "manager"].auth,
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    for lead in resp.json()["leads"]:
        assert lead["p_lo"] <= lead["p_close"] <= lead["p_hi"]
        assert isinstance(lead["pooled"], bool) and isinstance(lead["low_confidence"], bool)
        assert lead["expected_close"] is None or "天" in lead["expected_close"]["text"]
