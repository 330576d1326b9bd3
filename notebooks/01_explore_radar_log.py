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
# # Exploring a radar log
#
# What a log of card touches looks like before any model sees it: how active leads are, how they
# move through the CRM funnel, how long they stay on a page, and how shares bring in new leads.
# At the end, the same log as the model sees it: point-in-time features and labels per (lead, cutoff).
#
# The notebook reads the Parquet files the command line writes and reads, so every step has a CLI twin:
#
# | here | command line |
# |---|---|
# | simulate a log | `leadradar simulate --out DIR --tenants N --leads N --days N --seed S` |
# | your own log instead | `leadradar ingest FILE... --out DIR` (validated events, quarantine with reasons) |
# | the funnel to date | the managers' dashboard after `leadradar score` |
# | features and labels | `leadradar features build --events DIR/events.parquet --stages DIR/stages.parquet --out F` |
#
# Set the parameters in the next cell, then run everything.

# %% tags=["parameters"]
WORK_DIR = None  # None: <system temp>/leadradar-notebooks; data and LEADRADAR_HOME go under it
LEADRADAR_HOME = None  # None: WORK_DIR/home (MLflow, scores); set it to use a real .leadradar
DATA_DIR = None  # None: simulate into WORK_DIR; or a folder with events/stages/items/leads Parquet
TENANTS = 2
LEADS = 5000
DAYS = 270
SEED = 7

# %%
import os
import tempfile
import textwrap
from pathlib import Path

work = Path(WORK_DIR) if WORK_DIR else Path(tempfile.gettempdir()) / "leadradar-notebooks"
os.environ["LEADRADAR_HOME"] = str(Path(LEADRADAR_HOME) if LEADRADAR_HOME else work / "home")
data = Path(DATA_DIR) if DATA_DIR else work / f"sim-t{TENANTS}-l{LEADS}-d{DAYS}-s{SEED}"

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from leadradar.config import Settings, quiet_environment
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.features.trainset import build_training_set
from leadradar.serving.activity import funnel_counts

