"""What a lead does on the card, given its hidden state: event types, times, dwell and items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadradar.features.grid import DAY_US, HOUR_US
from leadradar.features.simulator.config import SimulationConfig
from leadradar.features.simulator.dynamics import sigmoid
from leadradar.features.simulator.world import ITEM_KINDS, World

SECOND_US = 1_000_000


@dataclass
class EventBatch:
    lead: np.ndarray
    ts: np.ndarray
    etype: np.ndarray
    dwell: np.ndarray
    item: np.ndarray
    referrer: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return int(self.lead.shape[0])


class Emitter:
    """Samples event attributes; one instance per simulation, holding the lookup tables."""

    def __init__(self, cfg: SimulationConfig, world: World, rng: np.random.Generator):
        self.cfg = cfg
        self.world = world
        self.rng = rng
        self.type_names = list(cfg.event_type_logits)
        coef = np.array([cfg.event_type_logits[t] for t in self.type_names])
        self.type_base, self.type_intent, self.type_stage = coef[:, 0], coef[:, 1], coef[:, 2]
        start_us = int(np.datetime64(cfg.start, "us").astype(np.int64))
        self.shift_us = start_us + (cfg.shift_day or 0) * DAY_US
        self.dwell_offset = np.array([cfg.dwell_type_offset.get(t, np.nan) for t in self.type_names])
        self.view_type = self.type_names.index("card_view")
        self.share_type = self.type_names.index("card_share")
        hours = np.asarray(cfg.hour_profile)
        self.hour_p = hours / hours.sum()
        self.channels = list(cfg.channel_mix)
        mix = np.asarray(list(cfg.channel_mix.values()))
        self.channel_p = mix / mix.sum()
        self._build_item_index()

    def _build_item_index(self) -> None:
        w = self.world
        n_t, max_lines = len(w.tenant_ids), int(w.tenant_lines.max())
        kinds = ("product", "article", "video")
        self.item_start = np.zeros((n_t, max_lines, len(kinds)), dtype=np.int64)
        self.item_count = np.zeros(len(kinds), dtype=np.int64)
        self.pricing_item = np.zeros(n_t, dtype=np.int64)
        for t in range(n_t):
            for k, kind in enumerate(kinds):
                for line in range(int(w.tenant_lines[t])):
                    idx = np.flatnonzero(
                        (w.item_tenant == t) & (w.item_line == line) & (w.item_kind == ITEM_KINDS.index(kind))
                    )
                    self.item_start[t, line, k] = idx[0]
                    self.item_count[k] = idx.shape[0]
            self.pricing_item[t] = np.flatnonzero((w.item_tenant == t) & (w.item_kind == ITEM_KINDS.index("pricing")))[
                0
            ]

    def session_starts(self, day_start_us: int, n: int) -> np.ndarray:
        """Start times of n sessions on one UTC day, following the local hour profile."""
        local_hour = self.rng.choice(24, size=n, p=self.hour_p)
        utc_hour = (local_hour - self.cfg.timezone_offset_hours) % 24
        within = self.rng.integers(SECOND_US, HOUR_US, size=n)
        return day_start_us + utc_hour * HOUR_US + within

    def event_times(self, session_start: np.ndarray, counts: np.ndarray, day_end_us: int) -> np.ndarray:
        """Times of each lead-day's events: a session, sometimes a second one hours later."""
        start = np.repeat(session_start, counts)
        n = start.shape[0]
        spread = np.repeat(np.sqrt(counts) * 4 * 60 * SECOND_US, counts)
        ts = start + (self.rng.random(n) * spread).astype(np.int64)
        later = self.rng.random(n) < 0.2
        ts[later] += (self.rng.exponential(3 * HOUR_US, later.sum())).astype(np.int64)
        return np.minimum(ts, day_end_us - SECOND_US)

    def sample(
        self,
        lead: np.ndarray,
        ts: np.ndarray,
        intent: np.ndarray,
        stage: np.ndarray,
        tenant: np.ndarray,
        line: np.ndarray,
        lead_channel: np.ndarray,
    ) -> EventBatch:
        """Draw type, dwell, item and channel for events whose lead, time and state are given."""
        rng = self.rng
        n = lead.shape[0]
        logits = (
            self.type_base[None, :]
            + self.type_intent[None, :] * intent[:, None]
            + self.type_stage[None, :] * stage[:, None]
        )
        etype = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int8)

        offset = self.dwell_offset[etype]
        dwell = np.exp(
            rng.normal(self.cfg.dwell_log_mean + self.cfg.dwell_intent * intent + offset, self.cfg.dwell_log_sd)
        )
        dwell[np.isnan(offset) | (rng.random(n) < self.cfg.dwell_missing)] = np.nan
        dwell = np.round(dwell, 1)

        item = np.full(n, -1, dtype=np.int64)
        n_lines = self.world.tenant_lines[tenant]
        other_line = (rng.random(n) * n_lines).astype(np.int64)
        own = rng.random(n) < 0.7
        chosen_line = np.where(own, line, other_line)
        for k, kind in enumerate(("product", "article", "video")):
            mask = etype == self.type_names.index(f"{kind}_view")
            if not mask.any():
                continue
            pick = (rng.random(mask.sum()) * self.item_count[k]).astype(np.int64)
            item[mask] = self.item_start[tenant[mask], chosen_line[mask], k] + pick
        product = etype == self.type_names.index("product_view")
        p_pricing = sigmoid(-2.2 + self.cfg.pricing_view_intent * intent)
        if self.cfg.shift_day is not None:
            base, per_intent = self.cfg.shifted_pricing_view
            shifted = ts >= self.shift_us
            p_pricing = np.where(shifted, sigmoid(base + per_intent * intent), p_pricing)
        pricing = product & (rng.random(n) < p_pricing)
        item[pricing] = self.pricing_item[tenant[pricing]]

        channel = np.where(rng.random(n) < 0.9, lead_channel, rng.choice(len(self.channels), size=n, p=self.channel_p))
        return EventBatch(
            lead=lead,
            ts=ts,
            etype=etype,
            dwell=dwell,
            item=item,
            referrer=np.full(n, -1, dtype=np.int64),
            channel=channel.astype(np.int8),
        )

    def bot_burst(self, lead: np.ndarray, day_start_us: int) -> EventBatch:
        """Zero-dwell card views fired within a minute: link previews and crawlers, not people."""
        rng = self.rng
        sizes = rng.integers(self.cfg.bot_burst_size[0], self.cfg.bot_burst_size[1] + 1, lead.shape[0])
        start = np.repeat(day_start_us + rng.integers(SECOND_US, DAY_US - 2 * 60 * SECOND_US, lead.shape[0]), sizes)
        ts = start + rng.integers(0, 60 * SECOND_US, start.shape[0])
        n = ts.shape[0]
        return EventBatch(
            lead=np.repeat(lead, sizes),
            ts=ts,
            etype=np.full(n, self.view_type, dtype=np.int8),
            dwell=np.zeros(n),
            item=np.full(n, -1, dtype=np.int64),
            referrer=np.full(n, -1, dtype=np.int64),
            channel=np.full(n, self.channels.index("h5"), dtype=np.int8),
        )
