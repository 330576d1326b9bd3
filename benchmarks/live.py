"""The live radar benchmark (issue 13): events in over HTTP, rescoring, score by stored history, bytes on disk.

`make bench-live` measures on the embedded store (SQLite, WAL) and on PostgreSQL (started here when its binaries
are installed), side by side in the same run with `leadradar ingest` of the same events from a file:
- `ingest_events_per_s`: POST /v1/events for `--seconds`, batches of 500, 4 concurrent clients, rescoring on;
- `rescore_catch_up_s`: after that burst, seconds until every touched lead's score is newer than its last event;
- `rescore_p50_ms` / `rescore_p99_ms`: event acknowledged → an updated score readable at GET /v1/leads/{id},
  events sent at `--rate` (2,000/s);
- `stored_history_p99_ms`: POST /v1/score of a lead given by id, with 1,000 stored events;
- `bytes_per_event`: the events table and its indexes on disk after a checkpoint, per event;
- `file_ingest_events_per_s`: `leadradar ingest FILE` of the same events (the baseline of the same run).
`--part store` runs only what needs no service (file ingest, bytes, the store's own history read); `--part online`
only `online_p99_ms` (features of one lead with 5,000 stored events, kept history vs the online query, in process;
`online_20k_*` the same with 20,000; `--served` over HTTP too, `served_online_moved_*` right after one more event),
written to benchmarks/results/live_online.json.
It passes or fails nothing: it writes benchmarks/results/live.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import machine, write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 3, "leads": 20_000, "days": 455}
BATCH, CLIENTS, RATE, HISTORY = 500, 4, 2_000, 1_000
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "BENTOML_DO_NOT_TRACK": "true"}


def fresh_events(n: int, tenant: str, leads: int, seed: int, prefix: str) -> pd.DataFrame:
    """`n` new events of one tenant over `leads` leads in the last hour, ids never sent before."""
    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame(
        {
            "event_id": [f"{prefix}-{i}" for i in range(n)],
            "tenant_id": tenant,
            "lead_id": [f"{tenant}-B{j:06d}" for j in rng.integers(0, leads, n)],
            "sales_id": f"{tenant}-S001",
            "ts": now - pd.to_timedelta(rng.integers(0, 3_600_000, n), unit="ms"),
            "event_type": rng.choice(["card_view", "product_view", "article_view", "card_share"], n),
            "dwell_s": rng.exponential(20, n).round(1),
        }
    )


# --- the store alone ---------------------------------------------------------------------------


def bytes_per_event(store: Any) -> float:
    """The events table and its indexes on disk (SQLite after a checkpoint; PostgreSQL's relation size) per event."""
    n = store.counts()["events"]
    if store.sqlite:
        raw = store.engine.raw_connection()  # autocommit: a checkpoint cannot run inside a transaction
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = cursor.execute(
                "SELECT SUM(pgsize) FROM dbstat WHERE name = 'events' OR name IN"
                " (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events')"
            ).fetchone()[0]
        finally:
            raw.close()
    else:
        with store.engine.connect() as conn:
            size = conn.exec_driver_sql("SELECT pg_total_relation_size('events')").scalar()
    return float(size) / max(n, 1)


def history_read_p99_ms(store: Any, settings: Any, tenant: str) -> float:
    """Reading one lead's 1,000 stored events back from the store (what scoring by id starts with)."""
    from leadradar.features.validation import validate_events

    lead = fresh_events(HISTORY, tenant, 1, 1, "hist").assign(lead_id=f"{tenant}-HIST")
    store.append_events(validate_events(lead, settings), source="bench", arrived=pd.Timestamp.now(tz="UTC"))
    times = []
    for _ in range(200):
        t0 = time.perf_counter()
        store.events(tenant, leads=[f"{tenant}-HIST"])
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 99))


