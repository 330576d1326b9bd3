"""The BentoML service sales systems call: /v1/score, /v1/rank, /v1/model, /v1/audit, and /healthz, /readyz.

The API is a typed FastAPI app mounted into the BentoML service, so the OpenAPI document
(/v1/openapi.json) and the 422 errors with field paths come with it. Business logic lives in
serving/engine.py, serving/ranking.py and serving/auth.py; this module wires keys and status codes.
`/` sends browsers to the dashboard, in place of BentoML's own page (which loads Google Tag Manager).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import bentoml
from fastapi import Body, FastAPI, HTTPException, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route

from leadradar.config import Settings, get_settings
from leadradar.errors import BadValueError
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import build_registry
from leadradar.features.store import EventStore
from leadradar.features.tiles.online import OnlineTiles
from leadradar.serving import connections, errors
from leadradar.serving.alerts.feedback import AlertNotFound, NotYourAlert, give_feedback
from leadradar.serving.alerts.outbox import Outbox
from leadradar.serving.apidocs import HEADERS as DOCS_HEADERS
from leadradar.serving.apidocs import reference_html
from leadradar.serving.audit import AuditLog
from leadradar.serving.auth import KeyStore, Principal, request_key
from leadradar.serving.certainty import ranked_certainty
from leadradar.serving.dashboard.mount import service_dashboard
from leadradar.serving.engine import ContextCache, Engine, RequestError, load_items, model_attributes
from leadradar.serving.events_api import EVENTS, STAGES, BodyShapeError, ItemKind, TooManyItems, ingest, read_items
from leadradar.serving.holder import ModelHolder
from leadradar.serving.lead_view import LeadNotFound, NotYourLead, lead_view
from leadradar.serving.limits import PRINCIPAL, BodyLimit, KeyGate
from leadradar.serving.model_health import HeldLedger, model_lifecycle
from leadradar.serving.positions import Positions
from leadradar.serving.privacy import forget_lead
from leadradar.serving.ranking import RankedCache
from leadradar.serving.reasons import ReasonWriter
from leadradar.serving.rescoring import Rescorer, rescoring_worker
from leadradar.serving.schemas import (
    AlertFeedbackRequest,
    AlertFeedbackResponse,
    AuditResponse,
    AuditRow,
    ErrorBody,
    EventsRequest,
    ForgetResponse,
    IngestResponse,
    Lang,
    LeadResponse,
    ModelInfo,
    QuarantinedItem,
    QuarantineResponse,
    RankedLead,
    RankRequest,
    RankResponse,
    ScoreFeedbackRequest,
    ScoreFeedbackResponse,
    ScoreRequest,
    ScoreResponse,
    StagesRequest,
)
from leadradar.serving.score_feedback import Judge, ScoreFeedback, UnknownScore, judge_score
from leadradar.serving.store import ScoreStore

log = logging.getLogger(__name__)
SETTINGS = get_settings()
ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422, 503)}
connections.install(
    SETTINGS.serving.header_timeout_seconds, SETTINGS.serving.body_timeout_seconds, SETTINGS.serving.keep_alive_seconds
)

app = FastAPI(
    title="leadradar scoring API",
    version="1",
    description="Close probabilities, funnel transitions, grades and reasons for sales leads, per tenant.",
    servers=[{"url": "/v1"}],
    docs_url=None,  # FastAPI's pages load Swagger and ReDoc from a CDN; /docs below is ours
    redoc_url=None,
)
# The last added runs first: the key is checked before BodyLimit reads a byte of the body.
app.add_middleware(BodyLimit, max_bytes=SETTINGS.serving.max_body_bytes)
app.add_middleware(KeyGate)


errors.install(app, SETTINGS.store.outage_retry_after_seconds)


def openapi_document() -> dict:
    """FastAPI's document, plus the score request body: /v1/score reads its body itself (see `score`)."""
    if app.openapi_schema is None:
        doc = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, servers=app.servers
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in (ScoreRequest, EventsRequest, StagesRequest):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas[model.__name__] = body
        app.openapi_schema = errors.document(doc, "ErrorBody")
    return app.openapi_schema


