"""The funnel model: calibrated LightGBM models, one per target, behind one fit/predict_proba contract."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from leadradar.config import LEAF_AUTO, TrainingConfig
from leadradar.models.calibration import IsotonicCalibrator, SigmoidCalibrator, calibrator_from_dict, choose_calibrator
from leadradar.models.encoding import FeatureEncoder
from leadradar.models.profile import closed_profile
from leadradar.models.single_row import SingleRow
from leadradar.models.tenants import TenantCalibration
from leadradar.models.uncertainty import BaggedInterval, Interval, interval_from_dict
from leadradar.targets import TargetSpec, advance_target, close_curve, close_output

# From this many rows LightGBM predicts on every core; below it one thread is faster (8 boosters on 2 cores:
# 1 row 0.21 ms on one thread vs 0.55 ms on two with passive OpenMP waiting, 1,000 rows 40 vs 22 ms).
PARALLEL_FROM_ROWS = 64


def predict_threads(rows: int) -> int:
    """LightGBM's `num_threads` for `rows` rows: 1, or 0 (every core) for batches."""
    return 1 if rows < PARALLEL_FROM_ROWS else 0


@dataclass(frozen=True)
class LeafRule:
    """LightGBM's `min_data_in_leaf` when the parameters say `auto`: the rows of `leads` leads, at most `most` rows.

    A lead's rows at successive cutoffs are one lead's evidence, not that many: the simulator's worlds hold about
    five a lead, and 100 rows a leaf (20 leads) is what they were tuned with. A table's rows are its own units, and
    there 100 rows left a public table of 333 rows with no split worth making (settings.training)."""

    leads: int
    most: int

    @classmethod
    def from_settings(cls, tc: TrainingConfig) -> LeafRule:
        return cls(tc.min_data_in_leaf_leads, tc.min_data_in_leaf_most)

    def rows_per_leaf(self, rows: int, leads: int) -> int:
        per_lead = rows / max(leads, 1)
        return int(min(self.most, max(self.leads, round(self.leads * per_lead))))


def resolved_params(params: dict[str, Any], rows: int, leads: int, rule: LeafRule | None) -> dict[str, Any]:
    """`params` as LightGBM reads them for a booster of `rows` rows of `leads` leads: an `auto` leaf minimum made a
    number."""
    if params.get("min_data_in_leaf") != LEAF_AUTO:
        return params
    if rule is None:
        raise ValueError("min_data_in_leaf is 'auto' but no rule scales it (training.min_data_in_leaf_leads)")
    return {**params, "min_data_in_leaf": rule.rows_per_leaf(rows, leads)}


def lead_count(rows: pd.DataFrame, group: str) -> int:
    """How many leads (`group`'s values) the rows hold; a frame without the column counts each row as one."""
    return int(rows[group].nunique()) if group in rows.columns else len(rows)


