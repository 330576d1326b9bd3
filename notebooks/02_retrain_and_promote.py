# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Retraining: tune, train a challenger, compare it with the champion, promote through the gate
#
# The registered model `leadradar-close` has two aliases: `@champion` serves, `@challenger` is the
# newest model waiting for the gate. This notebook walks one retraining round:
#
# | step | here | command line |
# |---|---|---|
# | a champion to beat (only if there is none yet) | `train_from_logs(until=earlier)`, `promote` | `leadradar train --until T` then `leadradar promote` |
# | the training set for the chosen window | `build_training_set(until=UNTIL)` | `leadradar features build --until T --out F` |
# | tune briefly | `tune_from_logs(n_trials, timeout)` | `leadradar tune --until T --trials N --timeout S` |
# | train the challenger | `train_from_logs(until=UNTIL)` | `leadradar train --until T --json` |
# | compare in MLflow | `mlflow.search_runs`, run artifacts | the MLflow UI (command printed at the end) |
# | the gate | `promote(settings)` → verdict | `leadradar promote [--json]`; undo with `leadradar rollback` |
#
# Everything is logged to MLflow under `LEADRADAR_HOME` (a temp folder unless you set it).

# %% tags=["parameters"]
WORK_DIR = None  # None: <system temp>/leadradar-notebooks; data and LEADRADAR_HOME go under it
LEADRADAR_HOME = None  # None: WORK_DIR/home (MLflow, Optuna, model cache); set it to use a real .leadradar
DATA_DIR = None  # None: simulate into WORK_DIR; or a folder with events/stages/items/leads/truth Parquet
TENANTS = 2
LEADS = 5000
DAYS = 270
SEED = 7
HORIZON_DAYS = 30  # label horizon: y_close_30d = won within 30 days after the cutoff
UNTIL = None  # the challenger's window ends here, e.g. "2026-09-01T00:00:00Z"; None: all the data
CHAMPION_WEEKS_EARLIER = 4  # with no champion yet, one is trained on data up to this many weeks before the window end
N_TRIALS = 10  # Optuna trials (the study resumes where it stopped)
TUNE_TIMEOUT_S = 120  # ... or stop tuning after this many seconds

# %%
import os
import tempfile
from pathlib import Path

work = Path(WORK_DIR) if WORK_DIR else Path(tempfile.gettempdir()) / "leadradar-notebooks"
os.environ["LEADRADAR_HOME"] = str(Path(LEADRADAR_HOME) if LEADRADAR_HOME else work / "home")
data = Path(DATA_DIR) if DATA_DIR else work / f"sim-t{TENANTS}-l{LEADS}-d{DAYS}-s{SEED}"

import warnings

warnings.filterwarnings("ignore", message="IProgress not found")
warnings.filterwarnings("ignore", message=".*Overriding the parameters from Reference Dataset.*")
import matplotlib.pyplot as plt
import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow import MlflowClient

from leadradar.config import Settings, quiet_environment
from leadradar.features.cutoffs import as_utc
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import build_training_set
from leadradar.registry import CHAMPION, configure_mlflow, version_for_alias
from leadradar.training.pipeline import target_split, train_from_logs, tune_from_logs
from leadradar.training.promotion import promote
from leadradar.training.tracking import ui_command

