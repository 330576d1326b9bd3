"""The test-period evaluation: the model, the baselines on the same rows, per tenant and stage, and the truth.

Pure functions from arrays to a report; logging the report to MLflow (`flat_metrics`, `to_dict`)
happens in the pipeline.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from leadradar.models.calibration import clipped, log_loss
from leadradar.training.metrics import (
    brier,
    classification_metrics,
    metrics_by,
    precision_recall_at_k,
    roc_auc,
    truth_metrics,
)

MODEL = "model"
# The baselines' distance to the truth is theirs; the oracle's own AUC and log loss are the same
# for every scorer of these rows and are reported once, with the model.
BASELINE_TRUTH_KEYS = ("mean_abs_err_vs_truth",)
# Properties of the rows, not of the scorer: logged once, with the model.
SAME_FOR_EVERY_SCORER = ("rows", "base_rate", "truth_coverage")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]")


def key_part(name: str) -> str:
    """A tenant, stage or baseline name made safe inside an MLflow metric key.

    Characters outside [A-Za-z0-9_-.] become "_" and, when any had to change, a short hash of the
    original is appended so two names never collapse into one key ("华东" and "华南" stay apart).
    """
    safe = _UNSAFE.sub("_", str(name))
    if safe == str(name):
        return safe
    return f"{safe}-{hashlib.sha1(str(name).encode(), usedforsecurity=False).hexdigest()[:6]}"


def _probabilities(p: np.ndarray | pd.Series, n: int, what: str, allow_missing: bool = False) -> np.ndarray:
    """`p` as a float vector of length n in [0, 1]; an error names the scorer otherwise."""
    arr = np.asarray(p, dtype=np.float64).reshape(-1)
    if len(arr) != n:
        raise ValueError(f"{what}: {len(arr)} probabilities for {n} test rows")
    bad = ~np.isfinite(arr) if not allow_missing else np.isinf(arr)
    bad |= (arr < 0) | (arr > 1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: {int(bad.sum())} values are not probabilities in [0, 1] (row {first}: {arr[first]})")
    return arr


def _labels(y: np.ndarray | pd.Series) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any() or not np.isin(arr, (0.0, 1.0)).all():
        raise ValueError("y: labels must be 0 or 1 with none missing (drop rows whose label window is open)")
    return arr.astype(int)


@dataclass
class EvaluationReport:
    """Everything measured on the test period, for one MLflow run and one JSON artifact."""

    rows: int
    model: dict[str, float]
    baselines: dict[str, dict[str, float]]
    by_tenant: dict[str, dict[str, float]] = field(default_factory=dict)
    by_stage: dict[str, dict[str, float]] = field(default_factory=dict)
    direct_vs_chained: dict[str, Any] | None = None

    def flat_metrics(self, prefix: str = "test", groups: bool = True) -> dict[str, float]:
        """One flat dict of finite floats for `mlflow.log_metrics`; NaN and inf are left out.

        Keys: `<prefix>_<metric>` for the model, `<prefix>_baseline_<metric>_<name>`,
        `<prefix>_by_tenant_<tenant>_<metric>`, `<prefix>_by_stage_<stage>_<metric>`, and
        `<prefix>_direct_<metric>` / `<prefix>_chained_<metric>` / `<prefix>_chained_better` (1 or 0) /
        `<prefix>_chained_coverage`.
        """
        p = key_part(prefix)
        out: dict[str, float] = {f"{p}_{k}": v for k, v in self.model.items()}
        for name, metrics in self.baselines.items():
            out |= {
                f"{p}_baseline_{k}_{key_part(name)}": v for k, v in metrics.items() if k not in SAME_FOR_EVERY_SCORER
            }
        if groups:
            for kind, table in (("tenant", self.by_tenant), ("stage", self.by_stage)):
                for g, metrics in table.items():
                    out |= {f"{p}_by_{kind}_{key_part(g)}_{k}": v for k, v in metrics.items()}
        if self.direct_vs_chained is not None:
            for which in ("direct", "chained"):
                out |= {f"{p}_{which}_{k}": v for k, v in self.direct_vs_chained[which].items()}
            out[f"{p}_chained_better"] = float(self.direct_vs_chained["better"] == "chained")
            out[f"{p}_chained_coverage"] = self.direct_vs_chained["coverage"]
        return {k: float(v) for k, v in out.items() if isinstance(v, (int, float, np.number)) and math.isfinite(v)}

    def comparison(self) -> pd.DataFrame:
        """The model and every baseline side by side, one row each (a notebook table, a CSV artifact)."""
        rows = {MODEL: self.model, **self.baselines}
        return pd.DataFrame.from_dict(rows, orient="index").rename_axis("scorer")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; NaN becomes None so strict JSON readers accept it."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def scorer_metrics(
    y: np.ndarray,
    p: np.ndarray,
    bins: int,
    ks: tuple[int, ...],
    p_true: np.ndarray | None,
    truth_keys: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Classification metrics, precision and recall at k, and (where the truth is known) distance from it."""
    out = classification_metrics(y, p, bins) | precision_recall_at_k(y, p, ks)
    if p_true is None:
        return out
    has = ~np.isnan(p_true)
    if truth_keys is None:
        out["truth_coverage"] = float(has.mean()) if len(has) else float("nan")
    if has.any():
        truth = truth_metrics(y[has], p[has], p_true[has])
        out |= {k: v for k, v in truth.items() if truth_keys is None or k in truth_keys}
    return out


