"""The server's life: no model yet, the registry out of reach, and a new champion swapped in under load."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.registry import CHAMPION, configure_mlflow, crown, load_alias, model_version, version_for_alias
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess, free_port

pytestmark = pytest.mark.server


def feature_leads(scored, tenant: str, n: int, offset: int = 0) -> list[dict]:
    rows = scored.features[scored.features["tenant_id"] == tenant].iloc[offset : offset + n]
    names = [c for c in scored.features.columns if c not in ("tenant_id", "lead_id", "cutoff", "sales_id", "stage")]
    return [
        {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in names}}
        for r in rows.to_dict("records")
    ]


def events_lead(small_sim, lead_id: str, as_of: pd.Timestamp) -> dict:
    ev = pd.read_parquet(small_sim.events, filters=[("lead_id", "==", lead_id)])
    ev = ev[ev["ts"] <= as_of]
    optional = ("dwell_s", "item_id", "referrer_lead_id", "channel")
    events = [
        {
            "event_id": e["event_id"],
            "ts": e["ts"].isoformat(),
            "event_type": e["event_type"],
            "sales_id": e["sales_id"],
            **{k: e[k] for k in optional if pd.notna(e[k])},
        }
        for e in ev.to_dict("records")
    ]
    return {"lead_id": lead_id, "events": events}


# -- (a) no model at all -----------------------------------------------------------------------------------------


def test_with_no_model_the_server_is_alive_not_ready_and_score_answers_503(bare_server):
    key = KeyStore(bare_server.settings.score_store_url).create("t01", "system", name="no model")[1]
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(bare_server.url + "/healthz", timeout=5).status_code == 200
    assert httpx.get(bare_server.url + "/readyz", timeout=5).status_code == 503
    lead = {"lead_id": "x", "features": {"n_card_view_7d": 1}}
    resp = httpx.post(bare_server.url + "/v1/score", json={"leads": [lead]}, headers=auth, timeout=10)
    assert resp.status_code == 503 and "no model" in resp.json()["error"]
    events = {
        "leads": [
            {
                "lead_id": "x",
                "events": [{"event_id": "e", "ts": "2026-09-01T00:00:00Z", "event_type": "card_view", "sales_id": "s"}],
            }
        ]
    }
    assert httpx.post(bare_server.url + "/v1/score", json=events, headers=auth, timeout=10).status_code == 503
    # the key is checked first: no key is 401, not 503
    assert httpx.post(bare_server.url + "/v1/score", json={"leads": [lead]}, timeout=10).status_code == 401
    info = httpx.get(bare_server.url + "/v1/model", headers=auth, timeout=10)
    assert info.status_code == 200
    assert info.json()["ready"] is False and info.json()["version"] is None and info.json()["problem"]
    rank = httpx.post(bare_server.url + "/v1/rank", json={}, headers=auth, timeout=10)
    assert rank.status_code == 200 and rank.json()["total"] == 0


# -- (b) the registry out of reach at start ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_away(trained, scored, settings, tmp_path_factory):
    """The session's data directory (with its local copy of the champion), the MLflow server down."""
    load_alias(settings)  # the last good load keeps the local copy and its pointer
    env = {
        "LEADRADAR_MLFLOW__TRACKING_URI": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "BENTOML_HOME": str(tmp_path_factory.mktemp("away-bentoml")),  # no Bento model to fall back to
    }
    with ServiceProcess(settings, env=env) as svc:
        yield svc


def test_with_the_registry_away_the_last_local_copy_serves_and_model_says_so(
    registry_away, server, scored, trained, role_keys
):
    key = role_keys["t01", "system"]
    assert httpx.get(registry_away.url + "/readyz", timeout=5).status_code == 200
    info = httpx.get(registry_away.url + "/v1/model", headers=key.auth, timeout=10).json()
    assert info["ready"] is True and info["version"] == trained["model_version"]
    assert info["source"] == "local copy" and "unreachable" in info["problem"]
    assert info["test_metrics"]["auc"] == pytest.approx(trained["test_metrics"]["auc"])
    body = {"leads": feature_leads(scored, "t01", 10)}
    away = httpx.post(registry_away.url + "/v1/score", json=body, headers=key.auth, timeout=30)
    home = httpx.post(server.url + "/v1/score", json=body, headers=key.auth, timeout=30)
    assert away.status_code == home.status_code == 200, away.text
    assert away.json() == home.json()


def pricing_lead(small_sim, scored) -> str:
    """An open lead of t01 that looked at the pricing pages (an item feature) before the batch's as_of."""
    items = pd.read_parquet(small_sim.items)
    pricing = set(items.loc[items["category"] == "pricing", "item_id"])
    ev = pd.read_parquet(small_sim.events, columns=["lead_id", "item_id", "ts"])
    seen = ev[ev["item_id"].isin(pricing) & (ev["ts"] <= scored.as_of)]["lead_id"].value_counts()
    open_ = set(scored.features.loc[scored.features["tenant_id"] == "t01", "lead_id"])
    return next(lead for lead in seen.index if lead in open_)


