"""HAProxy in front of several service processes, on 127.0.0.1, for the replica tests and benchmark.

Uses Debian's package (`apt-get install haproxy`, done by .ci/run). The configuration is the one
deploy/haproxy.cfg documents, with the backends and the health check's path filled in: round robin,
a replica that fails its check or refuses a connection is taken out within a second.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from leadradar.serving.process import free_port

CONFIG = """\
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch
{errorfiles}
frontend leadradar
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET {check_path}
    default-server inter 500ms fall 2 rise 1
{servers}
"""


# The balancer's own answers keep the API's one error shape (serving/errors.py: `{"error": "..."}`).
ERRORS = {
    502: ("Bad Gateway", "the replica that took the request went away before answering; send it again"),
    503: ("Service Unavailable", "no replica is up; send the request again shortly"),
    504: ("Gateway Timeout", "the replica did not answer in time; send the request again"),
}


def error_file(status: int, reason: str, message: str) -> str:
    """An HAProxy errorfile: a whole HTTP answer whose body is the API's error shape."""
    body = json.dumps({"error": message})
    head = f"HTTP/1.0 {status} {reason}\r\nCache-Control: no-cache\r\nConnection: close\r\n"
    return f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"


def find_haproxy() -> str | None:
    """The haproxy binary on the PATH or in Debian's sbin, or None."""
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)


class Balancer:
    """`with Balancer(["http://127.0.0.1:3001", ...]) as lb:` gives `lb.url`, round robin over the replicas."""

    def __init__(self, backends: list[str], check_path: str = "/healthz", binary: str | None = None):
        self.binary = binary or find_haproxy()
        if self.binary is None:
            raise FileNotFoundError("haproxy is not installed (Debian: apt-get install haproxy, as .ci/run does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="leadradar-lb-"))
        servers = "\n".join(
            f"    server r{i} {url.removeprefix('http://')} check" for i, url in enumerate(backends, start=1)
        )
        errorfiles = []
        for status, (reason, message) in ERRORS.items():
            (self.dir / f"{status}.http").write_text(error_file(status, reason, message))
            errorfiles.append(f"    errorfile {status} {self.dir / f'{status}.http'}")
        self.config = self.dir / "haproxy.cfg"
        config = CONFIG.format(port=self.port, check_path=check_path, servers=servers, errorfiles="\n".join(errorfiles))
        self.config.write_text(config)
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Balancer:
        self.log = open(self.dir / "haproxy.log", "w")  # noqa: SIM115 - held by the child until stop()
        cmd = [str(self.binary), "-db", "-f", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.proc.returncode}: {self.tail()}")
            try:
                httpx.get(self.url + "/healthz", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"haproxy did not listen on {self.url}: {self.tail()}")

    def tail(self) -> str:
        return (self.dir / "haproxy.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Balancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
