"""The rules: what in a lead's score history and events is worth telling its owner, as pure functions of
(history, events, now), so that `leadradar alerts simulate` replays exactly what the live path would have sent.

A **session** is a run of the lead's events with less than `session_quiet_minutes` between neighbours; it has
*settled* once that much quiet followed its last event. The session rules look at the newest settled session:

* **hot action**: the session holds a strong action (`hot_actions`), or a pricing page or product read for at
  least `hot_dwell_seconds`, and the lead's probability after the session is at least `hot_floor`.
* **threshold** (hysteresis): walking the score history, the rule is armed at the start; a score >= θ_high while
  armed fires and disarms; a score < θ_low re-arms. It fires for the session if a firing score lies in it.
* **spike** (a surprise test on the event rate against the lead's own history). Let k be the lead's events in the
  window W (the `spike_window_hours` ending at the session's end) and n its events in the T days before W (at most
  `spike_history_days`, from its first event). Events arrive as a Poisson process of unknown rate λ per day;
  with the conjugate prior λ ~ Gamma(a0, b0) (`spike_prior_events`, `spike_prior_days`) the posterior after n
  events in T days is Gamma(a0 + n, b0 + T), and the predictive count in W (w days) is negative binomial:

      P(K = j) = C(j + r - 1, j) q^r (1 - q)^j,   r = a0 + n,  q = (b0 + T) / (b0 + T + w).

  The session is a spike when the tail P(K >= k) < `spike_alpha`, k >= `spike_min_events`, the lead is at least
  `spike_min_age_days` old (it has a level of its own) and its probability is at least `spike_floor`. Unlike a
  fixed "k events a day", a lead that always reads a lot needs far more to surprise, a quiet one far less.
* **back from dormant**: the session came after at least `dormant_days` without events (and the lead had some).

**going cold** does not need a session: a lead whose score reached θ_high and later fell below θ_low with no
two-way contact (`events.two_way_contact`) between, fires at that fall, once per hot spell.

One alert per session: when several session rules fire, the strongest (in `PRIORITY` order) is the alert and the
others are named in `what["also"]`. The dedup key is (tenant, lead, rule, session start).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd
from scipy.stats import nbinom

from leadradar.config import AlertRules
from leadradar.serving.alerts.alert import Alert, RuleName

PRIORITY: tuple[RuleName, ...] = ("hot_action", "threshold", "spike", "back_from_dormant")
DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class Session:
    """A lead's run of events: first and last event time, and the events themselves (oldest first)."""

    start: pd.Timestamp
    end: pd.Timestamp
    events: pd.DataFrame
    visit: int  # which session of the lead this is, counting from 1
    gap_before: pd.Timedelta | None  # quiet before it; None for the lead's first


def sessions(events: pd.DataFrame, quiet: pd.Timedelta) -> list[Session]:
    """The lead's events (`ts` sorted or not) cut into sessions wherever neighbours are `quiet` or more apart."""
    if events.empty:
        return []
    ev = events.sort_values("ts", kind="stable").reset_index(drop=True)
    gaps = ev["ts"].diff()
    starts = [0, *[i for i in range(1, len(ev)) if gaps.iloc[i] >= quiet], len(ev)]
    out = []
    for n, (a, b) in enumerate(itertools.pairwise(starts)):
        part = ev.iloc[a:b]
        out.append(Session(part["ts"].iloc[0], part["ts"].iloc[-1], part, n + 1, gaps.iloc[a] if a else None))
    return out


def settled(events: pd.DataFrame, now: pd.Timestamp, rules: AlertRules) -> list[Session]:
    """The sessions of events at or before `now` that had `session_quiet_minutes` of quiet by `now`."""
    quiet = pd.Timedelta(minutes=rules.session_quiet_minutes)
    return [s for s in sessions(events[events["ts"] <= now], quiet) if s.end + quiet <= now]


def score_at(history: pd.DataFrame, at: pd.Timestamp, strictly_before: bool = False) -> pd.Series | None:
    """The newest score given at `at` (or strictly before it)."""
    seen = history[history["as_of"] < at] if strictly_before else history[history["as_of"] <= at]
    return None if seen.empty else seen.iloc[-1]