def long_history(n: int, tenant: str, lead: str, days: int = 180, seed: int = 5) -> pd.DataFrame:
    """One lead's `n` events over its last `days` days: the card's types, an item on content views, dwell on views."""
    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    types = np.array(["card_view", "product_view", "article_view", "video_view", "card_share", "chat_message"])
    kind = rng.choice(types, n, p=[0.4, 0.25, 0.15, 0.05, 0.1, 0.05])
    content = np.isin(kind, ["product_view", "article_view", "video_view"])
    viewed = content | (kind == "card_view")
    return pd.DataFrame(
        {
            "event_id": [f"{lead}-{i}" for i in range(n)],
            "tenant_id": tenant,
            "lead_id": lead,
            "sales_id": f"{tenant}-S001",
            "ts": now - pd.to_timedelta(rng.integers(0, days * 86_400_000, n), unit="ms"),
            "event_type": kind,
            "dwell_s": np.where(viewed, rng.exponential(30, n).round(1), np.nan),
            "item_id": np.where(content, [f"{tenant}-p{j % 40:02d}" for j in rng.integers(0, 40, n)], None),
        }
    )


def online_p99_ms(settings: Any, n: int = 5_000, repeats: int = 200) -> dict[str, float]:
    """Features of one lead with `n` stored events, in process, as scoring by id computes them: from its kept
    history merged by the tiles' code (`online_p99_ms`), and by today's query over its events read from the store
    (`online_query_p99_ms`), interleaved in the same run; the two rows are checked equal first. Repeated requests of
    an unchanged lead reuse its day tiles; `online_moved_p99_ms` times requests each after one more event stored."""
    from leadradar.features.build import finish
    from leadradar.features.online import OnlineFeatures
    from leadradar.features.registry import build_registry
    from leadradar.features.store import EventStore
    from leadradar.features.tiles.online import OnlineTiles
    from leadradar.features.validation import validate_events

    tenant, lead = "bench", "bench-LONG"
    store = EventStore(f"sqlite:///{settings.home}/online.db", settings)
    store.append_events(validate_events(long_history(n, tenant, lead), settings), source="bench", arrived=None)
    registry = build_registry(settings)
    query, tiles = OnlineFeatures(settings, registry), OnlineTiles(settings, registry)
    empty = store.events(tenant, leads=["nobody"])

    def by_query(as_of: pd.Timestamp) -> tuple[list[str], list[tuple]]:
        events = store.events(tenant, leads=[lead], until=as_of)
        return query.compute_rows(events, store.stages(tenant, leads=[lead], until=as_of), [as_of])

    def by_tiles(as_of: pd.Timestamp) -> tuple[list[str], list[tuple]]:
        stages = store.stages(tenant, leads=[lead], until=as_of)
        return tiles.compute_rows(store, tenant, [lead], as_of, empty, stages)

    as_of = pd.Timestamp.now(tz="UTC")
    cold = time.perf_counter()
    frames = [finish(pd.DataFrame.from_records(r, columns=c)) for c, r in (by_tiles(as_of), by_query(as_of))]
    cold_ms = (time.perf_counter() - cold) * 1000
    a, b = (f[registry.names].to_numpy(float) for f in frames)
    assert np.allclose(a, b, rtol=1e-9, equal_nan=True), "tiles and query disagree"
    times: dict[str, list[float]] = {"tiles": [], "query": []}
    cpu: dict[str, list[float]] = {"tiles": [], "query": []}  # this thread's CPU: the cost on a machine not shared
    for i in range(repeats):
        as_of = pd.Timestamp.now(tz="UTC")
        for name, run in (
            (("tiles", by_tiles), ("query", by_query)) if i % 2 else (("query", by_query), ("tiles", by_tiles))
        ):
            if name == "query" and i % 4:
                continue  # the slow one, a quarter as often
            t0, c0 = time.perf_counter(), time.thread_time()
            run(as_of)
            times[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.thread_time() - c0) * 1000)
    moved = []  # the lead has moved since its last request: one more event stored, so nothing of the last is reused
    for i in range(repeats // 2):
        one = long_history(1, tenant, lead, days=1, seed=100 + i).assign(event_id=f"{lead}-moved-{i}")
        store.append_events(validate_events(one, settings), source="bench", arrived=None)
        as_of = pd.Timestamp.now(tz="UTC")
        t0 = time.perf_counter()
        by_tiles(as_of)
        moved.append((time.perf_counter() - t0) * 1000)
    store.close()
    p99 = {k: float(np.percentile(v, 99)) for k, v in times.items()}
    return {
        "online_p99_ms": p99["tiles"],
        "online_p50_ms": float(np.percentile(times["tiles"], 50)),
        "online_query_p99_ms": p99["query"],
        "online_query_p50_ms": float(np.percentile(times["query"], 50)),
        "online_speedup": p99["query"] / p99["tiles"],
        "online_moved_p99_ms": float(np.percentile(moved, 99)),
        "online_moved_p50_ms": float(np.percentile(moved, 50)),
        "online_cpu_p50_ms": float(np.percentile(cpu["tiles"], 50)),
        "online_query_cpu_p50_ms": float(np.percentile(cpu["query"], 50)),
        "online_first_ms": cold_ms,
        "online_events": n,
        "load_average_1m": os.getloadavg()[0],
    }


def store_figures(url: str, events_file: Path, settings: Any) -> dict[str, float]:
    """`leadradar ingest FILE` of the simulated log into an empty store, then its size and a history read."""
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files

    store = EventStore(url, settings)
    t0 = time.perf_counter()
    (loaded,) = load_files(store, settings, [events_file])
    seconds = time.perf_counter() - t0
    tenant = store.tenants()[0]
    figures = {
        "file_ingest_events_per_s": loaded.received / seconds,
        "file_ingest_seconds": seconds,
        "events_stored": loaded.stored,
        "bytes_per_event": bytes_per_event(store),
    }
    t0 = time.perf_counter()
    store.events()
    store.stages()
    figures["read_whole_log_s"] = time.perf_counter() - t0
    figures["stored_history_read_p99_ms"] = history_read_p99_ms(store, settings, tenant)
    store.close()
    return figures


# --- over HTTP (needs the service with POST /v1/events, rescoring and GET /v1/leads) -------------


def http_ingest(url: str, key: str, tenant: str, seconds: float) -> dict[str, float]:
    """4 clients posting batches of 500 new events for `seconds`; acknowledged events per second."""
    import httpx

    stop = time.perf_counter() + seconds
    acked = [0] * CLIENTS
    touched: set[str] = set()

    def client(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
            k = 0
            while time.perf_counter() < stop:
                batch = fresh_events(BATCH, tenant, 20_000, i * 1_000_003 + k, f"burst{i}-{k}")
                body = {"events": _wire(batch)}
                answer = http.post("/v1/events", json=body).raise_for_status().json()
                acked[i] += answer["stored"] + answer["duplicate"]
                touched.update(batch["lead_id"])
                k += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - started
    burst_end = pd.Timestamp.now(tz="UTC")
    catch_up = _catch_up(url, key, sorted(touched)[:200], burst_end)
    return {
        "ingest_events_per_s": sum(acked) / took,
        "ingest_seconds": took,
        "rescore_catch_up_s": catch_up,
        "burst_leads_touched": len(touched),
    }


def rescore_latency(url: str, key: str, tenant: str, seconds: float) -> dict[str, float]:
    """Events at 2,000/s in batches; for one lead per batch, acknowledged → a newer score readable."""
    import httpx

    per_batch = BATCH // 5
    interval = per_batch / RATE
    latencies: list[float] = []
    sent = 0
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        stop = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < stop:
            tick = time.perf_counter()
            batch = fresh_events(per_batch, tenant, 5_000, 7_000_000 + k, f"rate-{k}")
            http.post("/v1/events", json={"events": _wire(batch)}).raise_for_status()
            acked, lead = pd.Timestamp.now(tz="UTC"), batch["lead_id"].iat[0]
            sent += 1
            while time.perf_counter() - tick < 5:
                if _newest_score(http, lead) >= acked:
                    latencies.append((time.perf_counter() - tick) * 1000)
                    break
                time.sleep(0.01)
            time.sleep(max(0.0, interval - (time.perf_counter() - tick)))
            k += 1
    # A lead whose new score was not readable within 5 s counts as missed: when every one is, the rescoring
    # fell behind the rate, and that is the figure.
    missed = {"rescore_batches": sent, "rescore_missed_5s_share": 1 - len(latencies) / sent if sent else None}
    if not latencies:
        return missed
    return missed | {
        "rescore_p50_ms": statistics.median(latencies),
        "rescore_p99_ms": float(np.percentile(latencies, 99)),
    }


def stored_history_p99_ms(url: str, key: str, tenant: str) -> float:
    """POST /v1/score of one lead by id, its 1,000 events stored (sent first over POST /v1/events)."""
    import httpx

    lead = fresh_events(HISTORY, tenant, 1, 3, "byid").assign(lead_id=f"{tenant}-BYID")
    times = []
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        for start in range(0, HISTORY, BATCH):
            http.post("/v1/events", json={"events": _wire(lead.iloc[start : start + BATCH])}).raise_for_status()
        body = {"leads": [{"lead_id": f"{tenant}-BYID"}]}
        for _ in range(300):
            t0 = time.perf_counter()
            http.post("/v1/score", json=body).raise_for_status()
            times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times[20:], 99))


