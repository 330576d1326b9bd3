"""Local receivers for the alert channels: an HTTP server that checks each platform's documented request and
verifies its signature, and an SMTP server. Verification is written from the platforms' documents, apart from
the senders in serving/alerts/channels/, so a sender that signs the wrong string fails here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    problems: list[str]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _b64_hmac(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def check_wecom_robot(r: Received, secret: str) -> list[str]:
    """developer.work.weixin.qq.com/document/path/91770: msgtype markdown, markdown.content, at most 4096 bytes."""
    body = r.json
    content = body.get("markdown", {}).get("content")
    if body.get("msgtype") != "markdown" or not isinstance(content, str):
        return [f"not a WeCom markdown message: {body}"]
    return ["markdown content over 4096 bytes"] if len(content.encode()) > 4096 else []


def check_dingtalk(r: Received, secret: str) -> list[str]:
    """DingTalk 加签: sign = urlencode(base64(HmacSHA256(secret, timestamp + "\\n" + secret))), ms timestamp."""
    problems = []
    ts, sign = r.query.get("timestamp"), r.query.get("sign")
    if not ts or not sign:
        return ["no timestamp/sign in the query"]
    if abs(int(ts) - time.time() * 1000) > 3600_000:
        problems.append("timestamp more than an hour off")
    expected = _b64_hmac(secret.encode("utf-8"), f"{ts}\n{secret}".encode())
    if sign != expected:  # parse_qs already URL-decoded it once
        problems.append(f"bad sign {sign!r}")
    body = r.json
    md = body.get("markdown", {})
    if body.get("msgtype") != "markdown" or not md.get("title") or not md.get("text"):
        problems.append(f"not a DingTalk markdown message: {body}")
    return problems


def check_feishu(r: Received, secret: str) -> list[str]:
    """Feishu 签名校验: sign = base64(HmacSHA256(key = timestamp + "\\n" + secret, message = "")), s timestamp."""
    body = r.json
    ts, sign = body.get("timestamp"), body.get("sign")
    if not ts or not sign:
        return ["no timestamp/sign in the body"]
    problems = []
    if abs(int(ts) - time.time()) > 3600:
        problems.append("timestamp more than an hour off")
    if sign != _b64_hmac(f"{ts}\n{secret}".encode(), b""):
        problems.append(f"bad sign {sign!r}")
    if body.get("msg_type") not in ("text", "post", "interactive", "share_chat", "image"):
        problems.append(f"unknown msg_type {body.get('msg_type')!r}")
    return problems


def check_standard_webhook(r: Received, secret: str) -> list[str]:
    """Standard Webhooks 1.0: HMAC-SHA256 with base64(secret after whsec_) over "id.timestamp.body"."""
    msg_id, ts, sigs = (r.headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not ts or not sigs:
        return ["missing webhook-id / webhook-timestamp / webhook-signature"]
    problems = []
    if abs(int(ts) - time.time()) > 300:
        problems.append("timestamp outside the 5-minute tolerance")
    key = base64.b64decode(secret.split("_", 1)[1] if secret.startswith("whsec_") else secret)
    expected = _b64_hmac(key, f"{msg_id}.{ts}.".encode() + r.body)
    if not any(hmac.compare_digest(s.split(",", 1)[-1], expected) for s in sigs.split(" ") if s.startswith("v1,")):
        problems.append(f"no v1 signature matches: {sigs!r}")
    return problems


def check_wecom_app(r: Received, secret: str) -> list[str]:
    """document/path/90236: touser, msgtype, agentid and the token gettoken gave."""
    body = r.json
    problems = [] if r.query.get("access_token") == "token-1" else [f"bad token {r.query.get('access_token')!r}"]
    if not body.get("touser") or body.get("msgtype") != "markdown" or not isinstance(body.get("agentid"), int):
        problems.append(f"not a WeCom app message: {body}")
    return problems


CHECKS: dict[str, Callable[[Received, str], list[str]]] = {
    "wecom_robot": check_wecom_robot,
    "dingtalk": check_dingtalk,
    "feishu": check_feishu,
    "webhook": check_standard_webhook,
    "wecom_app": check_wecom_app,
}


@dataclass
class Receiver:
    """A threaded HTTP server on 127.0.0.1 speaking as one platform; `answers` scripts the next replies."""

    kind: str
    secret: str = ""
    received: list[Received] = field(default_factory=list)
    # Each: (status, JSON body) or ("sleep", seconds); used in order, then the platform's success answer.
    answers: list[tuple[Any, Any]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    token_lifetime: int = 7200

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path.endswith("/gettoken"):
                    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                    receiver.token_requests.append(query)
                    ok = query.get("corpsecret") == receiver.secret
                    body = (
                        {"errcode": 0, "errmsg": "ok", "access_token": "token-1", "expires_in": receiver.token_lifetime}
                        if ok
                        else {"errcode": 40001, "errmsg": "invalid credential"}
                    )
                    self._answer(200, body)
                else:
                    self._answer(404, {"error": "no such path"})

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                r = Received(unquote(parts.path), query, {k.lower(): v for k, v in self.headers.items()}, body, [])
                try:
                    r.problems = CHECKS[receiver.kind](r, receiver.secret)
                except (ValueError, KeyError, AttributeError) as exc:
                    r.problems = [f"unreadable request: {exc}"]
                receiver.received.append(r)
                if receiver.answers:
                    status, answer = receiver.answers.pop(0)
                    if status == "sleep":
                        time.sleep(answer)
                        status, answer = 200, receiver.success()
                    self._answer(status, answer)
                elif r.problems:  # robots answer 200 with an error code; a webhook receiver answers 401
                    self._answer(401 if receiver.kind == "webhook" else 200, receiver.refusal(r.problems))
                else:
                    self._answer(200, receiver.success())

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def success(self) -> dict[str, Any]:
        return {"code": 0, "msg": "success", "data": {}} if self.kind == "feishu" else {"errcode": 0, "errmsg": "ok"}

    def refusal(self, problems: list[str]) -> dict[str, Any]:
        if self.kind == "feishu":
            return {"code": 19021, "msg": "; ".join(problems)}
        return {"errcode": 310000, "errmsg": "; ".join(problems)}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 keeping every message it accepts; `refuse` names addresses it answers 550 for."""

    refuse: set[str] = field(default_factory=set)
    messages: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
                if address in receiver.refuse:
                    return "550 5.1.1 no such mailbox"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                from email import message_from_bytes, policy

                receiver.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 Message accepted"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()
