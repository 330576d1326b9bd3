"""The static world of a simulation: tenants, their salespeople, product lines and items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadradar.features.simulator.config import SimulationConfig

ITEM_KINDS = ("product", "article", "video", "pricing")


@dataclass(frozen=True)
class World:
    tenant_ids: list[str]
    tenant_offset: np.ndarray  # per tenant, added to the funnel log-odds
    tenant_weight: np.ndarray  # share of all organic leads
    tenant_lines: np.ndarray  # product lines per tenant
    sales_ids: list[str]
    sales_tenant: np.ndarray
    sales_skill: np.ndarray
    sales_weight: np.ndarray  # share of the tenant's leads, within the tenant
    item_ids: list[str]
    item_tenant: np.ndarray
    item_line: np.ndarray  # -1 for the pricing page
    item_kind: np.ndarray  # index into ITEM_KINDS
    item_category: list[str]

    def items_of(self, tenant: int, kind: str) -> np.ndarray:
        return np.flatnonzero((self.item_tenant == tenant) & (self.item_kind == ITEM_KINDS.index(kind)))


def build_world(cfg: SimulationConfig, rng: np.random.Generator) -> World:
    """Draw tenants of different sizes, salespeople of different skill, and their catalogues."""
    n_t = cfg.tenants
    tenant_ids = [f"t{t + 1:02d}" for t in range(n_t)]
    tenant_offset = rng.normal(0.0, cfg.tenant_offset_sd, n_t)
    tenant_weight = rng.dirichlet(np.full(n_t, 4.0))
    tenant_lines = rng.integers(cfg.product_lines[0], cfg.product_lines[1] + 1, n_t)

    sales_ids: list[str] = []
    sales_tenant, sales_skill, sales_weight = [], [], []
    item_ids: list[str] = []
    item_tenant, item_line, item_kind, item_category = [], [], [], []
    for t in range(n_t):
        n_s = int(rng.integers(cfg.sales_per_tenant[0], cfg.sales_per_tenant[1] + 1))
        sales_ids += [f"{tenant_ids[t]}-s{s + 1:03d}" for s in range(n_s)]
        sales_tenant.append(np.full(n_s, t))
        sales_skill.append(rng.normal(0.0, cfg.sales_skill_sd, n_s))
        w = rng.pareto(2.0, n_s) + 0.3  # a few salespeople own most of the cards' traffic
        sales_weight.append(w / w.sum())
        for line in range(int(tenant_lines[t])):
            for kind, share in (("product", 0.5), ("article", 0.3), ("video", 0.2)):
                k = max(1, int(round(cfg.items_per_line * share)))
                item_ids += [f"{tenant_ids[t]}-{kind[0]}{line + 1}-{i + 1:02d}" for i in range(k)]
                item_tenant += [t] * k
                item_line += [line] * k
                item_kind += [ITEM_KINDS.index(kind)] * k
                item_category += [f"line_{line + 1}"] * k
        item_ids.append(f"{tenant_ids[t]}-pricing")
        item_tenant.append(t)
        item_line.append(-1)
        item_kind.append(ITEM_KINDS.index("pricing"))
        item_category.append("pricing")

    return World(
        tenant_ids=tenant_ids,
        tenant_offset=tenant_offset,
        tenant_weight=tenant_weight,
        tenant_lines=tenant_lines,
        sales_ids=sales_ids,
        sales_tenant=np.concatenate(sales_tenant),
        sales_skill=np.concatenate(sales_skill),
        sales_weight=np.concatenate(sales_weight),
        item_ids=item_ids,
        item_tenant=np.asarray(item_tenant),
        item_line=np.asarray(item_line),
        item_kind=np.asarray(item_kind),
        item_category=item_category,
    )
