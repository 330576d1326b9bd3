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
# # Explaining one lead
#
# Why does the champion give this lead the score it gives? Its events, the features they became as
# of the scoring time, how much each feature moved the score (exact TreeSHAP contributions in
# log-odds), and the reasons a salesperson reads, in English and Simplified Chinese.
#
# | step | here | command line / service |
# |---|---|---|
# | the champion (trained and promoted first if there is none) | `load_alias(settings)` | `leadradar train`, `leadradar promote` |
# | score every open lead as of a time | `score_batch(...)` | `leadradar score --as-of T [--tenant T] --out F`, then `leadradar rank --tenant T` |
# | one lead's reasons, either language | `explain_rows(..., lang=...)` | `POST /v1/score` with `"lang": "en"` or `"zh-CN"`; the dashboard's lead page |
#
# By default the notebook explains the lead the champion ranks first; set `LEAD_ID` for another.

# %% tags=["parameters"]
WORK_DIR = None  # None: <system temp>/leadradar-notebooks; data and LEADRADAR_HOME go under it
LEADRADAR_HOME = None  # None: WORK_DIR/home (MLflow, model cache); set it to use a real .leadradar
DATA_DIR = None  # None: simulate into WORK_DIR; or a folder with events/stages/items/leads Parquet
TENANTS = 2
LEADS = 5000
DAYS = 270
SEED = 7
AS_OF = None  # score as of this UTC time, e.g. "2026-08-31T00:00:00Z"; None: the log's last weekly cutoff
TENANT = None  # only this tenant's leads; None: all
LEAD_ID = None  # the lead to explain; None: the champion's top lead
LANGS = ["en", "zh-CN"]  # languages of the reasons
N_FOR = 3  # reasons for the score ...
N_AGAINST = 2  # ... and against it
HISTORY_WEEKS = 12  # the score over this many weeks before AS_OF

# %%
import os
import tempfile
from pathlib import Path

work = Path(WORK_DIR) if WORK_DIR else Path(tempfile.gettempdir()) / "leadradar-notebooks"
os.environ["LEADRADAR_HOME"] = str(Path(LEADRADAR_HOME) if LEADRADAR_HOME else work / "home")
data = Path(DATA_DIR) if DATA_DIR else work / f"sim-t{TENANTS}-l{LEADS}-d{DAYS}-s{SEED}"

import warnings

warnings.filterwarnings("ignore", message="IProgress not found")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from leadradar.config import Settings, quiet_environment
from leadradar.features.build import compute_features
from leadradar.features.cutoffs import as_utc, cadence_cutoffs
from leadradar.features.describe import describe, format_value
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.models.explain import contributions, explain_rows
from leadradar.registry import NoModelError, load_alias
from leadradar.serving.scoring import score_batch
from leadradar.training.pipeline import train_from_logs
from leadradar.training.promotion import promote

