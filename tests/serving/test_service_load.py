"""A bounded load test: 30 seconds of mixed score/rank/model traffic from its own process, and no error (the ten
minutes of `make bench-soak` are the long run, with memory watched).

The load comes from a separate process (this file run as a script) with a fixed number of client threads,
so the test process measures nothing of its own. Throughput and latency are reported, never asserted:
speed claims belong to benchmarks/.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path

LOAD_SECONDS = float(os.environ.get("LEADRADAR_LOAD_SECONDS", "30"))
CLIENTS = 8
MIX = (("score", 0.6), ("rank", 0.25), ("model", 0.15))


# -- the load generator (runs as `python tests/serving/test_service_load.py PLAN OUT`) ----------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def generate(plan: dict) -> dict:
    """Each client sends requests back to back until the time is up; returns counts, errors and latencies."""
    import httpx

    deadline = time.monotonic() + plan["seconds"]
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {name: [] for name, _ in MIX}
    errors: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=plan["url"], timeout=60) as http:
            while time.monotonic() < deadline:
                kind = rng.choices([k for k, _ in MIX], [w for _, w in MIX])[0]
                key = rng.choice(plan["keys"][kind])
                headers = {"Authorization": f"Bearer {key}"}
                started = time.perf_counter()
                try:
                    if kind == "model":
                        resp = http.get("/v1/model", headers=headers)
                    else:
                        resp = http.post(f"/v1/{kind}", json=rng.choice(plan["bodies"][kind]), headers=headers)
                    ok = resp.status_code == 200
                    problem = None if ok else f"{kind} {resp.status_code} {resp.text[:200]}"
                except httpx.HTTPError as exc:
                    problem = f"{kind} {type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - started
                with lock:
                    latencies[kind].append(elapsed)
                    if problem:
                        errors.append(problem)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(plan["clients"])]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - began
    every = [x for v in latencies.values() for x in v]
    return {
        "seconds": wall,
        "clients": plan["clients"],
        "requests": len(every),
        "errors": len(errors),
        "error_samples": errors[:5],
        "throughput_rps": len(every) / wall,
        "by_endpoint": {
            k: {
                "requests": len(v),
                "p50_ms": percentile(v, 0.5) * 1e3,
                "p95_ms": percentile(v, 0.95) * 1e3,
                "p99_ms": percentile(v, 0.99) * 1e3,
                "max_ms": max(v, default=float("nan")) * 1e3,
            }
            for k, v in latencies.items()
        },
    }


if __name__ == "__main__":
    result = generate(json.loads(Path(sys.argv[1]).read_text()))
    Path(sys.argv[2]).write_text(json.dumps(result))
    sys.exit(0)


# -- the test ----------------------------------------------------------------------------------------------------

import subprocess  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

pytestmark = pytest.mark.server


def plan_for(server, scored, small_sim, role_keys) -> dict:
    """Request bodies like a CRM's and a manager's: feature rows of 1 and 20 leads, one lead's raw events, ranks."""
    feats = scored.features[scored.features["tenant_id"] == "t01"]
    names = [c for c in feats.columns if c not in ("tenant_id", "lead_id", "cutoff", "sales_id", "stage")]

    def rows(frame):
        return [
            {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in names}}
            for r in frame.to_dict("records")
        ]

    lead = feats["lead_id"].iloc[3]
    ev = pd.read_parquet(small_sim.events, filters=[("lead_id", "==", lead)])
    events = [
        {"event_id": e["event_id"], "ts": e["ts"].isoformat(), "event_type": e["event_type"], "sales_id": e["sales_id"]}
        for e in ev[ev["ts"] <= scored.as_of].to_dict("records")
    ]
    score = [{"leads": rows(feats.iloc[[i]])} for i in range(5)] + [
        {"leads": rows(feats.iloc[10:30])},
        {"leads": rows(feats.iloc[30:31]), "lang": "zh-CN"},
        {"leads": rows(feats.iloc[31:41]), "explain": False},
        {"leads": [{"lead_id": lead, "events": events}], "as_of": scored.as_of.isoformat()},
    ]
    sales = scored.scores.loc[scored.scores["tenant_id"] == "t01", "sales_id"].value_counts().index[:3].tolist()
    rank = [
        {},
        {"page": 2, "page_size": 20},
        {"stage": "qualified"},
        {"grade": "B"},
        {"sales_id": sales[1]},
        {"sales_id": sales[2], "stage": "engaged", "page_size": 10},
    ]
    return {
        "url": server.url,
        "seconds": LOAD_SECONDS,
        "clients": CLIENTS,
        "bodies": {"score": score, "rank": rank},
        "keys": {
            "score": [role_keys["t01", "system"].token, role_keys["t01", "manager"].token],
            "rank": [role_keys["t01", "manager"].token, role_keys["t01", "system"].token],
            "model": [role_keys[t, r].token for t in ("t01", "t02") for r in ("system", "manager", "sales")],
        },
    }


def test_mixed_traffic_from_eight_clients_has_no_error(server, scored, small_sim, role_keys, tmp_path, capsys):
    plan = plan_for(server, scored, small_sim, role_keys)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path / "plan.json"), str(out)],
        capture_output=True,
        text=True,
        timeout=LOAD_SECONDS + 120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    lines = [
        f"\nload: {result['requests']} requests from {result['clients']} clients in {result['seconds']:.0f} s, "
        f"{result['throughput_rps']:.0f} req/s, {result['errors']} errors"
    ]
    for name, s in result["by_endpoint"].items():
        lines.append(
            f"  {name:5s} {s['requests']:6d} requests  p50 {s['p50_ms']:6.1f} ms  p95 {s['p95_ms']:6.1f} ms  "
            f"p99 {s['p99_ms']:6.1f} ms  max {s['max_ms']:6.1f} ms"
        )
    with capsys.disabled():
        print("\n".join(lines))
    assert result["errors"] == 0, result["error_samples"]
    assert all(s["requests"] > 0 for s in result["by_endpoint"].values())
