"""What each dashboard page shows, as plain data from the score store: the dashboard and the HTML report
render the same dicts with the same templates.

Every function takes the tenant and reads only that tenant's rows; nothing here knows about HTTP.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leadradar.config import GRADES, Settings
from leadradar.features.registry import FeatureRegistry, build_registry
from leadradar.serving.certainty import certainty_words
from leadradar.serving.dashboard import charts
from leadradar.serving.dashboard.formatting import Clock, count, decimal, pct, points, seconds
from leadradar.serving.dashboard.messages import translator
from leadradar.serving.names import NameBook, Names
from leadradar.serving.ranking import SHOWN_IN_COLUMNS, listing, movers, ranked_leads, reason_side, with_grades
from leadradar.serving.reasons import ReasonWriter, parse_detail
from leadradar.serving.store import ScoreStore
from leadradar.targets import close_days


@dataclass(frozen=True)
class Filters:
    """The ranked list's filters and page, as the query string gives them (empty means all)."""

    sales: str | None = None
    stage: str | None = None
    grade: str | None = None
    page: int = 1

    def query(self, **changes: Any) -> dict[str, str]:
        """The query string of these filters with some changed (for links); page 1 is left out."""
        values = {"sales": self.sales, "stage": self.stage, "grade": self.grade, "page": self.page, **changes}
        return {k: str(v) for k, v in values.items() if v not in (None, "") and not (k == "page" and int(v) <= 1)}


