"""The `leadradar` command line: a thin layer over the same functions notebooks call."""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import tomllib
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer._click.core import Context
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from leadradar.config import GRADES, Grade, Lang, Settings, language, quiet_environment
from leadradar.errors import BadValueError, ConfigError, InputError, NotFoundError, UserError
from leadradar.terminal import build_progress, rank_table

if TYPE_CHECKING:
    import pandas as pd

    from leadradar.features.radar_log import RadarLog
    from leadradar.serving.store import ScoreStore

Model = TypeVar("Model", bound=BaseModel)
DEBUG_KEY = "leadradar.debug"
TOKENS_KEY = "leadradar.tokens"  # the command line as given, for naming a damaged input file after a failure
DEBUG_ENV = "LEADRADAR_DEBUG"


class OneLineErrors(TyperGroup):
    """Every command's input errors as one line on stderr and exit code 2; a traceback only with --debug.

    A `UserError` (or a usage error: unknown option, bad option type) is the user's to fix, and so is a full disk;
    any other exception is our bug and keeps its traceback.
    """

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        ctx.meta.setdefault(TOKENS_KEY, list(args))
        try:
            return super().parse_args(ctx, args)
        except NoArgsIsHelpError:
            raise
        except UsageError as exc:
            exit_one_line(ctx, exc)

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:
            raise
        except (UserError, UsageError) as exc:
            exit_one_line(ctx, exc)
        except Exception as exc:
            from leadradar.serving.outages import disk_full

            if disk_full(exc):
                full = f"the disk is full: {one_line(exc)}; free some space and run the command again"
                exit_one_line(ctx, UserError(full))
            damaged = damaged_input(ctx.meta.get(TOKENS_KEY, []))
            if damaged is None:
                raise
            exit_one_line(ctx, UserError(damaged))


FOLDER_INPUTS = ("--events", "--stages", "--items")  # options that take a folder of Parquet files


def damaged_input(tokens: list[str]) -> str | None:
    """After a failure no handler explains: the first Parquet file the command was given (not its `--out`), or of a
    folder it was given, with a part that cannot be read, in one line; None when they all read whole (then the
    failure is ours)."""
    from leadradar.features.atomic import begins_with
    from leadradar.features.radar_log import damaged_part, parquet_files

    values = [t.split("=", 1)[1] if t.startswith("--") and "=" in t else t for t in tokens]
    options = [
        t.split("=", 1)[0] if t.startswith("--") and "=" in t else before
        for before, t in zip(["", *tokens[:-1]], tokens, strict=True)
    ]
    written = {v for option, v in zip(options, values, strict=True) if option == "--out"}
    folders = {v for option, v in zip(options, values, strict=True) if option in FOLDER_INPUTS and Path(v).is_dir()}
    for value in dict.fromkeys(v for v in values if v not in written):
        try:
            paths = parquet_files(Path(value)) if value in folders else [Path(value)]
        except InputError:  # a folder with no Parquet file: nothing of it was read
            continue
        for path in paths:
            if path.is_file() and begins_with(path, b"PAR1") and (where := damaged_part(path)) is not None:
                return f"{path}: {where}; the file is damaged (cut short or overwritten): restore it or write it again"
    return None


def exit_one_line(ctx: Context, exc: Exception) -> NoReturn:
    """Print the error as one line (after its traceback with --debug or LEADRADAR_DEBUG=1) and exit 2."""
    if ctx.meta.get(DEBUG_KEY, os.environ.get(DEBUG_ENV, "") not in ("", "0")):
        traceback.print_exc()
    console.print(Text.assemble(("error: ", "bold red"), one_line(exc)), soft_wrap=True)
    raise typer.Exit(2) from None


def one_line(exc: Exception) -> str:
    """The error's message on one line; a usage error also says where the command's help is."""
    if isinstance(exc, UsageError):
        where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
        return " ".join(exc.format_message().split()).rstrip(".") + where
    return " ".join(str(exc).split()) or type(exc).__name__


app = typer.Typer(
    cls=OneLineErrors, add_completion=False, no_args_is_help=True, help="Lead intent scoring from card radar events."
)
features_app = typer.Typer(no_args_is_help=True, help="Build feature tables.")
app.add_typer(features_app, name="features")
keys_app = typer.Typer(no_args_is_help=True, help="API keys for the scoring service.")
app.add_typer(keys_app, name="keys")
users_app = typer.Typer(no_args_is_help=True, help="People who sign in to the dashboard (managers).")
app.add_typer(users_app, name="users")
LANG_HELP = "language of stages and reasons: en or zh-CN"
alerts_app = typer.Typer(no_args_is_help=True, help="Alerts to salespeople and the boss's daily digest.")
app.add_typer(alerts_app, name="alerts")
bento_app = typer.Typer(no_args_is_help=True, help="Package the service and the champion as a Bento.")
app.add_typer(bento_app, name="bento")


@bento_app.command("build")
def bento_build() -> None:
    """Build a Bento holding the service code, the champion model and its settings (offline, seconds)."""
    from leadradar.serving.bento import build_bento

    try:
        tag = build_bento(settings_for())
    except (LookupError, FileNotFoundError) as exc:  # serving/bento.py: no champion, or not run in a checkout
        raise NotFoundError(str(exc)) from exc
    out.print(f"built Bento {tag}; containerise with `bentoml containerize {tag}` where Docker runs")


console = Console(stderr=True)
out = Console()


@app.callback()
def options(
    ctx: typer.Context,
    debug: bool = typer.Option(
        False, "--debug", envvar=DEBUG_ENV, help="show the traceback behind an input error too (or LEADRADAR_DEBUG=1)"
    ),
) -> None:
    """Lead intent scoring from card radar events."""
    ctx.meta[DEBUG_KEY] = debug


def settings_for(horizon: str | None = None, cadence: str | None = None, engine: str | None = None) -> Settings:
    """Settings from the environment, with this command's options on top."""
    quiet_environment()
    s = load_settings()
    if horizon is not None:
        s.training.horizon_days = parse_days(horizon)
    if cadence is not None:
        s.features = with_option(s.features, "cadence", cadence)
    if engine is not None:
        s.features = with_option(s.features, "engine", engine)
    return s


def load_settings() -> Settings:
    """The settings; a bad value in LEADRADAR_CONFIG's file or a LEADRADAR_* variable is one line naming it."""
    config = os.environ.get("LEADRADAR_CONFIG")
    where = f"LEADRADAR_CONFIG file {config} or the LEADRADAR_* variables" if config else "the LEADRADAR_* variables"
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        got = repr(first.get("input"))[:60]
        raise ConfigError(f"setting {field} from {where}: {first['msg']} (got {got}){more}; fix that value") from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"{exc}; point LEADRADAR_CONFIG at a TOML file or unset it") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config}: not valid TOML ({exc}); fix the file LEADRADAR_CONFIG names") from exc


def with_option(section: Model, field: str, value: str) -> Model:
    """A settings section with one field set from an option, validated as the settings validate it."""
    return from_options(type(section), {**section.model_dump(), field: value})


