"""Reasons for and against a lead's score: exact TreeSHAP, one reason per topic, in English and Chinese."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from leadradar.config import FunnelConfig, Settings
from leadradar.features.describe import describe, format_value
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.models.explain import Explainer, contributions, explain_rows
from leadradar.models.funnel import FunnelModel
from leadradar.targets import TargetSpec

CJK = re.compile(r"[\u4e00-\u9fff]")
INDUSTRIES = ["finance", "manufacturing", "retail"]


@pytest.fixture(scope="module")
def words() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def registry(words: Settings) -> FeatureRegistry:
    return build_registry(words)


def synthetic_frame(registry: FeatureRegistry, n: int, seed: int) -> pd.DataFrame:
    """Every registry feature with plausible values; pricing views, card views, recency and industry drive y."""
    rng = np.random.default_rng(seed)
    cols: dict[str, np.ndarray] = {}
    for f in registry:
        if f.kind == "count":
            v = rng.poisson(2.0, n).astype(float)
        elif f.kind == "seconds":
            v = rng.exponential(60.0, n)
        elif f.kind == "hours":
            v = rng.exponential(120.0, n)
        elif f.kind == "days":
            v = rng.uniform(0, 60, n)
        elif f.kind in ("share", "ratio"):
            v = rng.uniform(0, 1, n)
        elif f.kind == "rank":
            v = rng.integers(0, 5, n).astype(float)
        elif f.kind == "number":
            v = rng.lognormal(0, 0.5, n)
        else:
            cols[f.name] = rng.choice(INDUSTRIES, n).astype(object)
            continue
        if f.default is None:
            v = np.where(rng.uniform(size=n) < 0.2, np.nan, v)
        cols[f.name] = v
    frame = pd.DataFrame(cols)
    frame["n_fam_view_7d"] = frame["n_card_view_7d"]  # an exact near-duplicate: the same fact twice
    frame["pricing_views_30d"] = frame["pricing_views_7d"] + rng.poisson(1.0, n)
    recency = frame["hours_since_last_any"].fillna(500.0)
    logit = (
        1.3 * (frame["pricing_views_7d"] - 2)
        + 0.5 * (frame["n_card_view_7d"] - 2)
        - 0.01 * (recency - 120)
        + 1.5 * (frame["attr_industry"] == "finance")
        - 1.0
    )
    frame["y"] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame["lead_id"] = [f"L{seed}-{i}" for i in range(n)]
    return frame


@pytest.fixture(scope="module")
def model(registry: FeatureRegistry) -> FunnelModel:
    params = {
        "objective": "binary",
        "verbosity": -1,
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "num_threads": 1,
    }
    m = FunnelModel(
        [TargetSpec("close_30d", "y")],
        features=registry.names,
        categorical=registry.categorical(),
        params=params,
        num_boost_round=150,
        early_stopping_rounds=20,
    )
    return m.fit(synthetic_frame(registry, 4000, seed=1), synthetic_frame(registry, 2000, seed=2))


@pytest.fixture(scope="module")
def leads(registry: FeatureRegistry) -> pd.DataFrame:
    frame = synthetic_frame(registry, 300, seed=3)
    frame.loc[0, ["pricing_views_7d", "pricing_views_30d"]] = [12.0, 13.0]
    frame.loc[1, "hours_since_last_any"] = np.nan
    frame.loc[2, "attr_industry"] = "a category never seen in training"
    return frame


@pytest.fixture(scope="module")
def explained(model, leads, registry, words) -> dict[str, list]:
    return {lang: explain_rows(model, "close_30d", leads, registry, words.funnel, lang) for lang in ("en", "zh-CN")}


def test_contributions_with_bias_add_up_to_the_raw_margin(model, leads):
    X = model.matrix(leads)
    phi = contributions(model, "close_30d", X)
    margin = model.targets_["close_30d"].booster.predict(X, raw_score=True)
    assert phi.shape == (len(leads), len(model.features) + 1)
    np.testing.assert_allclose(phi.sum(axis=1), margin, atol=1e-6)


def test_high_pricing_views_are_a_reason_for(explained):
    reasons_for = explained["en"][0].for_
    assert "pricing_views_7d" in [r.feature for r in reasons_for]
    reason = next(r for r in reasons_for if r.feature == "pricing_views_7d")
    assert reason.value == 12.0 and "12 times" in reason.text


def test_reasons_for_push_up_and_reasons_against_push_down(explained):
    for e in explained["en"]:
        assert all(r.contribution > 0 and r.direction == "for" for r in e.for_)
        assert all(r.contribution < 0 and r.direction == "against" for r in e.against)
    assert sum(len(e.against) for e in explained["en"]) > 0


def test_reasons_come_strongest_topic_first_and_skip_the_negligible(model, leads, registry, words):
    explainer = Explainer(model, "close_30d", registry, words.funnel)
    X = model.matrix(leads)
    phi = contributions(model, "close_30d", X)[:, :-1]
    topic_sum = np.where(np.isnan(X), 0.0, phi) @ explainer.one_hot
    for i, e in enumerate(explainer.explain_matrix(X)):
        for sign, reasons in ((1, e.for_), (-1, e.against)):
            weights = [sign * topic_sum[i, explainer.topic_of[explainer.index[r.feature]]] for r in reasons]
            assert weights == sorted(weights, reverse=True)
            assert all(w >= explainer.min_contribution for w in weights)
    silent = explain_rows(model, "close_30d", leads, registry, words.funnel, min_contribution=1e9)
    assert all(e.reasons == [] and e.text() == "" for e in silent)


def test_at_most_three_reasons_for_and_two_against(explained):
    assert max(len(e.for_) for e in explained["en"]) == 3
    assert max(len(e.against) for e in explained["en"]) == 2


def test_fewer_reasons_when_asked(model, leads, registry, words):
    (e,) = explain_rows(model, "close_30d", leads.iloc[:1], registry, words.funnel, n_for=1, n_against=0)
    assert len(e.for_) == 1 and e.against == []


def test_no_reason_has_a_missing_value(explained, leads):
    for e in explained["en"]:
        for r in e.reasons:
            assert isinstance(r.value, str) or not math.isnan(r.value), r
            assert "no data" not in r.text
    assert "hours_since_last_any" not in [r.feature for r in explained["en"][1].reasons]


def test_an_unseen_category_never_speaks(explained):
    assert "attr_industry" not in [r.feature for r in explained["en"][2].reasons]


def test_a_category_reads_as_its_text(explained, leads):
    finance = [i for i in range(len(leads)) if leads.loc[i, "attr_industry"] == "finance"]
    hits = [r for i in finance for r in explained["en"][i].for_ if r.feature == "attr_industry"]
    assert hits, "finance drives the label up; it should be a reason for some finance leads"
    assert all(r.value == "finance" and r.text == "works in finance" for r in hits)


def test_one_reason_per_topic(explained, registry, words):
    for e in explained["en"]:
        names = [r.feature for r in e.reasons]
        assert not {"n_card_view_7d", "n_fam_view_7d"} <= set(names)
        topics = [registry[n].topic for n in names]
        assert len(topics) == len(set(topics)), names


def test_near_duplicates_share_a_topic(registry, words):
    topic = lambda name: registry[name].topic
    assert topic("n_card_view_7d") == topic("n_fam_view_7d") == topic("dwell_max_card_view_all")
    assert topic("n_product_view_30d") == topic("n_product_view_90d") == topic("dwell_sum_fam_content_7d")
    assert topic("pricing_views_7d") == topic("pricing_views_all") != topic("n_fam_content_7d")
    assert topic("hours_since_last_view") == topic("hours_since_last_any")
    assert topic("n_phone_call_7d") != topic("n_card_share_7d")


def test_english_and_chinese_both_read(explained):
    for en, zh in zip(explained["en"], explained["zh-CN"]):
        for r in en.reasons:
            assert r.text and not re.search(r"[{}]", r.text) and not CJK.search(r.text)
        for r in zh.reasons:
            assert CJK.search(r.text) and not re.search(r"[{}]", r.text)
        assert ("For: " in en.text()) == bool(en.for_) and ("Against: " in en.text()) == bool(en.against)
        assert ("有利：" in zh.text()) == bool(zh.for_) and ("不利：" in zh.text()) == bool(zh.against)
    first = explained["en"][0]
    assert (
        first.text()
        == f"For: {'; '.join(r.text for r in first.for_)}. Against: {'; '.join(r.text for r in first.against)}."
    )


def test_both_languages_name_the_same_features(explained):
    for en, zh in zip(explained["en"], explained["zh-CN"]):
        assert [(r.feature, r.direction, r.contribution) for r in en.reasons] == [
            (r.feature, r.direction, r.contribution) for r in zh.reasons
        ]
        assert en.text("zh-CN") == zh.text() and zh.text("en") == en.text()


def test_one_lead_alone_reads_as_in_a_batch(model, leads, registry, words, explained):
    alone = explain_rows(model, "close_30d", leads.iloc[[5]], registry, words.funnel)[0]
    assert alone.reasons == explained["en"][5].reasons


def test_matrix_path_matches_the_frame_path(model, leads, registry, words, explained):
    records = leads[model.features].astype(object).where(leads[model.features].notna(), None).to_dict("records")
    X = model.encoder_.transform_records(records[:20])
    fast = Explainer(model, "close_30d", registry, words.funnel).explain_matrix(X)
    assert [e.reasons for e in fast] == [e.reasons for e in explained["en"][:20]]


def test_an_unknown_language_is_refused(model, leads, registry, words):
    with pytest.raises(ValueError, match="'en', 'zh-CN'"):
        explain_rows(model, "close_30d", leads.iloc[:1], registry, words.funnel, lang="zh-TW")
    with pytest.raises(ValueError, match="'en', 'zh-CN'"):
        format_value("count", 3, "fr")
    (explanation,) = explain_rows(model, "close_30d", leads.iloc[:1], registry, words.funnel)
    with pytest.raises(ValueError, match="'en', 'zh-CN'"):
        explanation.text("de")


def test_an_unknown_target_is_named(model, leads):
    with pytest.raises(KeyError, match="close_30d"):
        contributions(model, "close_7d", model.matrix(leads.iloc[:1]))


@pytest.mark.parametrize(
    ("kind", "value", "en", "zh"),
    [
        ("count", 3, "3", "3"),
        ("count", 3.0, "3", "3"),
        ("count", 12345, "12,345", "12,345"),
        ("seconds", 45, "45 s", "45秒"),
        ("seconds", 125, "2 min 5 s", "2分5秒"),
        ("seconds", 120, "2 min", "2分"),
        ("seconds", 3780, "1 h 3 min", "1小时3分"),
        ("seconds", 3600, "1 h", "1小时"),
        ("seconds", 2.5, "2.5 s", "2.5秒"),
        ("seconds", 0, "0 s", "0秒"),
        ("hours", 3, "3 hours", "3小时"),
        ("hours", 1, "1 hour", "1小时"),
        ("hours", 0.25, "15 minutes", "15分钟"),
        ("hours", 47.4, "47 hours", "47小时"),
        ("hours", 48, "2 days", "2天"),
        ("hours", 60, "3 days", "3天"),
        ("days", 4.5, "4.5 days", "4.5天"),
        ("days", 1, "1 day", "1天"),
        ("days", 12.4, "12 days", "12天"),
        ("share", 0.35, "35%", "35%"),
        ("ratio", 0.004, "0.4%", "0.4%"),
        ("number", 2.3333, "2.33", "2.33"),
        ("number", 1.5, "1.5", "1.5"),
        ("number", 3.0, "3", "3"),
        ("category", "retail", "retail", "retail"),
        ("count", None, "no data", "无数据"),
        ("seconds", float("nan"), "no data", "无数据"),
        ("category", pd.NA, "no data", "无数据"),
        ("share", float("inf"), "no data", "无数据"),
    ],
)
def test_values_read_by_kind(kind, value, en, zh):
    assert format_value(kind, value, "en") == en
    assert format_value(kind, value, "zh-CN") == zh


def test_a_stage_rank_reads_as_the_stage_name():
    funnel = FunnelConfig()
    assert format_value("rank", 3, "en", funnel=funnel) == "qualified"
    assert format_value("rank", 3.0, "zh-CN", funnel=funnel) == "需求确认"
    with pytest.raises(ValueError, match="funnel"):
        format_value("rank", 3, "en")


def test_every_registry_feature_reads_in_both_languages(registry, words):
    samples = {"rank": 2, "category": "retail"}
    for f in registry:
        for value in (samples.get(f.kind, 1), samples.get(f.kind, 7)):
            en = describe(f, value, "en", words.funnel)
            zh = describe(f, value, "zh-CN", words.funnel)
            assert not re.search(r"[{}]", en + zh), f.name
            assert not CJK.search(en) and CJK.search(zh), f.name
            assert " 1 times" not in en and not re.search(r"\b1 (visits|days|items|leads|stages)\b", en), en


def test_describe_fills_the_template_with_the_formatted_value(registry, words):
    assert describe(registry["pricing_views_7d"], 3, "en") == "viewed the pricing page 3 times in the last 7 days"
    assert describe(registry["pricing_views_7d"], 1, "en") == "viewed the pricing page once in the last 7 days"
    assert describe(registry["pricing_views_7d"], 3, "zh-CN") == "近7天查看报价页3次"
    assert describe(registry["hours_since_last_any"], 130, "zh-CN") == "上次互动是在5天前"
    assert describe(registry["stage_rank"], 4, "en", words.funnel) == "is at stage “proposal”"
