"""Ranked lead lists: who to call first, with the change since the previous scoring run."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from serving.store import ScoreStore


def ranked_leads(
    store: ScoreStore,
    tenant_id: str,
    sales_id: str | None = None,
    stage: str | None = None,
    limit: int | None = 20,
    offset: int = 0,
) -> pd.DataFrame:
    """The tenant's latest scores, highest close probability first, with `change` against the previous run."""
    latest = store.latest(tenant_id)
    if latest.empty:
        return latest.assign(change=pd.Series(dtype=float), rank=pd.Series(dtype=int))
    prev = store.latest(tenant_id, back=1)
    if not prev.empty:
        latest = latest.merge(prev[["lead_id", "p_close"]].rename(columns={"p_close": "p_prev"}), on="lead_id", how="left")
        latest["change"] = latest["p_close"] - latest["p_prev"]
        latest = latest.drop(columns="p_prev")
    else:
        latest["change"] = float("nan")
    latest = latest.sort_values(["p_close", "lead_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    latest["rank"] = latest.index + 1
    if sales_id is not None:
        latest = latest[latest["sales_id"] == sales_id]
    if stage is not None:
        latest = latest[latest["stage"] == stage]
    end = None if limit is None else offset + limit
    return latest.iloc[offset:end].reset_index(drop=True)


def with_grades(frame: pd.DataFrame, grade: Callable[[float], str], only: str | None = None) -> pd.DataFrame:
    """The list with each lead's grade (A-D by close probability), optionally only one grade."""
    frame = frame.assign(grade=frame["p_close"].map(grade) if len(frame) else pd.Series(dtype=str))
    if only is not None:
        frame = frame[frame["grade"] == only].reset_index(drop=True)
    return frame


def movers(frame: pd.DataFrame, n: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `n` leads whose probability rose most and the `n` that fell most since the previous run."""
    known = frame[frame["change"].notna()] if "change" in frame else frame.iloc[0:0]
    up = known[known["change"] > 0].sort_values(["change", "lead_id"], ascending=[False, True], kind="stable")
    down = known[known["change"] < 0].sort_values(["change", "lead_id"], ascending=[True, True], kind="stable")
    return up.head(n).reset_index(drop=True), down.head(n).reset_index(drop=True)
