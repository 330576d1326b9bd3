"""WeCom (企业微信) group robot: a markdown message POSTed to the robot's webhook URL.

Follows the WeCom group robot document (developer.work.weixin.qq.com/document/path/91770, "群机器人配置说明"):
`POST <webhook url>` with `{"msgtype": "markdown", "markdown": {"content": ...}}` (UTF-8, content at most 4096
bytes), answered `{"errcode": 0, "errmsg": "ok"}`; a robot takes at most 20 messages a minute, and going over
answers errcode 45009 (the API's "接口调用超过限制"), retried later, as is -1 (system busy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from leadradar.serving.alerts.alert import Delivery, Message
from leadradar.serving.alerts.channels.http import classify, errcode, post_json

MAX_BYTES = 4096
RETRY_CODES = frozenset({-1, 45009})


def clip(text: str, limit: int) -> str:
    """The text cut to at most `limit` UTF-8 bytes, on a character boundary."""
    data = text.encode()
    return text if len(data) <= limit else data[: limit - 3].decode(errors="ignore") + "..."


@dataclass
class WeComRobot:
    """One WeCom group robot; the recipient is the group, so `recipient` is ignored."""

    url: str
    per_minute: int = 20
    timeout: float = 10.0
    kind: str = field(default="wecom_robot", init=False)

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """POST the markdown form (the one without personal data) to the robot."""
        body = {"msgtype": "markdown", "markdown": {"content": clip(message.markdown, MAX_BYTES)}}
        with httpx.Client(timeout=self.timeout) as client:
            answer = post_json(client, self.url, json.dumps(body, ensure_ascii=False).encode())
        if isinstance(answer, Delivery):
            return answer
        return classify(*answer, code_of=errcode, retry_codes=RETRY_CODES)