def from_options(model: type[Model], values: dict[str, Any]) -> Model:
    """A pydantic model built from option values; a value it refuses is one line naming the option."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        option = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "an option"
        message = error["msg"][:1].lower() + error["msg"][1:]
        raise BadValueError(f"{option} {error['input']!r}: {message}") from None


def parse_days(text: str) -> int:
    """`--horizon` in days (30d or 30); zero days is refused as such, not as a typing mistake."""
    m = re.fullmatch(r"\s*(\d+)\s*d?\s*", text)
    if not m:
        raise BadValueError(f"--horizon {text!r} is not a horizon; write days like 30d")
    if int(m.group(1)) <= 0:
        raise BadValueError(f"--horizon {text!r}: a horizon is at least 1 day (write days like 30d)")
    return int(m.group(1))


def parse_time(text: str | None, option: str) -> pd.Timestamp | None:
    """A time option as UTC; a time without a zone is refused rather than guessed."""
    if text is None:
        return None
    import pandas as pd

    from leadradar.features.cutoffs import as_utc

    example = "write ISO 8601 with a zone, e.g. 2026-03-02T00:00:00Z or 2026-03-02T08:00:00+08:00"
    try:
        when = pd.Timestamp(text)
    except ValueError:
        raise BadValueError(f"{option} {text!r} is not a time; {example}") from None
    if pd.isna(when):
        raise BadValueError(f"{option} {text!r} is not a time; {example}")
    if when.tzinfo is None:
        raise BadValueError(f"{option} {text!r} has no time zone; {example}")
    return as_utc(when)


def parse_lang(text: str | None) -> Lang | None:
    """`--lang` as a person types it (zh, zh-cn, EN ...): en or zh-CN."""
    if text is None:
        return None
    lang = language(text)
    if lang is None:
        raise BadValueError(f"--lang is en or zh-CN, not {text!r}")
    return lang


def parse_grade(text: str | None) -> Grade | None:
    """`--grade` in either case: A, B, C or D."""
    if text is None:
        return None
    grade = text.strip().upper()
    if grade not in GRADES:
        raise BadValueError(f"--grade is A, B, C or D, not {text!r}")
    return grade


def no_scores(store: ScoreStore, tenant: str) -> NotFoundError:
    """The tenant has no scoring run: say so, and name the tenants that have one (a mistyped id shows)."""
    known = store.tenants()
    hint = f" (tenants with scores: {', '.join(known)})" if known else ""
    return NotFoundError(f"no scores for tenant {tenant!r}; run `leadradar score` first{hint}")


def radar_log(
    events: Path | None,
    stages: Path | None,
    items: Path | None,
    leads: Path | None,
    truth: Path | None = None,
    with_truth: bool = False,
    *,
    settings: Settings | None = None,
    as_seen: bool = True,
    until: pd.Timestamp | None = None,
    tenant: str | None = None,
) -> RadarLog:
    """The command's radar log: the files named (and the optional ones beside the events), or the event store
    when neither --events nor --stages is given (then --items, --leads, --truth replace the store's own)."""
    import dataclasses

    from leadradar.features.radar_log import RadarLog

    if events is None and stages is None:
        from leadradar.features.store import EventStore

        store = EventStore.open(settings or settings_for())
        try:
            log = RadarLog.from_store(store, tenant=tenant, until=until, as_seen=as_seen)
        finally:
            store.close()
        named: dict[str, Any] = {
            k: v for k, v in (("items", items), ("leads", leads), ("truth", truth)) if v is not None
        }
        return dataclasses.replace(log, **named) if named else log
    if events is None or stages is None:
        raise BadValueError("give both --events and --stages (radar log files), or neither to read the event store")
    beside = ("items", "leads", "truth") if with_truth else ("items", "leads")
    return without_forgotten(RadarLog.from_paths(events, stages, items, leads, truth, beside=beside), settings)


def without_forgotten(log: RadarLog, settings: Settings | None) -> RadarLog:
    """Files name leads forgotten since they were written: their rows are left out (features/store/forget.py)."""
    from leadradar.features.store import EventStore
    from leadradar.features.store.forget import log_without_forgotten

    store = EventStore.open(settings or settings_for())
    try:
        return log_without_forgotten(store, log)
    finally:
        store.close()


AS_SEEN_HELP = (
    "read the event store as the service saw it (an event counts from the later of its time and its arrival;"
    " the default) or by event time"
)


@app.command()
def simulate(
    out_dir: Path = typer.Option(..., "--out", help="folder for events, stages, truth, items and leads Parquet"),
    tenants: int = typer.Option(3, help="companies"),
    leads: int = typer.Option(20_000, help="organic leads over all tenants; share chains add more"),
    days: int = typer.Option(455, help="days of history (a 90-day model needs about 400)"),
    seed: int = typer.Option(7),
    start: str | None = typer.Option(None, help="first day, YYYY-MM-DD (default 2026-01-05)"),
) -> None:
    """Simulated radar events and CRM history, with the exact truth they were drawn from."""
    from leadradar.features.simulator import SimulationConfig
    from leadradar.features.simulator import simulate as run

    settings = settings_for()
    values = {"tenants": tenants, "leads": leads, "days": days, "seed": seed}
    cfg = from_options(SimulationConfig, values | ({"start": start} if start else {}))
    with console.status(f"simulating {leads:,} leads over {days} days"):
        result = run(cfg, settings)
        paths = result.write(out_dir)
    table = Table(title=f"simulation → {out_dir}", min_width=40)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name in paths:
        table.add_row(name, f"{getattr(result, name).num_rows:,}")
    out.print(table)


@app.command()
def ingest(
    files: list[Path] | None = typer.Argument(
        None,
        help="Parquet, CSV or JSON Lines files of radar events (or of stage changes, told by their columns); a folder"
        " stands for its files",
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="write events.parquet, quarantine.parquet and the report here instead of the event store"
    ),
    stages: list[Path] | None = typer.Option(None, "--stages", help="a file of CRM stage changes (repeatable)"),
    items: Path | None = typer.Option(None, help="the item catalogue (tenant_id, item_id, category) into the store"),
    leads: Path | None = typer.Option(
        None, help="static lead attributes (tenant_id, lead_id, optional name, ...) into the store"
    ),
    sales: Path | None = typer.Option(None, help="the salespeople (tenant_id, sales_id, name) into the store"),
    arrived_now: bool = typer.Option(
        False, "--arrived-now", help="events without an arrived_at arrive now (default: when they happened, a backfill)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the full report as one JSON object"),
) -> None:
    """Validate events and stage changes into the event store; keep the good, quarantine the bad with a reason each."""
    from leadradar.features.ingest import input_files

    files, stages = input_files(files or []), input_files(stages or [])
    if out_dir is None:
        ingest_into_store(files, stages, items, leads, sales, arrived_now, as_json)
        return
    if stages or items or leads or sales or arrived_now:
        raise BadValueError("--stages, --items, --leads, --sales and --arrived-now are for the event store; drop --out")
    if not files:
        raise BadValueError("name at least one events file to ingest")
    from leadradar.features.ingest import ingest as run

    report = run(files, out_dir, settings_for())
    if as_json:
        print(json.dumps(report.to_dict(), default=str, ensure_ascii=False))
        return
    table = Table(title="ingest: rows in = accepted + rejected + duplicates")
    for col in ("file", "rows in", "accepted", "rejected", "duplicates", "of which conflicting"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in [*report.files, report.total]:
        table.add_row(
            escape(getattr(f, "file", "total")),
            *(
                f"{getattr(f, k):,}"
                for k in ("rows_in", "accepted", "rejected", "duplicates", "conflicting_duplicates")
            ),
        )
    out.print(table)
    for field, n in report.total.rejected_by_reason_field.items():
        out.print(f"  rejected for {field}: {n:,}")
    for etype, n in report.total.unknown_event_types.items():
        out.print(f"  event type not configured: {escape(repr(etype))} × {n:,}")
    for note in report.notes:
        out.print(f"  note: {escape(note)}")
    out.print(
        f"stored {report.events_stored:,} events in {report.events_path}"
        + (f"; rejected rows and reasons in {report.quarantine_path}" if report.quarantine_path else "")
    )


def ingest_into_store(
    files: list[Path],
    stages: list[Path],
    items: Path | None,
    leads: Path | None,
    sales: Path | None,
    arrived_now: bool,
    as_json: bool,
) -> None:
    """`leadradar ingest` without --out: every file into the event store, one line per file of what it did."""
    from leadradar.features.store import EventStore
    from leadradar.features.store.loading import load_files

    if not (files or stages or items or leads or sales):
        raise BadValueError("name at least one file to ingest (events, --stages, --items, --leads or --sales)")
    settings = settings_for()
    store = EventStore.open(settings)
    try:
        with console.status(f"ingesting into the event store at {store.url}"):
            loaded = load_files(
                store, settings, files, stages=stages, items=items, leads=leads, sales=sales, arrived_now=arrived_now
            )
        counts = store.counts()
    finally:
        store.close()
    if as_json:
        print(json.dumps({"store": store.url, "files": [f.to_dict() for f in loaded], "stored_now": counts}))
        return
    table = Table(title="ingest into the event store: received = stored + duplicate + quarantined")
    for col in ("file", "kind", "received", "stored", "duplicate", "quarantined", "arrived"):
        table.add_column(col, justify="right" if col in ("received", "stored", "duplicate", "quarantined") else "left")
    for f in loaded:
        table.add_row(
            escape(f.file),
            f.kind,
            *(f"{getattr(f, k):,}" for k in ("received", "stored", "duplicate", "quarantined")),
            escape(f.arrival),
        )
    out.print(table)
    for f in loaded:
        for field, n in sorted(f.refused_by_field.items()):
            out.print(f"  {escape(f.file)}: quarantined for {field}: {n:,}")
    out.print(
        f"the store at {escape(store.url)} holds {counts['events']:,} events, {counts['stages']:,} stage changes;"
        f" {counts['quarantined']:,} quarantined items (with reasons) are listed by GET /v1/quarantine"
    )


@features_app.command("build")
def features_build(
    events: Path | None = typer.Option(
        None, help="events: a Parquet file or a folder of them (default: the event store)"
    ),
    stages: Path | None = typer.Option(
        None, help="CRM stage history: a Parquet file or a folder of them (default: the event store)"
    ),
    out_file: Path = typer.Option(
        ...,
        "--out",
        help="training-set Parquet: features and labels per (lead, cutoff); one file, or on spark a folder of"
        " parts written by the executors, one tenant_id=… subfolder per tenant (pandas and train --table read both)",
    ),
    cadence: str = typer.Option("weekly", help="daily or weekly cutoffs"),
    engine: str = typer.Option("duckdb", help="duckdb (embedded), tiles (day tiles, see README) or spark"),
    items: Path | None = typer.Option(None, help="item catalogue Parquet (default: items.parquet beside events)"),
    until: str | None = typer.Option(None, help="use only what was known by this UTC time"),
    horizon: str = typer.Option("30d", help="label horizon"),
    leads: Path | None = typer.Option(
        None, help="static lead attributes Parquet (default: leads.parquet beside events)"
    ),
    as_seen: bool = typer.Option(True, "--as-seen/--event-time", help=AS_SEEN_HELP),
) -> None:
    """Point-in-time features and forward-looking labels for every open lead at every cutoff."""
    from leadradar.features.trainset import write_training_set

    settings = settings_for(horizon=horizon, cadence=cadence, engine=engine)
    cutoff = parse_time(until, "--until")
    log = radar_log(events, stages, items, leads, settings=settings, as_seen=as_seen, until=cutoff)
    with build_progress(console, f"building features on {engine}"):
        ts = write_training_set(log, settings, out_file, until=cutoff)
    if ts.unknown_event_types:
        console.print(
            f"[yellow]events of types not in the configuration (counted, not used):[/yellow] {ts.unknown_event_types}"
        )
    console.print(
        f"{ts.rows:,} rows × {len(ts.features)} features, cutoffs {ts.first_cutoff:%Y-%m-%d} … "
        f"{ts.last_cutoff:%Y-%m-%d}, definition hash {ts.definition_hash} → {out_file}"
        + (" (a folder: a subfolder of parts per tenant)" if ts.parts else "")
    )


IGNORE_HELP = "with --table: a column to leave out of the features (an id, a name); repeat for more"


def table_input(
    events: Path | None, stages: Path | None, table: Path | None, label: str | None, ignore: list[str] | None = None
) -> tuple[Path, str] | None:
    """The feature table and label a train or tune command got; None when it reads radar logs instead."""
    if table is None:
        if ignore:
            raise BadValueError("--ignore leaves columns out of a --table; radar logs have no columns to leave out")
        return None
    if label is None:
        raise BadValueError("--table needs --label (the 0/1 column to predict)")
    if events is not None or stages is not None:
        raise BadValueError("give either --events/--stages or --table, not both")
    return table, label


@app.command()
def train(
    events: Path | None = typer.Option(None, help="events: a Parquet file or a folder of them"),
    stages: Path | None = typer.Option(None, help="CRM stage history: a Parquet file or a folder of them"),
    table: Path | None = typer.Option(None, help="or: your own feature table (CSV or Parquet)"),
    label: str | None = typer.Option(None, help="with --table: the 0/1 column to predict"),
    time_column: str | None = typer.Option(None, help="with --table: split by this time column"),
    model_name: str | None = typer.Option(None, help="with --table: registered model name"),
    ignore: list[str] | None = typer.Option(None, "--ignore", help=IGNORE_HELP),
    until: str | None = typer.Option(None, help="use only what was known by this UTC time"),
    horizon: str = typer.Option("30d", help="label horizon"),
    items: Path | None = typer.Option(None, help="item catalogue (default: items.parquet beside events)"),
    truth: Path | None = typer.Option(None, help="simulator truth (default: truth.parquet beside events)"),
    leads: Path | None = typer.Option(None, help="static lead attributes (default: leads.parquet beside events)"),
    tuned: bool = typer.Option(True, help="use the best parameters of `leadradar tune` when there are some"),
    as_seen: bool = typer.Option(True, "--as-seen/--event-time", help=AS_SEEN_HELP),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: run id, model, version, test metrics"),
) -> None:
    """Train, calibrate and evaluate; log to MLflow and register the model as the challenger."""
    given = table_input(events, stages, table, label, ignore)
    settings = settings_for(horizon=horizon)
    if given is not None:
        from leadradar.training.table import train_from_table

        with console.status("training"):
            result = train_from_table(*given, settings, time_column, model_name, use_tuned=tuned, ignore=ignore or ())
    else:
        cutoff = parse_time(until, "--until")
        log = radar_log(
            events, stages, items, leads, truth, with_truth=True, settings=settings, as_seen=as_seen, until=cutoff
        )
        from leadradar.training.pipeline import train_from_logs

        with build_progress(console, "training (the features first)"):
            result = train_from_logs(log, settings, until=cutoff, use_tuned=tuned)
    if as_json:
        print(result.to_json())
        return
    out.print(backtest_table(result))
    served = result.extra.get("refit") or {}
    if served:
        console.print(
            f"served: refit on all {served['rows']:,} labelled rows (cutoffs {served['cutoff_from'][:10]} … "
            f"{served['cutoff_to'][:10]}, {served['rounds']} rounds, calibration {served['calibration']})"
        )
    console.print(f"LightGBM parameters: {escape(result.extra.get('params_source', 'defaults'))}")
    named = "" if result.model_name == settings.mlflow.model_name else f" --model-name {shlex.quote(result.model_name)}"
    console.print(f"next: `leadradar promote{escape(named)}` compares it with the champion on the latest holdout")


def backtest_table(result) -> Table:
    """The backtest's figures, each with its bootstrap interval over leads where there is one."""
    kind = (result.extra.get("backtest") or {}).get("kind", "time_split").replace("_", " ")
    table = Table(title=f"{result.model_name} v{result.model_version} (@{result.alias}), run {result.run_id}")
    table.add_column(f"backtest ({kind})")
    table.add_column("value", justify="right")
    table.add_column("interval over leads", justify="right")
    metrics = result.test_metrics
    for k, v in metrics.items():
        if k.endswith(("_lo", "_hi")) and k[:-3] in metrics:
            continue
        lo, hi = metrics.get(f"{k}_lo"), metrics.get(f"{k}_hi")
        interval = f"{lo:.4f} … {hi:.4f}" if lo is not None and hi is not None else ""
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v), interval)
    return table


