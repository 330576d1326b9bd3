"""One Schemathesis pass over one operation of the API: generated requests sent to a real server, every answer
checked to be no server error, the statuses counted (the fuzz tests of the scoring and of the writing endpoints)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

# Reproducible and quick: no example database, no shrinking, no health checks on slow servers.
FUZZ = hsettings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


def fuzz_operation(
    schema: Any,
    label: str,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    auth: dict[str, str],
    steer: Callable[[Any, Any], None] | None = None,
) -> str:
    """Fuzz `label` (e.g. "POST /events") with `examples` generated cases; `steer(body, data)` may adjust a positive
    case's body to reach deeper code. Returns a one-line summary; fails on any 5xx."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    codes: list[int] = []

    @hsettings(FUZZ, max_examples=examples)
    @given(case=operation.as_strategy(mode, headers=auth), data=st.data())
    def fuzz(case: Any, data: Any) -> None:
        if steer is not None and mode == GenerationMode.POSITIVE:
            steer(case.body, data)
        response = case.call(base_url=base_url, headers=auth, timeout=60)
        codes.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    started = time.monotonic()
    fuzz()
    assert codes and max(codes) < 500
    return (
        f"schemathesis {label} {mode.value}: {len(codes)} requests in {time.monotonic() - started:.1f} s, "
        f"statuses {dict(sorted(Counter(codes).items()))}"
    )
