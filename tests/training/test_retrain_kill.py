"""kill -9 during a retrain leaves no registered version; the next retrain runs (the dead holder's lock is freed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from mlflow import MlflowClient

from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.features.simulator import SimulationConfig, simulate
from leadradar.ledger import Ledger
from leadradar.registry import configure_mlflow
from leadradar.training.retrain import LOCK, retrain

SCRIPT = """
import json
import sys
from leadradar.config import Settings
from leadradar.features.radar_log import RadarLog
from leadradar.training.retrain import retrain
settings = Settings(home=sys.argv[1], training=json.loads(sys.argv[3]))
retrain(settings, log=RadarLog.from_dir(sys.argv[2]), trigger="doomed")
"""
QUICK = {"horizons_days": [30], "transition_models": False}


def versions(settings: Settings) -> int:
    configure_mlflow(settings)
    return len(MlflowClient().search_model_versions(f"name='{settings.mlflow.model_name}'"))


@pytest.mark.slow
def test_kill_9_during_retrain_registers_nothing_and_the_next_run_works(tmp_path) -> None:
    settings = Settings(home=tmp_path / "home", training=QUICK)  # one close model: the kill is the test
    simulate(SimulationConfig(tenants=1, leads=3000, days=200, seed=5), settings).write(tmp_path / "sim")
    child = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(settings.data_dir), str(tmp_path / "sim"), json.dumps(QUICK)]
    )
    ledger = Ledger(settings.lifecycle_url)
    deadline = time.monotonic() + 60
    registry = settings.data_dir / "mlflow.db"

    def registry_made() -> bool:
        """The registry file fills in one rename once MLflow's schema is whole: a kill after lands in the training."""
        return registry.exists() and registry.stat().st_size > 0

    while (ledger.holder(LOCK) is None or not registry_made()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ledger.holder(LOCK) is not None, "the retrain never took the lock"
    assert registry_made(), "the retrain never made its registry"
    time.sleep(3)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert versions(settings) == 0
    outcome = retrain(settings, log=RadarLog.from_dir(tmp_path / "sim"), trigger="after the kill")
    assert outcome.outcome == "promoted" and versions(settings) == 1
