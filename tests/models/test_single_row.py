"""One row by LightGBM's single-row API gives what `Booster.predict` gives, to the bit, in any thread."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
import pytest

from leadradar.models.calibration import SigmoidCalibrator
from leadradar.models.funnel import FittedTarget
from leadradar.models.single_row import SingleRow
from leadradar.targets import TargetSpec


@pytest.fixture(scope="module")
def data() -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3000, 12))
    X[rng.random(X.shape) < 0.1] = np.nan  # missing values take their own branch
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=3000) > 0.5).astype(int)
    train, valid = lgb.Dataset(X[:2000], y[:2000]), lgb.Dataset(X[2000:], y[2000:])
    params = {"objective": "binary", "verbosity": -1, "learning_rate": 0.3}
    stop = [lgb.early_stopping(10, verbose=False)]
    booster = lgb.train(params, train, 400, valid_sets=[valid], callbacks=stop, keep_training_booster=True)
    assert 0 < booster.best_iteration < booster.num_trees()  # the single-row path must stop where predict stops
    return booster, X


def test_one_row_is_what_predict_gives_for_it(data):
    booster, X = data
    single = SingleRow(booster)
    got = np.array([single.predict(row) for row in X[:500]])
    assert np.array_equal(got, booster.predict(X[:500]))
    reloaded = lgb.Booster(model_str=booster.model_to_string())
    assert np.array_equal([SingleRow(reloaded).predict(row) for row in X[:50]], reloaded.predict(X[:50]))


def test_threads_predict_at_once_each_with_its_own_buffer(data):
    booster, X = data
    single = SingleRow(booster)
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda lo: [single.predict(r) for r in X[lo : lo + 300]], range(0, 1200, 300)))
    assert np.array_equal(np.concatenate(parts), booster.predict(X[:1200]))


def test_a_row_of_the_wrong_width_is_refused(data):
    booster, X = data
    with pytest.raises(ValueError, match="one row of 12 features"):
        SingleRow(booster).predict(X[0, :5])


def test_a_target_predicts_one_row_as_in_a_batch_and_survives_pickling(data):
    booster, X = data
    target = FittedTarget(TargetSpec("t", "y"), booster, SigmoidCalibrator(), booster.best_iteration)
    batch = target.predict_raw(X[:40])
    assert np.array_equal([target.predict_raw(X[i : i + 1])[0] for i in range(40)], batch)
    again = pickle.loads(pickle.dumps(target))
    assert np.array_equal(again.predict_raw(X[3:4]), batch[3:4])