@app.command()
def tune(
    events: Path | None = typer.Option(None, help="events: a Parquet file or a folder of them"),
    stages: Path | None = typer.Option(None, help="CRM stage history: a Parquet file or a folder of them"),
    table: Path | None = typer.Option(None, help="or: your own feature table (CSV or Parquet)"),
    label: str | None = typer.Option(None, help="with --table: the 0/1 column to predict"),
    time_column: str | None = typer.Option(None, help="with --table: split by this time column"),
    model_name: str | None = typer.Option(None, help="with --table: registered model name"),
    ignore: list[str] | None = typer.Option(None, "--ignore", help=IGNORE_HELP),
    until: str | None = typer.Option(None, help="use only what was known by this UTC time"),
    horizon: str = typer.Option("30d", help="label horizon"),
    items: Path | None = typer.Option(None, help="item catalogue (default: items.parquet beside events)"),
    leads: Path | None = typer.Option(None, help="static lead attributes (default: leads.parquet beside events)"),
    trials: int | None = typer.Option(30, help="trial budget (the study resumes where it stopped)"),
    timeout: float | None = typer.Option(None, help="time budget in seconds"),
    as_seen: bool = typer.Option(True, "--as-seen/--event-time", help=AS_SEEN_HELP),
    fresh: bool = typer.Option(False, "--fresh", help="start this data's study over instead of resuming it"),
    as_json: bool = typer.Option(False, "--json", help="print the result as one JSON object"),
) -> None:
    """Search LightGBM parameters with Optuna (TPE, pruning); `train` on the same data then uses the best ones."""
    from dataclasses import asdict

    given = table_input(events, stages, table, label, ignore)
    settings = settings_for(horizon=horizon)
    if given is not None:
        from leadradar.training.table import tune_table

        result = tune_table(
            *given,
            settings,
            time_column,
            model_name,
            trials,
            timeout,
            progress=not as_json,
            fresh=fresh,
            ignore=ignore or (),
        )
    else:
        cutoff = parse_time(until, "--until")
        log = radar_log(events, stages, items, leads, settings=settings, as_seen=as_seen, until=cutoff)
        from leadradar.training.pipeline import tune_from_logs

        result = tune_from_logs(log, settings, cutoff, trials, timeout, progress=not as_json, fresh=fresh)
    if as_json:
        print(json.dumps(asdict(result), default=float))
        return
    console.print(
        f"study {result.study}: {result.trials_complete} complete, {result.trials_pruned} pruned of "
        f"{result.trials_total} trials; best validation log loss {result.best_value:.5f}"
    )
    console.print(f"tuned on: {escape(result.window)} (fingerprint {result.fingerprint[:12]})")
    out.print_json(json.dumps(result.best_params))