# %matplotlib inline
quiet_environment()
optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is too many here; the plot below has them
settings = Settings()  # reads LEADRADAR_HOME and any LEADRADAR_* overrides, as the CLI does
settings.training.horizon_days = HORIZON_DAYS  # the CLI's --horizon
plt.rcParams.update(
    {"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
)
if not (data / "events.parquet").exists():
    simulate(SimulationConfig(tenants=TENANTS, leads=LEADS, days=DAYS, seed=SEED), settings).write(data)
log = RadarLog.from_dir(data)  # events, stages, and the items, leads and truth (only a simulation has one) beside them
until = as_utc(UNTIL) if UNTIL else None
window_end = until or pd.read_parquet(log.events, columns=["ts"])["ts"].max().ceil("D")

configure_mlflow(settings)
client = MlflowClient()
name = settings.mlflow.model_name
print(f"data: {data}\nLEADRADAR_HOME: {settings.data_dir}\nMLflow: {settings.tracking_uri}\nwindow ends {window_end}")

# %% [markdown]
# ## The champion to beat
#
# A registry that has a champion keeps it. A fresh one gets a first champion here, trained on the
# data known `CHAMPION_WEEKS_EARLIER` weeks before the window end: the model that would be serving
# when the new weeks of data arrived. The gate lets a first model through unopposed.

# %%
champion = version_for_alias(client, name, CHAMPION)
if champion is None:
    earlier = window_end - pd.Timedelta(weeks=CHAMPION_WEEKS_EARLIER)
    first = train_from_logs(log, settings, until=earlier)
    print(f"trained v{first.model_version} on data until {earlier:%Y-%m-%d}: {promote(settings).reason}")
    champion = version_for_alias(client, name, CHAMPION)
print(f"champion: {name} v{champion.version} (run {champion.run_id})")

# %% [markdown]
# ## The training set for the window
#
# One row per (lead, weekly cutoff) open at the cutoff; features use only what was known by then,
# labels look `HORIZON_DAYS` ahead. Cutoffs split by time: the earliest train, then validation
# (early stopping and calibration), then the latest test, with a gap of one horizon between so
# that no label window crosses a split. `train_from_logs` builds this same set.

# %%
ts = build_training_set(log, settings, until=until)
label = f"y_close_{HORIZON_DAYS}d"
split = target_split(sorted(ts.frame["cutoff"].unique()), HORIZON_DAYS, ts.data_until, settings)
part = pd.Series("unused (in a gap)", index=ts.frame.index)
for which, mask in split.masks(ts.frame["cutoff"]).items():
    part[mask] = which
per_cutoff = ts.frame.assign(part=part).groupby(["cutoff", "part"])[label].agg(["size", "mean"]).reset_index()

fig, ax = plt.subplots(figsize=(11, 3.3))
colours = {"train": "#4c72b0", "validation": "#dd8452", "test": "#55a868", "unused (in a gap)": "#cccccc"}
for which, colour in colours.items():
    rows = per_cutoff[per_cutoff["part"] == which]
    ax.bar(rows["cutoff"], rows["size"], width=5, color=colour, label=which)
ax.set(
    ylabel="rows (open leads)",
    title=f"Training set: {len(ts.frame):,} rows, {len(ts.features)} features, data until {ts.data_until:%Y-%m-%d}",
)
ax.legend(fontsize=8, ncol=4, loc="upper left")
plt.show()
by_part = ts.frame.assign(part=part).groupby("part")
pd.DataFrame(
    {
        "cutoffs": by_part["cutoff"].nunique(),
        "rows": by_part.size(),
        "wins": by_part[label].sum().astype(int),
        "close rate": by_part[label].mean().map("{:.2%}".format),
    }
).reindex([k for k in colours if k in by_part.groups])

# %% [markdown]
# ## Tune briefly
#
# Optuna (TPE sampler, pruning) searches LightGBM's parameters for the main close model on the same
# split, minimising the validation log loss. The study lives in `LEADRADAR_HOME/optuna.db` and
# resumes where it stopped; `train_from_logs` then uses its best trial. Each trial is a nested
# MLflow run under one tuning run, so the history below comes from MLflow.

# %%
tuned = tune_from_logs(log, settings, until=until, n_trials=N_TRIALS, timeout=TUNE_TIMEOUT_S, progress=False)
trials = mlflow.search_runs(
    experiment_names=[settings.mlflow.experiment],
    filter_string=f"tags.mlflow.parentRunId = '{tuned.parent_run_id}'",
    order_by=["attributes.start_time ASC"],
)
complete = trials[trials["tags.state"] == "complete"]

fig, ax = plt.subplots(figsize=(8, 3.3))
ax.plot(np.arange(len(complete)), complete["metrics.val_logloss"], "o", color="#4c72b0", label="trial")
ax.plot(np.arange(len(complete)), complete["metrics.val_logloss"].cummin(), color="#c44e52", label="best so far")
ax.set(
    xlabel="completed trial (this session)",
    ylabel="validation log loss",
    title=f"Study {tuned.study}: {tuned.trials_complete} complete, {tuned.trials_pruned} pruned in total",
)
ax.xaxis.set_major_locator(plt.matplotlib.ticker.MaxNLocator(integer=True))
ax.legend(fontsize=8)
plt.show()
pd.Series(tuned.best_params, name="best parameters").to_frame().style.format("{:.4g}")

# %% [markdown]
# ## Train the challenger
#
# Train every funnel target on the window with the tuned parameters, calibrate on validation,
# evaluate the main close model on the test period (against four baselines and, on simulated
# data, the simulator's exact truth), log it all to MLflow and register it as `@challenger`.

# %%
challenger = train_from_logs(log, settings, until=until)
print(
    f"{challenger.model_name} v{challenger.model_version} @{challenger.alias}, run {challenger.run_id}, "
    f"{challenger.calibration} calibration"
)
pd.Series(
    {
        k: challenger.test_metrics[k]
        for k in ("auc", "pr_auc", "logloss", "brier", "ece", "lift_top10")
        if k in challenger.test_metrics
    },
    name="test period",
).to_frame().T

# %% [markdown]
# ## Compare the runs in MLflow
#
# Every training run logs its parameters, metrics, plots, data window and the feature definition
# hash. All training runs of the experiment, newest first, with the registered version and its
# alias (what the MLflow UI shows under *Experiments → leadradar*, columns chosen with *Columns*):

# %%
versions = {mv.run_id: mv for mv in client.search_model_versions(f"name = '{name}'")}
aliases = {}
for alias, version in client.get_registered_model(name).aliases.items():
    aliases.setdefault(str(version), []).append(alias)
runs = mlflow.search_runs(
    experiment_names=[settings.mlflow.experiment],
    filter_string="tags.`data.kind` = 'logs'",
    order_by=["attributes.start_time DESC"],
)
shown = {
    "metrics.test_auc": "AUC",
    "metrics.test_pr_auc": "PR AUC",
    "metrics.test_logloss": "log loss",
    "metrics.test_brier": "Brier",
    "metrics.test_ece": "ECE",
    "metrics.test_oracle_auc": "oracle AUC",
    "metrics.test_mean_abs_err_vs_truth": "mean |p - truth|",
}
table = pd.DataFrame(
    {
        "version": runs["run_id"].map(lambda r: str(versions[r].version) if r in versions else ""),
        "alias": runs["run_id"].map(
            lambda r: ", ".join(aliases.get(str(versions[r].version), [])) if r in versions else ""
        ),
        "run": runs["run_id"].str[:8],
        "data until": runs["tags.window.data_until"].str[:10],
        "test cutoffs": runs["tags.split.test_from"].str[:10] + " … " + runs["tags.split.test_to"].str[:10],
        "params": runs["tags.params_source"],
        **{title: runs[col] for col, title in shown.items() if col in runs},
    }
)
table.style.format(precision=4).hide(axis="index")

# %% [markdown]
# The champion and the challenger side by side, as their runs logged them. Each run was tested on
# its own, latest test period, so these numbers describe each model on different weeks: the gate
# below scores both on the same rows.

# %%
pair = {"champion": champion.run_id, "challenger": challenger.run_id}
side = pd.DataFrame({role: client.get_run(run_id).data.metrics for role, run_id in pair.items()})
side = side.loc[[c.removeprefix("metrics.") for c in shown if c.removeprefix("metrics.") in side.index]]
side.index = [shown[f"metrics.{i}"] for i in side.index]
side.style.format(precision=4)

# %%
with tempfile.TemporaryDirectory() as tmp:
    pictures = {
        role: plt.imread(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="plots/reliability.png", dst_path=f"{tmp}/{role}"
            )
        )
        for role, run_id in pair.items()
    }
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (role, picture) in zip(axes, pictures.items()):
    ax.imshow(picture)
    ax.set_title(
        f"{role} v{champion.version if role == 'champion' else challenger.model_version}: plots/reliability.png"
    )
    ax.axis("off")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The gate
