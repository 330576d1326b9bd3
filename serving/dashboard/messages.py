"""Every word of the dashboard and the report, in English and Simplified Chinese.

Stage names come from `FunnelConfig.label` and event words from `EventConfig.label`; reasons from
the feature registry. Templates call `t("key", name=value)`; a key missing here is a bug the tests catch.
"""

from __future__ import annotations

from collections.abc import Callable

from leadradar.config import LANGS
from leadradar.serving.dashboard.alert_words import ALERT_MESSAGES
from leadradar.serving.dashboard.feedback_words import FEEDBACK_MESSAGES
from leadradar.serving.dashboard.health_words import HEALTH_MESSAGES

DEFAULT_LANG = "en"

# key: (English, 简体中文); `{name}` slots are filled by str.format.
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("leadradar", "leadradar 线索雷达"),
    "nav.leads": ("Leads", "线索"),
    "nav.funnel": ("Funnel", "销售漏斗"),
    "nav.team": ("Team", "团队"),
    "nav.report": ("HTML report", "HTML 报告"),
    "nav.audit": ("Audit log", "操作日志"),
    "nav.signout": ("Sign out", "退出登录"),
    "nav.switch": ("中文", "English"),
    "tenant": ("Company {tenant}", "公司 {tenant}"),
    "board.title": ("Who to call today", "今日重点跟进"),
    "board.subtitle": (
        "Open leads ranked by their chance to close within {days} days.",
        "在跟线索按 {days} 天内成交概率排序。",
    ),
    "card.open": ("Open leads", "在跟线索"),
    "card.hot": ("Hot leads (grade A)", "高意向线索（A 级）"),
    "card.expected": ("Expected wins in {days} days", "预计 {days} 天内成交"),
    "card.asof": ("Scored as of", "评分时间"),
    "card.model": ("model v{version}", "模型 v{version}"),
    "card.previous": ("previous run {date}", "上次评分 {date}"),
    "card.first_run": ("first run", "首次评分"),
    "col.rank": ("#", "排名"),
    "col.p_lo": ("Low end", "区间下限"),
    "col.p_hi": ("High end", "区间上限"),
    "col.low_confidence": ("Low confidence", "把握较低"),
    "col.pooled": ("Pooled score", "通用评分"),
    "col.window": ("Expected close", "预计成交时间"),
    "window.within": ("within {end} days", "{end} 天内"),
    "window.range": ("in {start}–{end} days", "{start}–{end} 天内"),
    "window.none": ("not named (unlikely)", "暂不预估（可能性低）"),
    "certainty.range": ("likely {lo} – {hi}", "可能在 {lo} – {hi} 之间"),
    "certainty.low": ("low confidence", "把握较低"),
    "certainty.pooled": (
        "pooled score: too little history of this company's own yet",
        "通用评分：本公司自有历史数据尚少",
    ),
    "col.lead": ("Lead", "线索"),
    "col.sales": ("Salesperson", "销售"),
    "col.stage": ("Stage", "阶段"),
    "col.p": ("Close probability", "成交概率"),
    "col.grade": ("Grade", "等级"),
    "col.change": ("Change", "变化"),
    "col.reason": ("Top reason", "主要原因"),
    "col.asof": ("Scored as of", "评分时间"),
    "col.model": ("Model version", "模型版本"),
    "col.lead_name": ("Lead name", "线索姓名"),
    "col.sales_name": ("Salesperson name", "销售姓名"),
    "rank.title": (
        "{tenant}: top {n} of {total} open leads{shown}, as of {as_of}",
        "{tenant}：{total} 条在跟线索中的前 {n} 条{shown}，评分时间 {as_of}",
    ),
    "rank.latest": ("the latest run", "最近一次评分"),
    "rank.caption": ("change: percentage points since the previous run", "变化：与上次评分相比（百分点）"),
    "rank.rising": ("rising fastest since {date}", "{date} 以来上升最快"),
    "rank.falling": ("falling fastest since {date}", "{date} 以来下降最快"),
    "filter.sales": ("All salespeople", "全部销售"),
    "filter.stage": ("All stages", "全部阶段"),
    "filter.grade": ("All grades", "全部等级"),
    "filter.apply": ("Filter", "筛选"),
    "filter.clear": ("Clear", "清除"),
    "filter.label.sales": ("Salesperson", "销售"),
    "filter.label.stage": ("Stage", "阶段"),
    "filter.label.grade": ("Grade", "等级"),
    "export.csv": ("Export CSV", "导出 CSV"),
    "export.xlsx": ("Export Excel", "导出 Excel"),
    "change.new": ("new", "新"),
    "change.legend": ("Change: percentage points since the run of {date}.", "变化：与 {date} 的评分相比（百分点）。"),
    "change.none": ("Change appears from the second scoring run on.", "从第二次评分起显示变化。"),
    "change.pts": ("{value} pts", "{value} 个百分点"),
    "movers.up": ("Rising fastest", "上升最快"),
    "movers.down": ("Falling fastest", "下降最快"),
    "movers.none": ("No change since the last run.", "与上次评分相比没有变化。"),
    "grades.title": ("Leads by grade", "各等级线索数"),
    "grades.legend": ("A ≥ {a}, B ≥ {b}, C ≥ {c}, D below", "A ≥ {a}，B ≥ {b}，C ≥ {c}，其余为 D"),
    "page.of": ("Page {page} of {pages} · {total} leads", "第 {page} 页，共 {pages} 页 · {total} 条线索"),
    "page.prev": ("← Previous", "← 上一页"),
    "page.next": ("Next →", "下一页 →"),
    "empty.scores": (
        "No scores yet for this company: run `leadradar score` first.",
        "该公司暂无评分：请先运行 leadradar score。",
    ),
    "empty.filter": ("No leads match these filters.", "没有符合条件的线索。"),
    "lead.title": ("Lead {lead}", "线索 {lead}"),
    "lead.back": ("← Back to the list", "← 返回线索列表"),
    "lead.owner": ("Salesperson", "负责销售"),
    "lead.rank": ("Rank {rank} of {total}", "排名 {rank} / {total}"),
    "lead.horizon": ("Close within {days} days", "{days} 天内成交"),
    "lead.advance": ("Moves past “{stage}” within {days} days", "{days} 天内推进过“{stage}”"),
    "lead.history": ("Score history", "评分历史"),
    "lead.history.one": (
        "One scoring run so far; the line grows with each run.",
        "目前只有一次评分，每次评分后曲线会延长。",
    ),
    "lead.history.live": (
        "◆ a live score: recomputed as the lead's events arrived; the event that moved it is marked on the time axis.",
        "◆ 实时评分：线索有新动态时重新计算，时间轴上标出引起变化的动态。",
    ),
    "lead.moved_by": ("moved by {event} at {time}", "由 {time} 的动态 {event} 引起"),
    "lead.live": ("live", "实时"),
    "lead.why": ("Why this score", "评分原因"),
    "lead.for": ("Speaks for closing", "有利因素"),
    "lead.against": ("Speaks against", "不利因素"),
    "lead.no_reasons": ("No reasons were kept for this score.", "此次评分没有保存原因。"),
    "lead.nothing": ("Nothing notable.", "无明显因素。"),
    "lead.activity": ("Recent activity", "最近动态"),
    "lead.activity.days": ("Last {days} days", "最近 {days} 天"),
    "lead.no_events": ("No events kept for this lead.", "暂无该线索的动态记录。"),
    "lead.not_found": ("No lead {lead} in this company's scores.", "该公司的评分中没有线索 {lead}。"),
    "event.dwell": ("{dwell}", "停留 {dwell}"),
    "event.via": ("via {channel}", "来自 {channel}"),
    "event.item": ("{item}", "{item}"),
    "family.view": ("views", "浏览"),
    "family.share": ("shares", "转发"),
    "family.contact": ("contacts", "联系"),
    "family.content": ("content", "内容"),
    "funnel.title": ("Funnel to date", "销售漏斗（累计）"),
    "funnel.subtitle": (
        "Every lead by the furthest stage it reached, up to {date}.",
        "截至 {date}，按每条线索到达的最远阶段统计。",
    ),
    "funnel.reached": ("Reached", "到达"),
    "funnel.conversion": ("On to next stage", "转入下一阶段"),
    "funnel.open": ("Open now", "当前在跟"),
    "funnel.lost": ("Lost here", "在此流失"),
    "funnel.expected": ("Model: moves on within {days} days", "模型预测 {days} 天内推进"),
    "funnel.winrate": ("Overall win rate: {rate} of {n} leads", "整体成交率：{n} 条线索中 {rate}"),
    "funnel.empty": (
        "No funnel counts yet: they are kept by `leadradar score`.",
        "暂无漏斗数据：由 leadradar score 生成。",
    ),
    "team.title": ("Team", "团队概览"),
    "team.subtitle": ("Each salesperson's open leads as of {date}.", "截至 {date} 每位销售的在跟线索。"),
    "team.leads": ("Open leads", "在跟线索"),
    "team.hot": ("Hot (A)", "高意向（A）"),
    "team.warm": ("Warm (B)", "较高意向（B）"),
    "team.expected": ("Expected wins", "预计成交"),
    "team.mean": ("Average probability", "平均成交概率"),
    "team.best": ("Best lead", "最有希望的线索"),
    "team.moves": ("Rising / falling", "上升 / 下降"),
    "team.total": ("All", "合计"),
    "login.title": ("Sign in", "登录"),
    "login.intro": (
        "The dashboard is for sales managers. Sign in with the user name and password you were given.",
        "看板供销售经理使用。请使用分配给您的用户名和密码登录。",
    ),
    "login.user": ("User name", "用户名"),
    "login.user.hint": (
        "If another company uses the same name, add yours: name@company.",
        "如果其他公司也有同名账号，请加上公司：用户名@公司。",
    ),
    "login.password": ("Password", "密码"),
    "login.submit": ("Sign in", "登录"),
    "login.key": ("Sign in with a manager API key instead", "改用经理 API 密钥登录"),
    "login.key.field": ("API key", "API 密钥"),
    "login.failed": ("Wrong user name or password.", "用户名或密码错误。"),
    "login.key_failed": ("That key is unknown or revoked.", "该密钥无效或已被吊销。"),
    "login.not_manager": ("Only manager accounts may open the dashboard.", "只有经理账号可以访问看板。"),
    "login.throttled": ("Too many failed attempts; try again in a few minutes.", "失败次数过多，请几分钟后再试。"),
    "login.busy": ("Too many sign-ins at once; try again in a moment.", "登录请求过多，请稍后再试。"),
    "login.cross_site": (
        "This form was sent from another site and was refused; sign in from this page.",
        "该表单来自其他网站，已被拒绝；请在本页登录。",
    ),
    "login.signed_out": ("You are signed out.", "您已退出登录。"),
    "login.expired": ("Your session has ended; please sign in again.", "登录已过期，请重新登录。"),
    "report.title": ("Lead report · {tenant}", "线索报告 · {tenant}"),
    "report.generated": (
        "Made {date} from the scoring run of {asof} (model v{version}).",
        "生成于 {date}，基于 {asof} 的评分（模型 v{version}）。",
    ),
    "report.top": ("Top {n} leads", "前 {n} 条线索"),
    "report.leads": ("The top leads in detail", "重点线索详情"),
    "time.zone": ("Times in UTC{offset}.", "时间为 UTC{offset}。"),
    "footer": (
        "Probabilities are calibrated: of leads shown at 30 %, about 3 in 10 close.",
        "概率经过校准：显示为 30% 的线索，约十分之三会成交。",
    ),
    "audit.title": ("Audit log", "操作日志"),
    "audit.subtitle": (
        "Sign-ins, API keys created and revoked, exports and deletions in this company, newest first (last {n}).",
        "本公司的登录、API 密钥的创建与吊销、导出与删除记录，最新的在前（最近 {n} 条）。",
    ),
    "audit.empty": ("Nothing recorded yet.", "暂无记录。"),
    "audit.col.at": ("When (UTC)", "时间（UTC）"),
    "audit.col.actor": ("Who", "操作人"),
    "audit.col.action": ("What", "操作"),
    "audit.col.target": ("On", "对象"),
    "audit.col.detail": ("Detail", "详情"),
    "audit.action.sign_in": ("signed in", "登录"),
    "audit.action.sign_in_failed": ("sign-in refused", "登录失败"),
    "audit.action.key_created": ("API key created", "创建 API 密钥"),
    "audit.action.key_revoked": ("API key revoked", "吊销 API 密钥"),
    "audit.action.export": ("exported", "导出"),
    "audit.action.deleted": ("deleted", "删除"),
    "audit.target.password": ("with a password", "使用密码"),
    "audit.target.api_key": ("with an API key", "使用 API 密钥"),
    "audit.target.csv": ("the lead list as CSV", "线索列表（CSV）"),
    "audit.target.xlsx": ("the lead list as Excel", "线索列表（Excel）"),
    "audit.target.report": ("the HTML report", "HTML 报告"),
    "audit.detail.wrong": ("wrong password or key", "密码或密钥错误"),
    "audit.detail.unknown": ("no such account", "账号不存在"),
    "audit.detail.not_manager": ("not a manager account", "非经理账号"),
    "audit.detail.system": ("role: system", "角色：系统"),
    "audit.detail.manager": ("role: manager", "角色：经理"),
    "audit.detail.sales": ("role: sales", "角色：销售"),
    "error.forbidden": ("This page is not yours to see.", "您无权查看此页面。"),
    **HEALTH_MESSAGES,
    **ALERT_MESSAGES,
    **FEEDBACK_MESSAGES,
}

WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "zh-CN": ("周一", "周二", "周三", "周四", "周五", "周六", "周日"),
}


def check(lang: str) -> str:
    """The language if the dashboard speaks it, else the default."""
    return lang if lang in LANGS else DEFAULT_LANG


def from_accept_language(header: str | None) -> str:
    """Chinese for a browser that prefers any Chinese, else English."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANG


def translator(lang: str) -> Callable[..., str]:
    """`t(key, **slots)` for one language."""
    index = 1 if check(lang) == "zh-CN" else 0

    def t(key: str, **slots: object) -> str:
        text = MESSAGES[key][index]
        return text.format(**slots) if slots else text

    return t
