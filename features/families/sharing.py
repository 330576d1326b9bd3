"""Share chains: the visits and new leads that this lead's shares brought to the card."""

from __future__ import annotations

from leadradar.config import Settings
from leadradar.features.registry import Feature


def declare(settings: Settings) -> list[Feature]:
    return [
        Feature(
            name="referred_visits_30d",
            family="sharing",
            source="referrals",
            window_days=30,
            expr=lambda t: t.n.sum(where=t.age < 30),
            en="their shares brought {value} visits in the last 30 days",
            zh="近30天其转发带来{value}次访问",
        ),
        Feature(
            name="referred_visits_all",
            family="sharing",
            source="referrals",
            expr=lambda t: t.n.sum(),
            en="their shares brought {value} visits",
            zh="其转发累计带来{value}次访问",
        ),
        Feature(
            name="referred_leads_all",
            family="sharing",
            source="referrals",
            expr=lambda t: t.referred_lead_id.nunique(),
            en="shared the card with {value} people who opened it",
            zh="转发给{value}位打开名片的新客户",
        ),
    ]
