"""The replicas benchmark (issue 20 item 3): leads/s and events/s with one and with two service processes.

`make bench-replicas` trains and promotes the serving benchmark's model (benchmarks/serving.py `prepare`),
starts PostgreSQL (tests/support/postgres.py) for the event, score and key stores, and measures through
HAProxy (tests/support/balancer.py) with one replica behind it, then with two, in the same run:
- `leads_per_s_{1,2}_replicas`: POST /v1/score of one lead's feature row, `--clients` threads;
- `events_per_s_{1,2}_replicas`: POST /v1/events in batches of 200 new events, `--clients` threads.
On one machine the replicas share its cores with PostgreSQL and the clients, so the ratio says what a second
process buys here, not on a second machine. It passes or fails nothing: it writes benchmarks/results/replicas.json.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import machine, write_results
from benchmarks.datasets import dataset
from benchmarks.serving import DEFAULT_SIM, QUIET, concurrent, prepare

BATCH = 200


def post_events(url: str, headers: dict, clients: int, seconds: float) -> tuple[int, int]:
    """Events acknowledged and failed requests from `clients` threads posting new batches for `seconds`."""
    import httpx
    import pandas as pd

    ids = itertools.count()
    lock = threading.Lock()
    done, errors = [0] * clients, [0] * clients
    ts = (pd.Timestamp.now(tz="UTC") - pd.Timedelta(hours=1)).floor("s").isoformat()
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(timeout=60) as c:
            while time.monotonic() < stop:
                with lock:
                    first = next(ids) * BATCH
                body = {
                    "events": [
                        {
                            "event_id": f"b{n}",
                            "lead_id": f"B{n % 5000}",
                            "sales_id": "s1",
                            "ts": ts,
                            "event_type": "card_view",
                        }
                        for n in range(first, first + BATCH)
                    ]
                }
                try:
                    r = c.post(url + "/v1/events", json=body, headers=headers)
                    r.raise_for_status()
                    done[i] += r.json()["stored"]
                except httpx.HTTPError:
                    errors[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done), sum(errors)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each measured run")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    args = parser.parse_args(argv)
    from rich.console import Console

    from leadradar.config import Settings
    from leadradar.serving.auth import KeyStore
    from tests.support.balancer import Balancer, find_haproxy
    from tests.support.postgres import PostgresServer, find_bin_dir
    from tests.support.replicas import Replicas, SharedStores

    os.environ.update(QUIET)
    console = Console()
    bin_dir, haproxy = find_bin_dir(), find_haproxy()
    if bin_dir is None or haproxy is None:
        raise SystemExit("needs PostgreSQL and HAProxy (Debian: apt-get install postgresql haproxy, as .ci/run does)")
    sim = dataset(DEFAULT_SIM)
    home = Path(tempfile.mkdtemp(prefix="leadradar-bench-replicas-"))
    with console.status("training and promoting the serving benchmark's model"):
        ctx = prepare(home, sim)
    singles = [{"leads": [lead], "explain": False} for lead in ctx["leads"][:200]]
    figures: dict = {}
    with PostgresServer(bin_dir) as pg:
        for count in (1, 2):
            stores = SharedStores.on(pg, f"bench{count}")
            with (
                Replicas(Settings(home=home), stores, count) as replicas,
                Balancer(replicas.urls, check_path="/readyz") as lb,
            ):
                token = KeyStore(stores.scores_url).create("t01", "system", name="replicas benchmark")[1]
                headers = {"Authorization": f"Bearer {token}"}
                with console.status(f"{count} replica(s): scoring for {args.seconds:.0f} s"):
                    n, failed = concurrent(lb.url + "/v1/score", singles, headers, args.clients, args.seconds)
                figures[f"leads_per_s_{count}_replicas"] = round(n / args.seconds, 1)
                figures[f"score_errors_{count}_replicas"] = failed
                with console.status(f"{count} replica(s): events for {args.seconds:.0f} s"):
                    n, failed = post_events(lb.url, headers, args.clients, args.seconds)
                figures[f"events_per_s_{count}_replicas"] = round(n / args.seconds, 1)
                figures[f"events_errors_{count}_replicas"] = failed
    figures["leads_per_s_ratio_2_vs_1"] = round(
        figures["leads_per_s_2_replicas"] / figures["leads_per_s_1_replicas"], 3
    )
    figures["events_per_s_ratio_2_vs_1"] = round(
        figures["events_per_s_2_replicas"] / figures["events_per_s_1_replicas"], 3
    )
    inputs = {"simulation": DEFAULT_SIM, "seconds": args.seconds, "clients": args.clients, "batch": BATCH}
    path = write_results("replicas", figures, inputs=inputs)
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
