"""A radar log sent to a running service over HTTP in the order it arrived, fast-forwarded: the demo's live part.

Events go to `POST /v1/events` and stage changes to `POST /v1/stages` with each tenant's system key, in
batches, each sent when the fast-forwarded clock reaches its last arrival. Written to the HTTP contract only,
so it drives any leadradar service (the demo's, a benchmark's, a real one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import numpy as np
import pandas as pd

from leadradar.features.contract import EVENT_COLUMNS, STAGE_COLUMNS


@dataclass
class Sent:
    """What a feed sent and what the service answered, summed over its requests."""

    requests: int = 0
    received: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def add(self, answer: dict) -> None:
        self.requests += 1
        for key in ("received", "stored", "duplicate", "quarantined"):
            setattr(self, key, getattr(self, key) + int(answer[key]))


def wire_rows(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[dict]:
    """Rows as the JSON the API reads: times as ISO 8601 UTC, missing values as null."""
    out = frame[[c for c in columns if c in frame.columns]].copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out = out.astype(object).where(out.notna(), None)
    return out.to_dict("records")


def windows(events: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    """Consecutive rows in arrival order, `size` at a time (a request carries one tenant's part of a window)."""
    for start in range(0, len(events), size):
        yield events.iloc[start : start + size]


def post(client: httpx.Client, path: str, body: dict, key: str) -> dict:
    """One request; an answer other than 200 is an error naming the path, the status and the service's words."""
    answer = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    if answer.status_code != 200:
        raise RuntimeError(f"POST {path} answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


def feed(
    client: httpx.Client,
    keys: dict[str, str],
    events: pd.DataFrame,
    stages: pd.DataFrame,
    *,
    speed: float,
    batch: int = 300,
    every: float = 5.0,
    tick: Callable[[pd.Timestamp], None] | None = None,
) -> tuple[Sent, Sent]:
    """Send `events` (with `arrived_at`) in arrival order and `stages` in time order, the log's clock running
    `speed` times faster than real time; `tick(log_clock)` every `every` seconds. What was sent of each."""
    events = events.sort_values("arrived_at", kind="stable")
    stages = stages.sort_values("ts", kind="stable")
    stage_times = stages["ts"].dt.tz_convert(None).to_numpy()
    sent_events, sent_stages = Sent(), Sent()
    if events.empty:
        return sent_events, sent_stages
    first = events["arrived_at"].iloc[0]
    started = last_tick = time.perf_counter()
    done_stages = 0
    for window in windows(events, batch * max(1, events["tenant_id"].nunique())):
        due = window["arrived_at"].iloc[-1]
        wait = (due - first).total_seconds() / speed - (time.perf_counter() - started)
        if wait > 0:
            time.sleep(wait)
        for tenant, part in window.groupby("tenant_id", sort=False):
            sent_events.add(post(client, "/v1/events", {"events": wire_rows(part, EVENT_COLUMNS)}, keys[str(tenant)]))
        upto = int(np.searchsorted(stage_times, due.tz_convert(None).to_datetime64(), side="right"))
        _send_stages(client, keys, stages.iloc[done_stages:upto], batch, sent_stages)
        done_stages = upto
        if tick is not None and time.perf_counter() - last_tick >= every:
            tick(due)
            last_tick = time.perf_counter()
    _send_stages(client, keys, stages.iloc[done_stages:], batch, sent_stages)
    sent_events.seconds = sent_stages.seconds = time.perf_counter() - started
    return sent_events, sent_stages


def _send_stages(client: httpx.Client, keys: dict[str, str], stages: pd.DataFrame, batch: int, sent: Sent) -> None:
    for tenant, part in stages.groupby("tenant_id", sort=False):
        for start in range(0, len(part), batch):
            rows = wire_rows(part.iloc[start : start + batch], STAGE_COLUMNS)
            sent.add(post(client, "/v1/stages", {"stages": rows}, keys[str(tenant)]))
