"""Every knob of the simulated world, with defaults tuned to look like WeChat card traffic."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class SimulationConfig(BaseModel):
    tenants: int = 3
    leads: int = 20_000  # organic leads over all tenants; share chains add more
    days: int = 455  # 65 weeks: enough history for 90-day labels with 90-day gaps between splits
    seed: int = 7
    start: date = date(2026, 1, 5)  # a Monday
    timezone_offset_hours: int = 8  # the cards' users live in UTC+8

    # World size per tenant.
    sales_per_tenant: tuple[int, int] = (8, 24)
    product_lines: tuple[int, int] = (3, 6)
    items_per_line: int = 12
    sales_skill_sd: float = 0.45
    tenant_offset_sd: float = 0.25

    # Latent intent: z ~ N(0, 1) per lead; buying mode adds `buying_lift`.
    buying_lift: float = 1.8
    dormant_drop: float = 3.0
    # Daily mode hazards: browsing -> buying = sigmoid(a + b z); browsing -> dormant = sigmoid(a - b z).
    to_buying: tuple[float, float] = (-5.2, 0.9)
    to_dormant: tuple[float, float] = (-3.0, 0.5)
    buying_ends: float = 0.04  # buying -> browsing per day (a buying window lasts ~25 days)
    dormant_wakes: float = 0.003

    # Funnel: daily advance = sigmoid(stage_base[s] + intent_coef * I + skill + tenant offset).
    stage_base: tuple[float, ...] = (-4.4, -4.8, -5.0, -5.0, -4.4)
    intent_coef: float = 0.8
    skip_prob: float = 0.08
    lost_base: float = -5.5
    lost_intent_coef: float = -0.4
    lost_dormant: float = 0.6

    # Activity: daily events ~ Poisson(activity * exp(activity_intent * I) * weekday factor).
    activity_log_mean: float = -2.4
    activity_log_sd: float = 1.3
    activity_intent: float = 0.75
    activity_stage: float = 0.25
    weekend_factor: float = 0.6
    dwell_log_mean: float = 3.0  # ~20 s
    dwell_intent: float = 0.3
    dwell_log_sd: float = 0.9
    dwell_missing: float = 0.03

    # Share chains: each share brings a new lead with this probability.
    share_spawn: float = 0.35
    referral_intent_corr: float = 0.5

    # Noise a real log has.
    bot_burst_rate: float = 0.0015  # bursts per active lead-day
    bot_burst_size: tuple[int, int] = (8, 60)
    duplicate_rate: float = 0.005
    late_rate: float = 0.02
    late_mean_hours: float = 36.0
    skewed_lead_rate: float = 0.1
    skew_sd_seconds: float = 90.0

    # Truth: cutoffs it is written for and the horizons of its labels.
    truth_cadence: str = "weekly"
    horizons_days: tuple[int, ...] = (7, 30, 90)
    advance_horizon_days: int = 30

    event_type_logits: dict[str, tuple[float, float, float]] = Field(
        # (base, per unit of intent, per funnel step) on the log-odds of an event's type
        default_factory=lambda: {
            "card_view": (2.2, 0.0, -0.2),
            "product_view": (1.2, 0.35, 0.0),
            "article_view": (0.6, 0.1, -0.1),
            "video_view": (0.0, 0.15, -0.1),
            "card_share": (-1.8, 0.45, 0.0),
            "card_save": (-2.6, 0.55, 0.1),
            "wechat_add": (-2.8, 0.55, 0.25),
            "chat_message": (-2.2, 0.45, 0.45),
            "phone_call": (-3.0, 0.55, 0.45),
            "form_submit": (-3.8, 0.65, 0.2),
            "meeting": (-5.0, 0.6, 0.7),
        }
    )
    pricing_view_intent: float = 0.7  # a product view lands on the pricing page more often with intent
    # A change of behaviour (drift tests): from day `shift_day` on, a new product line sends most product views to
    # the pricing page whatever the intent, so pricing views stop meaning what they meant. Off by default.
    shift_day: int | None = None
    # (base, per unit of intent) on the log-odds that a product view is a pricing view once shifted.
    shifted_pricing_view: tuple[float, float] = (1.5, 0.0)
    # Extra log-dwell per viewing event type (others carry no dwell).
    dwell_type_offset: dict[str, float] = Field(
        default_factory=lambda: {"card_view": 0.0, "product_view": 0.5, "article_view": 0.9, "video_view": 1.2}
    )
    # Local-time hour profile of card traffic: mornings at work, after lunch, the evening phone hour.
    hour_profile: tuple[float, ...] = (
        0.3,
        0.15,
        0.1,
        0.08,
        0.08,
        0.15,
        0.4,
        0.9,
        1.6,
        2.2,
        2.6,
        2.4,
        1.8,
        1.9,
        2.3,
        2.3,
        2.1,
        1.8,
        1.6,
        1.9,
        2.3,
        2.2,
        1.6,
        0.9,
    )
    channel_mix: dict[str, float] = Field(default_factory=lambda: {"mini_program": 0.6, "h5": 0.3, "wecom": 0.1})