def hot_action(session: Session, rules: AlertRules, pricing_items: Collection[str]) -> pd.Series | None:
    """The session's strongest action: a configured one, else the longest qualifying read; None without."""
    ev = session.events
    strong = ev[ev["event_type"].isin(rules.hot_actions)]
    if len(strong):
        return strong.iloc[-1]
    dwell = ev["dwell_s"].astype("float64").fillna(0.0)
    reading = ev["event_type"].isin(rules.hot_dwell_types) | ev["item_id"].isin(list(pricing_items))
    long = ev[reading & (dwell >= rules.hot_dwell_seconds)]
    return None if long.empty else long.iloc[int(long["dwell_s"].astype("float64").to_numpy().argmax())]


def bot_like(session: Session, rules: AlertRules) -> bool:
    """A burst no person makes: many events faster than one per `bot_max_gap_seconds` on median, or many opens
    with no dwell at all."""
    ev = session.events
    if len(ev) < rules.bot_min_events:
        return False
    gaps = ev["ts"].diff().dropna().dt.total_seconds()
    dwell = ev["dwell_s"].astype("float64")
    return bool(gaps.median() < rules.bot_max_gap_seconds or (dwell.notna().all() and (dwell == 0).all()))


def threshold_fires(history: pd.DataFrame, rules: AlertRules) -> list[pd.Timestamp]:
    """When the hysteresis rule fired over the whole history: up through θ_high while armed; θ_low re-arms."""
    armed, fired = True, []
    for at, p in zip(history["as_of"], history["p_close"]):
        if armed and p >= rules.threshold_high:
            fired.append(at)
            armed = False
        elif p < rules.threshold_low:
            armed = True
    return fired


def spike_tail(events_ts: pd.Series, end: pd.Timestamp, rules: AlertRules) -> tuple[int, float] | None:
    """(k, P(K >= k)) for the window ending at `end` under the lead's own Gamma-Poisson predictive; None when the
    lead is younger than `spike_min_age_days`."""
    window = pd.Timedelta(hours=rules.spike_window_hours)
    w_start = end - window
    first = events_ts.min()
    if first > w_start - pd.Timedelta(days=rules.spike_min_age_days):
        return None
    t_start = max(first, w_start - pd.Timedelta(days=rules.spike_history_days))
    k = int(((events_ts > w_start) & (events_ts <= end)).sum())
    n = int(((events_ts >= t_start) & (events_ts <= w_start)).sum())
    t_days = (w_start - t_start) / DAY
    r = rules.spike_prior_events + n
    q = (rules.spike_prior_days + t_days) / (rules.spike_prior_days + t_days + window / DAY)
    return k, float(nbinom.sf(k - 1, r, q))


def going_cold(history: pd.DataFrame, contacts: pd.Series, rules: AlertRules) -> list[tuple[pd.Timestamp, float]]:
    """Falls below θ_low after reaching θ_high with no two-way contact between: (when, p before the fall)."""
    out, hot_at, top = [], None, 0.0
    for at, p in zip(history["as_of"], history["p_close"]):
        if p >= rules.threshold_high:
            hot_at = at if hot_at is None else hot_at
            top = max(top, p)
        elif hot_at is not None and p < rules.threshold_low:
            if not ((contacts > hot_at) & (contacts <= at)).any():
                out.append((at, top))
            hot_at, top = None, 0.0
    return out


def evaluate(
    tenant_id: str,
    lead_id: str,
    history: pd.DataFrame,
    events: pd.DataFrame,
    now: pd.Timestamp,
    rules: AlertRules,
    *,
    two_way: Collection[str] = (),
    pricing_items: Collection[str] = (),
    since: pd.Timestamp | None = None,
) -> list[Alert]:
    """The alerts the rules find for one lead as of `now`: at most one for its newest settled session (ending
    after `since`, if given), and a going-cold fall after `since`. `history`: `as_of`, `p_close` (+ `grade`,
    `detail`, `sales_id`); `events`: `ts`, `event_type`, `dwell_s`, `item_id`, `sales_id`."""
    history = history[history["as_of"] <= now].sort_values("as_of", kind="stable")
    out: list[Alert] = []
    done = settled(events, now, rules)
    if done and (since is None or done[-1].end > since):
        alert = _session_alert(tenant_id, lead_id, done[-1], history, events, rules, pricing_items)
        if alert is not None:
            out.append(alert)
    if rules.going_cold and len(history):
        contacts = events.loc[events["event_type"].isin(list(two_way)), "ts"]
        for at, top in going_cold(history, contacts, rules):
            if since is None or at > since:
                row = score_at(history, at)
                if row is not None:
                    out.append(_alert(tenant_id, lead_id, "going_cold", at, row, top, _key(at), {}, events))
    return out


