"""An acknowledged event survives `kill -9` of the service the moment the answer arrives."""

from __future__ import annotations

import psutil
import pytest

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess
from tests.support.live_events import event, fresh, post

pytestmark = pytest.mark.server


class _Key:
    def __init__(self, token: str):
        self.auth = {"Authorization": f"Bearer {token}"}


def test_an_acknowledged_event_is_in_the_store_after_kill_9(tmp_path_factory):
    home = tmp_path_factory.mktemp("kill9-home")
    settings = Settings(home=home)
    key = _Key(KeyStore(settings.score_store_url).create("t01", "system", name="kill -9")[1])
    env = {"BENTOML_HOME": str(tmp_path_factory.mktemp("kill9-bentoml"))}  # no model needed to store events
    svc = ServiceProcess(settings, env=env, require_ready=False).start()
    try:
        lead = fresh("L-kill")
        warm = post(svc.url, "/v1/events", {"events": [event(fresh("e"), lead)]}, key)
        assert warm.status_code == 200, warm.text
        batch = {"events": [event(fresh("e"), lead, minutes_ago=i) for i in range(200)]}
        server = psutil.Process(svc.proc.pid)
        tree = [server, *server.children(recursive=True)]  # BentoML's workers run in their own process groups
        assert len(tree) > 1, "expected the server and at least one worker"
        acked = post(svc.url, "/v1/events", batch, key)
        for proc in tree:  # the moment the answer is in: no shutdown, no flush
            proc.kill()
        psutil.wait_procs(tree, timeout=30)
        assert not any(proc.is_running() for proc in tree)
        assert acked.status_code == 200 and acked.json()["stored"] == 200
    finally:
        svc.stop()
    store = EventStore.open(settings)
    try:
        kept = set(store.events("t01", leads=[lead])["event_id"].to_pylist())
    finally:
        store.close()
    assert {e["event_id"] for e in batch["events"]} <= kept