def evaluate_test_period(
    test: pd.DataFrame,
    y: np.ndarray | pd.Series,
    p_model: np.ndarray | pd.Series,
    baselines: dict[str, np.ndarray],
    p_true: np.ndarray | pd.Series | None = None,
    bins: int = 15,
    ks: tuple[int, ...] = (50, 100, 500),
    p_chained: np.ndarray | pd.Series | None = None,
) -> EvaluationReport:
    """The model and the baselines on the same test rows, split by tenant and stage, against the oracle.

    `test` supplies the grouping columns (`tenant_id`, `stage`; a grouping whose column is absent is
    skipped). `p_true` may have NaN where the simulator wrote no truth; truth metrics use the rows
    that have it and report `truth_coverage`. `p_chained`, when given, is compared with `p_model`
    as the direct close probability.
    """
    y = _labels(y)
    n = len(y)
    if len(test) != n:
        raise ValueError(f"test has {len(test)} rows but y has {n}")
    p = _probabilities(p_model, n, "model")
    truth = None if p_true is None else _probabilities(p_true, n, "p_true", allow_missing=True)
    scored = {name: _probabilities(pb, n, f"baseline {name!r}") for name, pb in baselines.items()}
    return EvaluationReport(
        rows=n,
        model=scorer_metrics(y, p, bins, ks, truth),
        baselines={name: scorer_metrics(y, pb, bins, ks, truth, BASELINE_TRUTH_KEYS) for name, pb in scored.items()},
        by_tenant=metrics_by(test, y, p, "tenant_id", bins) if "tenant_id" in test.columns else {},
        by_stage=metrics_by(test, y, p, "stage", bins) if "stage" in test.columns else {},
        direct_vs_chained=None if p_chained is None else compare_direct_and_chained(y, p, p_chained),
    )


def _summary(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    q = clipped(p, "compare_direct_and_chained")
    return {"logloss": log_loss(y, q), "auc": roc_auc(y, q), "brier": brier(y, q)}


def compare_direct_and_chained(
    y: np.ndarray | pd.Series, p_direct: np.ndarray | pd.Series, p_chained: np.ndarray | pd.Series
) -> dict[str, Any]:
    """Which close probability to trust on the test period: the direct model or the product of transitions.

    Both are judged on the rows where the chained probability exists (it is NaN for a stage outside
    the funnel); `coverage` says what share that is. Decided by log loss (it judges ranking and
    calibration at once); a tie goes to the direct model, the simpler of the two.
    """
    y = _labels(y)
    direct = _probabilities(p_direct, len(y), "p_direct")
    chained = _probabilities(p_chained, len(y), "p_chained", allow_missing=True)
    has = ~np.isnan(chained)
    if not has.any():
        raise ValueError("p_chained: missing on every row, nothing to compare")
    scores = {"direct": _summary(y[has], direct[has]), "chained": _summary(y[has], chained[has])}
    better: Literal["direct", "chained"] = (
        "chained" if scores["chained"]["logloss"] < scores["direct"]["logloss"] else "direct"
    )
    return {
        "rows": int(has.sum()),
        "coverage": float(has.mean()),
        **scores,
        "better": better,
        "logloss_gain": scores["direct"]["logloss"] - scores["chained"]["logloss"],
    }
