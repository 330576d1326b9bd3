"""One error shape for every /v1 answer that is not a success: `{"error": "<one line>", "detail": ...}`.

The document's `ErrorBody`. An integrator reads `error` whatever went wrong (401, 403, 404, 405, 413, 422, 429,
503, 500): endpoints, FastAPI's validation, Starlette's routing and the middleware of serving/limits.py all
answer through `error_body` here. `detail` is optional: the field errors of a 422, the limit of a 413.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadradar.serving.outages import store_fault

log = logging.getLogger(__name__)

# Both ways serving/auth.py reads a key; listed in the document so a client generator sends one.
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer lr_<key id>_<secret>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key", "description": "the same key, in its own header"},
}


def error_body(message: str, detail: Any = None) -> bytes:
    """The JSON of one error answer (ASCII only: a message may quote input that does not encode)."""
    doc: dict[str, Any] = {"error": message}
    if detail is not None:
        doc["detail"] = detail
    return json.dumps(doc, ensure_ascii=True).encode()


def error_response(status: int, message: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message, detail), status_code=status, media_type="application/json", headers=headers)


def invalid(errors: Sequence[Mapping[str, Any]], prefix: tuple[str, ...] = ()) -> Response:
    """422 naming the first bad field in `error`, every field error in `detail`; the input is never echoed."""
    detail = [
        {"loc": [*prefix, *e.get("loc", [])], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in errors
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    return error_response(422, f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}", detail)


INTERNAL = "internal error; the server log has the details"


def fault_answer(exc: BaseException, retry_after: int) -> Response | None:
    """A store's fault under a request as its answer (serving/outages.py), with `Retry-After`; None for our bug."""
    fault = store_fault(exc, retry_after)
    return None if fault is None else error_response(*fault, headers={"Retry-After": str(retry_after)})


def install(app: FastAPI, retry_after: int = 2) -> None:
    """Every error FastAPI or Starlette would answer in its own shape answers in ours; a store's fault (503, 507:
    serving/outages.py) is told apart from our bug (500), in the endpoints and in the middleware alike."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return invalid(exc.errors())

    @app.exception_handler(sa.exc.DBAPIError)
    async def store_failed(request: Request, exc: sa.exc.DBAPIError) -> Response:
        answer = fault_answer(exc, retry_after)
        if answer is None:
            raise exc
        log.warning("%s %s answered %d: %s", request.method, request.url.path, answer.status_code, exc.orig)
        return answer

    @app.exception_handler(Exception)
    async def our_bug(request: Request, exc: Exception) -> Response:
        # Only what `Answered` could not answer (its own fault) comes here; Starlette re-raises after this answer.
        return fault_answer(exc, retry_after) or error_response(500, INTERNAL)

    app.add_middleware(Answered, retry_after=retry_after)


class Answered:
    """Pure ASGI middleware, the outermost of ours: an exception no handler answered (our bug, or a store's fault
    in the middleware, such as the key check's read) is answered here, 500 with its traceback in the log or the
    store's 503/507 in one line. Starlette's last handler answers too, but then re-raises to uvicorn, which closes
    the connection: a client's next request on it (a pooled keep-alive connection) failed with a reset."""

    def __init__(self, app: ASGIApp, retry_after: int = 2):
        self.app, self.retry_after = app, retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            if started:  # half an answer is out: only closing the connection tells the client
                raise
            where = f"{scope.get('method', '')} {scope.get('path', '')}"
            answer = fault_answer(exc, self.retry_after)
            if answer is None:
                log.error("%s answered 500: %s", where, INTERNAL, exc_info=exc)
                answer = error_response(500, INTERNAL)
            else:
                said = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc  # not the statement's parameters
                log.warning("%s answered %d: %s", where, answer.status_code, said)
            await answer(scope, receive, send)


def document(doc: dict[str, Any], error_schema: str) -> dict[str, Any]:
    """The OpenAPI document with the key schemes, and every error answer (4xx, 5xx) pointing at `error_schema`."""
    components = doc.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = [{name: []} for name in SECURITY_SCHEMES]
    ref = {"$ref": f"#/components/schemas/{error_schema}"}
    for item in doc.get("paths", {}).values():
        for op in item.values():
            for code, answer in op.get("responses", {}).items():
                if str(code)[0] in "45":
                    answer["content"] = {"application/json": {"schema": ref}}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    return doc
