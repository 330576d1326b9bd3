"""The /v1 API's request and response bodies; their JSON Schema is the service's OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from leadradar.config import Grade, Lang
from leadradar.features.validation import VISIBLE_EXPECTED, invisible_in

LeadStatus = Literal["scored", "closed", "unknown"]
FeatureValue = float | int | bool | str | None
Id = Field(min_length=1, max_length=128)


def _visible(value: str | None) -> str | None:
    """The id rule of features/validation.py for ids a request names outside its events."""
    if value is not None and invisible_in(value):
        raise ValueError(f"holds an invisible or direction-changing character ({VISIBLE_EXPECTED})")
    return value


VisibleId = Annotated[str, AfterValidator(_visible)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(Strict):
    """One radar event of the lead (tenant comes from the API key; lead defaults to the lead scored)."""

    event_id: str = Field(min_length=1, max_length=128)
    ts: AwareDatetime = Field(
        description="with a time zone (naive times are refused);"
        " from settings.events.earliest_ts up to now + settings.events.future_tolerance"
    )
    event_type: str = Field(min_length=1, max_length=64)
    sales_id: str = Field(min_length=1, max_length=128)
    dwell_s: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="seconds; at most settings.events.max_dwell_seconds"
    )
    item_id: str | None = Field(default=None, max_length=128)
    referrer_lead_id: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=64)
    lead_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="another lead's event, e.g. a visit this lead's share brought",
    )


class StageIn(Strict):
    stage: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime


class LeadIn(Strict):
    """A lead to score: its feature row, or its raw events (and stage history), or only its id (its history
    in the event store, optionally plus events and stages sent inline that are not stored yet)."""

    lead_id: VisibleId = Id
    tenant_id: VisibleId | None = Field(
        default=None, min_length=1, max_length=64, description="optional; must be the API key's tenant"
    )
    features: dict[str, FeatureValue] | None = Field(default=None, max_length=2000)
    events: list[EventIn] | None = Field(default=None, max_length=20_000)
    stages: list[StageIn] | None = Field(default=None, max_length=200)
    attributes: dict[str, str | None] | None = Field(default=None, max_length=50)
    stored: bool | None = Field(
        default=None,
        description="read the lead's stored events and stages as of `as_of` (default: when neither `features`"
        " nor `events` is given); inline events and stages are added to them",
    )

    @model_validator(mode="after")
    def _one_input(self) -> LeadIn:
        if self.features is not None and (self.events is not None or self.stored):
            raise ValueError("give either `features` or `events` (inline or stored) for each lead, not both")
        if self.features is None and self.events is None and self.stored is False:
            raise ValueError("give either `features` or `events`, or leave `stored` on to read the stored history")
        return self

    @property
    def from_store(self) -> bool:
        """Whether the lead's features come from its stored history."""
        return self.stored if self.stored is not None else self.features is None and self.events is None


class ScoreRequest(Strict):
    leads: list[LeadIn] = Field(min_length=1, max_length=1000, description="at most 1,000 leads per call")
    lang: Lang = "en"
    as_of: AwareDatetime | None = Field(default=None, description="for raw events: score as of this time (default now)")
    explain: bool = Field(default=True, description="include the top reasons for and against")


class Reason(BaseModel):
    feature: str
    value: float | str | None
    contribution: float
    text: str


class Reasons(BaseModel):
    for_: list[Reason] = Field(alias="for", serialization_alias="for")
    against: list[Reason]

    model_config = ConfigDict(populate_by_name=True)


class CloseWindow(BaseModel):
    from_days: int = Field(description="first day of the window after as_of (0: from now)")
    to_days: int
    text: str = Field(description="the window in the asked language")


