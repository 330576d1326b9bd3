"""The day-by-day simulation: leads arrive, their hidden state moves, they touch the card."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.dynamics import BROWSING, BUYING, DORMANT, intent, sigmoid, stage_step
from leadradar.features.simulator.emission import DAY_US, HOUR_US, SECOND_US, Emitter, EventBatch
from leadradar.features.simulator.world import World

LEAD_FIELDS = {
    "tenant": np.int32,
    "sales": np.int32,
    "line": np.int32,
    "z": np.float64,
    "activity": np.float64,
    "created_us": np.int64,
    "created_day": np.int32,
    "referrer": np.int64,
    "channel": np.int8,
    "stage": np.int8,
    "mode": np.int8,
    "to_buy": np.float64,
    "to_dormant": np.float64,
    "offset": np.float64,
}


class LeadTable:
    """Growable columns of per-lead state; share chains add leads while the simulation runs."""

    def __init__(self, capacity: int):
        self.n = 0
        self.cols = {k: np.zeros(max(capacity, 16), dtype=t) for k, t in LEAD_FIELDS.items()}

    def append(self, **values: np.ndarray) -> np.ndarray:
        k = next(iter(values.values())).shape[0]
        if self.n + k > self.cols["z"].shape[0]:
            new_cap = max(2 * self.cols["z"].shape[0], self.n + k)
            for name, col in self.cols.items():
                grown = np.zeros(new_cap, dtype=col.dtype)
                grown[: self.n] = col[: self.n]
                self.cols[name] = grown
        idx = np.arange(self.n, self.n + k)
        for name, v in values.items():
            self.cols[name][idx] = v
        self.n += k
        return idx

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("cols")
        if cols is not None and name in cols:
            return cols[name][: self.n]
        raise AttributeError(name)


@dataclass
class StageRows:
    lead: list[np.ndarray] = field(default_factory=list)
    stage: list[np.ndarray] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)


@dataclass
class Snapshot:
    """Hidden state of every open lead at one cutoff (midnight before `day`)."""

    day: int
    lead: np.ndarray
    stage: np.ndarray
    mode: np.ndarray


@dataclass
class RawSimulation:
    world: World
    leads: LeadTable
    events: list[EventBatch]
    stage_rows: StageRows
    snapshots: list[Snapshot]
    start_us: int
    n_open: int


class Simulation:
    def __init__(self, cfg: SimulationConfig, world: World, n_open: int, rng: np.random.Generator):
        if len(cfg.stage_base) != n_open:
            raise ValueError(f"stage_base has {len(cfg.stage_base)} entries for {n_open} open funnel stages")
        self.cfg, self.world, self.rng = cfg, world, rng
        self.n_open = n_open
        self.won, self.lost = n_open, n_open + 1
        self.emitter = Emitter(cfg, world, rng)
        self.leads = LeadTable(int(cfg.leads * 1.3))
        self.events: list[EventBatch] = []
        self.stage_rows = StageRows()
        self.start_us = int(np.datetime64(cfg.start, "us").astype(np.int64))
        self.end_us = self.start_us + cfg.days * DAY_US

    def _new_leads(self, tenant, sales, line, z, created_us, referrer) -> np.ndarray:
        cfg, rng, w = self.cfg, self.rng, self.world
        n = z.shape[0]
        activity = np.exp(rng.normal(cfg.activity_log_mean, cfg.activity_log_sd, n))
        mode = np.where(rng.random(n) < sigmoid(-2.0 + 0.9 * z), BUYING, BROWSING)
        idx = self.leads.append(
            tenant=tenant,
            sales=sales,
            line=line,
            z=z,
            activity=activity,
            created_us=created_us,
            created_day=(created_us - self.start_us) // DAY_US,
            referrer=referrer,
            channel=rng.choice(len(self.emitter.channels), size=n, p=self.emitter.channel_p),
            stage=np.zeros(n),
            mode=mode,
            to_buy=sigmoid(cfg.to_buying[0] + cfg.to_buying[1] * z),
            to_dormant=sigmoid(cfg.to_dormant[0] - cfg.to_dormant[1] * z),
            offset=w.sales_skill[sales] + w.tenant_offset[tenant],
        )
        self.stage_rows.lead.append(idx)
        self.stage_rows.stage.append(np.zeros(n, dtype=np.int8))
        self.stage_rows.ts.append(created_us)
        self._first_sessions(idx)
        return idx

    def _first_sessions(self, idx: np.ndarray) -> None:
        """The visit that created the lead: a card view, sometimes a short look around."""
        L, rng = self.leads, self.rng
        it = intent(L.z[idx], L.mode[idx], self.cfg)
        extra = np.minimum(rng.poisson(3 * L.activity[idx] * np.exp(self.cfg.activity_intent * it)), 30)
        counts = 1 + extra
        lead = np.repeat(idx, counts)
        first = np.zeros(lead.shape[0], dtype=bool)
        first[np.cumsum(counts) - counts] = True
        gaps = rng.exponential(45 * SECOND_US, lead.shape[0]).astype(np.int64)
        gaps[first] = 0
        group_start = np.repeat(np.cumsum(counts) - counts, counts)
        csum = np.cumsum(gaps)
        ts = np.repeat(L.created_us[idx], counts) + csum - csum[group_start]
        batch = self._sample(lead, ts)
        batch.etype[first] = self.emitter.view_type
        batch.dwell[first] = np.round(
            np.exp(rng.normal(self.cfg.dwell_log_mean, self.cfg.dwell_log_sd, first.sum())), 1
        )
        batch.item[first] = -1
        batch.referrer[first] = L.referrer[idx]
        keep = ts < self.end_us
        self._record(batch, keep)

    def _sample(self, lead: np.ndarray, ts: np.ndarray) -> EventBatch:
        L = self.leads
        return self.emitter.sample(
            lead,
            ts,
            intent(L.z[lead], L.mode[lead], self.cfg),
            L.stage[lead].astype(np.float64),
            L.tenant[lead],
            L.line[lead],
            L.channel[lead],
        )

    def _record(self, batch: EventBatch, keep: np.ndarray | None = None) -> None:
        if keep is not None and not keep.all():
            batch = EventBatch(**{k: v[keep] for k, v in batch.__dict__.items()})
        if len(batch):
            self.events.append(batch)
            self._spawn_from_shares(batch)

    def _spawn_from_shares(self, batch: EventBatch) -> None:
        """Each share may bring a colleague or friend to the card: a new lead with a referrer."""
        cfg, rng, L = self.cfg, self.rng, self.leads
        shares = np.flatnonzero(batch.etype == self.emitter.share_type)
        shares = shares[rng.random(shares.shape[0]) < cfg.share_spawn]
        if shares.shape[0] == 0:
            return
        ref = batch.lead[shares]
        arrival = batch.ts[shares] + 60 * SECOND_US + rng.exponential(8 * HOUR_US, shares.shape[0]).astype(np.int64)
        ok = arrival < self.end_us
        ref, arrival = ref[ok], arrival[ok]
        if ref.shape[0] == 0:
            return
        rho = cfg.referral_intent_corr
        z = rho * L.z[ref] + np.sqrt(1 - rho**2) * rng.normal(size=ref.shape[0])
        n_lines = self.world.tenant_lines[L.tenant[ref]]
        line = np.where(rng.random(ref.shape[0]) < 0.7, L.line[ref], (rng.random(ref.shape[0]) * n_lines).astype(int))
        self._new_leads(L.tenant[ref], L.sales[ref], line, z, arrival, ref)

    def _organic_arrivals(self) -> None:
        cfg, rng, w = self.cfg, self.rng, self.world
        n = cfg.leads
        day_w = np.array(
            [
                cfg.weekend_factor
                if (np.datetime64(cfg.start) + d).astype("datetime64[D]").item().weekday() >= 5
                else 1.0
                for d in range(cfg.days)
            ]
        ) * np.linspace(0.85, 1.15, cfg.days)
        day = rng.choice(cfg.days, size=n, p=day_w / day_w.sum())
        created = self.emitter.session_starts(0, n) + self.start_us + day * DAY_US
        order = np.argsort(created, kind="stable")
        created = created[order]
        tenant = rng.choice(len(w.tenant_ids), size=n, p=w.tenant_weight)
        sales = np.empty(n, dtype=np.int64)
        for t in range(len(w.tenant_ids)):
            mask = tenant == t
            pool = np.flatnonzero(w.sales_tenant == t)
            sales[mask] = rng.choice(pool, size=mask.sum(), p=w.sales_weight[pool])
        line = (rng.random(n) * w.tenant_lines[tenant]).astype(int)
        z = rng.normal(size=n)
        self._new_leads(tenant, sales, line, z, created, np.full(n, -1))

    def _step_modes(self, idx: np.ndarray) -> None:
        L = self.leads
        mode, u = L.mode[idx], self.rng.random(idx.shape[0])
        to_buy, to_dorm = L.to_buy[idx], L.to_dormant[idx]
        new = mode.copy()
        b = mode == BROWSING
        new[b & (u < to_buy)] = BUYING
        new[b & (u >= to_buy) & (u < to_buy + to_dorm * (1 - to_buy))] = DORMANT
        new[(mode == BUYING) & (u < self.cfg.buying_ends)] = BROWSING
        new[(mode == DORMANT) & (u < self.cfg.dormant_wakes)] = BROWSING
        self.leads.cols["mode"][idx] = new

    def _step_stages(self, idx: np.ndarray, day_start_us: int) -> None:
        L, cfg = self.leads, self.cfg
        mode = L.mode[idx]
        step = stage_step(intent(L.z[idx], mode, cfg), mode, L.offset[idx], cfg)
        rows = np.arange(idx.shape[0])
        s = L.stage[idx].astype(np.int64)
        lost, one, two = step.lost[rows, s], step.advance_one[rows, s], step.advance_two[rows, s]
        u = self.rng.random(idx.shape[0])
        new = s.copy()
        new[u < lost] = self.lost
        new[(u >= lost) & (u < lost + one)] += 1
        new[(u >= lost + one) & (u < lost + one + two)] += 2
        moved = new != s
        if moved.any():
            self.leads.cols["stage"][idx[moved]] = new[moved]
            local_work = (self.rng.integers(9, 19, moved.sum()) - cfg.timezone_offset_hours) % 24
            ts = day_start_us + local_work * HOUR_US + self.rng.integers(SECOND_US, HOUR_US, moved.sum())
            self.stage_rows.lead.append(idx[moved])
            self.stage_rows.stage.append(new[moved].astype(np.int8))
            self.stage_rows.ts.append(ts)

    def _emit_day(self, idx: np.ndarray, d: int, day_start_us: int) -> None:
        L, cfg, rng = self.leads, self.cfg, self.rng
        weekday = (np.datetime64(cfg.start) + d).astype("datetime64[D]").item().weekday()
        it = intent(L.z[idx], L.mode[idx], cfg)
        lam = L.activity[idx] * np.exp(cfg.activity_intent * it + cfg.activity_stage * L.stage[idx])
        lam *= cfg.weekend_factor if weekday >= 5 else 1.0
        counts = rng.poisson(lam)
        active = counts > 0
        if active.any():
            starts = self.emitter.session_starts(day_start_us, int(active.sum()))
            ts = self.emitter.event_times(starts, counts[active], day_start_us + DAY_US)
            self._record(self._sample(np.repeat(idx[active], counts[active]), ts))
        bursts = rng.poisson(cfg.bot_burst_rate * idx.shape[0])
        if bursts:
            self.events.append(self.emitter.bot_burst(rng.choice(idx, size=bursts), day_start_us))

    def run(self, snapshot_days: set[int]) -> RawSimulation:
        self._organic_arrivals()
        snapshots: list[Snapshot] = []
        for d in range(self.cfg.days + 1):
            day_start_us = self.start_us + d * DAY_US
            L = self.leads
            existing = np.flatnonzero((L.created_day < d) & (L.stage < self.won))
            if d in snapshot_days:
                snapshots.append(Snapshot(d, existing.copy(), L.stage[existing].copy(), L.mode[existing].copy()))
            if d == self.cfg.days:
                break
            self._step_modes(existing)
            self._step_stages(existing, day_start_us)
            still_open = existing[self.leads.stage[existing] < self.won]
            self._emit_day(still_open, d, day_start_us)
        return RawSimulation(
            world=self.world,
            leads=self.leads,
            events=self.events,
            stage_rows=self.stage_rows,
            snapshots=snapshots,
            start_us=self.start_us,
            n_open=self.n_open,
        )
