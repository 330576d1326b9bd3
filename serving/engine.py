"""Answering a scoring request with one model version: features, probabilities, grades and reasons.

Built once per model version by the model holder, then shared by every request thread. Business
logic only: HTTP, keys and status codes live in the service.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from leadradar.config import Settings
from leadradar.features.consent import consented_leads, counts_only, split_consent
from leadradar.features.contract import EVENT_SCHEMA, ITEM_SCHEMA, STAGE_SCHEMA
from leadradar.features.online import OnlineFeatures
from leadradar.features.registry import FeatureRegistry
from leadradar.features.store import EventStore
from leadradar.features.tiles.online import OnlineTiles
from leadradar.features.validation import mark_duplicates, resent_changed_reason, validate_events
from leadradar.models.encoding import FeatureValueError, MissingFeaturesError
from leadradar.models.explain import Explainer
from leadradar.registry import LoadedModel
from leadradar.serving.auth import Principal
from leadradar.serving.certainty import certainty, close_window_of
from leadradar.serving.schemas import (
    LeadIn,
    LeadScore,
    LeadStatus,
    Reason,
    Reasons,
    ScoreRequest,
    ScoreResponse,
)
from leadradar.serving.store import CONTEXT_FEATURES, ScoreStore
from leadradar.targets import advance_target, close_curve, close_targets


class RequestError(ValueError):
    """A request that is well-formed JSON but cannot be scored; `loc` is the field path."""

    def __init__(self, loc: list[str | int], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass
class Scored:
    lead: LeadIn
    row: dict | None
    status: str


class ContextCache:
    """Salesperson context per tenant from the score store, re-read at most every `serving.context_cache_seconds`."""

    def __init__(self, store: ScoreStore | None, ttl: float):
        self.store, self.ttl = store, ttl
        self._cache: dict[str, tuple[float, dict]] = {}

    def get(self, tenant: str) -> dict[str, dict]:
        if self.store is None:
            return {}
        hit = self._cache.get(tenant)
        if hit and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        value = self.store.context(tenant)
        self._cache[tenant] = (time.monotonic(), value)
        return value


class Engine:
    """Everything needed to answer for one model version."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: Settings,
        registry: FeatureRegistry,
        online: OnlineFeatures,
        context: ContextCache,
        items: pa.Table | None = None,
        store: EventStore | None = None,
        tiles: OnlineTiles | None = None,
    ):
        self.loaded = loaded
        self.store = store
        # Stored leads from their kept histories (features.online_tiles); not when consent must be read per lead.
        self.tiles = tiles if store is not None and not settings.privacy.consent_required else None
        self.registry = registry
        self.model = loaded.model
        self.settings = settings
        self.online = online
        self.context = context
        self.items = items
        self.stages = list(settings.funnel.open_stages)
        self.rank_to_stage = dict(enumerate(settings.funnel.all_stages))
        self.features = self.model.features
        self.attributes = model_attributes(self.features, settings)
        self.index = {n: j for j, n in enumerate(self.features)}
        self.close_names = [name for _, name in close_targets(self.model.targets_)]
        self.explainer = Explainer(self.model, self.model.main_target, registry, settings.funnel)
        self.stage_names = set(settings.funnel.all_stages)
        self.ranges = feature_ranges(registry, self.features, len(self.stages))
        self.range_arrays = (
            np.array(list(self.ranges), dtype=np.intp),
            np.array([r[0] for r in self.ranges.values()], dtype=np.float64),
            np.array([r[1] for r in self.ranges.values()], dtype=np.float64),
        )

    # -- inputs -----------------------------------------------------------------------------------

    def _from_features(self, leads: list[tuple[int, LeadIn]]) -> tuple[np.ndarray, list[str | None]]:
        try:
            X = self.model.encoder_.transform_records([lead.features or {} for _, lead in leads])
        except MissingFeaturesError as exc:
            raise RequestError(
                ["body", "leads", leads[exc.record][0], "features"],
                f"lacks {len(exc.missing)} model features, e.g. {exc.missing[:5]}",
            ) from None
        except FeatureValueError as exc:
            raise RequestError(["body", "leads", leads[exc.record][0], "features", exc.feature], exc.reason) from None
        self._check_ranges(X, [i for i, _ in leads])
        stage_col = self.index.get("stage_rank")
        stages = [
            None if stage_col is None or np.isnan(x) else self.rank_to_stage.get(int(x))
            for x in (X[:, stage_col] if stage_col is not None else np.full(len(X), np.nan))
        ]
        return X, stages

    def _check_ranges(self, X: np.ndarray, positions: list[int]) -> None:
        """Values a feature of its kind can take: counts and durations not negative, shares in [0, 1],
        the stage an open funnel stage. The first offending feature and its first lead are named."""
        cols, low, high = self.range_arrays
        sub = X[:, cols]
        bad = ~np.isnan(sub) & ((sub < low) | (sub > high))
        if bad.any():
            k = int(np.flatnonzero(bad.any(axis=0))[0])
            i = int(np.flatnonzero(bad[:, k])[0])
            j = int(cols[k])
            raise RequestError(
                ["body", "leads", positions[i], "features", self.features[j]],
                f"{X[i, j]:g} is outside {self.ranges[j][2]}",
            )

    def _from_events(self, leads: list[tuple[int, LeadIn]], tenant: str, as_of: datetime) -> tuple[list[dict], dict]:
        """One feature record per lead open at `as_of` (the online query's rows, with the salesperson
        context), and each lead's last stage."""
        ev: dict[str, list[Any]] = {k: [] for k in EVENT_SCHEMA.names}
        st: dict[str, list[Any]] = {k: [] for k in STAGE_SCHEMA.names}
        attrs = []
        sent: list[tuple[int, int, bool]] = []  # per event: its lead's position, its own, whether it named its lead
        for i, lead in leads:
            lead_id = lead.lead_id.strip()  # as the rules trim the events' ids
            for j, e in enumerate(lead.events or []):
                values = {**e.model_dump(), "tenant_id": tenant, "lead_id": e.lead_id or lead.lead_id}
                for k in EVENT_SCHEMA.names:
                    ev[k].append(values[k])
                sent.append((i, j, e.lead_id is not None))
            for j, s in enumerate(lead.stages or []):
                if s.stage not in self.stage_names:
                    raise RequestError(
                        ["body", "leads", i, "stages", j, "stage"],
                        f"{s.stage!r} is not a funnel stage ({self.settings.funnel.all_stages})",
                    )
                for k, v in (
                    ("tenant_id", tenant),
                    ("lead_id", lead_id),
                    ("stage", s.stage),
                    ("ts", s.ts),
                    ("deal_value", None),
                ):
                    st[k].append(v)
            if lead.attributes:
                attrs.append({"tenant_id": tenant, "lead_id": lead_id, **lead.attributes})
        if len(ev["event_id"]) > self.settings.serving.max_events_per_request:
            raise RequestError(
                ["body", "leads"],
                f"{len(ev['event_id'])} events in one request; the limit is "
                f"{self.settings.serving.max_events_per_request}",
            )
        events = self._validated(pa.Table.from_pydict(ev, schema=EVENT_SCHEMA), sent)
        stages = pa.Table.from_pydict(st, schema=STAGE_SCHEMA)
        stored_leads = [lead.lead_id.strip() for _, lead in leads if lead.from_store]
        if stored_leads:
            events, stages = self._with_stored(events, stages, stored_leads, tenant, as_of, leads, self.tiles is None)
        lead_table = None
        names = list(self.settings.features.lead_attributes)
        if attrs:
            lead_table = pa.Table.from_pylist([{k: a.get(k) for k in ("tenant_id", "lead_id", *names)} for a in attrs])
        records = self._records(events, stages, tenant, as_of, lead_table, stored_leads, len(stored_leads) < len(leads))
        last_stage: dict[str, tuple[str, datetime]] = {}
        cut = pd.Timestamp(as_of)
        for lead_id, stage, ts in zip(
            stages["lead_id"].to_pylist(), stages["stage"].to_pylist(), stages["ts"].to_pylist()
        ):
            if ts <= cut and (lead_id not in last_stage or ts >= last_stage[lead_id][1]):
                last_stage[lead_id] = (stage, ts)
        return records, {k: v[0] for k, v in last_stage.items()}

    def _with_stored(
        self,
        events: pa.Table,
        stages: pa.Table,
        lead_ids: list[str],
        tenant: str,
        as_of: datetime,
        leads: list[tuple[int, LeadIn]],
        whole: bool = True,
    ) -> tuple[pa.Table, pa.Table]:
        """The stored events and stages of these leads as of `as_of` (by event time: a score at `as_of` uses every
        event stored by then), ahead of the request's own; an inline copy of a stored event counts once, and
        one with other content refuses the request, as a re-send to the store would be quarantined.
        Not `whole`: of the stored events only the inline ones' stored copies (the kept histories hold the rest)."""
        if self.store is None:
            raise RequestError(["body", "leads"], "this service has no event store to read stored history from")
        until = pd.Timestamp(as_of)
        all_stages = pa.concat_tables(
            [self.store.stages(tenant, leads=lead_ids, until=until), stages.cast(STAGE_SCHEMA)]
        )
        if not whole and events.num_rows == 0:  # nothing sent that a stored copy could repeat
            return events, all_stages
        ids = None if whole else events["event_id"].to_pylist()
        stored = self.store.events(tenant, leads=lead_ids, until=until, event_ids=ids)
        both = pa.concat_tables([stored, events])
        duplicate, conflicting = mark_duplicates(both)
        if conflicting.any():
            k = int(np.flatnonzero(conflicting)[0])
            event_id = both["event_id"][k].as_py()
            i, j = next(
                (i, j) for i, lead in leads for j, e in enumerate(lead.events or []) if e.event_id.strip() == event_id
            )
            raise RequestError(
                ["body", "leads", i, "events", j, "event_id"],
                resent_changed_reason(both["event_id"].take([k]).combine_chunks())[0].as_py(),
            )
        merged = both.filter(pa.array(~duplicate)) if duplicate.any() else both
        if not whole:  # the stored copies are in the kept histories already
            merged = both.slice(stored.num_rows).filter(pa.array(~duplicate[stored.num_rows :]))
        return merged, all_stages

    def _rows(
        self,
        events: pa.Table,
        stages: pa.Table,
        stored: list[str],
        tenant: str,
        as_of: datetime,
        lead_table: pa.Table | None,
        others: bool = False,
    ) -> list[dict]:
        """Feature records: stored leads from their kept histories (with `events`, the ones not stored yet) when
        `self.tiles` is on, the `others` (leads sent inline only) by the online query over `events`."""
        cut = pd.Timestamp(as_of).tz_convert("UTC")
        if self.tiles is None or not stored or self.store is None:
            columns, rows = self.online.compute_rows(events, stages, [cut], self.items, lead_table)
            return [dict(zip(columns, row)) for row in rows]
        mine = pc.is_in(events["lead_id"], value_set=pa.array(stored, pa.string()))
        columns, rows = self.tiles.compute_rows(
            self.store, tenant, stored, cut, events.filter(mine), stages, self.items, lead_table
        )
        records = [dict(zip(columns, row)) for row in rows]
        if others:
            columns, rows = self.online.compute_rows(
                events.filter(pc.invert(mine)), stages, [cut], self.items, lead_table
            )
            kept = set(stored)
            records += [r for r in (dict(zip(columns, row)) for row in rows) if r["lead_id"] not in kept]
        return records

    def stored_records(
        self, stages: pa.Table, lead_ids: list[str], tenant: str, as_of: datetime, leads: pa.Table | None = None
    ) -> list[dict]:
        """Feature records of stored leads from their kept histories (rescoring, with `tiles` on), context added."""
        records = self._rows(EVENT_SCHEMA.empty_table(), stages, lead_ids, tenant, as_of, leads)
        self._with_context(records, tenant)
        return records

    def feature_records(
        self, events: pa.Table, stages: pa.Table, tenant: str, as_of: datetime, leads: pa.Table | None = None
    ) -> list[dict]:
        """Feature records of the leads open at `as_of` from contract tables (a stored history): the online
        query and salesperson context that raw events in a request get, so a live score is a request's."""
        return self._records(events, stages, tenant, as_of, leads)

    def _records(
        self,
        events: pa.Table,
        stages: pa.Table,
        tenant: str,
        as_of: datetime,
        leads: pa.Table | None,
        stored: list[str] | None = None,
        others: bool = False,
    ) -> list[dict]:
        """The online query's rows with the salesperson context, blanked to counts for a lead without consent at
        `as_of` (features/consent.py, the rule the batch build applies)."""
        cutoff = pd.Timestamp(as_of).tz_convert("UTC")
        events, consent = split_consent(events, self.settings)
        records = self._rows(events, stages, stored or [], tenant, as_of, leads, others)
        self._with_context(records, tenant)
        consenting = consented_leads(consent, tenant, (r["lead_id"] for r in records), cutoff, self.settings)
        counts_only(records, consenting, self.registry)
        return records

    def _validated(self, events: pa.Table, sent: list[tuple[int, int, bool]]) -> pa.Table:
        """The request's events by the rules `leadradar ingest` applies (features/validation.py), as of now.

        An event ingest would quarantine, or a later copy of an event id with other content, refuses the
        request (422) naming the first such event and its field; a copy with the same content counts once.
        """
        if events.num_rows == 0:  # leads scored by id alone: no rule to apply
            return events
        accepted, rejected = validate_events(events, self.settings, pd.Timestamp.now(tz="UTC"), source="request")
        if rejected.num_rows:
            first = rejected.slice(0, 1).to_pylist()[0]
            more = rejected.num_rows - 1
            tail = f"; {more} more event{'s' if more > 1 else ''} of this request refused too" if more else ""
            raise RequestError(self._event_loc(sent[first["row"] - 1], first["field"]), first["reason"] + tail)
        duplicate, conflicting = mark_duplicates(accepted)
        if conflicting.any():
            k = int(np.flatnonzero(conflicting)[0])
            raise RequestError(
                self._event_loc(sent[k], "event_id"),
                resent_changed_reason(accepted["event_id"].take([k]).combine_chunks())[0].as_py(),
            )
        return accepted.filter(pa.array(~duplicate)) if duplicate.any() else accepted

    @staticmethod
    def _event_loc(sent: tuple[int, int, bool], field: str) -> list[str | int]:
        """Where a refused event's field was sent: its lead's `lead_id` when the event did not name its own."""
        i, j, own_lead = sent
        if field == "lead_id" and not own_lead:
            return ["body", "leads", i, "lead_id"]
        return ["body", "leads", i, "events", j, field]

    def _with_context(self, records: list[dict], tenant: str) -> None:
        """Salesperson features from the latest batch run: one lead's request cannot know its owner's record.
        A salesperson the run did not see gets the tenant's win rate."""
        ctx = self.context.get(tenant)
        if not ctx or not records:
            return
        tenant_rate = next(iter(ctx.values())).get("tenant_win_rate")
        columns = [c for c in CONTEXT_FEATURES if c in records[0]]
        for record in records:
            known = ctx.get(record["sales_id"], {})
            for col in columns:
                value = known.get(col)
                if value is None and col in ("tenant_win_rate", "sales_win_rate"):
                    value = tenant_rate
                if value is not None and value == value:
                    record[col] = float(value)

    # -- answers ----------------------------------------------------------------------------------

    def _probabilities(self, X: np.ndarray, tenant: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every target's probability as the tenant reads it (its own calibration where it has one), and where the
        main target's is the pooled one."""
        probs, pooled = {}, np.ones(len(X), dtype=bool)
        for name, target in self.model.targets_.items():
            probs[name], own_pooled = target.predict_for(X, tenant)
            if name == self.model.main_target:
                pooled = own_pooled
        return probs, pooled

    def _certainty(
        self, X: np.ndarray, tenant: str, curve: dict[int, np.ndarray], probs: dict[str, np.ndarray], pooled: np.ndarray
    ) -> list[dict[str, Any]]:
        """The main target's interval, flags and expected close window, per row."""
        target = self.model.targets_[self.model.main_target]
        p = probs[self.model.main_target]
        bounds = target.interval_for(X, p, tenant)
        lo, hi = bounds if bounds is not None else (None, None)
        support = target.support_for(X, p, tenant)
        return certainty(p, lo, hi, pooled, curve, self.settings.serving, support)

    def quick(self, request: ScoreRequest, tenant: str) -> bool:
        """Whether the answer costs a few milliseconds: at most `serving.inline_leads` leads, each by its feature row,
        or by id with no events sent and its history kept by this worker. The service answers those on its event
        loop; a thread and back cost 0.1–0.5 ms of a 7 ms answer by id."""
        leads = request.leads
        if len(leads) > self.settings.serving.inline_leads:
            return False
        by_id = [lead for lead in leads if lead.features is None]
        if not by_id:
            return True
        if self.tiles is None or self.store is None or any(lead.events or not lead.from_store for lead in by_id):
            return False
        return self.tiles.cache.holds(self.store, tenant, [lead.lead_id.strip() for lead in by_id])

    def score(self, request: ScoreRequest, principal: Principal) -> ScoreResponse:
        tenant = principal.tenant_id
        for i, lead in enumerate(request.leads):
            if lead.tenant_id not in (None, tenant):
                raise PermissionError(f"leads[{i}].tenant_id is {lead.tenant_id!r}; this key belongs to {tenant!r}")
        as_of = request.as_of or datetime.now(UTC)
        by_features = [(i, lead) for i, lead in enumerate(request.leads) if lead.features is not None]
        by_events = [(i, lead) for i, lead in enumerate(request.leads) if lead.features is None]
        rows: dict[int, tuple[np.ndarray, str | None]] = {}
        status: dict[int, LeadStatus] = {i: "scored" for i in range(len(request.leads))}
        if by_features:
            X, stages = self._from_features(by_features)
            for k, (i, _) in enumerate(by_features):
                rows[i] = (X[k], stages[k])
        if by_events:
            records, last_stage = self._from_events(by_events, tenant, as_of)
            found = {record["lead_id"]: pos for pos, record in enumerate(records)}
            Xe = self.model.encoder_.transform_records(records) if records else np.empty((0, len(self.features)))
            for i, lead in by_events:
                lead_id = lead.lead_id.strip()
                pos = found.get(lead_id)
                if pos is None:
                    closed = last_stage.get(lead_id) in (self.settings.funnel.won, self.settings.funnel.lost)
                    status[i] = "closed" if closed else "unknown"
                else:
                    rows[i] = (Xe[pos], records[pos]["stage"])
        order = sorted(rows)
        X = np.vstack([rows[i][0] for i in order]) if order else np.empty((0, len(self.features)))
        probs, pooled = self._probabilities(X, tenant) if order else ({}, np.ones(0, dtype=bool))
        reasons = (
            self.explainer.explain_matrix(
                X, request.lang, self.settings.serving.reasons_for, self.settings.serving.reasons_against
            )
            if request.explain and order
            else [None] * len(order)
        )
        answers, values = {}, {n: p.tolist() for n, p in probs.items()}
        by_days = close_curve(probs, self.close_names) if order else {}
        curve = {f"{d}d": c.tolist() for d, c in by_days.items()}
        sure = self._certainty(X, tenant, by_days, probs, pooled) if order else []
        for k, i in enumerate(order):
            answers[i] = self._answer(
                request.leads[i],
                tenant,
                rows[i][1],
                {n: p[k] for n, p in values.items()},
                {h: c[k] for h, c in curve.items()},
                reasons[k],
                sure[k],
                request.lang,
            )
        for i, answer in answers.items():
            answer.warnings = missing_attributes(request.leads[i], self.attributes)
        out = [
            answers.get(i) or LeadScore(lead_id=lead.lead_id, tenant_id=tenant, status=status[i])
            for i, lead in enumerate(request.leads)
        ]
        return ScoreResponse(
            model_name=self.loaded.ref.name,
            model_version=self.loaded.ref.version,
            horizon_days=self.settings.training.horizon_days,
            as_of=as_of if by_events else None,
            leads=out,
        )

    def _answer(
        self,
        lead: LeadIn,
        tenant: str,
        stage: str | None,
        p: dict[str, float],
        p_close: dict[str, float],
        why,
        sure: dict[str, Any],
        lang: str,
    ) -> LeadScore:
        """One lead's answer from its target probabilities and its close curve (computed for the whole batch)."""
        transitions = {}
        if stage in self.stages:
            for s in self.stages[self.stages.index(stage) :]:
                if advance_target(s) in p:
                    transitions[s] = float(p[advance_target(s)])
        main = float(p[self.model.main_target])
        reasons = None
        if why is not None:
            conv = lambda r: Reason(
                feature=r.feature, value=r.value, contribution=round(float(r.contribution), 4), text=r.text
            )
            reasons = Reasons(**{"for": [conv(r) for r in why.for_], "against": [conv(r) for r in why.against]})
        return LeadScore(
            lead_id=lead.lead_id,
            tenant_id=tenant,
            status="scored",
            stage=stage,
            p_close=p_close,
            p_advance=transitions.get(stage) if stage else None,
            transitions=transitions,
            grade=self.settings.serving.grade(main),
            p_lo=sure["p_lo"],
            p_hi=sure["p_hi"],
            low_confidence=sure["low_confidence"],
            pooled=sure["pooled"],
            expected_close=close_window_of(sure["close_from_days"], sure["close_to_days"], lang),
            reasons=reasons,
        )


def model_attributes(features: list[str], settings: Settings) -> list[str]:
    """The lead attributes (settings.features.lead_attributes) the model reads, as `attr_<name>` features."""
    return [name for name in settings.features.lead_attributes if f"attr_{name}" in features]


def missing_attributes(lead: LeadIn, attributes: list[str]) -> list[str]:
    """One warning per attribute the model uses that the request left out: the lead is scored as if unknown,
    which can differ from the dashboard's score (the batch run reads the CRM's attributes)."""
    if lead.features is not None:
        sent = {name for name in attributes if lead.features.get(f"attr_{name}") not in (None, "")}
    else:
        sent = {name for name, value in (lead.attributes or {}).items() if value not in (None, "")}
    return [
        f"attribute {name!r} missing: the model uses it, so the lead was scored as if it were unknown"
        for name in attributes
        if name not in sent
    ]


def feature_ranges(
    registry: FeatureRegistry, names: list[str], open_stages: int
) -> dict[int, tuple[float, float, str]]:
    """Per model column, the values its kind allows (unbounded kinds are left out)."""
    bounds = {
        "count": (0, np.inf, "counts (>= 0)"),
        "seconds": (0, np.inf, "durations (>= 0)"),
        "hours": (0, np.inf, "durations (>= 0)"),
        "days": (0, np.inf, "durations (>= 0)"),
        "share": (0, 1, "shares [0, 1]"),
        "rank": (0, open_stages - 1, f"open funnel stages 0..{open_stages - 1}"),
    }
    return {j: bounds[registry[n].kind] for j, n in enumerate(names) if n in registry and registry[n].kind in bounds}


def load_items(settings: Settings, loaded: LoadedModel) -> pa.Table | None:
    """The item catalogue the model trained with, carried in its bundle, for pricing and product-line features."""
    import pyarrow.parquet as pq

    path = getattr(loaded.model, "path_", None)
    if path is not None and (path / "items.parquet").exists():
        return pq.read_table(path / "items.parquet").select(ITEM_SCHEMA.names).cast(ITEM_SCHEMA)
    try:  # bundles from before the catalogue travelled with them: the path the training run recorded
        from mlflow import MlflowClient

        recorded = MlflowClient().get_run(loaded.ref.run_id).data.tags.get("data.items")
    except Exception:
        recorded = None
    if recorded and Path(recorded).exists():
        return pq.read_table(recorded).select(ITEM_SCHEMA.names).cast(ITEM_SCHEMA)
    return None