@app.command()
def evaluate(
    table: Path = typer.Option(..., help="your own feature table (CSV or Parquet)"),
    label: str = typer.Option(..., help="the 0/1 column to predict"),
    cv: int = typer.Option(5, "--cv", help="stratified folds"),
    ignore: list[str] | None = typer.Option(None, "--ignore", help="a column to leave out (an id, a name); repeat"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: every scorer's figures"),
) -> None:
    """Cross-validate leadradar's table model beside LightGBM's defaults and logistic regression, same folds."""
    from leadradar.training.table_evaluation import FIGURES, evaluate_table

    with console.status(f"cross-validating on {cv} folds"):
        result = evaluate_table(table, label, settings_for(), cv, ignore or ())
    if as_json:
        print(json.dumps(result.to_dict(), default=float, ensure_ascii=False))
        return
    out_table = Table(
        title=f"{escape(str(table))}: {result.rows:,} rows, {result.positives:,} positive, {result.folds} folds"
    )
    for column in ("scorer", "figure", "out of fold", "interval over rows", "± over folds"):
        out_table.add_column(column, justify="left" if column in ("scorer", "figure") else "right")
    for name, m in result.scorers.items():
        for k in FIGURES:
            interval = f"{m[f'{k}_lo']:.4f} … {m[f'{k}_hi']:.4f}" if f"{k}_lo" in m else ""
            out_table.add_row(name if k == FIGURES[0] else "", k, f"{m[k]:.4f}", interval, f"{m[f'{k}_fold_sd']:.4f}")
        out_table.add_section()
    out.print(out_table)


def metrics_table(verdict) -> Table:
    table = Table(
        title=f"holdout: {verdict.holdout.get('rows', 0):,} rows, {verdict.holdout.get('positives', 0):,} wins, "
        f"cutoffs {verdict.holdout.get('from', '')[:10]} … {verdict.holdout.get('to', '')[:10]}"
    )
    table.add_column("metric")
    table.add_column(f"challenger v{verdict.challenger['version']}", justify="right")
    table.add_column(f"champion v{verdict.champion['version']}" if verdict.champion else "champion", justify="right")
    for key in ("logloss", "auc", "pr_auc", "brier", "ece", "lift_top10"):
        if key in verdict.challenger_metrics:
            table.add_row(
                key, f"{verdict.challenger_metrics[key]:.5f}", f"{verdict.champion_metrics.get(key, float('nan')):.5f}"
            )
    return table


def model_settings(model_name: str | None) -> Settings:
    """The settings, naming another registered model (a table's) when asked."""
    settings = settings_for()
    if model_name:
        from leadradar.training.table import table_settings

        settings = table_settings(settings, model_name)
    return settings


@app.command()
def promote(
    model_name: str | None = typer.Option(None, help="registered model (default: the lead close model)"),
    force: bool = typer.Option(False, "--force", help="promote even if the gate refuses (needs --reason)"),
    reason: str | None = typer.Option(None, "--reason", help="why: recorded with the verdict"),
    as_json: bool = typer.Option(False, "--json", help="print the verdict as one JSON object"),
) -> None:
    """Make the challenger champion only if it beats the champion on the same, latest holdout (or --force).

    The verdict (both models' figures, the rows compared, who and why) is recorded as tags on the challenger's
    version and as an MLflow run."""
    from leadradar.training.promotion import promote as run

    settings = model_settings(model_name)
    with console.status("scoring challenger and champion on the latest holdout"):
        verdict = run(settings, force=force, why=reason)
    if as_json:
        print(verdict.to_json())
    else:
        if verdict.challenger_metrics:
            out.print(metrics_table(verdict))
        word = (
            "[yellow]forced[/yellow]"
            if verdict.forced
            else "[green]promoted[/green]"
            if verdict.promoted
            else "[red]refused[/red]"
        )
        out.print(f"{word}: v{verdict.challenger['version']} — {escape(verdict.reason)}")
        if verdict.record_run_id:
            console.print(f"recorded on the version's gate.* tags and in MLflow run {verdict.record_run_id}")
    raise typer.Exit(0 if verdict.promoted else 1)


@app.command()
def rollback(
    model_name: str | None = typer.Option(None, help="registered model (default: the lead close model)"),
    reason: str | None = typer.Option(None, "--reason", help="why: recorded on both versions"),
) -> None:
    """Put the previous champion back (recorded on both versions and as an MLflow run)."""
    from leadradar.training.promotion import rollback as run

    restored, replaced = run(model_settings(model_name), why=reason)
    out.print(f"{restored.name}: champion is v{restored.version} again (v{replaced.version} stepped down)")


@app.command()
def models(
    model_name: str | None = typer.Option(None, help="registered model (default: the lead close model)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per alias"),
) -> None:
    """The champion and the challenger: version, window, test figures, parameter source, the gate's verdict."""
    from dataclasses import asdict

    from leadradar.training.lineup import lineup

    settings = model_settings(model_name)
    entries = lineup(settings)
    if as_json:
        print(json.dumps({e.alias: asdict(e) for e in entries}, default=float, ensure_ascii=False))
        return
    if not entries:
        from leadradar.training.table_scoring import other_models_hint

        hint = other_models_hint(settings)
        raise NotFoundError(f"{settings.mlflow.model_name} has no champion or challenger; run `leadradar train`{hint}")
    table = Table(title=f"{escape(settings.mlflow.model_name)}")
    shown = ("auc", "logloss", "ece")  # all of them with --json
    for col in ("alias", "version", "registered", "window (cutoffs)", *shown, "parameters", "gate"):
        table.add_column(col, justify="right" if col in shown else "left")
    for e in entries:
        window = f"{e.window.get('first_cutoff', '')[:10]} … {e.window.get('last_cutoff', '')[:10]}"
        if "first_cutoff" not in e.window and e.window.get("split"):
            window = f"{e.window['split']} split of a table"
        gate = f"{e.gate.get('verdict', '')} {e.gate.get('at', '')[:16]} {e.gate.get('by', '')}".strip()
        table.add_row(
            e.alias,
            f"v{e.version}",
            e.registered[:16],
            window,
            *(f"{e.metrics[k]:.4f}" if k in e.metrics else "" for k in shown),
            Text(e.params_source),
            Text(gate or "not judged yet"),
        )
    out.print(table)


@app.command()
def retrain(
    until: str | None = typer.Option(None, help="train on what was known by this UTC time (default: now)"),
    as_json: bool = typer.Option(False, "--json", help="print the outcome as one JSON object"),
) -> None:
    """Train a challenger on the event store, run the promotion gate, promote or keep the champion; one at a time."""
    import dataclasses

    from leadradar.training.retrain import retrain as run

    with console.status("retraining"):
        outcome = run(settings_for(), now=parse_time(until, "--until"), trigger="manual")
    if as_json:
        print(json.dumps(dataclasses.asdict(outcome), default=str, ensure_ascii=False))
    else:
        out.print(f"{outcome.outcome}: {outcome.summary}")


@app.command()
def scheduler() -> None:
    """Run the retrain, drift and calibration jobs on their schedule (`lifecycle.*_cron`) until stopped."""
    from leadradar.lifecycle import scheduler_for

    settings = settings_for()
    if not settings.lifecycle.scheduler:
        raise BadValueError("the scheduler is off (lifecycle.scheduler = false); cron or a systemd timer runs the jobs")
    running = scheduler_for(settings, blocking=True)
    lc = settings.lifecycle
    console.print(
        f"in {lc.timezone}: retrain '{lc.retrain_cron}', drift '{lc.drift_cron}', calibration '{lc.calibration_cron}'"
    )
    try:
        running.start()
    except (KeyboardInterrupt, SystemExit):
        running.stop()


@app.command()
def score(
    events: Path | None = typer.Option(
        None, help="events: a Parquet file or a folder of them (default: the event store)"
    ),
    stages: Path | None = typer.Option(
        None, help="CRM stage history: a Parquet file or a folder of them (default: the event store)"
    ),
    as_of: str | None = typer.Option(None, "--as-of", help="score as of this UTC time (default: now)"),
    tenant: str | None = typer.Option(None, help="only this tenant"),
    out_file: Path | None = typer.Option(None, "--out", help="also write the scores (Parquet; CSV too with --table)"),
    items: Path | None = typer.Option(None, help="item catalogue (default: items.parquet beside events)"),
    leads: Path | None = typer.Option(None, help="static lead attributes (default: leads.parquet beside events)"),
    table: Path | None = typer.Option(None, help="or: a table to score (CSV or Parquet, no label needed)"),
    model_name: str | None = typer.Option(None, "--model", help="with --table: the table model whose champion scores"),
) -> None:
    """Score every open lead with the champion; keep scores, reasons, recent events, the funnel and the
    salesperson context in the score store (without files: from the event store, the nightly refresh).

    Re-running for the same as_of (and model version) replaces that run, never duplicates it.
    With --table, score a table's rows with a table model's champion instead: probability, rank, reasons.
    """
    if table is not None:
        score_a_table(table, model_name, out_file, events, stages)
        return
    from leadradar.features.atomic import atomic_write, not_an_input
    from leadradar.features.cutoffs import now_utc
    from leadradar.registry import load_alias
    from leadradar.serving.scoring import score_and_store
    from leadradar.serving.store import ScoreStore

    settings = settings_for()
    when = parse_time(as_of, "--as-of") or now_utc()
    log = radar_log(events, stages, items, leads, settings=settings, until=when, tenant=tenant)
    if out_file:
        not_an_input(out_file, log.paths())
    loaded = load_alias(settings)
    with console.status(f"scoring open leads as of {when:%Y-%m-%d %H:%M} UTC"):
        scores = score_and_store(ScoreStore(settings.score_store_url), log, when, settings, loaded, tenant)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_file, lambda fh: scores.drop(columns="detail", errors="ignore").to_parquet(fh, index=False))
    console.print(
        f"scored {len(scores):,} open leads with {loaded.ref.name} v{loaded.ref.version}"
        f" as of {when:%Y-%m-%d %H:%M} UTC" + (f" → {out_file}" if out_file else "")
    )