app.openapi = openapi_document  # type: ignore[method-assign]  # FastAPI's documented way to shape the document

if SETTINGS.serving.api_docs:

    @app.get("/docs", include_in_schema=False)
    def reference() -> HTMLResponse:
        """The API reference as one page with no script (serving/apidocs.py)."""
        return HTMLResponse(reference_html(openapi_document()), headers=DOCS_HEADERS)


def front_door() -> Starlette:
    """`/` redirects to the dashboard; mounted on the service before BentoML's own index page."""

    async def to_dashboard(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + "/dashboard/", status_code=307)

    return Starlette(routes=[Route("/", to_dashboard, methods=["GET", "HEAD"])])


KEY_HEADERS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
    for name in ("authorization", "x-api-key")
]
SCORE_DOC = {
    "parameters": KEY_HEADERS,
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScoreRequest"}}},
    },
}


def body_doc(model: str) -> dict:
    """The OpenAPI entry of an endpoint that reads its JSON body itself, as `model` describes it."""
    return {
        "parameters": KEY_HEADERS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        },
    }


@bentoml.service(
    name="leadradar",
    workers=SETTINGS.serving.workers,
    traffic={"timeout": 60},
    logging={"access": {"enabled": SETTINGS.serving.access_log}},
    metrics={"enabled": SETTINGS.serving.metrics},
    tracing={} if SETTINGS.serving.tracing else {"excluded_urls": ["/v1", "/dashboard"]},
)
@bentoml.asgi_app(front_door(), path="/")  # matches `/` only: BentoML's mounts match a route, not a prefix
@bentoml.asgi_app(service_dashboard(), path="/dashboard")  # the managers' pages (serving/dashboard/)
@bentoml.asgi_app(app, path="/v1")
class LeadRadar:
    def __init__(self) -> None:
        # A registry that does not answer should cost seconds, not MLflow's default minutes of retries:
        # the service then serves its last local copy.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
        settings = get_settings()
        self.settings = settings
        self.keys = KeyStore(
            settings.score_store_url, settings.serving.key_cache_seconds, settings.serving.key_cache_size
        )
        app.state.keys = self.keys
        self.store = ScoreStore(settings.score_store_url)
        self.audit_log = AuditLog(settings.score_store_url)
        self.ranked = RankedCache(self.store, settings.serving.grade)
        self.events = EventStore.open(settings)  # one per worker process; writes are serialised inside it
        self.outbox = Outbox(settings.score_store_url, settings.alerts.rules)
        self.feedback = ScoreFeedback(settings.score_store_url)
        self.ledger = HeldLedger(settings.lifecycle_url)
        registry = build_registry(settings)
        self.words = ReasonWriter(registry, settings.funnel)
        online = OnlineFeatures(settings, registry, cache=settings.query_cache_dir)
        tiles = (
            OnlineTiles(settings, registry, query_cache=settings.query_cache_dir)
            if settings.features.online_tiles
            else None
        )
        context = ContextCache(self.store, settings.serving.context_cache_seconds)
        self.holder: ModelHolder[Engine] = ModelHolder(
            settings,
            lambda loaded: Engine(
                loaded, settings, registry, online, context, load_items(settings, loaded), self.events, tiles
            ),
        )

    @bentoml.on_startup
    def follow_champion(self) -> None:
        """Poll the registry for a new champion once the worker is up (BentoML runs this after __init__),
        and rescore leads as their events land (serving/rescoring.py; one worker, when `serving.rescore`)."""
        sys.setswitchinterval(self.settings.serving.switch_interval_ms / 1000)
        self.holder.start()
        self.rescorer: Rescorer | None = None
        self.alerting: Any = None
        if rescoring_worker(self.settings, bentoml.server_context.worker_index):
            events = EventStore.open(self.settings)
            self.alerting = _alerting(self.settings, events, self.store)
            after = self.alerting.alerter.after_rescoring if self.alerting is not None else None
            self.rescorer = Rescorer(
                self.settings,
                events,
                self.store,
                lambda: self.holder.current,
                positions=Positions(self.store.engine),
                after=after,
            )
            self.rescorer.start()

    @bentoml.on_shutdown
    def stop_following_champion(self) -> None:
        """End the poll and rescoring threads when the worker shuts down, before BentoML tears the service down."""
        self.holder.stop()
        rescorer: Rescorer | None = getattr(self, "rescorer", None)
        if rescorer is not None:
            rescorer.stop()
        alerting = getattr(self, "alerting", None)
        if alerting is not None:
            alerting.stop()
        self.ledger.close()

    def __is_ready__(self) -> bool:
        return self.holder.current is not None

    def _principal(self, request: Request, action: str) -> Principal:
        """The caller KeyGate verified (or, outside it, the key in the headers), allowed to do `action`."""
        principal = request.scope.get(PRINCIPAL) or self.keys.verify(
            request_key(request.headers.get("authorization"), request.headers.get("x-api-key"))
        )
        if principal is None:
            raise HTTPException(
                401,
                "missing or unknown API key; send `Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.may(action):
            raise HTTPException(403, f"a {principal.role} key may not {action}")
        return principal

    def _engine(self) -> Engine:
        engine = self.holder.current
        if engine is None:
            raise HTTPException(503, f"no model to score with: {self.holder.problem}")
        return engine

    @app.post(
        "/score",
        response_model=ScoreResponse,
        response_model_by_alias=True,
        responses=ERRORS,
        openapi_extra=SCORE_DOC,
    )
    async def score(self, request: Request) -> Response:
        """Close probability per horizon, funnel transitions, grade and reasons, from feature rows or raw events."""
        # The body is parsed straight from its bytes by pydantic, and the answer serialised once: FastAPI's
        # own path (json.loads, then validating Python objects) took 70 ms for 1,000 leads against 23 ms.
        principal = self._principal(request, "score")
        try:
            body = ScoreRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            return errors.invalid(exc.errors(include_url=False, include_input=False), ("body",))
        engine = self._engine()
        try:
            quick = engine.quick(body, principal.tenant_id)
            answer = engine.score(body, principal) if quick else await run_in_threadpool(engine.score, body, principal)
        except PermissionError as exc:
            raise HTTPException(403, str(exc)) from None
        except RequestError as exc:
            return errors.invalid([{"loc": exc.loc, "msg": exc.message, "type": "value_error"}])
        return Response(answer.model_dump_json(by_alias=True), media_type="application/json")

    @app.post("/rank", response_model=RankResponse, responses=ERRORS, openapi_extra={"parameters": KEY_HEADERS})
    def rank(self, request: Request, body: Annotated[RankRequest | None, Body()] = None):
        """The tenant's open leads from the latest batch scores, most likely closers first (no body: page 1)."""
        principal = self._principal(request, "rank")
        body = body or RankRequest()
        sales = body.sales_id
        if principal.role == "sales":
            if sales not in (None, principal.sales_id):
                raise HTTPException(403, "a sales key sees only its own leads")
            sales = principal.sales_id
        frame = self.ranked.get(principal.tenant_id)
        for column, wanted in (("sales_id", sales), ("stage", body.stage), ("grade", body.grade)):
            if wanted is not None:
                frame = frame[frame[column] == wanted]
        start = (body.page - 1) * body.page_size
        page = frame.iloc[start : start + body.page_size]
        leads = [
            RankedLead(
                rank=int(r["rank"]),
                lead_id=r["lead_id"],
                sales_id=r["sales_id"],
                stage=r["stage"],
                p_close=float(r["p_close"]),
                grade=r["grade"],
                change=None if r["change"] != r["change"] else float(r["change"]),
                **ranked_certainty(r, body.lang),
            )
            for r in page.to_dict("records")
        ]
        return RankResponse(
            tenant_id=principal.tenant_id,
            as_of=frame["as_of"].iloc[0] if len(frame) else None,
            model_version=str(frame["model_version"].iloc[0]) if len(frame) else None,
            total=len(frame),
            page=body.page,
            page_size=body.page_size,
            leads=leads,
        )

    @app.get("/model", response_model=ModelInfo, responses=ERRORS, openapi_extra={"parameters": KEY_HEADERS})
    def model(self, request: Request):
        """Which model answers, the data window it learned from, and its test-period metrics."""
        self._principal(request, "model")
        status = self.holder.status()
        loaded = self.holder.loaded
        meta = loaded.meta if loaded else {}
        return ModelInfo(
            **{k: status[k] for k in ("ready", "name", "version", "alias", "source", "loaded_at", "problem")},
            window=meta.get("window"),
            test_metrics=meta.get("test_metrics"),
            targets=sorted(loaded.model.targets_) if loaded else [],
            skipped_targets=meta.get("skipped_targets", {}),
            features=list(loaded.model.features) if loaded else [],
            attributes=model_attributes(loaded.model.features, self.settings) if loaded else [],
            event_types=dict(self.settings.events.types),
            stages=list(self.settings.funnel.all_stages),
            lifecycle=model_lifecycle(self.settings, history=5, ledger=self.ledger.get()),
        )

    @app.get("/audit", response_model=AuditResponse, responses=ERRORS, openapi_extra={"parameters": KEY_HEADERS})
    def audit(self, request: Request, limit: int = 100):
        """The tenant's audit log, newest first: sign-ins, keys created and revoked, exports, deletions."""
        principal = self._principal(request, "audit")
        entries = self.audit_log.read(principal.tenant_id, min(max(limit, 1), 1000))
        return AuditResponse(
            tenant_id=principal.tenant_id,
            entries=[AuditRow.model_validate(e, from_attributes=True) for e in entries],
        )

    async def _ingest(self, request: Request, kind: ItemKind) -> Response:
        """Read, check and store one request's items in a worker thread; answer once the store committed."""
        principal = self._principal(request, "write_events")
        raw = await request.body()
        try:
            table = await run_in_threadpool(
                read_items, raw, kind, principal.tenant_id, self.settings.store.max_events_per_request
            )
        except TooManyItems as exc:
            return errors.error_response(413, "too many items", str(exc))
        except BodyShapeError as exc:
            return errors.invalid([{"loc": exc.loc, "msg": exc.message, "type": exc.kind}])
        done = await run_in_threadpool(ingest, self.events, kind, table, principal.tenant_id, self.settings)
        return Response(json.dumps(done, ensure_ascii=False), media_type="application/json")

    @app.post("/events", response_model=IngestResponse, responses=ERRORS, openapi_extra=body_doc("EventsRequest"))
    async def post_events(self, request: Request) -> Response:
        """Store radar events (system keys): idempotent by event id, each refused event quarantined with its reason."""
        return await self._ingest(request, EVENTS)

    @app.post("/stages", response_model=IngestResponse, responses=ERRORS, openapi_extra=body_doc("StagesRequest"))
    async def post_stages(self, request: Request) -> Response:
        """Store CRM stage changes (system keys): the same change sent again counts once."""
        return await self._ingest(request, STAGES)

    @app.get(
        "/quarantine", response_model=QuarantineResponse, responses=ERRORS, openapi_extra={"parameters": KEY_HEADERS}
    )
    def quarantine(self, request: Request, limit: int = Query(100, ge=1, le=1000), before: int | None = None):
        """The tenant's quarantined events and stage changes, newest first, each with its field and reason."""
        principal = self._principal(request, "quarantine")
        rows = self.events.quarantine(principal.tenant_id, limit=limit, before_id=before)
        items = [
            QuarantinedItem(index=r["row"], **{k: r[k] for k in QuarantinedItem.model_fields if k in r}) for r in rows
        ]
        return QuarantineResponse(
            tenant_id=principal.tenant_id,
            items=items,
            next_before=items[-1].id if len(items) == limit else None,
        )

    @app.get(
        "/leads/{lead_id}",
        response_model=LeadResponse,
        responses={**ERRORS, 404: {"model": ErrorBody}},
        openapi_extra={"parameters": KEY_HEADERS},
    )
    def lead(
        self,
        request: Request,
        lead_id: str,
        limit: int = Query(50, ge=1, le=500),
        before: int | None = None,
        lang: Lang = "en",
    ):
        """One lead: its stored events (newest first, paged by `before`), its score history and current reasons."""
        principal = self._principal(request, "lead")
        try:
            view = lead_view(
                self.events,
                self.store,
                principal,
                lead_id,
                limit=limit,
                before=before,
                lang=lang,
                words=self.words,
                settings=self.settings,
            )
        except LeadNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except NotYourLead as exc:
            raise HTTPException(403, str(exc)) from None
        return LeadResponse.model_validate(view, from_attributes=True)

    @app.delete(
        "/leads/{lead_id}",
        response_model=ForgetResponse,
        responses=ERRORS,
        openapi_extra={"parameters": KEY_HEADERS},
    )
    def forget(self, request: Request, lead_id: str = Path(max_length=200)):
        """Forget one lead of the key's tenant (PIPL): its events, scores and timeline everywhere, audited by hash."""
        principal = self._principal(request, "forget")
        actor = f"key:{principal.key_id}"
        try:
            report = forget_lead(
                self.settings, self.events, self.store, self.audit_log, principal.tenant_id, lead_id, actor
            )
        except BadValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return ForgetResponse(tenant_id=principal.tenant_id, lead_hash=report.lead_hash, deleted=report.deleted)

    @app.post(
        "/leads/{lead_id}/feedback",
        response_model=ScoreFeedbackResponse,
        responses={**ERRORS, 404: {"model": ErrorBody}},
        openapi_extra={"parameters": KEY_HEADERS},
    )
    def score_feedback(self, request: Request, body: ScoreFeedbackRequest, lead_id: str = Path(max_length=200)):
        """ "This score is wrong": too high or too low, on the lead's score of a model version (default its latest);
        a sales key only on its own leads. Counted per model version on the health page."""
        principal = self._principal(request, "score_feedback")
        try:
            judged = judge_score(
                self.feedback,
                self.store,
                self.events,
                Judge.of_key(principal),
                lead_id,
                body.verdict,
                model_version=body.model_version,
                p_close=body.p_close,
                note=body.note,
            )
        except LeadNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except NotYourLead as exc:
            raise HTTPException(403, str(exc)) from None
        except UnknownScore as exc:
            return errors.invalid([{"loc": ["body", "model_version"], "msg": str(exc), "type": "value_error"}])
        return ScoreFeedbackResponse(
            feedback_id=judged.feedback_id,
            lead_id=judged.lead_id,
            model_version=judged.model_version,
            p_close=judged.p_close,
            verdict=judged.verdict,
        )

    @app.post(
        "/alerts/{alert_id}/feedback",
        response_model=AlertFeedbackResponse,
        responses={**ERRORS, 404: {"model": ErrorBody}},
        openapi_extra={"parameters": KEY_HEADERS},
    )
    def alert_feedback(self, request: Request, alert_id: str, body: AlertFeedbackRequest):
        """A verdict on one alert of the key's tenant (a sales key: only on its own alerts)."""
        principal = self._principal(request, "alert_feedback")
        try:
            stored = give_feedback(self.outbox, principal, alert_id, body.verdict, datetime.now(UTC))
        except AlertNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except NotYourAlert as exc:
            raise HTTPException(403, str(exc)) from None
        return AlertFeedbackResponse(
            alert_id=stored.alert_id, rule=stored.alert.rule, lead_id=stored.alert.lead_id, verdict=body.verdict
        )


def _alerting(settings: Settings, events: EventStore, scores: ScoreStore) -> Any:
    """Alerting beside rescoring (serving/alerts/wiring.py), unless `alerts.rules.enabled` is off."""
    if not settings.alerts.rules.enabled:
        return None
    from leadradar.serving.alerts.wiring import start_alerting

    return start_alerting(settings, events, scores)


@app.api_route(
    "/{path:path}", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], include_in_schema=False
)
def unknown(request: Request, path: str) -> Response:
    """Last route: BentoML mounts this app only for paths one of its routes matches, and would answer any other
    /v1 path with a plain-text 404; here it gets the API's error shape (and 405 for a known path's wrong method)."""
    others = [route for route in app.routes if getattr(route, "endpoint", None) is not unknown]
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in others):
        raise HTTPException(405, f"{request.method} is not allowed here; /v1/openapi.json lists the methods")
    raise HTTPException(404, "no such endpoint; /v1/openapi.json lists them")
