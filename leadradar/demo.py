"""`leadradar demo` (and `make demo`): the whole flow on the embedded defaults, from nothing to a ranked list."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console

from leadradar.config import Settings, quiet_environment
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, simulate, simulation_end
from leadradar.registry import load_alias
from leadradar.serving.activity import batch_activity
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess
from leadradar.serving.ranking import ranked_list
from leadradar.serving.reasons import ReasonWriter
from leadradar.serving.scoring import score_batch, store_batch
from leadradar.serving.store import ScoreStore
from leadradar.training.pipeline import TrainResult, train_from_logs
from leadradar.training.tracking import ui_command

console = Console()


def run_demo(data_dir: Path = Path("demo_data"), leads: int = 20_000, tenants: int = 3, days: int = 455) -> float:
    """Simulate, train, register, serve, score over HTTP, rank; returns the wall time in seconds."""
    from leadradar.terminal import rank_table

    quiet_environment()
    started = time.perf_counter()
    settings = Settings()
    cfg = SimulationConfig(tenants=tenants, leads=leads, days=days)

    def step(text: str) -> None:
        console.rule(f"[bold]{text}[/bold]  (+{time.perf_counter() - started:.0f} s)")

    step("1. simulate radar events and CRM history")
    sim = simulate(cfg, settings)
    sim.write(data_dir)
    log = RadarLog.from_dir(data_dir)
    console.print(
        f"{sim.events.num_rows:,} events, {sim.leads.num_rows:,} leads, "
        f"{sim.stages.num_rows:,} stage changes, {tenants} tenants → {data_dir}/"
    )

    step("2. build the training set, train, calibrate, evaluate, register")
    result = train_demo_model(log, settings)
    console.print(f"LightGBM parameters: {result.extra['params_source']} (the demo never reads earlier tuning)")
    from leadradar.training.promotion import promote

    verdict = promote(settings)
    console.print(f"promotion gate: {'promoted' if verdict.promoted else 'refused'} — {verdict.reason}")
    m = result.test_metrics
    console.print(
        f"{result.model_name} v{result.model_version} (run {result.run_id}); test period: "
        f"AUC {m['auc']:.3f} (oracle {m.get('oracle_auc', float('nan')):.3f}), log loss {m['logloss']:.4f}, "
        f"ECE {m['ece']:.4f}, mean |p − truth| {m.get('mean_abs_err_vs_truth', float('nan')):.4f}, "
        f"calibration {result.calibration}"
    )
    trained = sorted(result.extra.get("targets", {}))
    console.print(f"models trained: {', '.join(trained)}")
    for target, why in result.extra.get("skipped", {}).items():
        console.print(f"[yellow]skipped {target}:[/yellow] {why}")

    step("3. batch-score every open lead as of the end of the data")
    as_of = pd.Timestamp(simulation_end(cfg), tz="UTC").as_unit("us")
    loaded = load_alias(settings)
    scores, feats = score_batch(log, as_of, settings, loaded)
    activity = batch_activity(log.events, log.stages, scores, as_of, settings)
    store_batch(ScoreStore(settings.score_store_url), scores, feats, activity)
    console.print(f"{len(scores):,} open leads scored and stored as of {as_of:%Y-%m-%d}")

    step("4. start the BentoML service and score leads over HTTP")
    tenant = scores["tenant_id"].iloc[0]
    key = demo_key(KeyStore(settings.score_store_url), tenant)
    sample = feats[feats["tenant_id"] == tenant].nlargest(5, "n_fam_view_30d")
    body = {
        "lang": "zh-CN",
        "leads": [
            {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in loaded.model.features}}
            for r in sample.to_dict("records")
        ],
    }
    horizon = f"{settings.training.horizon_days}d"
    with ServiceProcess(settings) as svc:
        answer = (
            httpx.post(svc.url + "/v1/score", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            .raise_for_status()
            .json()
        )
    expected = loaded.model.predict_funnel(sample, list(settings.funnel.open_stages))[f"p_close_{horizon}"].to_numpy()
    got = np.array([a["p_close"][horizon] for a in answer["leads"]])
    for a in answer["leads"]:
        why = "；".join(r["text"] for r in a["reasons"]["for"][:2]) if a["reasons"] else ""
        console.print(
            f"  POST /v1/score → {a['lead_id']}: P(close in {horizon}) = {a['p_close'][horizon]:.1%}, "
            f"grade {a['grade']} — {why}"
        )
    console.print(
        f"model v{answer['model_version']}; HTTP answers match in-process predictions: "
        f"max |Δ| = {np.max(np.abs(got - expected)):.2e}"
    )

    step(f"5. the 20 most likely closers of {tenant}")
    writer = ReasonWriter(build_registry(settings), settings.funnel)
    ranked = ranked_list(ScoreStore(settings.score_store_url), tenant, settings.serving.grade, writer, n_movers=0)
    console.print(rank_table(ranked.table.head(20), f"{tenant}, as of {as_of:%Y-%m-%d}"))

    wall = time.perf_counter() - started
    console.rule(f"[bold green]demo done in {wall:.0f} s[/bold green]")
    console.print(f"MLflow UI:  {ui_command(settings)}\n           then open http://127.0.0.1:5000")
    console.print(
        f"Dashboard:  leadradar users create --tenant {tenant} --name boss; leadradar serve\n"
        f"            then open http://127.0.0.1:{settings.serving.port}/dashboard "
        f"(or: leadradar report --tenant {tenant} --out report.html)"
    )
    return wall


def train_demo_model(log: RadarLog, settings: Settings) -> TrainResult:
    """The demo trains with the settings' parameters, never with a study an earlier `leadradar tune` left in the
    data directory: the demo shows what a fresh clone gets, the same on every machine."""
    return train_from_logs(log, settings, use_tuned=False)


def demo_key(keys: KeyStore, tenant: str) -> str:
    """A fresh system key named `demo`; the ones earlier demo runs made are revoked, so one stays active."""
    for earlier in keys.list(tenant):
        if earlier["name"] == "demo" and earlier["revoked_at"] is None:
            keys.revoke(earlier["key_id"])
    return keys.create(tenant, "system", name="demo")[1]
