"""The words every part of alerting shares: an alert, the message made of it, a channel and one delivery."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from leadradar.config import Lang

RuleName = Literal["hot_action", "threshold", "spike", "back_from_dormant", "going_cold", "digest", "drift"]
# Notices about the model, not a lead (serving/alerts/drift_notice.py): they go to managers, never to a lead's feed.
NOTICE_RULES: tuple[str, ...] = ("drift",)


@dataclass(frozen=True)
class Alert:
    """One thing a salesperson (or the boss) should hear about, as the rules found it.

    `dedup_key` is (tenant, lead, rule, session): the outbox refuses a second alert with the same key.
    `what` carries the facts the message words (e.g. {"event_type": "product_view", "item_id": ...,
    "dwell_s": 192, "visit": 4}); `reasons` are the score's top reasons as stored with the live score.
    """

    tenant_id: str
    lead_id: str
    sales_id: str
    rule: RuleName
    at: datetime
    p_close: float
    p_before: float | None
    grade: str
    dedup_key: str
    what: dict[str, object] = field(default_factory=dict)
    reasons: list[dict[str, object]] = field(default_factory=list)
    deal_value: float | None = None

    @property
    def value(self) -> float:
        """Expected value: what the daily budget ranks by (probability x deal value where known)."""
        return self.p_close * (self.deal_value if self.deal_value else 1.0)


@dataclass(frozen=True)
class Message:
    """An alert or a digest worded for people, in one language, in the forms channels need.

    `markdown` for WeCom/DingTalk/Feishu robots, `text` for plain channels, `html` for e-mail; `link` is the lead
    page (or the dashboard for a digest). Group-robot messages never carry phone numbers or other personal data.
    """

    title: str
    markdown: str
    text: str
    html: str
    link: str
    lang: Lang = "zh-CN"


@dataclass(frozen=True)
class Delivery:
    """What one attempt to send got: sent, worth retrying (5xx, time-out, rate limit), or gone (410: disable)."""

    ok: bool
    status: int | None = None
    retry: bool = False
    gone: bool = False
    detail: str = ""


class Channel(Protocol):
    """A place messages go: a WeCom/DingTalk/Feishu robot, a WeCom app message, a webhook, e-mail."""

    kind: str
    # The platform's own limit, e.g. 20 messages a minute for a WeCom or DingTalk group robot.
    per_minute: int

    def send(self, message: Message, recipient: str | None = None) -> Delivery:
        """One attempt; never raises for a failure of the other side (that is a `Delivery`)."""
        ...
