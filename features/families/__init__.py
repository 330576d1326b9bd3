"""Feature families: each module declares its features from the settings."""

from leadradar.features.families import (
    activity,
    attributes,
    content,
    engagement,
    funnel,
    habits,
    recency,
    sales,
    sharing,
)

FAMILIES = (
    activity.declare,
    recency.declare,
    habits.declare,
    engagement.declare,
    content.declare,
    sharing.declare,
    funnel.declare,
    sales.declare,
    attributes.declare,
)
