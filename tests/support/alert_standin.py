"""A stand-in channel for tests until the real ones (serving/alerts/channels/) are merged: it POSTs the message as
JSON and reads the answer as the real webhook channel does (2xx sent, 410 gone, 5xx and time-outs retried)."""

from __future__ import annotations

import httpx

from leadradar.serving.alerts.alert import Alert, Delivery, Message


class JsonPost:
    kind = "webhook"

    def __init__(self, url: str, per_minute: int = 60, timeout: float = 1.0):
        self.url = url
        self.per_minute = per_minute
        self.timeout = timeout

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        try:
            r = httpx.post(self.url, json={"title": message.title, "text": message.text}, timeout=self.timeout)
        except httpx.TimeoutException:
            return Delivery(ok=False, retry=True, detail="timed out")
        except httpx.HTTPError as exc:
            return Delivery(ok=False, retry=True, detail=str(exc))
        if r.status_code < 300:
            return Delivery(ok=True, status=r.status_code)
        return Delivery(
            ok=False,
            status=r.status_code,
            retry=r.status_code >= 500 or r.status_code == 429,
            gone=r.status_code == 410,
            detail=r.text[:200],
        )


def plain(alert: Alert, lang: str) -> Message:
    """A message with the alert's facts, for the stand-in channel."""
    text = f"{alert.rule} {alert.tenant_id}/{alert.lead_id} p={alert.p_close:.2f}"
    return Message(title=f"{alert.rule} {alert.lead_id}", markdown=text, text=text, html=text, link="", lang="en")
