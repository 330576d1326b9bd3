"""Several service processes sharing one PostgreSQL (events, scores, keys), as replicas behind a balancer run.

Only the first replica rescores (`serving.rescore=false` on the others): every rescoring process would
rescore every lead. The stores' tables are made here, before any replica starts, so that no two replicas
race to create them.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from leadradar.config import Settings
from leadradar.features.store import EventStore
from leadradar.serving.audit import AuditLog
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import ServiceProcess
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore
from tests.support.started import Started


@dataclass
class SharedStores:
    """The URLs every replica is given, and the environment that says so."""

    events_url: str
    scores_url: str

    @classmethod
    def on(cls, pg, name: str) -> SharedStores:
        """Two fresh databases on the PostgreSQL server `pg` (tests/support/postgres.py)."""
        return cls(pg.create_database(f"{name}_events"), pg.create_database(f"{name}_scores"))

    def env(self) -> dict[str, str]:
        return {"LEADRADAR_STORE__URL": self.events_url, "LEADRADAR_SERVING__SCORE_STORE_URL": self.scores_url}

    def prepare(self, settings: Settings) -> None:
        """Create every table the service uses, once, from this process."""
        EventStore(self.events_url, settings).close()
        ScoreStore(self.scores_url).engine.dispose()
        KeyStore(self.scores_url)
        AuditLog(self.scores_url)
        UserStore(self.scores_url)


@dataclass
class Replicas(Started):
    """`with Replicas(settings, stores, 2, env=...) as r:` starts the replicas one after the other."""

    settings: Settings
    stores: SharedStores
    count: int = 2
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    require_ready: bool = True
    processes: list[ServiceProcess] = field(default_factory=list)

    def start(self) -> Replicas:
        self.stores.prepare(self.settings)
        for i in range(self.count):
            env = {**self.env, **self.stores.env(), "LEADRADAR_SERVING__RESCORE": "true" if i == 0 else "false"}
            log = (self.log_dir or self.settings.data_dir) / f"replica-{i + 1}.log"
            svc = ServiceProcess(self.settings, env=env, log_file=log, require_ready=self.require_ready)
            self.processes.append(svc.start())
        return self

    @property
    def urls(self) -> list[str]:
        return [svc.url for svc in self.processes]

    def stop(self) -> None:
        with ExitStack() as stack:
            for svc in self.processes:
                stack.callback(svc.stop)
