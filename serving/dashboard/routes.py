"""The dashboard's HTTP side: sign-in, the pages, the exports. Server-rendered HTML, no script at all.

Mounted at /dashboard in the BentoML service (serving/service.py); every page needs a signed-in
manager (or a manager key as `Authorization: Bearer`) and shows only that viewer's tenant.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadradar.config import Settings
from leadradar.serving.auth import KeyStore
from leadradar.serving.dashboard.messages import LANGS, from_accept_language
from leadradar.serving.dashboard.pagedata import Filters, PageData
from leadradar.serving.dashboard.render import render
from leadradar.serving.dashboard.sessions import (
    COOKIE,
    LANG_COOKIE,
    Gate,
    LoginThrottle,
    SessionSigner,
    Viewer,
    load_secret,
)
from leadradar.serving.export import csv_bytes, xlsx_bytes
from leadradar.serving.store import ScoreStore
from leadradar.serving.users import UserStore

# No script, no frames, nothing from elsewhere: styles and SVG are inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOGIN_MESSAGES = {"signed_out": "login.signed_out", "expired": "login.expired"}


@dataclass
class Backend:
    """What the pages need: settings, the page data over the score store, and the sign-in gate."""

    settings: Settings
    data: PageData
    gate: Gate

    @classmethod
    def build(cls, settings: Settings, store: ScoreStore | None = None, keys: KeyStore | None = None) -> Backend:
        store = store or ScoreStore(settings.score_store_url)
        keys = keys or KeyStore(settings.score_store_url, settings.serving.key_cache_seconds)
        cfg = settings.serving.dashboard
        gate = Gate(
            SessionSigner(load_secret(settings), cfg.session_hours),
            UserStore(settings.score_store_url),
            keys,
            LoginThrottle(cfg.login_attempts, cfg.login_window_seconds),
        )
        return cls(settings, PageData(store, settings), gate)


def _lazy(factory: Callable[[], Backend]) -> Callable[[], Backend]:
    """The backend built on first use (inside the server process), then shared."""
    lock, box = threading.Lock(), list[Backend]()

    def get() -> Backend:
        if not box:
            with lock:
                if not box:
                    box.append(factory())
        return box[0]

    return get


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang")
    if asked in LANGS:
        return asked
    cookie = request.cookies.get(LANG_COOKIE)
    return cookie if cookie in LANGS else from_accept_language(request.headers.get("accept-language"))


def _base(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _safe_next(base: str, target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect elsewhere."""
    if target and target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def build_dashboard(backend: Callable[[], Backend]) -> FastAPI:
    """The dashboard app; `backend()` gives the stores (built lazily in the serving process)."""
    app = FastAPI(title="leadradar dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    backend = _lazy(backend)

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        lang = _lang(request)
        html = render(
            template, lang, base=_base(request), path=request.url.path, query=dict(request.query_params), **context
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if request.query_params.get("lang") in LANGS:
            response.set_cookie(
                LANG_COOKIE,
                lang,
                max_age=365 * 86400,
                httponly=True,
                samesite="lax",
                secure=backend().settings.serving.dashboard.cookie_secure,
                path=_base(request) + "/",
            )
        return response

    def viewer(request: Request) -> Viewer | None:
        gate = backend().gate
        return gate.from_bearer(request.headers.get("authorization")) or gate.from_cookie(request.cookies.get(COOKIE))

    def to_login(request: Request, reason: str | None = None) -> Response:
        if request.headers.get("authorization"):
            return Response("a manager API key is needed", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = {"next": target, **({"msg": reason} if reason else {})}
        response = RedirectResponse(f"{_base(request)}/login?{urlencode(query)}", status_code=303)
        if reason:
            response.delete_cookie(COOKIE, path=_base(request) + "/")
        return response

    def signed_in(request: Request) -> Viewer | Response:
        who = viewer(request)
        if who is None:
            return to_login(request, "expired" if request.cookies.get(COOKIE) else None)
        return who

    def filters(request: Request) -> Filters:
        q = request.query_params
        try:
            number = max(1, int(q.get("page", "1")))
        except ValueError:
            number = 1
        grade = q.get("grade") or None
        return Filters(
            q.get("sales") or None, q.get("stage") or None, grade if grade in ("A", "B", "C", "D") else None, number
        )

    @app.get("/", response_class=HTMLResponse)
    def board(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        data = backend().data.board(who.tenant_id, _lang(request), filters(request))
        return page(request, "board.html", viewer=who, d=data, nav="leads")

    @app.get("/leads/{lead_id:path}", response_class=HTMLResponse)
    def lead(request: Request, lead_id: str):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        data = backend().data.lead(who.tenant_id, lead_id, _lang(request))
        if data is None:  # another tenant's lead looks exactly like no lead at all
            return page(
                request, "missing.html", status=404, viewer=who, lead_id=lead_id, nav="leads", tenant=who.tenant_id
            )
        return page(request, "lead.html", viewer=who, d=data, nav="leads")

    @app.get("/funnel", response_class=HTMLResponse)
    def funnel(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        return page(
            request, "funnel.html", viewer=who, d=backend().data.funnel(who.tenant_id, _lang(request)), nav="funnel"
        )

    @app.get("/team", response_class=HTMLResponse)
    def team(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        return page(request, "team.html", viewer=who, d=backend().data.team(who.tenant_id, _lang(request)), nav="team")

    @app.get("/export.csv")
    def export_csv(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        frame = backend().data.export(who.tenant_id, _lang(request), filters(request))
        return _download(csv_bytes(frame), "text/csv; charset=utf-8", _filename(who, "csv"))

    @app.get("/export.xlsx")
    def export_xlsx(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        data, lang = backend().data, _lang(request)
        frame = data.export(who.tenant_id, lang, filters(request))
        content = xlsx_bytes(frame, lang, lambda s: data.stage_label(s, lang))
        return _download(
            content, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", _filename(who, "xlsx")
        )

    @app.get("/report.html")
    def report(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        from leadradar.serving.report import report_html

        html = report_html(backend().data, who.tenant_id, _lang(request))
        return _download(html.encode(), "text/html; charset=utf-8", _filename(who, "html", "report"))

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        message = LOGIN_MESSAGES.get(request.query_params.get("msg", ""))
        return page(
            request,
            "login.html",
            error=None,
            notice=message,
            next=request.query_params.get("next", ""),
            username="",
            key_open=False,
            viewer=None,
            nav="",
        )

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        gate, base = backend().gate, _base(request)
        username, password, key = (
            form.get("username", "").strip(),
            form.get("password", ""),
            form.get("api_key", "").strip(),
        )
        address = request.client.host if request.client else ""
        who_tried = username or f"key:{key[:16]}"
        error = None
        if not gate.throttle.allowed(who_tried, address):
            error = "login.throttled"
        else:
            signed = gate.with_key(key) if key else gate.with_password(username, password) if username else None
            if signed is None:
                error = "login.key_failed" if key else "login.failed"
                gate.throttle.failed(who_tried, address)
            elif not gate.may_view(signed[0].role):
                error = "login.not_manager"
            else:
                gate.throttle.succeeded(who_tried, address)
                response = RedirectResponse(_safe_next(base, form.get("next")), status_code=303)
                cfg = backend().settings.serving.dashboard
                response.set_cookie(
                    COOKIE,
                    signed[1],
                    max_age=gate.signer.max_age,
                    httponly=True,
                    samesite="lax",
                    secure=cfg.cookie_secure,
                    path=base + "/",
                )
                return response
        return page(
            request,
            "login.html",
            status=401 if error != "login.throttled" else 429,
            error=error,
            notice=None,
            next=form.get("next", ""),
            username=username,
            key_open=bool(key),
            viewer=None,
            nav="",
        )

    @app.post("/logout")
    def logout(request: Request):
        response = RedirectResponse(f"{_base(request)}/login?msg=signed_out", status_code=303)
        response.delete_cookie(COOKIE, path=_base(request) + "/")
        return response

    return app


def _filename(who: Viewer, ext: str, kind: str = "leads") -> str:
    return f"{kind}-{who.tenant_id}-{datetime.now(UTC):%Y%m%d}.{ext}"


def _download(content: bytes, media_type: str, filename: str) -> Response:
    """The file as an attachment; a name beyond ASCII (a Chinese tenant id) goes in `filename*` (RFC 6266, 5987)."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    disposition = f'attachment; filename="{fallback}"'
    if fallback != filename:
        disposition += f"; filename*=UTF-8''{quote(filename, safe='')}"
    headers = {**SECURITY_HEADERS, "Content-Disposition": disposition}
    return Response(content, media_type=media_type, headers=headers)
