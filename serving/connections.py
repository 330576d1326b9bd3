"""Deadlines for receiving a request, which uvicorn does not have: a connection that sends half a request
line, or half a body, and stalls is closed instead of being held for ever (slowloris).

uvicorn's only timeout is keep-alive, armed after a response and cancelled by any byte that arrives; its
issue #157 asks for these two since 2018. BentoML builds uvicorn's `Config` itself, with no way to pass
a protocol class, so `install` swaps the class uvicorn resolves for `http="auto"` (httptools here, h11
without it) for a subclass that adds the deadlines. The service module calls it on import, which in each
worker happens before uvicorn loads its config.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
MARK = "_leadradar_deadlines"


def with_deadlines(base: Any, header_seconds: float, body_seconds: float, keep_alive_seconds: float) -> type:
    """`base` (a uvicorn HTTP protocol class) closing connections whose request is not in on time.

    The header deadline starts when the connection opens or the first byte of a further request arrives
    (idle time between requests is keep-alive's); the body deadline when the headers are complete. Both
    are absolute, so a byte now and then does not keep a connection.
    """

    class DeadlineProtocol(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.timeout_keep_alive = keep_alive_seconds
            self._phase: tuple[str, Any] | None = None
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._watch(data_arrived=True)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch(data_arrived=True)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch(data_arrived=False)

        def connection_lost(self, exc: Exception | None) -> None:
            self._arm(None)
            super().connection_lost(exc)

        def _watch(self, data_arrived: bool) -> None:
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                phase = ("body", cycle) if cycle.more_body else None
            else:
                phase = ("headers", cycle) if data_arrived else None
            if phase != self._phase:
                self._arm(phase)

        def _arm(self, phase: tuple[str, Any] | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            self._phase = phase
            if phase is not None and not self.transport.is_closing():
                seconds = header_seconds if phase[0] == "headers" else body_seconds
                self._deadline = asyncio.get_running_loop().call_later(seconds, self._expired, phase[0], seconds)

        def _expired(self, part: str, seconds: float) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                log.warning("closed a connection: the request's %s were not in within %g s", part, seconds)
                self.transport.close()

    setattr(DeadlineProtocol, MARK, True)
    DeadlineProtocol.__name__ = DeadlineProtocol.__qualname__ = f"Deadline{base.__name__}"
    return DeadlineProtocol


def install(header_seconds: float, body_seconds: float, keep_alive_seconds: float) -> None:
    """Make uvicorn's `http="auto"` protocol the one with deadlines (once per process; later calls re-set them)."""
    import uvicorn.protocols.http.auto as auto

    base = auto.AutoHTTPProtocol
    while getattr(base, MARK, False):
        base = base.__mro__[1]
    auto.AutoHTTPProtocol = with_deadlines(base, header_seconds, body_seconds, keep_alive_seconds)
