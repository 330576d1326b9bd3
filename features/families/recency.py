"""How long ago: hours since the last event of each family, since the last two-way contact, lead age.

All the "last touched" features share one topic, so a lead reads at most one of them as a reason.
"""

from __future__ import annotations

from functools import partial

import ibis.expr.types as ir

from leadradar.config import Settings
from leadradar.features.families.activity import windowed
from leadradar.features.feature import Feature
from leadradar.features.grid import HOUR_US
from leadradar.features.tiles.ops import HoursSince, Max, Min, Sum


def hours_since(t: ir.Table, us: ir.IntegerValue) -> ir.FloatingValue:
    return (t.cutoff_us.max() - us).cast("float64") / HOUR_US


def hours_since_last(t: ir.Table, column: str) -> ir.FloatingValue:
    return hours_since(t, t[column].max())


def declare(settings: Settings) -> list[Feature]:
    ev = settings.events
    feats = []
    for name in ["any", *ev.families]:
        column = "last__any" if name == "any" else f"last__fam_{name}"
        label = ev.label(name)
        feats.append(
            Feature(
                name=f"hours_since_last_{name}",
                family="recency",
                source="activity",
                topic="last_touch",
                kind="hours",
                default=None,
                expr=partial(hours_since_last, column=column),
                tile=HoursSince(Max(column)),
                en=f"last {label.verb_en} {{value}} ago",
                zh=f"上次{label.verb_zh}是在{{value}}前",
            )
        )
    feats += [
        Feature(
            name="hours_since_two_way_contact",
            family="contact",
            source="activity",
            kind="hours",
            default=None,
            expr=lambda t: hours_since(t, t.last__two_way.max()),
            tile=HoursSince(Max("last__two_way")),
            en="last spoke with the salesperson {value} ago",
            zh="上次与销售双向沟通是在{value}前",
        ),
        Feature.over(
            "n_two_way_contact",
            30,
            family="contact",
            source="activity",
            topic="events:contact",
            expr=lambda t: windowed(t, "n__two_way", 30).sum(),
            tile=Sum("n__two_way", 0, 30),
            en="spoke with the salesperson {value} times in the last 30 days",
            zh="近30天与销售双向沟通{value}次",
            en0="has not spoken with the salesperson in the last 30 days",
            zh0="近30天未与销售双向沟通",
        ),
        Feature(
            name="hours_since_first_event",
            family="recency",
            source="activity",
            topic="lead_age",
            kind="hours",
            default=None,
            expr=lambda t: hours_since(t, t.us_min.min()),
            tile=HoursSince(Min("us_min")),
            en="first touched the card {value} ago",
            zh="首次互动是在{value}前",
        ),
    ]
    return feats
