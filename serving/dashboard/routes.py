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
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from leadradar.config import GRADES, LANGS, DashboardConfig, Settings, language
from leadradar.serving.audit import AuditLog
from leadradar.serving.auth import KeyStore
from leadradar.serving.dashboard.alerts_pages import (
    VERDICTS,
    AlertFeed,
    alerts_page,
    channel_rows,
    local_time,
    rule_settings,
)
from leadradar.serving.dashboard.health import health_page
from leadradar.serving.dashboard.messages import MESSAGES, from_accept_language, translator
from leadradar.serving.dashboard.pagedata import Filters, PageData
from leadradar.serving.dashboard.render import render
from leadradar.serving.dashboard.sessions import (
    COOKIE,
    LANG_COOKIE,
    Gate,
    SessionLedger,
    SessionSigner,
    Viewer,
    load_secret,
)
from leadradar.serving.dashboard.throttle import Busy, CheckPool, LoginThrottle
from leadradar.serving.export import csv_bytes, xlsx_bytes
from leadradar.serving.limits import BodyLimit
from leadradar.serving.score_feedback import NOTE_CHARS, Judge, LeadNotFound, ScoreFeedback, UnknownScore, judge_score
from leadradar.serving.score_feedback import VERDICTS as SCORE_VERDICTS
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
# Longest values a sign-in form's fields are read at: a user name is at most 64 characters (serving/users.py),
# a key about 60, a `next` path a few hundred; anything longer is not one of ours and is not echoed back.
MAX_NAME, MAX_KEY, MAX_NEXT, MAX_PASSWORD = 64, 128, 2048, 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
# Message keys the alert pages complete with a value (a rule, a verdict, a platform, a delivery status).
KEY_PREFIXES = {"rule": "rule.", "feedback": "feedback.", "kind": "kind.", "status": "status."}


@dataclass
class Backend:
    """What the pages need: settings, the page data over the score store, the sign-in gate, the audit log."""

    settings: Settings
    data: PageData
    gate: Gate
    checks: CheckPool
    audit: AuditLog
    # The verdicts on scores ("this score is wrong"), in the score store's database.
    feedback: ScoreFeedback
    # The outbox's alert feed and feedback (serving/alerts/); None until a server records alerts.
    alerts: AlertFeed | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        store: ScoreStore | None = None,
        keys: KeyStore | None = None,
        alerts: AlertFeed | None = None,
    ) -> Backend:
        url, cfg = settings.score_store_url, settings.serving.dashboard
        store = store or ScoreStore(url)
        keys = keys or KeyStore(url, settings.serving.key_cache_seconds, settings.serving.key_cache_size)
        gate = Gate(
            SessionSigner(load_secret(settings), cfg.session_hours),
            UserStore(url),
            keys,
            LoginThrottle(url, cfg.login_attempts, cfg.login_address_attempts, cfg.login_window_seconds),
            SessionLedger(url, cfg.session_idle_minutes * 60),
        )
        checks = CheckPool(cfg.login_hash_concurrency, cfg.login_hash_queue)
        return cls(settings, PageData(store, settings), gate, checks, AuditLog(url), ScoreFeedback(url), alerts)


@dataclass(frozen=True)
class SignIn:
    """One sign-in attempt, settled: who tried (a user name or `key:<prefix>`), from where, and either the
    viewer and cookie of the new session or the message key of the refusal."""

    name: str
    address: str
    viewer: Viewer | None = None
    cookie: str | None = None
    error: str | None = None

    @property
    def status(self) -> int:
        return 303 if self.error is None else 429 if self.error in ("login.throttled", "login.busy") else 401


async def sign_in(backend: Backend, username: str, password: str, key: str, address: str) -> SignIn:
    """Budget first, then the check (off the event loop), then a server-side session for a manager."""
    gate = backend.gate
    name = username or f"key:{key[:16]}"
    if not await run_in_threadpool(gate.throttle.attempt, name, address):
        return SignIn(name, address, error="login.throttled")
    if len(username) > MAX_NAME or len(key) > MAX_KEY or len(password) > MAX_PASSWORD:
        return SignIn(name, address, error="login.key_failed" if key else "login.failed")
    try:
        if key:
            checked = await run_in_threadpool(gate.check_key, key)
        elif username:
            checked = await backend.checks.run(gate.check_password, username, password)
        else:
            checked = None
    except Busy:
        return SignIn(name, address, error="login.busy")
    if checked is None:
        return SignIn(name, address, error="login.key_failed" if key else "login.failed")
    viewer, fingerprint = checked
    if not gate.may_view(viewer.role):
        return SignIn(name, address, viewer, error="login.not_manager")
    await run_in_threadpool(gate.throttle.succeeded, name, address)
    return SignIn(name, address, viewer, await run_in_threadpool(gate.open_session, viewer, fingerprint))