# %matplotlib inline
quiet_environment()
settings = Settings()  # reads LEADRADAR_HOME and any LEADRADAR_* overrides, as the CLI does
plt.rcParams.update(
    {"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
)
print(f"data: {data}\nLEADRADAR_HOME: {settings.data_dir}")

# %% [markdown]
# ## The log
#
# Simulated unless `DATA_DIR` names a folder that already holds a log. The simulation is
# deterministic under its seed, so a folder named after the parameters is reused as it is.

# %%
if not (data / "events.parquet").exists():
    cfg = SimulationConfig(tenants=TENANTS, leads=LEADS, days=DAYS, seed=SEED)
    simulate(cfg, settings).write(data)
log = RadarLog.from_dir(data)  # events, stages, and the items, leads and truth beside them

events = pd.read_parquet(log.events)
stages = pd.read_parquet(log.stages)
leads = pd.read_parquet(log.leads)
end = max(events["ts"].max(), stages["ts"].max())
as_of = end.ceil("D")  # midnight after the last record: "now" for this log
family = events["event_type"].map(settings.events.types)

pd.DataFrame(
    {
        "leads": leads.groupby("tenant_id").size(),
        "salespeople": events.groupby("tenant_id")["sales_id"].nunique(),
        "events": events.groupby("tenant_id").size(),
        "stage changes": stages.groupby("tenant_id").size(),
        "first event": events.groupby("tenant_id")["ts"].min().dt.date,
        "last event": events.groupby("tenant_id")["ts"].max().dt.date,
    }
)

# %%
pd.DataFrame(
    {
        "family": pd.Series(settings.events.types),
        "events": events["event_type"].value_counts(),
        "share": events["event_type"].value_counts(normalize=True).map("{:.1%}".format),
    }
).sort_values("events", ascending=False)

# %% [markdown]
# ## Activity: a few leads make most of the traffic
#
# Card traffic is heavy-tailed: most leads open a card a handful of times, a few come back again
# and again. The left plot counts leads by their number of events (log scales); the right one
# shows what share of all events the most active leads produce.

# %%
per_lead = events.groupby("lead_id").size().reindex(leads["lead_id"], fill_value=0)
top10 = per_lead.sort_values(ascending=False).head(max(1, len(per_lead) // 10)).sum() / per_lead.sum()

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
bins = np.unique(np.geomspace(1, per_lead.max() + 1, 30).astype(int))
ax1.hist(per_lead[per_lead > 0], bins=bins, color="#4c72b0")
ax1.set(
    xscale="log",
    yscale="log",
    xlabel="events per lead",
    ylabel="leads",
    title=f"Events per lead (median {per_lead.median():.0f}, max {per_lead.max():,})",
)
ranked = np.sort(per_lead.to_numpy())[::-1]
ax2.plot(np.arange(1, len(ranked) + 1) / len(ranked), ranked.cumsum() / ranked.sum(), color="#4c72b0")
ax2.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
ax2.axvline(0.1, color="grey", lw=0.6)
ax2.set(
    xlabel="share of leads, most active first",
    ylabel="share of all events",
    title=f"The top 10% of leads make {top10:.0%} of the events",
)
plt.show()

# %% [markdown]
# When the touches happen, in the users' local time (UTC+8 by default, `features.utc_offset_hours`):
# daily volume by event family, and the hour-of-day and weekday profiles the `timing` features use.

# %%
local = events["ts"] + pd.Timedelta(hours=settings.features.utc_offset_hours)
daily = events.assign(day=events["ts"].dt.floor("D"), family=family).pivot_table(
    index="day", columns="family", values="event_id", aggfunc="count", fill_value=0
)

fig = plt.figure(figsize=(11, 6.5))
ax = fig.add_subplot(2, 1, 1)
daily.rolling(7, min_periods=1).mean().plot(ax=ax, lw=1.2)
ax.set(xlabel="", ylabel="events per day (7-day mean)", title="Daily events by family")
ax = fig.add_subplot(2, 2, 3)
local.dt.hour.value_counts(normalize=True).sort_index().plot.bar(ax=ax, color="#4c72b0", width=0.8)
ax.set(xlabel="local hour", ylabel="share of events", title="Hour of day")
ax = fig.add_subplot(2, 2, 4)
local.dt.day_name().str[:3].value_counts(normalize=True).reindex(
    ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
).plot.bar(ax=ax, color="#4c72b0", width=0.8, rot=0)
ax.set(xlabel="", ylabel="share of events", title="Weekday")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The funnel
#
# How many leads reached each CRM stage by the end of the log, per tenant, and how many were
# lost there. A lead that skipped a stage counts as having passed it, so the bars never grow
# down the funnel and the step conversion is `reached[next] / reached[stage]`. These are the
# counts the managers' dashboard shows (`serving.activity.funnel_counts`).

# %%
tenants = sorted(events["tenant_id"].unique())
funnel = funnel_counts(data / "stages.parquet", as_of, settings.funnel, tenants)
table = funnel.pivot(index="stage", columns="tenant_id", values="reached").loc[list(settings.funnel.stages)]
step = (table / table.shift(1)).map(lambda x: "" if pd.isna(x) else f"{x:.0%}")

fig, ax = plt.subplots(figsize=(10, 4))
table.plot.barh(ax=ax, width=0.8)
ax.invert_yaxis()
ax.set(
    xscale="log",
    xlabel="leads that reached the stage (log scale)",
    ylabel="",
    title=f"Funnel by tenant as of {as_of:%Y-%m-%d}; labels: conversion from the stage above",
)
for i, tenant in enumerate(table.columns):
    for j, stage in enumerate(table.index):
        ax.annotate(
            step.loc[stage, tenant],
            (table.loc[stage, tenant], j - 0.4 + (i + 0.5) * 0.8 / len(table.columns)),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
        )
plt.show()
funnel.pivot(index="stage", columns="tenant_id", values=["reached", "lost"]).loc[list(settings.funnel.stages)]

# %% [markdown]
# ## Dwell: how long a page stays open
#
# Dwell seconds come with views of the card and of content (`events.dwell_types`). Their
# distribution is roughly log-normal, longer for videos and articles than for the card itself;
# the spike at zero is link previews and bot bursts, which the `quality` feature
# `zero_dwell_share` counts. Some views carry no dwell at all (missing, not zero).

# %%
dwell_types = list(settings.events.dwell_types)
views = events[events["event_type"].isin(dwell_types)]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
bins = np.geomspace(0.5, max(views["dwell_s"].max(), 1.0), 40)
for name in dwell_types:
    d = views.loc[views["event_type"] == name, "dwell_s"]
    ax1.hist(
        d[d > 0], bins=bins, histtype="step", lw=1.5, density=True, label=f"{name} (median {d[d > 0].median():.0f} s)"
    )
ax1.set(xscale="log", xlabel="dwell seconds (log scale, > 0)", ylabel="density", title="Dwell by event type")
ax1.legend(fontsize=8)
shares = (
    views.groupby("event_type")["dwell_s"]
    .agg(zero=lambda d: (d == 0).mean(), missing=lambda d: d.isna().mean())
    .loc[dwell_types]
)
shares.plot.barh(ax=ax2, width=0.8)
ax2.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
ax2.set(xlabel="share of views", ylabel="", title="Zero and missing dwell")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Share chains
#
# A lead who shares the card can bring in a new lead: that lead's first view carries
# `referrer_lead_id`. Following referrers back gives chains: an organic lead (depth 0) brings
# depth-1 leads, who bring depth-2 leads, and so on. The `sharing` features count, for each lead,
# the visits and the leads their shares brought (`referred_visits_*`, `referred_leads_all`).

# %%
referrer = events.dropna(subset=["referrer_lead_id"]).sort_values("ts").groupby("lead_id")["referrer_lead_id"].first()
depth = pd.Series(0, index=leads["lead_id"])
root = referrer.copy()
while len(root):  # climb one generation per pass until every chain reaches an organic lead
    depth[root.index] += 1
    root = root[root.isin(referrer.index)].map(referrer)
brought = referrer.value_counts().reindex(leads["lead_id"], fill_value=0)
won = set(stages.loc[stages["stage"] == settings.funnel.won, "lead_id"])
is_won = leads["lead_id"].isin(won).to_numpy()

fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.6))
depth.value_counts().sort_index().plot.bar(ax=ax1, color="#4c72b0", rot=0)
ax1.set(yscale="log", xlabel="chain depth (0 = organic)", ylabel="leads", title="Leads by depth in a share chain")
brought[brought > 0].value_counts().sort_index().plot.bar(ax=ax2, color="#4c72b0", rot=0)
ax2.set(xlabel="new leads brought by one lead's shares", ylabel="leads", title="How many leads a sharer brings")
groups = pd.cut(brought.to_numpy(), [-1, 0, 1, np.inf], labels=["0", "1", "2+"])
pd.Series(is_won).groupby(groups, observed=False).mean().plot.bar(ax=ax3, color="#55a868", rot=0)
ax3.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
ax3.set(xlabel="leads brought in", ylabel="won by the end of the log", title="Sharers close more often")
fig.tight_layout()
plt.show()
print(
    f"{len(referrer):,} of {len(leads):,} leads ({len(referrer) / len(leads):.0%}) came through a share; "
    f"deepest chain: {depth.max()} generations"
)

# %% [markdown]
# ## The same log as the model sees it
#
# A training row is (lead, cutoff): features use only events up to the cutoff, the label looks
# forward (`y_close_30d`: won within 30 days after it). This is `leadradar features build`.
# Below, how many leads are open at each weekly cutoff and how many of them close, then the
# close rate against a few features' values, each titled with the registry's description.

# %%
registry = build_registry(settings)
ts = build_training_set(log, settings, registry=registry)
label = f"y_close_{settings.training.horizon_days}d"
by_cutoff = ts.frame.groupby("cutoff")[label].agg(["size", "mean"])
print(
    f"{len(ts.frame):,} rows × {len(ts.features)} features, cutoffs {ts.first_cutoff:%Y-%m-%d} … "
    f"{ts.last_cutoff:%Y-%m-%d}; features by family:"
)
pd.Series([f.family for f in registry]).value_counts().to_frame("features").T

# %%
fig, ax = plt.subplots(figsize=(11, 3.2))
ax.bar(by_cutoff.index, by_cutoff["size"], width=5, color="#c8d3e6")
ax.set(ylabel="open leads (bars)", title=f"Training rows per weekly cutoff and their {label} rate")
ax2 = ax.twinx()
ax2.plot(by_cutoff.index, by_cutoff["mean"], color="#c44e52", marker="o", ms=3)
ax2.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
ax2.set_ylabel(f"{label} rate (line)", color="#c44e52")
ax2.grid(False)
plt.show()

# %%
shown = ["n_fam_view_30d", "hours_since_last_any", "pricing_views_30d", "n_two_way_contact_30d"]
labelled = ts.frame[ts.frame[label].notna()]
fig, axes = plt.subplots(1, len(shown), figsize=(12, 3.4), sharey=True)
for ax, name in zip(axes, shown):
    x = labelled[name]
    bins = pd.qcut(x, 10, labels=False, duplicates="drop")  # tied values share a bin
    rate = labelled[label].groupby(bins).mean()
    ax.plot(x.groupby(bins).median(), rate, marker="o", color="#4c72b0")
    ax.set(
        xlabel=f"{name}\n(median of each decile bin)",
        title=textwrap.fill(registry[name].en.replace("{value}", "N"), 30),
    )
    ax.title.set_fontsize(9)
axes[0].set_ylabel(f"{label} rate")
axes[0].yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
fig.tight_layout()
plt.show()

# %% [markdown]
# Next: `02_retrain_and_promote` trains on this log, tunes, compares a challenger with the
# champion in MLflow and promotes through the gate; `03_explain_one_lead` explains one lead's score.
