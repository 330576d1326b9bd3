"""One HTTP attempt to a platform, classified the way the outbox needs: sent, worth retrying, or gone.

Every robot answers HTTP 200 with its own code in the body (`errcode` for WeCom and DingTalk, `code` for
Feishu), so a 2xx is a success only when that code is 0; the platforms' rate-limit codes are retried like a
429. Nothing here raises for the far side's failure: a refused connection or a time-out is a `Delivery` too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import httpx

from leadradar.serving.alerts.alert import Delivery

# The far side is overloaded or restarting: try again later.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def classify(
    status: int, body: Any, code_of: Callable[[Any], int | None] | None = None, retry_codes: Collection[int] = ()
) -> Delivery:
    """A platform's answer as a `Delivery`: 410 gone, 429/5xx retry, 2xx with code 0 sent."""
    if status == 410:
        return Delivery(ok=False, status=status, gone=True, detail="410 gone: the endpoint was removed")
    if status in RETRY_STATUSES or status >= 500:
        return Delivery(ok=False, status=status, retry=True, detail=f"HTTP {status}: {_short(body)}")
    if not 200 <= status < 300:
        return Delivery(ok=False, status=status, detail=f"HTTP {status}: {_short(body)}")
    code = code_of(body) if code_of else 0
    if code == 0:
        return Delivery(ok=True, status=status, detail="sent")
    if code is None:
        return Delivery(ok=False, status=status, detail=f"no result code in the answer: {_short(body)}")
    return Delivery(ok=False, status=status, retry=code in retry_codes, detail=f"code {code}: {_short(body)}")


def post_json(
    client: httpx.Client, url: str, payload: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any] | Delivery:
    """POST a JSON body: the status and the parsed answer, or a retryable `Delivery` for a time-out or no answer."""
    try:
        response = client.post(url, content=payload, headers={"Content-Type": "application/json", **(headers or {})})
    except httpx.TimeoutException:
        return Delivery(ok=False, retry=True, detail=f"time-out after {client.timeout.read} s")
    except httpx.HTTPError as exc:
        return Delivery(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}")
    return response.status_code, _json(response)


def get_json(client: httpx.Client, url: str, params: dict[str, str]) -> tuple[int, Any] | Delivery:
    """GET with query parameters, answered like `post_json`."""
    try:
        response = client.get(url, params=params)
    except httpx.TimeoutException:
        return Delivery(ok=False, retry=True, detail=f"time-out after {client.timeout.read} s")
    except httpx.HTTPError as exc:
        return Delivery(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}")
    return response.status_code, _json(response)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _short(body: Any, limit: int = 200) -> str:
    text = str(body)
    return text if len(text) <= limit else text[:limit] + "..."


def errcode(body: Any) -> int | None:
    """WeCom's and DingTalk's result code."""
    return _int(body.get("errcode")) if isinstance(body, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
