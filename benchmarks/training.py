"""Training benchmark (issue 4): fitting speed and memory on 2 cores.

`make bench-training` measures, each in a fresh process:
1. one LightGBM target (with early stopping off, the number of rounds fixed) on 1 M rows × 150
   features with the default parameters, then the calibration step, as `FunnelModel` runs it;
2. a 30-trial Optuna tuning run (TPE, median pruning, nested MLflow runs) on the training set of the
   default simulation, as `leadradar tune` runs it;
and writes benchmarks/results/training.json. It passes or fails nothing: it writes what it measured.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import machine, measure, write_results
from benchmarks.datasets import dataset

ROWS, FEATURES, ROUNDS, TRIALS = 1_000_000, 150, 300, 30
DEFAULT_SIM = {"tenants": 3, "leads": 20_000, "days": 455}  # the simulator's defaults
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def synthetic_table(rows: int, features: int, seed: int = 0):
    """A wide table with a known signal in a dozen columns, the rest noise, 5 % positives (like open leads)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    X[:, : features // 3] = np.abs(X[:, : features // 3]) * 3  # count-like columns
    w = np.zeros(features)
    w[:12] = rng.normal(0, 0.6, 12)
    logit = -3.2 + X.astype(np.float64) @ w
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    frame = pd.DataFrame(X, columns=[f"f{i:03d}" for i in range(features)])
    frame["y"] = y
    frame["lead_id"] = np.arange(rows).astype(str)
    return frame


def fit_wide(rows: int, features: int, rounds: int) -> dict:
    """Fit and calibrate one target on `rows` × `features`; seconds exclude building the synthetic table."""
    import time

    from leadradar.config import Settings
    from leadradar.models.funnel import FunnelModel, LeafRule
    from leadradar.targets import TargetSpec

    frame = synthetic_table(rows, features)
    train, val = frame.iloc[: int(rows * 0.85)], frame.iloc[int(rows * 0.85) :]
    settings = Settings()
    model = FunnelModel(
        [TargetSpec("y", "y")],
        [c for c in frame.columns if c.startswith("f")],
        params=settings.training.lgbm_params,
        num_boost_round=rounds,
        early_stopping_rounds=rounds + 1,
        seed=7,
        leaf_rule=LeafRule.from_settings(settings.training),
        isotonic_min_rarer=settings.training.isotonic_min_rarer,
    )
    start = time.perf_counter()
    model.fit(train, val)
    seconds = time.perf_counter() - start
    fitted = model.targets_["y"]
    return {"seconds": round(seconds, 2), "rounds": fitted.best_iteration, "calibration": fitted.calibrator.method}


def tune_default(data_dir: str, trials: int) -> dict:
    """`leadradar tune` on the default simulation, in a throwaway data directory."""
    import time

    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.training.pipeline import tune_from_logs

    home = Path(tempfile.mkdtemp(prefix="leadradar-bench-tune-"))
    settings = Settings(home=home)
    log = RadarLog.from_dir(data_dir)
    start = time.perf_counter()
    result = tune_from_logs(log, settings, n_trials=trials, progress=False)
    return {
        "seconds": round(time.perf_counter() - start, 2),
        "complete": result.trials_complete,
        "pruned": result.trials_pruned,
        "best_val_logloss": result.best_value,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--trials", type=int, default=TRIALS)
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console()
    with console.status(f"fitting on {args.rows:,} rows × {FEATURES} features"):
        fit = measure(
            "benchmarks.training:fit_wide", {"rows": args.rows, "features": FEATURES, "rounds": ROUNDS}, env=QUIET
        )
    sim = dataset(DEFAULT_SIM)
    with console.status(f"tuning {args.trials} trials on the default simulation"):
        tune = measure("benchmarks.training:tune_default", {"data_dir": str(sim.dir), "trials": args.trials}, env=QUIET)
    for m in (fit, tune):
        if not m.ok:
            console.print(f"[red]{m.error}[/red]")
    figures = {
        "rows": args.rows,
        "features": FEATURES,
        "rounds": ROUNDS,
        "train_seconds": fit.seconds,
        "train_peak_rss_mb": fit.peak_rss_mb,
        "tune_trials": args.trials,
        "tune_seconds": tune.seconds,
        "tune_peak_rss_mb": tune.peak_rss_mb,
        "tune_trials_complete": (tune.result or {}).get("complete"),
        "tune_trials_pruned": (tune.result or {}).get("pruned"),
        "peak_rss_mb": max(fit.peak_rss_mb, tune.peak_rss_mb),
    }
    path = write_results(
        "training",
        figures,
        inputs={"fit": fit.kwargs, "tune_simulation": DEFAULT_SIM, "tune_events": sim.events, "tune_leads": sim.leads},
        extra={"runs": {"fit": fit.as_dict(), "tune": tune.as_dict()}},
    )
    console.print(figures)
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
