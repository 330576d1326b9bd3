"""`leadradar tune`: Optuna TPE with pruning over LightGBM, a resumable study beside the MLflow database.

Each trial is a nested MLflow run under one parent run. A study is named by model, target and the
fingerprint of the rows it tuned on (training/fingerprint.py); `leadradar train` reads the best parameters
back only from the study of its own rows, so parameters tuned on one log never train on another.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import mlflow
import optuna
import pandas as pd

from leadradar.config import Settings
from leadradar.errors import UserError
from leadradar.models.encoding import FeatureEncoder
from leadradar.models.funnel import LeafRule, lead_count, resolved_params
from leadradar.registry import configure_mlflow
from leadradar.training.fingerprint import DataKey
from leadradar.training.tracking import code_version


@dataclass
class TuneResult:
    study: str
    storage: str
    best_params: dict[str, Any]
    best_value: float
    trials_total: int
    trials_complete: int
    trials_pruned: int
    parent_run_id: str
    fingerprint: str = ""
    window: str = ""


def storage_url(settings: Settings) -> str:
    return f"sqlite:///{settings.data_dir / 'optuna.db'}"


def study_name(settings: Settings, target: str, key: DataKey) -> str:
    """One study per model, target and data: `<model>-<target>-<fingerprint, 12 hex>`."""
    return f"{settings.mlflow.model_name}-{target}-{key.short}"


def search_space(trial: optuna.Trial) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 4, 128, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 20, 1000, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l1": trial.suggest_float("lambda_l1", 1e-8, 10.0, log=True),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-8, 10.0, log=True),
        "min_gain_to_split": trial.suggest_float("min_gain_to_split", 0.0, 1.0),
    }


def pruning_callback(trial: optuna.Trial, every: int = 10):
    """Report the validation log loss to Optuna every few rounds and stop a trial that falls behind."""

    def callback(env: lgb.callback.CallbackEnv) -> None:
        if env.iteration % every:
            return
        value = next(r[2] for r in env.evaluation_result_list or [] if r[1] == "binary_logloss")
        trial.report(value, step=env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at round {env.iteration} with validation log loss {value:.5f}")

    callback.order = 40  # type: ignore[attr-defined]  # LightGBM runs callbacks by this attribute
    return callback


def tune_frames(
    train: pd.DataFrame,
    val: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    label: str,
    settings: Settings,
    target: str,
    key: DataKey,
    n_trials: int | None = 30,
    timeout: float | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> TuneResult:
    """Search LightGBM parameters on one target; validation log loss is the objective.

    The study of these rows (`key`) resumes where it stopped; `fresh` deletes it first and starts over."""
    configure_mlflow(settings)
    tc = settings.training
    enc = FeatureEncoder(features, categorical).fit(train)
    cats = enc.categorical_indices()
    d_tr = lgb.Dataset(
        enc.transform(train),
        train[label].to_numpy(int),
        feature_name=features,
        categorical_feature=cats,
        free_raw_data=False,
        params={"feature_pre_filter": False, "max_bin": tc.lgbm_params.get("max_bin", 255), "verbosity": -1},
    )
    d_va = lgb.Dataset(
        enc.transform(val), val[label].to_numpy(int), reference=d_tr, categorical_feature=cats, free_raw_data=False
    )
    name = study_name(settings, target, key)
    storage = storage_url(settings)
    if fresh:
        with suppress(KeyError):  # no study of this data yet: nothing to start over from
            optuna.delete_study(study_name=name, storage=storage)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=tc.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=50, interval_steps=10),
    )
    study.set_user_attr("fingerprint", key.fingerprint)
    study.set_user_attr("window", key.window)
    leads = lead_count(train, "lead_id")  # a table's rows are their own leads
    params = resolved_params(tc.lgbm_params, len(train), leads, LeafRule.from_settings(tc))  # a trial sets its own
    base = {**params, "objective": "binary", "metric": "binary_logloss", "seed": tc.seed, "verbosity": -1}
    if len(train) < tc.single_thread_below_rows:
        base["num_threads"] = 1

    with mlflow.start_run(run_name=f"tune {target}") as parent:
        mlflow.set_tags(
            {
                "kind": "tuning",
                "study": name,
                "code_version": code_version(),
                "target": target,
                "data.fingerprint": key.fingerprint,
                "data.window": key.window[:500],
            }
        )

        def objective(trial: optuna.Trial) -> float:
            params = {**base, **search_space(trial)}
            with mlflow.start_run(run_name=f"trial {trial.number}", nested=True):
                mlflow.log_params({k: v for k, v in trial.params.items()})
                try:
                    booster = lgb.train(
                        params,
                        d_tr,
                        num_boost_round=tc.num_boost_round,
                        valid_sets=[d_va],
                        valid_names=["val"],
                        callbacks=[
                            lgb.early_stopping(tc.early_stopping_rounds, verbose=False),
                            pruning_callback(trial),
                        ],
                    )
                except optuna.TrialPruned:
                    mlflow.set_tag("state", "pruned")
                    raise
                value = float(booster.best_score["val"]["binary_logloss"])
                trial.set_user_attr("best_iteration", int(booster.best_iteration))
                mlflow.log_metrics({"val_logloss": value, "best_iteration": booster.best_iteration})
                mlflow.set_tag("state", "complete")
                return value

        study.optimize(objective, n_trials=n_trials, timeout=timeout, show_progress_bar=progress, gc_after_trial=True)
        states = [t.state for t in study.trials]
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise UserError(f"study {name} has no complete trial yet; give it more --trials or a longer --timeout")
        mlflow.log_params({f"best_{k}": v for k, v in study.best_params.items()})
        mlflow.log_metric("best_val_logloss", study.best_value)
        return TuneResult(
            study=name,
            storage=storage,
            best_params=dict(study.best_params),
            best_value=float(study.best_value),
            trials_total=len(states),
            trials_complete=len(complete),
            trials_pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
            parent_run_id=parent.info.run_id,
            fingerprint=key.fingerprint,
            window=key.window,
        )


def tuned_params(settings: Settings, target: str, key: DataKey) -> tuple[dict[str, Any], str] | None:
    """The best parameters of the study tuned on exactly these rows, and `study <name>`; None if there is none.

    A study of other rows (another log, another window) is never read, however good its trials."""
    if not (settings.data_dir / "optuna.db").exists():
        return None
    name = study_name(settings, target, key)
    try:
        study = optuna.load_study(study_name=name, storage=storage_url(settings))
        best = study.best_trial
    except (KeyError, ValueError):
        return None
    if study.user_attrs.get("fingerprint", key.fingerprint) != key.fingerprint:
        return None  # twelve hex digits alike, the rest not
    return dict(best.params), f"study {name}"


DEFAULTS = "defaults"
