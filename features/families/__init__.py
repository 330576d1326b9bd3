"""Feature families: each module declares its features from the settings."""

from features.families import activity, content, funnel, habits, recency, sharing

FAMILIES = (
    activity.declare,
    recency.declare,
    habits.declare,
    content.declare,
    sharing.declare,
    funnel.declare,
)