def audit_sign_in(backend: Backend, attempt: SignIn, username: str, key: str) -> None:
    """Keep the sign-in in the tenant's audit log: who signed in, who was refused, failures of known names."""
    gate, audit = backend.gate, backend.audit
    if attempt.error is None and attempt.viewer is not None:
        audit.signed_in(attempt.viewer)
    elif attempt.error == "login.not_manager" and attempt.viewer is not None:
        audit.refused(attempt.viewer)
    elif attempt.error in ("login.failed", "login.key_failed"):
        audit.sign_in_failed(gate.users, gate.keys, username[:MAX_NAME], key[:MAX_KEY])


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
    asked = language(request.query_params.get("lang") or "")  # ?lang=zh as well as ?lang=zh-CN
    if asked is not None:
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


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        port = -1
    return parts.scheme, (parts.hostname or ""), port


def same_origin(request: Request) -> bool:
    """A form post from the dashboard's own pages: `Origin` (or else `Referer`) names this scheme, host and
    port. Browsers send `Origin` with every form post, so neither header means no browser sent it."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True
    own = _origin(str(request.base_url))
    return own[1] != "" and _origin(source) == own


def _form(body: bytes) -> dict[str, str]:
    """The first value of each field of a urlencoded form (at most a few fields are read)."""
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=16)
    except ValueError:
        return {}
    return {k: v[0] for k, v in fields.items()}


def _address(request: Request) -> str:
    """The client's address: the peer, or what a configured proxy says (uvicorn resolves `trusted_proxies`)."""
    return request.client.host if request.client else ""


