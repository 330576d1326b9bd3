"""The `with` protocol of the servers the tests start (PostgreSQL, MLflow, Spark, service replicas): a start that
fails half-way stops what it had already started, so no process outlives a failed fixture."""

from __future__ import annotations

from typing import Self


class Started:
    """Subclasses define `start` (returning self once ready) and `stop` (safe on a half-started server)."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