@dataclass
class FittedTarget:
    spec: TargetSpec
    booster: lgb.Booster
    calibrator: IsotonicCalibrator | SigmoidCalibrator
    best_iteration: int
    calibration_scores: dict[str, float] = field(default_factory=dict)
    train_rows: int = 0
    train_positives: int = 0
    tenants: TenantCalibration | None = None
    interval: Interval | None = None
    min_data_in_leaf: int | None = None  # LightGBM's, as the booster was fitted (for the run's record)
    single_row: SingleRow | None = field(default=None, init=False, repr=False, compare=False)

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """The booster's probabilities; one row (a scoring request's lead) by the single-row API, 4x as fast."""
        if isinstance(X, np.ndarray) and X.ndim == 2 and len(X) == 1:
            if self.single_row is None or self.single_row.booster is not self.booster:
                self.single_row = SingleRow(self.booster)
            return np.array([self.single_row.predict(X[0])])
        return np.asarray(self.booster.predict(X, num_threads=predict_threads(len(X))))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The pooled probability: one calibration for every tenant."""
        return self.calibrator.predict(self.predict_raw(X))

    def calibrate_for(self, raw: np.ndarray, tenants: np.ndarray | str | None) -> tuple[np.ndarray, np.ndarray]:
        """Raw scores calibrated for their tenants: (probability, whether it is the pooled one)."""
        p = self.calibrator.predict(raw)
        if self.tenants is None or tenants is None:
            return p, np.ones(len(p), dtype=bool)
        return self.tenants.predict(p, tenants)

    def predict_for(self, X: np.ndarray, tenants: np.ndarray | str | None) -> tuple[np.ndarray, np.ndarray]:
        """The probability a tenant reads (its own calibration where it has one) and where it is pooled."""
        return self.calibrate_for(self.predict_raw(X), tenants)

    def interval_for(
        self, X: np.ndarray, p: np.ndarray, tenants: np.ndarray | str | None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The interval around `p` (the tenant's probability), or None for a target without one."""
        if self.interval is None:
            return None
        return self.interval.predict(X, p, lambda raw: self.calibrate_for(raw, tenants)[0])

    def support_for(self, X: np.ndarray, p: np.ndarray, tenants: np.ndarray | str | None) -> np.ndarray | None:
        """The part of the interval's width the data left open (what flags a score low-confidence), or None."""
        if self.interval is None:
            return None
        return self.interval.support_width(X, p, lambda raw: self.calibrate_for(raw, tenants)[0])


