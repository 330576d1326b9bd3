"""The model registry, one module for training and serving: MLflow set-up, aliases, the local bundle cache.

Training registers versions and moves the `champion` and `challenger` aliases; serving resolves an
alias, keeps a local copy of its bundle, and falls back to that copy (or to the model a Bento was built
with) when the registry is out of reach. Both import this module; neither imports the other.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import requests
import sqlalchemy
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from leadradar.config import Settings, create_private_file, quiet_environment, sqlite_file
from leadradar.errors import NotFoundError, UserError
from leadradar.models.bundle import ARTIFACT_KEY
from leadradar.models.funnel import FunnelModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"
# The champion's bundle inside BentoML's model store, when the service runs from a built Bento.
BENTO_MODEL_TAG = "leadradar-bundle"


class RegistryUnreachableError(UserError, ConnectionError):
    """The configured MLflow tracking server does not answer."""


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def require_server(uri: str, timeout_s: float) -> None:
    """One quick look at an MLflow server's /health, so that an outage is one clear line rather than minutes of
    MLflow's own retries; a server also proxies the artifacts, so nothing is written until it answers."""
    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise RegistryUnreachableError(
            f"the MLflow server at {uri} is unreachable ({type(exc).__name__}); nothing was registered or moved: "
            "start it, or point LEADRADAR_MLFLOW__TRACKING_URI at one that runs"
        ) from exc


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the configured store and make sure the experiment exists; returns its id.

    A server keeps its own artifact root (`--serve-artifacts`), so experiments it holds get no local location."""
    quiet_environment()
    settings.ensure_dirs()
    uri = settings.tracking_uri
    served = is_server(uri)
    if served:
        require_server(uri, settings.mlflow.server_timeout_s)
    else:
        create_sqlite_registry(uri, settings.artifact_location)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if exp is None:
        location = None if served else settings.artifact_location
        exp_id = mlflow.create_experiment(settings.mlflow.experiment, artifact_location=location)
    else:
        exp_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return str(exp_id)


# SQLite registry files this process has seen whole; a file is not made half again once whole.
_WHOLE: set[Path] = set()


def _holds_tables(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _complete(path: Path) -> bool:
    """Every table MLflow's schema declares is in the file (its own check, as its store makes on opening).

    A whole file recorded at an older schema than this MLflow's is one line with the command that brings it up to
    date: MLflow asks for a backup first, so it is not upgraded behind the user's back."""
    from mlflow.store.db.utils import _all_tables_exist, _verify_schema

    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        if not _all_tables_exist(engine):
            return False
        _verify_schema(engine)
        return True
    except MlflowException as exc:
        raise UserError(
            f"{path}: {exc.message.split('. ')[0]}, for MLflow {mlflow.__version__}; back the file up, then run "
            f"`mlflow db upgrade sqlite:///{path}`"
        ) from exc
    except sqlalchemy.exc.DatabaseError as exc:
        if isinstance(exc, sqlalchemy.exc.OperationalError):  # locked, unreadable: SQLite's own words say it
            raise
        raise UserError(
            f"{path} is not a database SQLite can read ({exc.orig}); it is left as it is: restore the registry "
            "from a copy, or move the file away and a new registry is made"
        ) from exc
    finally:
        engine.dispose()


def _seen_whole(path: Path) -> bool:
    """Whole now, or already seen whole by this process (a file is not made half again once whole)."""
    if path in _WHOLE:
        return True
    if _holds_tables(path) and _complete(path):
        _WHOLE.add(path)
        return True
    return False


def _holds_work(path: Path) -> bool:
    """Any run or registered model in a half-made file: then it is not ours to move aside."""
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
            return any(
                connection.execute(sqlalchemy.text(query)).first() is not None
                for table, query in (
                    ("runs", "SELECT 1 FROM runs LIMIT 1"),
                    ("registered_models", "SELECT 1 FROM registered_models LIMIT 1"),
                )
                if table in tables
            )
    finally:
        engine.dispose()


