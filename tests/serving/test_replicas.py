"""Two service processes behind HAProxy, sharing PostgreSQL's event, score and key stores (issue 20 item 3).

No model is needed: storing events and ranking stored scores do not score. The last test kills a replica,
so it stays last.
"""

from __future__ import annotations

import threading
import time

import httpx
import pandas as pd
import psutil
import pytest

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.serving.auth import KeyStore
from leadradar.serving.store import ScoreStore
from tests.serving.test_store import scores
from tests.support.balancer import Balancer, find_haproxy
from tests.support.live_events import event, fresh
from tests.support.replicas import Replicas, SharedStores

pytestmark = pytest.mark.server
TENANT = "t01"
RETRIED = (502, 503, 504)  # what the balancer answers when the replica it chose died with the request


class Cluster:
    def __init__(self, replicas: Replicas, balancer: Balancer, stores: SharedStores, events: EventStore):
        self.replicas, self.balancer, self.scores_url, self.events = replicas, balancer, stores.scores_url, events
        keys = KeyStore(stores.scores_url)
        self.auth = {"Authorization": f"Bearer {keys.create(TENANT, 'system', name='replica tests')[1]}"}
        self.manager = {"Authorization": f"Bearer {keys.create(TENANT, 'manager', name='replica tests')[1]}"}

    def post(self, url: str, body: dict) -> httpx.Response:
        return httpx.post(url + "/v1/events", json=body, headers=self.auth, timeout=60)

    def stored_ids(self, leads: list[str]) -> list[str]:
        return self.events.events(TENANT, leads=leads)["event_id"].to_pylist()


@pytest.fixture(scope="module")
def cluster(postgres, tmp_path_factory):
    if find_haproxy() is None:
        pytest.skip("no haproxy binary (Debian: apt-get install haproxy, as .ci/run does)")
    settings = Settings(home=tmp_path_factory.mktemp("replicas-home"))
    stores = SharedStores.on(postgres, "replicas")
    env = {"BENTOML_HOME": str(tmp_path_factory.mktemp("replicas-bentoml"))}  # no model: none is needed here
    with (
        Replicas(settings, stores, 2, env=env, require_ready=False) as replicas,
        Balancer(replicas.urls, check_path="/healthz") as balancer,
    ):
        events = EventStore(stores.events_url, settings)
        yield Cluster(replicas, balancer, stores, events)
        events.close()


def test_an_event_posted_through_the_balancer_lands_once_whichever_replica_gets_it_again(cluster):
    lead = fresh("L-lb")
    batch = {"events": [event(fresh("e"), lead, minutes_ago=i) for i in range(100)]}
    first = cluster.post(cluster.balancer.url, batch)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 100
    again = [cluster.post(url, batch) for url in (cluster.balancer.url, *cluster.replicas.urls)]
    assert [r.json()["stored"] for r in again] == [0, 0, 0]
    assert [r.json()["duplicate"] for r in again] == [100, 100, 100]
    stored = cluster.stored_ids([lead])
    assert sorted(stored) == sorted(e["event_id"] for e in batch["events"])


def test_rank_is_the_same_from_either_replica_and_through_the_balancer(cluster):
    as_of = pd.Timestamp.now(tz="UTC").floor("D")
    p = {f"R{i:03d}": round((i * 37 % 100) / 100, 2) for i in range(120)}
    sales = {lead: f"s{i % 3}" for i, lead in enumerate(p)}
    ScoreStore(cluster.scores_url).write(scores(TENANT, as_of, p, sales=sales))
    answers = []
    for url in (*cluster.replicas.urls, cluster.balancer.url, cluster.balancer.url):
        r = httpx.post(url + "/v1/rank", json={"page_size": 500}, headers=cluster.manager, timeout=30)
        assert r.status_code == 200, r.text
        answers.append(r.json())
    assert answers[0]["total"] == 120
    assert all(answer == answers[0] for answer in answers[1:])


def _post_until_acknowledged(cluster: Cluster, body: dict, stop_at: float) -> int:
    """Send one batch through the balancer until a replica acknowledges it; the number of tries it took."""
    for tries in range(1, 1000):
        try:
            r = cluster.post(cluster.balancer.url, body)
            if r.status_code == 200:
                return tries
            assert r.status_code in RETRIED, r.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < stop_at, "a batch was never acknowledged"
        time.sleep(0.05)
    raise AssertionError("a batch was never acknowledged")


def test_killing_one_replica_under_load_loses_no_acknowledged_event(cluster):
    """Three clients post batches while one replica is killed with -9; each retries a batch until acknowledged."""
    lead_of = {c: fresh(f"L-load{c}") for c in range(3)}
    acked: dict[int, list[tuple[float, list[str]]]] = {c: [] for c in lead_of}
    stop_at = time.monotonic() + 120

    def client(c: int) -> None:
        for b in range(40):
            body = {"events": [event(fresh("e"), lead_of[c], minutes_ago=b + i / 100) for i in range(50)]}
            _post_until_acknowledged(cluster, body, stop_at)
            acked[c].append((time.monotonic(), [e["event_id"] for e in body["events"]]))

    threads = [threading.Thread(target=client, args=(c,)) for c in lead_of]
    for t in threads:
        t.start()
    while sum(len(a) for a in acked.values()) < 15:
        time.sleep(0.02)
    victim = psutil.Process(cluster.replicas.processes[0].proc.pid)
    tree = [victim, *victim.children(recursive=True)]
    killed_at = time.monotonic()
    for proc in tree:
        proc.kill()
    psutil.wait_procs(tree, timeout=30)
    for t in threads:
        t.join(timeout=150)
    assert not any(t.is_alive() for t in threads)

    sent = [eid for a in acked.values() for _, ids in a for eid in ids]
    assert len(sent) == 3 * 40 * 50
    assert any(at > killed_at for a in acked.values() for at, _ in a), "some batches were acknowledged after the kill"
    stored = cluster.stored_ids(list(lead_of.values()))
    assert len(stored) == len(set(stored)) == len(sent)
    assert set(stored) == set(sent)
    survivor = httpx.get(cluster.replicas.urls[1] + "/healthz", timeout=5)
    assert survivor.status_code == 200
