"""Serving benchmark (issue 5): the real BentoML service over loopback, next to a bare FastAPI baseline.

`make bench-serving` trains and promotes a model on the default simulation in a throwaway data
directory, stores a batch of scores (for the salesperson context), starts `leadradar serve` and the
baseline app (benchmarks/serving_baseline.py, same model bundle), and measures from a client process:
single-lead feature-row requests (p50, p99), a 1,000-lead batch, single-lead requests with 200 raw
events (p99), and leads/s from 8 concurrent single-lead clients (against one worker, the baseline,
and two workers; from Python threads and from `wrk` where it is installed). Request bodies are
encoded once beforehand, as a load generator sends them.
Headline latencies are without reasons (`explain: false`); the same requests with reasons are
reported beside them, and the first page of the tenant's ranked list (`/v1/rank`). Writes
benchmarks/results/serving.json; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import machine, write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 3, "leads": 20_000, "days": 455}  # the simulator's defaults
TARGETS = {
    "p50_ms": 3.0,
    "p99_ms": 10.0,
    "batch1000_ms": 50.0,
    "events200_p99_ms": 20.0,
    "leads_per_s": 1500.0,
    "p50_ratio_vs_baseline": 1.5,
}
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def encoded(body: dict) -> bytes:
    """The request body as a load generator sends it: encoded once, so the client's JSON encoder (61 ms
    for the 1,000-lead body) is not counted as the service's time."""
    return json.dumps(body).encode()


def timed(client, url: str, body: dict, headers: dict, n: int) -> list[float]:
    """Milliseconds of `n` sequential requests on one keep-alive connection (after 20 warm-ups)."""
    raw, headers = encoded(body), {**headers, "content-type": "application/json"}
    for _ in range(20):
        client.post(url, content=raw, headers=headers).raise_for_status()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.post(url, content=raw, headers=headers)
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


