"""Training "as seen" against "by event time" (issue 13): how much the simulator's late events change a training set.

The simulated log is loaded into a fresh event store with each event's arrival (the simulator's arrivals.parquet:
2 % of events arrive late, 36 h on average, and re-sends). The same training set is then built both ways: as the
service saw the log (an event counts from the later of its time and its arrival, the default) and by event time.
Written: the rows whose features differ, the features that differ most often, and the backtest (same parameters,
same split) of each against the simulator's truth. It passes or fails nothing: benchmarks/results/as_seen.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 3, "leads": 8_000, "days": 365, "seed": 13}


def figures(sim: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.registry import build_registry
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files
    from leadradar.features.trainset import build_training_set
    from leadradar.training.backtest import lgbm_params, run_backtest

    data = dataset(sim)
    with tempfile.TemporaryDirectory(prefix="leadradar-as-seen-") as home:
        settings = Settings(home=Path(home))
        store = EventStore.open(settings)
        end = pd.read_parquet(data.path("events"), columns=["ts"])["ts"].max() + pd.Timedelta(days=7)
        load_files(
            store,
            settings,
            [data.path("events")],
            stages=[data.path("stages")],
            items=data.path("items"),
            leads=data.path("leads"),
            now=end,
        )
        registry = build_registry(settings)
        sets, results = {}, {}
        for name, as_seen in (("as_seen", True), ("event_time", False)):
            log = dataclasses.replace(RadarLog.from_store(store, as_seen=as_seen), truth=data.path("truth"))
            started = time.perf_counter()
            ts = build_training_set(log, settings, registry=registry)
            backtest = run_backtest(ts, settings, lgbm_params(settings, None), log)
            sets[name] = ts
            results[name] = {**backtest.results["test"], "seconds": time.perf_counter() - started}
        late = store.events(as_seen=False).to_pandas()
        seen = store.events(as_seen=True).to_pandas()
        store.close()
    delay = seen["ts"] - late["ts"]
    moved, late_by_an_hour = int((delay > pd.Timedelta(0)).sum()), int((delay > pd.Timedelta(hours=1)).sum())
    a, b = (sets[k].frame.set_index(["tenant_id", "lead_id", "cutoff"]).sort_index() for k in ("as_seen", "event_time"))
    common = a.index.intersection(b.index)
    cols = [c for c in sets["as_seen"].features if c in b.columns]
    left, right = a.loc[common, cols], b.loc[common, cols]
    differs = ~((left == right) | (left.isna() & right.isna()))
    per_feature = differs.mean().sort_values(ascending=False)
    # Every arrival is a little after its event, so every recency feature moves by seconds; what a late event
    # changes materially is whether it is counted at all by a cutoff.
    counted = [f.name for f in registry if f.kind == "count" and f.name in cols]
    out: dict[str, Any] = {
        "events": len(late),
        "events_placed_later_as_seen": moved,
        "rows_as_seen": len(a),
        "rows_event_time": len(b),
        "rows_with_any_feature_differing": int(differs.any(axis=1).sum()),
        "share_rows_differing": float(differs.any(axis=1).mean()),
        "events_late_by_over_an_hour": late_by_an_hour,
        "rows_with_a_count_differing": int(differs[counted].any(axis=1).sum()),
        "share_rows_with_a_count_differing": float(differs[counted].any(axis=1).mean()),
    }
    for name, res in results.items():
        for key in ("auc", "logloss", "ece", "mean_abs_err_vs_truth"):
            if key in res and np.isfinite(res[key]):
                out[f"{key}_{name}"] = float(res[key])
    extra = {"features_differing_most": {k: float(v) for k, v in per_feature.head(10).items()}}
    return out, extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=DEFAULT_SIM["leads"])
    parser.add_argument("--days", type=int, default=DEFAULT_SIM["days"])
    args = parser.parse_args()
    sim = {**DEFAULT_SIM, "leads": args.leads, "days": args.days}
    out, extra = figures(sim)
    path = write_results("as_seen", out, {"simulation": sim}, extra)
    for k, v in out.items():
        print(f"{k}: {v}")
    print(f"written {path}")


if __name__ == "__main__":
    main()