SERVED_SIM = {"tenants": 2, "leads": 3_000, "days": 270, "seed": 3}


def served_online_p99_ms(settings: Any, n: int = 5_000, repeats: int = 200) -> dict[str, float]:
    """POST /v1/score of one lead by id with `n` stored events, the service with `features.online_tiles` on and
    off in turn (rescoring off, so nothing else runs), on a model trained on a small simulated log; `_moved_`: each
    request right after one more event of the lead was sent (POST /v1/events, not timed)."""
    import httpx

    from leadradar.demo import demo_key
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.process import ServiceProcess
    from leadradar.training.pipeline import train_from_logs
    from leadradar.training.promotion import promote

    sim = dataset(SERVED_SIM)
    store = EventStore.open(settings)
    load_files(store, settings, [sim.dir / "events.parquet"], stages=[sim.dir / "stages.parquet"])
    train_from_logs(RadarLog.from_store(store), settings)
    promote(settings)
    tenant = store.tenants()[0]
    store.close()
    key = demo_key(KeyStore(settings.score_store_url), tenant)
    lead = f"{tenant}-LONG"
    history = long_history(n, tenant, lead)
    figures: dict[str, float] = {}
    for on in (True, False):
        env = {"LEADRADAR_FEATURES__ONLINE_TILES": str(on).lower(), "LEADRADAR_SERVING__RESCORE": "false"}
        with ServiceProcess(settings, env=env) as svc:
            times = []
            with httpx.Client(base_url=svc.url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
                for start in range(0, n, BATCH):
                    batch = {"events": _wire(history.iloc[start : start + BATCH])}
                    http.post("/v1/events", json=batch).raise_for_status()
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    http.post("/v1/score", json={"leads": [{"lead_id": lead}]}).raise_for_status()
                    times.append((time.perf_counter() - t0) * 1000)
                moved = []  # each after one more event of the lead is sent and stored: a radar's usual request
                for i in range(repeats // 2):
                    one = long_history(1, tenant, lead, days=1, seed=100 + i).assign(event_id=f"{lead}-moved-{i}")
                    http.post("/v1/events", json={"events": _wire(one)}).raise_for_status()
                    t0 = time.perf_counter()
                    http.post("/v1/score", json={"leads": [{"lead_id": lead}]}).raise_for_status()
                    moved.append((time.perf_counter() - t0) * 1000)
        name = "served_online" if on else "served_online_query"
        figures[f"{name}_p99_ms"] = float(np.percentile(times[20:], 99))
        figures[f"{name}_p50_ms"] = float(np.percentile(times[20:], 50))
        figures[f"{name}_moved_p99_ms"] = float(np.percentile(moved, 99))
        figures[f"{name}_moved_p50_ms"] = float(np.percentile(moved, 50))
    figures["served_load_average_1m"] = os.getloadavg()[0]
    return figures


def _wire(frame: pd.DataFrame) -> list[dict]:
    from leadradar.feed import wire_rows

    return wire_rows(frame, tuple(frame.columns))


def _newest_score(http: Any, lead: str) -> pd.Timestamp:
    answer = http.get(f"/v1/leads/{lead}", params={"limit": 1})
    scores = answer.json().get("scores", []) if answer.status_code == 200 else []
    return pd.Timestamp(scores[-1]["as_of"]) if scores else pd.Timestamp.min.tz_localize("UTC")


def _catch_up(url: str, key: str, leads: list[str], burst_end: pd.Timestamp, limit: float = 600) -> float | None:
    import httpx

    started = time.perf_counter()
    waiting = set(leads)
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as http:
        while waiting and time.perf_counter() - started < limit:
            waiting = {lead for lead in waiting if _newest_score(http, lead) < burst_end}
            time.sleep(0.2)
    return None if waiting else time.perf_counter() - started


def http_figures(settings: Any, sim_dir: Path, seconds: float) -> dict[str, float]:
    """Backfill and train on the simulated log, serve it, then the HTTP measurements against that service."""
    from leadradar.demo import demo_key
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.process import ServiceProcess
    from leadradar.training.pipeline import train_from_logs
    from leadradar.training.promotion import promote

    store = EventStore.open(settings)
    load_files(store, settings, [sim_dir / "events.parquet"], stages=[sim_dir / "stages.parquet"])
    train_from_logs(RadarLog.from_store(store), settings)
    promote(settings)
    tenant = store.tenants()[0]
    store.close()
    key = demo_key(KeyStore(settings.score_store_url), tenant)
    with ServiceProcess(settings) as svc:
        figures = http_ingest(svc.url, key, tenant, seconds)
        figures |= rescore_latency(svc.url, key, tenant, min(seconds, 30))
        figures["stored_history_p99_ms"] = stored_history_p99_ms(svc.url, key, tenant)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the HTTP burst")
    parser.add_argument("--leads", type=int, default=DEFAULT_SIM["leads"], help="leads of the simulated log")
    parser.add_argument("--part", choices=("all", "store", "online"), default="all")
    parser.add_argument("--served", action="store_true", help="with --part online: also over HTTP (trains a model)")
    args = parser.parse_args()
    os.environ.update(QUIET)
    from rich.console import Console

    from leadradar.config import Settings

    console = Console()
    if args.part == "online":
        with tempfile.TemporaryDirectory(prefix="bench-online-") as tmp:
            settings = Settings(home=Path(tmp) / "home")
            settings.ensure_dirs()
            with console.status("features of one lead with 5,000 stored events"):
                online = online_p99_ms(settings)
            with console.status("and of one lead with 20,000"):  # what grows with a lead's history
                longer = Settings(home=Path(tmp) / "home-20k")
                longer.ensure_dirs()
                online |= {
                    f"online_20k_{k.removeprefix('online_')}": v for k, v in online_p99_ms(longer, n=20_000).items()
                }
            if args.served:
                with console.status("the same over HTTP, tiles on and off"):
                    online |= served_online_p99_ms(settings)
        path = write_results("live_online", online, inputs={"events": online["online_events"], "days": 180})
        console.print(online)
        console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")
        return
    sim = dataset({**DEFAULT_SIM, "leads": args.leads})
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        settings.ensure_dirs()
        with console.status("leadradar ingest of the simulated log into SQLite"):
            figures |= store_figures(f"sqlite:///{tmp}/events.db", sim.dir / "events.parquet", settings)
        pg = _postgres(Path(tmp))
        if pg is not None:
            with console.status("the same into PostgreSQL"):
                url = pg.create_database("bench_live")
                figures |= {
                    f"{k}_postgres": v for k, v in store_figures(url, sim.dir / "events.parquet", settings).items()
                }
        if args.part == "all":
            with console.status(f"over HTTP: {args.seconds:.0f} s burst, rescoring, score by id"):
                figures |= http_figures(settings, sim.dir, args.seconds)
            if pg is not None:
                settings_pg = Settings(home=Path(tmp) / "home-pg", store={"url": pg.create_database("bench_live_http")})
                settings_pg.ensure_dirs()
                figures |= {f"{k}_postgres": v for k, v in http_figures(settings_pg, sim.dir, args.seconds).items()}
        if pg is not None:
            pg.stop()
    path = write_results(
        "live",
        figures,
        inputs={
            "simulation": sim.config,
            "events": sim.sizes.get("events"),
            "seconds": args.seconds,
            "batch": BATCH,
            "clients": CLIENTS,
            "rate": RATE,
            "history": HISTORY,
            "part": args.part,
        },
    )
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


def _postgres(tmp: Path) -> Any:
    """A throwaway PostgreSQL (tests/support/postgres.py), or None when its binaries are not installed."""
    from tests.support.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    return None if bin_dir is None else PostgresServer(bin_dir).start()


if __name__ == "__main__":
    main()
