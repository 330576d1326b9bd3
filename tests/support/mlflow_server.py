"""A throwaway MLflow tracking server: PostgreSQL backend store, artifacts proxied by the server, one worker.

`mlflow server` is the same command a company runs (deploy/ starts it the same way); its runs and registered
models live in a database of the session's PostgreSQL (tests/support/postgres.py), its artifacts in a folder
that only the server writes. `stop()` stands for an outage.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from leadradar.serving.process import free_port
from tests.support.started import Started


class MlflowServer(Started):
    """`with MlflowServer(backend_url, folder) as ml:` gives `ml.url` for `settings.mlflow.tracking_uri`."""

    def __init__(self, backend_url: str, folder: Path, ready_timeout: float = 120.0):
        self.backend_url = backend_url
        self.folder = folder
        self.artifacts = folder / "artifacts"
        self.log_file = folder / "mlflow-server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            self.backend_url,
            "--artifacts-destination",
            self.artifacts.as_uri(),
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        log = open(self.log_file, "a")  # noqa: SIM115 - held by the child until stop()
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=os.environ
        )
        log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"mlflow server not ready after {self.ready_timeout:.0f} s:\n{self.tail()}")

    def stop(self) -> None:
        """End the server and its workers (its own process group), as a crash or a restart would."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, 15)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)

    def tail(self, lines: int = 30) -> str:
        return (
            "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:]) if self.log_file.exists() else ""
        )
