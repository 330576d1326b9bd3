"""The drift notice: drift past the thresholds reaches the tenant's managers through the outbox, once per model
version and local day, and is delivered to a real HTTP receiver on the digest channel, never to a lead's feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from leadradar.config import Settings
from leadradar.features.registry import build_registry
from leadradar.serving.alerts.delivery import DeliveryWorker
from leadradar.serving.alerts.drift_notice import notice_message, notify_drift
from leadradar.serving.alerts.outbox import Outbox
from leadradar.serving.alerts.wiring import channel_named, message
from leadradar.serving.drift import SCORE
from tests.support.http_receiver import Receiver

# 10:00 in Shanghai: outside the default quiet hours.
NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def settings_for(tmp_path, url: str = "http://127.0.0.1:9/hook") -> Settings:
    boss = {"kind": "webhook", "name": "boss", "url": url, "alerts": False, "digest": True, "language": "en"}
    sales = {"kind": "webhook", "name": "sales group", "url": url, "alerts": True, "digest": False}
    return Settings(home=tmp_path / "home", alerts={"channels": {"tenants": {"t1": [boss, sales], "t2": [boss]}}})


def table(settings: Settings, drifted: dict[str, int]) -> pd.DataFrame:
    """A drift table: for each tenant, that many drifted features (and one that did not drift)."""
    names = list(build_registry(settings).names)
    rows = []
    for tenant, n in drifted.items():
        for i, name in enumerate(names[: n + 1]):
            psi = 0.9 - 0.1 * i if i < n else 0.01
            rows.append(
                {
                    "tenant_id": tenant,
                    "column": name,
                    "psi": psi,
                    "missing_reference": 0.0,
                    "missing_current": 0.0,
                    "median_reference": 1.0,
                    "median_current": 4.0,
                    "drifted": i < n,
                }
            )
    return pd.DataFrame(rows)


def test_drift_past_the_setting_stores_one_notice_per_model_version_and_day(tmp_path):
    settings = settings_for(tmp_path)
    outbox = Outbox(settings.score_store_url, settings.alerts.rules)
    enough = settings.lifecycle.drift_features_to_retrain
    drift = table(settings, {"t1": enough, "t2": enough - 1})
    first = notify_drift(settings, drift, "7", NOW, "promoted (v8)", outbox)
    assert len(first) == 1 and outbox.get(first[0]).alert.tenant_id == "t1"  # t2: too few features drifted
    assert notify_drift(settings, drift, "7", NOW + timedelta(hours=3), None, outbox) == []  # same version, same day
    assert len(notify_drift(settings, drift, "8", NOW + timedelta(hours=3), None, outbox)) == 1  # a new version
    assert len(notify_drift(settings, drift, "7", NOW + timedelta(days=1), None, outbox)) == 1  # the next day
    score_only = pd.DataFrame([{**drift.iloc[-1].to_dict(), "tenant_id": "t2", "column": SCORE, "drifted": True}])
    assert len(notify_drift(settings, score_only, "7", NOW, None, outbox)) == 1  # the score drifting is enough
    (delivery,) = outbox.deliveries(first[0])
    assert delivery["channel"] == "boss"  # the managers' digest channel, not the sales group's
    assert outbox.feed("t1") == [] and outbox.alerts("t1", NOW - timedelta(days=1)) == []  # not a lead's alert


def test_the_notice_names_the_drifted_features_in_words_and_is_delivered(tmp_path):
    with Receiver() as rx:
        settings = settings_for(tmp_path, rx.url)
        outbox = Outbox(settings.score_store_url, settings.alerts.rules)
        drift = table(settings, {"t1": settings.lifecycle.drift_features_to_retrain})
        (alert_id,) = notify_drift(settings, drift, "7", NOW, "promoted (v8)", outbox)
        worker = DeliveryWorker(
            outbox, lambda t, n: channel_named(settings, t, n), lambda a, lang: message(settings, a, lang)
        )
        assert worker.drain(NOW) == 1
        assert outbox.deliveries(alert_id)[0]["status"] == "sent"
        (got,) = rx.got
    sent = json.dumps(got.json(), ensure_ascii=False)
    assert "Model v7" in sent and "PSI 0.90" in sent and "promoted (v8)" in sent and "/health" in sent
    zh = notice_message(outbox.get(alert_id).alert, "zh-CN", settings)
    assert "模型 v7" in zh.title and "重新训练" in zh.text and "1 → 4" in zh.text


def test_no_drift_past_the_setting_stores_no_notice(tmp_path):
    settings = settings_for(tmp_path)
    outbox = Outbox(settings.score_store_url, settings.alerts.rules)
    assert notify_drift(settings, table(settings, {"t1": 0}), "7", NOW, None, outbox) == []
    assert notify_drift(settings, pd.DataFrame(), "7", NOW, None, outbox) == []
