"""Feature families: each module declares its features from the settings."""

from leadradar.features.families import activity, attributes, content, funnel, habits, recency, sales, sharing

FAMILIES = (
    activity.declare,
    recency.declare,
    habits.declare,
    content.declare,
    sharing.declare,
    funnel.declare,
    sales.declare,
    attributes.declare,
)
