"""The one outbox: every alert is stored before anything is sent, with one delivery row per channel it goes to.

Tables in the score store's database (SQLite by default, PostgreSQL by URL): `alerts` (the alert, where restraint
routed it, feedback; `dedup_key` unique, so a session is stored once however often it is judged),
`alert_deliveries` (per alert and channel: status, attempts, `next_attempt_at`, so retries survive a restart),
`alert_attempts` (every attempt, what the other side answered) and `alert_endpoints` (a channel disabled, and why).

Retries back off exponentially with full jitter (a random wait up to min(max, base x 2^attempt): AWS's analysis
of backoff shows full jitter spreads a thundering herd best) for `retry_hours` after the first attempt. An
endpoint that answers 410, or has failed every attempt for `disable_after_hours`, is disabled with a note; its
deliveries wait as `disabled` until someone re-enables it and re-sends.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from leadradar.config import AlertRules
from leadradar.serving.alerts.alert import NOTICE_RULES, Alert, Delivery
from leadradar.serving.alerts.restraint import Decided
from leadradar.serving.store import engine_for

METADATA = sa.MetaData()
_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ALERTS = sa.Table(
    "alerts",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("lead_id", sa.String(128), nullable=False),
    sa.Column("sales_id", sa.String(128), nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("dedup_key", sa.String(400), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("route", sa.String(16), nullable=False),  # instant, digest, dropped
    sa.Column("deliver_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("p_close", sa.Float, nullable=False),
    sa.Column("body", sa.Text, nullable=False),  # the Alert as JSON
    sa.Column("feedback", sa.String(16)),
    sa.Column("feedback_by", sa.String(200)),
    sa.Column("feedback_at", sa.DateTime(timezone=True)),
    sa.Index("ix_alerts_tenant_at", "tenant_id", "at"),
)
DELIVERIES = sa.Table(
    "alert_deliveries",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("alert_id", _ID, sa.ForeignKey("alerts.id"), nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("recipient", sa.String(400)),
    sa.Column("lang", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, sent, failed, disabled, withheld
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("first_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("detail", sa.Text),
    sa.Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
)
ATTEMPTS = sa.Table(
    "alert_attempts",
    METADATA,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", _ID, nullable=False),
    sa.Column("alert_id", _ID, nullable=False),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Column("seconds", sa.Float, nullable=False),
)
ENDPOINTS = sa.Table(
    "alert_endpoints",
    METADATA,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("channel", sa.String(200), primary_key=True),
    sa.Column("failing_since", sa.DateTime(timezone=True)),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.Column("note", sa.Text),
)
VERDICTS = ("useful", "not_now", "wrong")


@dataclass(frozen=True)
class Target:
    """Where one alert goes: the channel's name and kind, the person on it (None for a group), the language."""

    channel: str
    kind: str
    recipient: str | None
    lang: str


@dataclass(frozen=True)
class Due:
    """A delivery whose time has come."""

    delivery_id: int
    alert_id: int
    alert: Alert
    target: Target
    attempts: int
    first_attempt_at: datetime | None


@dataclass(frozen=True)
class Stored:
    """One alert as the outbox keeps it (the dashboard's feed item): its id, the alert, delivery, feedback."""

    alert_id: str
    alert: Alert
    status: str = ""
    feedback: str | None = None
    route: str = ""
    deliver_at: datetime | None = None