def _build_schema(path: Path, artifact_location: str) -> None:
    """MLflow's own opening of a store: creates its tables, or brings an older file's up to date."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    uri = f"sqlite:///{path}"
    try:
        SqlAlchemyStore(uri, artifact_location)
    finally:  # MLflow keeps one engine per URI in the process; this file is renamed or removed next
        engine = SqlAlchemyStore._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()


# This process's new registry without its rows, as SQLite's image of the file: the first new registry a process
# makes runs MLflow's fifty migrations (about a second), later ones start from the image (about 30 ms; a test run
# makes some seventy).
_EMPTY_IMAGE: list[bytes] = []
_IMAGE_LOCK = threading.Lock()


def _new_registry(fresh: Path, artifact_location: str) -> None:
    """A new registry in `fresh`: MLflow builds its schema the first time in a process; later ones start from the
    image of that schema, and MLflow's own opening checks it and adds its Default experiment at `artifact_location`."""
    create_private_file(fresh)
    with _IMAGE_LOCK:
        image = _EMPTY_IMAGE[0] if _EMPTY_IMAGE else None
    if image is not None:
        fresh.write_bytes(image)
    _build_schema(fresh, artifact_location)
    if image is None:
        image = _without_rows(fresh)
        with _IMAGE_LOCK:
            _EMPTY_IMAGE[:] = _EMPTY_IMAGE or [image]


def _without_rows(path: Path) -> bytes:
    """The file's image with its experiments taken out (the one row it holds that names this registry's place)."""
    with sqlite3.connect(path) as source:
        memory = sqlite3.connect(":memory:")
        source.backup(memory)
    source.close()
    with memory:
        memory.execute("DELETE FROM experiments")
    image = memory.serialize()
    memory.close()
    return image


def _copy_of(path: Path, fresh: Path) -> None:
    """Through SQLite's backup, so a journal left by a killed writer is rolled back in the copy, not lost."""
    create_private_file(fresh)
    with sqlite3.connect(path) as source, sqlite3.connect(fresh) as target:
        source.backup(target)
    source.close()
    target.close()


def create_sqlite_registry(uri: str, artifact_location: str) -> None:
    """Make or change a SQLite MLflow file whole or not at all: MLflow builds its schema in about fifty migrations,
    and a process killed among them left a file that no later run could open ("table logged_models already exists").

    The schema is built in a file beside it (a copy, when one exists; `_new_registry` when none) and renamed into
    place under a lock. A file MLflow cannot open that holds no run and no model is moved aside (kept, named in a
    warning) and made again."""
    path = sqlite_file(uri)
    if path is None or _seen_whole(path):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _seen_whole(path):  # another process made it while this one waited
            return
        for stale in path.parent.glob(f".{path.name}.creating-*"):
            stale.unlink(missing_ok=True)
        fresh = path.with_name(f".{path.name}.creating-{os.getpid()}")
        try:
            if _holds_tables(path):
                _copy_of(path, fresh)
                _build_schema(fresh, artifact_location)
            else:
                _new_registry(fresh, artifact_location)
        except (sqlalchemy.exc.SQLAlchemyError, MlflowException) as exc:
            fresh.unlink()
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            if _holds_work(path):
                raise UserError(
                    f"{path}: MLflow cannot open this registry ({reason}) and it holds runs, so it is left as it is; "
                    "restore it from a copy, or bring it up to date with `mlflow db upgrade`"
                ) from exc
            aside = path.with_name(f"{path.name}.half-made-{time.strftime('%Y%m%dT%H%M%S')}")
            os.replace(path, aside)
            log.warning("%s could not be opened (%s) and holds no run: moved to %s, made again", path, reason, aside)
            _new_registry(fresh, artifact_location)
        os.replace(fresh, path)
        _WHOLE.add(path)


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def version_for_alias(client: MlflowClient, name: str, alias: str) -> ModelRef | None:
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id), alias=alias)


def model_version(client: MlflowClient, name: str, version: str) -> ModelRef:
    mv = client.get_model_version(name, version)
    return ModelRef(name=name, version=str(mv.version), run_id=str(mv.run_id))


def set_alias(client: MlflowClient, ref: ModelRef, alias: str) -> ModelRef:
    client.set_registered_model_alias(ref.name, alias, ref.version)
    return ModelRef(ref.name, ref.version, ref.run_id, alias)


def champion_history(client: MlflowClient, name: str) -> list[str]:
    """Versions that were champion before the current one, oldest first."""
    tags = client.get_registered_model(name).tags
    raw = tags.get(HISTORY_TAG, "")
    return [v for v in raw.split(",") if v]


def crown(client: MlflowClient, ref: ModelRef) -> ModelRef:
    """Make `ref` the champion, remembering the one it replaces so a rollback can bring it back."""
    current = version_for_alias(client, ref.name, CHAMPION)
    if current is not None and current.version != ref.version:
        history = [*champion_history(client, ref.name), current.version]
        client.set_registered_model_tag(ref.name, HISTORY_TAG, ",".join(history))
    crowned = set_alias(client, ref, CHAMPION)
    challenger = version_for_alias(client, ref.name, CHALLENGER)
    if challenger is not None and challenger.version == ref.version:
        client.delete_registered_model_alias(ref.name, CHALLENGER)
    return crowned


