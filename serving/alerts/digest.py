"""The boss's morning digest: who is hottest, which hot leads wait for a call, how each salesperson follows up,
and whether the probabilities of a horizon ago came true.

A follow-up is a two-way contact event (`events.two_way_contact`) or a stage change after the lead turned hot.
A lead turned hot at its first alert within the look-back, or, with no alert, when its score last rose to grade A.
Predicted against realised: the batch run a horizon ago expected the sum of its probabilities in wins within the
horizon; the stage history says how many came. `digest_facts` computes from tables (tested on hand-made ones),
`digest_message` words them, `digest` reads the stores.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from leadradar.config import Lang, Settings
from leadradar.features.consent import consenting_in_store
from leadradar.features.describe import format_value
from leadradar.features.store import EventStore
from leadradar.serving.alerts.alert import Alert, Message
from leadradar.serving.alerts.channels import sales_name
from leadradar.serving.alerts.messages import mask_phones
from leadradar.serving.store import ScoreStore


@dataclass(frozen=True)
class HotLead:
    lead_id: str
    sales_id: str
    p_close: float
    hot_since: datetime | None = None


@dataclass(frozen=True)
class SalesLine:
    sales_id: str
    alerts: int
    judged: int
    followed: int

    @property
    def rate(self) -> float | None:
        return self.followed / self.judged if self.judged else None


@dataclass(frozen=True)
class Calibration:
    as_of: datetime
    leads: int
    predicted: float
    realised: int


@dataclass(frozen=True)
class DigestFacts:
    tenant_id: str
    now: datetime
    hottest: list[HotLead]
    waiting: list[HotLead]
    sales: list[SalesLine]
    calibration: Calibration | None
    followup_hours: float
    horizon_days: int
    notes: list[str] = field(default_factory=list)


def followed_up(
    lead: str, since: pd.Timestamp, until: pd.Timestamp, contacts: pd.DataFrame, stages: pd.DataFrame
) -> bool:
    """A two-way contact or a stage change of the lead in (since, until]."""
    for frame in (contacts, stages):
        rows = frame[frame["lead_id"] == lead]
        if ((rows["ts"] > since) & (rows["ts"] <= until)).any():
            return True
    return False


def digest_facts(
    tenant_id: str,
    now: datetime,
    *,
    current: pd.DataFrame,
    contacts: pd.DataFrame,
    stages: pd.DataFrame,
    alerts: Sequence[Alert],
    settings: Settings,
    hot_since: dict[str, pd.Timestamp] | None = None,
    past_run: pd.DataFrame | None = None,
) -> DigestFacts:
    """The digest's figures from the current scores, two-way contacts, stage changes, alerts and a past run."""
    cfg = settings.alerts.channels
    t_now = pd.Timestamp(now)
    wait = pd.Timedelta(hours=cfg.followup_hours)
    start = t_now - pd.Timedelta(days=cfg.digest_lookback_days)
    mine = [a for a in alerts if a.tenant_id == tenant_id and start <= pd.Timestamp(a.at) <= t_now]
    first_alert: dict[str, Alert] = {}
    for a in sorted(mine, key=lambda a: a.at):
        first_alert.setdefault(a.lead_id, a)
    ranked = current.sort_values("p_close", ascending=False)
    top = ranked.head(cfg.digest_hot)
    hottest = [
        HotLead(str(lead), str(s), float(p)) for lead, s, p in zip(top["lead_id"], top["sales_id"], top["p_close"])
    ]
    since = {lead: pd.Timestamp(a.at) for lead, a in first_alert.items()}
    for lead, t in (hot_since or {}).items():
        since.setdefault(lead, t)
    owner = dict(zip(current["lead_id"].astype(str), current["sales_id"].astype(str)))
    p_now = dict(zip(current["lead_id"].astype(str), current["p_close"].astype(float)))
    waiting = [
        HotLead(
            lead, owner.get(lead, first_alert[lead].sales_id if lead in first_alert else ""), p_now.get(lead, 0.0), t
        )
        for lead, t in since.items()
        if t <= t_now - wait
        and not followed_up(lead, t, t_now, contacts, stages)
        and not _closed(lead, stages, settings)
    ]
    waiting.sort(key=lambda h: -h.p_close)
    sales = _sales_lines(mine, t_now, wait, contacts, stages)
    return DigestFacts(
        tenant_id,
        now,
        hottest,
        waiting[: cfg.digest_hot],
        sales,
        _calibration(past_run, stages, settings),
        cfg.followup_hours,
        settings.training.horizon_days,
    )


def _closed(lead: str, stages: pd.DataFrame, settings: Settings) -> bool:
    rows = stages[stages["lead_id"] == lead]
    return bool(len(rows)) and str(rows.sort_values("ts")["stage"].iloc[-1]) in (
        settings.funnel.won,
        settings.funnel.lost,
    )


