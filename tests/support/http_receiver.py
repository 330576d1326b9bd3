"""A tiny threaded HTTP receiver on 127.0.0.1 that answers from a script (500, a time-out, 410, 200) and keeps
every request it got: the far side of a webhook, for delivery tests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Got:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    def json(self) -> object:
        return json.loads(self.body)


class Receiver:
    """`script` holds answers in order: an int status, or "timeout" (sleep past the client's limit, then 200);
    when it runs out, 200. `url` names it; `got` lists what arrived, answered or not."""

    def __init__(self, script: list[int | str] | None = None, sleep: float = 3.0):
        self.script: deque[int | str] = deque(script or [])
        self.sleep = sleep
        self.got: list[Got] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with outer.lock:
                    outer.got.append(Got(self.path, dict(self.headers), body))
                    answer = outer.script.popleft() if outer.script else 200
                if answer == "timeout":
                    time.sleep(outer.sleep)
                    answer = 200
                self.send_response(int(answer))
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, n: int, timeout: float = 30.0) -> list[Got]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"the receiver got {len(self.got)} requests within {timeout} s, expected {n}")
