"""Display names for ids: leads, salespeople and catalogue items, from the event store's catalogues.

A CRM's leads table may carry a `name`, a salespeople table (`sales.parquet`: sales_id, name) names the
card owners, and the item catalogue may carry `name` (and `name_zh` for Chinese readers). Pages, lists and
files show those names; an id without one shows as the id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from leadradar.config import Settings
from leadradar.features.store import EventStore


@dataclass(frozen=True)
class Names:
    """One tenant's id → name maps; `name_zh` of an item is read in Chinese when it has one."""

    leads: dict[str, str] = field(default_factory=dict)
    sales: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    items_zh: dict[str, str] = field(default_factory=dict)

    def lead(self, lead_id: Any) -> str:
        """The lead's name, '' when the data carries none."""
        return self.leads.get(str(lead_id), "") if isinstance(lead_id, str) else ""

    def salesperson(self, sales_id: Any) -> str:
        """The salesperson's name, '' when the data carries none."""
        return self.sales.get(sales_id, "") if isinstance(sales_id, str) else ""

    def item(self, item_id: Any, lang: str) -> str:
        """The item's name in `lang`, else its name, else its id; '' for no item."""
        if not isinstance(item_id, str) or not item_id:
            return ""
        zh = self.items_zh.get(item_id) if lang == "zh-CN" else None
        return zh or self.items.get(item_id) or item_id

    @classmethod
    def from_catalogues(
        cls, leads: pd.DataFrame | None, sales: pd.DataFrame | None, items: pd.DataFrame | None
    ) -> Names:
        """Names from the catalogue tables as stored (any may be None or lack a name column)."""
        return cls(
            _named(leads, "lead_id", "name"),
            _named(sales, "sales_id", "name"),
            _named(items, "item_id", "name"),
            _named(items, "item_id", "name_zh"),
        )


NO_NAMES = Names()


def _named(frame: pd.DataFrame | None, key: str, column: str) -> dict[str, str]:
    if frame is None or key not in frame or column not in frame:
        return {}
    keep = frame[frame[column].map(lambda v: isinstance(v, str) and v.strip() != "")]
    return dict(zip(keep[key].astype(str), keep[column].str.strip()))


class NameBook:
    """Each tenant's names, read from the event store on first use and again after `context_cache_seconds`.

    The store is opened lazily, so a page that needs no names (or a process without a store) opens nothing.
    """

    def __init__(self, settings: Settings, store: EventStore | None = None):
        self.settings = settings
        self._store = store
        self._cache: dict[str, tuple[float, Names]] = {}

    def __call__(self, tenant: str) -> Names:
        hit = self._cache.get(tenant)
        if hit is not None and time.monotonic() - hit[0] < self.settings.serving.context_cache_seconds:
            return hit[1]
        if self._store is None:
            self._store = EventStore.open(self.settings)
        store = self._store
        names = Names.from_catalogues(
            store.catalog("leads", tenant), store.catalog("sales", tenant), store.catalog("items", tenant)
        )
        self._cache[tenant] = (time.monotonic(), names)
        return names
