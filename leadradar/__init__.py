"""leadradar: lead intent scoring from radar events."""

from leadradar.memory import no_huge_page_advice

no_huge_page_advice()
