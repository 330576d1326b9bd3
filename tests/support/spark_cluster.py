"""A Spark standalone cluster on 127.0.0.1 from the Spark that pyspark ships: a master, one worker and a Spark
Connect server whose driver runs on that cluster. Each is a JVM of `bin/spark-class`, in its own process group,
stopped after.

The worker offers two (logical) cores and 2 GB, and every application is capped at one core, so the Connect
server's application (a 512 MB executor) and a test's own `spark://` session (Spark's default 1 GB executor) both
get an executor at the same time; with less, the second application waits for resources without a word.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from leadradar.serving.process import free_port
from tests.support.started import Started

APP_CONF = {
    "spark.cores.max": "1",
    "spark.executor.memory": "512m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
}


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def connect_jar() -> Path | None:
    found = sorted((spark_home() / "jars").glob("spark-connect_*.jar"))
    return found[-1] if found else None


class SparkCluster(Started):
    """`with SparkCluster() as cluster:` gives `cluster.master` (spark://…) and `cluster.remote` (sc://…)."""

    def __init__(self, worker_memory: str = "2g", ready_timeout: float = 180.0):
        self.home = spark_home()
        self.dir = Path(tempfile.mkdtemp(prefix="leadradar-spark-"))
        self.master_port, self.connect_port = free_port(), free_port()
        self.master = f"spark://127.0.0.1:{self.master_port}"
        self.remote = f"sc://127.0.0.1:{self.connect_port}"
        self.worker_memory = worker_memory
        self.ready_timeout = ready_timeout
        self.procs: dict[str, subprocess.Popen] = {}

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(self.home),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.dir),
            "SPARK_WORKER_DIR": str(self.dir / "work"),
            "SPARK_NO_DAEMONIZE": "1",
            "PYSPARK_PYTHON": sys.executable,  # executors run Python (Arrow, UDFs) with the same packages
        }

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.dir / f"{name}.log", "w") as log:
            proc = subprocess.Popen(
                [str(self.home / "bin" / "spark-class"), *args],
                env=self._env(),
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def _wait_for(self, name: str, pattern: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        log = self.dir / f"{name}.log"
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"spark {name} exited with {self.procs[name].returncode}:\n{self.tail(name)}")
            if log.exists() and re.search(pattern, log.read_text(errors="replace")):
                return
            time.sleep(0.3)
        raise RuntimeError(f"spark {name} not ready after {self.ready_timeout:.0f} s:\n{self.tail(name)}")

    def start(self) -> SparkCluster:
        self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            *("--host", "127.0.0.1", "--port", str(self.master_port), "--webui-port", str(free_port())),
        )
        self._wait_for("master", r"I have been elected leader")
        self._spawn(
            "worker",
            "org.apache.spark.deploy.worker.Worker",
            *("--host", "127.0.0.1", "--webui-port", str(free_port()), "--cores", "2"),
            *("--memory", self.worker_memory, self.master),
        )
        self._wait_for("worker", r"Successfully registered with master")
        jar = connect_jar()
        if jar is None:
            raise RuntimeError(f"no spark-connect jar in {self.home / 'jars'}")
        conf = {
            **APP_CONF,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.connect_port),
        }
        self._spawn(
            "connect",
            "org.apache.spark.deploy.SparkSubmit",
            *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer", "--name", "leadradar-connect"),
            *("--master", self.master, "--driver-memory", "512m"),
            *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")),
            "spark-internal",
        )
        self._wait_for("connect", r"Spark Connect server started")
        with socket.create_connection(("127.0.0.1", self.connect_port), timeout=5):
            pass
        return self

    def stop(self) -> None:
        for name in ("connect", "worker", "master"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, name: str, lines: int = 30) -> str:
        log = self.dir / f"{name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
