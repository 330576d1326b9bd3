"""Defaults that travel (issue 14, item 3): leadradar against two baselines on several simulated worlds.

Each world is simulated with other knobs (intent dynamics, activity, base rate, tenants, history length,
weekday pattern: the simulator has no seasonal knob). `leadradar train --until` runs with its defaults 90
days before the world's end, as a user trains; the served model then scores every later weekly cutoff whose
30-day label window has closed. On the same rows: the logistic baseline (training/baselines.py, on leadradar's
features) and a plain LightGBM on plain pandas features (benchmarks/plain_lightgbm.py), both fit on the same
labelled rows up to `--until`. AUC, log loss, ECE and mean |p̂ − p_true| against the simulator's truth.
`leadradar` is the probability a tenant reads (its own calibration where it has one), `leadradar_pooled` the
pooled one before it. `blend_logistic_<w>` is a what-if, not served: leadradar's and the logistic baseline's
probabilities averaged in log-odds with the baseline at the fixed weight w (0.25, 0.5; none chosen on these worlds).
Writes benchmarks/results/quality_worlds.json; passes or fails nothing.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.common import measure, write_results
from benchmarks.datasets import dataset
from benchmarks.quality import QUIET

if TYPE_CHECKING:
    import numpy as np

LEADS = 4_000
FORWARD_DAYS = 90  # trained this many days before the end; scored on the cutoffs in between
WORLDS: dict[str, dict] = {
    "base": {"tenants": 2, "leads": LEADS, "days": 365, "seed": 101},
    "fast_intent": {
        "tenants": 2,
        "leads": LEADS,
        "days": 365,
        "seed": 102,
        "to_buying": (-4.6, 0.9),
        "to_dormant": (-2.6, 0.5),
        "buying_ends": 0.08,
    },
    "quiet": {
        "tenants": 2,
        "leads": LEADS,
        "days": 365,
        "seed": 103,
        "activity_log_mean": -3.2,
        "activity_intent": 0.5,
    },
    "rare_wins": {
        "tenants": 3,
        "leads": LEADS,
        "days": 365,
        "seed": 104,
        "stage_base": (-4.8, -5.3, -5.5, -5.5, -4.9),
    },
    "many_tenants_short": {
        "tenants": 5,
        "leads": LEADS,
        "days": 240,
        "seed": 105,
        "tenant_offset_sd": 0.5,
        "weekend_factor": 0.3,
    },
}
TARGETS = {
    "logloss_below_both_baselines_on_every_world": True,
    "mean_abs_err_vs_truth_over_worlds": 0.018,
    "interval_coverage_of_truth": (0.85, 0.95),
}
# Concentrations κ of the dispersion interval tried on every world; each world's κ is chosen on the others.
CONCENTRATIONS = (5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240)
# The engagement features' absence, for --compare-engagement (the same worlds, rows and defaults otherwise).
WITHOUT_ENGAGEMENT = {"LEADRADAR_FEATURES__ENGAGEMENT_HALF_LIVES_DAYS": "[]"}
KEEP = ("auc", "logloss", "ece", "mean_abs_err_vs_truth")
# The what-if blends' weights of the logistic baseline, fixed beforehand (both reported, neither chosen here).
BLEND_WEIGHTS = (0.25, 0.5)
MODELS = (
    "leadradar",
    "leadradar_pooled",
    "logistic",
    "plain_lightgbm",
    *(f"blend_logistic_{w}" for w in BLEND_WEIGHTS),
)


def blended(p: np.ndarray, q: np.ndarray, w: float) -> np.ndarray:
    """`p` and `q` averaged in log-odds, `q` at weight `w`."""
    from scipy.special import expit, logit

    from leadradar.models.calibration import clipped

    return expit((1 - w) * logit(clipped(p)) + w * logit(clipped(q)))


def scored(y, p, truth) -> dict[str, float]:
    """The four figures on one set of rows (truth where the simulator wrote it)."""
    import numpy as np

    from leadradar.training.metrics import classification_metrics

    out = classification_metrics(y, p)
    has = ~np.isnan(truth)
    out["mean_abs_err_vs_truth"] = float(np.mean(np.abs(p[has] - truth[has])))
    return {k: out[k] for k in KEEP}


def interval_figures(served, X, p, tenants, truth) -> dict:
    """Coverage of the truth and mean width of the served interval, and of the dispersion interval at each κ."""
    import numpy as np

    from leadradar.models.uncertainty import BinSupportInterval, DispersionInterval

    has = ~np.isnan(truth)
    X, p, tenants, truth = X[has], p[has], tenants[has], truth[has]

    def figures(lo, hi) -> dict[str, float]:
        return {"coverage": float(np.mean((lo <= truth) & (truth <= hi))), "width": float(np.mean(hi - lo))}

    out = {"served": figures(*served.interval_for(X, p, tenants)), "method": served.interval.method}
    fitted = served.interval
    if isinstance(fitted, BinSupportInterval):
        for kappa in CONCENTRATIONS:
            trial = DispersionInterval(fitted.level, fitted.bins, kappa)
            trial.upper_, trial.rows_, trial.wins_ = fitted.upper_, fitted.rows_, fitted.wins_
            out[f"kappa_{kappa}"] = figures(*trial.predict(X, p))
    return out


def run_world(data_dir: str, days: int) -> dict:
    """Train as `leadradar train --until` does, then score leadradar and both baselines on the later cutoffs."""
    import numpy as np
    import pandas as pd

    from benchmarks.plain_lightgbm import PlainLightGBM, plain_features, read_events
    from leadradar.config import Settings
    from leadradar.features.radar_log import RadarLog
    from leadradar.features.simulator import SimulationConfig
    from leadradar.features.trainset import build_training_set
    from leadradar.registry import ModelRef, load_version
    from leadradar.training.backtest import attach_truth
    from leadradar.training.baselines import LogisticBaseline
    from leadradar.training.metrics import truth_metrics
    from leadradar.training.pipeline import train_from_logs

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="leadradar-bench-worlds-")))
    log = RadarLog.from_dir(data_dir)
    until = pd.Timestamp(SimulationConfig().start, tz="UTC") + timedelta(days=days - FORWARD_DAYS)
    result = train_from_logs(log, settings, until=until, use_tuned=False)
    model = load_version(settings, ModelRef(result.model_name, result.model_version, result.run_id))
    label = f"y_{model.main_target}"

    past = build_training_set(log, settings, until=until)
    train = past.frame[past.frame[label].notna()]
    later = build_training_set(
        log, settings, cutoff_range=(until + timedelta(days=1), pd.Timestamp.max.tz_localize("UTC"))
    )
    test = later.frame[later.frame[label].notna()]
    y_train, y = train[label].to_numpy(int), test[label].to_numpy(int)
    truth = attach_truth(test, log, f"p_{model.main_target}").to_numpy(dtype=float)

    events = read_events(str(Path(data_dir) / "events.parquet"))
    stages = sorted(set(train["stage"].astype(str)) | set(test["stage"].astype(str)))
    plain = PlainLightGBM().fit(plain_features(events, train, stages), y_train, train["cutoff"])
    served = model.targets_[model.main_target]
    X = model.matrix(test)
    tenants = test["tenant_id"].astype(str).to_numpy()
    p = {
        "leadradar": served.predict_for(X, tenants)[0],
        "leadradar_pooled": served.predict(X),
        "logistic": LogisticBaseline(features=past.features).fit(train, y_train).predict_proba(test)[:, 1],
        "plain_lightgbm": plain.predict(plain_features(events, test, stages)),
    }
    p |= {f"blend_logistic_{w}": blended(p["leadradar"], p["logistic"], w) for w in BLEND_WEIGHTS}
    has = ~np.isnan(truth)
    oracle = truth_metrics(y[has], truth[has], truth[has])
    return {
        "models": {name: scored(y, p_hat, truth) for name, p_hat in p.items()},
        "oracle_auc": oracle["oracle_auc"],
        "oracle_logloss": oracle["oracle_logloss"],
        "interval": interval_figures(served, X, p["leadradar"], tenants, truth),
        "rows": {"train": len(train), "test": len(test), "test_positives": int(y.sum())},
        "base_rate": float(y.mean()),
        "features": {"leadradar": len(past.features), "plain_lightgbm": int(plain.booster_.num_feature())},
        "plain_rounds": int(plain.booster_.best_iteration),
        "backtest_kind": result.extra["backtest"]["kind"],
        "served_model": result.extra["served_model"],
        "until": until.isoformat(),
        "test_cutoffs": f"{test['cutoff'].min():%Y-%m-%d} … {test['cutoff'].max():%Y-%m-%d}",
    }


def flatten(name: str, world: dict) -> dict:
    """Flat keys for one world: `<world>_<model>_<figure>`, the oracle's, and whether leadradar won."""
    flat = {f"{name}_{m}_{k}": v for m, figs in world["models"].items() for k, v in figs.items()}
    flat[f"{name}_oracle_auc"] = world["oracle_auc"]
    flat[f"{name}_oracle_logloss"] = world["oracle_logloss"]
    ours = world["models"]["leadradar"]["logloss"]
    flat[f"{name}_leadradar_logloss_below_both"] = all(
        ours < world["models"][b]["logloss"] for b in ("logistic", "plain_lightgbm")
    )
    return flat


