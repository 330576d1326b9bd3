"""Refit benchmark (issue 14): the backtest model against the model refit on every labelled row, scored forward.

Trains with `--until` some months before the simulation's end, once serving the backtest model
(`training.refit_on_all=false`, the behaviour before the refit) and once serving the refit, then
scores every later weekly cutoff whose label window has closed, as `leadradar score --as-of` would:
AUC, log loss, ECE and mean |p̂ − p_true| on the same rows. Worlds: the default simulation (trained
120 days before its end) and a short one (trained on its first 4 months, scored on the next month).
Writes benchmarks/results/quality_refit.json; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from benchmarks.common import write_results

WORLDS = {
    "default": ({"tenants": 3, "leads": 20_000, "days": 455}, 455 - 120),
    "four_months": ({"tenants": 3, "leads": 20_000, "days": 180}, 120),
}


def simulated(world: dict, folder: Path) -> Path:
    from leadradar.config import Settings
    from leadradar.features.simulator import SimulationConfig, simulate

    if not (folder / "events.parquet").exists():
        simulate(SimulationConfig(**world), Settings(home=folder / "home")).write(folder)
    return folder


def forward(data: Path, train_days: int, refit: bool) -> dict:
    """Train on the first `train_days` days; the backtest's figures and the served model's on every later cutoff."""
    import pandas as pd

    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig
    from leadradar.features.trainset import build_training_set
    from leadradar.registry import ModelRef, load_version
    from leadradar.training.backtest import attach_truth
    from leadradar.training.metrics import classification_metrics, truth_metrics
    from leadradar.training.pipeline import train_from_logs

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="leadradar-bench-refit-")))
    settings.training.refit_on_all = refit
    log = RadarLog.from_dir(data)
    until = pd.Timestamp(SimulationConfig().start, tz="UTC") + timedelta(days=train_days)
    started = time.perf_counter()
    result = train_from_logs(log, settings, until=until, use_tuned=False)
    seconds = time.perf_counter() - started
    model = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    ts = build_training_set(
        log, settings, cutoff_range=(until + timedelta(days=1), pd.Timestamp.max.tz_localize("UTC"))
    )
    label = f"y_{model.main_target}"
    rows = ts.frame[ts.frame[label].notna()]
    p = model.targets_[model.main_target].predict(model.matrix(rows))
    y = rows[label].to_numpy(int)
    truth = attach_truth(rows, log, f"p_{model.main_target}")
    scored = classification_metrics(y, p) | truth_metrics(y, p, truth.to_numpy()) if truth is not None else {}
    keep = ("auc", "logloss", "ece", "mean_abs_err_vs_truth", "oracle_auc", "oracle_logloss", "rows", "base_rate")
    backtest = {k: v for k, v in result.test_metrics.items() if k.split("_lo")[0].split("_hi")[0] in keep[:4]}
    return {
        "served_model": result.extra["served_model"],
        "backtest_kind": result.extra["backtest"]["kind"],
        "train_seconds": round(seconds, 1),
        "backtest": backtest,
        "forward": {k: scored[k] for k in keep if k in scored}
        | {"cutoffs": f"{rows['cutoff'].min():%Y-%m-%d} … {rows['cutoff'].max():%Y-%m-%d}"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "leadradar-bench-refit")
    parser.add_argument("--worlds", nargs="*", default=list(WORLDS))
    args = parser.parse_args()
    results: dict = {}
    figures: dict[str, float] = {}
    for name in args.worlds:
        world, train_days = WORLDS[name]
        data = simulated(world, args.data / name)
        results[name] = {"simulation": world, "train_days": train_days}
        for refit in (False, True):
            served = "refit" if refit else "backtest_model"
            results[name][served] = forward(data, train_days, refit)
            print(name, served, results[name][served], flush=True)
            figures |= {f"{name}_{served}_forward_{k}": v for k, v in results[name][served]["forward"].items()}
    write_results("quality_refit", figures, {n: WORLDS[n] for n in args.worlds}, {"worlds": results})


if __name__ == "__main__":
    main()
