"""Quality benchmark (issue 4): the model against the simulator's exact truth and four baselines.

`make bench-quality` trains on the default simulation (3 tenants, 20,000 organic leads, 455 days)
exactly as `leadradar train` does, and reports the test period: AUC next to the oracle's, ECE, mean
|p̂ − p_true|, log loss next to every baseline's. Then the same on 2× and 4× the leads, a learning
curve: a gap to the oracle that does not close with more data is what the events cannot tell, not
what the model failed to learn. And once more on the default simulation with the simulator's hidden
mode and intent added as features (a diagnostic: how much of the gap is what the log does not
show). Writes benchmarks/results/quality.json; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import machine, measure, write_results
from benchmarks.datasets import dataset

DEFAULT_SIM = {"tenants": 3, "leads": 20_000, "days": 455}  # the simulator's defaults
CURVE = (2, 4)
TARGETS = {"auc_gap_to_oracle": 0.01, "ece": 0.01, "mean_abs_err_vs_truth": 0.01}
QUIET = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "BENTOML_DO_NOT_TRACK": "true",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def train_on(data_dir: str) -> dict:
    """`leadradar train` on one simulation in a throwaway data directory; the test metrics."""
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.training.pipeline import train_from_logs

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="leadradar-bench-quality-")))
    result = train_from_logs(RadarLog.from_dir(data_dir), settings, use_tuned=False)
    return {"test": result.test_metrics, "rows": result.rows, "skipped": result.extra.get("skipped", {})}


def hidden_state_ceiling(data_dir: str) -> dict:
    """The same model, split and parameters, also given the simulator's hidden mode and intent at each
    cutoff (from truth.parquet): how much of the gap to the oracle is what the log does not show.

    A diagnostic, not a model: no real log carries these columns.
    """
    from dataclasses import replace

    import pandas as pd

    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.trainset import build_training_set
    from leadradar.targets import Targets
    from leadradar.training.pipeline import attach_truth, evaluate, fit_funnel, lgbm_params

    d = Path(data_dir)
    log = RadarLog.from_dir(d)
    settings = Settings(home=Path(tempfile.mkdtemp(prefix="leadradar-bench-quality-")))
    ts = build_training_set(log, settings)
    key = ["tenant_id", "lead_id", "cutoff"]
    hidden = pd.read_parquet(d / "truth.parquet", columns=[*key, "hidden_mode", "hidden_intent"])
    hidden["cutoff"] = hidden["cutoff"].astype("datetime64[us, UTC]")
    frame = ts.frame.merge(hidden, on=key, how="left").set_axis(ts.frame.index)
    frame["hidden_mode"] = pd.Categorical(frame["hidden_mode"].astype(str)).codes.astype(float)
    ts = replace(ts, frame=frame, features=[*ts.features, "hidden_mode", "hidden_intent"])
    targets = Targets.from_settings(settings)
    spec = next(t for t in targets.specs() if t.name == targets.main)
    model, splits = fit_funnel(ts, settings, [spec], lgbm_params(settings, None))
    test = frame[splits[spec.name].masks(frame["cutoff"])["test"]]
    p = model.targets_[spec.name].predict(model.matrix(test))
    metrics = evaluate(
        test[spec.label].to_numpy(int),
        p,
        attach_truth(test, log, f"p_{spec.name}"),
        settings.training.ece_bins,
    )
    return {k: metrics[k] for k in ("auc", "logloss", "mean_abs_err_vs_truth")} | {"test_rows": len(test)}


def summary(metrics: dict) -> dict:
    out = {
        k: metrics.get(k)
        for k in (
            "auc",
            "oracle_auc",
            "logloss",
            "oracle_logloss",
            "ece",
            "brier",
            "mean_abs_err_vs_truth",
            "pr_auc",
            "lift_top10",
        )
    }
    out["auc_gap_to_oracle"] = round(metrics["oracle_auc"] - metrics["auc"], 5)
    for key, value in metrics.items():
        if key.startswith("baseline_logloss_"):
            out[key] = value
    baselines = [v for k, v in out.items() if k.startswith("baseline_logloss_")]
    out["beats_every_baseline_logloss"] = bool(baselines) and metrics["logloss"] < min(baselines)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-curve", action="store_true", help="skip the 2× and 4× simulations")
    args = parser.parse_args(argv)
    from rich.console import Console

    console = Console()
    sims = {1: dataset(DEFAULT_SIM)}
    if not args.no_curve:
        sims |= {k: dataset({**DEFAULT_SIM, "leads": DEFAULT_SIM["leads"] * k}) for k in CURVE}
    runs = {}
    for k, sim in sims.items():
        with console.status(f"training on {sim.events:,} events, {sim.leads:,} leads"):
            runs[k] = measure("benchmarks.quality:train_on", {"data_dir": str(sim.dir)}, env=QUIET)
        if not runs[k].ok:
            console.print(f"[red]{runs[k].error}[/red]")
    with console.status("the same model also given the hidden state (a diagnostic)"):
        ceiling = measure("benchmarks.quality:hidden_state_ceiling", {"data_dir": str(sims[1].dir)}, env=QUIET)
    main_run = summary(runs[1].result["test"])
    figures = {
        **main_run,
        "targets": TARGETS,
        "met_auc_gap": main_run["auc_gap_to_oracle"] <= TARGETS["auc_gap_to_oracle"],
        "met_ece": main_run["ece"] <= TARGETS["ece"],
        "met_mean_abs_err": main_run["mean_abs_err_vs_truth"] <= TARGETS["mean_abs_err_vs_truth"],
        "train_seconds": runs[1].seconds,
        "with_hidden_state": ceiling.result if ceiling.ok else {"error": ceiling.error},
        "learning_curve": [
            {
                "leads_multiple": k,
                "events": sims[k].events,
                "leads": sims[k].leads,
                "test_rows": runs[k].result["rows"]["test"] if runs[k].ok else None,
                **(summary(runs[k].result["test"]) if runs[k].ok else {"error": runs[k].error}),
            }
            for k in sims
        ],
    }
    path = write_results(
        "quality",
        figures,
        inputs={
            "simulation": DEFAULT_SIM,
            "events": sims[1].events,
            "leads": sims[1].leads,
            "test_rows": runs[1].result["rows"]["test"],
        },
        extra={"runs": {str(k): r.as_dict() for k, r in runs.items()}},
    )
    console.print({k: v for k, v in figures.items() if k != "learning_curve"})
    console.print(f"given the hidden state: {figures['with_hidden_state']}")
    for point in figures["learning_curve"]:
        console.print(
            f"×{point['leads_multiple']}: AUC {point.get('auc')} vs oracle {point.get('oracle_auc')}, "
            f"mean |p − truth| {point.get('mean_abs_err_vs_truth')}"
        )
    console.print(f"wrote {path} (machine: {machine()['cpu_model']}, {machine()['cores']} cores)")


if __name__ == "__main__":
    main()
