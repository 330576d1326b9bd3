"""leadradar: lead intent scoring from radar events."""

from leadradar.memory import arrow_pool, no_huge_page_advice

no_huge_page_advice()
arrow_pool()