def score_a_table(table: Path, model_name: str | None, out_file: Path | None, *logs: Path | None) -> None:
    """`score --table`: the table's rows ranked by a table model's champion, written to --out."""
    from leadradar.features.atomic import not_an_input
    from leadradar.training.table_scoring import score_table, write_scores

    if any(p is not None for p in logs):
        raise BadValueError("give either --events/--stages or --table, not both")
    if out_file is None:
        raise BadValueError("--table needs --out FILE (.csv or .parquet) for the scored rows")
    not_an_input(out_file, {"table": table})
    with console.status(f"scoring {table}"):
        scored, loaded = score_table(table, settings_for(), model_name)
        write_scores(scored, out_file)
    console.print(
        f"scored {len(scored):,} rows with {escape(loaded.ref.name)} v{loaded.ref.version} → {escape(str(out_file))}"
    )


@app.command()
def rank(
    tenant: str = typer.Option(..., help="tenant whose leads to rank"),
    sales: str | None = typer.Option(None, help="only this salesperson's leads"),
    stage: str | None = typer.Option(None, help="only leads at this stage"),
    grade: str | None = typer.Option(None, help="only leads of this grade (A, B, C or D)"),
    limit: int = typer.Option(20, help="rows to show"),
    csv: Path | None = typer.Option(None, help="also write the full filtered list as CSV (UTF-8)"),
    xlsx: Path | None = typer.Option(None, help="also write the full filtered list and its movers as Excel"),
    movers: int = typer.Option(5, help="show the N leads that rose and fell most since the last run (0: none)"),
    lang: str = typer.Option("en", help=LANG_HELP),
) -> None:
    """The tenant's open leads from the latest scoring run, most likely closers first, and the movers."""
    from leadradar.features.atomic import not_an_input
    from leadradar.features.registry import build_registry
    from leadradar.serving.dashboard.messages import translator
    from leadradar.serving.export import write_csv, write_xlsx
    from leadradar.serving.names import NameBook
    from leadradar.serving.ranking import ranked_list
    from leadradar.serving.reasons import ReasonWriter
    from leadradar.serving.store import ScoreStore

    settings = settings_for()
    for option, path in (("--csv", csv), ("--xlsx", xlsx)):
        if path is not None:
            not_an_input(path, {}, option)
    grade, lang = parse_grade(grade), parse_lang(lang) or "en"
    tenant = tenant.strip()
    store = ScoreStore(settings.score_store_url)
    writer = ReasonWriter(build_registry(settings), settings.funnel, settings.serving.hidden_reason_families)
    names = NameBook(settings)(tenant)
    result = ranked_list(
        store, tenant, settings.serving.grade, writer, lang, sales, stage, grade, max(movers, 0), names
    )
    if result.table.empty and not store.runs(tenant):
        raise no_scores(store, tenant)
    label = lambda s: settings.funnel.label(s, lang)
    if csv:
        write_csv(result.table, csv, lang, label)
    if xlsx:
        write_xlsx(result.table, xlsx, lang, label, movers=result.movers)
    t, table = translator(lang), result.table
    as_of = f"{table['as_of'].iloc[0]:%Y-%m-%d %H:%M} UTC" if len(table) else t("rank.latest")
    shown = " ".join(f"{k}={v}" for k, v in (("sales", sales), ("stage", stage), ("grade", grade)) if v)
    title = t(
        "rank.title",
        tenant=tenant,
        n=min(limit, len(table)),
        total=f"{len(table):,}",
        shown=f" ({shown})" if shown else "",
        as_of=as_of,
    )
    out.print(rank_table(table.head(limit), title, label, lang=lang))
    if movers > 0 and result.previous_as_of is not None:
        since = f"{result.previous_as_of:%Y-%m-%d}"
        for frame, key in ((result.up, "rank.rising"), (result.down, "rank.falling")):
            if len(frame):
                out.print(rank_table(frame, t(key, date=since), label, caption=False, lang=lang))
    for path in (csv, xlsx):
        if path:
            console.print(f"wrote {len(table):,} leads → {escape(str(path))}")