def chosen_concentration(worlds: dict[str, dict], level: float = 0.9) -> int:
    """The largest κ (the narrowest interval) whose coverage of the truth, averaged over `worlds`, reaches `level`."""
    held = [
        k
        for k in CONCENTRATIONS
        if sum(w["interval"][f"kappa_{k}"]["coverage"] for w in worlds.values()) >= level * len(worlds)
    ]
    return max(held) if held else min(CONCENTRATIONS)


def interval_flat(worlds: dict[str, dict]) -> dict:
    """Each world's served coverage, and its coverage at the κ chosen on the other worlds (left out one at a time)."""
    flat: dict = {}
    for name, world in worlds.items():
        flat[f"{name}_interval_served_coverage"] = world["interval"]["served"]["coverage"]
        flat[f"{name}_interval_served_width"] = world["interval"]["served"]["width"]
        if "kappa_5" not in world["interval"] or len(worlds) < 2:
            continue
        kappa = chosen_concentration({n: w for n, w in worlds.items() if n != name})
        flat[f"{name}_interval_held_out_kappa"] = kappa
        flat[f"{name}_interval_held_out_coverage"] = world["interval"][f"kappa_{kappa}"]["coverage"]
        flat[f"{name}_interval_held_out_width"] = world["interval"][f"kappa_{kappa}"]["width"]
    if all("kappa_5" in w["interval"] for w in worlds.values()) and worlds:
        flat["interval_kappa_on_all_worlds"] = chosen_concentration(worlds)
    return flat


