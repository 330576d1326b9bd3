"""Where the lead stands in the CRM funnel, as of the cutoff."""

from __future__ import annotations

import ibis

from leadradar.config import Settings
from leadradar.features.feature import Feature
from leadradar.features.spine import days_between


def declare(settings: Settings) -> list[Feature]:
    return [
        Feature(
            name="stage_rank",
            family="funnel",
            source="funnel",
            kind="rank",
            expr=lambda t: t.stage_rank,
            en="is at stage “{value}”",
            zh="处于“{value}”阶段",
        ),
        Feature(
            name="days_in_stage",
            family="funnel",
            source="funnel",
            kind="days",
            expr=lambda t: days_between(t.cutoff_us, t.stage_since_us),
            en="has been at this stage for {value}",
            zh="在当前阶段已{value}",
        ),
        Feature(
            name="days_since_created",
            family="funnel",
            source="funnel",
            topic="lead_age",
            kind="days",
            expr=lambda t: days_between(t.cutoff_us, ibis.coalesce(t.crm_first_us, t.first_us)),
            en="became a lead {value} ago",
            zh="成为线索已{value}",
        ),
        Feature(
            name="stage_changes",
            family="funnel",
            source="funnel",
            expr=lambda t: ibis.coalesce(t.stage_changes, 0),
            en="moved stage {value} times",
            zh="阶段变化{value}次",
        ),
        Feature(
            name="stages_skipped",
            family="funnel",
            source="funnel",
            expr=lambda t: ibis.coalesce(t.max_open_rank - t.open_stages_seen + 1, 0),
            en="skipped {value} stages",
            zh="跳过{value}个阶段",
        ),
    ]