class LeadScore(BaseModel):
    lead_id: str
    tenant_id: str
    status: LeadStatus = Field(
        description="closed: won or lost at as_of; unknown: nothing about the lead at or before as_of"
    )
    stage: str | None = None
    p_close: dict[str, float] = Field(default_factory=dict, description="by horizon, e.g. {'30d': 0.12}")
    p_advance: float | None = Field(default=None, description="chance of moving past the current stage")
    transitions: dict[str, float] = Field(default_factory=dict, description="per funnel stage from here on")
    grade: Grade | None = None
    p_lo: float | None = Field(
        default=None,
        description="low end of the main horizon's interval (settings.training.interval_level, 90 % by default)",
    )
    p_hi: float | None = None
    low_confidence: bool | None = Field(
        default=None,
        description="little data like this lead: the interval's width from the calibration bin's support is wider "
        "than settings.serving.low_confidence_width",
    )
    pooled: bool | None = Field(
        default=None,
        description="the tenant has too little labelled history of its own: the pooled calibration answered",
    )
    expected_close: CloseWindow | None = Field(
        default=None,
        description="if the lead closes within the longest horizon, more likely than not within this window;"
        " null when that chance is below settings.serving.close_window_min_p",
    )
    reasons: Reasons | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="what the answer could not take into account, e.g. an attribute the model uses that was not sent",
    )


class ScoreResponse(BaseModel):
    model_name: str
    model_version: str
    horizon_days: int
    as_of: datetime | None = None
    leads: list[LeadScore]


class RankRequest(Strict):
    sales_id: VisibleId | None = Field(default=None, min_length=1, max_length=128)
    stage: str | None = Field(default=None, min_length=1, max_length=64)
    grade: Grade | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=50, ge=1, le=500)
    lang: Lang = Field(default="en", description="the language of each lead's expected close window")


class RankedLead(BaseModel):
    rank: int
    lead_id: str
    sales_id: str | None
    stage: str | None
    p_close: float
    grade: str
    change: float | None
    p_lo: float | None = None
    p_hi: float | None = None
    low_confidence: bool | None = None
    pooled: bool | None = None
    expected_close: CloseWindow | None = None


class RankResponse(BaseModel):
    tenant_id: str
    as_of: datetime | None
    model_version: str | None
    total: int
    page: int
    page_size: int
    leads: list[RankedLead]


class ModelInfo(BaseModel):
    ready: bool
    name: str
    version: str | None
    alias: str
    source: str | None
    loaded_at: str | None
    problem: str | None
    window: dict | None = None
    test_metrics: dict | None = None
    targets: list[str] = []
    skipped_targets: dict[str, str] = {}
    features: list[str] = Field(default=[], description="the feature row a lead's `features` must carry")
    attributes: list[str] = Field(
        default=[], description="the lead attributes the model reads; send them as a lead's `attributes`"
    )
    event_types: dict[str, str] = Field(default={}, description="event types the service accepts, with their family")
    stages: list[str] = Field(default=[], description="the funnel's stages, in order, then the lost stage")
    # Retraining: the schedule (cron, time zone, last and next run and outcome) and the last retrains.
    lifecycle: dict[str, Any] | None = None


class AuditRow(BaseModel):
    """One act of the audit log (serving/audit.py): codes, ids and account names, never a secret."""

    at: datetime
    actor: str
    action: str
    target: str | None
    detail: str | None


class AuditResponse(BaseModel):
    tenant_id: str
    entries: list[AuditRow]


