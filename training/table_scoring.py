"""`leadradar score --table`: a new table (a prospect list, no label needed) scored by a registered table model.

Each row gets the champion's calibrated probability, its rank, and reasons: the columns whose exact
TreeSHAP contribution moved the row's log-odds most, with the row's value and the direction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import NotFoundError
from leadradar.features.atomic import atomic_write
from leadradar.models.explain import MIN_CONTRIBUTION, contributions
from leadradar.models.funnel import FunnelModel
from leadradar.registry import CHAMPION, LoadedModel, configure_mlflow, load_version, resolve
from leadradar.training.table import TableError, read_table, table_settings

PROBABILITY, RANK, REASONS = "probability", "rank", "reasons"


def table_models(settings: Settings) -> list[str]:
    """The registered models `train --table` made (their names start with `table-`)."""
    from mlflow import MlflowClient

    configure_mlflow(settings)
    return sorted(m.name for m in MlflowClient().search_registered_models() if m.name.startswith("table-"))


def other_models_hint(settings: Settings) -> str:
    """For a message about a model with no version: the table models there are, which `--model-name` names."""
    others = [n for n in table_models(settings) if n != settings.mlflow.model_name]
    return f" (table models registered: {', '.join(others)}; name one with --model-name)" if others else ""


def champion_of(settings: Settings, name: str | None) -> LoadedModel:
    """The champion of the named table model; without a name, the only table model there is."""
    if name is None:
        known = table_models(settings)
        if len(known) != 1:
            listed = ", ".join(known) if known else "none yet; run `leadradar train --table FILE --label COL` first"
            raise NotFoundError(f"give --model NAME, the table model to score with (registered: {listed})")
        name = known[0]
    scoped = table_settings(settings, name)
    ref = resolve(scoped, CHAMPION)  # never a Bento's bundled lead model, as `load_alias` would fall back to
    if ref is None:
        raise NotFoundError(f"table model {name!r} has no champion; `leadradar promote --model-name {name}` makes one")
    return LoadedModel(ref=ref, model=load_version(scoped, ref), source="registry")


def feature_frame(raw: pd.DataFrame, model: FunnelModel, path: Path) -> pd.DataFrame:
    """The model's columns from the table, numbers as floats; a missing or non-numeric column is one line."""
    missing = [c for c in model.features if c not in raw.columns]
    if missing:
        raise TableError(f"{path}: the model needs columns {missing[:10]} that the table lacks")
    frame = raw[model.features].copy()
    for c in model.features:
        if c in model.categorical:
            continue
        values = pd.to_numeric(frame[c], errors="coerce") if not pd.api.types.is_bool_dtype(frame[c]) else frame[c]
        bad = values.isna() & frame[c].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise TableError(f"{path}: row {row + 1}, column {c!r}: {frame[c].iloc[row]!r} is not a number")
        frame[c] = values.astype(float)
    return frame


def reasons(model: FunnelModel, X: np.ndarray, frame: pd.DataFrame, top: int = 3) -> list[str]:
    """Per row, the columns that moved its log-odds most (at least MIN_CONTRIBUTION), with value and direction."""
    phi = contributions(model, model.main_target, X)[:, :-1]
    order = np.argsort(-np.abs(phi), axis=1)[:, :top]
    out = []
    for i, cols in enumerate(order):
        parts = [
            f"{model.features[j]} = {frame.iloc[i, j]} {'↑' if phi[i, j] > 0 else '↓'}"
            for j in cols
            if abs(phi[i, j]) >= MIN_CONTRIBUTION
        ]
        out.append("; ".join(parts))
    return out


def score_table(path: Path, settings: Settings, model_name: str | None = None) -> tuple[pd.DataFrame, LoadedModel]:
    """The table's rows with probability, rank (1 = most likely) and reasons, most likely first."""
    loaded = champion_of(settings, model_name)
    raw = read_table(path)
    model = loaded.model
    frame = feature_frame(raw, model, path)
    X = model.matrix(frame)
    scored = raw.copy()
    scored[PROBABILITY] = model.targets_[model.main_target].predict(X)
    scored[REASONS] = reasons(model, X, frame)
    scored[RANK] = scored[PROBABILITY].rank(ascending=False, method="first").astype(int)
    return scored.sort_values(RANK, kind="stable").reset_index(drop=True), loaded


def write_scores(scored: pd.DataFrame, out: Path) -> None:
    """CSV or Parquet by the file's suffix."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise TableError(f"--out {out}: write .csv or .parquet, not {suffix or '(no suffix)'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        atomic_write(out, lambda fh: scored.to_csv(fh, index=False))
    else:
        atomic_write(out, lambda fh: scored.to_parquet(fh, index=False))