def test_with_the_registry_away_raw_events_score_as_with_it(registry_away, server, scored, small_sim, role_keys):
    key = role_keys["t01", "system"]
    body = {
        "leads": [events_lead(small_sim, pricing_lead(small_sim, scored), scored.as_of)],
        "as_of": scored.as_of.isoformat(),
    }
    away = httpx.post(registry_away.url + "/v1/score", json=body, headers=key.auth, timeout=30)
    home = httpx.post(server.url + "/v1/score", json=body, headers=key.auth, timeout=30)
    assert away.status_code == home.status_code == 200, away.text
    assert away.json()["leads"][0]["status"] == "scored"
    assert away.json()["leads"][0]["p_close"] == home.json()["leads"][0]["p_close"]


# -- (c) a new champion swapped in under load --------------------------------------------------------------------


@pytest.fixture(scope="module")
def swap_home(trained, scored, settings, tmp_path_factory) -> Settings:
    """A copy of the session's data directory, so moving its champion leaves the session's alone."""
    load_alias(settings)
    home = tmp_path_factory.mktemp("swap") / "home"
    shutil.copytree(settings.data_dir, home, ignore=shutil.ignore_patterns("service-*.log"))
    return Settings(home=home)


class Client(threading.Thread):
    """Sends scoring requests one after another until told to stop (or 60 s pass), recording every answer."""

    def __init__(self, url: str, key: str, bodies: list[dict], stop: threading.Event, start: int = 0):
        super().__init__(daemon=True)
        self.url, self.key, self.bodies, self.halt, self.first = url, key, bodies, stop, start
        self.answers: list[tuple[float, int, int, str, dict | None]] = []  # (time, status, body, version or text, p)
        self.errors: list[str] = []

    def run(self) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30) as http:
            i = self.first
            while not self.halt.is_set() and time.monotonic() < deadline:
                which = i % len(self.bodies)
                i += 1
                try:
                    resp = http.post("/v1/score", json=self.bodies[which])
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                if resp.status_code == 200:
                    answer = resp.json()
                    self.answers.append(
                        (time.monotonic(), 200, which, answer["model_version"], [x["p_close"] for x in answer["leads"]])
                    )
                else:
                    self.answers.append((time.monotonic(), resp.status_code, which, resp.text[:300], None))

    def versions(self) -> list[str]:
        return [a[3] for a in self.answers]


def test_a_new_champion_is_swapped_in_under_load_without_a_failed_request(swap_home, scored, small_sim, capsys):
    configure_mlflow(swap_home)
    client = MlflowClient()
    name = swap_home.mlflow.model_name
    old = version_for_alias(client, name, CHAMPION)
    key = KeyStore(swap_home.score_store_url).create("t01", "system", name="swap")[1]
    lead = scored.features[scored.features["tenant_id"] == "t01"]["lead_id"].iloc[0]
    bodies = [
        {"leads": feature_leads(scored, "t01", 5)},
        {"leads": [events_lead(small_sim, lead, scored.as_of)], "as_of": scored.as_of.isoformat()},
        {"leads": feature_leads(scored, "t01", 1, offset=7), "lang": "zh-CN"},
    ]
    env = {"LEADRADAR_SERVING__MODEL_POLL_SECONDS": "1"}
    with ServiceProcess(swap_home, env=env) as svc:
        stop = threading.Event()
        clients = [Client(svc.url, key, bodies, stop), Client(svc.url, key, bodies, stop, start=1)]
        for c in clients:
            c.start()
        while sum(len(c.answers) for c in clients) < 20 and all(c.is_alive() for c in clients):
            time.sleep(0.05)
        copied = client.copy_model_version(f"models:/{name}/{old.version}", name)
        crowned_at = time.monotonic()
        new = crown(client, model_version(client, name, str(copied.version)))
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not (
            all(new.version in c.versions() for c in clients)
            and {a[2] for c in clients for a in c.answers if a[3] == new.version} == set(range(len(bodies)))
        ):
            time.sleep(0.1)  # until both clients have seen the new model and it has answered every body
        stop.set()
        for c in clients:
            c.join(timeout=40)
        info = httpx.get(svc.url + "/v1/model", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()

    answers = [a for c in clients for a in c.answers]
    errors = [e for c in clients for e in c.errors]
    assert not errors, errors[:3]
    assert Counter(a[1] for a in answers) == {200: len(answers)}, [a[3] for a in answers if a[1] != 200][:3]
    assert new.version != old.version and info["version"] == new.version and info["source"] == "registry"
    for c in clients:  # each client sees the old version, then only the new one
        versions = c.versions()
        assert new.version in versions, "the new champion never answered"
        switch = versions.index(new.version)
        assert set(versions[:switch]) == {old.version} and set(versions[switch:]) == {new.version}
    for which in range(len(bodies)):  # the new version is a copy of the old: the same probabilities throughout
        seen = {(a[3], repr(a[4])) for a in answers if a[2] == which}
        assert len({p for _, p in seen}) == 1 and {v for v, _ in seen} == {old.version, new.version}, which
    first_new = min(a[0] for a in answers if a[3] == new.version)
    with capsys.disabled():
        print(
            f"\nswap: {len(answers)} requests, 0 failed; v{old.version} -> v{new.version} answered "
            f"{first_new - crowned_at:.1f} s after the alias moved"
        )