@dataclass
class PageData:
    """Page contents for one company's managers, from the score store."""

    store: ScoreStore
    settings: Settings
    registry: FeatureRegistry | None = None
    names: NameBook | None = None
    writer: ReasonWriter = field(init=False)

    def __post_init__(self) -> None:
        hidden = self.settings.serving.hidden_reason_families
        self.writer = ReasonWriter(self.registry or build_registry(self.settings), self.settings.funnel, hidden)

    def names_of(self, tenant: str) -> Names:
        """The tenant's display names (leads, salespeople, items) from the event store's catalogues."""
        if self.names is None:
            self.names = NameBook(self.settings)
        return self.names(tenant)

    # -- shared pieces ---------------------------------------------------------------------------

    def ranked(self, tenant: str) -> pd.DataFrame:
        """Every lead of the latest run, best first, with rank, change and grade."""
        return with_grades(ranked_leads(self.store, tenant, limit=None), self.settings.serving.grade)

    def stage_label(self, stage: str | None, lang: str) -> str:
        return self.settings.funnel.label(stage, lang) if stage else ""

    def _row(self, r: dict, lang: str, names: Names) -> dict[str, Any]:
        change = r.get("change")
        new = change is None or (isinstance(change, float) and math.isnan(change))
        change = 0.0 if change is None or new else float(change)
        reason = self.writer.strongest(r.get("detail"), lang, SHOWN_IN_COLUMNS, reason_side(r["grade"]))
        return {
            "rank": int(r["rank"]),
            "lead_id": r["lead_id"],
            "lead_name": names.lead(r["lead_id"]),
            "sales_id": r.get("sales_id") or "",
            "sales_name": names.salesperson(r.get("sales_id")),
            "stage": r.get("stage"),
            "stage_label": self.stage_label(r.get("stage"), lang),
            "p": float(r["p_close"]),
            "p_text": pct(r["p_close"]),
            "grade": r["grade"],
            "change": None if new else float(change),
            "change_text": "" if new else points(change),
            "reason": reason.text if reason else "",
            "reason_side": reason.direction if reason else "",
            **certainty_words(r.get("detail"), lang),
        }

    def _run(self, tenant: str, frame: pd.DataFrame, clock: Clock) -> dict[str, Any]:
        runs = self.store.runs(tenant)
        previous = runs[1][0] if len(runs) > 1 else None
        return {
            "as_of": clock.datetime(frame["as_of"].iloc[0]) if len(frame) else None,
            "as_of_date": clock.date(frame["as_of"].iloc[0]) if len(frame) else None,
            "model_version": str(frame["model_version"].iloc[0]) if len(frame) else None,
            "previous": clock.date(previous) if previous is not None else None,
        }

    def _common(self, tenant: str, lang: str) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "lang": lang,
            "days": self.settings.training.horizon_days,
            "offset": Clock(self.settings.features.utc_offset_hours, lang).offset,
        }

    # -- the ranked list -------------------------------------------------------------------------

    def board(
        self, tenant: str, lang: str, filters: Filters = Filters(), page_size: int | None = None
    ) -> dict[str, Any]:
        """The ranked table with its filters, summary cards, movers and the grade chart."""
        t, clock = translator(lang), Clock(self.settings.features.utc_offset_hours, lang)
        size = page_size or self.settings.serving.dashboard.page_size
        frame = self.ranked(tenant)
        names = self.names_of(tenant)
        chosen = self.filtered(frame, filters)
        pages = max(1, math.ceil(len(chosen) / size))
        page = min(max(1, filters.page), pages)
        rows = [self._row(r, lang, names) for r in chosen.iloc[(page - 1) * size : page * size].to_dict("records")]
        up, down = movers(chosen, self.settings.serving.dashboard.movers)
        # The cards and the grade chart speak of the selection: a salesperson's own numbers when filtered.
        counts = chosen["grade"].value_counts().to_dict() if len(chosen) else {}
        thresholds = self.settings.serving.grade_thresholds
        return {
            **self._common(tenant, lang),
            **self._run(tenant, frame, clock),
            "empty": frame.empty,
            "rows": rows,
            "total": len(chosen),
            "page": page,
            "pages": pages,
            "filters": filters,
            "options": {
                "sales": [
                    (s, names.salesperson(s) or s)
                    for s in (sorted(frame["sales_id"].dropna().unique().tolist()) if len(frame) else [])
                ],
                "stages": [(s, self.stage_label(s, lang)) for s in self.settings.funnel.open_stages],
                "grades": list(GRADES),
            },
            "cards": {
                "open": count(len(chosen)),
                "hot": count(counts.get("A", 0)),
                "expected": decimal(chosen["p_close"].sum() if len(chosen) else 0.0),
            },
            "movers": {
                "up": [self._row(r, lang, names) for r in up.to_dict("records")],
                "down": [self._row(r, lang, names) for r in down.to_dict("records")],
            },
            "grades": {g: int(counts.get(g, 0)) for g in GRADES},
            "grade_chart": charts.grade_chart({g: int(counts.get(g, 0)) for g in GRADES}, t("grades.title")),
            "grade_legend": t(
                "grades.legend", a=pct(thresholds["A"], 0), b=pct(thresholds["B"], 0), c=pct(thresholds["C"], 0)
            ),
        }

    def filtered(self, frame: pd.DataFrame, filters: Filters) -> pd.DataFrame:
        """The ranked list narrowed by salesperson, stage and grade; ranks stay company-wide."""
        keep = pd.Series(True, index=frame.index)
        for column, value in (("sales_id", filters.sales), ("stage", filters.stage), ("grade", filters.grade)):
            if value:
                keep &= frame[column] == value
        return frame[keep].reset_index(drop=True)

    def export(self, tenant: str, lang: str, filters: Filters = Filters()) -> pd.DataFrame:
        """The filtered list as a table for CSV and Excel, with the top reason in `lang`."""
        return listing(self.filtered(self.ranked(tenant), filters), self.writer, lang, self.names_of(tenant))

    # -- one lead --------------------------------------------------------------------------------

    def lead(self, tenant: str, lead_id: str, lang: str, ranked: pd.DataFrame | None = None) -> dict[str, Any] | None:
        """A lead's page: where it stands, its score history, reasons and recent events; None if unknown."""
        t, clock = translator(lang), Clock(self.settings.features.utc_offset_hours, lang)
        history = self.store.score_history(
            tenant, lead_id, self.settings.serving.grade, self.settings.serving.dashboard.history_points
        )
        if history.empty:
            return None
        frame = self.ranked(tenant) if ranked is None else ranked
        names = self.names_of(tenant)
        current = frame[frame["lead_id"] == lead_id]
        if len(current):
            row = self._row(current.iloc[0].to_dict(), lang, names)
            detail = current.iloc[0]["detail"]
        else:  # closed or gone since: show its last score
            last = history.iloc[-1].to_dict()
            row = self._row(
                {**last, "rank": 0, "change": None, "grade": self.settings.serving.grade(last["p_close"])},
                lang,
                names,
            )
            detail = last["detail"]
        info = parse_detail(detail)
        horizons = sorted(
            (days, v) for k, v in info.items() if k.startswith("p_") and (days := close_days(k[2:])) is not None
        )
        pts = [self._point(h, clock, lang) for h in history.to_dict("records")]
        as_of = row_as_of = history["as_of"].iloc[-1]
        if len(current):
            row_as_of = current.iloc[0]["as_of"]
        events = self.store.events(tenant, lead_id)
        return {
            **self._common(tenant, lang),
            "lead": row,
            "current": bool(len(current)),
            "total": len(frame),
            "as_of": clock.datetime(row_as_of),
            "live": bool((history["source"] == "live").iloc[-1]) and pd.Timestamp(row_as_of) == pd.Timestamp(as_of),
            "live_points": int((history["source"] == "live").sum()),
            "horizons": [{"days": d, "p": pct(v)} for d, v in horizons if v is not None],
            "advance": pct(info["p_advance"]) if info.get("p_advance") is not None else None,
            "history_chart": charts.history_chart(pts, self.settings.serving.grade_thresholds, t("lead.history")),
            "runs": len(pts),
            "judged": {
                "model_version": str(history["model_version"].iloc[-1]),
                "p_close": float(current.iloc[0]["p_close"] if len(current) else history["p_close"].iloc[-1]),
            },
            "reasons": self.writer.reasons(detail, lang),
            "has_reasons": "reasons" in info,
            "timeline": self._timeline(events, clock, lang, names),
            "activity_chart": self._activity(events, as_of, clock, lang) if len(events) else None,
        }

    def _point(self, h: Mapping[Any, Any], clock: Clock, lang: str) -> charts.Point:
        """One point of the score history; a live score's says which event moved it, and when."""
        if h["source"] != "live":
            return charts.Point(
                clock.short(h["as_of"]), float(h["p_close"]), f"{clock.date(h['as_of'])}: {pct(h['p_close'])}"
            )
        moved = (
            translator(lang)("lead.moved_by", event=h["moved_by"], time=clock.datetime(h.get("moved_at")))
            if h.get("moved_by")
            else ""
        )
        return charts.Point(
            clock.short(h["as_of"]), float(h["p_close"]), f"{clock.datetime(h['as_of'])}: {pct(h['p_close'])}", moved
        )

    def _timeline(self, events: pd.DataFrame, clock: Clock, lang: str, names: Names) -> list[dict[str, Any]]:
        """Events grouped by local day, newest first, each in words: items by their catalogue names, channels
        by their configured words."""
        days: list[dict[str, Any]] = []
        types = self.settings.events
        for e in events.to_dict("records"):
            label = types.label(e["event_type"])
            extra = [x for x in (seconds(e.get("dwell_s"), lang), names.item(e.get("item_id"), lang)) if x]
            channel = _word(e.get("channel"))
            item = {
                "time": clock.time(e["ts"]),
                "text": label.verb_zh if lang == "zh-CN" else label.verb_en,
                "family": types.types.get(e["event_type"], "view"),
                "extra": " · ".join(extra),
                "channel": types.channel_label(channel, lang) if channel else "",
            }
            heading = clock.day(e["ts"])
            if not days or days[-1]["day"] != heading:
                days.append({"day": heading, "items": []})
            days[-1]["items"].append(item)
        return days

    def _activity(self, events: pd.DataFrame, as_of: pd.Timestamp, clock: Clock, lang: str):
        t = translator(lang)
        before = (pd.Timestamp(as_of) - events["ts"]).dt.total_seconds() / 86400
        marks = [
            charts.Mark(float(d), self.settings.events.types.get(et, "view"))
            for d, et in zip(before, events["event_type"])
        ]
        rows = {f: t(f"family.{f}") for f in ("view", "content", "share", "contact")}
        ticks = [(float(d), clock.short(pd.Timestamp(as_of) - pd.Timedelta(days=d))) for d in (28, 21, 14, 7, 0)]
        return charts.activity_chart(
            marks, rows, self.settings.serving.dashboard.activity_days, ticks, t("lead.activity")
        )

    # -- funnel and team -------------------------------------------------------------------------

    def funnel(self, tenant: str, lang: str) -> dict[str, Any]:
        """Leads reached per stage to date, conversion on to the next, open leads and the model's view."""
        t, clock = translator(lang), Clock(self.settings.features.utc_offset_hours, lang)
        frame = self.ranked(tenant)
        counts = self.store.funnel(tenant, frame["as_of"].iloc[0] if len(frame) else None)
        if counts.empty:
            counts = self.store.funnel(tenant)
        open_now = frame["stage"].value_counts().to_dict() if len(frame) else {}
        advance = {}
        if len(frame):
            p_adv = frame["detail"].map(lambda d: parse_detail(d).get("p_advance"))
            advance = p_adv.astype(float).groupby(frame["stage"]).mean().to_dict()
        reached = counts["reached"].tolist()
        stages = []
        for i, r in enumerate(counts.to_dict("records")):
            nxt = reached[i + 1] / reached[i] if i + 1 < len(reached) and reached[i] else None
            stages.append(
                {
                    "stage": r["stage"],
                    "label": self.stage_label(r["stage"], lang),
                    "reached": int(r["reached"]),
                    "conversion": pct(nxt) if nxt is not None else "",
                    "lost": int(r["lost"]),
                    "open": int(open_now.get(r["stage"], 0)),
                    "expected": pct(advance.get(r["stage"])) if r["stage"] in advance else "",
                }
            )
        bars = [
            charts.FunnelBar(
                s["label"], s["reached"], s["conversion"], f"{t('funnel.lost')} {s['lost']:,}" if s["lost"] else ""
            )
            for s in stages
        ]
        first = reached[0] if reached else 0
        return {
            **self._common(tenant, lang),
            "stages": stages,
            "empty": counts.empty,
            "as_of_date": clock.date(counts["as_of"].iloc[0]) if len(counts) else None,
            "chart": charts.funnel_chart(bars, t("funnel.title")) if stages else None,
            "winrate": t("funnel.winrate", rate=pct(reached[-1] / first if first else None), n=f"{first:,}"),
        }

    def team(self, tenant: str, lang: str) -> dict[str, Any]:
        """Per salesperson: open leads, hot and warm leads, expected wins, and their best lead."""
        clock = Clock(self.settings.features.utc_offset_hours, lang)
        frame = self.ranked(tenant)
        names = self.names_of(tenant)
        rows = []
        if len(frame):
            for sales, g in frame.groupby(frame["sales_id"].fillna("–"), sort=False):
                best = g.iloc[0]  # the frame is best first
                rows.append(
                    {
                        "sales_id": sales,
                        "sales_name": names.salesperson(sales),
                        "leads": len(g),
                        "hot": int((g["grade"] == "A").sum()),
                        "warm": int((g["grade"] == "B").sum()),
                        "expected_value": float(g["p_close"].sum()),
                        "expected": decimal(g["p_close"].sum()),
                        "mean": pct(g["p_close"].mean()),
                        "best": best["lead_id"],
                        "best_name": names.lead(best["lead_id"]),
                        "best_p": pct(best["p_close"]),
                        "up": int((g["change"] > 0.005).sum()),
                        "down": int((g["change"] < -0.005).sum()),
                    }
                )
        rows.sort(key=lambda r: (-r["expected_value"], r["sales_id"]))
        most = max([r["expected_value"] for r in rows] + [1e-9])
        for r in rows:
            r["bar"] = charts.bar(r["expected_value"] / most)
        total = {
            "leads": count(len(frame)),
            "hot": int((frame["grade"] == "A").sum()) if len(frame) else 0,
            "warm": int((frame["grade"] == "B").sum()) if len(frame) else 0,
            "expected": decimal(frame["p_close"].sum() if len(frame) else 0.0),
            "mean": pct(frame["p_close"].mean()) if len(frame) else "–",
        }
        return {
            **self._common(tenant, lang),
            **self._run(tenant, frame, clock),
            "rows": rows,
            "total": total,
            "empty": frame.empty,
        }

    # -- the e-mailed report ---------------------------------------------------------------------

    def report(self, tenant: str, lang: str, top: int = 25) -> dict[str, Any]:
        """Everything of the pages in one: the top of the list, movers, funnel, team and the top leads."""
        board = self.board(tenant, lang, Filters(), page_size=top)
        n_leads = self.settings.serving.dashboard.report_leads
        ranked = self.ranked(tenant)
        leads = [self.lead(tenant, r["lead_id"], lang, ranked) for r in board["rows"][:n_leads]]
        return {
            "board": board,
            "funnel": self.funnel(tenant, lang),
            "team": self.team(tenant, lang),
            "leads": [x for x in leads if x],
            "top": top,
            **self._common(tenant, lang),
        }


def _word(value: Any) -> str:
    """Text of an optional field; '' for None and NaN."""
    return value if isinstance(value, str) else ""
