"""DingTalk (钉钉) custom robot: a markdown message to the robot's webhook, signed with HMAC-SHA256.

Follows DingTalk's custom robot documents (open.dingtalk.com/document/robots/custom-robot-access and
.../customize-robot-security-settings, "加签"): the string to sign is `timestamp + "\\n" + secret` with the
timestamp in milliseconds (within an hour of DingTalk's clock); the signature is base64(HmacSHA256(key=secret,
message=that string)), URL-encoded, appended to the webhook URL as `&timestamp=...&sign=...`. The body is
`{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}`, answered `{"errcode": 0, "errmsg": "ok"}`.
A robot takes 20 messages a minute; beyond that it answers errcode 130101 ("send too fast") and is throttled for
10 minutes, and 90030 ("webhook over limit") is a quota reached: both are retried later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote_plus

import httpx

from leadradar.serving.alerts.alert import Delivery, Message
from leadradar.serving.alerts.channels.http import classify, errcode, post_json

RETRY_CODES = frozenset({-1, 130101, 90030})


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` parameter: URL-encoded base64 of HmacSHA256(secret, "<timestamp>\\n<secret>")."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


@dataclass
class DingTalkRobot:
    """One DingTalk group robot; `secret` empty for a robot secured by keyword or IP instead of signing."""

    url: str
    secret: str = ""
    per_minute: int = 20
    timeout: float = 10.0
    kind: str = field(default="dingtalk", init=False)

    def signed_url(self, now_ms: int | None = None) -> str:
        """The webhook URL with `timestamp` and `sign` when the robot signs."""
        if not self.secret:
            return self.url
        ts = int(time.time() * 1000) if now_ms is None else now_ms
        joiner = "&" if "?" in self.url else "?"
        return f"{self.url}{joiner}timestamp={ts}&sign={dingtalk_sign(self.secret, ts)}"

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """POST the markdown form to the group."""
        body = {"msgtype": "markdown", "markdown": {"title": message.title, "text": message.markdown}}
        with httpx.Client(timeout=self.timeout) as client:
            answer = post_json(client, self.signed_url(), json.dumps(body, ensure_ascii=False).encode())
        if isinstance(answer, Delivery):
            return answer
        return classify(*answer, code_of=errcode, retry_codes=RETRY_CODES)