def _session_alert(
    tenant_id: str,
    lead_id: str,
    session: Session,
    history: pd.DataFrame,
    events: pd.DataFrame,
    rules: AlertRules,
    pricing_items: Collection[str],
) -> Alert | None:
    after = score_at(history, session.end + pd.Timedelta(minutes=rules.session_quiet_minutes))
    if after is None:
        return None
    before = score_at(history, session.start, strictly_before=True)
    p = float(after["p_close"])
    fired: dict[RuleName, dict[str, object]] = {}
    action = hot_action(session, rules, pricing_items)
    if action is not None and p >= rules.hot_floor:
        fired["hot_action"] = _facts(action)
    window_end = session.end + pd.Timedelta(minutes=rules.session_quiet_minutes)
    if any(session.start <= t <= window_end for t in threshold_fires(history, rules)):
        fired["threshold"] = {}
    if p >= rules.spike_floor:
        tail = spike_tail(events["ts"], session.end, rules)
        if tail is not None and tail[0] >= rules.spike_min_events and tail[1] < rules.spike_alpha:
            fired["spike"] = {"events_in_window": tail[0], "surprise": tail[1]}
    if session.gap_before is not None and session.gap_before >= pd.Timedelta(days=rules.dormant_days):
        fired["back_from_dormant"] = {"dormant_days": int(session.gap_before / DAY)}
    if not fired:
        return None
    rule = next(r for r in PRIORITY if r in fired)
    strongest = action if action is not None else session.events.iloc[-1]
    what: dict[str, object] = {
        **_facts(strongest),
        **{k: v for r in PRIORITY if r in fired for k, v in fired[r].items()},
        "visit": session.visit,
        "session_events": len(session.events),
        "session_start": session.start.isoformat(),
        "also": [r for r in PRIORITY if r in fired and r != rule],
        "bot_like": bot_like(session, rules),
    }
    p_before = None if before is None else float(before["p_close"])
    return _alert(tenant_id, lead_id, rule, window_end, after, p_before, _key(session.start), what, events)


def _facts(event: pd.Series) -> dict[str, object]:
    dwell = event.get("dwell_s")
    item = event.get("item_id")
    return {
        "event_type": str(event["event_type"]),
        "event_id": str(event.get("event_id", "")),
        "dwell_s": None if dwell is None or pd.isna(dwell) else float(dwell),
        "item_id": None if item is None or pd.isna(item) else str(item),
    }


def _key(session_start: pd.Timestamp) -> str:
    return pd.Timestamp(session_start).tz_convert("UTC").strftime("%Y%m%dT%H%M%S.%f")


def _alert(
    tenant_id: str,
    lead_id: str,
    rule: RuleName,
    at: pd.Timestamp,
    score: pd.Series,
    p_before: float | None,
    session: str,
    what: dict[str, object],
    events: pd.DataFrame,
) -> Alert:
    sales = score.get("sales_id")
    if sales is None or pd.isna(sales):
        sales = events["sales_id"].iloc[-1] if "sales_id" in events and len(events) else ""
    detail = score.get("detail")
    try:
        parsed = json.loads(detail) if isinstance(detail, str) else (detail or {})
    except ValueError:
        parsed = {}
    reasons = list((parsed.get("reasons") or {}).get("for") or []) if isinstance(parsed, dict) else []
    grade = score.get("grade")
    return Alert(
        tenant_id=tenant_id,
        lead_id=lead_id,
        sales_id=str(sales),
        rule=rule,
        at=pd.Timestamp(at).to_pydatetime(),
        p_close=float(score["p_close"]),
        p_before=p_before,
        grade="" if grade is None or pd.isna(grade) else str(grade),
        dedup_key=f"{tenant_id}|{lead_id}|{rule}|{session}",
        what=what,
        reasons=reasons,
    )
