"""Each channel against a real receiver on 127.0.0.1 that checks the platform's documented request and verifies
its signature (tests/support/alert_receivers.py), and each classifies a failure as the outbox needs."""

from __future__ import annotations

import base64

import pytest

from leadradar.config import Settings
from leadradar.serving.alerts.alert import Message
from leadradar.serving.alerts.channels import channels_for, recipient_for
from leadradar.serving.alerts.channels.dingtalk import DingTalkRobot
from leadradar.serving.alerts.channels.feishu import FeishuBot
from leadradar.serving.alerts.channels.mail import Email
from leadradar.serving.alerts.channels.webhook import BadWebhookSecret, StandardWebhook
from leadradar.serving.alerts.channels.wecom_app import WeComApp
from leadradar.serving.alerts.channels.wecom_robot import WeComRobot
from tests.support.alert_receivers import Receiver, SmtpReceiver

MESSAGE = Message(
    title="高意向线索 · L-1",
    markdown="### 高意向线索 · L-1\n> 发生了什么：看了报价页 3分12秒",
    text="高意向线索 · L-1\n看了报价页 3分12秒",
    html="<p>看了报价页 3分12秒</p>",
    link="http://127.0.0.1:3000/dashboard/leads/L-1",
)
WHSEC = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes....").decode()


@pytest.fixture
def receiver(request: pytest.FixtureRequest):
    kind, secret = request.param
    r = Receiver(kind, secret)
    yield r
    r.close()


def channel_for(kind: str, r: Receiver, secret: str, timeout: float = 5.0):
    if kind == "wecom_robot":
        return WeComRobot(r.base + "/cgi-bin/webhook/send?key=k1", timeout=timeout)
    if kind == "dingtalk":
        return DingTalkRobot(r.base + "/robot/send?access_token=t1", secret, timeout=timeout)
    if kind == "feishu":
        return FeishuBot(r.base + "/open-apis/bot/v2/hook/h1", secret, timeout=timeout)
    if kind == "wecom_app":
        return WeComApp(r.base + "/cgi-bin", "corp-1", secret, 1000002, timeout=timeout)
    return StandardWebhook(r.base + "/hooks/leadradar", secret, timeout=timeout)


PLATFORMS = [
    ("wecom_robot", ""),
    ("dingtalk", "SEC0123456789abcdef"),
    ("feishu", "feishu-secret"),
    ("webhook", WHSEC),
    ("wecom_app", "corp-secret"),
]


@pytest.mark.parametrize("receiver", PLATFORMS, indirect=True, ids=[k for k, _ in PLATFORMS])
def test_each_channel_sends_the_documented_request_with_a_signature_the_receiver_verifies(receiver: Receiver):
    channel = channel_for(receiver.kind, receiver, receiver.secret)
    delivery = channel.send(MESSAGE, "zhangsan")
    assert delivery.ok, delivery.detail
    assert len(receiver.received) == 1 and receiver.received[0].problems == []


@pytest.mark.parametrize(
    ("kind", "wrong"), [("dingtalk", "SECwrong"), ("feishu", "wrong"), ("webhook", "whsec_" + "d3Jvbmc=")]
)
def test_a_request_signed_with_another_secret_is_refused_and_not_counted_as_sent(kind: str, wrong: str):
    right = dict(PLATFORMS)[kind]
    r = Receiver(kind, right)
    try:
        delivery = channel_for(kind, r, wrong).send(MESSAGE)
    finally:
        r.close()
    assert r.received[0].problems and not delivery.ok and not delivery.retry


@pytest.mark.parametrize("kind", ["wecom_robot", "dingtalk", "feishu", "webhook"])
@pytest.mark.parametrize(
    ("status", "retry", "gone"), [(500, True, False), (503, True, False), (429, True, False), (410, False, True)]
)
def test_server_errors_and_rate_limits_are_retried_and_410_is_gone(kind: str, status: int, retry: bool, gone: bool):
    r = Receiver(kind, dict(PLATFORMS)[kind], answers=[(status, {"error": "x"})])
    try:
        delivery = channel_for(kind, r, r.secret).send(MESSAGE)
    finally:
        r.close()
    assert (delivery.ok, delivery.retry, delivery.gone, delivery.status) == (False, retry, gone, status)


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("wecom_robot", {"errcode": 45009, "errmsg": "api freq out of limit"}),
        ("dingtalk", {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}),
        ("feishu", {"code": 11232, "msg": "frequency limited"}),
    ],
)
def test_a_platforms_own_rate_limit_code_in_a_200_answer_is_retried(kind: str, answer: dict):
    r = Receiver(kind, dict(PLATFORMS)[kind], answers=[(200, answer)])
    try:
        delivery = channel_for(kind, r, r.secret).send(MESSAGE)
    finally:
        r.close()
    assert not delivery.ok and delivery.retry and delivery.status == 200


def test_a_platform_error_code_that_is_not_a_rate_limit_is_a_failure_not_a_retry():
    r = Receiver("wecom_robot", answers=[(200, {"errcode": 93000, "errmsg": "invalid webhook url"})])
    try:
        delivery = channel_for("wecom_robot", r, "").send(MESSAGE)
    finally:
        r.close()
    assert not delivery.ok and not delivery.retry and "93000" in delivery.detail