@app.command()
def report(
    tenant: str = typer.Option(..., help="tenant to report on"),
    out_file: Path = typer.Option(..., "--out", help="the HTML file to write"),
    lang: str = typer.Option("en", help=LANG_HELP),
    top: int = typer.Option(25, help="leads in the ranked table"),
) -> None:
    """A self-contained HTML report (charts and styles inline, no script) of the latest run, for e-mail."""
    from leadradar.features.atomic import not_an_input
    from leadradar.serving.dashboard.pagedata import PageData
    from leadradar.serving.report import write_report
    from leadradar.serving.store import ScoreStore

    lang, tenant = parse_lang(lang) or "en", tenant.strip()
    not_an_input(out_file, {})
    settings = settings_for()
    store = ScoreStore(settings.score_store_url)
    if not store.runs(tenant):
        raise no_scores(store, tenant)
    path = write_report(PageData(store, settings), tenant, lang, out_file, top)
    console.print(f"report of {escape(tenant)} → {escape(str(path))} ({path.stat().st_size / 1024:.0f} KiB)")


@alerts_app.command("digest")
def alerts_digest(
    tenant: str = typer.Option(..., help="tenant whose digest to make"),
    send: bool = typer.Option(False, "--send", help="send it to the tenant's digest channels instead of printing it"),
    lang: str | None = typer.Option(None, help="en or zh-CN; default: each channel's language (printing: zh-CN)"),
) -> None:
    """The boss's digest as of now: hottest leads, hot leads waiting for a follow-up, follow-up by salesperson,
    predicted against realised closes. Daily by cron, e.g. `30 8 * * * leadradar alerts digest --tenant T --send`."""
    from datetime import UTC, datetime

    from leadradar.features.store import EventStore
    from leadradar.serving.alerts.channels import channels_for
    from leadradar.serving.alerts.digest import digest_message, read_facts
    from leadradar.serving.store import ScoreStore

    lang, tenant = parse_lang(lang), tenant.strip()
    settings = settings_for()
    scores = ScoreStore(settings.score_store_url)
    if not scores.runs(tenant) and scores.live_latest(tenant).empty:
        raise no_scores(scores, tenant)
    events = EventStore.open(settings)
    try:
        facts = read_facts(
            tenant, datetime.now(UTC), settings=settings, scores=scores, events=events, alerts=recorded_alerts(tenant)
        )
    finally:
        events.close()
    link = settings.alerts.channels.dashboard_url.rstrip("/") + "/"
    if not send:
        out.print(escape(digest_message(facts, lang or "zh-CN", link, settings).text))
        return
    configured = {
        c.name or f"{c.kind}#{i + 1}": c for i, c in enumerate(settings.alerts.channels.tenants.get(tenant, []))
    }
    targets = channels_for(settings, tenant, digest=True)
    if not targets:
        raise NotFoundError(f"tenant {tenant!r} has no channel with digest = true in alerts.channels.tenants")
    failed = 0
    for channel, name in targets:
        cfg = configured[name]
        delivery = channel.send(digest_message(facts, lang or cfg.language, link, settings), cfg.recipient or None)
        failed += not delivery.ok
        console.print(f"digest → {escape(name)} ({channel.kind}): {'sent' if delivery.ok else escape(delivery.detail)}")
    if failed:
        raise typer.Exit(1)


