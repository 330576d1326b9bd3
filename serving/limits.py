"""Request limits: a body over the limit gets 413 before any of it is parsed, a request without a valid
key gets 401 before its body is looked at."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadradar.serving.auth import request_key
from leadradar.serving.errors import error_body

PUBLIC_PATHS = ("/openapi.json", "/docs")
# Where KeyGate leaves the verified caller in the request scope, so an endpoint need not verify again.
PRINCIPAL = "leadradar.principal"


# Sent with an answer given before the request's body was read: the connection ends there, so the rest of
# the body is never read (uvicorn would otherwise keep taking it in while the client sends).
CLOSE = (b"connection", b"close")


def has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers", []))
    return headers.get(b"content-length", b"0") not in (b"", b"0") or b"transfer-encoding" in headers


async def send_error(
    send: Send, status: int, message: str, detail: Any = None, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An answer in the API's one error shape (serving/errors.py), sent before the app sees the request."""
    body = error_body(message, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI middleware: read the body up to `max_bytes` (by Content-Length or streamed), then replay it."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        await send_error(
            send,
            413,
            f"request body too large: the limit is {self.max_bytes} bytes",
            f"the limit is {self.max_bytes} bytes",
            [CLOSE],
        )

    async def _gone(self, send: Send) -> None:
        """An answer to a client that left before its body was in: the server drops it, but it ends the request
        for BentoML's timeout middleware, which otherwise holds the request open until its traffic timeout
        (a minute), and a shutdown behind it."""
        await send_error(send, 400, "the client closed the connection before its body was in", None, [CLOSE])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                await self._gone(send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class KeyGate:
    """Pure ASGI middleware: no valid API key, no further (401), whatever the body; the role check stays
    in the endpoint. The key store is the one the service put on `app.state.keys`. It sits outside
    BodyLimit, so a caller without a key is refused before a byte of its body is read."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").endswith(PUBLIC_PATHS):
            await self.app(scope, receive, send)
            return
        keys = getattr(scope["app"].state, "keys", None) if "app" in scope else None
        if keys is not None:
            headers = dict(scope.get("headers", []))
            authorization, x_api_key = (headers.get(h, b"").decode("latin-1") for h in (b"authorization", b"x-api-key"))
            principal = keys.verify(request_key(authorization, x_api_key))
            if principal is None:
                await send_error(
                    send,
                    401,
                    "missing or unknown API key; send `Authorization: Bearer <key>`",
                    headers=[(b"www-authenticate", b"Bearer"), *([CLOSE] if has_body(scope) else [])],
                )
                return
            scope[PRINCIPAL] = principal
        await self.app(scope, receive, send)
