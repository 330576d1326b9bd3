"""The delivery worker: drains the outbox, one attempt per due delivery, within each channel's rate limit.

Runs as a thread beside rescoring in the service (`drain(now)` is one pass, for tests and the CLI). A channel
that has sent `per_minute` messages in the last minute makes its next delivery wait (not an attempt); a disabled
endpoint's deliveries wait as `disabled`; a lead's alert whose lead no longer consents (`privacy.consent_required`)
is `withheld`; everything else is one `Channel.send`, logged by the outbox.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from leadradar.serving.alerts.alert import Alert, Channel, Delivery, Message
from leadradar.serving.alerts.outbox import Due, Outbox

log = logging.getLogger(__name__)
MINUTE = timedelta(minutes=1)
WITHDRAWN = "withheld: the lead withdrew consent after the alert was decided"
# (tenant, leads, now) -> the leads that consent now, or None when consent is not required.
Consenting = Callable[[str, list[str], datetime], set[str] | None]


class DeliveryWorker:
    """`channel(tenant, name)` finds a configured channel; `render(alert, lang)` words the message;
    `consenting` is asked just before sending, since consent can be withdrawn while a delivery waits."""

    def __init__(
        self,
        outbox: Outbox,
        channel: Callable[[str, str], Channel | None],
        render: Callable[[Alert, str], Message],
        consenting: Consenting | None = None,
    ):
        self.outbox = outbox
        self.channel = channel
        self.render = render
        self.consenting = consenting
        self.sent: dict[tuple[str, str], deque[datetime]] = {}
        self.problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def drain(self, now: datetime | None = None) -> int:
        """One pass over the deliveries due at `now`; how many attempts it made."""
        now = now or datetime.now(UTC)
        made = 0
        dues = self.outbox.due(now, self.outbox.rules.delivery_batch)
        allowed = self._allowed(dues, now)
        for due in dues:
            tenant, name = due.alert.tenant_id, due.target.channel
            consenting = allowed.get(tenant)
            if due.alert.lead_id and consenting is not None and due.alert.lead_id not in consenting:
                self.outbox.withhold(due, now, WITHDRAWN)
                continue
            why = self.outbox.disabled(tenant, name)
            if why is not None:
                self.outbox.postpone(due, now, why)
                continue
            channel = self.channel(tenant, name)
            if channel is None:
                self.outbox.attempted(
                    due, Delivery(ok=False, detail=f"channel {name!r} is no longer configured"), now, 0
                )
                continue
            window = self.sent.setdefault((tenant, name), deque())
            while window and now - window[0] >= MINUTE:
                window.popleft()
            if len(window) >= channel.per_minute:
                self.outbox.postpone(due, window[0] + MINUTE, f"rate limit: {channel.per_minute} a minute")
                continue
            started = time.monotonic()
            try:
                result = channel.send(self.render(due.alert, due.target.lang), due.target.recipient)
            except Exception as exc:  # a channel's bug must not stop the outbox; it is logged as a failed attempt
                log.exception("channel %s raised while sending alert %d", name, due.alert_id)
                result = Delivery(ok=False, retry=True, detail=f"{type(exc).__name__}: {exc}")
            window.append(now)
            self.outbox.attempted(due, result, now, time.monotonic() - started)
            made += 1
        return made

    def _allowed(self, dues: list[Due], now: datetime) -> dict[str, set[str] | None]:
        """Per tenant, the leads of these deliveries that consent now (one store read per tenant and pass)."""
        if self.consenting is None:
            return {}
        leads: dict[str, set[str]] = {}
        for due in dues:
            if due.alert.lead_id:
                leads.setdefault(due.alert.tenant_id, set()).add(due.alert.lead_id)
        return {tenant: self.consenting(tenant, sorted(mine), now) for tenant, mine in leads.items()}

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alert-delivery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        poll = self.outbox.rules.delivery_poll_seconds
        while not self._stop.is_set():
            try:
                self.drain()
                self.problem = None
            except Exception as exc:  # a database that went away: try again on the next pass
                self.problem = f"alert delivery failed: {exc}"
                log.exception("alert delivery failed; retrying")
            self._stop.wait(poll)
