"""A generic webhook signed as the Standard Webhooks specification asks, so any receiver can verify it.

Follows Standard Webhooks 1.0.0 (github.com/standard-webhooks/standard-webhooks, spec/standard-webhooks.md):
three headers, `webhook-id` (the message's id, the same on every retry, for the receiver to drop duplicates),
`webhook-timestamp` (integer Unix seconds), `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "<id>.<timestamp>.
<body>")), where the key is the base64 after the secret's `whsec_` prefix. A receiver answers 2xx to accept; the
spec asks senders to retry other answers and to disable an endpoint that answers 410 Gone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from leadradar.errors import UserError
from leadradar.serving.alerts.alert import Delivery, Message
from leadradar.serving.alerts.channels.http import classify, post_json

PREFIX = "whsec_"


class BadWebhookSecret(UserError):
    """A Standard Webhooks secret that is not `whsec_` followed by base64."""


def secret_key(secret: str) -> bytes:
    """The HMAC key a `whsec_...` secret stands for."""
    try:
        return base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise BadWebhookSecret(
            "alerts.channels: a webhook secret must be 'whsec_' followed by base64 (Standard Webhooks)"
        ) from None


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: `v1,` and the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>"."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def message_id(message: Message) -> str:
    """The same id for the same message, so a retry is recognised as one."""
    digest = hashlib.sha256("\x1f".join((message.title, message.text, message.link, message.lang)).encode())
    return "msg_" + digest.hexdigest()[:32]


def payload(message: Message, now: int) -> dict[str, Any]:
    """What the receiver gets: the event type, when, and the message in every form."""
    return {
        "type": "leadradar.alert",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "data": {
            "title": message.title,
            "text": message.text,
            "markdown": message.markdown,
            "link": message.link,
            "lang": message.lang,
        },
    }


@dataclass
class StandardWebhook:
    """A receiver of ours or a customer's; unsigned when no secret is configured."""

    url: str
    secret: str = ""
    per_minute: int = 60
    timeout: float = 10.0
    kind: str = field(default="webhook", init=False)

    def __post_init__(self) -> None:
        self._key = secret_key(self.secret) if self.secret else None

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """POST the message, signed."""
        now = int(time.time())
        body = json.dumps(payload(message, now), ensure_ascii=False).encode()
        msg_id = message_id(message)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(now)}
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, msg_id, now, body)
        with httpx.Client(timeout=self.timeout) as client:
            answer = post_json(client, self.url, body, headers)
        return answer if isinstance(answer, Delivery) else classify(*answer)
