"""A real Prometheus (Debian's package) scraping given localhost targets, for observability tests."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

PROMETHEUS = "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(n: int, low: int = 20000, high: int = 32000) -> int:
    """The first of ``n`` consecutive free ports (for services that take ``base + i``), drawn below the
    kernel's ephemeral range (32768+) and above Ray's worker ports (10002-19999), so that no process
    binding port 0 (Ray, gRPC) can take one of them between this check and their use."""
    import random

    for _ in range(200):
        base = random.randrange(low, high - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports in [{low}, {high})")


class PrometheusServer:
    def __init__(self, targets: dict[str, list[str]], workdir: Path, scrape_interval_s: float = 1.0) -> None:
        self.port = free_port()
        self.workdir = workdir
        jobs = "".join(
            f"  - job_name: {job}\n    static_configs:\n      - targets: {json.dumps(addrs)}\n"
            for job, addrs in targets.items()
        )
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            f"global:\n  scrape_interval: {int(scrape_interval_s * 1000)}ms\n"
            f"  evaluation_interval: {int(scrape_interval_s * 1000)}ms\n"
            f"scrape_configs:\n{jobs}"
        )
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30) -> PrometheusServer:
        log = (self.workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.config}", f"--storage.tsdb.path={self.workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.workdir / 'prometheus.log').read_text()[-2000:]}")
        raise TimeoutError("prometheus did not become ready")

    def query(self, promql: str) -> list[dict]:
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets_up(self) -> dict[str, str]:
        with urllib.request.urlopen(self.url + "/api/v1/targets", timeout=5) as r:
            body = json.load(r)
        return {t["scrapeUrl"]: t["health"] for t in body["data"]["activeTargets"]}

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