@pytest.mark.parametrize("kind", ["wecom_robot", "webhook"])
def test_a_receiver_slower_than_the_timeout_is_a_retry(kind: str):
    r = Receiver(kind, dict(PLATFORMS)[kind], answers=[("sleep", 2.0)])
    try:
        delivery = channel_for(kind, r, r.secret, timeout=0.3).send(MESSAGE)
    finally:
        r.close()
    assert not delivery.ok and delivery.retry and "time-out" in delivery.detail


def test_nobody_listening_is_a_retry():
    r = Receiver("wecom_robot")
    url = r.base
    r.close()
    delivery = WeComRobot(url + "/send", timeout=1.0).send(MESSAGE)
    assert not delivery.ok and delivery.retry


def test_the_wecom_app_token_is_fetched_once_and_reused_until_it_expires():
    r = Receiver("wecom_app", "corp-secret")
    try:
        app = channel_for("wecom_app", r, "corp-secret")
        assert all(app.send(MESSAGE, user).ok for user in ("zhangsan", "lisi", "wangwu"))
        assert len(r.token_requests) == 1 and r.token_requests[0] == {"corpid": "corp-1", "corpsecret": "corp-secret"}
        assert [x.json["touser"] for x in r.received] == ["zhangsan", "lisi", "wangwu"]
        r.answers.append((200, {"errcode": 42001, "errmsg": "access_token expired"}))
        assert app.send(MESSAGE, "zhangsan").ok
        assert len(r.token_requests) == 2
    finally:
        r.close()


def test_a_wecom_app_with_a_short_lived_token_asks_again_after_it_expires():
    r = Receiver("wecom_app", "corp-secret", token_lifetime=300)  # within the renewal margin: expired at once
    try:
        app = channel_for("wecom_app", r, "corp-secret")
        assert app.send(MESSAGE, "zhangsan").ok and app.send(MESSAGE, "lisi").ok
        assert len(r.token_requests) == 2
    finally:
        r.close()


def test_a_wecom_app_message_without_a_user_or_to_an_unknown_user_is_not_sent():
    r = Receiver("wecom_app", "corp-secret", answers=[(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "ghost"})])
    try:
        app = channel_for("wecom_app", r, "corp-secret")
        assert not app.send(MESSAGE, None).ok and r.received == []
        unknown = app.send(MESSAGE, "ghost")
        assert not unknown.ok and not unknown.retry and "ghost" in unknown.detail
    finally:
        r.close()


def test_a_webhook_secret_that_is_not_base64_is_one_line_naming_the_setting():
    with pytest.raises(BadWebhookSecret, match="whsec_"):
        StandardWebhook("http://127.0.0.1:9/x", "whsec_not base64!")


def test_a_retry_of_the_same_message_keeps_its_webhook_id():
    r = Receiver("webhook", WHSEC, answers=[(503, {})])
    try:
        hook = channel_for("webhook", r, WHSEC)
        assert hook.send(MESSAGE).retry and hook.send(MESSAGE).ok
        ids = [x.headers["webhook-id"] for x in r.received]
        assert ids[0] == ids[1] and all(not x.problems for x in r.received)
    finally:
        r.close()


def test_email_reaches_the_smtp_server_with_text_and_html_and_a_refused_mailbox_is_not_retried():
    smtp = SmtpReceiver(refuse={"nobody@example.com"})
    try:
        mail = Email(smtp.url, "alerts@example.com", starttls=False)
        assert mail.send(MESSAGE, "sales@example.com").ok
        got = smtp.messages[0]
        assert got["To"] == "sales@example.com" and got["Subject"] == MESSAGE.title
        assert "看了报价页" in got.get_body(("plain",)).get_content()
        assert "<p>" in got.get_body(("html",)).get_content()
        refused = mail.send(MESSAGE, "nobody@example.com")
        assert not refused.ok and not refused.retry and refused.status == 550
        assert not mail.send(MESSAGE, None).ok
    finally:
        smtp.close()


def test_email_to_a_server_that_is_down_is_a_retry():
    smtp = SmtpReceiver()
    url = smtp.url
    smtp.close()
    delivery = Email(url, "alerts@example.com", starttls=False, timeout=1.0).send(MESSAGE, "sales@example.com")
    assert not delivery.ok and delivery.retry


def test_channels_and_recipients_come_from_the_tenants_own_settings_only():
    settings = Settings.model_validate(
        {
            "alerts": {
                "channels": {
                    "tenants": {
                        "t1": [
                            {"kind": "wecom_robot", "url": "http://127.0.0.1:9/a", "name": "sales group"},
                            {"kind": "email", "url": "smtp://127.0.0.1:9", "digest": True, "alerts": False},
                        ],
                        "t2": [{"kind": "feishu", "url": "http://127.0.0.1:9/b"}],
                    },
                    "wecom_users": {"s1": "zhangsan", "t2/s1": "lisi"},
                    "emails": {"s1": "s1@example.com"},
                }
            }
        }
    )
    assert [(c.kind, name) for c, name in channels_for(settings, "t1")] == [("wecom_robot", "sales group")]
    assert [(c.kind, name) for c, name in channels_for(settings, "t1", digest=True)] == [("email", "email#2")]
    assert [(c.kind, name) for c, name in channels_for(settings, "t2")] == [("feishu", "feishu#1")]
    assert channels_for(settings, "t3") == []
    assert recipient_for(settings, "wecom_app", "s1") == "zhangsan"
    assert recipient_for(settings, "wecom_app", "s1", "t2") == "lisi"
    assert recipient_for(settings, "email", "s1") == "s1@example.com"
    assert recipient_for(settings, "wecom_robot", "s1") is None
    assert recipient_for(settings, "email", "s9") is None
