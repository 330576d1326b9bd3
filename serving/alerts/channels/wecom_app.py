"""WeCom (企业微信) application message to one person: the lead's owner hears about it alone.

Follows WeCom's server API documents: "获取access_token" (developer.work.weixin.qq.com/document/path/91039):
`GET <base>/gettoken?corpid=...&corpsecret=...` answers `{"errcode": 0, "access_token": ..., "expires_in": 7200}`,
and the token must be cached (asking too often is throttled) until it expires; "发送应用消息" (document/path/
90236): `POST <base>/message/send?access_token=...` with `{"touser": <userid>, "msgtype": "markdown",
"agentid": <agent id>, "markdown": {"content": ...}}`, answered errcode 0, with any unknown user listed in
`invaliduser`. An expired or invalid token (42001, 40014) is fetched again once at once; 45009 (over the limit)
and -1 (busy) are retried later. An app may send one person 30 messages a minute.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from leadradar.serving.alerts.alert import Delivery, Message
from leadradar.serving.alerts.channels.http import classify, errcode, get_json, post_json
from leadradar.serving.alerts.channels.wecom_robot import MAX_BYTES, clip

RETRY_CODES = frozenset({-1, 45009})
STALE_TOKEN_CODES = frozenset({40014, 42001})
# A token is renewed this long before WeCom says it expires, so one in flight never expires on the way.
TOKEN_MARGIN_SECONDS = 300.0


@dataclass
class WeComApp:
    """One WeCom application; `url` is the API base (https://qyapi.weixin.qq.com/cgi-bin), `secret` the corpsecret."""

    url: str
    corp_id: str
    secret: str
    agent_id: int
    per_minute: int = 30
    timeout: float = 10.0
    kind: str = field(default="wecom_app", init=False)
    token_fetches: int = field(default=0, init=False)
    _token: tuple[str, float] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """The markdown form to one WeCom user; no user known for the salesperson is a failure, not a retry."""
        if not recipient:
            return Delivery(ok=False, detail="no WeCom user id for this salesperson (alerts.channels.wecom_users)")
        body = {
            "touser": recipient,
            "msgtype": "markdown",
            "agentid": self.agent_id,
            "markdown": {"content": clip(message.markdown, MAX_BYTES)},
        }
        payload = json.dumps(body, ensure_ascii=False).encode()
        with httpx.Client(timeout=self.timeout) as client:
            fresh = False
            while True:
                token = self._access_token(client, fresh=fresh)
                if isinstance(token, Delivery):
                    return token
                answer = post_json(client, f"{self.url.rstrip('/')}/message/send?access_token={token}", payload)
                if isinstance(answer, Delivery):
                    return answer
                status, got = answer
                if fresh or errcode(got) not in STALE_TOKEN_CODES:
                    break
                fresh = True
        return _unknown_user(classify(status, got, code_of=errcode, retry_codes=RETRY_CODES), got)

    def _access_token(self, client: httpx.Client, fresh: bool) -> str | Delivery:
        with self._lock:
            if self._token and not fresh and time.monotonic() < self._token[1]:
                return self._token[0]
            answer = get_json(
                client, f"{self.url.rstrip('/')}/gettoken", {"corpid": self.corp_id, "corpsecret": self.secret}
            )
            if isinstance(answer, Delivery):
                return answer
            self.token_fetches += 1
            status, body = answer
            got = classify(status, body, code_of=errcode, retry_codes=RETRY_CODES)
            if not got.ok or not isinstance(body, dict) or not body.get("access_token"):
                return Delivery(ok=False, status=status, retry=got.retry, detail=f"gettoken: {got.detail}")
            lifetime = float(body.get("expires_in") or 7200)
            self._token = (str(body["access_token"]), time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS))
            return self._token[0]


def _unknown_user(delivery: Delivery, body: Any) -> Delivery:
    """errcode 0 with the user in `invaliduser` reached nobody."""
    if delivery.ok and isinstance(body, dict) and body.get("invaliduser"):
        return Delivery(ok=False, status=delivery.status, detail=f"unknown WeCom user {body['invaliduser']!r}")
    return delivery