def concurrent(url: str, bodies: list[dict], headers: dict, clients: int, seconds: float) -> tuple[int, int]:
    """Requests and errors from `clients` threads each with its own connection, for `seconds`."""
    import httpx

    done, errors = [0] * clients, [0] * clients
    raws, headers = [encoded(b) for b in bodies], {**headers, "content-type": "application/json"}
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(timeout=30) as c:
            k = i
            while time.monotonic() < stop:
                try:
                    c.post(url, content=raws[k % len(raws)], headers=headers).raise_for_status()
                    done[i] += 1
                except httpx.HTTPError:
                    errors[i] += 1
                k += clients

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def wrk_rate(url: str, bodies: list[dict], headers: dict, connections: int, seconds: float) -> dict | None:
    """Requests/s from `wrk` (a C load generator) holding `connections` keep-alive connections, each
    sending the single-lead bodies in turn; None where wrk is not installed (`apt-get install wrk`).

    The Python client spends about 0.65 ms of CPU a request on the same 2 cores as the server, so it
    measures the client as much as the service; wrk leaves the cores to the service.
    """
    if shutil.which("wrk") is None:
        return None
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lines += [
        "local bodies = {",
        *[f"  [==[{json.dumps(b)}]==]," for b in bodies],
        "}",
        "local i = 0",
        "request = function()",
        "  i = i + 1",
        "  return wrk.format(nil, nil, nil, bodies[(i % #bodies) + 1])",
        "end",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write("\n".join(lines))
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return {"requests_per_s": round(rate, 1), "failed": failed}


def prepare(home: Path, sim) -> dict:
    """A champion, a stored batch and a system key in `home`; request bodies from the simulation."""
    import pandas as pd
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig, simulation_end
    from leadradar.registry import load_alias
    from leadradar.serving.auth import KeyStore
    from leadradar.serving.scoring import score_batch, store_batch
    from leadradar.serving.store import ScoreStore
    from leadradar.training.pipeline import train_from_logs
    from leadradar.training.promotion import promote

    settings = Settings(home=home)
    d = sim.dir
    log = RadarLog.from_paths(d / "events.parquet", d / "stages.parquet", beside=("items", "leads"))
    train_from_logs(log, settings, use_tuned=False)
    promote(settings)
    loaded = load_alias(settings)
    as_of = pd.Timestamp(simulation_end(SimulationConfig(**DEFAULT_SIM)), tz="UTC").as_unit("us")
    scores, feats = score_batch(log, as_of, settings, loaded)
    store_batch(ScoreStore(settings.score_store_url), scores, feats)
    tenant = feats["tenant_id"].iloc[0]
    key = KeyStore(settings.score_store_url).create(tenant, "system", name="bench")[1]
    rows = feats[feats["tenant_id"] == tenant]
    as_features = [
        {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in loaded.model.features}}
        for r in rows.head(1000).to_dict("records")
    ]
    events = pq.read_table(d / "events.parquet")
    counts = pc.value_counts(events.filter(pc.equal(events["tenant_id"], tenant))["lead_id"]).to_pylist()
    busy = sorted((c["counts"], c["values"]) for c in counts if c["counts"] >= 200)[0][1]
    own = events.filter(pc.equal(events["lead_id"], busy)).sort_by("ts").slice(0, 200).to_pylist()
    event_body = [
        {k: (v.isoformat() if k == "ts" else v) for k, v in e.items() if k not in ("tenant_id", "lead_id")} for e in own
    ]
    return {
        "settings": settings,
        "key": key,
        "ranked": int((scores["tenant_id"] == tenant).sum()),
        "leads": as_features,
        "events_lead": busy,
        "events": event_body,
        "as_of": as_of.isoformat(),
        "bundle": str(next((home / "model-cache").rglob("model.json")).parent),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sequential requests per latency figure")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of the concurrent run")
    args = parser.parse_args(argv)
    import httpx
    from rich.console import Console

    from leadradar.serving.process import ServiceProcess, free_port

    os.environ.update(QUIET)
    console = Console()
    sim = dataset(DEFAULT_SIM)
    home = Path(tempfile.mkdtemp(prefix="leadradar-bench-serving-"))
    with console.status("training, promoting and batch-scoring a model for the service"):
        ctx = prepare(home, sim)
    headers = {"Authorization": f"Bearer {ctx['key']}"}
    one = {"leads": ctx["leads"][:1], "explain": False}
    one_explained = {"leads": ctx["leads"][:1], "explain": True}
    batch = {"leads": ctx["leads"][:1000], "explain": False}
    batch_explained = {"leads": ctx["leads"][:1000], "explain": True}
    ev = {"as_of": ctx["as_of"], "explain": False, "leads": [{"lead_id": ctx["events_lead"], "events": ctx["events"]}]}
    singles = [{"leads": [lead], "explain": False} for lead in ctx["leads"][:200]]
    figures: dict = {}
    port = free_port()
    base = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.serving_baseline", ctx["bundle"], str(port)],
        env={**os.environ},
        start_new_session=True,
    )
    try:
        with ServiceProcess(ctx["settings"]) as svc, httpx.Client(timeout=60) as c:
            url = svc.url + "/v1/score"
            with console.status("single-lead requests"):
                lat = timed(c, url, one, headers, args.n)
                lat_x = timed(c, url, one_explained, headers, max(200, args.n // 4))
            with console.status("1,000-lead batches"):
                b = timed(c, url, batch, headers, 30)
                bx = timed(c, url, batch_explained, headers, 5)
            with console.status("single leads with 200 raw events"):
                e = timed(c, url, ev, headers, max(300, args.n // 4))
            with console.status("ranked lists"):
                r = timed(c, svc.url + "/v1/rank", {"page": 1, "page_size": 50}, headers, 200)
            with console.status(f"8 concurrent clients for {args.seconds:.0f} s"):
                n, errors = concurrent(url, singles, headers, 8, args.seconds)
                wrk_one = wrk_rate(url, singles, headers, 8, args.seconds)
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            base_body = {"leads": ctx["leads"][:1]}
            with console.status("the FastAPI + LightGBM baseline"):
                lat_base = timed(c, f"http://127.0.0.1:{port}/score", base_body, {}, args.n)
                base_singles = [{"leads": b["leads"]} for b in singles]
                base_n, _ = concurrent(f"http://127.0.0.1:{port}/score", base_singles, {}, 8, args.seconds)
                wrk_base = wrk_rate(f"http://127.0.0.1:{port}/score", base_singles, {}, 8, args.seconds)
        os.killpg(base.pid, signal.SIGTERM)
        base.wait(timeout=30)
        with (
            console.status(f"8 concurrent clients against 2 workers for {args.seconds:.0f} s"),
            ServiceProcess(ctx["settings"], env={"LEADRADAR_SERVING__WORKERS": "2"}) as svc2,
        ):
            n2, errors2 = concurrent(svc2.url + "/v1/score", singles, headers, 8, args.seconds)
            wrk_two = wrk_rate(svc2.url + "/v1/score", singles, headers, 8, args.seconds)
    finally:
        if base.poll() is None:
            os.killpg(base.pid, signal.SIGTERM)
            base.wait(timeout=30)
    started = time.perf_counter()
    encoded(batch)
    encode_ms = (time.perf_counter() - started) * 1000
    figures = {
        "p50_ms": round(statistics.median(lat), 3),
        "p99_ms": round(percentile(lat, 99), 3),
        "batch1000_ms": round(statistics.median(b), 2),
        "events200_p99_ms": round(percentile(e, 99), 3),
        "events200_p50_ms": round(statistics.median(e), 3),
        # The headline: one worker per core, driven by wrk (the Python client figures beside it).
        "leads_per_s": wrk_two["requests_per_s"] if wrk_two else round(n2 / args.seconds, 1),
        "leads_per_s_how": "2 workers, wrk" if wrk_two else "2 workers, Python client (wrk not installed)",
        "leads_per_s_failed": wrk_two["failed"] if wrk_two else errors2,
        "leads_per_s_1_worker_wrk": wrk_one and wrk_one["requests_per_s"],
        "baseline_leads_per_s_wrk": wrk_base and wrk_base["requests_per_s"],
        "leads_per_s_python_clients": round(n / args.seconds, 1),
        "concurrent_errors": errors,
        "leads_per_s_2_workers_python_clients": round(n2 / args.seconds, 1),
        "concurrent_errors_2_workers": errors2,
        "baseline_leads_per_s_python_clients": round(base_n / args.seconds, 1),
        "batch1000_client_encode_ms": round(encode_ms, 1),
        "baseline_p50_ms": round(statistics.median(lat_base), 3),
        "p50_ratio_vs_baseline": round(statistics.median(lat) / statistics.median(lat_base), 3),
        "with_reasons_p50_ms": round(statistics.median(lat_x), 3),
        "with_reasons_p99_ms": round(percentile(lat_x, 99), 3),
        "with_reasons_batch1000_ms": round(statistics.median(bx), 1),
        "rank_p50_ms": round(statistics.median(r), 2),
        "rank_p99_ms": round(percentile(r, 99), 2),
        "targets": TARGETS,
    }
    for k, limit in TARGETS.items():
        figures[f"met_{k}"] = figures[k] >= limit if k == "leads_per_s" else figures[k] <= limit
    path = write_results(
        "serving",
        figures,
        inputs={
            "simulation": DEFAULT_SIM,
            "events": sim.events,
            "leads": sim.leads,
            "sequential_requests": args.n,
            "rank_leads": ctx["ranked"],
            "concurrent_clients": 8,
            "concurrent_seconds": args.seconds,
            "events_per_request": len(ctx["events"]),
            "server": "leadradar serve (BentoML 1.4, 1 worker unless said) on 127.0.0.1; client in another process on "
            "the same 2 cores, sending request bodies encoded once beforehand (as a load generator does)",
        },
    )
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