def run_worlds(names: list[str], env: dict[str, str]) -> tuple[dict, dict, dict, dict]:
    """Every world in a fresh process with `env` over the quiet defaults: results, runs, flat figures, inputs."""
    worlds, runs, figures, inputs = {}, {}, {}, {}
    for name in names:
        sim = dataset(WORLDS[name])
        inputs[name] = {"simulation": WORLDS[name], "events": sim.events, "leads": sim.leads}
        kwargs = {"data_dir": str(sim.dir), "days": WORLDS[name]["days"]}
        run = measure("benchmarks.quality_worlds:run_world", kwargs, QUIET | env)
        runs[name] = run.as_dict() | {"result": None}
        if not run.ok:
            print(name, run.error, flush=True)
            continue
        worlds[name] = run.result
        inputs[name]["rows"] = run.result["rows"]
        figures |= flatten(name, run.result)
        print(name, run.result["models"], run.result["interval"]["served"], f"{run.seconds:.0f} s", flush=True)
    for model in MODELS:
        for k in KEEP:
            values = [w["models"][model][k] for w in worlds.values()]
            figures[f"mean_{model}_{k}"] = sum(values) / len(values) if values else None
    figures["leadradar_logloss_below_both_on_every_world"] = len(worlds) == len(names) and all(
        figures[f"{n}_leadradar_logloss_below_both"] for n in worlds
    )
    return worlds, runs, figures | interval_flat(worlds), inputs


def engagement_flat(with_: dict, without: dict) -> dict:
    """Per world, leadradar's log loss without the engagement features less with them (> 0: they help)."""
    flat = {}
    for name in with_.keys() & without.keys():
        for model in ("leadradar", "leadradar_pooled"):
            ours, theirs = with_[name]["models"][model]["logloss"], without[name]["models"][model]["logloss"]
            flat[f"{name}_{model}_logloss_gain_from_engagement"] = theirs - ours
    flat["engagement_helps_on_worlds"] = sum(
        flat[f"{n}_leadradar_pooled_logloss_gain_from_engagement"] > 0 for n in with_.keys() & without.keys()
    )
    return flat


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", nargs="*", default=list(WORLDS))
    parser.add_argument(
        "--compare-engagement", action="store_true", help="also run every world without the engagement features"
    )
    args = parser.parse_args(argv)
    worlds, runs, figures, inputs = run_worlds(args.worlds, {})
    extra = {"worlds": worlds, "runs": runs}
    if args.compare_engagement:
        without, runs_without, figures_without, _ = run_worlds(args.worlds, WITHOUT_ENGAGEMENT)
        figures |= {
            f"no_engagement_{k}": v for k, v in figures_without.items() if k.startswith("mean_") or "_leadradar" in k
        }
        figures |= engagement_flat(worlds, without)
        extra |= {"worlds_without_engagement": without, "runs_without_engagement": runs_without}
    mean_err = figures["mean_leadradar_mean_abs_err_vs_truth"]
    figures["met_mean_abs_err"] = mean_err is not None and mean_err <= TARGETS["mean_abs_err_vs_truth_over_worlds"]
    figures["targets"] = TARGETS
    path = write_results("quality_worlds", figures, inputs, extra)
    for k, v in figures.items():
        print(f"{k:55s} {v}")
    print(path)


if __name__ == "__main__":
    main()