def _sales_lines(
    alerts: list[Alert], now: pd.Timestamp, wait: pd.Timedelta, contacts: pd.DataFrame, stages: pd.DataFrame
) -> list[SalesLine]:
    """Per salesperson: alerts in the last day, and of the alerts old enough to judge, how many were followed up."""
    out = []
    for sales in sorted({a.sales_id for a in alerts}):
        own = [a for a in alerts if a.sales_id == sales]
        recent = sum(pd.Timestamp(a.at) > now - pd.Timedelta(days=1) for a in own)
        judged = [a for a in own if pd.Timestamp(a.at) <= now - wait]
        followed = sum(
            followed_up(a.lead_id, pd.Timestamp(a.at), pd.Timestamp(a.at) + wait, contacts, stages) for a in judged
        )
        out.append(SalesLine(sales, int(recent), len(judged), int(followed)))
    return out


def _calibration(run: pd.DataFrame | None, stages: pd.DataFrame, settings: Settings) -> Calibration | None:
    if run is None or run.empty:
        return None
    as_of = pd.Timestamp(run["as_of"].iloc[0])
    end = as_of + pd.Timedelta(days=settings.training.horizon_days)
    won = stages[(stages["stage"] == settings.funnel.won) & (stages["ts"] > as_of) & (stages["ts"] <= end)]
    realised = int(run["lead_id"].isin(won["lead_id"]).sum())
    return Calibration(as_of.to_pydatetime(), len(run), float(run["p_close"].sum()), realised)


# key: (English, 简体中文)
WORDS: dict[str, tuple[str, str]] = {
    "title": ("Lead digest · {tenant} · {date}", "线索日报 · {tenant} · {date}"),
    "hottest": ("Hottest leads", "最热线索"),
    "waiting": ("Hot leads not followed up within {hours} h", "超过 {hours} 小时未跟进的高意向线索"),
    "waiting.none": ("Every hot lead was followed up in time.", "所有高意向线索都已及时跟进。"),
    "since": ("hot since {when}", "{when} 起升温"),
    "sales": ("Alerts and follow-up by salesperson", "各销售的提醒与跟进"),
    "sales.line": ("{who}: {n} alerts in the last day, followed up {rate}", "{who}：近一天提醒 {n} 条，跟进率 {rate}"),
    "sales.none": ("No alerts in this period.", "本期没有提醒。"),
    "rate.none": ("— (none to judge yet)", "—（暂无可统计）"),
    "calibration": ("Predicted against realised", "预测与实际"),
    "calibration.line": (
        "Of {n} open leads scored {date}, {predicted} were expected to close within {days} days; {realised} did.",
        "{date} 评分的 {n} 条在跟线索，预计 {days} 天内成交 {predicted} 条，实际成交 {realised} 条。",
    ),
    "calibration.none": (
        "No scoring run {days} days old yet to check against.",
        "还没有 {days} 天前的评分可供对照。",
    ),
    "open": ("Open the dashboard", "打开看板"),
    "lead": ("{lead} ({who}, {p})", "{lead}（{who}，{p}）"),
}


def _w(key: str, lang: str, **slots: object) -> str:
    text = WORDS[key][1 if lang == "zh-CN" else 0]
    return text.format(**slots) if slots else text


def digest_message(facts: DigestFacts, lang: str, link: str, settings: Settings) -> Message:
    """The digest in words; no lead names or phone numbers, so it may go to a group robot."""
    language: Lang = "zh-CN" if lang == "zh-CN" else "en"
    lang = language
    who = lambda s: sales_name(settings.alerts.channels, s, facts.tenant_id)
    pct = lambda p: format_value("ratio", p, lang)
    local = lambda t: pd.Timestamp(t).tz_convert(settings.lifecycle.timezone).strftime("%m-%d %H:%M")
    title = _w("title", lang, tenant=facts.tenant_id, date=local(facts.now)[:5])
    sections: list[tuple[str, list[str]]] = [
        (
            _w("hottest", lang),
            [_w("lead", lang, lead=h.lead_id, who=who(h.sales_id), p=pct(h.p_close)) for h in facts.hottest],
        ),
        (
            _w("waiting", lang, hours=f"{facts.followup_hours:g}"),
            [
                _w("lead", lang, lead=h.lead_id, who=who(h.sales_id), p=pct(h.p_close))
                + (f" · {_w('since', lang, when=local(h.hot_since))}" if h.hot_since is not None else "")
                for h in facts.waiting
            ]
            or [_w("waiting.none", lang)],
        ),
        (
            _w("sales", lang),
            [
                _w(
                    "sales.line",
                    lang,
                    who=who(s.sales_id),
                    n=s.alerts,
                    rate=pct(s.rate) if s.rate is not None else _w("rate.none", lang),
                )
                for s in facts.sales
            ]
            or [_w("sales.none", lang)],
        ),
        (_w("calibration", lang), [_calibration_line(facts, lang, local)]),
    ]
    markdown = mask_phones(
        "\n".join([f"### {title}"] + [f"**{h}**\n" + "\n".join(f"- {x}" for x in xs) for h, xs in sections])
    )
    markdown += f"\n[{_w('open', lang)}]({link})"
    text = "\n\n".join([title] + [h + "\n" + "\n".join(f"- {x}" for x in xs) for h, xs in sections] + [link])
    e = html.escape
    page = (
        f"<html><body><h2>{e(title)}</h2>"
        + "".join(f"<h3>{e(h)}</h3><ul>{''.join(f'<li>{e(x)}</li>' for x in xs)}</ul>" for h, xs in sections)
        + f'<p><a href="{e(link)}">{e(_w("open", lang))}</a></p></body></html>'
    )
    return Message(
        title=title, markdown=markdown, text=mask_phones(text), html=mask_phones(page), link=link, lang=language
    )