#
# `promote` rebuilds the challenger's test period from the data sources its run recorded and
# scores both models on exactly those rows. The challenger becomes champion only with a lower log
# loss and an AUC at most 0.005 below the champion's; otherwise nothing changes.

# %%
verdict = promote(settings)
print(("PROMOTED" if verdict.promoted else "REFUSED") + f": v{verdict.challenger['version']} — {verdict.reason}")
if verdict.champion_metrics:
    holdout = verdict.holdout
    print(
        f"holdout: {holdout['rows']:,} rows, {holdout['positives']:,} wins, cutoffs {holdout['from'][:10]} … {holdout['to'][:10]}"
    )
    keys = ["auc", "pr_auc", "logloss", "brier", "ece", "lift_top10"]
    gate = pd.DataFrame(
        {
            f"challenger v{verdict.challenger['version']}": verdict.challenger_metrics,
            f"champion v{verdict.champion['version']}": verdict.champion_metrics,
        }
    ).loc[keys]
    lower_is_better = {"logloss", "brier", "ece"}
    gate["better"] = [
        ("challenger" if (row.iloc[0] < row.iloc[1]) == (k in lower_is_better) else "champion")
        for k, row in gate.iterrows()
    ]
    display(gate.style.format(precision=4, subset=gate.columns[:2]))

    fig, axes = plt.subplots(1, len(keys), figsize=(12, 2.8))
    for ax, key in zip(axes, keys):
        values = gate.loc[key].iloc[:2].astype(float)
        ax.bar([0, 1], values, color=["#55a868", "#4c72b0"], width=0.6)
        for x, v in enumerate(values):
            ax.annotate(f"{v:.4f}", (x, v), xytext=(0, 2), textcoords="offset points", ha="center", fontsize=7)
        ax.set_xticks([0, 1], ["challenger", "champion"], fontsize=8)
        lo, hi = values.min(), values.max()
        pad = (hi - lo) * 1.5 + abs(hi) * 0.01
        ax.set_ylim(max(0.0, lo - pad), hi + pad)
        ax.set_title(key + (" (lower is better)" if key in lower_is_better else ""), fontsize=9)
    fig.suptitle("The gate: both models on the challenger's test period (axes zoomed to the difference)", fontsize=10)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# After the gate, the registry's versions and aliases. A promotion can be undone with
# `training.promotion.rollback(settings)` (`leadradar rollback`), which puts the previous champion back.

# %%
aliases = {}
for alias, version in client.get_registered_model(name).aliases.items():
    aliases.setdefault(str(version), []).append(alias)
pd.DataFrame(
    [
        {
            "version": mv.version,
            "aliases": ", ".join(aliases.get(str(mv.version), [])),
            "run": mv.run_id[:8],
            "data until": mv.tags.get("window.data_until", "")[:10],
        }
        for mv in client.search_model_versions(f"name = '{name}'")
    ]
).sort_values("version", key=lambda v: v.astype(int))

# %% [markdown]
# ## Look further in the MLflow UI
#
# Every run's plots (ROC, precision-recall, gains with the baselines, reliability, feature
# importance, SHAP summary), its evaluation by tenant and stage (`evaluation/test.json`), the
# features it used and the registered versions are in the MLflow UI. Start it with the command
# below, open http://127.0.0.1:5000, pick the experiment `leadradar`, tick two runs and press
# *Compare*.

# %%
print(ui_command(settings))
