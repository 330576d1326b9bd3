"""The alerts benchmark (issue 18): how many alerts the default rules send, how many wins they caught, how early,
and how fast an event becomes a message.

`make bench-alerts` on the default simulation: backfill the log into an event store, train and promote, then
- `alerts_per_sales_per_day`, `wins_alerted_before_close`, `median_lead_time_days`: `leadradar alerts simulate
  --since 30d` (serving/alerts/replay.py) with the default rules;
- `event_to_delivery_p99_s` (and p50): events POSTed to /v1/events of the real service → the alert at a local
  webhook receiver on 127.0.0.1, with a `--session-seconds` (30 s) session window, one session per lead.
It passes or fails nothing: it writes benchmarks/results/alerts.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import machine, write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 3, "leads": 20_000, "days": 455}
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}


def replay_figures(settings: Any, since_days: int) -> dict[str, Any]:
    """`alerts simulate --since` over the store, timed."""
    from leadradar.features.store import EventStore
    from leadradar.serving.alerts.replay import champion_engine, replay

    store = EventStore.open(settings)
    started = time.perf_counter()
    summary = replay(settings, store, champion_engine(settings, store), timedelta(days=since_days)).summary()
    store.close()
    summary["simulate_seconds"] = round(time.perf_counter() - started, 1)
    return summary


def delivery_figures(settings: Any, tenant: str, leads: int, session_s: float) -> dict[str, Any]:
    """Event acknowledged → message at the receiver, one session (a saved contact) per lead, a second apart."""
    import httpx

    from leadradar.demo import demo_key
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.process import ServiceProcess
    from tests.support.http_receiver import Receiver

    key = demo_key(KeyStore(settings.score_store_url), tenant)
    sent: dict[str, float] = {}
    with Receiver() as rx:
        channel = {"kind": "webhook", "name": "bench", "url": rx.url, "secret": "", "language": "en"}
        env = {
            "LEADRADAR_ALERTS__CHANNELS__TENANTS": json.dumps({tenant: [channel]}),
            "LEADRADAR_ALERTS__RULES__SESSION_QUIET_MINUTES": str(session_s / 60),
            "LEADRADAR_ALERTS__RULES__QUIET_START": "00:00",  # no quiet hours: the figure is the path's speed
            "LEADRADAR_ALERTS__RULES__QUIET_END": "00:00",
            "LEADRADAR_ALERTS__RULES__DAILY_BUDGET": str(leads + 1),
            "LEADRADAR_ALERTS__RULES__HOT_FLOOR": "0",
            "LEADRADAR_ALERTS__RULES__DELIVERY_POLL_SECONDS": "0.2",
        }
        with ServiceProcess(settings, env=env) as svc, httpx.Client(base_url=svc.url, timeout=60) as http:
            for i in range(leads):
                lead = f"bench-alert-{i:04d}-{os.getpid()}"
                now = pd.Timestamp.now(tz="UTC")
                body = {
                    "events": [
                        {
                            "event_id": f"{lead}-{k}",
                            "tenant_id": tenant,
                            "lead_id": lead,
                            "sales_id": f"{tenant}-S001",
                            "ts": (now - pd.Timedelta(seconds=2 - k)).isoformat(),
                            "event_type": kind,
                            "dwell_s": 20.0,
                        }
                        for k, kind in enumerate(["card_view", "card_save"])
                    ]
                }
                r = http.post("/v1/events", json=body, headers={"Authorization": f"Bearer {key}"})
                r.raise_for_status()
                sent[lead] = time.time()
                time.sleep(1.0)
            deadline = time.monotonic() + session_s + 120
            while time.monotonic() < deadline and len(_arrivals(rx, sent)) < len(sent):
                time.sleep(0.2)
            arrived = _arrivals(rx, sent)
    waits = sorted(arrived[lead] - sent[lead] for lead in arrived)
    return {
        "event_to_delivery_p50_s": round(statistics.median(waits), 2) if waits else None,
        "event_to_delivery_p99_s": round(waits[min(len(waits) - 1, int(0.99 * len(waits)))], 2) if waits else None,
        "alerts_delivered": len(waits),
        "alerts_expected": len(sent),
    }


def _arrivals(rx: Any, sent: dict[str, float]) -> dict[str, float]:
    """When the first message naming each lead arrived."""
    first: dict[str, float] = {}
    for got in list(rx.got):
        text = got.body.decode("utf-8", "replace")
        for lead in sent:
            if lead in text and lead not in first:
                first[lead] = got.at
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=DEFAULT_SIM["leads"], help="leads of the simulated log")
    parser.add_argument("--since", type=int, default=30, help="days replayed by alerts simulate")
    parser.add_argument("--deliveries", type=int, default=60, help="sessions sent for the delivery latency")
    parser.add_argument("--session-seconds", type=float, default=30.0)
    parser.add_argument("--part", choices=("all", "simulate"), default="all")
    args = parser.parse_args()
    os.environ.update(QUIET)
    from rich.console import Console

    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files
    from leadradar.training.pipeline import train_from_logs
    from leadradar.training.promotion import promote

    console = Console()
    sim = dataset({**DEFAULT_SIM, "leads": args.leads})
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        settings.ensure_dirs()
        with console.status("backfill and train on the simulated log"):
            store = EventStore.open(settings)
            items = sim.dir / "items.parquet"
            load_files(
                store,
                settings,
                [sim.dir / "events.parquet"],
                stages=[sim.dir / "stages.parquet"],
                items=items if items.exists() else None,
            )
            train_from_logs(RadarLog.from_store(store), settings)
            promote(settings)
            tenant = store.tenants()[0]
            store.close()
        with console.status(f"alerts simulate --since {args.since}d"):
            summary = replay_figures(settings, args.since)
        figures: dict[str, Any] = {
            k: summary[k] for k in ("alerts_per_sales_per_day", "wins_alerted_before_close", "median_lead_time_days")
        }
        figures["simulate_seconds"] = summary["simulate_seconds"]
        if args.part == "all":
            with console.status(f"event → delivery, {args.deliveries} sessions, {args.session_seconds:.0f} s window"):
                figures |= delivery_figures(settings, tenant, args.deliveries, args.session_seconds)
    path = write_results(
        "alerts",
        figures,
        inputs={
            "simulation": sim.config,
            "events": sim.sizes.get("events"),
            "since_days": args.since,
            "deliveries": args.deliveries,
            "session_seconds": args.session_seconds,
        },
        extra={"simulate": summary},
    )
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