def aware(t: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time stored here is UTC."""
    return None if t is None else (t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC))


def alert_json(alert: Alert) -> str:
    data = asdict(alert)
    data["at"] = alert.at.astimezone(UTC).isoformat()
    return json.dumps(data, ensure_ascii=False, default=str)


def alert_from(body: str) -> Alert:
    data = json.loads(body)
    data["at"] = datetime.fromisoformat(data["at"])
    return Alert(**data)


def backoff(attempt: int, rules: AlertRules, rng: random.Random | None = None) -> timedelta:
    """Full jitter: a uniform wait up to min(retry_max, retry_base x 2^attempt)."""
    cap = min(rules.retry_max_seconds, rules.retry_base_seconds * 2 ** min(attempt, 30))
    return timedelta(seconds=(rng or random.SystemRandom()).uniform(0, cap))


class Outbox:
    """The stored alerts and their deliveries; every method takes `now`, so tests drive the clock."""

    def __init__(self, url: str, rules: AlertRules):
        self.engine = engine_for(url)
        self.rules = rules
        METADATA.create_all(self.engine)

    # -- storing ----------------------------------------------------------------------------------

    def record(self, decided: Sequence[Decided], targets: Callable[[Alert], list[Target]], now: datetime) -> list[int]:
        """Store each decision (a dedup key already stored is skipped) and, for instant ones, a pending delivery
        to each of `targets(alert)` (the tenant's channels; the owner on a personal one); the ids stored now."""
        stored = []
        for d in decided:
            a = d.alert
            row = {
                "tenant_id": a.tenant_id,
                "lead_id": a.lead_id,
                "sales_id": a.sales_id,
                "rule": a.rule,
                "dedup_key": a.dedup_key,
                "at": a.at,
                "created_at": now,
                "route": d.route,
                "deliver_at": d.deliver_at,
                "note": d.note,
                "p_close": a.p_close,
                "body": alert_json(a),
            }
            try:
                with self.engine.begin() as conn:
                    alert_id = int(conn.execute(ALERTS.insert().values(**row).returning(ALERTS.c.id)).scalar_one())
                    if d.route == "instant":
                        for t in targets(a):
                            conn.execute(DELIVERIES.insert().values(**self._delivery(alert_id, a.tenant_id, t, d)))
            except sa.exc.IntegrityError:
                continue
            stored.append(alert_id)
        return stored

    @staticmethod
    def _delivery(alert_id: int, tenant: str, t: Target, d: Decided) -> dict[str, Any]:
        return {
            "alert_id": alert_id,
            "tenant_id": tenant,
            "channel": t.channel,
            "kind": t.kind,
            "recipient": t.recipient,
            "lang": t.lang,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": d.deliver_at,
        }

    def known(self, keys: Sequence[str]) -> set[str]:
        """Which of these dedup keys are stored already."""
        if not keys:
            return set()
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(ALERTS.c.dedup_key).where(ALERTS.c.dedup_key.in_(list(keys)))).scalars())

    def decided_since(self, tenant: str, since: datetime) -> list[Decided]:
        """The tenant's decisions from `since` on (or delivered from then on): what restraint counts against."""
        c = ALERTS.c
        q = sa.select(c.body, c.route, c.deliver_at, c.note).where(
            (c.tenant_id == tenant) & ((c.at >= since) | (c.deliver_at >= since))
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [Decided(alert_from(r.body), r.route, aware(r.deliver_at) or since, r.note or "") for r in rows]

    # -- delivering -------------------------------------------------------------------------------

    def due(self, now: datetime, limit: int = 100) -> list[Due]:
        """Pending deliveries whose time has come, oldest first."""
        d, a = DELIVERIES.c, ALERTS.c
        q = (
            sa.select(d.id, d.alert_id, d.channel, d.kind, d.recipient, d.lang, d.attempts, d.first_attempt_at, a.body)
            .join(ALERTS, a.id == d.alert_id)
            .where((d.status == "pending") & (d.next_attempt_at <= now))
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            Due(
                r.id,
                r.alert_id,
                alert_from(r.body),
                Target(r.channel, r.kind, r.recipient, r.lang),
                r.attempts,
                aware(r.first_attempt_at),
            )
            for r in rows
        ]

    def disabled(self, tenant: str, channel: str) -> str | None:
        """Why the channel is disabled, or None if it is not."""
        e = ENDPOINTS.c
        q = sa.select(e.disabled_at, e.note).where((e.tenant_id == tenant) & (e.channel == channel))
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return None if row is None or row.disabled_at is None else (row.note or "disabled")

    def postpone(self, due: Due, until: datetime, why: str) -> None:
        """Not an attempt (a rate limit of ours, or a disabled endpoint): the delivery waits."""
        status = "disabled" if why.startswith("disabled") else "pending"
        with self.engine.begin() as conn:
            conn.execute(
                DELIVERIES.update()
                .where(DELIVERIES.c.id == due.delivery_id)
                .values(next_attempt_at=until, detail=why, status=status)
            )

    def withhold(self, due: Due, now: datetime, why: str) -> None:
        """Not sent and never will be (the lead withdrew consent after the alert was decided); not an attempt."""
        with self.engine.begin() as conn:
            conn.execute(
                DELIVERIES.update()
                .where(DELIVERIES.c.id == due.delivery_id)
                .values(status="withheld", detail=f"{why} ({now:%Y-%m-%d %H:%M} UTC)"[:500])
            )

    def attempted(self, due: Due, result: Delivery, now: datetime, seconds: float) -> str:
        """Log one attempt and move the delivery on: sent, retried later, failed, or its endpoint disabled."""
        first = due.first_attempt_at or now
        attempts = due.attempts + 1
        tenant, channel = due.alert.tenant_id, due.target.channel
        values: dict[str, Any] = {"attempts": attempts, "first_attempt_at": first, "detail": result.detail[:500]}
        note = None
        if result.ok:
            values |= {"status": "sent", "sent_at": now}
        elif result.gone:
            values["status"] = "disabled"
            note = f"disabled {now:%Y-%m-%d %H:%M} UTC: the endpoint answered {result.status} (gone)"
        elif result.retry and now - first < timedelta(hours=self.rules.retry_hours):
            values |= {"status": "pending", "next_attempt_at": now + backoff(attempts, self.rules)}
        else:
            values["status"] = "failed"
        with self.engine.begin() as conn:
            conn.execute(
                ATTEMPTS.insert().values(
                    delivery_id=due.delivery_id,
                    alert_id=due.alert_id,
                    tenant_id=tenant,
                    at=now,
                    ok=result.ok,
                    status=result.status,
                    detail=result.detail[:500],
                    seconds=seconds,
                )
            )
            conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == due.delivery_id).values(**values))
            note = self._endpoint(conn, tenant, channel, result.ok, now, note)
        return "disabled" if note else values["status"]

    def _endpoint(
        self, conn: sa.Connection, tenant: str, channel: str, ok: bool, now: datetime, note: str | None
    ) -> str | None:
        """Track the endpoint's failing streak; disable it (returning the note) on 410 or a long enough streak."""
        e = ENDPOINTS.c
        key = (e.tenant_id == tenant) & (e.channel == channel)
        row = conn.execute(sa.select(e.failing_since, e.disabled_at).where(key)).first()
        if row is None:
            conn.execute(ENDPOINTS.insert().values(tenant_id=tenant, channel=channel))
            row = conn.execute(sa.select(e.failing_since, e.disabled_at).where(key)).first()
        if ok:
            conn.execute(ENDPOINTS.update().where(key).values(failing_since=None))
            return None
        since = (aware(row.failing_since) if row is not None else None) or now
        window = timedelta(hours=self.rules.disable_after_hours)
        if note is None and now - since >= window:
            note = f"disabled {now:%Y-%m-%d %H:%M} UTC: every attempt failed for {self.rules.disable_after_hours:g} h"
        values: dict[str, Any] = {"failing_since": since}
        if note:
            values |= {"disabled_at": now, "note": note}
        conn.execute(ENDPOINTS.update().where(key).values(**values))
        return note

    def enable(self, tenant: str, channel: str) -> bool:
        """Re-enable a disabled channel (its waiting deliveries go out again); False if it was not disabled."""
        e = ENDPOINTS.c
        with self.engine.begin() as conn:
            done = conn.execute(
                ENDPOINTS.update()
                .where((e.tenant_id == tenant) & (e.channel == channel) & e.disabled_at.is_not(None))
                .values(disabled_at=None, failing_since=None, note=None)
            ).rowcount
            conn.execute(
                DELIVERIES.update()
                .where(
                    (DELIVERIES.c.tenant_id == tenant)
                    & (DELIVERIES.c.channel == channel)
                    & (DELIVERIES.c.status == "disabled")
                )
                .values(status="pending", next_attempt_at=datetime.now(UTC), first_attempt_at=None)
            )
        return bool(done)

    def resend(self, alert_id: int, now: datetime, tenant: str | None = None) -> int:
        """Send the alert again on every channel it went to, now, with a fresh retry window; how many."""
        d = DELIVERIES.c
        where = d.alert_id == alert_id
        if tenant is not None:
            where = where & (d.tenant_id == tenant)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    DELIVERIES.update()
                    .where(where)
                    .values(status="pending", next_attempt_at=now, first_attempt_at=None, detail="re-sent")
                ).rowcount
            )

    # -- reading ----------------------------------------------------------------------------------

    def get(self, alert_id: int) -> Stored | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(ALERTS).where(ALERTS.c.id == alert_id)).first()
            if row is None:
                return None
            statuses = conn.execute(sa.select(DELIVERIES.c.status).where(DELIVERIES.c.alert_id == alert_id)).scalars()
            status = _summary(list(statuses), row.route)
        return Stored(str(row.id), alert_from(row.body), status, row.feedback, row.route, aware(row.deliver_at))

    def feed(
        self, tenant_id: str, *, sales_id: str | None = None, rule: str | None = None, limit: int = 200
    ) -> list[Stored]:
        """The tenant's lead alerts (not the dropped ones, nor model notices), newest first, for the Alerts page."""
        c = ALERTS.c
        q = sa.select(ALERTS).where((c.tenant_id == tenant_id) & (c.route != "dropped") & c.rule.not_in(NOTICE_RULES))
        if sales_id is not None:
            q = q.where(c.sales_id == sales_id)
        if rule is not None:
            q = q.where(c.rule == rule)
        q = q.order_by(c.at.desc(), c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
            ids = [r.id for r in rows]
            by_alert: dict[int, list[str]] = {}
            if ids:
                dq = sa.select(DELIVERIES.c.alert_id, DELIVERIES.c.status).where(DELIVERIES.c.alert_id.in_(ids))
                for alert_id, status in conn.execute(dq):
                    by_alert.setdefault(alert_id, []).append(status)
        return [
            Stored(str(r.id), alert_from(r.body), _summary(by_alert.get(r.id, []), r.route), r.feedback, r.route)
            for r in rows
        ]

    def alerts(self, tenant_id: str, since: datetime) -> list[Alert]:
        """The tenant's alerts found since `since` (instant and digest): what the boss's digest reads."""
        c = ALERTS.c
        q = sa.select(c.body).where(
            (c.tenant_id == tenant_id) & (c.route != "dropped") & (c.at >= since) & c.rule.not_in(NOTICE_RULES)
        )
        with self.engine.connect() as conn:
            return [alert_from(b) for b in conn.execute(q.order_by(c.at)).scalars()]

    def feedback(self, tenant_id: str, alert_id: str, verdict: str, by: str, now: datetime | None = None) -> bool:
        """Record a verdict on one of the tenant's alerts; False when there is no such alert of that tenant."""
        if verdict not in VERDICTS:
            raise ValueError(f"feedback is one of {', '.join(VERDICTS)}, not {verdict!r}")
        try:
            key = int(alert_id)
        except ValueError:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(
                ALERTS.update()
                .where((ALERTS.c.id == key) & (ALERTS.c.tenant_id == tenant_id))
                .values(feedback=verdict, feedback_by=by, feedback_at=now or datetime.now(UTC))
            ).rowcount
        return bool(done)

    # -- deleting (PIPL) ----------------------------------------------------------------------------

    def forget(self, tenant_id: str, lead_id: str) -> int:
        """Delete a lead's alerts with their deliveries and attempts (a forgotten lead leaves no alert behind)."""
        return self._delete(sa.and_(ALERTS.c.tenant_id == tenant_id, ALERTS.c.lead_id == lead_id))

    def purge_before(self, cutoff: datetime) -> int:
        """Delete alerts raised before `cutoff`, with their deliveries and attempts (retention)."""
        return self._delete(ALERTS.c.at < cutoff)

    def _delete(self, which: sa.ColumnElement[bool]) -> int:
        ids = sa.select(ALERTS.c.id).where(which).scalar_subquery()
        with self.engine.begin() as conn:
            conn.execute(ATTEMPTS.delete().where(ATTEMPTS.c.alert_id.in_(ids)))
            conn.execute(DELIVERIES.delete().where(DELIVERIES.c.alert_id.in_(ids)))
            return int(conn.execute(ALERTS.delete().where(which)).rowcount)

    def attempts(self, alert_id: int) -> list[dict[str, Any]]:
        """Every attempt to deliver the alert, oldest first."""
        q = sa.select(ATTEMPTS).where(ATTEMPTS.c.alert_id == alert_id).order_by(ATTEMPTS.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def deliveries(self, alert_id: int) -> list[dict[str, Any]]:
        q = sa.select(DELIVERIES).where(DELIVERIES.c.alert_id == alert_id).order_by(DELIVERIES.c.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]


def _summary(statuses: list[str], route: str) -> str:
    """One word for the page: digest, sent, pending, failed, disabled, withheld (the worst of the channels)."""
    if route != "instant":
        return route
    for s in ("withheld", "disabled", "failed", "pending"):
        if s in statuses:
            return s
    return "sent" if statuses else "no channel"
