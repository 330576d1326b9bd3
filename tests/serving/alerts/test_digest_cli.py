"""`leadradar alerts digest` on the real event and score stores: printed, and sent to a digest channel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from leadradar.cli import app
from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.features.validation import validate_events, validate_stages
from leadradar.serving.store import ScoreStore
from tests.support.alert_receivers import Receiver

NOW = pd.Timestamp(datetime.now(UTC)).floor("s")


def scores(as_of: pd.Timestamp, rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"tenant_id": "t01", "lead_id": lead, "sales_id": sales, "p_close": p, "as_of": as_of}
            | {"model_version": "1", "model_name": "leadradar-close", "stage": "engaged"}
            for lead, sales, p in rows
        ]
    )


@pytest.fixture
def home(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    store = ScoreStore(settings.score_store_url)
    past = NOW - timedelta(days=31)
    store.write(scores(past, [("L1", "s1", 0.5), ("L7", "s2", 0.5)]))
    store.write(scores(NOW - timedelta(days=2), [("L1", "s1", 0.72), ("L2", "s2", 0.66), ("L3", "s2", 0.1)]))
    events = EventStore(settings.event_store_url, settings)
    raw = [
        {
            "event_id": "e1",
            "tenant_id": "t01",
            "lead_id": "L2",
            "sales_id": "s2",
            "event_type": "card_view",
            "ts": (NOW - timedelta(days=3)).isoformat(),
        },
        {
            "event_id": "e2",
            "tenant_id": "t01",
            "lead_id": "L1",
            "sales_id": "s1",
            "event_type": "phone_call",
            "ts": (NOW - timedelta(hours=30)).isoformat(),
        },
    ]
    events.append_events(validate_events(pd.DataFrame(raw), settings, NOW), source="test", now=NOW)
    won = [{"tenant_id": "t01", "lead_id": "L7", "stage": "won", "ts": (past + timedelta(days=10)).isoformat()}]
    events.append_stages(validate_stages(pd.DataFrame(won), settings, NOW), source="test", now=NOW)
    events.close()
    monkeypatch.setenv("LEADRADAR_HOME", str(settings.home))
    return settings


def test_the_digest_prints_hot_leads_waiting_and_the_run_a_horizon_ago(home):
    result = CliRunner().invoke(app, ["alerts", "digest", "--tenant", "t01", "--lang", "en"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("L1") < out.index("L2") < out.index("L3")  # hottest first
    waiting = out.split("not followed up within 24 h")[1].split("\n\n")[0]
    assert "L2" in waiting and "L1" not in waiting  # L1 was called after it turned hot
    assert "Of 2 open leads scored" in out and "1 did" in out


def test_the_digest_is_sent_to_the_tenants_digest_channel(home, monkeypatch):
    r = Receiver("feishu", "s3cret")
    try:
        channels = (
            f'[{{"kind": "feishu", "url": "{r.base}/hook", "secret": "s3cret", "digest": true, "alerts": false}}]'
        )
        monkeypatch.setenv("LEADRADAR_ALERTS__CHANNELS__TENANTS", f'{{"t01": {channels}}}')
        result = CliRunner().invoke(app, ["alerts", "digest", "--tenant", "t01", "--send"])
        assert result.exit_code == 0, result.output
        assert len(r.received) == 1 and r.received[0].problems == []
        assert "线索日报" in r.received[0].json["card"]["header"]["title"]["content"]
        other = CliRunner().invoke(app, ["alerts", "digest", "--tenant", "t02", "--send"])
        assert other.exit_code == 2 and len(r.received) == 1
    finally:
        r.close()
