"""`leadradar serve` is the server: a signal to its process stops it, and a busy port is one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from leadradar.config import Settings
from leadradar.demo import demo_key
from leadradar.serving.auth import KeyStore
from leadradar.serving.process import free_port


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.server
def test_terminating_leadradar_serve_leaves_no_server_and_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LEADRADAR_HOME": str(tmp_path / "home"), "BENTOML_HOME": str(tmp_path / "bentoml")}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "leadradar.cli", "serve", "--port", str(port)], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert listening(port), (tmp_path / "serve.log").read_text()[-2000:]
        proc.send_signal(signal.SIGTERM)  # the PID a person or a supervisor knows: `leadradar serve` itself
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while listening(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not listening(port)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()


def test_serving_on_a_busy_port_is_one_line_naming_the_port(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "leadradar.cli", "serve", "--port", str(port)],
            env={**os.environ, "LEADRADAR_HOME": str(tmp_path / "home")},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(port) in lines[0] and "in use" in lines[0]


@pytest.mark.parametrize(("option", "value"), [("--port", "99999"), ("--host", "no-such-host.invalid")])
def test_an_impossible_address_is_one_line_naming_it(tmp_path: Path, option: str, value: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "leadradar.cli", "serve", option, value],
        env={**os.environ, "LEADRADAR_HOME": str(tmp_path / "home")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0]


def test_a_second_demo_run_leaves_one_active_demo_key(tmp_path: Path) -> None:
    keys = KeyStore(Settings(home=tmp_path).score_store_url)
    first, second = demo_key(keys, "t01"), demo_key(keys, "t01")
    active = [k for k in keys.list("t01") if k["name"] == "demo" and k["revoked_at"] is None]
    assert len(active) == 1 and first != second
    assert keys.verify(second) is not None and keys.verify(first) is None
