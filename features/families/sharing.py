"""Share chains: the visits and new leads that this lead's shares brought to the card."""

from __future__ import annotations

from leadradar.config import Settings
from leadradar.features.feature import Feature


def declare(settings: Settings) -> list[Feature]:
    return [
        Feature.over(
            "referred_visits",
            30,
            family="sharing",
            source="referrals",
            topic="referrals",
            expr=lambda t: t.n.sum(where=t.age < 30),
            en="their shares brought {value} visits in the last 30 days",
            zh="近30天其转发带来{value}次访问",
        ),
        Feature.over(
            "referred_visits",
            None,
            family="sharing",
            source="referrals",
            topic="referrals",
            expr=lambda t: t.n.sum(),
            en="their shares brought {value} visits",
            zh="其转发累计带来{value}次访问",
        ),
        Feature.over(
            "referred_leads",
            None,
            family="sharing",
            source="referrals",
            topic="referrals",
            expr=lambda t: t.referred_lead_id.nunique(),
            en="shared the card with {value} people who opened it",
            zh="转发给{value}位打开名片的新客户",
        ),
    ]
