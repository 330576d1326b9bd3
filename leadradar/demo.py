"""`leadradar demo` (and `make demo`): the whole flow on the embedded defaults, from nothing to a ranked list."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
from rich.console import Console

from leadradar.config import Settings, quiet_environment
from leadradar.features.radar_log import RadarLog
from leadradar.features.registry import build_registry
from leadradar.features.simulator import SimulationConfig, SimulationResult, simulate, simulation_end
from leadradar.features.store import EventStore
from leadradar.features.store.loading import load_files
from leadradar.feed import feed
from leadradar.registry import LoadedModel, load_alias
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


def run_demo(
    data_dir: Path = Path("demo_data"),
    leads: int = 20_000,
    tenants: int = 3,
    days: int = 455,
    stream_days: int = 14,
    stream_seconds: float = 30.0,
) -> float:
    """Simulate a log that ends today, backfill most of it into the event store, train, serve, then stream the last
    `stream_days` into the running service over HTTP in `stream_seconds` and watch the ranked list move; returns the
    wall time."""
    from leadradar.terminal import rank_table

    quiet_environment()
    started = time.perf_counter()
    settings = Settings()
    today = pd.Timestamp.now(tz="UTC").normalize()
    cfg = SimulationConfig(tenants=tenants, leads=leads, days=days, start=(today - pd.Timedelta(days=days)).date())

    def step(text: str) -> None:
        console.rule(f"[bold]{text}[/bold]  (+{time.perf_counter() - started:.0f} s)")

    step("1. simulate radar events and CRM history (a window that ends today)")
    sim = simulate(cfg, settings)
    sim.write(data_dir)
    console.print(
        f"{sim.events.num_rows:,} events, {sim.leads.num_rows:,} leads, "
        f"{sim.stages.num_rows:,} stage changes, {tenants} tenants → {data_dir}/"
    )

    split = pd.Timestamp(simulation_end(cfg), tz="UTC") - pd.Timedelta(days=stream_days)
    step(f"2. backfill the log up to {split:%Y-%m-%d} into the event store (leadradar ingest)")
    backfill, live_events, live_stages = split_log(sim, split, data_dir / "backfill")
    store = EventStore.open(settings)
    loaded = load_files(
        store,
        settings,
        [backfill / "events.parquet"],
        stages=[backfill / "stages.parquet"],
        items=data_dir / "items.parquet",
        leads=data_dir / "leads.parquet",
        sales=data_dir / "sales.parquet",
    )
    for f in loaded:
        console.print(f"  {f.kind}: {f.received:,} received, {f.stored:,} stored, {f.duplicate:,} re-sends")
    console.print(f"  the same from a shell: leadradar ingest {backfill}/events.parquet {backfill}/stages.parquet")

    step("3. train from the store (as seen), calibrate, evaluate, register, promote")
    log = dataclasses.replace(RadarLog.from_store(store, as_seen=True), truth=data_dir / "truth.parquet")
    store.close()
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
    for target, why in result.extra.get("skipped", {}).items():
        console.print(f"[yellow]skipped {target}:[/yellow] {why}")

    step(f"4. the nightly refresh: score every open lead as of {split:%Y-%m-%d} (leadradar score)")
    loaded_model = load_alias(settings)
    scores, feats = score_batch(log, split, settings, loaded_model)
    activity = batch_activity(log.events, log.stages, scores, split, settings, log.consent)
    store_batch(ScoreStore(settings.score_store_url), scores, feats, activity)
    console.print(f"{len(scores):,} open leads scored and stored as of {split:%Y-%m-%d}")

    tenant = scores["tenant_id"].iloc[0]
    keys = {t: demo_key(KeyStore(settings.score_store_url), t) for t in sorted(scores["tenant_id"].unique())}
    step(f"5. start the service and stream the last {stream_days} days into it over HTTP")
    speed = stream_days * 86_400 / stream_seconds
    with ServiceProcess(settings) as svc, httpx.Client(base_url=svc.url, timeout=60) as client:
        check_inline_scores(client, keys[tenant], feats, tenant, loaded_model, settings)
        show = lambda clock: console.print(top_of_rank(client, keys[tenant], tenant, clock))
        show(split)
        try:
            sent, sent_stages = feed(client, keys, live_events, live_stages, speed=speed, tick=show)
        except RuntimeError as exc:
            console.print(f"[yellow]streaming stopped:[/yellow] {exc}")
        else:
            console.print(
                f"streamed {sent.received:,} events in {sent.requests:,} requests ({sent.stored:,} stored,"
                f" {sent.duplicate:,} re-sends, {sent.quarantined:,} quarantined) and {sent_stages.stored:,} stage"
                f" changes in {sent.seconds:.0f} s, {speed:,.0f}× real time"
            )
            time.sleep(2.0)  # rescoring follows the store about once a second
            show(pd.Timestamp(simulation_end(cfg), tz="UTC"))

    step(f"6. the 20 most likely closers of {tenant}")
    writer = ReasonWriter(build_registry(settings), settings.funnel, settings.serving.hidden_reason_families)
    ranked = ranked_list(ScoreStore(settings.score_store_url), tenant, settings.serving.grade, writer, n_movers=0)
    console.print(rank_table(ranked.table.head(20), f"{tenant}, live"))

    wall = time.perf_counter() - started
    console.rule(f"[bold green]demo done in {wall:.0f} s[/bold green]")
    console.print(f"MLflow UI:  {ui_command(settings)}\n           then open http://127.0.0.1:5000")
    console.print(
        f"Dashboard:  leadradar users create --tenant {tenant} --name boss; leadradar serve\n"
        f"            then open http://127.0.0.1:{settings.serving.port}/dashboard "
        f"(or: leadradar report --tenant {tenant} --out report.html)"
    )
    return wall


def split_log(sim: SimulationResult, split: pd.Timestamp, folder: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """The rows that arrived before `split` as a backfill folder (events, arrivals, stages), and the rest to stream."""
    events = sim.events.to_pandas()
    arrived = sim.arrivals.column("arrived_at").to_pandas() if sim.arrivals is not None else events["ts"]
    stages = sim.stages.to_pandas()
    early, early_stage = (arrived < split).to_numpy(), (stages["ts"] < split).to_numpy()
    folder.mkdir(parents=True, exist_ok=True)
    events[early].to_parquet(folder / "events.parquet", index=False)
    pd.DataFrame({**events.loc[early, ["tenant_id", "event_id"]], "arrived_at": arrived[early]}).to_parquet(
        folder / "arrivals.parquet", index=False
    )
    stages[early_stage].to_parquet(folder / "stages.parquet", index=False)
    return folder, events[~early].assign(arrived_at=arrived[~early]), stages[~early_stage]


def check_inline_scores(
    client: httpx.Client, key: str, feats: pd.DataFrame, tenant: str, loaded: LoadedModel, settings: Settings
) -> None:
    """Five leads scored over HTTP from their features, compared with the model in this process."""
    sample = feats[feats["tenant_id"] == tenant].nlargest(5, "n_fam_view_30d")
    body = {
        "lang": "zh-CN",
        "leads": [
            {"lead_id": r["lead_id"], "features": {f: (None if pd.isna(r[f]) else r[f]) for f in loaded.model.features}}
            for r in sample.to_dict("records")
        ],
    }
    horizon = f"{settings.training.horizon_days}d"
    answer = client.post("/v1/score", json=body, headers={"Authorization": f"Bearer {key}"}).raise_for_status().json()
    expected = loaded.model.predict_funnel(sample, list(settings.funnel.open_stages))[f"p_close_{horizon}"].to_numpy()
    got = np.array([a["p_close"][horizon] for a in answer["leads"]])
    for a in answer["leads"][:3]:
        why = "；".join(r["text"] for r in a["reasons"]["for"][:2]) if a["reasons"] else ""
        console.print(f"  POST /v1/score → {a['lead_id']}: P(close in {horizon}) = {a['p_close'][horizon]:.1%} — {why}")
    console.print(f"  HTTP answers match in-process predictions: max |Δ| = {np.max(np.abs(got - expected)):.2e}")


def top_of_rank(client: httpx.Client, key: str, tenant: str, clock: pd.Timestamp, n: int = 5) -> str:
    """The top `n` of the tenant's live ranked list (POST /v1/rank), one line, with the log's clock."""
    answer = client.post("/v1/rank", json={"page_size": 200}, headers={"Authorization": f"Bearer {key}"})
    if answer.status_code != 200:
        return f"  {clock:%m-%d %H:%M} /v1/rank answered {answer.status_code}"
    leads = answer.json()["leads"]
    top = "  ".join(f"{r['lead_id'][-5:]} {r['p_close']:.0%}{r['grade']}" for r in leads[:n])
    moved = [r for r in leads if r.get("change") is not None]
    riser = max(moved, key=lambda r: r["change"], default=None)
    rise = f"  | biggest rise in the top 200: {riser['lead_id'][-5:]} {riser['change']:+.0%}" if riser else ""
    return f"  log at {clock:%m-%d %H:%M}  top of {tenant}: {top}{rise}"


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
