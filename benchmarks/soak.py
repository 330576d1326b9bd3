"""The soak benchmark (issue 21 item 2): mixed traffic against one service for minutes, errors and memory watched.

`make bench-soak` trains a champion on a small simulated log, scores it once (the ranked lists), starts the real
service and sends a mix of requests at a fixed rate (open loop: a request is sent on its schedule whatever the
answers before it did) for `--minutes` (default 10):
- events: POST /v1/events, 20 new events of a known lead (each is rescored, and may raise alerts);
- score: POST /v1/score of a lead by id (its stored history); lead: GET /v1/leads/{id};
- rank: POST /v1/rank; dashboard: a manager's list page; alerts: the dashboard's alerts page.
Without `--rate`, the maximum rate of the same mix is measured first (closed loop, `--probe-seconds`) and the soak
runs at half of it, as the issue asks. It writes, per endpoint and minute, p99 latency and counts; errors (any
answer but 2xx/3xx, or no answer) overall; and the service's resident memory (the process tree), with its growth
from minute 2 to the last minute. It passes or fails nothing: it writes benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow.compute as pc

from benchmarks.common import machine, write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 2, "leads": 2_000, "days": 240}
# Share of each kind of request in the mix (a card back end's events dominate; people read now and then).
MIX = {"events": 0.40, "score": 0.15, "lead": 0.15, "rank": 0.10, "dashboard": 0.10, "alerts": 0.10}
EVENTS_PER_POST = 20
CLIENTS = 8
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}


class Traffic:
    """One request of each kind, against one service, for one tenant's known leads."""

    def __init__(self, url: str, tenant: str, leads: list[str], system: str, manager: str, login: tuple[str, str]):
        import httpx

        self.url, self.tenant, self.leads = url, tenant, leads
        self.system = {"Authorization": f"Bearer {system}"}
        self.manager = {"Authorization": f"Bearer {manager}"}
        self.login = login
        self.local = threading.local()
        self.sent = 0
        self.lock = threading.Lock()
        self.httpx = httpx

    def _client(self) -> Any:
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.httpx.Client(base_url=self.url, timeout=30, headers={"Origin": self.url})
            name, password = self.login
            client.post("/dashboard/login", data={"username": name, "password": password, "next": "/dashboard/"})
            self.local.client = client
        return client

    def send(self, kind: str, rng: random.Random) -> int:
        """Send one request of `kind`; its status (0: no answer)."""
        http = self._client()
        lead = rng.choice(self.leads)
        try:
            if kind == "events":
                with self.lock:
                    self.sent += 1
                    n = self.sent
                now = pd.Timestamp.now(tz="UTC").floor("s")
                types = ("card_view", "product_view", "article_view", "card_share", "phone_call")
                body = [
                    {
                        "event_id": f"soak-{os.getpid()}-{n}-{k}",
                        "lead_id": lead,
                        "sales_id": "soak-s1",
                        "ts": (now - pd.Timedelta(seconds=k)).isoformat(),
                        "event_type": types[k % len(types)],
                        "dwell_s": 20.0 + k,
                    }
                    for k in range(EVENTS_PER_POST)
                ]
                return http.post("/v1/events", json={"events": body}, headers=self.system).status_code
            if kind == "score":
                return http.post("/v1/score", json={"leads": [{"lead_id": lead}]}, headers=self.system).status_code
            if kind == "lead":
                return http.get(f"/v1/leads/{lead}", params={"limit": 20}, headers=self.system).status_code
            if kind == "rank":
                return http.post("/v1/rank", json={"page_size": 50}, headers=self.manager).status_code
            if kind == "dashboard":
                return http.get("/dashboard/").status_code
            return http.get("/dashboard/alerts").status_code
        except self.httpx.HTTPError:
            return 0


def kinds(n: int, seed: int) -> list[str]:
    """`n` request kinds drawn by MIX, reproducibly."""
    rng = random.Random(seed)
    return rng.choices(list(MIX), weights=list(MIX.values()), k=n)


def probe(traffic: Traffic, seconds: float) -> float:
    """The mix's maximum rate: CLIENTS closed-loop clients for `seconds`; requests per second."""
    stop = time.perf_counter() + seconds
    done = [0] * CLIENTS

    def client(i: int) -> None:
        rng = random.Random(i)
        for kind in kinds(10**7, 1000 + i):
            if time.perf_counter() >= stop:
                return
            traffic.send(kind, rng)
            done[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - started)


