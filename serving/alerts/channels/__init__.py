"""Channels: each platform's documented request, one module each, built from the tenant's settings.

`channels_for(settings, tenant)` is what the outbox sends an alert through, `recipient_for` who a salesperson is
on a platform that messages one person (a WeCom app, e-mail). A tenant's channels are built once and kept, so a
WeCom app's token is cached across sends; another tenant never gets them.
"""

from __future__ import annotations

import threading

from leadradar.config import AlertChannels, ChannelSettings, Settings
from leadradar.serving.alerts.alert import Channel
from leadradar.serving.alerts.channels.dingtalk import DingTalkRobot
from leadradar.serving.alerts.channels.feishu import FeishuBot
from leadradar.serving.alerts.channels.mail import Email
from leadradar.serving.alerts.channels.webhook import StandardWebhook
from leadradar.serving.alerts.channels.wecom_app import WeComApp
from leadradar.serving.alerts.channels.wecom_robot import WeComRobot

# Channels that reach a group: their messages never carry personal data.
GROUP_KINDS = frozenset({"wecom_robot", "dingtalk", "feishu"})
# Channels that reach one person, who `recipient_for` names.
PERSONAL_KINDS = frozenset({"wecom_app", "email"})

_built: dict[str, Channel] = {}
_lock = threading.Lock()


def build(cfg: ChannelSettings, timeout: float) -> Channel:
    """The channel one configuration describes (kept, so a WeCom app's token survives between sends)."""
    key = f"{timeout}|{cfg.model_dump_json()}"
    with _lock:
        if key not in _built:
            _built[key] = _new(cfg, timeout)
        return _built[key]


def _new(cfg: ChannelSettings, timeout: float) -> Channel:
    limit = {"per_minute": cfg.per_minute} if cfg.per_minute else {}
    if cfg.kind == "wecom_robot":
        return WeComRobot(cfg.url, timeout=timeout, **limit)
    if cfg.kind == "dingtalk":
        return DingTalkRobot(cfg.url, cfg.secret, timeout=timeout, **limit)
    if cfg.kind == "feishu":
        return FeishuBot(cfg.url, cfg.secret, timeout=timeout, **limit)
    if cfg.kind == "wecom_app":
        return WeComApp(cfg.url, cfg.corp_id, cfg.secret, cfg.agent_id or 0, timeout=timeout, **limit)
    if cfg.kind == "webhook":
        return StandardWebhook(cfg.url, cfg.secret, timeout=timeout, **limit)
    return Email(cfg.url, cfg.sender, cfg.username, cfg.secret, cfg.starttls, timeout=timeout, **limit)


def name_of(cfg: ChannelSettings, index: int) -> str:
    """The channel's configured name, else its kind and place ("wecom_robot#1")."""
    return cfg.name or f"{cfg.kind}#{index + 1}"


def channels_for(settings: Settings, tenant_id: str, *, digest: bool = False) -> list[tuple[Channel, str]]:
    """The tenant's alert channels (or, with `digest`, its digest channels), each with its name."""
    cfg = settings.alerts.channels
    wanted = [(i, c) for i, c in enumerate(cfg.tenants.get(tenant_id, [])) if (c.digest if digest else c.alerts)]
    return [(build(c, cfg.timeout_seconds), name_of(c, i)) for i, c in wanted]


def recipient_for(settings: Settings, channel_kind: str, sales_id: str, tenant_id: str | None = None) -> str | None:
    """The salesperson's WeCom user id or e-mail address; None for group channels or an unmapped salesperson."""
    cfg = settings.alerts.channels
    table = {"wecom_app": cfg.wecom_users, "email": cfg.emails}.get(channel_kind)
    if table is None:
        return None
    return lookup(table, sales_id, tenant_id)


def lookup(table: dict[str, str], sales_id: str, tenant_id: str | None) -> str | None:
    """`tenant/sales_id` first, then the bare sales_id."""
    if tenant_id is not None and f"{tenant_id}/{sales_id}" in table:
        return table[f"{tenant_id}/{sales_id}"]
    return table.get(sales_id)


def sales_name(channels: AlertChannels, sales_id: str, tenant_id: str | None = None) -> str:
    """The salesperson's display name where configured, else the id."""
    return lookup(channels.sales_names, sales_id, tenant_id) or sales_id
