"""One row's prediction by LightGBM's single-row C API, which a scoring request of one lead takes once per target.

`Booster.predict` parses its parameters and builds a predictor on every call: on the served model's seven targets
35-40 us a call for one row, where `LGBM_BoosterPredictForMatSingleRowFast` with a configuration made once takes
4-10 us, the same value to the bit. A configuration holds a buffer, so each thread has its own; all are freed with
the object, which keeps its booster alive as long as they are.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call

_NORMAL = 0  # C_API_PREDICT_NORMAL: the probability, as Booster.predict gives it by default
_FLOAT64 = 1  # C_API_DTYPE_FLOAT64


class SingleRow:
    """A booster's prediction for one row, as `booster.predict(row[None, :])[0]` gives it."""

    def __init__(self, booster: lgb.Booster):
        self.booster = booster
        self.n_features = booster.num_feature()
        self._local = threading.local()
        self._configs: list[ctypes.c_void_p] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _free, self._configs)

    def __reduce__(self) -> tuple[Any, ...]:
        return SingleRow, (self.booster,)  # configurations are this process's pointers: made again when used

    def predict(self, row: np.ndarray) -> float:
        x = np.ascontiguousarray(row, dtype=np.float64)
        if x.shape != (self.n_features,):
            raise ValueError(f"one row of {self.n_features} features expected, got shape {x.shape}")
        out, n = np.empty(1, dtype=np.float64), ctypes.c_int64(0)
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self._config(),
                x.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(n),
                out.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
            )
        )
        return float(out[0])

    def _config(self) -> ctypes.c_void_p:
        config = getattr(self._local, "config", None)
        if config is None:
            config = ctypes.c_void_p()
            _safe_call(
                _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                    self.booster._handle,
                    ctypes.c_int(_NORMAL),
                    ctypes.c_int(0),
                    ctypes.c_int(self.booster.best_iteration),  # as Booster.predict: 0 or less is every tree
                    ctypes.c_int(_FLOAT64),
                    ctypes.c_int32(self.n_features),
                    _c_str("num_threads=1"),
                    ctypes.byref(config),
                )
            )
            with self._lock:
                self._configs.append(config)
            self._local.config = config
        return config


def _free(configs: list[ctypes.c_void_p]) -> None:
    for config in configs:
        _LIB.LGBM_FastConfigFree(config)
    configs.clear()
