"""Ranked lead lists: who to call first, with the change since the previous scoring run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from leadradar.serving.certainty import with_certainty
from leadradar.serving.names import NO_NAMES, Names
from leadradar.serving.reasons import ReasonWriter
from leadradar.serving.store import COLUMNS, ScoreStore

# What a ranked list carries into files and terminals, in this order.
LIST_COLUMNS = [
    "rank",
    "lead_id",
    "sales_id",
    "stage",
    "p_close",
    "grade",
    "change",
    "p_lo",
    "p_hi",
    "low_confidence",
    "pooled",
    "close_window",
    "top_reason",
    "as_of",
    "model_version",
    "lead_name",
    "sales_name",
]
# The list's stage column already says what this reason would; its "top reason" is the next one.
SHOWN_IN_COLUMNS = ("stage_rank",)


def ranked_leads(
    store: ScoreStore,
    tenant_id: str,
    sales_id: str | None = None,
    stage: str | None = None,
    limit: int | None = 20,
    offset: int = 0,
    detail: bool = True,
) -> pd.DataFrame:
    """The tenant's current scores (each lead's newest of the latest batch run and its live rescorings),
    highest close probability first, with `change`: a batch score's against the run before, a live score's
    against the latest run (what the list said before the lead moved).

    `detail=False` leaves out each lead's horizons and reasons (JSON), which a bare ranking never reads.
    """
    runs = store.runs(tenant_id)
    columns = COLUMNS if detail else [c for c in COLUMNS if c != "detail"]
    latest = store.latest(tenant_id, columns=columns)
    if latest.empty:
        return pd.DataFrame(columns=columns).assign(change=pd.Series(dtype=float), rank=pd.Series(dtype=int))
    latest["change"] = float("nan")
    live = latest["as_of"] > pd.Timestamp(runs[0][0]) if runs else pd.Series(True, index=latest.index)
    for against, rows in ((1, ~live), (0, live)):
        if len(runs) > against and rows.any():
            prev = store.run(tenant_id, *runs[against], columns=["lead_id", "p_close"])
            p_prev = latest.loc[rows, "lead_id"].map(dict(zip(prev["lead_id"], prev["p_close"])))
            latest.loc[rows, "change"] = latest.loc[rows, "p_close"] - p_prev.astype(float)
    latest = latest.sort_values(["p_close", "lead_id"], ascending=[False, True], kind="stable").reset_index(drop=True)
    latest["rank"] = latest.index + 1
    if sales_id is not None:
        latest = latest[latest["sales_id"] == sales_id]
    if stage is not None:
        latest = latest[latest["stage"] == stage]
    end = None if limit is None else offset + limit
    return latest.iloc[offset:end].reset_index(drop=True)


class RankedCache:
    """Each tenant's whole ranked list with grades, intervals and close windows (no reasons), read again only when
    its scores change: the service pages and filters it for every /v1/rank call."""

    def __init__(self, store: ScoreStore, grade: Callable[[float], str]):
        self.store, self.grade = store, grade
        self._lists: dict[str, tuple[tuple, pd.DataFrame]] = {}

    def get(self, tenant_id: str) -> pd.DataFrame:
        stamp = self.store.stamp(tenant_id)
        hit = self._lists.get(tenant_id)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        frame = with_grades(ranked_leads(self.store, tenant_id, limit=None), self.grade)
        frame = with_certainty(frame, "en").drop(columns=["detail"], errors="ignore")
        self._lists[tenant_id] = (stamp, frame)
        return frame


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


def reason_side(grade: str) -> str:
    """Which side a list's top reason speaks from: why a hot lead is hot, why a cold one is cold."""
    return "for" if grade in ("A", "B") else "against"


def listing(
    frame: pd.DataFrame, writer: ReasonWriter | None, lang: str = "en", names: Names = NO_NAMES
) -> pd.DataFrame:
    """A graded ranked frame as the list's columns, with its top reason worded in `lang` and the display names
    the data carries ('' where it has none)."""
    reasons = (
        [writer.top(d, lang, SHOWN_IN_COLUMNS, reason_side(g)) for d, g in zip(frame["detail"], frame["grade"])]
        if writer is not None and len(frame) and "detail" in frame
        else ""
    )
    out = with_certainty(
        frame.assign(
            top_reason=reasons,
            lead_name=frame["lead_id"].map(names.lead) if len(frame) else "",
            sales_name=frame["sales_id"].map(names.salesperson) if len(frame) else "",
        ),
        lang,
    )
    for col in LIST_COLUMNS:
        if col not in out:
            out[col] = None
    return out[LIST_COLUMNS].reset_index(drop=True)


@dataclass(frozen=True)
class RankedList:
    """A filtered list (all of it), its biggest movers since the previous run, and the run it is of."""

    table: pd.DataFrame
    up: pd.DataFrame
    down: pd.DataFrame
    previous_as_of: pd.Timestamp | None

    @property
    def movers(self) -> pd.DataFrame:
        """Risers then fallers, as one table (for a file)."""
        parts = [f for f in (self.up, self.down) if len(f)]
        return pd.concat(parts, ignore_index=True) if parts else self.up


def ranked_list(
    store: ScoreStore,
    tenant_id: str,
    grade: Callable[[float], str],
    writer: ReasonWriter | None = None,
    lang: str = "en",
    sales_id: str | None = None,
    stage: str | None = None,
    only_grade: str | None = None,
    n_movers: int = 5,
    names: Names = NO_NAMES,
) -> RankedList:
    """The tenant's latest list, filtered, with grades, top reasons and movers (what `rank` prints and exports)."""
    frame = with_grades(ranked_leads(store, tenant_id, sales_id, stage, limit=None), grade, only_grade)
    up, down = movers(frame, n_movers)
    runs = store.runs(tenant_id)
    previous = pd.Timestamp(runs[1][0]) if len(runs) > 1 else None
    table, up, down = (listing(f, writer, lang, names) for f in (frame, up, down))
    return RankedList(table, up, down, previous)