def _calibration_line(facts: DigestFacts, lang: str, local) -> str:
    c = facts.calibration
    if c is None:
        return _w("calibration.none", lang, days=facts.horizon_days)
    return _w(
        "calibration.line",
        lang,
        n=c.leads,
        date=local(c.as_of),
        predicted=f"{c.predicted:.1f}",
        days=facts.horizon_days,
        realised=c.realised,
    )


def digest(
    tenant: str,
    now: datetime,
    *,
    settings: Settings,
    scores: ScoreStore,
    events: EventStore,
    alerts: Sequence[Alert] = (),
    lang: str = "zh-CN",
) -> Message:
    """The tenant's digest as of `now`, read from the score and event stores; `alerts` from the outbox."""
    facts = read_facts(tenant, now, settings=settings, scores=scores, events=events, alerts=alerts)
    link = f"{settings.alerts.channels.dashboard_url.rstrip('/')}/"
    return digest_message(facts, lang, link, settings)


def read_facts(
    tenant: str, now: datetime, *, settings: Settings, scores: ScoreStore, events: EventStore, alerts: Sequence[Alert]
) -> DigestFacts:
    """What `digest_facts` needs, read from the stores."""
    t_now = pd.Timestamp(now)
    current = scores.latest(tenant, columns=["lead_id", "sales_id", "p_close", "as_of", "stage"])
    current = current[~current["stage"].isin([settings.funnel.won, settings.funnel.lost])] if len(current) else current
    named = {str(lead) for lead in current["lead_id"]} | {a.lead_id for a in alerts if a.tenant_id == tenant}
    consenting = consenting_in_store(events, tenant, sorted(named), t_now, settings)
    if consenting is not None:  # a lead without consent is not named to anyone (privacy.consent_required)
        current = current[current["lead_id"].astype(str).isin(consenting)]
        alerts = [a for a in alerts if a.lead_id in consenting]
    threshold = settings.serving.grade_thresholds["A"]
    hot = (
        current[current["p_close"] >= threshold]
        .sort_values("p_close", ascending=False)
        .head(5 * settings.alerts.channels.digest_hot)
    )
    hot_since = {
        str(lead): t
        for lead in hot["lead_id"]
        if (t := _turned_hot(scores, tenant, str(lead), threshold, t_now)) is not None
    }
    leads = sorted({*hot_since, *(a.lead_id for a in alerts if a.tenant_id == tenant)})
    two_way = set(settings.events.two_way_contact)
    ev = (
        events.events(tenant, leads=leads, until=t_now).to_pandas()
        if leads
        else pd.DataFrame(columns=["lead_id", "ts", "event_type"])
    )
    contacts = ev[ev["event_type"].isin(two_way)][["lead_id", "ts"]]
    stage_rows = events.stages(tenant, until=t_now).to_pandas()[["lead_id", "stage", "ts"]]
    return digest_facts(
        tenant,
        now,
        current=current,
        contacts=contacts,
        stages=stage_rows,
        alerts=alerts,
        settings=settings,
        hot_since=hot_since,
        past_run=_past_run(scores, tenant, t_now, settings.training.horizon_days),
    )


def _turned_hot(scores: ScoreStore, tenant: str, lead: str, threshold: float, now: pd.Timestamp) -> pd.Timestamp | None:
    """When the lead's score last rose to `threshold` or above, as of now."""
    history = scores.score_history(tenant, lead)
    history = history[history["as_of"] <= now]
    if history.empty or float(history["p_close"].iloc[-1]) < threshold:
        return None
    below = history.index[history["p_close"] < threshold]
    start = below[-1] + 1 if len(below) else history.index[0]
    return pd.Timestamp(history.loc[start, "as_of"])


def _past_run(scores: ScoreStore, tenant: str, now: pd.Timestamp, horizon_days: int) -> pd.DataFrame | None:
    """The newest batch run at least a horizon old: its label window has closed."""
    for as_of, version in scores.runs(tenant):
        if pd.Timestamp(as_of) <= now - timedelta(days=horizon_days):
            return scores.run(tenant, as_of, version, columns=["lead_id", "p_close", "as_of"])
    return None