def rss_mib(pid: int) -> float:
    """Resident memory of the service: its process and every child (BentoML's workers), MiB."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def soak(traffic: Traffic, pid: int, rate: float, minutes: float) -> dict[str, Any]:
    """Send the mix at `rate` for `minutes` (open loop); per minute and endpoint latencies, errors and memory."""
    total = int(rate * minutes * 60)
    schedule: queue.Queue[tuple[float, str] | None] = queue.Queue()
    started = time.perf_counter() + 0.5
    for i, kind in enumerate(kinds(total, 7)):
        schedule.put((started + i / rate, kind))
    samples: list[tuple[int, str, float, int, float]] = []  # minute, kind, ms, status, late ms
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(100 + i)
        while True:
            item = schedule.get()
            if item is None:
                return
            due, kind = item
            time.sleep(max(0.0, due - time.perf_counter()))
            t0 = time.perf_counter()
            status = traffic.send(kind, rng)
            took = (time.perf_counter() - t0) * 1000
            with lock:
                samples.append((int((due - started) // 60), kind, took, status, max(0.0, t0 - due) * 1000))

    memory: list[tuple[float, float]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            memory.append((time.perf_counter() - started, rss_mib(pid)))
            stop.wait(5)

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS * 4)]
    for _ in workers:
        schedule.put(None)
    watcher = threading.Thread(target=watch)
    watcher.start()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    watcher.join()
    return summarise(samples, memory, minutes)


def summarise(samples: list[tuple[int, str, float, int, float]], memory: list[tuple[float, float]], minutes: float):
    frame = pd.DataFrame(samples, columns=["minute", "kind", "ms", "status", "late_ms"])
    frame["error"] = ~frame["status"].between(200, 399)
    per_minute: dict[str, dict[str, float]] = defaultdict(dict)
    for (kind, minute), part in frame.groupby(["kind", "minute"]):
        per_minute[f"p99_ms_{kind}"][str(minute + 1)] = round(float(np.percentile(part["ms"], 99)), 2)
        per_minute[f"requests_{kind}"][str(minute + 1)] = int(len(part))
    mem = pd.DataFrame(memory, columns=["s", "rss_mib"])
    mem["minute"] = (mem["s"] // 60).astype(int) + 1
    rss_by_minute = mem.groupby("minute")["rss_mib"].mean().round(1)
    last = int(rss_by_minute.index.max()) if len(rss_by_minute) else 0
    growth = None
    if 2 in rss_by_minute.index and last > 2:
        growth = round(float(rss_by_minute[last] / rss_by_minute[2] - 1) * 100, 2)
    figures: dict[str, Any] = {
        "requests": int(len(frame)),
        "errors": int(frame["error"].sum()),
        "errors_by_status": {str(k): int(v) for k, v in frame.loc[frame["error"], "status"].value_counts().items()},
        "rss_mib_minute_2": float(rss_by_minute.get(2, float("nan"))),
        "rss_mib_last_minute": float(rss_by_minute.get(last, float("nan"))),
        "rss_growth_pct_minute_2_to_last": growth,
        "late_p99_ms": round(float(np.percentile(frame["late_ms"], 99)), 2) if len(frame) else None,
    }
    for kind, part in frame.groupby("kind"):
        figures[f"p99_ms_{kind}"] = round(float(np.percentile(part["ms"], 99)), 2)
        figures[f"errors_{kind}"] = int(part["error"].sum())
    nested = {"per_minute": dict(per_minute), "rss_mib_by_minute": {str(k): v for k, v in rss_by_minute.items()}}
    return figures, nested


def prepare(settings: Any, sim_dir: Path) -> tuple[str, list[str], str, str, tuple[str, str]]:
    """Backfill, train and promote on the simulated log, score it once; the tenant, its leads and its keys."""
    from leadradar.demo import train_demo_model
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files
    from leadradar.registry import load_alias
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.scoring import score_and_store
    from leadradar.serving.store import ScoreStore
    from leadradar.serving.users import UserStore
    from leadradar.training.promotion import promote

    store = EventStore.open(settings)
    load_files(store, settings, [sim_dir / "events.parquet"], stages=[sim_dir / "stages.parquet"])
    log = RadarLog.from_store(store)
    train_demo_model(log, settings)
    promote(settings)
    tenant = store.tenants()[0]
    as_of = pd.Timestamp(pc.max(log.events["ts"]).as_py())
    score_and_store(ScoreStore(settings.score_store_url), log, as_of, settings, load_alias(settings), tenant)
    mine = pc.equal(log.events["tenant_id"], tenant)
    leads = sorted(set(log.events["lead_id"].filter(mine).to_pylist()))
    store.close()
    keys = KeyStore(settings.score_store_url)
    system = keys.create(tenant, "system", name="soak")[1]
    manager = keys.create(tenant, "manager", name="soak")[1]
    login = ("soak-boss", "soak benchmark password 2026")
    UserStore(settings.score_store_url).create(tenant, *login)
    return tenant, leads, system, manager, login


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--rate", type=float, default=None, help="requests per second (default: half the maximum)")
    parser.add_argument("--probe-seconds", type=float, default=30.0, help="length of the maximum-rate probe")
    parser.add_argument("--leads", type=int, default=DEFAULT_SIM["leads"], help="leads of the simulated log")
    parser.add_argument("--service-log", type=Path, default=None, help="keep the service's log here")
    args = parser.parse_args()
    os.environ.update(QUIET)
    from rich.console import Console

    from leadradar.config import Settings
    from leadradar.serving.process import ServiceProcess

    console = Console()
    sim = dataset({**DEFAULT_SIM, "leads": args.leads})
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        settings.ensure_dirs()
        with console.status("backfill, train, promote and score the simulated log"):
            tenant, leads, system, manager, login = prepare(settings, sim.dir)
        with ServiceProcess(settings, log_file=args.service_log) as svc:
            assert svc.proc is not None
            traffic = Traffic(svc.url, tenant, leads, system, manager, login)
            maximum = None
            rate = args.rate
            if rate is None:
                with console.status(f"the mix's maximum rate, {args.probe_seconds:.0f} s closed loop"):
                    maximum = probe(traffic, args.probe_seconds)
                rate = maximum / 2
            with console.status(f"soak: {rate:.1f} requests/s for {args.minutes:g} min"):
                figures, nested = soak(traffic, svc.proc.pid, rate, args.minutes)
    figures = {"rate_per_s": round(rate, 2), "max_rate_per_s": maximum and round(maximum, 2), **figures}
    path = write_results(
        "soak",
        figures,
        inputs={
            "simulation": sim.config,
            "events": sim.sizes.get("events"),
            "minutes": args.minutes,
            "rate": args.rate,
            "probe_seconds": args.probe_seconds,
            "mix": MIX,
            "events_per_post": EVENTS_PER_POST,
            "clients": CLIENTS,
        },
        extra=nested,
    )
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