def build_dashboard(backend: Callable[[], Backend], max_body_bytes: int | None = None) -> FastAPI:
    """The dashboard app; `backend()` gives the stores (built lazily in the serving process). Bodies over
    `max_body_bytes` (default: the settings' default) are refused with 413 before they are read."""
    app = FastAPI(title="leadradar dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes or DashboardConfig().max_body_bytes)
    backend = _lazy(backend)

    def page(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
        lang = _lang(request)
        html = render(
            template, lang, base=_base(request), path=request.url.path, query=dict(request.query_params), **context
        )
        response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
        if language(request.query_params.get("lang") or "") is not None:
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
        grade = (q.get("grade") or "").strip().upper()
        return Filters(q.get("sales") or None, q.get("stage") or None, grade if grade in GRADES else None, number)

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
        b = backend()
        judged = b.feedback.of_lead(who.tenant_id, lead_id)
        notice = request.query_params.get("msg")
        return page(
            request,
            "lead.html",
            viewer=who,
            d=data,
            nav="leads",
            notice=notice if notice in ("thanks", "refused") else None,
            last_verdict=judged[0] if judged else None,
        )

    @app.post("/leads/{lead_id:path}/feedback")
    async def score_feedback(request: Request, lead_id: str):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        if not same_origin(request):
            return Response("cross-site form refused", status_code=403, headers=SECURITY_HEADERS)
        form = _form(await request.body())
        verdict, version = form.get("verdict", ""), form.get("model_version") or None
        if verdict not in SCORE_VERDICTS or len(form.get("note", "")) > NOTE_CHARS:
            return Response("unknown verdict or too long a note", status_code=422, headers=SECURITY_HEADERS)
        try:
            p_close = float(form["p_close"]) if form.get("p_close") else None
        except ValueError:
            p_close = None
        b, judge = backend(), Judge(who.tenant_id, who.role, None, who.name)
        try:
            await run_in_threadpool(
                judge_score,
                b.feedback,
                b.data.store,
                None,
                judge,
                lead_id,
                verdict,
                model_version=version,
                p_close=p_close if p_close is not None and 0 <= p_close <= 1 else None,
                note=form.get("note", "").strip() or None,
            )
            msg = "thanks"
        except (LeadNotFound, UnknownScore):
            msg = "refused"
        target = f"{_base(request)}/leads/{quote(lead_id, safe='')}?msg={msg}"
        return RedirectResponse(target, status_code=303)

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
        data, lang = backend().data, _lang(request)
        frame = data.export(who.tenant_id, lang, filters(request))
        backend().audit.exported(who, "csv", _shown(filters(request)))
        content = csv_bytes(frame, lang, lambda s: data.stage_label(s, lang))
        return _download(content, "text/csv; charset=utf-8", _filename(who, "csv"))

    @app.get("/export.xlsx")
    def export_xlsx(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        data, lang = backend().data, _lang(request)
        frame = data.export(who.tenant_id, lang, filters(request))
        content = xlsx_bytes(frame, lang, lambda s: data.stage_label(s, lang))
        backend().audit.exported(who, "xlsx", _shown(filters(request)))
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
        backend().audit.exported(who, "report")
        return _download(html.encode(), "text/html; charset=utf-8", _filename(who, "html", "report"))

    def login_page(request: Request, status: int, error: str | None, next_: str, username: str, key: bool):
        return page(
            request,
            "login.html",
            status=status,
            error=error,
            notice=None,
            next=next_,
            username=username,
            key_open=key,
            viewer=None,
            nav="",
        )

    @app.get("/audit", response_class=HTMLResponse)
    def audit(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        limit = backend().settings.serving.dashboard.audit_rows
        entries = backend().audit.read(who.tenant_id, limit)
        return page(request, "audit.html", viewer=who, entries=entries, limit=limit, known=MESSAGES, nav="audit")

    @app.get("/health", response_class=HTMLResponse)
    def health(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        lang = _lang(request)
        data = health_page(backend().settings, who.tenant_id, lang, translator(lang)("health.calibration_chart"))
        return page(request, "health.html", viewer=who, d=data, nav="health")

    @app.get("/alerts", response_class=HTMLResponse)
    def alerts(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        q, b = request.query_params, backend()
        data = alerts_page(
            b.alerts,
            who.tenant_id,
            q.get("sales") or None,
            q.get("rule") or None,
            b.settings.serving.dashboard.alert_rows,
        )
        zone = b.settings.lifecycle.timezone
        notice = {"thanks": "alerts.thanks", "refused": "alerts.feedback_failed"}.get(q.get("msg", ""))
        return page(
            request,
            "alerts.html",
            viewer=who,
            d=data,
            verdicts=VERDICTS,
            notice=notice,
            chosen={"sales": q.get("sales"), "rule": q.get("rule")},
            prefix=KEY_PREFIXES,
            when=lambda at: local_time(at, zone),
            nav="alerts",
        )

    @app.post("/alerts/{alert_id}/feedback")
    async def alert_feedback(request: Request, alert_id: str):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        if not same_origin(request):
            return Response("cross-site form refused", status_code=403, headers=SECURITY_HEADERS)
        verdict = _form(await request.body()).get("verdict", "")
        feed = backend().alerts
        if verdict not in VERDICTS or feed is None:
            return Response("unknown verdict", status_code=422, headers=SECURITY_HEADERS)
        recorded = await run_in_threadpool(feed.feedback, who.tenant_id, alert_id, verdict, who.name)
        return RedirectResponse(f"{_base(request)}/alerts?msg={'thanks' if recorded else 'refused'}", status_code=303)

    @app.get("/rules", response_class=HTMLResponse)
    def rules(request: Request):
        who = signed_in(request)
        if isinstance(who, Response):
            return who
        settings = backend().settings
        return page(
            request,
            "rules.html",
            viewer=who,
            rules=rule_settings(settings),
            channels=channel_rows(settings, who.tenant_id),
            digest=settings.alerts.channels,
            zone=settings.lifecycle.timezone,
            prefix=KEY_PREFIXES,
            nav="rules",
        )

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        message = LOGIN_MESSAGES.get(request.query_params.get("msg", ""))
        target = request.query_params.get("next", "")
        return page(
            request,
            "login.html",
            error=None,
            notice=message,
            next=target if len(target) <= MAX_NEXT else "",
            username="",
            key_open=False,
            viewer=None,
            nav="",
        )

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request):
        form = _form(await request.body())
        username, password, key = (
            form.get("username", "").strip(),
            form.get("password", ""),
            form.get("api_key", "").strip(),
        )
        target = form.get("next", "")
        target = target if len(target) <= MAX_NEXT else ""
        shown = username if len(username) <= MAX_NAME else ""
        if not same_origin(request):
            return login_page(request, 403, "login.cross_site", target, shown, bool(key))
        attempt = await sign_in(backend(), username, password, key, _address(request))
        # Every sign-in attempt is settled here: `attempt` says who tried, from where, and how it ended.
        await run_in_threadpool(audit_sign_in, backend(), attempt, username, key)
        if attempt.cookie is None:
            return login_page(request, attempt.status, attempt.error, target, shown, bool(key))
        response = RedirectResponse(_safe_next(_base(request), target), status_code=303)
        response.set_cookie(
            COOKIE,
            attempt.cookie,
            max_age=backend().gate.signer.max_age,
            httponly=True,
            samesite="lax",
            secure=backend().settings.serving.dashboard.cookie_secure,
            path=_base(request) + "/",
        )
        return response

    @app.post("/logout")
    def logout(request: Request):
        if not same_origin(request):
            return login_page(request, 403, "login.cross_site", "", "", False)
        backend().gate.end_session(request.cookies.get(COOKIE))
        response = RedirectResponse(f"{_base(request)}/login?msg=signed_out", status_code=303)
        response.delete_cookie(COOKIE, path=_base(request) + "/")
        return response

    return app


def _shown(f: Filters) -> str:
    """The filters of an export, as the audit log keeps them."""
    return " ".join(f"{k}={v}" for k, v in (("sales", f.sales), ("stage", f.stage), ("grade", f.grade)) if v)


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