def uncrown(client: MlflowClient, name: str) -> tuple[ModelRef, ModelRef]:
    """Put the previous champion back; returns (restored, replaced)."""
    current = version_for_alias(client, name, CHAMPION)
    history = champion_history(client, name) if current is not None else []
    if not history or current is None:
        raise NotFoundError(f"{name} has no previous champion to roll back to")
    previous = model_version(client, name, history[-1])
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history[:-1]))
    return set_alias(client, previous, CHAMPION), current


@dataclass(frozen=True)
class LoadedModel:
    ref: ModelRef
    model: FunnelModel
    source: str  # "registry", "local copy" or "bundled in the Bento (...)"

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.meta_ or {}


class NoModelError(UserError, RuntimeError):
    """No model to score with: nothing registered under the alias and no local copy."""


def _cache_dir(settings: Settings, ref: ModelRef) -> Path:
    return settings.model_cache_dir / ref.name / ref.version


def _pointer(settings: Settings, alias: str) -> Path:
    return settings.model_cache_dir / f"{settings.mlflow.model_name}@{alias}.json"


def resolve(settings: Settings, alias: str = CHAMPION) -> ModelRef | None:
    """Which version the alias points at now; None if the alias is not set."""
    configure_mlflow(settings)
    return version_for_alias(MlflowClient(), settings.mlflow.model_name, alias)


def fetch(settings: Settings, ref: ModelRef) -> Path:
    """Download a version's bundle into the local cache once; later loads read the copy."""
    target = _cache_dir(settings, ref)
    bundle = target / "bundle"
    if (bundle / "model.json").exists():
        return bundle
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref.uri, dst_path=str(tmp)))
    # The shallowest model.json is the bundle; deeper ones are models kept beside it (the backtest model).
    found = min(local.rglob("model.json"), key=lambda f: len(f.parts), default=None)
    if found is None:
        raise NoModelError(f"{ref.uri} holds no funnel bundle ({ARTIFACT_KEY}/model.json)")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    shutil.move(str(found.parent), str(bundle))
    shutil.rmtree(tmp, ignore_errors=True)
    return bundle


def load_version(settings: Settings, ref: ModelRef) -> FunnelModel:
    """A registered version's model, through the local cache."""
    return FunnelModel.load(fetch(settings, ref))


def load_alias(settings: Settings, alias: str = CHAMPION) -> LoadedModel:
    """The model behind the alias; if the registry cannot be reached, the last good local copy."""
    pointer = _pointer(settings, alias)
    try:
        ref = resolve(settings, alias)
    except Exception as exc:  # registry down or unreadable: serve what we had
        log.warning("model registry unreachable (%s); trying the local copy", exc)
        if pointer.exists():
            return _load_local(settings, pointer)
        bundled = load_bundled()
        if bundled is not None:
            return bundled
        raise NoModelError(f"registry unreachable and no local copy at {pointer}") from exc
    if ref is None:
        bundled = load_bundled()
        if bundled is not None:
            return bundled
        raise NoModelError(
            f"no model has the alias '{alias}' in {settings.mlflow.model_name}; "
            "run `leadradar train` and `leadradar promote` first"
        )
    bundle = fetch(settings, ref)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    pointer.write_text(json.dumps({"name": ref.name, "version": ref.version, "run_id": ref.run_id, "alias": alias}))
    return LoadedModel(ref=ref, model=FunnelModel.load(bundle), source="registry")


def load_bundled() -> LoadedModel | None:
    """The model a Bento was built with (`leadradar bento build`), when the service runs from one."""
    try:
        import bentoml

        stored = bentoml.models.get(f"{BENTO_MODEL_TAG}:latest")
    except Exception:
        return None
    path = Path(stored.path) / "bundle"
    if not (path / "model.json").exists():
        return None
    labels = stored.info.labels
    ref = ModelRef(
        labels.get("registered_model", ""),
        labels.get("version", ""),
        str(stored.info.metadata.get("run_id", "")),
        labels.get("alias"),
    )
    return LoadedModel(ref=ref, model=FunnelModel.load(path), source=f"bundled in the Bento ({stored.tag})")


def _load_local(settings: Settings, pointer: Path) -> LoadedModel:
    ref = ModelRef(**json.loads(pointer.read_text()))
    return LoadedModel(ref=ref, model=FunnelModel.load(_cache_dir(settings, ref) / "bundle"), source="local copy")
