"""Run the scoring service as a real server process: for the demo, the tests and the benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from leadradar.config import Settings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """`with ServiceProcess(settings) as svc:` starts `leadradar serve`, waits until /readyz, stops it after."""

    def __init__(
        self,
        settings: Settings,
        port: int | None = None,
        log_file: Path | None = None,
        ready_timeout: float = 120.0,
        env: dict[str, str] | None = None,
        require_ready: bool = True,
    ):
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file or settings.data_dir / f"service-{self.port}.log"
        self.ready_timeout = ready_timeout
        self.env = env or {}
        self.require_ready = require_ready
        self.proc: subprocess.Popen | None = None
        self.forced = False  # whether `stop` had to kill it: a request held it past SIGTERM's 20 s

    def start(self) -> ServiceProcess:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "LEADRADAR_HOME": str(self.settings.data_dir), **self.env}
        cmd = [sys.executable, "-m", "leadradar.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self._log = open(self.log_file, "w")  # noqa: SIM115 - held by the child until stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait()
        return self

    def _wait(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        path = "/readyz" if self.require_ready else "/healthz"
        proc = self.proc
        if proc is None:
            raise RuntimeError("start() sets the process before waiting for it")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited with {proc.returncode}; log: {self.log_file}\n{self.tail()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"service not ready after {self.ready_timeout:.0f} s; log: {self.log_file}\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM to the server's process group, SIGKILL after 20 s; workers that left the group (BentoML's
        supervisor starts them) are found first and killed too, so none outlives a forced stop."""
        if self.proc and self.proc.poll() is None:
            try:
                workers = psutil.Process(self.proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                workers = []
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.forced = True
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            for worker in workers:
                with contextlib.suppress(psutil.NoSuchProcess):
                    worker.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
