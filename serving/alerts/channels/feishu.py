"""Feishu / Lark custom bot: an interactive card with a markdown element, the signature in the body.

Follows Feishu's custom bot guide (open.feishu.cn/document/client-docs/bot-v3/add-custom-bot, "签名校验";
Lark: open.larksuite.com, the same API): with signing on, the body carries `timestamp` (seconds, within an
hour) and `sign` = base64(HmacSHA256(key = timestamp + "\\n" + secret, message = empty)). The answer is
`{"code": 0, "msg": "success"}` (older bots answer `{"StatusCode": 0}`). A custom bot takes 100 messages a
minute and 5 a second per tenant (the rate-limit document, open.feishu.cn/document/server-docs/api-call-guide/
frequency-control): over it answers 429 or code 11232 / 9499 / 99991400, all retried later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from leadradar.serving.alerts.alert import Delivery, Message
from leadradar.serving.alerts.channels.http import _int, classify, post_json

RETRY_CODES = frozenset({9499, 11232, 99991400})


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """The body's `sign`: base64 of HmacSHA256 keyed by "<timestamp>\\n<secret>" over an empty message."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def feishu_code(body: Any) -> int | None:
    """`code`, or `StatusCode` from bots made before the v2 webhook."""
    if not isinstance(body, dict):
        return None
    return _int(body.get("code", body.get("StatusCode")))


@dataclass
class FeishuBot:
    """One Feishu or Lark group bot."""

    url: str
    secret: str = ""
    per_minute: int = 100
    timeout: float = 10.0
    kind: str = field(default="feishu", init=False)

    def body(self, message: Message, now_s: int | None = None) -> dict[str, Any]:
        """The card, signed when the bot has a secret."""
        card = {
            "header": {"title": {"tag": "plain_text", "content": message.title}},
            "elements": [{"tag": "markdown", "content": message.markdown}],
        }
        body: dict[str, Any] = {"msg_type": "interactive", "card": card}
        if self.secret:
            ts = int(time.time()) if now_s is None else now_s
            body = {"timestamp": str(ts), "sign": feishu_sign(self.secret, ts), **body}
        return body

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """POST the card to the group."""
        with httpx.Client(timeout=self.timeout) as client:
            payload = json.dumps(self.body(message), ensure_ascii=False).encode()
            answer = post_json(client, self.url, payload)
        if isinstance(answer, Delivery):
            return answer
        return classify(*answer, code_of=feishu_code, retry_codes=RETRY_CODES)