def recorded_alerts(tenant: str) -> list:
    """The tenant's alerts of the digest's look-back window, from the outbox."""
    from datetime import UTC, datetime, timedelta

    from leadradar.serving.alerts.outbox import Outbox

    settings = settings_for()
    since = datetime.now(UTC) - timedelta(days=settings.alerts.channels.digest_lookback_days)
    return Outbox(settings.score_store_url, settings.alerts.rules).alerts(tenant, since)


@alerts_app.command("simulate")
def alerts_simulate(
    since: str = typer.Option("30d", help="how much of the stored history to replay, ending at its newest event"),
    tenant: str | None = typer.Option(None, help="one tenant (default: all)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Replay the stored history through the champion, the rules and restraint: alerts per rule and salesperson
    per day, the share of wins alerted before they closed, the median lead time. Run it before switching alerts on."""
    from datetime import timedelta

    from leadradar.features.store import EventStore
    from leadradar.serving.alerts.replay import champion_engine, replay

    days = parse_days(since)
    settings = settings_for()
    store = EventStore.open(settings)
    try:
        engine = champion_engine(settings, store)
        summary = replay(settings, store, engine, timedelta(days=days), tenant).summary()
    except LookupError as exc:
        raise NotFoundError(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(summary))
        return
    out.print(f"{summary['since']} → {summary['until']}: {summary['sessions']:,} sessions, {summary['alerts']}")
    out.print(f"instant alerts per salesperson per day: {summary['alerts_per_sales_per_day']}")
    for rule, n in summary["alerts_per_day_by_rule"].items():
        out.print(f"  {rule:<18} {n:8.2f} a day")
    for who, n in summary["alerts_per_day_by_sales"].items():
        out.print(f"  {escape(who):<18} {n:8.2f} a day")
    out.print(
        f"wins in the period: {summary['wins']}, alerted before the win: {summary['wins_alerted_before_close']}, "
        f"median lead time {summary['median_lead_time_days']} days"
    )


@alerts_app.command("resend")
def alerts_resend(alert_id: int = typer.Argument(..., help="the alert's id (the Alerts page, or the feed)")) -> None:
    """Send one alert again on every channel it went to, now, with a fresh retry window."""
    from datetime import UTC, datetime

    from leadradar.serving.alerts.outbox import Outbox

    settings = settings_for()
    n = Outbox(settings.score_store_url, settings.alerts.rules).resend(alert_id, datetime.now(UTC))
    if not n:
        raise NotFoundError(f"alert {alert_id} has no delivery to re-send (unknown, or it went to the digest)")
    console.print(f"alert {alert_id}: {n} deliver{'y' if n == 1 else 'ies'} queued again")


@alerts_app.command("enable")
def alerts_enable(
    channel: str = typer.Argument(..., help="the channel's name as the outbox's note gives it"),
    tenant: str = typer.Option(..., help="its tenant"),
) -> None:
    """Re-enable a channel the outbox disabled (410, or failing for a day); its waiting alerts go out again."""
    from leadradar.serving.alerts.outbox import Outbox

    settings = settings_for()
    if not Outbox(settings.score_store_url, settings.alerts.rules).enable(tenant, channel):
        raise NotFoundError(f"channel {channel!r} of tenant {tenant!r} is not disabled")
    console.print(f"channel {escape(channel)} of {escape(tenant)} enabled")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="bind address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, min=1, max=65535, help="port (default 3000)"),
) -> None:
    """Start the BentoML scoring service on this machine; this process becomes the server (a signal to it stops it)."""
    settings = settings_for()
    bind, number = host or settings.serving.host, port or settings.serving.port
    if not port_is_free(bind, number):
        raise BadValueError(f"port {number} on {bind} is in use; stop what holds it or pass --port")
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "leadradar.serving.service:LeadRadar",
        "--host",
        bind,
        "--port",
        str(number),
    ]
    env = {**os.environ, "LEADRADAR_HOME": str(settings.data_dir)}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # nosec B606 - our own interpreter with a fixed argument list


def port_is_free(host: str, port: int) -> bool:
    """Whether the server could listen on host:port now (a clear line beats BentoML's 55-line traceback)."""
    import errno
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise BadValueError(f"cannot listen on --host {host!r}: {exc.strerror or exc}") from None
    return True


def key_store():
    from leadradar.serving.auth import KeyStore

    settings = settings_for()
    settings.ensure_dirs()
    return KeyStore(settings.score_store_url)


@keys_app.command("create")
def keys_create(
    tenant: str = typer.Option(..., help="the company the key belongs to"),
    role: str = typer.Option(..., help="system (CRM, card back end), manager, or sales"),
    sales: str | None = typer.Option(None, help="with --role sales: the salesperson"),
    name: str | None = typer.Option(None, help="a note, e.g. which system uses the key"),
) -> None:
    """Create a key; it is printed once and only its hash is kept."""
    key_id, token = key_store().create(tenant, role, name, sales)
    audit_key("key_created", key_id)
    console.print(f"key {key_id} for tenant {escape(tenant)}, role {escape(role)}: store it now, it is not shown again")
    print(token)


@keys_app.command("list")
def keys_list(tenant: str | None = typer.Option(None, help="only this tenant's keys")) -> None:
    """Keys with their tenant, role and state (never the secret)."""
    table = Table(title="API keys")
    for col in ("key id", "tenant", "role", "sales", "name", "created", "state"):
        table.add_column(col)
    for k in key_store().list(tenant):
        table.add_row(
            k["key_id"],
            escape(k["tenant_id"]),
            k["role"],
            escape(k["sales_id"] or ""),
            escape(k["name"] or ""),
            f"{k['created_at']:%Y-%m-%d %H:%M}",
            "revoked" if k["revoked_at"] else "active",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key id shown by `keys list`")) -> None:
    """Revoke a key; the service refuses it from its next cache refresh (seconds)."""
    if not key_store().revoke(key_id):
        raise NotFoundError(f"no active key {key_id!r}; `leadradar keys list` shows the keys")
    audit_key("key_revoked", key_id)
    out.print(f"revoked {escape(key_id)}")


def audit_log():
    from leadradar.serving.audit import AuditLog

    settings = settings_for()
    settings.ensure_dirs()
    return AuditLog(settings.score_store_url)


def cli_actor() -> str:
    """Who acted from the command line, for the audit log: this OS user."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment (some containers)
        return "cli"


def audit_key(action: str, key_id: str) -> None:
    """Keep a key's creation or revocation in the audit log, under its tenant, as done by this OS user."""
    row = next(k for k in key_store().list() if k["key_id"] == key_id)
    audit_log().record(action, row["tenant_id"], cli_actor(), f"key:{key_id}", row["role"])


@app.command()
def forget(
    tenant: str = typer.Option(..., help="the company the lead belongs to"),
    lead: str = typer.Option(..., help="the lead to forget (PIPL deletion on request)"),
    as_json: bool = typer.Option(False, "--json", help="print what was deleted as one JSON object"),
) -> None:
    """Delete a lead's events, stage changes, quarantined items, attributes, scores and timeline everywhere the
    project keeps them; the next training leaves it out; the audit log keeps the act under the lead's hash."""
    from leadradar.features.store import EventStore
    from leadradar.serving.privacy import forget_lead
    from leadradar.serving.store import ScoreStore

    settings = settings_for()
    store = EventStore.open(settings)
    try:
        report = forget_lead(
            settings, store, ScoreStore(settings.score_store_url), audit_log(), tenant, lead, cli_actor()
        )
    finally:
        store.close()
    if as_json:
        print(json.dumps({"tenant_id": report.tenant_id, "lead_hash": report.lead_hash, "deleted": report.deleted}))
    else:
        out.print(
            f"forgot a lead of {escape(report.tenant_id)}: {report.total:,} rows deleted (hash {report.lead_hash[:12]})"
        )


@app.command()
def retention(
    as_json: bool = typer.Option(False, "--json", help="print what was deleted as one JSON object"),
) -> None:
    """Delete events, quarantined items, scores, alerts and kept feature tiles older than `privacy.retention_days`
    (nightly by the scheduler)."""
    from leadradar.features.store import EventStore
    from leadradar.serving.privacy import apply_retention
    from leadradar.serving.store import ScoreStore

    settings = settings_for()
    if settings.privacy.retention_days is None:
        raise BadValueError("privacy.retention_days is not set: everything is kept (LEADRADAR_PRIVACY__RETENTION_DAYS)")
    store = EventStore.open(settings)
    try:
        deleted = apply_retention(settings, store, ScoreStore(settings.score_store_url))
    finally:
        store.close()
    if as_json:
        print(json.dumps(deleted))
    else:
        days = settings.privacy.retention_days
        out.print(f"kept the last {days} days: deleted " + ", ".join(f"{v:,} {k}" for k, v in deleted.items()))


@app.command()
def audit(
    tenant: str = typer.Option(..., help="the company whose audit log to show"),
    limit: int = typer.Option(50, help="rows to show, newest first"),
    as_json: bool = typer.Option(False, "--json", help="print the rows as one JSON object"),
) -> None:
    """Sign-ins, API keys created and revoked, exports and deletions of a tenant: who, when, what."""
    entries = audit_log().read(tenant, limit)
    if as_json:
        rows = [{**e.__dict__, "at": e.at.isoformat()} for e in entries]
        print(json.dumps({"tenant_id": tenant, "entries": rows}, ensure_ascii=False))
        return
    from rich.markup import escape
    from rich.text import Text

    table = Table(title=f"audit log of {escape(tenant)}, newest first")
    for col in ("when (UTC)", "who", "what", "on", "detail"):
        table.add_column(col)
    for e in entries:
        table.add_row(*(Text(v or "") for v in (f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, e.detail)))
    out.print(table)


def user_store():
    from leadradar.serving.users import UserStore

    settings = settings_for()
    settings.ensure_dirs()
    return UserStore(settings.score_store_url)


def new_password(from_stdin: bool) -> str:
    """A password from standard input (for scripts) or typed twice at a hidden prompt."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@users_app.command("create")
def users_create(
    tenant: str = typer.Option(..., help="the company the person works for"),
    name: str = typer.Option(..., help="the user name they sign in with"),
    role: str = typer.Option("manager", help="manager (the dashboard is for managers)"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
) -> None:
    """Create a dashboard account; the password is kept only as a scrypt hash."""
    store = user_store()
    user = store.create(tenant, name, new_password(password_stdin), role)
    login = user.username if store.get(user.username) else f"{user.username}@{user.tenant_id}"
    console.print(
        f"user {user.username} of tenant {escape(user.tenant_id)} ({user.role}) can now sign in at /dashboard"
        f" as {escape(login)}"
    )


USER_NAME = typer.Argument(..., help="the user name, or name@tenant")
USER_TENANT = typer.Option(None, "--tenant", help="the user's tenant, when several tenants use the name")


@users_app.command("password")
def users_password(
    name: str = USER_NAME,
    tenant: str | None = USER_TENANT,
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
) -> None:
    """Set a new password; the user's open sessions end."""
    if not user_store().set_password(name, new_password(password_stdin), tenant):
        raise NotFoundError(f"no user {name!r}; `leadradar users list` shows the users")
    console.print(f"new password set for {escape(name)}")


@users_app.command("list")
def users_list(tenant: str | None = typer.Option(None, help="only this tenant's users")) -> None:
    """Dashboard accounts with their tenant, role and state (never a password)."""
    table = Table(title="dashboard users")
    for col in ("user", "tenant", "role", "created", "state"):
        table.add_column(col)
    for u in user_store().list(tenant):
        table.add_row(
            u["username"],
            escape(u["tenant_id"]),
            u["role"],
            f"{u['created_at']:%Y-%m-%d %H:%M}",
            "disabled" if u["disabled_at"] else "active",
        )
    out.print(table)


@users_app.command("disable")
def users_disable(name: str = USER_NAME, tenant: str | None = USER_TENANT) -> None:
    """Disable an account; its sessions end with the next page it opens."""
    if not user_store().disable(name, tenant):
        raise NotFoundError(f"no active user {name!r}; `leadradar users list` shows the users")
    out.print(f"disabled {escape(name)}")


@users_app.command("enable")
def users_enable(name: str = USER_NAME, tenant: str | None = USER_TENANT) -> None:
    """Let a disabled account sign in again, with the password it had."""
    if not user_store().enable(name, tenant):
        raise NotFoundError(f"no disabled user {name!r}; `leadradar users list` shows the users")
    out.print(f"enabled {escape(name)}")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo_data"), "--out", help="folder for the simulated logs"),
    leads: int = typer.Option(20_000),
    tenants: int = typer.Option(3),
    days: int = typer.Option(455),
    stream_days: int = typer.Option(14, min=1, help="the last days of the log, streamed into the running service"),
    stream_seconds: float = typer.Option(30.0, min=1, help="real seconds the streaming takes (fast-forwarded)"),
) -> None:
    """Run the main job end to end on the embedded defaults (what `make demo` runs)."""
    from leadradar.demo import run_demo

    run_demo(out_dir, leads=leads, tenants=tenants, days=days, stream_days=stream_days, stream_seconds=stream_seconds)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