# %matplotlib inline
quiet_environment()
settings = Settings()  # reads LEADRADAR_HOME and any LEADRADAR_* overrides, as the CLI does
plt.rcParams.update(
    {"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
)
if not (data / "events.parquet").exists():
    simulate(SimulationConfig(tenants=TENANTS, leads=LEADS, days=DAYS, seed=SEED), settings).write(data)
log = RadarLog.from_dir(data)  # events, stages, and the items, leads and truth beside them
events = pd.read_parquet(log.events)
stages = pd.read_parquet(log.stages)
end = events["ts"].max()
as_of = as_utc(AS_OF) if AS_OF else cadence_cutoffs(end - pd.Timedelta(weeks=1), end, settings.features)[-1]
registry = build_registry(settings)
print(f"data: {data}\nLEADRADAR_HOME: {settings.data_dir}\nscoring as of {as_of}")

# %% [markdown]
# ## The champion
#
# The model behind the `@champion` alias, downloaded once into the local model cache. A fresh
# `LEADRADAR_HOME` has none: then a first model is trained on the log and promoted.

# %%
try:
    loaded = load_alias(settings)
except NoModelError:
    train_from_logs(log, settings)
    print(promote(settings).reason)
    loaded = load_alias(settings)
model = loaded.model
print(
    f"{loaded.ref.name} v{loaded.ref.version} from the {loaded.source}; main target {model.main_target}, "
    f"{len(model.features)} features, trained on data until {loaded.meta.get('window', {}).get('data_until', '?')[:10]}"
)

# %% [markdown]
# ## Every open lead, scored
#
# Features as of `AS_OF` for every lead open then, scored by the champion: what `leadradar score`
# computes and stores, and `leadradar rank` lists.

# %%
scores, feats = score_batch(log, as_of, settings, loaded, TENANT)
ranked = scores.sort_values("p_close", ascending=False).reset_index(drop=True)
lead_id = LEAD_ID or ranked["lead_id"].iloc[0]
p_main = scores.loc[scores["lead_id"] == lead_id, "p_close"]
print(f"{len(scores):,} open leads scored; explaining {lead_id}")
ranked.head(10)[["tenant_id", "lead_id", "sales_id", "stage", "p_close"]].style.format({"p_close": "{:.1%}"})

# %% [markdown]
# ## The lead

# %%
row = feats[feats["lead_id"] == lead_id]
if row.empty:
    raise ValueError(
        f"{lead_id} is not an open lead as of {as_of} (won, lost, or not yet created); pick another LEAD_ID"
    )
outlook = model.predict_funnel(row, list(settings.funnel.open_stages)).iloc[0]
card = row[["tenant_id", "lead_id", "sales_id", "stage"]].iloc[0].to_dict()
card["stage"] = f"{card['stage']} / {settings.funnel.label(card['stage'], 'zh-CN')}"
card |= {
    f"{k} ({'chained from transitions' if k.endswith('chained') else 'this stage → next' if k == 'p_advance' else 'direct'})": f"{v:.1%}"
    for k, v in outlook.items()
    if pd.notna(v)
}
pd.Series(card, name=lead_id).to_frame()

# %% [markdown]
# ### Its events
#
# Every touch up to `AS_OF`, one row per event type, dot size by dwell; dashed lines are its CRM
# stage changes, and the shaded band is the last 30 days, which most windowed features look at.

# %%
mine = events[(events["lead_id"] == lead_id) & (events["ts"] <= as_of)].sort_values("ts")
changes = stages[(stages["lead_id"] == lead_id) & (stages["ts"] <= as_of)].sort_values("ts")
types = [t for t in settings.events.types if t in set(mine["event_type"])]

fig, ax = plt.subplots(figsize=(11, 0.9 + 0.35 * len(types)))
size = 8 + 2 * np.sqrt(mine["dwell_s"].fillna(0).to_numpy())
ax.scatter(
    mine["ts"],
    mine["event_type"].map({t: i for i, t in enumerate(types)}),
    s=size,
    alpha=0.6,
    c=mine["event_type"].map({t: i for i, t in enumerate(types)}),
    cmap="tab20",
    vmin=0,
    vmax=19,
)
for change in changes.itertuples():
    ax.axvline(change.ts, color="grey", ls="--", lw=0.8)
    ax.annotate(change.stage, (change.ts, 1.01), xycoords=ax.get_xaxis_transform(), rotation=40, fontsize=8)
start = min(mine["ts"].min(), changes["ts"].min()) - pd.Timedelta(days=2)
ax.axvspan(as_of - pd.Timedelta(days=30), as_of, color="#f2e6b3", alpha=0.4, lw=0)
ax.set_yticks(range(len(types)), types)
ax.set(xlim=(start, as_of + pd.Timedelta(days=1)), ylim=(-0.6, len(types) - 0.4))
ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
ax.set_title(f"{lead_id}: {len(mine):,} events up to {as_of:%Y-%m-%d} (shaded: the last 30 days)", pad=28)
ax.grid(axis="y", alpha=0)
plt.show()
mine.tail(12)[["ts", "event_type", "dwell_s", "item_id", "channel", "referrer_lead_id"]].iloc[::-1]

# %% [markdown]
# ### Its features, and how much each moved the score
#
# TreeSHAP splits the model's log-odds for this lead exactly into one contribution per feature plus
# a base value: red pushes the close probability up, blue down. The plot shows the ten strongest
# pushes up and the five strongest down; the table gives them with the lead's value and the
# registry's sentence for it in each language.

# %%
target = model.main_target
X = model.matrix(row)
phi = contributions(model, target, X)[0]
contrib = pd.Series(phi[:-1], index=model.features)
top = (
    pd.concat([contrib[contrib > 0].nlargest(10), contrib[contrib < 0].nsmallest(5)]).sort_values(ascending=False).index
)

fig, ax = plt.subplots(figsize=(9, 5))
shown = contrib[top][::-1]
ax.barh(range(len(shown)), shown, color=np.where(shown > 0, "#d62728", "#1f77b4"))
ax.set_yticks(
    range(len(shown)),
    [
        f"{n} = {format_value(registry[n].kind, row[n].iloc[0], 'en', registry[n], settings.funnel)}"
        for n in shown.index
    ],
    fontsize=8,
)
ax.axvline(0, color="grey", lw=0.8)
ax.set(
    xlabel=f"contribution to the log-odds of {target}",
    title=f"{lead_id}: log-odds {phi.sum():+.2f} = base {phi[-1]:+.2f} + features {phi[:-1].sum():+.2f} "
    f"(calibrated P = {p_main.iloc[0]:.1%})",
)
plt.show()

values = row.iloc[0]
pd.DataFrame(
    {
        "value": [values[n] for n in top],
        "contribution": contrib[top].round(3),
        **{lang: [describe(registry[n], values[n], lang, settings.funnel) for n in top] for lang in LANGS},
    },
    index=top,
)

# %% [markdown]
# ## The reasons people read
#
# Features that say nearly the same thing (the 7-, 30- and 90-day counts of one event, a type and
# its family) are grouped into one topic; the strongest topics for and against become the reasons,
# each worded by its strongest feature. This is what the ranked list, the dashboard and the
# scoring service's answer show.

# %%
for lang in LANGS:
    explanation = explain_rows(model, target, row, registry, settings.funnel, lang, N_FOR, N_AGAINST)[0]
    print(f"[{lang}] {explanation.text()}")
    display(
        pd.DataFrame(
            [
                {
                    "direction": r.direction,
                    "reason": r.text,
                    "feature": r.feature,
                    "contribution": round(r.contribution, 3),
                }
                for r in explanation.reasons
            ]
        )
    )

# %% [markdown]
# ## How the score got here
#
# The same lead scored as of each of the last `HISTORY_WEEKS` weeks (`leadradar score --as-of T` for
# each week), with the events of the week before each score as bars. A lead appears from the first
# week it was open. On simulated data, the dotted line is the simulator's exact probability for the
# same label at the same cutoffs: what a perfect model would have said.

# %%
cutoffs = [as_of - pd.Timedelta(weeks=k) for k in range(HISTORY_WEEKS, -1, -1)]
history = compute_features(log.events, log.stages, cutoffs, settings, registry, log.items, leads=log.leads)
history = history[history["lead_id"] == lead_id].sort_values("cutoff")
p = model.predict_targets(history)[target]
edges = [cutoffs[0] - pd.Timedelta(weeks=1), *cutoffs]
weekly = pd.cut(mine["ts"], edges).value_counts(sort=False)

fig, ax = plt.subplots(figsize=(11, 3.6))
ax.plot(history["cutoff"], p, marker="o", color="#c44e52", label=f"champion: P({target})")
truth = log.truth_of(f"p_{target}")  # None unless the log is a simulation
if truth is not None:
    truth = truth[(truth["lead_id"] == lead_id) & truth["cutoff"].isin(history["cutoff"])].sort_values("cutoff")
    ax.plot(truth["cutoff"], truth[f"p_{target}"], ls=":", marker=".", color="black", label="simulator truth")
ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
ax.set(ylabel="close probability", title=f"{lead_id}: the score week by week")
ax.legend(fontsize=8, loc="upper left")
ax2 = ax.twinx()
ax2.bar([c - pd.Timedelta(days=3.5) for c in cutoffs], weekly.to_numpy(), width=6, color="#c8d3e6", zorder=0)
ax2.set_ylabel("events that week (bars)")
ax.set_xlim(max(cutoffs[0], mine["ts"].min()) - pd.Timedelta(days=8), as_of + pd.Timedelta(days=1))
ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
ax2.grid(False)
ax.set_zorder(ax2.get_zorder() + 1)
ax.patch.set_visible(False)
plt.show()