class FunnelModel:
    """Calibrated LightGBM per target; `predict_proba` answers for the main target like a classifier."""

    encoder_: FeatureEncoder
    targets_: dict[str, FittedTarget]
    skipped_: dict[str, str]
    # Set by `load`: the bundle folder it was read from and its model.json, for what travels with the model.
    path_: Path | None = None
    meta_: dict[str, Any] | None = None
    # Quartiles of behaviour features over the training rows that closed (models/profile.py), set by `begin`.
    closed_profile_: dict[str, Any] | None = None

    def __init__(
        self,
        targets: list[TargetSpec],
        features: list[str],
        categorical: list[str] | None = None,
        params: dict[str, Any] | None = None,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 100,
        main_target: str | None = None,
        seed: int = 7,
        single_thread_below_rows: int = 20_000,
        leaf_rule: LeafRule | None = None,
        isotonic_min_rarer: int = 0,
    ):
        self.targets = targets
        self.features = features
        self.categorical = categorical or []
        self.params = dict(params or {"objective": "binary", "verbosity": -1})
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.main_target = main_target or targets[0].name
        self.seed = seed
        self.single_thread_below_rows = single_thread_below_rows
        self.leaf_rule = leaf_rule
        self.isotonic_min_rarer = isotonic_min_rarer

    @classmethod
    def from_settings(
        cls,
        targets: list[TargetSpec],
        features: list[str],
        categorical: list[str],
        params: dict[str, Any],
        tc: TrainingConfig,
        main_target: str | None = None,
    ) -> FunnelModel:
        """An unfitted model with the training settings' rounds, stopping, seed, threads, leaf rule and calibration
        rule: the one way training, the table path and its evaluation build one."""
        return cls(
            targets,
            features,
            categorical,
            params,
            tc.num_boost_round,
            tc.early_stopping_rounds,
            main_target=main_target,
            seed=tc.seed,
            single_thread_below_rows=tc.single_thread_below_rows,
            leaf_rule=LeafRule.from_settings(tc),
            isotonic_min_rarer=tc.isotonic_min_rarer,
        )

    def leaf_minimum(self, rows: int, leads: int) -> int | None:
        """LightGBM's `min_data_in_leaf` for a booster of `rows` rows of `leads` leads; None when LightGBM's default."""
        value = resolved_params(self.params, rows, leads, self.leaf_rule).get("min_data_in_leaf")
        return None if value is None else int(value)

    def _rows(self, frame: pd.DataFrame, spec: TargetSpec) -> pd.DataFrame:
        rows = frame[frame[spec.label].notna()]
        if spec.stage is not None:
            rows = rows[rows["stage"] == spec.stage]
        return rows

    def fit(self, train: pd.DataFrame, val: pd.DataFrame, group: str = "lead_id") -> FunnelModel:
        """Fit each target on `train`, stop early and calibrate on `val` (grouped by lead for calibration CV)."""
        self.begin(train)
        for spec in self.targets:
            self.fit_target(spec, train, val, group)
        return self

    def begin(self, frame: pd.DataFrame) -> FunnelModel:
        """Learn the feature encoding (categorical codes) before fitting targets one by one."""
        self.encoder_ = FeatureEncoder(self.features, self.categorical).fit(frame)
        self.targets_ = {}
        self.skipped_ = {}
        main = next((s for s in self.targets if s.name == self.main_target), None)
        if main is not None:
            self.closed_profile_ = closed_profile(frame, self.features, self.categorical, main.label)
        return self

    def fit_target(
        self, spec: TargetSpec, train: pd.DataFrame, val: pd.DataFrame, group: str = "lead_id"
    ) -> FittedTarget:
        """One calibrated LightGBM on its own train and validation rows (each target may have its own split)."""
        tr, va = self._rows(train, spec), self._rows(val, spec)
        y_tr, y_va = tr[spec.label].to_numpy(int), va[spec.label].to_numpy(int)
        if len(y_tr) == 0 or len(y_va) == 0 or y_tr.min() == y_tr.max() or y_va.min() == y_va.max():
            raise ValueError(
                f"target {spec.name}: needs both outcomes in train and validation "
                f"(train {int(y_tr.sum())}/{len(y_tr)}, validation {int(y_va.sum())}/{len(y_va)} positive)"
            )
        X_va = self.encoder_.transform(va)
        leaf = self.leaf_minimum(len(y_tr), lead_count(tr, group))
        booster, best = self._train(self.encoder_.transform(tr), y_tr, self.num_boost_round, (X_va, y_va), leaf)
        raw = np.asarray(booster.predict(X_va))
        cal, scores = choose_calibrator(raw, y_va, va[group].to_numpy(), self.seed, self.isotonic_min_rarer)
        fitted = FittedTarget(spec, booster, cal, best, scores, train_rows=len(y_tr), train_positives=int(y_tr.sum()))
        fitted.min_data_in_leaf = leaf
        self.targets_[spec.name] = fitted
        return fitted

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        rounds: int,
        valid: tuple[np.ndarray, np.ndarray] | None = None,
        leaf: int | None = None,
    ) -> tuple[lgb.Booster, int]:
        """One LightGBM booster: early-stopped on `valid` when given, else exactly `rounds` rounds; `leaf`: its
        `min_data_in_leaf` (the target's, `leaf_minimum`), None for the parameters' own."""
        cats = self.encoder_.categorical_indices()
        d_tr = lgb.Dataset(X, y, feature_name=self.features, categorical_feature=cats, free_raw_data=True)
        params = {**self.params, "seed": self.seed, "deterministic": True}
        if leaf is not None:
            params["min_data_in_leaf"] = leaf
        if len(y) < self.single_thread_below_rows:
            params["num_threads"] = 1
        if valid is None:
            return lgb.train(params, d_tr, num_boost_round=rounds), rounds
        d_va = lgb.Dataset(valid[0], valid[1], reference=d_tr, categorical_feature=cats)
        booster = lgb.train(
            params,
            d_tr,
            num_boost_round=rounds,
            valid_sets=[d_va],
            callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        best = booster.best_iteration or booster.current_iteration()
        return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), best

    def raw_booster(self, fitted: FittedTarget, frame: pd.DataFrame) -> lgb.Booster:
        """An uncalibrated booster like `fitted` (its rounds and leaf minimum) on `frame`'s rows of its target: the
        cross-fitted boosters a calibrator learns from must be the booster it will calibrate, fitted elsewhere."""
        rows = self._rows(frame, fitted.spec)
        y = rows[fitted.spec.label].to_numpy(int)
        return self._train(self.encoder_.transform(rows), y, fitted.best_iteration, leaf=fitted.min_data_in_leaf)[0]

    def refit_target(
        self,
        spec: TargetSpec,
        frame: pd.DataFrame,
        rounds: int,
        calibrator: IsotonicCalibrator | SigmoidCalibrator,
        calibration_scores: dict[str, float],
        leaf: int | None = None,
    ) -> FittedTarget:
        """The target refit on all of `frame` with a fixed round count and a calibrator fitted out of time elsewhere;
        `leaf`: the backtest's leaf minimum, kept as its rounds are (the calibrator learnt from boosters with it)."""
        rows = self._rows(frame, spec)
        y = rows[spec.label].to_numpy(int)
        if len(y) == 0 or y.min() == y.max():
            raise ValueError(f"target {spec.name}: needs both outcomes to refit ({int(y.sum())}/{len(y)} positive)")
        leaf = leaf if leaf is not None else self.leaf_minimum(len(y), len(y))
        booster, _ = self._train(self.encoder_.transform(rows), y, rounds, leaf=leaf)
        fitted = FittedTarget(
            spec, booster, calibrator, rounds, calibration_scores, train_rows=len(y), train_positives=int(y.sum())
        )
        fitted.min_data_in_leaf = leaf
        self.targets_[spec.name] = fitted
        return fitted

    def rows_of(self, frame: pd.DataFrame, spec: TargetSpec) -> pd.DataFrame:
        """The rows a target learns from: its label known and, for a stage model, leads at that stage."""
        return self._rows(frame, spec)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return self.encoder_.transform(frame)

    def predict_targets(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probability of every target for every row (a stage model answers for all rows), each row
        calibrated for its tenant where the frame names tenants and the model has the tenant's calibration."""
        X = self.matrix(frame)
        tenants = frame["tenant_id"].astype(str).to_numpy() if "tenant_id" in frame else None
        return pd.DataFrame(
            {name: t.predict_for(X, tenants)[0] for name, t in self.targets_.items()}, index=frame.index
        )

    def certainty(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The main target's probability per row with its interval (`p_lo`, `p_hi`, NaN without one), the width
        of it the data left open (`support`), and whether the row's tenant got the pooled probability (`pooled`)."""
        X = self.matrix(frame)
        tenants = frame["tenant_id"].astype(str).to_numpy() if "tenant_id" in frame else None
        target = self.targets_[self.main_target]
        p, pooled = target.predict_for(X, tenants)
        bounds = target.interval_for(X, p, tenants)
        nan = np.full(len(p), np.nan)
        lo, hi = bounds if bounds is not None else (nan, nan)
        support = target.support_for(X, p, tenants)
        return pd.DataFrame(
            {"p": p, "p_lo": lo, "p_hi": hi, "support": nan if support is None else support, "pooled": pooled},
            index=frame.index,
        )

    def predict_funnel(self, frame: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
        """What a boss reads: close probability per horizon (never falling as the horizon grows), the
        chance of moving past the current stage, and the close probability chained from transitions.

        `stages` is the ordered list of open funnel stages; rows need a `stage` column.
        """
        probs = self.predict_targets(frame)
        out = pd.DataFrame(index=frame.index)
        for days, p_close in close_curve({n: probs[n].to_numpy() for n in probs.columns}, probs.columns).items():
            out[close_output(days)] = p_close
        advance = [advance_target(s) for s in stages if advance_target(s) in probs.columns]
        if advance:
            position = frame["stage"].map({s: i for i, s in enumerate(stages)}).to_numpy(dtype=float)
            p_advance = np.full(len(frame), np.nan)
            chained = np.ones(len(frame))
            for i, s in enumerate(stages):
                col = advance_target(s)
                if col not in probs.columns:
                    continue
                p = probs[col].to_numpy()
                p_advance = np.where(position == i, p, p_advance)
                chained = np.where(position <= i, chained * p, chained)
            out["p_advance"] = p_advance
            out["p_close_chained"] = np.where(np.isnan(position), np.nan, chained)
        return out

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.targets_[self.main_target].predict(self.matrix(frame))
        return np.column_stack([1 - p, p])

    def save(self, path: Path, extra: dict[str, Any] | None = None, files: dict[str, str] | None = None) -> Path:
        """Plain files: one LightGBM text model per target, a JSON with everything else, and `files` copied in."""
        path.mkdir(parents=True, exist_ok=True)
        files = files or {}
        meta = {
            "main_target": self.main_target,
            "params": self.params,
            "leaf_rule": None if self.leaf_rule is None else asdict(self.leaf_rule),
            "isotonic_min_rarer": self.isotonic_min_rarer,
            "seed": self.seed,
            "encoder": self.encoder_.to_dict(),
            "targets": [],
            **(extra or {}),
        }
        meta["skipped_targets"] = getattr(self, "skipped_", {})
        meta["closed_profile"] = self.closed_profile_ or {}
        for name, file in files.items():
            shutil.copyfile(file, path / name)
        for name, t in self.targets_.items():
            t.booster.save_model(str(path / f"{name}.txt"))
            if isinstance(t.interval, BaggedInterval):
                for i, bag in enumerate(t.interval.boosters_):
                    bag.save_model(str(path / f"{name}.bag{i}.txt"))
            meta["targets"].append(
                {
                    "spec": asdict(t.spec),
                    "best_iteration": t.best_iteration,
                    "calibrator": t.calibrator.to_dict(),
                    "calibration_scores": t.calibration_scores,
                    "train_rows": t.train_rows,
                    "train_positives": t.train_positives,
                    "min_data_in_leaf": t.min_data_in_leaf,
                    "tenants": None if t.tenants is None else t.tenants.to_dict(),
                    "interval": None if t.interval is None else t.interval.to_dict(),
                }
            )
        (path / "model.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: Path) -> FunnelModel:
        meta = json.loads((path / "model.json").read_text())
        enc = FeatureEncoder.from_dict(meta["encoder"])
        specs = [TargetSpec(**t["spec"]) for t in meta["targets"]]
        rule = meta.get("leaf_rule")
        model = cls(
            specs,
            enc.features,
            enc.categorical,
            meta["params"],
            main_target=meta["main_target"],
            seed=meta["seed"],
            leaf_rule=None if rule is None else LeafRule(**rule),
            isotonic_min_rarer=meta.get("isotonic_min_rarer", 0),
        )
        model.encoder_ = enc
        model.targets_ = {}
        model.skipped_ = meta.get("skipped_targets", {})
        model.closed_profile_ = meta.get("closed_profile") or {}
        model.path_ = path
        for t, spec in zip(meta["targets"], specs):
            booster = _booster(path / f"{spec.name}.txt")
            interval = t.get("interval")
            bags = [
                _booster(path / f"{spec.name}.bag{i}.txt") for i in range(interval.get("bags", 0) if interval else 0)
            ]
            model.targets_[spec.name] = FittedTarget(
                spec,
                booster,
                calibrator_from_dict(t["calibrator"]),
                t["best_iteration"],
                t["calibration_scores"],
                t["train_rows"],
                t["train_positives"],
                TenantCalibration.from_dict(t["tenants"]) if t.get("tenants") else None,
                interval_from_dict(interval, bags) if interval else None,
                t.get("min_data_in_leaf"),
            )
        model.meta_ = meta
        return model

    def companion(self, name: str) -> FunnelModel | None:
        """A model saved beside this one in its bundle (the backtest model behind a refit one), if there is one."""
        folder = self.path_ / name if self.path_ is not None else None
        return FunnelModel.load(folder) if folder is not None and (folder / "model.json").is_file() else None


class CorruptModelError(ValueError):
    """A booster file that is truncated or not LightGBM's text format."""


def _booster(path: Path) -> lgb.Booster:
    """A LightGBM booster from its text file, checked whole first: LightGBM aborts the whole process (not an
    exception) on a truncated file, which would take the service down instead of keeping the old model."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("tree\n") or "\nend of trees\n" not in text:
        raise CorruptModelError(f"{path}: not a whole LightGBM model (truncated or corrupt); not loaded")
    return lgb.Booster(model_str=text)
