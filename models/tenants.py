"""Tenant-level calibration on top of one pooled model: each company's own base rate, without a model per company.

A tenant with enough labelled rows gets its own two-parameter sigmoid over the pooled probability's log-odds;
any other tenant (a new one, or one with little history) keeps the pooled probability and is flagged as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leadradar.models.calibration import SigmoidCalibrator


class TenantCalibration:
    """`fit` on pooled calibrated probabilities, outcomes and tenants; `predict` answers (probability, pooled)."""

    def __init__(self, min_rows: int = 2000, min_positives: int = 40):
        self.min_rows = min_rows
        self.min_positives = min_positives

    def fit(self, p: np.ndarray, y: np.ndarray, tenants: np.ndarray) -> TenantCalibration:
        """One sigmoid per tenant whose rows hold both outcomes, at least `min_rows` rows and `min_positives` wins."""
        p, y, tenants = np.asarray(p, dtype=float), np.asarray(y, dtype=int), np.asarray(tenants).astype(str)
        self.calibrators_: dict[str, SigmoidCalibrator] = {}
        self.support_: dict[str, tuple[int, int]] = {}
        for tenant in np.unique(tenants):
            mine = tenants == tenant
            rows, wins = int(mine.sum()), int(y[mine].sum())
            self.support_[str(tenant)] = (rows, wins)
            if rows >= self.min_rows and self.min_positives <= wins < rows:
                self.calibrators_[str(tenant)] = SigmoidCalibrator().fit(p[mine], y[mine])
        return self

    def predict(self, p: np.ndarray, tenants: np.ndarray | str) -> tuple[np.ndarray, np.ndarray]:
        """The tenant's own probability where it has a calibrator, else the pooled one; and where it was pooled."""
        p = np.asarray(p, dtype=float)
        if isinstance(tenants, str):  # one tenant's rows (every request): no per-row comparison
            own = self.calibrators_.get(tenants)
            return (p.copy(), np.ones(len(p), dtype=bool)) if own is None else (own.predict(p), np.zeros(len(p), bool))
        tenants = np.asarray(tenants)
        out, pooled = p.copy(), np.ones(len(p), dtype=bool)
        for tenant, calibrator in self.calibrators_.items():
            mine = tenants == tenant
            if mine.any():
                out[mine] = calibrator.predict(p[mine])
                pooled[mine] = False
        return out, pooled

    def pooled(self, tenant: str) -> bool:
        return tenant not in self.calibrators_

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_rows": self.min_rows,
            "min_positives": self.min_positives,
            "tenants": {t: c.to_dict() for t, c in self.calibrators_.items()},
            "support": {t: list(s) for t, s in self.support_.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TenantCalibration:
        out = cls(d["min_rows"], d["min_positives"])
        out.calibrators_ = {}
        for tenant, c in d["tenants"].items():
            sig = SigmoidCalibrator()
            sig.a_, sig.b_ = float(c["a"]), float(c["b"])
            out.calibrators_[tenant] = sig
        out.support_ = {t: (int(s[0]), int(s[1])) for t, s in d.get("support", {}).items()}
        return out
