"""The model the service answers with, kept current: it follows the `champion` alias without downtime.

A background thread polls the registry. When the alias moves, the new version is loaded completely
first and then swapped in with one reference assignment, so a request in flight finishes on the
model it started with. If the registry cannot be reached at start, the last good local copy serves,
and `/v1/model` says so. The service starts and stops the thread from BentoML's lifecycle hooks
(serving/service.py), so a worker that shuts down leaves no poller behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from leadradar.config import Settings
from leadradar.registry import CHAMPION, LoadedModel, NoModelError, load_alias, resolve

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelHolder(Generic[T]):
    """Holds `build(loaded_model)` for the current champion; `current` is None until a model exists."""

    def __init__(
        self,
        settings: Settings,
        build: Callable[[LoadedModel], T],
        poll_seconds: float | None = None,
        alias: str = CHAMPION,
    ):
        self.settings = settings
        self.build = build
        self.alias = alias
        self.poll_seconds = poll_seconds if poll_seconds is not None else settings.serving.model_poll_seconds
        self.current: T | None = None
        self.loaded: LoadedModel | None = None
        self.loaded_at: datetime | None = None
        self.problem: str | None = None
        self.swaps = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._poller: threading.Thread | None = None
        self.refresh()

    def start(self) -> None:
        """Follow the alias in a background thread (every `poll_seconds`; never when that is 0)."""
        if self.poll_seconds <= 0 or self.polling:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll, name="champion-poll", daemon=True)
        self._poller.start()

    @property
    def polling(self) -> bool:
        """Whether the poll thread runs: the lifecycle tests read it, a stopped worker must say False."""
        return self._poller is not None and self._poller.is_alive()

    def refresh(self) -> bool:
        """Load the alias's version if it differs from the one served; True when a new model went in."""
        with self._lock:
            try:
                loaded = load_alias(self.settings, self.alias)
            except NoModelError as exc:
                self.problem = str(exc)
                log.error("no model to serve: %s", exc)
                return False
            except Exception as exc:  # a half-written registry or a broken bundle: keep serving the old one
                self.problem = f"could not load {self.alias}: {exc}"
                log.exception("loading the %s failed; still serving the previous model", self.alias)
                return False
            if (
                self.loaded is not None
                and loaded.ref.version == self.loaded.ref.version
                and loaded.source == self.loaded.source
            ):
                self.problem = None if loaded.source == "registry" else self.problem
                return False
            built = self.build(loaded)
            self.current, self.loaded = built, loaded
            self.loaded_at = datetime.now(UTC)
            self.problem = None if loaded.source == "registry" else "registry unreachable: serving the last local copy"
            self.swaps += 1
            log.info("now serving %s v%s (%s)", loaded.ref.name, loaded.ref.version, loaded.source)
            return True

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                ref = resolve(self.settings, self.alias)
            except Exception as exc:
                self.problem = f"registry unreachable since {datetime.now(UTC):%H:%M:%S} UTC: {exc}"
                continue
            if ref is not None and (
                self.loaded is None or ref.version != self.loaded.ref.version or self.loaded.source != "registry"
            ):
                self.refresh()

    def stop(self, timeout: float = 10.0) -> None:
        """End the poll thread and wait for it, so a load under way finishes before the worker exits."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            if self._poller.is_alive():
                log.warning("the champion poll thread did not end within %.0f s", timeout)
            else:
                log.info("stopped following the %s alias", self.alias)

    def status(self) -> dict:
        loaded = self.loaded
        return {
            "ready": self.current is not None,
            "name": loaded.ref.name if loaded else self.settings.mlflow.model_name,
            "version": loaded.ref.version if loaded else None,
            "alias": self.alias,
            "source": loaded.source if loaded else None,
            "loaded_at": self.loaded_at.isoformat() if self.loaded_at else None,
            "problem": self.problem,
            "swaps": self.swaps,
            "checked_every_s": self.poll_seconds,
            "since_start_s": round(time.monotonic() - _STARTED, 1),
        }


_STARTED = time.monotonic()