class ForgetResponse(BaseModel):
    """What `DELETE /v1/leads/{id}` deleted: counts per place; the lead is named by its salted hash only."""

    tenant_id: str
    lead_hash: str
    deleted: dict[str, int]


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="the field's path, e.g. ['body', 'leads', 0, 'events', 2, 'ts']")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every answer that is not a success, whatever its status (serving/errors.py)."""

    error: str = Field(description="one line: what was wrong, naming the field where there is one")
    detail: list[FieldError] | str | None = Field(
        default=None, description="422: every field error; 413: the limit; otherwise absent"
    )


# -- the event store's endpoints: /v1/events, /v1/stages, /v1/quarantine, /v1/leads/{lead_id} ----------------


class StoredEventIn(BaseModel):
    """One radar event for the store. Field values are judged by the one rule set (features/validation.py):
    an event that breaks a rule is quarantined with its reason, not refused with the request."""

    event_id: str
    tenant_id: str | None = Field(default=None, description="optional; the API key's tenant when left out")
    lead_id: str
    sales_id: str
    ts: str = Field(description="ISO 8601 with a time zone, e.g. 2026-03-01T10:00:00+08:00")
    event_type: str
    dwell_s: float | None = None
    item_id: str | None = None
    referrer_lead_id: str | None = None
    channel: str | None = None

    model_config = ConfigDict(extra="forbid")


class EventsRequest(BaseModel):
    events: list[StoredEventIn] = Field(description="at most settings.store.max_events_per_request (5,000)")

    model_config = ConfigDict(extra="forbid")


class StoredStageIn(BaseModel):
    """One CRM stage change for the store; values are judged by the stage rules (features/validation.py)."""

    tenant_id: str | None = Field(default=None, description="optional; the API key's tenant when left out")
    lead_id: str
    stage: str
    ts: str = Field(description="ISO 8601 with a time zone")
    deal_value: float | None = None

    model_config = ConfigDict(extra="forbid")


class StagesRequest(BaseModel):
    stages: list[StoredStageIn] = Field(description="at most settings.store.max_events_per_request (5,000)")

    model_config = ConfigDict(extra="forbid")


class Refused(BaseModel):
    index: int = Field(description="0-based position of the item in the request")
    field: str
    reason: str


class IngestResponse(BaseModel):
    """Sent only after the store committed: received = stored + duplicate + quarantined, always."""

    received: int
    stored: int
    duplicate: int
    quarantined: int
    refused: list[Refused]


class QuarantinedItem(BaseModel):
    id: int
    kind: str
    source: str
    index: int = Field(description="0-based position in the request or file it came in")
    field: str
    reason: str
    received: dict = Field(description="the item as received")
    received_at: datetime


class QuarantineResponse(BaseModel):
    tenant_id: str
    items: list[QuarantinedItem]
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null at the end")


class TimelineEvent(BaseModel):
    seq: int = Field(description="the event's place in the log; pass the last one as `before` to page on")
    event_id: str
    ts: datetime
    arrived_at: datetime | None = Field(description="null for a backfilled event (it counts from its own time)")
    event_type: str
    what: str = Field(description="the event in words, in the asked language")
    sales_id: str | None
    dwell_s: float | None
    item_id: str | None
    item_name: str | None = Field(description="as the tenant's item catalogue names it, where it does")
    channel: str | None


class ScorePoint(BaseModel):
    as_of: datetime
    model_version: str
    p_close: float
    grade: Grade
    stage: str | None
    source: Literal["batch", "live"] = Field(default="batch", description="a batch run, or a live rescoring")
    moved_by: str | None = Field(default=None, description="live: the event id that moved the score")


class StoredReason(BaseModel):
    feature: str
    contribution: float
    text: str


class CurrentScore(ScorePoint):
    reasons: dict[str, list[StoredReason]] = Field(description='{"for": [...], "against": [...]}, strongest first')


class LeadResponse(BaseModel):
    tenant_id: str
    lead_id: str
    sales_id: str | None = Field(description="the salesperson of the lead's latest event")
    events: list[TimelineEvent] = Field(description="newest first")
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null at the end")
    scores: list[ScorePoint] = Field(description="oldest first")
    current: CurrentScore | None


class AlertFeedbackRequest(BaseModel):
    """A verdict on one alert: useful, not now (right lead, wrong moment) or wrong."""

    verdict: Literal["useful", "not_now", "wrong"]


class AlertFeedbackResponse(BaseModel):
    alert_id: str
    rule: str
    lead_id: str
    verdict: str


class ScoreFeedbackRequest(BaseModel):
    """ "This score is wrong": the verdict on one of the lead's scores (by default its latest) and why."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["too_high", "too_low"]
    model_version: str | None = Field(
        None, max_length=32, description="the model version whose score is judged; default: the lead's latest score"
    )
    p_close: float | None = Field(None, ge=0, le=1, description="the probability the judge saw")
    note: str | None = Field(None, max_length=500, description="why, in a sentence (at most 500 characters)")


class ScoreFeedbackResponse(BaseModel):
    feedback_id: int
    lead_id: str
    model_version: str
    p_close: float
    verdict: str
